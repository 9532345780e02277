"""The core scenario: `/agentbox show|hide` from a signed Slack request to wolkvox (the simulator)
and back into Slack (the fake Web API), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from commands import changes
from storage.changes import PlannedCall, Requester
from storage.models import AuditEvent, Call, Change
from storage.queue import CallQueue
from storage.signals import CHANGE, Signals
from tests.harness import ADMIN, CHANNEL, STRANGER, TOKEN, Harness, ack_text, rows_of, start_harness
from wolkvox.model import DisplayResult
from wolkvox.retrying import CallOutcome
from wolkvox.simulator import Simulator


async def test_hide_one_agent_end_to_end(agentbox: Harness) -> None:
    response = await agentbox.slash("hide disposition 1001")

    assert "1001" in ack_text(response)
    await agentbox.idle()
    summary = agentbox.last_message().text
    assert "Agentbox has been hide" in summary
    assert "1001" in summary and "disposition" in summary
    assert agentbox.simulator.button_state("1001", "disposition") == "hide"
    (change,) = await rows_of(agentbox, Change)
    assert change.status == "done" and change.slack_user_id == ADMIN
    (call,) = await rows_of(agentbox, Call)
    assert (call.agent_id, call.button, call.display, call.status) == (
        "1001",
        "disposition",
        "hide",
        "succeeded",
    )
    assert call.message == "Agentbox has been hide"
    (audit,) = await rows_of(agentbox, AuditEvent)
    assert audit.decision == "allowed" and audit.change_id == change.id


async def test_show_uses_spanish_aliases(agentbox: Harness) -> None:
    await agentbox.slash("ocultar colgar 1001")
    await agentbox.idle()
    await agentbox.slash("mostrar colgar 1001")
    await agentbox.idle()
    assert agentbox.simulator.button_state("1001", "hungup") == "show"
    assert "Agentbox has been show" in agentbox.last_message().text


async def test_ack_is_sent_before_wolkvox_answers_and_after_the_change_is_recorded(
    agentbox: Harness,
) -> None:
    agentbox.simulator.config.hang_rate = 1.0  # wolkvox never answers

    response = await agentbox.slash("hide dial 1001")

    assert "1001" in ack_text(response)
    assert [c.status for c in await rows_of(agentbox, Call)] in (["queued"], ["running"])
    assert not any(call.status == 200 for call in agentbox.simulator.calls)


async def test_twenty_agents_at_concurrency_one_never_overlap_and_run_in_order(
    agentbox: Harness,
) -> None:
    agentbox.simulator.config.latency = 0.01

    await agentbox.slash("hide dial 1001-1020")
    await agentbox.idle()

    assert agentbox.simulator.peak_in_flight(TOKEN) == 1
    agents = [call.agent_id for call in agentbox.simulator.calls]
    assert agents == [str(n) for n in range(1001, 1021)]
    posted = agentbox.slack.messages_in(CHANNEL)
    assert len(posted) == 1, "progress and summary share one message"
    assert "20/20" in posted[0].text


async def test_a_changes_slack_messages_share_kept_alive_connections(agentbox: Harness) -> None:
    """Progress, its update and the summary reuse the process's connections to Slack instead
    of opening one (a TLS handshake, against the real Slack) per Web API call."""
    agentbox.simulator.config.latency = 0.01

    await agentbox.slash("hide dial 1001-1020")
    await agentbox.idle()

    calls = [c for c in agentbox.slack.calls if c.method.startswith("chat.")]
    assert len(calls) >= 2, "posted, then updated with the summary"
    connections = {call.connection for call in agentbox.slack.calls}
    assert "" not in connections
    assert len(connections) < len(agentbox.slack.calls)


async def test_all_buttons_for_a_list_and_range(agentbox: Harness) -> None:
    await agentbox.slash("hide all 1001,1003 1005-1006")
    await agentbox.idle()

    for agent in ("1001", "1003", "1005", "1006"):
        for button in ("dial", "disposition", "hungup"):
            assert agentbox.simulator.button_state(agent, button) == "hide"
    assert "12/12" in agentbox.last_message().text


@pytest.mark.parametrize("headers", ["unsigned", "stale", "wrong secret"])
async def test_bad_signature_is_rejected_and_changes_nothing(
    agentbox: Harness, headers: str
) -> None:
    if headers == "unsigned":
        response = await agentbox.slash("hide dial 1001", signed=False)
    elif headers == "stale":
        response = await agentbox.slash("hide dial 1001", timestamp=int(time.time()) - 600)
    else:
        agentbox.signing_secret = "not-the-secret"
        response = await agentbox.slash("hide dial 1001")

    assert response.status_code == 401
    await agentbox.idle()
    assert agentbox.simulator.calls == []
    assert await rows_of(agentbox, Change) == []


async def test_a_user_who_is_not_an_admin_is_refused_and_audited(agentbox: Harness) -> None:
    text = ack_text(await agentbox.slash("hide dial 1001", user=STRANGER))

    assert "not allowed" in text and ADMIN in text
    await agentbox.idle()
    assert agentbox.simulator.calls == []
    assert await rows_of(agentbox, Change) == []
    (audit,) = await rows_of(agentbox, AuditEvent)
    assert (audit.slack_user_id, audit.decision) == (STRANGER, "refused")


async def test_an_unknown_word_gets_a_suggestion_and_changes_nothing(agentbox: Harness) -> None:
    text = ack_text(await agentbox.slash("hide dispositon 1001"))

    assert "dispositon" in text and "did you mean `disposition`" in text
    assert agentbox.simulator.calls == []
    assert await rows_of(agentbox, Change) == []
    (audit,) = await rows_of(agentbox, AuditEvent)
    assert audit.decision == "invalid"


@pytest.mark.parametrize("text", ["", "help", "ayuda"])
async def test_help_shows_usage(agentbox: Harness, text: str) -> None:
    reply = ack_text(await agentbox.slash(text))
    assert "/agentbox" in reply and "hide" in reply


async def test_a_second_command_is_told_its_place_in_the_queue(agentbox: Harness) -> None:
    agentbox.simulator.config.latency = 0.2
    await agentbox.slash("hide dial 1001-1005")

    text = ack_text(await agentbox.slash("show dial 1001"))

    assert "Waiting behind 5 calls" in text and "position 6" in text
    await agentbox.idle()
    assert agentbox.simulator.button_state("1001", "dial") == "show"


ERROR_CASES: dict[str, tuple[dict[str, object], str]] = {
    "invalid token": ({"tokens": frozenset({"another-token"})}, "invalid or expired"),
    "quota": ({"daily_quota": 0}, "daily quota"),
    "maintenance": ({"maintenance": True}, "maintenance"),
    "too many simultaneous": ({"max_simultaneous": 0}, "busy with other calls"),
    "server error": ({"error_rate": 1.0}, "internal error"),
    "garbage": ({"garbage_rate": 1.0}, "could not understand"),
    "hang": ({"hang_rate": 1.0}, "did not answer in time"),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
async def test_each_wolkvox_failure_reaches_the_user_in_words(
    database_url: str, simulator: Simulator, case: str
) -> None:
    config, words = ERROR_CASES[case]
    for key, value in config.items():
        setattr(simulator.config, key, value)
    async with start_harness(
        database_url=database_url, simulator=simulator, deadline=0.3
    ) as agentbox:
        await agentbox.slash("hide dial 1001")
        await agentbox.idle()

        summary = agentbox.last_message().text
        assert "1001" in summary and words in summary
        assert TOKEN not in summary
        (call,) = await rows_of(agentbox, Call)
        assert call.status == "failed" and call.error_kind


async def test_missing_token_reaches_the_user(database_url: str, simulator: Simulator) -> None:
    async with start_harness(database_url=database_url, simulator=simulator, token=" ") as agentbox:
        await agentbox.slash("hide dial 1001")
        await agentbox.idle()
        assert "token" in agentbox.last_message().text


async def test_summary_goes_to_a_dm_when_the_channel_is_closed_to_the_bot(
    agentbox: Harness,
) -> None:
    agentbox.slack.unpostable_channels.add("G_PRIVATE")

    await agentbox.slash("hide dial 1001", channel="G_PRIVATE")
    await agentbox.idle()

    (dm,) = agentbox.slack.messages_in(f"D_{ADMIN}")
    assert "Agentbox has been hide" in dm.text


async def test_summary_falls_back_to_response_url_when_the_web_api_is_down(
    agentbox: Harness,
) -> None:
    await agentbox.slash("help")  # Bolt checks the bot token (auth.test) once, while Slack is up
    agentbox.slack.web_api_down = True

    await agentbox.slash("hide dial 1001")
    await agentbox.idle()

    (response,) = agentbox.slack.responses
    assert "Agentbox has been hide" in response["text"]


async def test_health_endpoints(agentbox: Harness) -> None:
    assert (await agentbox.http.get("/healthz")).status_code == 200
    ready = await agentbox.http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] is True


async def test_the_wolkvox_token_appears_in_no_log_line(
    agentbox: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await agentbox.slash("hide dial 1001")
    await agentbox.idle()
    agentbox.simulator.config.tokens = frozenset({"another-token"})
    agentbox.simulator.config.error_rate = 0.5
    await agentbox.slash("show dial 1001-1004")
    await agentbox.idle()

    assert len(caplog.records) > 10, "debug logging was captured"
    assert TOKEN not in caplog.text


async def test_an_unusable_token_fails_the_rest_without_sending_them(agentbox: Harness) -> None:
    agentbox.simulator.config.tokens = frozenset({"another-token"})

    await agentbox.slash("hide all 1001-1010")
    await agentbox.idle()

    assert len(agentbox.simulator.calls) == 1, "one answer shows the token is refused"
    summary = agentbox.last_message().text
    assert "0/30 done, 30 failed" in summary and "invalid or expired" in summary


async def test_the_ack_names_the_teams_and_agents_asked_for(agentbox: Harness) -> None:
    await agentbox.slash("team create ventas 1001-1003 <#CVENTAS>")

    text = ack_text(await agentbox.slash("hide dial team:ventas 1005"))

    assert "team `ventas` and agent 1005" in text and "4 calls" in text


async def test_the_ack_says_how_many_calls_wait_ahead_even_within_a_burst(
    agentbox: Harness,
) -> None:
    agentbox.simulator.hold()  # wolkvox takes the first call and does not answer yet
    assert "Waiting behind" not in ack_text(await agentbox.slash("hide dial 1001-1003"))
    await agentbox.simulator.wait_in_flight(TOKEN, 1)

    burst = await asyncio.gather(*(agentbox.slash(f"hide dial {a}") for a in (1004, 1005)))
    waiting = sorted(ack_text(response) for response in burst)

    # 3 calls of the first change (one in flight); the burst's second also waits for its first.
    assert "Waiting behind 3 calls" in waiting[0] and "position 4" in waiting[0]
    assert "Waiting behind 4 calls" in waiting[1] and "position 5" in waiting[1]
    agentbox.simulator.release()
    await agentbox.idle()


async def test_a_change_ends_as_soon_as_its_last_call_is_answered_here(
    database_url: str, simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Progress is read at most this often while calls are answered elsewhere; the answers of
    # this process's own dispatcher end the change at once all the same.
    monkeypatch.setattr(changes, "PROGRESS_READ_SECONDS", 3600.0)
    async with start_harness(database_url=database_url, simulator=simulator) as box:
        simulator.hold()  # wolkvox keeps the first call waiting ...
        await box.slash("hide dial 1001-1020")
        # ... until the change's progress was read once (its progress message is posted).
        await box.slack.wait_for(lambda: bool(box.slack.messages_in(CHANNEL)))
        simulator.release()
        async with asyncio.timeout(5):  # far below the read interval and the lease
            await box.idle()
        summary = box.last_message().text
        assert "1001" in summary and "1020" in summary
        assert all(simulator.button_state(str(a), "dial") == "hide" for a in range(1001, 1021))


class _Recorded:
    """A progress listener that keeps what it was told."""

    def __init__(self) -> None:
        self.finished: list[changes.ChangeReport] = []

    async def on_progress(self, done: int, total: int) -> None:
        pass

    async def on_interrupted(self, done: int, total: int) -> None:
        pass

    async def on_finished(self, report: changes.ChangeReport) -> None:
        self.finished.append(report)


async def test_a_change_ends_as_soon_as_another_replica_answered_its_last_call(
    database_url: str, simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calls sent by another replica reach the follower only as wake-ups (PostgreSQL's NOTIFY):
    as many wake-ups as open calls end the change at once, not at the next periodic read."""
    monkeypatch.setattr(changes, "PROGRESS_READ_SECONDS", 3600.0)
    async with start_harness(database_url=database_url, simulator=simulator) as box:
        services = box.services
        agents = ("1001", "1002", "1003")
        recorded = await services.store.record_change(
            Requester(ADMIN), text="hide dial 1001-1003", display="hide", buttons=["dial"],
            calls=[PlannedCall("elsewhere", agent, "dial", "hide") for agent in agents],
            response_url=None, idempotency_key=None, reporter_id=services.replica_id,
            lease=services.changes.lease,
        )  # fmt: skip
        listener = _Recorded()
        following = asyncio.create_task(services.changes.follow(recorded.change_id, listener))
        # The other replica: its own queue on the same database; its steps' NOTIFY arrives
        # here as a wake-up of the change.
        other = CallQueue(services.database, Signals())
        answer = DisplayResult(200, "Agentbox has been hide")
        for _agent in agents:
            call = await other.claim_next("elsewhere", replica_id="other", slot=0)
            assert call is not None
            await other.complete(call, CallOutcome(call.request, answer, None, 1, 0.02))
            services.signals.notify(CHANGE, str(recorded.change_id))

        async with asyncio.timeout(5):  # far below the read interval and the lease
            report = await following
        assert report is not None and report.succeeded == 3
        assert [r.change_id for r in listener.finished] == [recorded.change_id]

"""Approval requests end to end: signed slash commands and block_actions / view_submission
payloads over HTTP, the fake Slack recording what agentbox posts and updates, and the wolkvox
simulator showing what ran. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from bot.approvals import APPROVE_ACTION, REJECT_ACTION, REJECT_VIEW
from bot.fake_slack import PostedMessage
from storage.changes import Requester
from storage.models import Approval, Call, Change
from tests.harness import (
    Harness,
    MovableClock,
    ack_text,
    admin_says,
    audit_events,
    rows_of,
    start_harness,
)
from wolkvox.simulator import Simulator

MARIA = "UMARIA"  # supervisor of ventas
PEDRO = "UPEDRO"  # supervisor of ventas
REQUESTER = "UREQUESTER"  # requester in ventas
LUIS = "ULUIS"  # supervisor of cobranza only
APPROVALS = "CVENTASSUP"
REASON = '--reason "cliente en espera"'


@pytest.fixture
async def box(
    database_url: str, simulator: Simulator, clock: MovableClock
) -> AsyncIterator[Harness]:
    async with start_harness(database_url=database_url, simulator=simulator, clock=clock) as h:
        await admin_says(h, f"team create ventas 1001-1010 <#CVENTAS> approvals:<#{APPROVALS}>")
        await admin_says(h, "team create cobranza 2001-2010 <#CCOBRANZA>")
        await admin_says(h, f"grant <@{MARIA}> supervisor team:ventas")
        await admin_says(h, f"grant <@{PEDRO}> supervisor team:ventas")
        await admin_says(h, f"grant <@{REQUESTER}> requester team:ventas")
        await admin_says(h, f"grant <@{LUIS}> supervisor team:cobranza")
        yield h


async def _change(harness: Harness, change_id: str) -> Change:
    async with harness.services.database.sessions() as session:
        change = await session.get(Change, int(change_id))
        assert change is not None
        return change


async def _request(harness: Harness, text: str, *, user: str = REQUESTER) -> tuple[str, str]:
    """Ask for a change that needs approval; (its ack, the change id its message's buttons
    carry). The request message is posted in the background: wait for it."""
    ack = ack_text(await harness.slash(text, user=user))
    assert "waits for approval" in ack, ack
    await harness.idle()
    message = _request_message(harness)
    return ack, _button_value(message, APPROVE_ACTION)


def _request_message(harness: Harness, channel: str = APPROVALS) -> PostedMessage:
    (message,) = harness.slack.messages_in(channel)
    return message


def _button_value(message: PostedMessage, action_id: str) -> str:
    blocks = message.current.get("blocks") or []
    for block in blocks:
        for element in block.get("elements", []) if block["type"] == "actions" else []:
            if element["action_id"] == action_id:
                return str(element["value"])
    raise AssertionError(f"no {action_id} button in {message.text!r}")


def _has_buttons(message: PostedMessage) -> bool:
    return any(block["type"] == "actions" for block in message.current.get("blocks") or [])


async def _click(
    harness: Harness, action: str, value: str, user: str, channel: str = APPROVALS
) -> str:
    """Click a request's button; the answer the clicker alone saw (through response_url)."""
    before = len(harness.slack.responses)
    reply = await harness.block_action(action, value, user=user, channel=channel)
    assert reply.status_code == 200
    return "\n".join(str(r["text"]) for r in harness.slack.responses[before:])


async def _click_from_home(harness: Harness, action: str, value: str, user: str) -> None:
    """A click on App Home's copy of the buttons: no channel, no response_url."""
    payload = {
        "type": "block_actions",
        "user": {"id": user},
        "team": {"id": "T_FAKE"},
        "actions": [{"action_id": action, "value": value, "type": "button"}],
        "trigger_id": f"{int(time.time())}.43",
        "api_app_id": "A_AGENTBOX",
        "token": "x",
        "container": {"type": "view", "view_id": "VHOME"},
        "view": {"type": "home", "id": "VHOME"},
    }
    reply = await harness.post(urlencode({"payload": json.dumps(payload)}))
    assert reply.status_code == 200


async def _submit_reject(
    harness: Harness, view: dict[str, Any], user: str, reason: str | None
) -> httpx.Response:
    """Submit the reject modal as Slack sends a view_submission."""
    value: dict[str, Any] = {"type": "plain_text_input", "value": reason}
    payload = {
        "type": "view_submission",
        "user": {"id": user},
        "team": {"id": "T_FAKE"},
        "api_app_id": "A_AGENTBOX",
        "token": "x",
        "trigger_id": f"{int(time.time())}.42",
        "view": {
            **view,
            "state": {"values": {"reason": {"reason": value}}},
        },
    }
    return await harness.post(urlencode({"payload": json.dumps(payload)}))


def _dm(harness: Harness, user: str) -> list[str]:
    return [message.text for message in harness.slack.messages_in(f"D_{user}")]


# --------------------------------------------------------------------------- the request


async def test_a_requesters_change_waits_for_approval_and_runs_once_approved(
    box: Harness,
) -> None:
    ack, change_id = await _request(box, f"hide dial 1001-1003 {REASON}")

    assert f"<#{APPROVALS}>" in ack and f"request #{change_id}" in ack and "expires" in ack
    request = _request_message(box)
    assert f"<@{REQUESTER}>" in request.text and "cliente en espera" in request.text
    assert "hide `dial` for 3 agents (1001-1003)" in request.text
    assert _button_value(request, REJECT_ACTION) == change_id
    assert box.simulator.calls == [], "nothing runs before the approval"
    assert (await _change(box, change_id)).status == "requested"

    answer = await _click(box, APPROVE_ACTION, change_id, MARIA)
    await box.idle()

    assert "You approved" in answer
    assert [call.agent_id for call in box.simulator.calls] == ["1001", "1002", "1003"]
    assert all(box.simulator.button_state(a, "dial") == "hide" for a in ("1001", "1002", "1003"))
    # The request's own message shows the progress and the outcome, without the buttons.
    assert len(box.slack.messages_in(APPROVALS)) == 1
    assert "3/3 done" in request.text and f"approved by <@{MARIA}>" in request.text
    assert not _has_buttons(request)
    # The requester is told it was approved, and the outcome.
    told = _dm(box, REQUESTER)
    assert any("was approved by" in text and f"<@{MARIA}>" in text for text in told), told
    assert any(f"Your request #{change_id}" in text and "3/3 done" in text for text in told)
    # The team's channel has its trail line.
    (trail,) = box.slack.messages_in("CVENTAS")
    assert f"<@{REQUESTER}> hid `dial` for 3 agents" in trail.text
    change = await _change(box, change_id)
    assert change.status == "done" and change.reason == "cliente en espera"
    (approval,) = await rows_of(box, Approval)
    assert (approval.approver_id, approval.decision) == (MARIA, "approved")
    actions = [(row.slack_user_id, row.action, row.decision) for row in await audit_events(box)]
    assert (REQUESTER, "request", "allowed") in actions
    assert (MARIA, "approve", "allowed") in actions


async def test_a_request_needs_a_reason_and_without_one_records_nothing(box: Harness) -> None:
    reply = ack_text(await box.slash("hide dial 1001", user=REQUESTER))
    await box.idle()

    assert ":no_entry:" in reply and "needs a reason" in reply and "--reason" in reply
    assert await rows_of(box, Change) == []
    assert box.slack.messages_in(APPROVALS) == []
    refusal = (await audit_events(box))[-1]
    assert (refusal.slack_user_id, refusal.decision) == (REQUESTER, "refused")


async def test_a_slash_command_delivered_twice_makes_one_request(box: Harness) -> None:
    body = box.slash_body(f"hide dial 1001 {REASON}", user=REQUESTER)

    first = ack_text(await box.post(body))
    again = ack_text(await box.post(body))
    await box.idle()

    assert "waits for approval" in first and "Already received" in again
    assert len(await rows_of(box, Change)) == 1
    assert len(box.slack.messages_in(APPROVALS)) == 1


async def test_a_dry_run_says_the_change_would_be_requested(box: Harness) -> None:
    reply = ack_text(await box.slash("hide dial 1001 --dry-run", user=REQUESTER))

    assert "would be requested for approval" in reply and "requester" in reply
    assert await rows_of(box, Change) == []


# --------------------------------------------------------------------------- reject


async def test_reject_asks_for_a_reason_runs_nothing_and_tells_the_requester(
    box: Harness,
) -> None:
    _, change_id = await _request(box, f"hide hungup 1004 {REASON}")

    await _click(box, REJECT_ACTION, change_id, PEDRO)
    (view,) = box.slack.opened_views
    assert view["callback_id"] == REJECT_VIEW and view["private_metadata"] == change_id
    assert box.slack.calls_to("views.open")[-1].payload["trigger_id"]
    submitted = await _submit_reject(box, view, PEDRO, "no <!channel> hoy")
    await box.idle()

    assert submitted.status_code == 200 and not submitted.content.strip(b"{} ")
    assert box.simulator.calls == []
    change = await _change(box, change_id)
    assert change.status == "rejected"
    assert {call.status for call in await rows_of(box, Call)} == {"cancelled"}
    request = _request_message(box)
    assert "rejected" in request.text and f"<@{PEDRO}>" in request.text
    assert "no &lt;!channel&gt; hoy" in request.text, "the reason is shown, never broadcast"
    assert not _has_buttons(request)
    assert any(
        "was rejected by" in text and "no &lt;!channel&gt; hoy" in text
        for text in _dm(box, REQUESTER)
    )
    (decision,) = await rows_of(box, Approval)
    assert (decision.approver_id, decision.decision) == (PEDRO, "rejected")
    assert decision.reason == "no <!channel> hoy"
    # An approval after the rejection runs nothing, and says why.
    late = await _click(box, APPROVE_ACTION, change_id, MARIA)
    await box.idle()
    assert "rejected" in late and box.simulator.calls == []


async def test_a_non_approver_cannot_open_the_reject_modal_nor_submit_it(box: Harness) -> None:
    _, change_id = await _request(box, f"hide dial 1005 {REASON}")

    answer = await _click(box, REJECT_ACTION, change_id, LUIS)
    forged = {"callback_id": REJECT_VIEW, "private_metadata": change_id, "type": "modal"}
    submitted = await _submit_reject(box, forged, LUIS, "forged")

    assert "may not reject" in answer and box.slack.opened_views == []
    assert submitted.json()["response_action"] == "errors"
    assert "may not reject" in submitted.json()["errors"]["reason"]
    assert (await _change(box, change_id)).status == "requested"
    refusals = [r for r in await audit_events(box) if r.slack_user_id == LUIS]
    assert [(r.action, r.decision) for r in refusals] == [("reject", "refused")] * 2


# --------------------------------------------------------------------------- expiry


async def test_a_request_expires_by_the_clock_and_then_nothing_runs(
    box: Harness, clock: MovableClock
) -> None:
    _, change_id = await _request(box, f"hide dial 1006 {REASON}")
    clock.advance(timedelta(minutes=29))
    assert await box.services.sweep_requests() == 0
    assert (await _change(box, change_id)).status == "requested"

    clock.advance(timedelta(minutes=2))
    expired = await box.services.sweep_requests()
    late = await _click(box, APPROVE_ACTION, change_id, MARIA)
    await box.idle()

    assert expired == 1
    assert "expired" in late and "nothing was done" in late
    assert box.simulator.calls == []
    request = _request_message(box)
    assert "expired" in request.text and not _has_buttons(request)
    assert any("expired" in text for text in _dm(box, REQUESTER))
    assert (await _change(box, change_id)).status == "expired"
    assert {call.status for call in await rows_of(box, Call)} == {"cancelled"}
    assert any(r.action == "request.expire" for r in await audit_events(box))


async def test_a_click_after_the_expiry_time_is_refused_even_before_the_sweep(
    box: Harness, clock: MovableClock
) -> None:
    _, change_id = await _request(box, f"hide dial 1007 {REASON}")
    clock.advance(timedelta(minutes=31))

    late = await _click(box, APPROVE_ACTION, change_id, MARIA)
    await box.idle()

    assert "expired" in late
    assert box.simulator.calls == []
    assert (await _change(box, change_id)).status == "expired"
    assert "expired" in _request_message(box).text
    assert any("expired" in text for text in _dm(box, REQUESTER))
    assert await box.services.sweep_requests() == 0, "expired once"


# --------------------------------------------------------------------------- who approves


async def test_self_approval_is_refused_unless_the_team_allows_it_and_then_audited(
    box: Harness,
) -> None:
    await admin_says(box, "team set ventas approval-buttons hungup")
    _, first = await _request(box, f"hide hungup 1001 {REASON}", user=MARIA)

    refused = await _click(box, APPROVE_ACTION, first, MARIA)
    await box.idle()

    assert "someone else must approve it" in refused
    assert box.simulator.calls == []
    assert (await _change(box, first)).status == "requested"

    await admin_says(box, "team set ventas self-approval on")
    allowed = await _click(box, APPROVE_ACTION, first, MARIA)
    await box.idle()

    assert "self-approval" in allowed
    assert box.simulator.button_state("1001", "hungup") == "hide"
    audit = await audit_events(box)
    assert any(r.action == "team.set" and "self-approval on" in r.text for r in audit)
    (approved,) = [r for r in audit if r.action == "approve" and r.decision == "allowed"]
    assert approved.slack_user_id == MARIA and "self-approval" in (approved.reason or "")


async def test_a_requester_grant_cannot_approve_even_its_own_team(box: Harness) -> None:
    await admin_says(box, "team set ventas self-approval on")
    _, change_id = await _request(box, f"hide dial 1001 {REASON}")

    answer = await _click(box, APPROVE_ACTION, change_id, REQUESTER)
    await box.idle()

    assert "may not approve" in answer and "not approve them" in answer
    assert box.simulator.calls == []


async def test_a_double_click_runs_the_change_once(box: Harness) -> None:
    _, change_id = await _request(box, f"hide disposition 1002 {REASON}")

    first = await _click(box, APPROVE_ACTION, change_id, MARIA)
    second = await _click(box, APPROVE_ACTION, change_id, MARIA)
    await box.idle()

    assert "You approved" in first
    assert "approved already" in second and "nothing more was done" in second
    assert len(box.simulator.calls) == 1
    assert len(await rows_of(box, Approval)) == 1


async def test_two_approvers_clicking_at_once_run_the_change_once(box: Harness) -> None:
    _, change_id = await _request(box, f"hide dial 1001-1004 {REASON}")
    urls = [box.slack.new_response_url(), box.slack.new_response_url()]

    replies = await asyncio.gather(
        box.block_action(APPROVE_ACTION, change_id, user=MARIA, response_url=urls[0]),
        box.block_action(APPROVE_ACTION, change_id, user=PEDRO, response_url=urls[1]),
    )
    await box.idle()

    assert [reply.status_code for reply in replies] == [200, 200]
    assert sorted(call.agent_id for call in box.simulator.calls) == ["1001", "1002", "1003", "1004"]
    texts = [str(r["text"]) for r in box.slack.responses]
    assert sum("You approved" in t for t in texts) == 1, texts
    assert sum("approved already" in t for t in texts) == 1, texts
    (approval,) = await rows_of(box, Approval)
    assert approval.approver_id in (MARIA, PEDRO)
    assert (await _change(box, change_id)).status == "done"


async def test_two_approvers_policy_shows_who_approved_and_needs_someone_else(
    box: Harness,
) -> None:
    await admin_says(box, "team set ventas two-approvers hungup")
    _, change_id = await _request(box, f"hide hungup 1001-1002 {REASON}")
    assert "2 distinct approvers" in _request_message(box).text

    first = await _click(box, APPROVE_ACTION, change_id, MARIA)
    again = await _click(box, APPROVE_ACTION, change_id, MARIA)
    await box.idle()

    assert "needs 1 more approver" in first
    assert "approved this request already" in again and "someone else" in again
    request = _request_message(box)
    assert f"approved so far by <@{MARIA}>" in request.text and _has_buttons(request)
    assert box.simulator.calls == []

    await _click(box, APPROVE_ACTION, change_id, PEDRO)
    await box.idle()

    assert box.simulator.button_state("1001", "hungup") == "hide"
    assert len(box.simulator.calls) == 2
    assert f"<@{MARIA}>, <@{PEDRO}>" in request.text and "2/2 done" in request.text
    assert sorted(a.approver_id for a in await rows_of(box, Approval)) == sorted([MARIA, PEDRO])


async def test_crafted_payloads_are_refused_and_audited(box: Harness) -> None:
    _, change_id = await _request(box, f"hide dial 1003 {REASON}")
    plain = ack_text(await box.slash("hide dial 1009", user=MARIA))
    await box.idle()
    assert "waits for approval" not in plain
    (normal,) = [c for c in await rows_of(box, Change) if c.status == "done"]
    before = len(await audit_events(box))

    outsider = await _click(box, APPROVE_ACTION, change_id, LUIS)
    unknown = await _click(box, APPROVE_ACTION, "987654", MARIA)
    not_a_request = await _click(box, APPROVE_ACTION, str(normal.id), MARIA)
    garbage = await _click(box, APPROVE_ACTION, "1; DROP TABLE changes", MARIA)
    await box.idle()

    assert "may not approve" in outsider and "in team ventas" in outsider
    for answer in (unknown, not_a_request, garbage):
        assert "names no approval request" in answer, answer
    assert [call.agent_id for call in box.simulator.calls] == ["1009"]
    assert (await _change(box, change_id)).status == "requested"
    refusals = (await audit_events(box))[before:]
    assert [(r.slack_user_id, r.action, r.decision) for r in refusals] == [
        (LUIS, "approve", "refused"),
        (MARIA, "approve", "refused"),
        (MARIA, "approve", "refused"),
        (MARIA, "approve", "refused"),
    ]
    assert refusals[0].change_id == int(change_id) and refusals[1].change_id is None


# --------------------------------------------------------------------------- team policy


async def test_a_team_policy_makes_a_supervisors_change_a_request(box: Harness) -> None:
    await admin_says(box, "team set ventas approval-over 2")

    small = ack_text(await box.slash("hide dial 1001-1002", user=MARIA))
    await box.idle()
    big = ack_text(await box.slash(f"hide dial 1001-1003 {REASON}", user=MARIA))
    await box.idle()

    assert "waits for approval" not in small and len(box.simulator.calls) == 2
    assert "waits for approval" in big and "more than 2 of its agents" in big
    assert len(box.slack.messages_in(APPROVALS)) == 1
    assert len(box.simulator.calls) == 2


async def test_a_request_across_teams_with_different_approval_channels_is_refused(
    box: Harness,
) -> None:
    await admin_says(box, f"grant <@{REQUESTER}> requester team:cobranza")

    reply = ack_text(await box.slash(f"hide dial 1001 2001 {REASON}", user=REQUESTER))
    await box.idle()

    assert ":no_entry:" in reply and "different channels" in reply
    assert f"<#{APPROVALS}>" in reply and "<#CCOBRANZA>" in reply
    assert await rows_of(box, Change) == []


async def test_a_request_that_cannot_be_posted_is_withdrawn_and_the_requester_told(
    box: Harness,
) -> None:
    box.slack.unpostable_channels.add(APPROVALS)

    ack = ack_text(await box.slash(f"hide dial 1001 {REASON}", user=REQUESTER))
    await box.idle()

    assert "waits for approval" in ack
    (change,) = await rows_of(box, Change)
    assert change.status == "cancelled"
    assert any("could not be posted" in str(r["text"]) for r in box.slack.responses)
    assert box.simulator.calls == []


async def test_the_requester_may_withdraw_their_own_request(box: Harness) -> None:
    _, change_id = await _request(box, f"hide dial 1001 {REASON}")

    await _click(box, REJECT_ACTION, change_id, REQUESTER)
    (view,) = box.slack.opened_views
    await _submit_reject(box, view, REQUESTER, None)
    await box.idle()

    assert (await _change(box, change_id)).status == "rejected"
    assert "withdrawn" in _request_message(box).text
    assert box.simulator.calls == []


async def test_a_click_from_app_home_approves_and_answers_in_a_dm(box: Harness) -> None:
    _, change_id = await _request(box, f"hide dial 1001 {REASON}")

    await _click_from_home(box, APPROVE_ACTION, change_id, LUIS)
    await _click_from_home(box, APPROVE_ACTION, change_id, MARIA)
    await box.idle()

    assert any("may not approve" in text for text in _dm(box, LUIS))
    assert any("You approved" in text for text in _dm(box, MARIA))
    assert box.simulator.button_state("1001", "dial") == "hide"
    assert "1001" in _request_message(box).text and not _has_buttons(_request_message(box))


async def test_the_requests_a_user_may_approve_are_listed_for_app_home(box: Harness) -> None:
    await admin_says(box, "team set ventas two-approvers dial")
    _, change_id = await _request(box, f"hide dial 1001 {REASON}")
    approvals = box.services.approvals

    def ids(records: list[Any]) -> list[int]:
        return [record.id for record in records]

    assert ids(await approvals.waiting_for(Requester(MARIA))) == [int(change_id)]
    assert ids(await approvals.waiting_for(Requester(LUIS))) == []
    assert ids(await approvals.waiting_for(Requester(REQUESTER))) == []
    await _click(box, APPROVE_ACTION, change_id, MARIA)
    assert ids(await approvals.waiting_for(Requester(MARIA))) == []
    assert ids(await approvals.waiting_for(Requester(PEDRO))) == [int(change_id)]


async def test_undo_of_an_approved_change_needs_approval_like_the_change(box: Harness) -> None:
    await admin_says(box, "team set ventas approval-buttons hungup")
    _, change_id = await _request(box, f"hide hungup 1001 {REASON}", user=MARIA)
    await _click(box, APPROVE_ACTION, change_id, PEDRO)
    await box.idle()
    assert box.simulator.button_state("1001", "hungup") == "hide"

    answer = ack_text(await box.slash("undo", user=MARIA))
    await box.idle()

    assert "needs approval" in answer and "/agentbox show hungup 1001 --reason" in answer
    assert box.simulator.button_state("1001", "hungup") == "hide"


async def test_an_approver_may_still_reject_what_they_approved_while_it_waits(
    box: Harness,
) -> None:
    await admin_says(box, "team set ventas two-approvers hungup")
    _, change_id = await _request(box, f"hide hungup 1001 {REASON}")
    await _click(box, APPROVE_ACTION, change_id, MARIA)

    await _click(box, REJECT_ACTION, change_id, MARIA)
    (view,) = box.slack.opened_views
    await _submit_reject(box, view, MARIA, "changed my mind")
    await box.idle()

    assert (await _change(box, change_id)).status == "rejected"
    (decision,) = await rows_of(box, Approval)
    assert (decision.approver_id, decision.decision) == (MARIA, "rejected")
    assert box.simulator.calls == []


async def test_two_approvals_needed_and_given_at_once_run_the_change_once(box: Harness) -> None:
    await admin_says(box, "team set ventas two-approvers hungup")
    _, change_id = await _request(box, f"hide hungup 1001-1002 {REASON}")

    await asyncio.gather(
        box.block_action(APPROVE_ACTION, change_id, user=MARIA),
        box.block_action(APPROVE_ACTION, change_id, user=PEDRO),
    )
    await box.idle()

    assert (await _change(box, change_id)).status == "done"
    assert sorted(call.agent_id for call in box.simulator.calls) == ["1001", "1002"]


async def test_a_double_click_at_once_runs_the_change_once(box: Harness) -> None:
    _, change_id = await _request(box, f"hide disposition 1002 {REASON}")

    await asyncio.gather(
        box.block_action(APPROVE_ACTION, change_id, user=MARIA),
        box.block_action(APPROVE_ACTION, change_id, user=MARIA),
    )
    await box.idle()

    assert len(box.simulator.calls) == 1
    assert len(await rows_of(box, Approval)) == 1


async def test_a_timed_request_says_so_and_reverts_after_it_is_approved(box: Harness) -> None:
    _, change_id = await _request(box, f"hide dial 1001 for 30m {REASON}")
    assert "for 30m (then agentbox puts it back)" in _request_message(box).text

    await _click(box, APPROVE_ACTION, change_id, MARIA)
    await box.idle()

    assert box.simulator.button_state("1001", "dial") == "hide"
    assert await box.services.timed.seconds_until_next() is not None

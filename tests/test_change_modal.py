"""The "Change agent buttons" modal: opened by the global shortcut, submitted as signed
``view_submission`` payloads over HTTP; errors inline and nothing changed, or the slash command's
path to wolkvox (the simulator) with the acknowledgement and summary in the user's DM."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from bot.change_modal import SHORTCUT_CALLBACK_ID, VIEW_CALLBACK_ID, ChangeForm
from commands.grammar import parse
from storage.models import AuditEvent, Change
from tests.harness import ADMIN, STRANGER, Harness, ack_text

SUPERVISOR = "U_SUP"
VIEWER = "U_VIEWER"
TEAM_CHANNEL = "CVENTAS"


def _values(
    *,
    display: str | None = None,
    buttons: tuple[str, ...] = (),
    team: str | None = None,
    agents: str | None = None,
    duration: str = "none",
    reason: str | None = None,
) -> dict[str, Any]:
    """``view.state.values`` as Slack sends them for the modal's inputs."""

    def option(value: str | None) -> dict[str, Any] | None:
        return {"value": value, "text": {"type": "plain_text", "text": value}} if value else None

    return {
        "display": {"display": {"type": "radio_buttons", "selected_option": option(display)}},
        "buttons": {
            "buttons": {
                "type": "checkboxes",
                "selected_options": [option(button) for button in buttons],
            }
        },
        "team": {"team": {"type": "static_select", "selected_option": option(team)}},
        "agents": {"agents": {"type": "plain_text_input", "value": agents}},
        "duration": {"duration": {"type": "static_select", "selected_option": option(duration)}},
        "reason": {"reason": {"type": "plain_text_input", "value": reason}},
    }


async def _setup(agentbox: Harness) -> None:
    for text in (
        f"team create ventas 1001-1003 <#{TEAM_CHANNEL}>",
        f"grant <@{SUPERVISOR}> supervisor team:ventas",
        f"grant <@{VIEWER}> viewer team:ventas",
    ):
        assert ":no_entry:" not in ack_text(await agentbox.slash(text)), text


async def _open(agentbox: Harness, user: str = ADMIN) -> dict[str, Any]:
    response = await agentbox.shortcut(SHORTCUT_CALLBACK_ID, user=user)
    assert response.status_code == 200, response.text
    await agentbox.idle()
    return agentbox.slack.opened_views[-1]


async def _changes(agentbox: Harness) -> list[Change]:
    async with agentbox.services.database.sessions() as session:
        return list((await session.scalars(select(Change))).all())


def _errors(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["response_action"] == "errors"
    errors = body["errors"]
    assert isinstance(errors, dict)
    return errors


async def test_the_shortcut_opens_the_form_with_the_teams_the_user_can_see(
    agentbox: Harness,
) -> None:
    await _setup(agentbox)

    view = await _open(agentbox, SUPERVISOR)

    assert view["type"] == "modal" and view["callback_id"] == VIEW_CALLBACK_ID
    assert "submit" in view
    blocks = {block["block_id"]: block for block in view["blocks"]}
    assert list(blocks) == ["display", "buttons", "team", "agents", "duration", "reason"]
    assert [o["value"] for o in blocks["team"]["element"]["options"]] == ["ventas"]
    assert [o["value"] for o in blocks["buttons"]["element"]["options"]] == [
        "dial",
        "disposition",
        "hungup",
    ]
    (call,) = agentbox.slack.calls_to("views.open")
    assert call.payload["trigger_id"]


async def test_someone_who_may_not_change_buttons_gets_no_form(agentbox: Harness) -> None:
    await _setup(agentbox)

    for user, why in ((VIEWER, "viewer"), (STRANGER, "no role")):
        view = await _open(agentbox, user)
        assert "submit" not in view
        assert why in view["blocks"][0]["text"]["text"]


async def test_an_empty_form_names_every_missing_field_and_changes_nothing(
    agentbox: Harness,
) -> None:
    await _setup(agentbox)
    view = await _open(agentbox)

    errors = _errors(await agentbox.view_submission(view, _values()))

    assert set(errors) == {"display", "buttons", "agents"}
    assert "team or type agent ids" in errors["agents"]
    await agentbox.idle()
    assert await _changes(agentbox) == []
    assert agentbox.simulator.calls == []


async def test_agents_that_are_not_agents_are_refused_on_their_field(agentbox: Harness) -> None:
    await _setup(agentbox)
    view = await _open(agentbox)

    for typed in ("1001 --dry-run", "hide all 1001", "1001-99999"):
        errors = _errors(
            await agentbox.view_submission(
                view, _values(display="hide", buttons=("dial",), agents=typed)
            )
        )
        assert set(errors) == {"agents"}, (typed, errors)
        assert "`" not in errors["agents"]  # plain text: the modal shows no mrkdwn

    await agentbox.idle()
    assert await _changes(agentbox) == []
    assert agentbox.simulator.calls == []


async def test_a_team_the_user_cannot_see_is_refused_on_the_team_field(agentbox: Harness) -> None:
    await _setup(agentbox)
    view = await _open(agentbox)

    errors = _errors(
        await agentbox.view_submission(view, _values(display="hide", buttons=("dial",), team="x"))
    )

    assert "x" in errors["team"]
    assert await _changes(agentbox) == []


async def test_a_good_submission_runs_the_change_and_reports_in_the_dm(agentbox: Harness) -> None:
    await _setup(agentbox)
    view = await _open(agentbox)

    response = await agentbox.view_submission(
        view,
        _values(
            display="hide",
            buttons=("dial", "hungup"),
            team="ventas",
            agents="1005",
            reason='the "client" asked <now> & again',
        ),
    )

    assert response.status_code == 200 and response.text == ""  # the modal closes
    await agentbox.idle()
    for agent in ("1001", "1002", "1003", "1005"):
        for button in ("dial", "hungup"):
            assert agentbox.simulator.button_state(agent, button) == "hide"
    dm = agentbox.slack.messages_in(f"D_{ADMIN}")
    assert len(dm) == 2
    assert dm[0].text.startswith(":hourglass_flowing_sand: Hiding `dial`, `hungup`")
    assert "8 calls to wolkvox" in dm[0].text
    assert "8/8 done" in dm[1].text
    (change,) = await _changes(agentbox)
    assert change.slack_user_id == ADMIN and change.slack_channel_id is None
    assert change.text.startswith("hide dial hungup team:ventas 1005 --reason")
    async with agentbox.services.database.sessions() as session:
        audit = await session.scalar(select(AuditEvent).where(AuditEvent.change_id == change.id))
    assert audit is not None and audit.reason is not None
    assert 'reason given: the "client" asked <now> & again' in audit.reason
    # The trail line goes to the team's channel, as for the slash command.
    assert any("change #" in m.text for m in agentbox.slack.messages_in(TEAM_CHANNEL))


async def test_a_permission_refusal_is_shown_on_the_agents_field(agentbox: Harness) -> None:
    await _setup(agentbox)
    view = await _open(agentbox, SUPERVISOR)

    errors = _errors(
        await agentbox.view_submission(
            view, _values(display="hide", buttons=("dial",), agents="2001"), user=SUPERVISOR
        )
    )

    assert set(errors) == {"agents"}
    assert "2001" in errors["agents"] and "you supervise ventas" in errors["agents"]
    await agentbox.idle()
    assert await _changes(agentbox) == []
    assert agentbox.simulator.calls == []
    async with agentbox.services.database.sessions() as session:
        refused = (
            await session.scalars(
                select(AuditEvent).where(
                    AuditEvent.slack_user_id == SUPERVISOR, AuditEvent.decision == "refused"
                )
            )
        ).all()
    assert len(refused) == 1


async def test_a_duration_makes_a_timed_change(agentbox: Harness) -> None:
    await _setup(agentbox)
    view = await _open(agentbox)

    response = await agentbox.view_submission(
        view, _values(display="hide", buttons=("disposition",), agents="1001", duration="30m")
    )

    assert response.status_code == 200 and response.text == ""
    await agentbox.idle()
    (change,) = await _changes(agentbox)
    assert change.duration_seconds == 1800
    assert agentbox.simulator.button_state("1001", "disposition") == "hide"


def test_the_form_text_is_what_the_slash_command_would_take() -> None:
    form = ChangeForm(
        display="ocultar",
        buttons=["colgar, dial"],
        teams=["Ventas"],
        agents="1003, 1001-1002",
        duration="2h",
        reason="said \u00bbno\u00bb and \"stop\" 'now'",
    )

    text = form.command_text()

    assert isinstance(text, str)
    command = parse(text)
    assert command.__class__.__name__ == "ChangeCommand"
    assert text.startswith("hide hungup dial team:ventas 1001-1003 for 2h --reason ")
    assert getattr(command, "reason", None) == "said \u00bbno\u00bb and \"stop\" 'now'"


async def test_a_requesters_change_needs_a_reason_on_its_field_then_is_requested(
    agentbox: Harness,
) -> None:
    await _setup(agentbox)
    requester = "U_REQ"
    assert ":no_entry:" not in ack_text(
        await agentbox.slash(f"grant <@{requester}> requester team:ventas")
    )
    view = await _open(agentbox, requester)
    values = _values(display="hide", buttons=("dial",), team="ventas")

    errors = _errors(await agentbox.view_submission(view, values, user=requester))
    assert set(errors) == {"reason"}
    assert await _changes(agentbox) == []

    values = _values(display="hide", buttons=("dial",), team="ventas", reason="lunch break")
    response = await agentbox.view_submission(view, values, user=requester)
    assert response.status_code == 200 and response.text == ""
    await agentbox.idle()

    (change,) = await _changes(agentbox)
    assert change.status == "requested"
    assert agentbox.simulator.calls == []
    (told,) = agentbox.slack.messages_in(f"D_{requester}")
    assert f"request #{change.id}" in told.text and "waits for approval" in told.text
    # The request is posted for approvers in the team's channel, as for the slash command.
    assert any(f"#{change.id}" in m.text for m in agentbox.slack.messages_in(TEAM_CHANNEL))


async def test_a_partly_allowed_change_asks_in_the_dm_and_runs_nothing_yet(
    agentbox: Harness,
) -> None:
    await _setup(agentbox)
    view = await _open(agentbox, SUPERVISOR)

    response = await agentbox.view_submission(
        view, _values(display="hide", buttons=("dial",), agents="1003-1004"), user=SUPERVISOR
    )

    assert response.status_code == 200 and response.text == ""
    await agentbox.idle()
    (asked,) = agentbox.slack.messages_in(f"D_{SUPERVISOR}")
    assert "Run for 1 agents" in str(asked.current["blocks"])
    (change,) = await _changes(agentbox)
    assert change.status == "awaiting"
    assert agentbox.simulator.calls == []

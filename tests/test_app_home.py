"""App Home: published on ``app_home_opened`` (signed Events API deliveries over HTTP), with the
sections each role may see, once per event even when Slack retries it, and again after a change."""

from __future__ import annotations

from typing import Any

from bot.change_modal import VIEW_CALLBACK_ID
from bot.home import CHANGE_BUTTONS_ACTION
from tests.harness import ADMIN, STRANGER, Harness, ack_text

VIEWER = "U_VIEWER"
SUPERVISOR = "U_SUP"
TEAM_CHANNEL = "CVENTAS"


def _sections(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {block["block_id"]: block for block in view["blocks"] if "block_id" in block}


def _text(view: dict[str, Any], block_id: str) -> str:
    return str(_sections(view)[block_id]["text"]["text"])


async def _home_of(agentbox: Harness, user: str) -> dict[str, Any]:
    response = await agentbox.app_home_opened(user=user)
    assert response.status_code == 200, response.text
    await agentbox.idle()
    return agentbox.slack.home_views[user]


async def _setup(agentbox: Harness) -> None:
    for text in (
        f"team create ventas 1001-1003 <#{TEAM_CHANNEL}>",
        f"grant <@{VIEWER}> viewer team:ventas",
        f"grant <@{SUPERVISOR}> supervisor team:ventas",
        'hide dial 1001 --reason "a client complained"',
    ):
        assert ":no_entry:" not in ack_text(await agentbox.slash(text)), text
    await agentbox.idle()


async def test_an_admin_sees_roles_teams_the_change_button_approvals_hidden_and_recent(
    agentbox: Harness,
) -> None:
    await _setup(agentbox)

    view = await _home_of(agentbox, ADMIN)

    assert view["type"] == "home"
    sections = _sections(view)
    assert {"roles", "teams", "change", "approvals", "hidden", "recent"} <= set(sections)
    assert "admin (AGENTBOX_ADMINS)" in _text(view, "roles")
    assert "*ventas*: 3 agents (1001-1003)" in _text(view, "teams")
    assert f"<#{TEAM_CHANNEL}>" in _text(view, "teams")
    (button,) = sections["change"]["elements"]
    assert button["action_id"] == CHANGE_BUTTONS_ACTION
    hidden = _text(view, "hidden")
    assert "`dial`: 1 agent (1001)" in hidden
    recent = _text(view, "recent")
    assert "hide dial 1001" in recent and f"<@{ADMIN}>" in recent


async def test_a_viewer_sees_status_and_history_but_no_change_button_nor_approvals(
    agentbox: Harness,
) -> None:
    await _setup(agentbox)

    view = await _home_of(agentbox, VIEWER)

    sections = _sections(view)
    assert "change" not in sections and "approvals" not in sections
    assert "viewer of ventas" in _text(view, "roles")
    assert "you: viewer" in _text(view, "teams")
    assert "1001" in _text(view, "hidden")
    assert "hide dial 1001" in _text(view, "recent")


async def test_a_supervisor_sees_the_approvals_section_and_their_teams(
    agentbox: Harness,
) -> None:
    await _setup(agentbox)

    view = await _home_of(agentbox, SUPERVISOR)

    sections = _sections(view)
    assert {"change", "approvals"} <= set(sections)
    assert "you: supervisor" in _text(view, "teams")


async def test_someone_without_a_role_is_told_whom_to_ask_and_shown_nothing_else(
    agentbox: Harness,
) -> None:
    await _setup(agentbox)

    view = await _home_of(agentbox, STRANGER)

    assert set(_sections(view)) == {"roles"}
    assert "no role" in _text(view, "roles") and f"<@{ADMIN}>" in _text(view, "roles")


async def test_a_retried_event_publishes_the_home_once(agentbox: Harness) -> None:
    first = await agentbox.app_home_opened(event_id="Ev0HOME1")
    again = await agentbox.app_home_opened(event_id="Ev0HOME1", retry=1)
    await agentbox.idle()

    assert first.status_code == again.status_code == 200
    assert len(agentbox.slack.calls_to("views.publish")) == 1
    other = await agentbox.app_home_opened(event_id="Ev0HOME2")
    await agentbox.idle()
    assert other.status_code == 200
    assert len(agentbox.slack.calls_to("views.publish")) == 2


async def test_the_messages_tab_publishes_nothing(agentbox: Harness) -> None:
    event = {"type": "app_home_opened", "user": ADMIN, "channel": "D1", "tab": "messages"}
    assert (await agentbox.event(event)).status_code == 200
    await agentbox.idle()

    assert agentbox.slack.calls_to("views.publish") == []


async def test_the_home_is_published_again_when_the_users_change_is_done(
    agentbox: Harness,
) -> None:
    before = await _home_of(agentbox, ADMIN)
    assert "1002" not in _text(before, "hidden")

    await agentbox.slash("hide hungup 1002")
    await agentbox.idle()

    after = agentbox.slack.home_views[ADMIN]
    assert len(agentbox.slack.calls_to("views.publish")) == 2
    assert "`hungup`: 1 agent (1002)" in _text(after, "hidden")
    # Published once the change is finished, not while its last call was being recorded.
    assert _text(after, "recent").endswith("`hide hungup 1002` — 1/1 done")


async def test_a_home_never_opened_is_not_published_after_a_change(agentbox: Harness) -> None:
    await agentbox.slash("hide hungup 1002")
    await agentbox.idle()

    assert agentbox.simulator.button_state("1002", "hungup") == "hide"
    assert agentbox.slack.calls_to("views.publish") == []


async def test_the_homes_button_opens_the_change_modal(agentbox: Harness) -> None:
    response = await agentbox.block_action(CHANGE_BUTTONS_ACTION, "")
    await agentbox.idle()

    assert response.status_code == 200
    (opened,) = agentbox.slack.opened_views
    assert opened["callback_id"] == VIEW_CALLBACK_ID


async def test_a_supervisor_sees_the_requests_they_may_approve_and_approves_from_home(
    agentbox: Harness,
) -> None:
    await _setup(agentbox)
    requester = "U_REQ"
    await agentbox.slash(f"grant <@{requester}> requester team:ventas")
    ack = ack_text(await agentbox.slash('hide dial 1002 --reason "cliente"', user=requester))
    assert "approval" in ack

    view = await _home_of(agentbox, SUPERVISOR)
    listed = [b for b in view["blocks"] if b.get("block_id", "").startswith("approval-actions-")]
    assert len(listed) == 1
    approve = listed[0]["elements"][0]
    assert f"<@{requester}>" in str(view) and "hide dial 1002" in str(view)

    await agentbox.block_action(approve["action_id"], approve["value"], user=SUPERVISOR)
    await agentbox.idle()

    assert agentbox.simulator.button_state("1002", "dial") == "hide"
    after = await _home_of(agentbox, SUPERVISOR)
    assert not [b for b in after["blocks"] if b.get("block_id", "").startswith("approval-")]
    assert "Nothing right now" in _text(after, "approvals")

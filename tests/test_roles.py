"""Roles and teams: who may change which agent, end to end through signed Slack requests.

Every scenario drives the running app over HTTP (slash commands and ``block_actions`` clicks),
on SQLite and PostgreSQL, and checks what wolkvox (the simulator) saw and what was audited.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from bot.app import CANCEL_ACTION, CONFIRM_ACTION
from bot.fake_slack import FakeSlack
from storage.audit import AuditEntry
from storage.models import Call, Change, Decision, Operation
from storage.secrets import generate_key
from tests.harness import (
    ADMIN,
    CHANNEL,
    STRANGER,
    TOKEN,
    Harness,
    ack_text,
    admin_says,
    audit_events,
    rows_of,
    start_harness,
)
from wolkvox.simulator import Simulator

MARIA = "UMARIA"
PEDRO = "UPEDRO"
VIEWER = "UVIEWER"
REQUESTER = "UREQUESTER"


async def _teams(harness: Harness) -> None:
    await admin_says(harness, "team create ventas 1001-1010 <#CVENTAS>")
    await admin_says(harness, "team create cobranza 2001-2010 <#CCOBRANZA>")


async def _grant(harness: Harness, text: str) -> int:
    """An admin grants; returns the new grant's id (from the reply's ``[grant #N]``)."""
    reply = await admin_says(harness, f"grant {text}")
    found = re.search(r"\[grant #(\d+)\]", reply)
    assert found is not None, reply
    return int(found.group(1))


async def _supervisor_of_ventas(harness: Harness, user: str = MARIA) -> int:
    await _teams(harness)
    return await _grant(harness, f"<@{user}> supervisor team:ventas")


def _change_id_of(response: Any) -> str:
    """The change id the confirm button of a partly allowed change carries."""
    blocks = response.json()["blocks"]
    (actions,) = [block for block in blocks if block["type"] == "actions"]
    confirm, cancel = actions["elements"]
    assert confirm["action_id"] == CONFIRM_ACTION and cancel["action_id"] == CANCEL_ACTION
    assert confirm["value"] == cancel["value"]
    return str(confirm["value"])


def _agents_called(harness: Harness) -> list[str]:
    return [call.agent_id for call in harness.simulator.calls]


# --------------------------------------------------------------------------- supervisors


async def test_a_supervisor_changes_its_teams_agents_and_the_audit_names_the_grant(
    agentbox: Harness,
) -> None:
    grant_id = await _supervisor_of_ventas(agentbox)

    ack = ack_text(await agentbox.slash("hide dial 1001-1003", user=MARIA))
    await agentbox.idle()

    assert "1001" in ack and ":no_entry:" not in ack
    assert sorted(_agents_called(agentbox)) == ["1001", "1002", "1003"]
    for agent in ("1001", "1002", "1003"):
        assert agentbox.simulator.button_state(agent, "dial") == "hide"
    assert "3/3 done" in agentbox.last_message(CHANNEL).text
    (change,) = await rows_of(agentbox, Change)
    (audit,) = [row for row in await audit_events(agentbox) if row.action == "change"]
    assert (audit.slack_user_id, audit.decision, audit.change_id) == (MARIA, "allowed", change.id)
    assert audit.reason == f"allowed by supervisor of ventas [grant #{grant_id}]"
    assert audit.at is not None


async def test_a_supervisor_is_refused_another_teams_agent_saying_why(agentbox: Harness) -> None:
    await _supervisor_of_ventas(agentbox)

    reply = ack_text(await agentbox.slash("hide dial 2001", user=MARIA))
    await agentbox.idle()

    assert "agent 2001" in reply and "in team cobranza; you supervise ventas" in reply
    assert agentbox.simulator.calls == []
    assert await rows_of(agentbox, Change) == []
    refusal = (await audit_events(agentbox))[-1]
    assert (refusal.slack_user_id, refusal.action, refusal.decision) == (MARIA, "change", "refused")
    assert refusal.reason is not None and "you supervise ventas" in refusal.reason


async def test_a_grant_for_some_buttons_refuses_the_others_naming_them(agentbox: Harness) -> None:
    await _teams(agentbox)
    await _grant(agentbox, f"<@{MARIA}> supervisor team:ventas buttons:dial")

    refused = ack_text(await agentbox.slash("hide hungup 1001", user=MARIA))
    await agentbox.idle()
    assert "your grant covers only `dial`, not `hungup`" in refused
    assert agentbox.simulator.calls == []

    allowed = ack_text(await agentbox.slash("hide dial 1001", user=MARIA))
    await agentbox.idle()
    assert ":no_entry:" not in allowed
    assert agentbox.simulator.button_state("1001", "dial") == "hide"
    assert agentbox.simulator.button_state("1001", "hungup") is None


async def test_a_team_target_reaches_every_agent_of_the_team(agentbox: Harness) -> None:
    await _supervisor_of_ventas(agentbox)

    ack = ack_text(await agentbox.slash("hide dial team:ventas", user=MARIA))
    await agentbox.idle()

    assert "10 calls" in ack
    assert sorted(_agents_called(agentbox)) == [str(n) for n in range(1001, 1011)]
    assert "10/10 done" in agentbox.last_message(CHANNEL).text


# --------------------------------------------------------------------------- partly allowed


async def test_a_partly_allowed_change_runs_only_the_allowed_part_once_its_requester_confirms(
    agentbox: Harness,
) -> None:
    await _supervisor_of_ventas(agentbox)

    response = await agentbox.slash("hide dial 1001 2001", user=MARIA)
    offer = ack_text(response)
    change_id = _change_id_of(response)
    await agentbox.idle()
    assert "Nothing has run" in offer and "agent 2001" in offer and "cobranza" in offer
    assert agentbox.simulator.calls == [], "nothing runs before the confirmation"

    # Someone else's click on the button runs nothing.
    stranger = agentbox.slack.new_response_url()
    click = await agentbox.block_action(
        CONFIRM_ACTION, change_id, user=PEDRO, response_url=stranger
    )
    assert click.status_code == 200
    await agentbox.idle()
    assert agentbox.simulator.calls == []
    assert "not waiting for your confirmation" in agentbox.slack.responses[-1]["text"]

    # The requester's click runs the allowed part, and only it.
    await agentbox.block_action(CONFIRM_ACTION, change_id, user=MARIA)
    await agentbox.idle()
    assert _agents_called(agentbox) == ["1001"]
    assert agentbox.simulator.button_state("1001", "dial") == "hide"
    assert agentbox.simulator.button_state("2001", "dial") is None

    # A double click runs nothing more.
    again = await agentbox.block_action(CONFIRM_ACTION, change_id, user=MARIA)
    assert again.status_code == 200
    await agentbox.idle()
    assert _agents_called(agentbox) == ["1001"]
    assert "not waiting for your confirmation" in agentbox.slack.responses[-1]["text"]
    (change,) = await rows_of(agentbox, Change)
    assert change.status == "done"


async def test_cancelling_a_partly_allowed_change_runs_nothing(agentbox: Harness) -> None:
    await _supervisor_of_ventas(agentbox)
    response = await agentbox.slash("hide dial 1002 2002", user=MARIA)
    change_id = _change_id_of(response)

    await agentbox.block_action(CANCEL_ACTION, change_id, user=MARIA)
    assert "Cancelled" in agentbox.slack.responses[-1]["text"]
    # A confirm arriving after the cancel (a second tab, a slow click) runs nothing either.
    await agentbox.block_action(CONFIRM_ACTION, change_id, user=MARIA)
    await agentbox.idle()

    assert agentbox.simulator.calls == []
    (change,) = await rows_of(agentbox, Change)
    assert change.status == "cancelled"
    assert {call.status for call in await rows_of(agentbox, Call)} == {"cancelled"}


async def test_a_refused_confirmation_click_is_audited(agentbox: Harness) -> None:
    await _supervisor_of_ventas(agentbox)
    change_id = _change_id_of(await agentbox.slash("hide dial 1001 2001", user=MARIA))
    before = len(await audit_events(agentbox))

    await agentbox.block_action(CONFIRM_ACTION, change_id, user=PEDRO)

    refusal = (await audit_events(agentbox))[before:]
    assert [(row.slack_user_id, row.decision) for row in refusal] == [(PEDRO, "refused")]


async def test_a_confirmation_after_the_grant_was_revoked_runs_nothing(agentbox: Harness) -> None:
    await _supervisor_of_ventas(agentbox)
    change_id = _change_id_of(await agentbox.slash("hide dial 1001 2001", user=MARIA))
    await admin_says(agentbox, f"revoke <@{MARIA}> supervisor")

    await agentbox.block_action(CONFIRM_ACTION, change_id, user=MARIA)
    await agentbox.idle()

    assert agentbox.simulator.calls == []


# --------------------------------------------------------------------------- who holds a role


async def test_a_user_group_grant_covers_its_members_only(
    database_url: str, simulator: Simulator
) -> None:
    async with (
        FakeSlack() as slack,
        start_harness(database_url=database_url, simulator=simulator, slack=slack) as agentbox,
    ):
        slack.usergroups["SSUPS"] = [MARIA]
        await _teams(agentbox)
        await _grant(agentbox, "<!subteam^SSUPS> supervisor team:ventas")

        member = ack_text(await agentbox.slash("hide dial 1001", user=MARIA))
        await agentbox.idle()
        outsider = ack_text(await agentbox.slash("hide dial 1002", user=PEDRO))
        await agentbox.idle()

        assert ":no_entry:" not in member, member
        assert ":no_entry:" in outsider and "no role" in outsider
        assert _agents_called(agentbox) == ["1001"]
        (audit,) = [row for row in await audit_events(agentbox) if row.change_id is not None]
        assert audit.reason is not None and "via <!subteam^SSUPS>" in audit.reason


async def test_a_viewer_may_look_but_not_change(agentbox: Harness) -> None:
    await _teams(agentbox)
    await _grant(agentbox, f"<@{VIEWER}> viewer team:ventas")

    whoami = ack_text(await agentbox.slash("whoami", user=VIEWER))
    teams = ack_text(await agentbox.slash("team list", user=VIEWER))
    change = ack_text(await agentbox.slash("hide dial 1001", user=VIEWER))
    await agentbox.idle()

    assert "viewer of ventas" in whoami
    assert "*ventas*" in teams and "*cobranza*" in teams
    assert ":no_entry:" in change and "viewer" in change
    assert agentbox.simulator.calls == []


async def test_a_requesters_change_is_refused_saying_approval_is_needed(agentbox: Harness) -> None:
    await _teams(agentbox)
    await _grant(agentbox, f"<@{REQUESTER}> requester team:ventas")

    reply = ack_text(await agentbox.slash("hide dial 1001", user=REQUESTER))
    await agentbox.idle()

    assert ":no_entry:" in reply and "approval" in reply
    assert agentbox.simulator.calls == []
    assert (await audit_events(agentbox))[-1].decision == "refused"


async def test_a_team_accepts_changes_only_in_its_channels(agentbox: Harness) -> None:
    await admin_says(agentbox, "team create vip 3001-3002 <#CVIP> channels:<#CVIPOPS>")

    elsewhere = ack_text(await agentbox.slash("hide dial 3001", channel="C_OPS"))
    await agentbox.idle()
    assert ":no_entry:" in elsewhere and "<#CVIPOPS>" in elsewhere
    assert agentbox.simulator.calls == []

    there = ack_text(await agentbox.slash("hide dial 3001", channel="CVIPOPS"))
    await agentbox.idle()
    assert ":no_entry:" not in there
    assert agentbox.simulator.button_state("3001", "dial") == "hide"


# --------------------------------------------------------------------------- managing roles


async def test_only_admins_manage_grants_and_teams_and_refusals_are_audited(
    agentbox: Harness,
) -> None:
    await _supervisor_of_ventas(agentbox)

    grant = ack_text(await agentbox.slash(f"grant <@{PEDRO}> admin", user=MARIA))
    team = ack_text(await agentbox.slash("team create norte 4001-4002 <#CNORTE>", user=MARIA))

    for reply in (grant, team):
        assert ":no_entry:" in reply and "Only agentbox admins" in reply
    whoami = ack_text(await agentbox.slash("whoami", user=PEDRO))
    assert "no role" in whoami
    assert "norte" not in ack_text(await agentbox.slash("team list", user=ADMIN))
    refusals = [row for row in await audit_events(agentbox) if row.decision == "refused"]
    assert [(row.slack_user_id, row.text) for row in refusals] == [
        (MARIA, f"grant <@{PEDRO}> admin"),
        (MARIA, "team create norte 4001-4002 <#CNORTE>"),
    ]
    assert all(row.at is not None for row in refusals)


async def test_grants_revokes_and_team_changes_are_audited_with_who_and_when(
    agentbox: Harness,
) -> None:
    await _teams(agentbox)
    await _grant(agentbox, f"<@{MARIA}> supervisor team:ventas")
    await admin_says(agentbox, "team add ventas 1011")
    await admin_says(agentbox, "team remove ventas 1011")
    await admin_says(agentbox, f"revoke <@{MARIA}> supervisor")

    rows = await audit_events(agentbox)

    assert [row.action for row in rows] == [
        "team.create",
        "team.create",
        "grant",
        "team.add",
        "team.remove",
        "revoke",
    ]
    assert all(row.slack_user_id == ADMIN and row.at is not None for row in rows)
    assert all(row.decision == "allowed" for row in rows)
    assert "no role" in ack_text(await agentbox.slash("whoami", user=MARIA))


async def test_the_last_admin_cannot_be_revoked(database_url: str, simulator: Simulator) -> None:
    boss, deputy = "UBOSS", "UDEPUTY"
    async with start_harness(
        database_url=database_url, simulator=simulator, admins=frozenset()
    ) as agentbox:
        await agentbox.services.directory.add_grant(
            subject_type="user",
            subject_id=boss,
            role="admin",
            teams=None,
            buttons=None,
            created_by="test",
            audit=AuditEntry(
                user_id="test", action="grant", text="seed", decision=Decision.ALLOWED
            ),
        )

        refused = ack_text(await agentbox.slash(f"revoke <@{boss}> admin", user=boss))
        assert ":no_entry:" in refused and "without an admin" in refused
        assert "admin" in ack_text(await agentbox.slash("whoami", user=boss))

        await _grant_as(agentbox, boss, f"<@{deputy}> admin")
        revoked = ack_text(await agentbox.slash(f"revoke <@{boss}> admin", user=boss))
        assert "Revoked" in revoked
        assert "no role" in ack_text(await agentbox.slash("whoami", user=boss))
        assert "admin" in ack_text(await agentbox.slash("whoami", user=deputy))


async def _grant_as(harness: Harness, user: str, text: str) -> None:
    reply = ack_text(await harness.slash(f"grant {text}", user=user))
    assert reply.startswith("Granted"), reply


async def test_an_agentbox_admins_admin_cannot_be_revoked_by_command(
    database_url: str, simulator: Simulator
) -> None:
    # A mention must look like a Slack id (no underscore), so this operator admin is "UOPERATOR".
    operator = "UOPERATOR"
    async with start_harness(
        database_url=database_url, simulator=simulator, admins=frozenset({ADMIN, operator})
    ) as agentbox:
        await _grant(agentbox, f"<@{MARIA}> admin")

        reply = ack_text(await agentbox.slash(f"revoke <@{operator}> admin", user=MARIA))

        assert ":no_entry:" in reply and "AGENTBOX_ADMINS" in reply
        assert "AGENTBOX_ADMINS" in ack_text(await agentbox.slash("whoami", user=operator))
        assert (await audit_events(agentbox))[-1].decision == "refused"


async def test_help_shows_only_what_the_caller_may_run(agentbox: Harness) -> None:
    stranger = ack_text(await agentbox.slash("help", user=STRANGER))
    admin = ack_text(await agentbox.slash("help", user=ADMIN))

    assert "hide" in stranger
    assert "grant" not in stranger and "team create" not in stranger
    assert "grant" in admin and "team create" in admin


# --------------------------------------------------------------------------- operations


async def test_two_operations_each_use_their_own_token_one_call_at_a_time(
    database_url: str, simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    second_token = "wv-token-bogota-5e2d-never-logged"
    simulator.config.latency = 0.01
    async with start_harness(
        database_url=database_url, simulator=simulator, encryption_keys=(generate_key(),)
    ) as agentbox:
        await agentbox.services.directory.put_operation(
            "bogota",
            "0100",
            second_token,
            concurrency=1,
            audit=AuditEntry(
                user_id="operator",
                action="operation.put",
                text="operation add --name bogota --server 0100",
                decision=Decision.ALLOWED,
            ),
        )
        await agentbox.services.operations.refresh()
        await admin_says(agentbox, "team create norte 5001-5005 <#CNORTE> operation:bogota")

        ack = ack_text(await agentbox.slash("hide dial 1001-1005 5001-5005"))
        await agentbox.idle()

        assert ":no_entry:" not in ack
        assert sorted(c.agent_id for c in simulator.calls_for(TOKEN)) == [
            str(n) for n in range(1001, 1006)
        ]
        assert sorted(c.agent_id for c in simulator.calls_for(second_token)) == [
            str(n) for n in range(5001, 5006)
        ]
        assert simulator.peak_in_flight(TOKEN) == 1
        assert simulator.peak_in_flight(second_token) == 1
        assert "10/10 done" in agentbox.last_message(CHANNEL).text
        assert {call.status for call in await rows_of(agentbox, Call)} == {"succeeded"}
        (stored,) = await rows_of(agentbox, Operation)
        assert second_token not in stored.token_ciphertext
        for row in await audit_events(agentbox):
            assert second_token not in row.text and second_token not in (row.reason or "")

    assert len(caplog.records) > 10, "debug logging was captured"
    assert second_token not in caplog.text
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        path = Path(url.database)
        files = [f for f in path.parent.iterdir() if f.name.startswith(path.name)]
        assert files
        for file in files:
            assert second_token.encode() not in file.read_bytes(), file.name


async def test_two_admins_revoking_each_other_at_once_leave_one_admin(
    database_url: str, simulator: Simulator
) -> None:
    async with start_harness(
        database_url=database_url, simulator=simulator, admins=frozenset()
    ) as agentbox:
        for admin in ("UANA", "UBEA"):
            await agentbox.services.directory.add_grant(
                subject_type="user", subject_id=admin, role="admin", teams=None, buttons=None,
                created_by="test",
                audit=AuditEntry(user_id="test", action="grant", text="seed",
                                 decision=Decision.ALLOWED),
            )  # fmt: skip

        answers = await asyncio.gather(
            agentbox.slash("revoke <@UBEA> admin", user="UANA"),
            agentbox.slash("revoke <@UANA> admin", user="UBEA"),
        )

        texts = [ack_text(answer) for answer in answers]
        assert sum("Revoked" in text for text in texts) == 1
        assert sum("without an admin" in text for text in texts) == 1
        admins = [g for g in await agentbox.services.directory.grants() if g.role == "admin"]
        assert len(admins) == 1


async def test_each_executed_change_leaves_one_line_in_each_team_channel(agentbox: Harness) -> None:
    await _supervisor_of_ventas(agentbox)
    await _grant(agentbox, f"<@{MARIA}> supervisor team:cobranza")

    await agentbox.slash("hide dial 1001-1003 2001", user=MARIA)
    await agentbox.idle()

    for channel in ("CVENTAS", "CCOBRANZA"):
        (line,) = agentbox.slack.messages_in(channel)
        assert f"<@{MARIA}> hid `dial` for 4 agents (1001-1003, 2001)" in line.text
        assert "4/4 done" in line.text
    assert len(agentbox.slack.messages_in("C_OPS")) == 1, "the progress message stays where asked"

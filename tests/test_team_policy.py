"""Per-team settings from Slack (``team set``): the approval policy, the approvals channel, the
request TTL and the trail switch; through signed slash commands, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.settings import Settings
from storage.models import Change
from tests.harness import (
    ADMIN,
    Harness,
    MovableClock,
    ack_text,
    admin_says,
    audit_events,
    start_harness,
)
from wolkvox.simulator import Simulator

MARIA = "UMARIA"
REQUESTER = "UREQUESTER"
REASON = '--reason "cliente en espera"'


@pytest.fixture
async def box(
    database_url: str, simulator: Simulator, clock: MovableClock
) -> AsyncIterator[Harness]:
    async with start_harness(database_url=database_url, simulator=simulator, clock=clock) as h:
        await _teams(h)
        yield h


async def _teams(harness: Harness) -> None:
    await admin_says(harness, "team create ventas 1001-1010 <#CVENTAS> approvals:<#CSUP>")
    await admin_says(harness, f"grant <@{MARIA}> supervisor team:ventas")
    await admin_says(harness, f"grant <@{REQUESTER}> requester team:ventas")


async def _changes(harness: Harness) -> list[Change]:
    async with harness.services.database.sessions() as session:
        return list((await session.scalars(select(Change).order_by(Change.id))).all())


async def test_each_setting_is_stored_shown_and_audited(box: Harness) -> None:
    settings = [
        "approvals-channel <#CSUP2|sup2>",
        "self-approval on",
        "approval-buttons hungup,dial",
        "approval-over 20",
        "two-approvers hungup",
        "approval-ttl 1h 30m",
        "trail off",
    ]
    for setting in settings:
        reply = await admin_says(box, f"team set ventas {setting}")
        assert reply.startswith("Set.")

    shown = await admin_says(box, "team show ventas")

    assert "approvals in <#CSUP2>" in shown
    assert "changes that need approval: `dial`, `hungup`, more than 20 of its agents" in shown
    assert "two approvers for changes to `hungup`" in shown
    assert "requests wait 90 min" in shown
    assert "self-approval on" in shown and "trail off" in shown
    team = await box.services.directory.team("ventas")
    assert team is not None and team.approvals_channel_id == "CSUP2"
    policy = team.policy
    assert (policy.trail_enabled, policy.self_approval) == (False, True)
    assert policy.approval_buttons == ("dial", "hungup")
    assert (policy.approval_over_agents, policy.approval_ttl_minutes) == (20, 90)
    assert policy.two_approvers_buttons == ("hungup",)
    audited = [row for row in await audit_events(box) if row.action == "team.set"]
    assert [row.text for row in audited] == [f"team set ventas {s}" for s in settings]
    assert {(row.slack_user_id, row.decision) for row in audited} == {(ADMIN, "allowed")}


async def test_settings_go_back_to_their_defaults(box: Harness) -> None:
    for setting in ("approval-buttons hungup", "approval-over 5", "approval-ttl 2h", "trail off"):
        await admin_says(box, f"team set ventas {setting}")
    for setting in ("approval-buttons none", "approval-over off", "approval-ttl default"):
        await admin_says(box, f"team set ventas {setting}")
    await admin_says(box, "team set ventas approvals-channel none")
    await admin_says(box, "team set ventas trail on")

    team = await box.services.directory.team("ventas")

    assert team is not None and team.approvals_channel_id is None
    assert team.policy == type(team.policy)()


async def test_only_admins_change_settings_and_bad_ones_change_nothing(box: Harness) -> None:
    before = await box.services.directory.team("ventas")

    by_supervisor = ack_text(await box.slash("team set ventas trail off", user=MARIA))
    no_team = ack_text(await box.slash("team set nadie trail off"))
    bad_ttl = ack_text(await box.slash("team set ventas approval-ttl 45"))
    bad_button = ack_text(await box.slash("team set ventas two-approvers colgarr"))

    assert ":no_entry:" in by_supervisor and "Only agentbox admins" in by_supervisor
    assert ":no_entry:" in no_team and "no team named `nadie`" in no_team
    assert "whole minutes or hours" in bad_ttl and "`45`" in bad_ttl
    assert "not a button" in bad_button and "did you mean `colgar`" in bad_button
    assert await box.services.directory.team("ventas") == before
    refused = [
        (r.slack_user_id, r.decision) for r in await audit_events(box) if r.decision != "allowed"
    ]
    assert refused == [
        (MARIA, "refused"),
        (ADMIN, "refused"),
        (ADMIN, "invalid"),
        (ADMIN, "invalid"),
    ]


async def test_two_admins_setting_two_keys_at_once_keep_both(
    database_url: str, simulator: Simulator
) -> None:
    async with start_harness(
        database_url=database_url, simulator=simulator, admins=frozenset({ADMIN, "UADMIN2"})
    ) as box:
        await _teams(box)

        replies = await asyncio.gather(
            box.slash("team set ventas approval-over 7", user=ADMIN),
            box.slash("team set ventas self-approval on", user="UADMIN2"),
        )

        assert all(ack_text(reply).startswith("Set.") for reply in replies)
        team = await box.services.directory.team("ventas")
        assert team is not None
        assert (team.policy.approval_over_agents, team.policy.self_approval) == (7, True)


async def test_the_trail_switch_turns_the_teams_line_off_and_on(box: Harness) -> None:
    await admin_says(box, "team set ventas trail off")
    await box.slash("hide dial 1001", user=MARIA)
    await box.idle()
    assert box.slack.messages_in("CVENTAS") == []
    assert box.simulator.button_state("1001", "dial") == "hide"

    await admin_says(box, "team set ventas trail on")
    await box.slash("show dial 1001", user=MARIA)
    await box.idle()

    (line,) = box.slack.messages_in("CVENTAS")
    assert f"<@{MARIA}> showed `dial` for agent 1001" in line.text


async def test_without_an_approvals_channel_requests_go_to_the_teams_channel(
    box: Harness,
) -> None:
    await admin_says(box, "team set ventas approvals-channel none")

    ack = ack_text(await box.slash(f"hide dial 1002 {REASON}", user=REQUESTER))
    await box.idle()

    assert "<#CVENTAS>" in ack
    (request,) = box.slack.messages_in("CVENTAS")
    assert "Approval request" in request.text
    assert box.slack.messages_in("CSUP") == []


async def test_the_teams_ttl_decides_when_its_requests_expire(
    box: Harness, clock: MovableClock
) -> None:
    await admin_says(box, "team set ventas approval-ttl 45m")
    await box.slash(f"hide dial 1003 {REASON}", user=REQUESTER)
    await box.idle()

    clock.advance(timedelta(minutes=31))
    assert await box.services.sweep_requests() == 0
    clock.advance(timedelta(minutes=15))
    assert await box.services.sweep_requests() == 1

    (change,) = await _changes(box)
    assert change.status == "expired"


async def test_the_default_ttl_comes_from_the_environment(
    database_url: str, simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTBOX_APPROVAL_TTL_MINUTES", "10")
    assert Settings().agentbox_approval_ttl_minutes == 10
    clock = MovableClock()
    async with start_harness(database_url=database_url, simulator=simulator, clock=clock) as box:
        await _teams(box)
        await box.slash(f"hide dial 1004 {REASON}", user=REQUESTER)
        await box.idle()

        clock.advance(timedelta(minutes=9))
        assert await box.services.sweep_requests() == 0
        clock.advance(timedelta(minutes=2))
        assert await box.services.sweep_requests() == 1


async def test_help_shows_team_settings_to_admins_only(box: Harness) -> None:
    admin = ack_text(await box.slash("help"))
    supervisor = ack_text(await box.slash("help", user=MARIA))

    assert "team set ventas" in admin and "approval-ttl 45m" in admin
    assert "team set" not in supervisor and "approval:" in supervisor

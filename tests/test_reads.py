"""--dry-run calls nothing; status and history read back what agentbox did."""

from __future__ import annotations

from sqlalchemy import select

from storage.models import Change
from tests.harness import ADMIN, STRANGER, Harness, ack_text


async def test_dry_run_lists_the_calls_and_calls_nothing(agentbox: Harness) -> None:
    text = ack_text(await agentbox.slash("hide dial hungup 1001-1003 --dry-run"))
    await agentbox.idle()

    assert "Dry run" in text and "6 calls" in text
    assert "operation `default`, `dial`: 3 agents (1001-1003)" in text
    assert "operation `default`, `hungup`: 3 agents (1001-1003)" in text
    assert agentbox.simulator.calls == []
    async with agentbox.services.database.sessions() as session:
        assert (await session.scalars(select(Change))).all() == []


async def test_dry_run_says_what_would_be_refused(agentbox: Harness) -> None:
    await agentbox.slash("team create ventas 1001-1005 <#CVENTAS>")
    await agentbox.slash("grant <@UMARIA> supervisor team:ventas")

    text = ack_text(await agentbox.slash("hide dial 1001 2001 --dry-run", user="UMARIA"))

    assert "1 call" in text and "2001" in text and "you supervise ventas" in text
    assert agentbox.simulator.calls == []


async def test_status_shows_who_set_each_button(agentbox: Harness) -> None:
    await agentbox.slash("hide dial 1001")
    await agentbox.idle()
    await agentbox.slash("show dial 1001")
    await agentbox.slash("hide hungup 1002")
    await agentbox.idle()

    text = ack_text(await agentbox.slash("status 1001-1003"))

    assert f"1001: `dial` shown by <@{ADMIN}>" in text
    assert f"1002: `hungup` hidden by <@{ADMIN}>" in text
    assert "1003: nothing set by agentbox yet" in text
    hidden = ack_text(await agentbox.slash("status hidden"))
    assert "`hungup`: 1 agent (1002)" in hidden and "`dial`" not in hidden


async def test_history_lists_recent_changes_newest_first(agentbox: Harness) -> None:
    await agentbox.slash("hide dial 1001")
    await agentbox.idle()
    await agentbox.slash("hide hungup 1002")
    await agentbox.idle()

    text = ack_text(await agentbox.slash("history"))
    assert text.index("hide hungup 1002") < text.index("hide dial 1001")
    only = ack_text(await agentbox.slash("history 1001"))
    assert "hide dial 1001" in only and "1002" not in only
    assert "1/1 done" in only


async def test_reads_need_a_role(agentbox: Harness) -> None:
    assert "no role" in ack_text(await agentbox.slash("status 1001", user=STRANGER))
    assert "no role" in ack_text(await agentbox.slash("history", user=STRANGER))


async def test_undo_reverts_the_callers_last_change(agentbox: Harness) -> None:
    await agentbox.slash("hide dial hungup 1001-1002")
    await agentbox.idle()
    assert agentbox.simulator.button_state("1002", "hungup") == "hide"

    text = ack_text(await agentbox.slash("undo"))
    await agentbox.idle()

    assert "Showing" in text
    for agent in ("1001", "1002"):
        for button in ("dial", "hungup"):
            assert agentbox.simulator.button_state(agent, button) == "show"
    assert "4/4 done" in agentbox.last_message().text


async def test_undo_with_nothing_to_undo_says_so(agentbox: Harness) -> None:
    assert "no finished change to undo" in ack_text(await agentbox.slash("deshacer"))
    assert agentbox.simulator.calls == []


async def test_undo_checks_the_permissions_of_now(agentbox: Harness) -> None:
    await agentbox.slash("team create ventas 1001-1005 <#CVENTAS>")
    await agentbox.slash("grant <@UMARIA> supervisor team:ventas")
    await agentbox.slash("hide dial 1001", user="UMARIA")
    await agentbox.idle()
    await agentbox.slash("revoke <@UMARIA> supervisor")
    sent = len(agentbox.simulator.calls)

    text = ack_text(await agentbox.slash("undo", user="UMARIA"))
    await agentbox.idle()

    assert "no role" in text or "no longer" in text
    assert len(agentbox.simulator.calls) == sent

"""The Workflow Builder step "Set agent buttons": signed ``function_executed`` events over HTTP;
it runs as the workflow's user (their permissions), takes the slash command's queue to wolkvox (the
simulator), and completes with each agent's result, or fails with the reason."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.workflow_step import FUNCTION_CALLBACK_ID, OUTPUTS
from storage.models import Change
from tests.harness import ADMIN, STRANGER, Harness, ack_text, start_harness
from wolkvox.simulator import Simulator

SUPERVISOR = "U_SUP"
TEAM_CHANNEL = "CVENTAS"
WORKFLOW_CHANNEL = "C_WORKFLOW"


def _inputs(user: str = ADMIN, **fields: str) -> dict[str, Any]:
    return {"user_context": {"id": user, "secret": "c2VjcmV0"}, **fields}


async def _run(agentbox: Harness, inputs: dict[str, Any], execution: str) -> tuple[str, Any]:
    response = await agentbox.function_executed(
        FUNCTION_CALLBACK_ID, inputs, execution_id=execution
    )
    assert response.status_code == 200, response.text
    await agentbox.idle()
    return agentbox.slack.function_results[execution]


async def _changes(agentbox: Harness) -> list[Change]:
    async with agentbox.services.database.sessions() as session:
        return list((await session.scalars(select(Change))).all())


async def test_the_step_completes_with_each_agents_result(agentbox: Harness) -> None:
    assert ":no_entry:" not in ack_text(
        await agentbox.slash(f"team create ventas 1001-1003 <#{TEAM_CHANNEL}>")
    )

    kind, outputs = await _run(
        agentbox,
        _inputs(
            display="hide",
            buttons="dial, disposition",
            team="ventas",
            reason="form #12 approved",
            channel_id=WORKFLOW_CHANNEL,
        ),
        "Fx0001",
    )

    assert kind == "success"
    assert set(outputs) == set(OUTPUTS)
    assert outputs["succeeded_agents"] == "1001, 1002, 1003"
    assert outputs["failed_agents"] == ""
    assert outputs["results"].splitlines()[0] == "1001: dial hidden; disposition hidden"
    assert "6/6 done" in outputs["summary"]
    for agent in ("1001", "1002", "1003"):
        assert agentbox.simulator.button_state(agent, "disposition") == "hide"
    (change,) = await _changes(agentbox)
    assert outputs["change_id"] == change.id
    assert change.slack_user_id == ADMIN and change.idempotency_key == "function:Fx0001"
    # Completed with the workflow's own token; progress and summary where the workflow said.
    (call,) = agentbox.slack.calls_to("functions.completeSuccess")
    assert call.token == "xwfp-workflow-token"
    assert "6/6 done" in agentbox.last_message(WORKFLOW_CHANNEL).text


async def test_an_agent_wolkvox_refused_is_in_the_failed_outputs(
    database_url: str, simulator: Simulator
) -> None:
    simulator.config.daily_quota = 2  # the third call is refused: TOKEN LIMIT EXCEEDED
    async with start_harness(database_url=database_url, simulator=simulator) as agentbox:
        kind, outputs = await _run(
            agentbox, _inputs(display="show", buttons="hungup", agents="1001-1003"), "Fx0002"
        )

    assert kind == "success"
    assert outputs["succeeded_agents"] == "1001, 1002"
    assert outputs["failed_agents"] == "1003"
    assert outputs["results"].splitlines()[2].startswith("1003: hungup failed (")


async def test_a_refusal_fails_the_step_and_runs_nothing(agentbox: Harness) -> None:
    kind, error = await _run(
        agentbox, _inputs(STRANGER, display="hide", buttons="dial", agents="1001"), "Fx0003"
    )

    assert kind == "error"
    assert "not allowed" in error and f"@{ADMIN}" in error
    assert await _changes(agentbox) == []
    assert agentbox.simulator.calls == []


async def test_a_partly_allowed_change_fails_the_step_and_runs_nothing(agentbox: Harness) -> None:
    for text in (
        f"team create ventas 1001-1003 <#{TEAM_CHANNEL}>",
        f"grant <@{SUPERVISOR}> supervisor team:ventas",
    ):
        assert ":no_entry:" not in ack_text(await agentbox.slash(text))

    kind, error = await _run(
        agentbox, _inputs(SUPERVISOR, display="hide", buttons="dial", agents="1003-1004"), "Fx4"
    )

    assert kind == "error"
    assert "Only part of this change is allowed" in error and "1004" in error
    (change,) = await _changes(agentbox)
    assert change.status == "cancelled"
    assert agentbox.simulator.calls == []


async def test_bad_inputs_fail_the_step_with_what_is_wrong(agentbox: Harness) -> None:
    kind, error = await _run(
        agentbox, _inputs(display="maybe", buttons="dial, mute", agents="1001 --dry-run"), "Fx5"
    )

    assert kind == "error"
    assert "display:" in error and "buttons: mute is not a button" in error and "agents:" in error
    assert await _changes(agentbox) == []


async def test_without_a_user_context_the_step_fails(agentbox: Harness) -> None:
    kind, error = await _run(agentbox, {"display": "hide", "buttons": "dial", "agents": "1"}, "Fx6")

    assert kind == "error" and "user context" in error
    assert await _changes(agentbox) == []


async def test_a_retried_delivery_runs_the_change_once(agentbox: Harness) -> None:
    inputs = _inputs(display="hide", buttons="dial", agents="1001")
    for retry in (0, 1):
        response = await agentbox.function_executed(
            FUNCTION_CALLBACK_ID, inputs, execution_id="Fx7", event_id="Ev0STEP", retry=retry
        )
        assert response.status_code == 200
    # The same execution delivered under another event id (another replica's retry, say).
    await agentbox.function_executed(FUNCTION_CALLBACK_ID, inputs, execution_id="Fx7")
    await agentbox.idle()

    assert len(await _changes(agentbox)) == 1
    assert len(agentbox.simulator.calls) == 1
    assert len(agentbox.slack.calls_to("functions.completeSuccess")) == 1
    assert agentbox.slack.function_results["Fx7"][0] == "success"


async def test_a_change_that_needs_approval_is_requested_and_the_step_fails_saying_so(
    agentbox: Harness,
) -> None:
    requester = "U_REQ"
    for text in (
        f"team create ventas 1001-1003 <#{TEAM_CHANNEL}>",
        f"grant <@{requester}> requester team:ventas",
    ):
        assert ":no_entry:" not in ack_text(await agentbox.slash(text))

    kind, error = await _run(
        agentbox,
        _inputs(requester, display="hide", buttons="dial", team="ventas", reason="lunch"),
        "Fx8",
    )

    assert kind == "error"
    (change,) = await _changes(agentbox)
    assert change.status == "requested"
    assert f"request #{change.id}" in error and "waits for approval" in error
    assert agentbox.simulator.calls == []

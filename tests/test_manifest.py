"""manifest.yml is a Slack app manifest that agrees with what the app actually handles.

The fields Slack requires are checked statically; agreement with the app is checked both against
the names the app's modules register and by sending the app a signed request for every command,
shortcut, event and function the manifest declares (Bolt answers 404 to what it does not handle).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from bot.app import COMMAND
from bot.change_modal import SHORTCUT_CALLBACK_ID
from bot.home import APP_HOME_OPENED
from bot.workflow_step import FUNCTION_CALLBACK_ID, INPUTS, OUTPUTS
from tests.harness import Harness

MANIFEST = Path(__file__).resolve().parent.parent / "manifest.yml"
PARAMETER_TYPES = {
    "string",
    "integer",
    "number",
    "boolean",
    "slack#/types/user_id",
    "slack#/types/user_context",
    "slack#/types/channel_id",
}


def _manifest() -> dict[str, Any]:
    loaded = yaml.safe_load(MANIFEST.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_manifest_has_the_fields_slack_requires() -> None:
    manifest = _manifest()
    info = manifest["display_information"]
    assert isinstance(info["name"], str) and 0 < len(info["name"]) <= 35
    assert len(info.get("description", "")) <= 140
    assert 175 <= len(info["long_description"]) <= 4000
    assert re.fullmatch(r"#[0-9a-fA-F]{6}", info["background_color"])
    features = manifest["features"]
    assert 0 < len(features["bot_user"]["display_name"]) <= 80
    for command in features["slash_commands"]:
        assert command["command"].startswith("/") and command["description"]
    for shortcut in features["shortcuts"]:
        assert shortcut["type"] in ("global", "message")
        assert shortcut["name"] and shortcut["callback_id"]
        assert 0 < len(shortcut["description"]) <= 150
    settings = manifest["settings"]
    assert settings["interactivity"]["is_enabled"] is True


def test_app_home_has_its_home_tab_and_the_dm_the_app_reports_in() -> None:
    app_home = _manifest()["features"]["app_home"]
    assert app_home["home_tab_enabled"] is True
    assert app_home["messages_tab_enabled"] is True


def test_the_workflow_step_is_declared_as_slack_needs_it() -> None:
    manifest = _manifest()
    # Custom steps appear in Workflow Builder only for org-ready apps with a remote runtime.
    assert manifest["settings"]["org_deploy_enabled"] is True
    assert manifest["settings"]["function_runtime"] == "remote"
    (function,) = manifest["functions"].values()
    assert function["title"] and len(function["description"]) <= 150
    for kind in ("input_parameters", "output_parameters"):
        for name, parameter in function[kind].items():
            assert parameter["name"] == name
            assert parameter["type"] in PARAMETER_TYPES, name
            assert parameter["title"] and isinstance(parameter["is_required"], bool)
    inputs = function["input_parameters"]
    # Permissions are checked as the person running the workflow, which a builder cannot set.
    assert inputs["user_context"]["type"] == "slack#/types/user_context"
    assert {name for name, p in inputs.items() if p["is_required"]} == {
        "user_context",
        "display",
        "buttons",
    }


def test_manifest_declares_what_the_app_registers() -> None:
    manifest = _manifest()
    assert [c["command"] for c in manifest["features"]["slash_commands"]] == [COMMAND]
    assert [s["callback_id"] for s in manifest["features"]["shortcuts"]] == [SHORTCUT_CALLBACK_ID]
    assert set(manifest["settings"]["event_subscriptions"]["bot_events"]) == {
        APP_HOME_OPENED,
        "function_executed",
    }
    (callback_id,) = manifest["functions"]
    assert callback_id == FUNCTION_CALLBACK_ID
    function = manifest["functions"][callback_id]
    assert tuple(function["input_parameters"]) == INPUTS
    assert tuple(function["output_parameters"]) == OUTPUTS


async def test_the_app_handles_every_command_shortcut_event_and_function_declared(
    agentbox: Harness,
) -> None:
    manifest = _manifest()
    for command in manifest["features"]["slash_commands"]:
        assert command["command"] == COMMAND  # the harness sends /agentbox
        assert (await agentbox.slash("help")).status_code == 200
    for shortcut in manifest["features"]["shortcuts"]:
        assert (await agentbox.shortcut(shortcut["callback_id"])).status_code == 200
    for event in manifest["settings"]["event_subscriptions"]["bot_events"]:
        if event == "function_executed":
            continue  # sent below, for each function
        assert (await agentbox.event({"type": event, "user": "U_ADMIN"})).status_code == 200
    for callback_id in manifest["functions"]:
        response = await agentbox.function_executed(callback_id, {})
        assert response.status_code == 200
    # ...and Bolt does answer 404 to what the app does not handle, so the checks above bite.
    assert (await agentbox.shortcut("not_declared")).status_code == 404
    assert (await agentbox.function_executed("not_declared", {})).status_code == 404
    await agentbox.idle()


def test_manifest_asks_for_the_scopes_the_app_uses_and_no_more() -> None:
    scopes = set(_manifest()["oauth_config"]["scopes"]["bot"])
    assert scopes == {
        "commands",
        "chat:write",
        "chat:write.public",
        "im:write",
        "usergroups:read",
        "users:read",
    }


def test_socket_mode_is_the_default() -> None:
    assert _manifest()["settings"]["socket_mode_enabled"] is True

"""manifest.yml is a Slack app manifest that agrees with what the app actually handles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bot.app import COMMAND

MANIFEST = Path(__file__).resolve().parent.parent / "manifest.yml"


def _manifest() -> dict[str, Any]:
    loaded = yaml.safe_load(MANIFEST.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_manifest_has_the_fields_slack_requires() -> None:
    manifest = _manifest()
    name = manifest["display_information"]["name"]
    assert isinstance(name, str) and 0 < len(name) <= 35
    assert len(manifest["display_information"].get("description", "")) <= 140
    assert manifest["features"]["bot_user"]["display_name"]
    for command in manifest["features"]["slash_commands"]:
        assert command["command"].startswith("/") and command["description"]


def test_manifest_declares_the_command_the_app_handles() -> None:
    commands = [c["command"] for c in _manifest()["features"]["slash_commands"]]
    assert commands == [COMMAND]


def test_manifest_asks_for_the_scopes_the_app_uses_and_no_more() -> None:
    scopes = set(_manifest()["oauth_config"]["scopes"]["bot"])
    assert scopes == {"commands", "chat:write", "chat:write.public", "im:write", "usergroups:read"}


def test_socket_mode_is_the_default() -> None:
    assert _manifest()["settings"]["socket_mode_enabled"] is True

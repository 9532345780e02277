"""What a ``block_actions`` payload says: who clicked, and which change the button names.

The buttons' values are written by agentbox, but a crafted payload can carry anything: a value
that is not a change id reads as 0, which names no change.
"""

from __future__ import annotations

from typing import Any

from storage.changes import Requester

#: Longer ids would not fit the database's integer column (and agentbox never wrote one).
_MAX_ID_DIGITS = 11


def clicker(body: dict[str, Any]) -> Requester:
    """The user who clicked, with their workspace and channel."""
    return Requester(
        user_id=body["user"]["id"],
        team_id=(body.get("team") or {}).get("id"),
        channel_id=(body.get("channel") or {}).get("id"),
    )


def change_id(body: dict[str, Any]) -> int:
    """The change the clicked button names; 0 for a value that is not one (a crafted payload)."""
    try:
        value = str(body["actions"][0]["value"])
    except (KeyError, IndexError, TypeError):
        return 0
    return int(value) if value.isdigit() and len(value) <= _MAX_ID_DIGITS else 0

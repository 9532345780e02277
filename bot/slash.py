"""Slack's request shapes, built the way Slack builds them: form-encoded slash commands, signed.

The console drives the app with these, and the tests and benchmarks send them over HTTP.
"""

from __future__ import annotations

import secrets
import time
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier


def slash_command_body(
    text: str,
    *,
    user_id: str,
    response_url: str,
    channel_id: str = "C_CONSOLE",
    team_id: str = "T_FAKE",
    command: str = "/agentbox",
    trigger_id: str | None = None,
) -> str:
    """The form Slack POSTs for a slash command."""
    return urlencode(
        {
            "token": "deprecated-verification-token",
            "team_id": team_id,
            "team_domain": "fake",
            "channel_id": channel_id,
            "channel_name": "console",
            "user_id": user_id,
            "user_name": user_id.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A_AGENTBOX",
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id or f"{int(time.time())}.{secrets.token_hex(6)}",
        }
    )


def signed_headers(
    body: str, signing_secret: str, *, timestamp: int | None = None
) -> dict[str, str]:
    """The headers Slack sends with ``body``: its timestamp and HMAC signature."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(signing_secret).generate_signature(timestamp=stamp, body=body)
    assert signature is not None  # None only when the timestamp is missing
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature,
    }

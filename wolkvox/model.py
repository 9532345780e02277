"""The vocabulary of wolkvox's agent_display API.

Shared by the client, the queue and the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Button(StrEnum):
    """The softphone elements agent_display can show or hide (wolkvox's own spelling)."""

    DIAL = "dial"
    DISPOSITION = "disposition"
    HUNGUP = "hungup"


class Display(StrEnum):
    SHOW = "show"
    HIDE = "hide"


@dataclass(frozen=True)
class Credentials:
    """Where and as whom to call wolkvox: one operation's server code and token.

    The token is a secret: it is excluded from ``repr`` so that it never reaches a log line.
    """

    server: str
    token: str = field(repr=False)

    @property
    def token_fingerprint(self) -> str:
        """A short, non-reversible name for the token, safe to log and to key metrics on."""
        import hashlib

        return hashlib.sha256(self.token.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class DisplayRequest:
    """One agent_display call: show or hide one button for one agent."""

    agent_id: str
    display: Display
    button: Button


@dataclass(frozen=True)
class DisplayResult:
    """wolkvox's answer to a successful call; ``message`` is its ``data`` text, for the user."""

    code: int
    message: str

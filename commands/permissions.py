"""Who may change what.

Until roles exist, the rule is simple: the users named in ``AGENTBOX_ADMINS`` may run changes and
nobody else may. The policy is an object so that the role-based one can take its place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from commands.grammar import ChangeCommand
from storage.changes import Requester


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str


class ChangePolicy(Protocol):
    def may_change(self, requester: Requester, command: ChangeCommand) -> Verdict: ...


class AdminListPolicy:
    """Only the configured admins may change agents' buttons."""

    def __init__(self, admins: frozenset[str]) -> None:
        self.admins = admins

    def may_change(self, requester: Requester, command: ChangeCommand) -> Verdict:
        if requester.user_id in self.admins:
            return Verdict(True, "agentbox admin (AGENTBOX_ADMINS)")
        if not self.admins:
            return Verdict(
                False,
                "No agentbox admins are configured yet, so nobody may change agents' buttons. "
                "The operator sets them in `AGENTBOX_ADMINS`.",
            )
        names = ", ".join(f"<@{admin}>" for admin in sorted(self.admins))
        return Verdict(
            False,
            "You are not allowed to change agents' buttons: only agentbox admins can "
            f"({names}). Ask one of them to run it or to grant you access.",
        )

"""App Home: who you are to agentbox, what waits for your approval, what is hidden now, and what
happened lately; published on ``app_home_opened`` and again when one of your changes is done.

Slack retries an Events API delivery that was not acknowledged in 3 seconds, with the same
``event_id``. Publishing the Home twice is harmless, so an in-memory guard (:class:`RecentEvents`)
only saves the second read and call; a retry that reaches another replica publishes again.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.approvals import APPROVE_ACTION, REJECT_ACTION
from bot.services import Services
from commands.agents import agent_ranges
from commands.changes import ChangeReport
from commands.i18n import _, ngettext, use_language
from commands.overview import UserOverview
from storage.changes import Requester

log = logging.getLogger(__name__)

APP_HOME_OPENED = "app_home_opened"
#: The Home's "Change agent buttons" button; bot/change_modal.py opens the modal for it.
CHANGE_BUTTONS_ACTION = "agentbox_home_change_buttons"

#: After a change, its requester's Home is published again only if they opened it this recently
#: (on this replica): a Home nobody looks at is brought up to date when it is next opened.
REFRESH_WINDOW_SECONDS = 600.0
_MAX_REMEMBERED = 10_000
_last_opened: OrderedDict[tuple[str, str], float] = OrderedDict()  # (replica, user) -> when

# A section's text may hold 3000 characters.
_SECTION_LIMIT = 2900
_MAX_APPROVALS = 20


class RecentEvents:
    """The last ``size`` event ids this process saw, to drop Slack's retries of an event."""

    def __init__(self, size: int = 2048) -> None:
        self._size = size
        self._seen: OrderedDict[str, None] = OrderedDict()

    def seen(self, event_id: str | None) -> bool:
        """Whether ``event_id`` came before; remembers it either way."""
        if not event_id:
            return False
        if event_id in self._seen:
            return True
        self._seen[event_id] = None
        if len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return False


@dataclass(frozen=True)
class PendingApproval:
    """A change that waits for the user's approval, as the Home lists it."""

    change_id: int
    requester_id: str
    text: str


async def pending_approvals(services: Services, requester: Requester) -> list[PendingApproval]:
    """The requests ``requester`` may approve or reject now (their buttons are bot/approvals.py's),
    the oldest first."""
    waiting = await services.approvals.waiting_for(requester)
    return [PendingApproval(r.id, r.requester_id, r.change.text) for r in waiting]


def register(app: AsyncApp, services: Services) -> None:
    recent = RecentEvents()

    @app.event(APP_HOME_OPENED)
    async def app_home_opened(body: dict[str, Any], event: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home" or recent.seen(body.get("event_id")):
            return
        requester = Requester(user_id=str(event["user"]), team_id=body.get("team_id"))
        _opened(services, requester.user_id)
        # Bolt acknowledges the event when this returns; the Home is read and published after.
        services.tasks.spawn(
            publish(services, app.client, requester), name=f"home-{requester.user_id}"
        )


async def publish(services: Services, client: AsyncWebClient, requester: Requester) -> None:
    """Read the user's overview and publish their Home, in their language (also when a change of
    theirs ends after a restart); a failure is logged, never raised."""
    try:
        with use_language(await services.languages.language_for(requester.user_id)):
            overview = await services.overview.of(requester)
            approvals = await pending_approvals(services, requester) if overview.can_approve else []
            view = home_view(overview, approvals, datetime.now(UTC))
        await client.views_publish(user_id=requester.user_id, view=view)
    except Exception:
        log.exception("could not publish the App Home of %s", requester.user_id)


async def refreshed_after(
    services: Services, client: AsyncWebClient, following: Awaitable[ChangeReport | None]
) -> ChangeReport | None:
    """Follow a change (``following``: :meth:`ChangeService.follow`); once it is done, publish
    its requester's Home again if they looked at it lately (it shows what is hidden now)."""
    report = await following
    if report is not None and _opened_lately(services, report.requester.user_id):
        await publish(services, client, report.requester)
    return report


def _opened(services: Services, user_id: str) -> None:
    _last_opened[(services.replica_id, user_id)] = time.monotonic()
    _last_opened.move_to_end((services.replica_id, user_id))
    while len(_last_opened) > _MAX_REMEMBERED:
        _last_opened.popitem(last=False)


def _opened_lately(services: Services, user_id: str) -> bool:
    opened = _last_opened.get((services.replica_id, user_id))
    return opened is not None and time.monotonic() - opened < REFRESH_WINDOW_SECONDS


def home_view(
    overview: UserOverview, approvals: Sequence[PendingApproval], now: datetime
) -> dict[str, Any]:
    """The Home tab: sections by ``block_id`` (roles, teams, change, approvals, hidden, recent)."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "agentbox"}},
    ]
    if not overview.roles:
        ask = ", ".join(f"<@{admin}>" for admin in overview.admins)
        blocks.append(
            _section(
                "roles",
                _("You have no role in agentbox yet, so there is nothing to show you here.")
                + " "
                + (
                    _("Ask an admin ({admins}) for one.").format(admins=ask)
                    if ask
                    else _("The operator names the first admins in `AGENTBOX_ADMINS`.")
                ),
            )
        )
        return {"type": "home", "blocks": blocks}

    blocks.append(
        _section("roles", _("*Your roles*") + "\n" + "\n".join(f"• {g}" for g in overview.grants))
    )
    blocks.append(_section("teams", _("*Teams*") + "\n" + _teams(overview)))
    if overview.can_change:
        blocks.append(
            {
                "type": "actions",
                "block_id": "change",
                "elements": [
                    {
                        "type": "button",
                        "style": "primary",
                        "action_id": CHANGE_BUTTONS_ACTION,
                        "text": {"type": "plain_text", "text": _("Change agent buttons")},
                    }
                ],
            }
        )
    if overview.can_approve:
        blocks.append({"type": "divider"})
        blocks += _approvals(approvals)
    blocks.append({"type": "divider"})
    hidden = overview.hidden
    blocks.append(
        _section(
            "hidden", hidden if hidden.startswith("*") else _("*Hidden right now*") + "\n" + hidden
        )
    )
    blocks.append(_section("recent", _("*Recent activity*") + "\n" + overview.recent))
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": _("Updated {date}. `/agentbox help` lists every command.").format(
                        date=f"<!date^{int(now.timestamp())}^"
                        + _("{date_short_pretty} at {time}")
                        + f"|{now:%Y-%m-%d %H:%M} UTC>"
                    ),
                }
            ],
        }
    )
    return {"type": "home", "blocks": blocks}


def _teams(overview: UserOverview) -> str:
    if not overview.teams:
        return _("No teams yet.")
    lines = []
    for team in overview.teams:
        mine = ", ".join(role.value for role in team.roles) or _("read only")
        count = len(team.agents)
        agents = ngettext("{count} agent", "{count} agents", count).format(count=count)
        if team.agents:
            agents += f" ({agent_ranges(team.agents, max_chars=80)})"
        lines.append(
            _("• *{team}*: {agents}, trail in {channel} — you: {roles}").format(
                team=team.name, agents=agents, channel=f"<#{team.channel_id}>", roles=mine
            )
        )
    return _clip("\n".join(lines))


def _approvals(approvals: Sequence[PendingApproval]) -> list[dict[str, Any]]:
    if not approvals:
        return [
            _section("approvals", _("*Waiting for your approval*") + "\n" + _("Nothing right now."))
        ]
    blocks = [
        _section(
            "approvals",
            _("*Waiting for your approval* ({count})").format(count=len(approvals)),
        )
    ]
    for approval in approvals[:_MAX_APPROVALS]:
        blocks.append(
            _section(
                f"approval-{approval.change_id}",
                _("Change #{change} from {user}: {text}").format(
                    change=approval.change_id,
                    user=f"<@{approval.requester_id}>",
                    text=f"`{_clip(approval.text, 500)}`",
                ),
            )
        )
        blocks.append(
            {
                "type": "actions",
                "block_id": f"approval-actions-{approval.change_id}",
                "elements": [
                    {
                        "type": "button",
                        "style": "primary",
                        "action_id": APPROVE_ACTION,
                        "value": str(approval.change_id),
                        "text": {"type": "plain_text", "text": _("Approve")},
                    },
                    {
                        "type": "button",
                        "style": "danger",
                        "action_id": REJECT_ACTION,
                        "value": str(approval.change_id),
                        "text": {"type": "plain_text", "text": _("Reject")},
                    },
                ],
            }
        )
    if len(approvals) > _MAX_APPROVALS:
        more = len(approvals) - _MAX_APPROVALS
        blocks.append(_section("approvals-more", _("…and {count} more.").format(count=more)))
    return blocks


def _section(block_id: str, text: str) -> dict[str, Any]:
    return {
        "type": "section",
        "block_id": block_id,
        "text": {"type": "mrkdwn", "text": _clip(text)},
    }


def _clip(text: str, limit: int = _SECTION_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

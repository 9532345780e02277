"""The "Change agent buttons" modal: opened from a global shortcut or App Home, it builds the very
text a user would type after ``/agentbox`` and takes the slash command's path
(:meth:`commands.changes.ChangeService.submit`: the same grammar, permission check and queue).

What the grammar or the permission check refuses is shown in the modal, on the field it concerns,
and nothing is recorded. An accepted change closes the modal; its acknowledgement and then its
progress and summary go to the user's DM with the app (a global shortcut has no channel).

:class:`ChangeForm` is shared with the Workflow Builder step (bot/workflow_step.py).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot import home, render
from bot.app import _answer, start_change
from bot.services import Services
from commands.agents import agent_ranges
from commands.changes import Accepted, Duplicate, Refused
from commands.grammar import (
    MAX_REASON_LENGTH,
    VOCABULARY,
    ParseError,
    WordKind,
    normalize,
    parse_targets,
)
from commands.i18n import N_, _, ngettext
from commands.overview import TeamView, UserOverview
from storage.changes import Requester

log = logging.getLogger(__name__)

SHORTCUT_CALLBACK_ID = "agentbox_change_buttons"
VIEW_CALLBACK_ID = "agentbox_change_buttons_modal"

# Block ids of the modal's inputs (each input's action id is the same string).
DISPLAY, BUTTONS, TEAM, AGENTS, DURATION, REASON = (
    "display",
    "buttons",
    "team",
    "agents",
    "duration",
    "reason",
)
#: (value, label): the labels are translated where the modal is built.
BUTTON_CHOICES = (
    ("dial", N_("Call button (dial)")),
    ("disposition", N_("Disposition panel (disposition)")),
    ("hungup", N_("Hang-up button (hungup)")),
)
#: ``for …`` choices: the grammar's words, "" for a change that stays (labels as above).
DURATIONS = (
    ("", N_("Until changed again")),
    ("15m", N_("15 minutes")),
    ("30m", N_("30 minutes")),
    ("1h", N_("1 hour")),
    ("2h", N_("2 hours")),
    ("4h", N_("4 hours")),
    ("8h", N_("8 hours")),
    ("24h", N_("24 hours")),
)
_NO_DURATION = "none"  # a static select option's value may not be empty
_MAX_OPTIONS = 100  # Slack's limit for a static select
_MAX_ERROR = 500  # an error under a field: long refusals are cut

_WORDS = {normalize(alias): lexeme for lexeme, aliases in VOCABULARY for alias in aliases}
_TEAM_NAME = re.compile(r"[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?")
_DURATION_WORD = re.compile(r"(?:[0-9]+[^\W\d_]+)+")
_SEPARATORS = re.compile(r"[\s,]+")
# (opening, closing) quotes for the reason: the first whose closing quote the reason lacks.
_QUOTES = (('"', '"'), ("\u201c", "\u201d"), ("\u00ab", "\u00bb"), ("'", "'"))


@dataclass(frozen=True)
class ChangeForm:
    """A change as fields (the modal's, the workflow step's inputs), before it is a command."""

    display: str
    buttons: Sequence[str]
    teams: Sequence[str] = ()
    agents: str = ""
    duration: str = ""
    reason: str = ""

    def command_text(self) -> str | dict[str, str]:
        """The ``/agentbox`` text for this form, or what is wrong with it, per field.

        Each field is checked on its own before it is put in the text, so no field can add
        words to another (``1001 --dry-run`` typed as agents is refused, not obeyed).
        """
        errors: dict[str, str] = {}
        display = _WORDS.get(normalize(self.display.strip()))
        if display is None or display.kind is not WordKind.DISPLAY:
            errors[DISPLAY] = _("Choose whether to show or hide the buttons.")
        buttons: list[str] = []
        for word in (w for raw in self.buttons for w in _SEPARATORS.split(raw) if w):
            lexeme = _WORDS.get(normalize(word))
            if lexeme is None or lexeme.kind is not WordKind.BUTTON:
                errors[BUTTONS] = _(
                    "`{word}` is not a button: choose dial, disposition, hungup (or all)."
                ).format(word=word)
                break
            buttons.append(lexeme.canonical)
        if not buttons and BUTTONS not in errors:
            errors[BUTTONS] = _("Choose at least one button.")
        teams = [normalize(team.strip()) for team in self.teams if team.strip()]
        for team in teams:
            if not _TEAM_NAME.fullmatch(team):
                errors[TEAM] = _("`{team}` is not a team name.").format(team=team)
        agents: tuple[str, ...] = ()
        if self.agents.strip():
            parsed = parse_targets([self.agents])
            if isinstance(parsed, ParseError):
                errors[AGENTS] = parsed.message
            else:
                agents = parsed
        elif not teams:
            errors[AGENTS] = _("Choose a team or type agent ids, like `1001, 1002-1010`.")
        duration = self.duration.strip().lower()
        if duration and not _DURATION_WORD.fullmatch(duration):
            errors[DURATION] = _(
                "`{duration}` is not a duration: write it like `30m` or `2h`."
            ).format(duration=duration)
        reason = self.reason.strip()
        if len(reason) > MAX_REASON_LENGTH:
            errors[REASON] = _("Keep the reason to {count} characters.").format(
                count=MAX_REASON_LENGTH
            )
        quotes = next((q for q in _QUOTES if q[1] not in reason), None)
        if reason and quotes is None:
            errors[REASON] = _("The reason uses every kind of quote mark; leave one kind out.")
        if errors or display is None:
            return errors
        words = [display.canonical, *dict.fromkeys(buttons)]
        words += [f"team:{team}" for team in dict.fromkeys(teams)]
        if agents:
            words.append(agent_ranges(agents, max_chars=1_000_000))
        if duration:
            words += ["for", duration]
        if reason and quotes is not None:
            # Last, quoted, and escaped as Slack escapes a slash command's text.
            words.append(f"--reason {quotes[0]}{_slack_escape(reason)}{quotes[1]}")
        return " ".join(words)

    def field_of(self, result: ParseError | Refused) -> str:
        """The field a refusal of this form's command text is about."""
        if isinstance(result, ParseError):
            word = (result.word or "").lower()
            if word.lstrip("-\u2014").startswith("reason"):
                return REASON
            if word and (word == "for" or word == self.duration.strip().lower()):
                return DURATION
        elif "--reason" in result.reason and not self.reason.strip():
            return REASON  # a request for approval needs a reason
        return AGENTS if self.agents.strip() or not self.teams else TEAM


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def plain(text: str) -> str:
    """A core message (mrkdwn) as plain text, for modal errors and workflow step errors."""
    text = re.sub(r"<@([A-Z0-9_]+)(?:\|[^>]*)?>", r"@\1", text)
    text = re.sub(
        r"<#([A-Z0-9_]+)(?:\|([^>]*))?>", lambda m: "#" + (m.group(2) or m.group(1)), text
    )
    text = re.sub(
        r"<!subteam\^([A-Z0-9_]+)(?:\|([^>]*))?>", lambda m: m.group(2) or m.group(1), text
    )
    return text.replace("`", "").replace(":warning: ", "").replace(":no_entry: ", "")


def register(app: AsyncApp, services: Services) -> None:
    async def open_modal(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        requester = Requester(
            user_id=body["user"]["id"], team_id=(body.get("team") or {}).get("id")
        )
        trigger_id = str(body.get("trigger_id", ""))
        # A trigger id is good for 3 seconds: open right after the acknowledgement.
        services.tasks.spawn(
            _open(services, client, requester, trigger_id), name=f"modal-{requester.user_id}"
        )

    app.shortcut(SHORTCUT_CALLBACK_ID)(open_modal)
    app.action(home.CHANGE_BUTTONS_ACTION)(open_modal)

    @app.view_submission(VIEW_CALLBACK_ID)
    async def submitted(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        requester = Requester(
            user_id=body["user"]["id"], team_id=(body.get("team") or {}).get("id")
        )
        view = body.get("view") or {}
        values = (view.get("state") or {}).get("values") or {}
        overview = await services.overview.of(requester, activity=False)
        form = form_of(values)
        has_team_field = any(block.get("block_id") == TEAM for block in view.get("blocks") or [])
        visible = {team.name for team in overview.teams}
        unknown = [team for team in form.teams if normalize(team) not in visible]
        text = form.command_text()
        if isinstance(text, dict) or unknown:
            errors = dict(text) if isinstance(text, dict) else {}
            if unknown:
                errors.setdefault(
                    TEAM, _("There is no team named `{name}`.").format(name=unknown[0])
                )
            await ack(response_action="errors", errors=_on_fields(errors, has_team_field))
            return
        try:
            result = await services.changes.submit(
                requester,
                text,
                # A view is submitted once; Slack does not retry a view submission that was
                # answered, but a double delivery of one makes one change.
                idempotency_key=f"modal:{view.get('id')}" if view.get("id") else None,
            )
        except Exception:
            log.exception("could not take a change from the modal")
            await ack(
                response_action="errors",
                errors=_on_fields(
                    {
                        AGENTS: _(
                            "agentbox could not record this right now (its database is not "
                            "answering), so nothing was changed. Please try again in a minute."
                        )
                    },
                    has_team_field,
                ),
            )
            return
        if isinstance(result, ParseError | Refused):
            message = result.message if isinstance(result, ParseError) else result.reason
            await ack(
                response_action="errors",
                errors=_on_fields({form.field_of(result): plain(message)}, has_team_field),
            )
            return
        await ack()  # closes the modal
        if isinstance(result, Accepted):

            async def acknowledge() -> None:
                await post_to_dm(client, requester.user_id, render.accepted(result))

            start_change(services, client, result, first=acknowledge)
            return
        if isinstance(result, Duplicate):
            return
        # Anything else (a partly allowed change to confirm…) is answered as the slash
        # command answers it, in the DM.
        answer = AsyncAck()  # type: ignore[no-untyped-call]
        await _answer(services, client, answer, requester, text, result)
        if answer.response is not None and answer.response.body:
            reply = json.loads(answer.response.body)
            services.tasks.spawn(
                post_to_dm(client, requester.user_id, reply), name=f"dm-{requester.user_id}"
            )


def form_of(values: dict[str, Any]) -> ChangeForm:
    """The form as the modal's ``view.state.values`` hold it."""

    def field(block: str) -> dict[str, Any]:
        state = (values.get(block) or {}).get(block)
        return state if isinstance(state, dict) else {}

    def selected(block: str) -> str:
        option = field(block).get("selected_option") or {}
        return str(option.get("value") or "")

    duration = selected(DURATION)
    return ChangeForm(
        display=selected(DISPLAY),
        buttons=[
            str(option.get("value", "")) for option in field(BUTTONS).get("selected_options") or []
        ],
        teams=[team] if (team := selected(TEAM)) else [],
        agents=str(field(AGENTS).get("value") or ""),
        duration="" if duration == _NO_DURATION else duration,
        reason=str(field(REASON).get("value") or ""),
    )


def _on_fields(errors: dict[str, str], has_team_field: bool) -> dict[str, str]:
    """Errors keyed by the modal's blocks (a modal without teams has no team field)."""
    placed: dict[str, str] = {}
    for block, message in errors.items():
        target = AGENTS if block == TEAM and not has_team_field else block
        placed[target] = plain(placed.get(target, "") + " " + message).strip()
    return {block: _clip(message) for block, message in placed.items()}


def _clip(text: str, limit: int = _MAX_ERROR) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def post_to_dm(client: AsyncWebClient, user_id: str, message: render.Message) -> None:
    """Post ``message`` in the user's DM with the app; a failure is logged."""
    try:
        opened = await client.conversations_open(users=user_id)
        await client.chat_postMessage(channel=str(opened["channel"]["id"]), **message)
    except Exception:
        log.exception("could not post to %s's DM", user_id)


async def _open(
    services: Services, client: AsyncWebClient, requester: Requester, trigger_id: str
) -> None:
    try:
        overview = await services.overview.of(requester, activity=False)
        await client.views_open(trigger_id=trigger_id, view=modal_view(overview))
    except Exception:
        log.exception("could not open the change modal for %s", requester.user_id)


def modal_view(overview: UserOverview) -> dict[str, Any]:
    """The modal; for a user who may not change buttons, a modal that says why (no form)."""
    # A modal's title holds at most 24 characters, in every language.
    title = {"type": "plain_text", "text": _("Change agent buttons")[:24]}
    if not overview.can_change:
        if overview.roles:
            why = _("Your role is viewer: you may see status and history, not change buttons.")
        else:
            ask = ", ".join(f"<@{admin}>" for admin in overview.admins)
            why = (
                _("You have no role in agentbox yet. Ask {admins} for one.").format(admins=ask)
                if ask
                else _("You have no role in agentbox yet. Ask an admin for one.")
            )
        return {
            "type": "modal",
            "callback_id": VIEW_CALLBACK_ID,
            "title": title,
            "close": {"type": "plain_text", "text": _("Close")},
            "blocks": [
                {"type": "section", "block_id": "why", "text": {"type": "mrkdwn", "text": why}}
            ],
        }
    blocks: list[dict[str, Any]] = [
        _input(
            DISPLAY,
            _("Show or hide"),
            {
                "type": "radio_buttons",
                "options": [_option("hide", _("Hide")), _option("show", _("Show"))],
            },
        ),
        _input(
            BUTTONS,
            _("Buttons"),
            {
                "type": "checkboxes",
                "options": [_option(value, _(label)) for value, label in BUTTON_CHOICES],
            },
        ),
    ]
    if overview.teams:
        blocks.append(
            _input(
                TEAM,
                _("Team"),
                {
                    "type": "static_select",
                    "placeholder": {"type": "plain_text", "text": _("A whole team")},
                    "options": [_team_option(team) for team in overview.teams[:_MAX_OPTIONS]],
                },
                optional=True,
            )
        )
    blocks += [
        _input(
            AGENTS,
            _("Agents"),
            {
                "type": "plain_text_input",
                "placeholder": {"type": "plain_text", "text": "1001, 1002-1010"},
            },
            optional=True,
            hint=_("Agent ids, lists and ranges, besides or instead of a team.")
            if overview.teams
            else _("Agent ids, lists and ranges."),
        ),
        _input(
            DURATION,
            _("For how long"),
            {
                "type": "static_select",
                "initial_option": _option(_NO_DURATION, _(DURATIONS[0][1])),
                "options": [_option(value or _NO_DURATION, _(label)) for value, label in DURATIONS],
            },
        ),
        _input(
            REASON,
            _("Reason"),
            {"type": "plain_text_input", "multiline": True, "max_length": MAX_REASON_LENGTH},
            optional=True,
            hint=_("Kept in agentbox's audit trail."),
        ),
    ]
    return {
        "type": "modal",
        "callback_id": VIEW_CALLBACK_ID,
        "title": title,
        "submit": {"type": "plain_text", "text": _("Run")},
        "close": {"type": "plain_text", "text": _("Cancel")},
        "blocks": blocks,
    }


def _input(
    block_id: str,
    label: str,
    element: dict[str, Any],
    *,
    optional: bool = False,
    hint: str | None = None,
) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "input",
        "block_id": block_id,
        "label": {"type": "plain_text", "text": label},
        "element": {**element, "action_id": block_id},
        "optional": optional,
    }
    if hint:
        block["hint"] = {"type": "plain_text", "text": hint}
    return block


def _option(value: str, label: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": label[:75]}, "value": value}


def _team_option(team: TeamView) -> dict[str, Any]:
    count = len(team.agents)
    agents = ngettext("{count} agent", "{count} agents", count).format(count=count)
    return _option(team.name, f"{team.name} ({agents})")

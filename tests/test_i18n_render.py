"""Spanish and English for the messages of a change and of an approval request.

bot/render.py, bot/app.py, bot/approvals.py, commands/changes.py and commands/approvals.py: each
main message rendered in both languages (directly under ``use_language``, and end to end through
signed slash commands and clicks), and each message addressed to someone other than the one
asking rendered in the reader's language — the requester's DMs in theirs, the approvals channel
and the trail lines in the workspace default.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from bot import render
from bot.app import CANCEL_ACTION
from bot.approvals import APPROVE_ACTION, REJECT_ACTION
from commands.approvals import Requested
from commands.changes import (
    Accepted,
    CallReport,
    ChangeReport,
    DryRun,
    NeedsConfirmation,
    refusal_text,
)
from commands.grammar import ChangeCommand
from commands.i18n import use_language
from commands.roles import Refusal
from storage.approvals import ApprovalRecord, RequestRecord
from storage.changes import CallRecord, ChangeRecord, Requester
from tests.harness import ADMIN, STRANGER, Harness, MovableClock, ack_text, start_harness
from wolkvox import errors
from wolkvox.model import Button, Display
from wolkvox.simulator import Simulator

LANGUAGES = ["en", "es"]
WHEN = datetime(2026, 11, 2, 15, 30, tzinfo=UTC)
USER = Requester("U_MARIA", "T1", "C1")

MARIA = "UMARIA"  # supervisor of ventas, reads English
REQUESTER = "UREQUESTER"  # requester in ventas, reads Spanish
APPROVALS = "CVENTASSUP"


# --------------------------------------------------------------------------- direct renders


def _hide(*agents: str, teams: tuple[str, ...] = (), **extra: Any) -> ChangeCommand:
    return ChangeCommand(Display.HIDE, (Button.DIAL,), agents, teams, **extra)


def _call(agent: str, ok: bool = True, message: str = "Agentbox has been hide") -> CallReport:
    return CallReport(agent, Button.DIAL, Display.HIDE, ok, message, None if ok else "x", 1)


def _report(*calls: CallReport, **extra: Any) -> ChangeReport:
    return ChangeReport(7, USER, Display.HIDE, calls, **extra)


def _request(status: str = "requested", *decisions: ApprovalRecord) -> RequestRecord:
    calls = tuple(
        CallRecord(i, i, "default", agent, "hungup", "hide", "held", 0, None, None)
        for i, agent in enumerate(("1001", "1002", "1003"), start=1)
    )
    change = ChangeRecord(
        12, USER, None, "hide hungup 1001-1003", "hide", ("hungup",), status, None, calls
    )
    reason = "cliente <en espera>"
    return RequestRecord(change, reason, 2, WHEN, "C_SUP", ("C_SUP", "1.2"), decisions)


def _approved(by: str) -> ApprovalRecord:
    return ApprovalRecord(by, "approved", None, WHEN)


def _rejected(by: str, reason: str | None) -> ApprovalRecord:
    return ApprovalRecord(by, "rejected", reason, WHEN)


def _text(message: dict[str, Any]) -> str:
    return str(message["text"])


def _all_text(message: dict[str, Any]) -> str:
    """Everything a reader sees in a message or modal, buttons and titles included."""
    return json.dumps(message, ensure_ascii=False)


REFUSAL = Refusal(("2001",), (Button.DIAL,), "reason from roles")
MANY = Refusal(tuple(str(2001 + i) for i in range(12)), (Button.DIAL,), "r")

#: (name, render, English, Spanish): the English is what the message said before translation.
MESSAGES: list[tuple[str, Callable[[], str], str, str]] = [
    (
        "accepted",
        lambda: _text(
            render.accepted(
                Accepted(5, _hide("1005", teams=("ventas",)), ("default",), 11, 2, 2.0, 9.0, True)
            )
        ),
        ":hourglass_flowing_sand: Hiding `dial` for team `ventas` and agent 1005: 11 calls to "
        "wolkvox. Waiting behind 2 calls on this operation's wolkvox token (yours start at "
        "position 3), about 2 s before they start. Expected to finish in about 9 s.",
        ":hourglass_flowing_sand: Ocultando `dial` para equipo `ventas` y agente 1005: 11 "
        "llamadas a wolkvox. En espera detrás de 2 llamadas en el token de wolkvox de esta "
        "operación (las tuyas empiezan en la posición 3), unos 2 s antes de que empiecen. "
        "Debería terminar en unos 9 s.",
    ),
    (
        "accepted, timed",
        lambda: _text(
            render.accepted(
                Accepted(5, _hide("1001", duration=timedelta(minutes=30)), ("d",), 1, 0, 0, 1)
            )
        ),
        ":hourglass_flowing_sand: Hiding `dial` for agent 1001. :stopwatch: Timed: agentbox "
        "puts it back 30m after it is done.",
        ":hourglass_flowing_sand: Ocultando `dial` para agente 1001. :stopwatch: Temporal: "
        "agentbox lo revierte 30m después de terminar.",
    ),
    (
        "needs confirmation",
        lambda: _all_text(
            render.needs_confirmation(
                NeedsConfirmation(5, _hide("1001", "2001"), ("1001",), 1, (REFUSAL,)), "ok", "no"
            )
        ),
        ":raised_hand: You may hide `dial` for agent 1001, but not all you asked for:\\n"
        "• agent 2001 (`dial`): reason from roles\\nNothing has run. Run the allowed part?",
        ":raised_hand: Puedes ocultar `dial` para agente 1001, pero no todo lo que pediste:\\n"
        "• agente 2001 (`dial`): reason from roles\\nNo se ha ejecutado nada. ¿Ejecutar la "
        "parte permitida?",
    ),
    (
        "confirmation buttons",
        lambda: _all_text(
            render.needs_confirmation(
                NeedsConfirmation(5, _hide("1001"), ("1001",), 1, (REFUSAL,)), "ok", "no"
            )
        ),
        '"Run for 1 agents"}}, {"type": "button", "action_id": "no", "value": "5", '
        '"text": {"type": "plain_text", "text": "Cancel"}',
        '"Ejecutar para 1 agentes"}}, {"type": "button", "action_id": "no", "value": "5", '
        '"text": {"type": "plain_text", "text": "Cancelar"}',
    ),
    (
        "a refusal of many agents",
        lambda: _text(render.refused(refusal_text(MANY))),
        ":no_entry: agents 2001, 2002, 2003, 2004, 2005, 2006, 2007, 2008, 2009, 2010 and 2 "
        "more (`dial`): r",
        ":no_entry: agentes 2001, 2002, 2003, 2004, 2005, 2006, 2007, 2008, 2009, 2010 y 2 "
        "más (`dial`): r",
    ),
    (
        "dry run",
        lambda: _text(
            render.dry_run(
                DryRun(_hide("1001"), (("default", "1001", Button.DIAL),), (), (REFUSAL,))
            )
        ),
        ":mag: Dry run — nothing was sent. `hide` would make 1 call to wolkvox:\n"
        "• operation `default`, `dial`: agent 1001\n• :no_entry: agent 2001 (`dial`): reason "
        "from roles",
        ":mag: Simulación: no se envió nada. `hide` haría 1 llamada a wolkvox:\n"
        "• operación `default`, `dial`: agente 1001\n• :no_entry: agente 2001 (`dial`): reason "
        "from roles",
    ),
    (
        "duplicate",
        lambda: _text(render.duplicate(9)),
        ":information_source: Already received (change #9); it runs once. Its progress is in "
        "the message that follows it.",
        ":information_source: Ya se recibió (cambio #9); se ejecuta una sola vez. Su avance "
        "está en el mensaje que lo sigue.",
    ),
    (
        "progress",
        lambda: _text(render.progress(Display.SHOW, (Button.HUNGUP,), 12, 40)),
        ":hourglass_flowing_sand: Showing `hungup`: 12/40 done",
        ":hourglass_flowing_sand: Mostrando `hungup`: 12/40 listas",
    ),
    (
        "interrupted",
        lambda: _text(render.interrupted(Display.HIDE, (Button.DIAL,), 1, 3)),
        ":double_vertical_bar: Hiding `dial`: 1/3 done. agentbox is restarting; the remaining "
        "calls stay queued and this message is updated when they are done.",
        ":double_vertical_bar: Ocultando `dial`: 1/3 listas. agentbox se está reiniciando; las "
        "llamadas restantes siguen en cola y este mensaje se actualiza cuando terminen.",
    ),
    (
        "report of one call",
        lambda: _text(render.report(_report(_call("1001")))),
        ":white_check_mark: Agent 1001's call button (`dial`) is hidden. wolkvox: "
        "_Agentbox has been hide_",
        ":white_check_mark: El botón de marcar (`dial`) del agente 1001 está oculto. wolkvox: "
        "_Agentbox has been hide_",
    ),
    (
        "report of one failed call, wolkvox's error in the reader's language",
        lambda: _text(render.report(_report(_call("1001", False, errors.Timeout().user_message)))),
        ":x: Could not hide agent 1001's call button (`dial`): wolkvox did not answer in time.",
        ":x: No se pudo ocultar el botón de marcar (`dial`) del agente 1001: wolkvox no "
        "respondió a tiempo.",
    ),
    (
        "report of several calls, timed",
        lambda: _text(
            render.report(
                _report(
                    _call("1001"),
                    _call("1002"),
                    _call("1003", False, errors.Maintenance("HTTP 403").user_message),
                    duration_seconds=1800,
                )
            )
        ),
        ":warning: Hide: 2/3 done, 1 failed\n:white_check_mark: `dial` hidden for 2 agents "
        "(1001-1002): _Agentbox has been hide_\n:x: `dial` failed for agent 1003: wolkvox "
        "refused the call, most likely for server maintenance (or this server's IP is not "
        "allowed). (HTTP 403)\n:stopwatch: agentbox puts it back in 30m.",
        ":warning: Ocultar: 2/3 listas, 1 fallida\n:white_check_mark: `dial` oculto para 2 "
        "agentes (1001-1002): _Agentbox has been hide_\n:x: `dial` falló para agente 1003: ",
    ),
    (
        "report of a timed change's revert",
        lambda: _text(
            render.report(
                ChangeReport(8, USER, Display.SHOW, (), reverts_change_id=7, automatic_revert=True)
            )
        ),
        ":stopwatch: Time is up for change #7: putting it back.\n:white_check_mark: Show: 0/0 done",
        ":stopwatch: Se cumplió el tiempo del cambio #7: revirtiéndolo.\n:white_check_mark: "
        "Mostrar: 0/0 listas",
    ),
    (
        "report of a revert that failed and is tried again",
        lambda: _text(
            render.report(
                _report(
                    _call("1001", ok=False, message="wolkvox had an internal error."),
                    reverts_change_id=6,
                    automatic_revert=True,
                    revert_again_in=300,
                )
            )
        ),
        ":repeat: agentbox tries again in 5m.",
        ":repeat: agentbox lo vuelve a intentar en 5m.",
    ),
    (
        "report of a revert that failed for the last time",
        lambda: _text(
            render.report(
                _report(
                    _call("1001", ok=False, message="wolkvox had an internal error."),
                    reverts_change_id=6,
                    automatic_revert=True,
                )
            )
        ),
        ":warning: agentbox stops trying: put the rest back by hand.",
        ":warning: agentbox deja de intentarlo: revierte el resto a mano.",
    ),
    (
        "trail line",
        lambda: _text(render.trail(_report(_call("1001"), _call("1002"), duration_seconds=90))),
        "<@U_MARIA> hid `dial` for 2 agents (1001-1002): 2/2 done (change #7), for 1m30s",
        "<@U_MARIA> ocultó `dial` para 2 agentes (1001-1002): 2/2 listas (cambio #7), por 1m30s",
    ),
    (
        "trail line of a revert",
        lambda: _text(
            render.trail(
                ChangeReport(
                    8,
                    USER,
                    Display.SHOW,
                    (_call("1001"),),
                    reverts_change_id=7,
                    automatic_revert=True,
                )
            )
        ),
        ":stopwatch: Time is up for <@U_MARIA>'s change #7: agentbox showed `dial` for agent "
        "1001: 1/1 done (change #8)",
        ":stopwatch: Se cumplió el tiempo del cambio #7 de <@U_MARIA>: agentbox mostró `dial` "
        "para agente 1001: 1/1 listas (cambio #8)",
    ),
    (
        "requested",
        lambda: _text(
            render.requested(
                Requested(12, _hide("1001"), ("1001",), "C_SUP", 2, WHEN, ("why one", "why two"))
            )
        ),
        ":raised_hand: Your request #12 to hide `dial` for agent 1001 waits for approval in "
        "<#C_SUP> (2 distinct approvers; why one; why two). It expires at "
        "<!date^1793633400^{time}|15:30 UTC>. Nothing runs until it is approved; you will be "
        "told here or in a DM.",
        ":raised_hand: Tu solicitud #12 para ocultar `dial` para agente 1001 espera aprobación "
        "en <#C_SUP> (2 aprobadores distintos; why one; why two). Vence a las "
        "<!date^1793633400^{time}|15:30 UTC>. No se ejecuta nada hasta que se apruebe; te "
        "avisaremos aquí o por mensaje directo.",
    ),
    (
        "approval request",
        lambda: _all_text(
            render.approval_request(_request("requested", _approved("U_P")), "a", "r")
        ),
        ":ballot_box_with_check: *Approval request #12* from <@U_MARIA>\\n*Change:* hide "
        "`hungup` for 3 agents (1001-1003)\\n*Reason:* cliente &lt;en espera&gt;\\n*Needs:* 2 "
        "distinct approvers; approved so far by <@U_P>\\n*Expires:* "
        "<!date^1793633400^{time}|15:30 UTC> (then nothing runs)",
        ":ballot_box_with_check: *Solicitud de aprobación #12* de <@U_MARIA>\\n*Cambio:* "
        "ocultar `hungup` para 3 agentes (1001-1003)\\n*Motivo:* cliente &lt;en espera&gt;\\n"
        "*Requiere:* 2 aprobadores distintos; aprobada hasta ahora por <@U_P>\\n*Vence:* "
        "<!date^1793633400^{time}|15:30 UTC> (después no se ejecuta nada)",
    ),
    (
        "approval request buttons",
        lambda: _all_text(render.approval_request(_request(), "a", "r")),
        '"text": "Approve"}}, {"type": "button", "style": "danger", "action_id": "r", '
        '"value": "12", "text": {"type": "plain_text", "text": "Reject"}',
        '"text": "Aprobar"}}, {"type": "button", "style": "danger", "action_id": "r", '
        '"value": "12", "text": {"type": "plain_text", "text": "Rechazar"}',
    ),
    (
        "request header",
        lambda: render.request_header(_request("queued", _approved("U_P"))),
        ":ballot_box_with_check: Request #12 from <@U_MARIA>, approved by <@U_P>: hide "
        "`hungup` for 3 agents (1001-1003). Reason: cliente &lt;en espera&gt;",
        ":ballot_box_with_check: Solicitud #12 de <@U_MARIA>, aprobada por <@U_P>: ocultar "
        "`hungup` para 3 agentes (1001-1003). Motivo: cliente &lt;en espera&gt;",
    ),
    (
        "request closed: expired",
        lambda: _text(render.request_closed(_request("expired"))).split("\n")[0],
        ":hourglass: *Request #12 expired* at <!date^1793633400^{time}|15:30 UTC>: not approved "
        "in time, so nothing was run.",
        ":hourglass: *La solicitud #12 venció* a las <!date^1793633400^{time}|15:30 UTC>: no se "
        "aprobó a tiempo, así que no se ejecutó nada.",
    ),
    (
        "request closed: rejected",
        lambda: _text(render.request_closed(_request("rejected", _rejected("U_P", None)))),
        ":no_entry_sign: *Request #12 rejected* by <@U_P> (no reason given). Nothing was run.\n"
        "From <@U_MARIA>\n*Change:* hide",
        ":no_entry_sign: *Solicitud #12 rechazada* por <@U_P> (sin motivo). No se ejecutó "
        "nada.\nDe <@U_MARIA>\n*Cambio:* ocultar",
    ),
    (
        "request closed: withdrawn",
        lambda: _text(render.request_closed(_request("rejected", _rejected("U_MARIA", None)))),
        ":no_entry_sign: *Request #12 withdrawn* by its requester.",
        ":no_entry_sign: *Solicitud #12 retirada* por quien la pidió.",
    ),
    (
        "request news: approved",
        lambda: _text(render.request_news(_request("queued", _approved("U_P")))),
        ":white_check_mark: Your request #12 (hide `hungup` for 3 agents (1001-1003)) was "
        "approved by <@U_P>; it runs now. Its progress is in <#C_SUP>.",
        ":white_check_mark: Tu solicitud #12 (ocultar `hungup` para 3 agentes (1001-1003)) fue "
        "aprobada por <@U_P>; se ejecuta ahora. Su avance está en <#C_SUP>.",
    ),
    (
        "request news: rejected with a reason",
        lambda: _text(render.request_news(_request("rejected", _rejected("U_P", "no hoy")))),
        ":no_entry_sign: Your request #12 (hide `hungup` for 3 agents (1001-1003)) was rejected "
        "by <@U_P>: no hoy. Nothing was run.",
        ":no_entry_sign: Tu solicitud #12 (ocultar `hungup` para 3 agentes (1001-1003)) fue "
        "rechazada por <@U_P>: no hoy. No se ejecutó nada.",
    ),
    (
        "request news: expired",
        lambda: _text(render.request_news(_request("expired"))),
        "expired at <!date^1793633400^{time}|15:30 UTC>: nobody approved it in time. Nothing "
        "was run; ask again if it is still needed.",
        "venció a las <!date^1793633400^{time}|15:30 UTC>: nadie la aprobó a tiempo. No se "
        "ejecutó nada; vuelve a pedirla si todavía hace falta.",
    ),
    (
        "request outcome",
        lambda: _text(render.request_outcome(_request("done"), _report(_call("1001")))),
        "Your request #12: :white_check_mark: Agent 1001's call button",
        "Tu solicitud #12: :white_check_mark: El botón de marcar",
    ),
    (
        "reject modal",
        lambda: _all_text(render.reject_modal(_request(), "cb")),
        '"title": {"type": "plain_text", "text": "Reject request #12"}, "submit": {"type": '
        '"plain_text", "text": "Reject"}, "close": {"type": "plain_text", "text": "Cancel"}, '
        '"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "<@U_MARIA> asks to '
        'hide `hungup` for 3 agents (1001-1003)."}}, {"type": "input", "block_id": "reason", '
        '"optional": true, "label": {"type": "plain_text", "text": "Why? (optional, shown to '
        'the requester)"}',
        '"title": {"type": "plain_text", "text": "Rechazar solicitud #12"}, "submit": {"type": '
        '"plain_text", "text": "Rechazar"}, "close": {"type": "plain_text", "text": '
        '"Cancelar"}, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": '
        '"<@U_MARIA> pide ocultar `hungup` para 3 agentes (1001-1003)."}}, {"type": "input", '
        '"block_id": "reason", "optional": true, "label": {"type": "plain_text", "text": '
        '"¿Por qué? (opcional, se le muestra a quien la pidió)"}',
    ),
    (
        "too many lines",
        lambda: render._fit([f"line {i}" for i in range(42)]).split("\n")[-1],
        "…and 2 more lines.",
        "…y 2 líneas más.",
    ),
]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(
    ("name", "build", "english", "spanish"), MESSAGES, ids=[m[0] for m in MESSAGES]
)
def test_each_message_in_both_languages(
    name: str, build: Callable[[], str], english: str, spanish: str, language: str
) -> None:
    with use_language(language):
        text = build()

    expected = english if language == "en" else spanish
    assert expected in text, (name, text)
    if language == "es":
        assert english not in text


# --------------------------------------------------------------------------- end to end


def _speaks(harness: Harness, user: str, language: str) -> None:
    harness.slack.locales[user] = "es-LA" if language == "es" else "en-US"


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_change_is_acknowledged_followed_and_summed_up_in_the_users_language(
    agentbox: Harness, language: str
) -> None:
    _speaks(agentbox, ADMIN, language)

    ack = ack_text(await agentbox.slash("hide dial 1001-1003"))
    await agentbox.idle()
    summary = agentbox.last_message().text

    if language == "en":
        assert ack.startswith(":hourglass_flowing_sand: Hiding `dial` for 3 agents (1001-1003)")
        assert summary.startswith(f"<@{ADMIN}>: :white_check_mark: Hide: 3/3 done")
        assert "`dial` hidden for 3 agents (1001-1003): _" in summary
    else:
        assert ack.startswith(
            ":hourglass_flowing_sand: Ocultando `dial` para 3 agentes (1001-1003)"
        ), ack
        assert summary.startswith(f"<@{ADMIN}>: :white_check_mark: Ocultar: 3/3 listas")
        assert "`dial` oculto para 3 agentes (1001-1003): _" in summary


@pytest.mark.parametrize("language", LANGUAGES)
async def test_refusals_of_a_change_in_the_users_language(agentbox: Harness, language: str) -> None:
    _speaks(agentbox, ADMIN, language)
    _speaks(agentbox, STRANGER, language)

    stranger = ack_text(await agentbox.slash("hide dial 1001", user=STRANGER))
    undo = ack_text(await agentbox.slash("undo"))
    await agentbox.slash("team create ventas 1001-1010 <#CVENTAS>")
    team = ack_text(await agentbox.slash("hide dial team:venta"))
    too_many = ack_text(await agentbox.slash("hide dial team:ventas 1011-1501"))

    if language == "en":
        assert stranger == (
            ":no_entry: You are not allowed to change agents' buttons: you have no role in "
            f"agentbox. Ask an admin (<@{ADMIN}>) to run it or to grant you a role."
        )
        assert undo == ":no_entry: You have no finished change to undo."
        assert team == (
            ":no_entry: There is no team named `venta`. Did you mean `team:ventas`? "
            "`/agentbox team list` lists them."
        )
        assert too_many == (
            ":no_entry: That is 501 agents; one command may change at most 500. Split it "
            "into smaller commands."
        )
    else:
        assert stranger == (
            ":no_entry: No tienes permiso para cambiar los botones de los agentes: no tienes "
            f"ningún rol en agentbox. Pide a un administrador (<@{ADMIN}>) que lo ejecute o "
            "que te asigne un rol."
        )
        assert undo == ":no_entry: No tienes ningún cambio terminado para deshacer."
        assert team == (
            ":no_entry: No hay ningún equipo llamado `venta`. ¿Quisiste decir `team:ventas`? "
            "`/agentbox team list` los muestra."
        )
        assert too_many == (
            ":no_entry: Son 501 agentes; un comando puede cambiar como máximo 500. Divídelo "
            "en comandos más pequeños."
        )
    await agentbox.idle()
    assert agentbox.simulator.calls == []


@pytest.mark.parametrize("language", LANGUAGES)
async def test_cancelling_a_partly_allowed_change_answers_in_the_clickers_language(
    agentbox: Harness, language: str
) -> None:
    await agentbox.slash("team create ventas 1001-1005 <#CVENTAS>")
    await agentbox.slash("grant <@UMARIA> supervisor team:ventas")
    _speaks(agentbox, "UMARIA", language)
    offer = await agentbox.slash("hide dial 1001 2001", user="UMARIA")
    change_id = next(
        element["value"]
        for block in offer.json()["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"] == CANCEL_ACTION
    )
    before = len(agentbox.slack.responses)

    await agentbox.block_action(CANCEL_ACTION, change_id, user="UMARIA")
    again_at = len(agentbox.slack.responses)
    await agentbox.block_action(CANCEL_ACTION, change_id, user="UMARIA")

    first = str(agentbox.slack.responses[before]["text"])
    second = str(agentbox.slack.responses[again_at]["text"])
    if language == "en":
        assert first == "Cancelled: nothing was changed."
        assert second == "This change is not waiting for you (already confirmed or cancelled)."
    else:
        assert first == "Cancelado: no se cambió nada."
        assert second == (
            "Este cambio no está esperando tu confirmación (ya se confirmó o se canceló)."
        )
    assert agentbox.simulator.calls == []


@pytest.fixture
async def box(
    database_url: str, simulator: Simulator, clock: MovableClock
) -> AsyncIterator[Harness]:
    """Requests of team ventas go to #ventas-sup; the requester reads Spanish, María English,
    and the workspace default is English."""
    async with start_harness(database_url=database_url, simulator=simulator, clock=clock) as h:
        for text in (
            f"team create ventas 1001-1010 <#CVENTAS> approvals:<#{APPROVALS}>",
            f"grant <@{MARIA}> supervisor team:ventas",
            f"grant <@{REQUESTER}> requester team:ventas",
        ):
            assert ":no_entry:" not in ack_text(await h.slash(text))
        h.slack.locales[REQUESTER] = "es-LA"
        h.slack.locales[MARIA] = "en-US"
        yield h


def _dm(harness: Harness, user: str) -> list[str]:
    return [message.text for message in harness.slack.messages_in(f"D_{user}")]


async def _ask(harness: Harness) -> str:
    ack = ack_text(await harness.slash('hide dial 1001-1003 --reason "cliente"', user=REQUESTER))
    assert ack.startswith(":raised_hand: Tu solicitud #"), ack
    assert "espera aprobación en <#CVENTASSUP> (1 aprobador; tu rol para 1001-1003 es " in ack
    await harness.idle()
    (request,) = harness.slack.messages_in(APPROVALS)
    return request.text


async def _click(harness: Harness, action: str, user: str) -> str:
    (request,) = harness.slack.messages_in(APPROVALS)
    change_id = next(
        element["value"]
        for block in request.history[0]["blocks"]  # the buttons as posted
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"] == action
    )
    before = len(harness.slack.responses)
    await harness.block_action(action, change_id, user=user, channel=APPROVALS)
    return "\n".join(str(r["text"]) for r in harness.slack.responses[before:])


async def test_an_approved_request_speaks_to_each_reader_in_their_language(box: Harness) -> None:
    posted = await _ask(box)

    # The approvals channel (read by many): the workspace default.
    assert posted.startswith(":ballot_box_with_check: *Approval request #")
    assert "*Change:* hide `dial` for 3 agents (1001-1003)" in posted
    # The requester may not approve their own request: told in their own language.
    refused = await _click(box, APPROVE_ACTION, REQUESTER)
    assert refused == (
        ":no_entry: Tú pediste este cambio, así que otra persona debe aprobarlo (la "
        "autoaprobación está desactivada para su equipo). Pídeselo a un aprobador en este canal."
    )

    answer = await _click(box, APPROVE_ACTION, MARIA)
    await box.idle()

    assert answer.startswith(":white_check_mark: You approved request #"), answer
    (request,) = box.slack.messages_in(APPROVALS)
    assert request.text.startswith(":ballot_box_with_check: Request #")
    assert ":white_check_mark: Hide: 3/3 done" in request.text, request.text
    told = _dm(box, REQUESTER)
    assert any(":white_check_mark: Tu solicitud #" in t and "fue aprobada por" in t for t in told)
    assert any("Tu solicitud #" in t and "Ocultar: 3/3 listas" in t for t in told), told
    assert not any("Your request" in t for t in told)
    (trail,) = box.slack.messages_in("CVENTAS")
    assert trail.text.startswith(f"<@{REQUESTER}> hid `dial` for 3 agents (1001-1003)")

    late = await _click(box, APPROVE_ACTION, MARIA)
    assert "This request was approved already" in late


async def test_a_rejected_request_is_told_to_the_requester_in_their_language(
    box: Harness,
) -> None:
    await _ask(box)

    await _click(box, REJECT_ACTION, MARIA)
    (view,) = box.slack.opened_views
    assert view["title"]["text"].startswith("Reject request #")
    payload = {
        "type": "view_submission",
        "user": {"id": MARIA},
        "team": {"id": "T_FAKE"},
        "api_app_id": "A_AGENTBOX",
        "token": "x",
        "trigger_id": f"{int(time.time())}.42",
        "view": {
            **view,
            "state": {"values": {"reason": {"reason": {"type": "x", "value": "hoy no"}}}},
        },
    }
    await box.post(urlencode({"payload": json.dumps(payload)}))
    await box.idle()

    (request,) = box.slack.messages_in(APPROVALS)
    assert request.text.startswith(":no_entry_sign: *Request #")
    assert f"rejected* by <@{MARIA}>: hoy no. Nothing was run." in request.text
    told = _dm(box, REQUESTER)
    assert any(f"fue rechazada por <@{MARIA}>: hoy no. No se ejecutó nada." in t for t in told)
    assert box.simulator.calls == []


async def test_an_expired_request_is_told_to_the_requester_in_their_language(
    box: Harness, clock: MovableClock
) -> None:
    await _ask(box)
    clock.offset = timedelta(hours=1)

    # The sweep runs outside any request: each message in its reader's language.
    assert await box.services.sweep_requests() == 1

    (request,) = box.slack.messages_in(APPROVALS)
    assert request.text.startswith(":hourglass: *Request #")
    assert "not approved in time, so nothing was run." in request.text
    told = _dm(box, REQUESTER)
    assert any("nadie la aprobó a tiempo" in t for t in told), told
    assert box.simulator.calls == []


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_request_without_a_reason_is_refused_in_the_requesters_language(
    box: Harness, language: str
) -> None:
    _speaks(box, REQUESTER, language)

    reply = ack_text(await box.slash("hide dial 1001", user=REQUESTER))

    if language == "en":
        assert reply.startswith(
            ":no_entry: This change needs approval (your role for 1001 is requester), and a "
            'request for approval needs a reason: add one, like `--reason "the client asked"`.'
        )
    else:
        assert reply == (
            ":no_entry: Este cambio requiere aprobación (tu rol para 1001 es solicitante), y "
            "una solicitud de aprobación necesita un motivo: agrega uno, como "
            '`--reason "the client asked"`. No se solicitó nada.'
        )
    assert box.slack.messages_in(APPROVALS) == []

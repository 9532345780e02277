"""Spanish and English for the admin commands, App Home, the change modal and the workflow step.

Each message is rendered through the real path where that is cheap (signed slash commands, events,
shortcuts and view submissions, for a user who chose ``/agentbox lang es``, or English without a
choice), else by a direct render under :func:`use_language`; English is asserted unchanged and
Spanish is asserted to be Spanish. The catalog's completeness is tests/test_i18n.py's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot import home
from bot.change_modal import SHORTCUT_CALLBACK_ID, ChangeForm, modal_view
from bot.home import PendingApproval, home_view
from bot.workflow_step import FUNCTION_CALLBACK_ID
from commands.grammar import Role
from commands.i18n import _, use_language
from commands.overview import TeamView, UserOverview
from storage.changes import Requester
from storage.directory import N_, DirectoryError
from tests.harness import ADMIN, STRANGER, Harness, ack_text
from wolkvox import errors
from wolkvox.retrying import InternalError

LANGUAGES = ("en", "es")
SUPERVISOR = "U_SUP"
TEAM_CHANNEL = "CVENTAS"


async def _speak(agentbox: Harness, language: str, *users: str) -> None:
    """``users`` choose ``language`` (English is what a user without a choice gets here)."""
    for user in users:
        if language == "es":
            assert "español" in ack_text(await agentbox.slash("lang es", user=user))


def _check(text: str, english: str, spanish: str, language: str) -> None:
    assert (english if language == "en" else spanish) in text, text
    if language == "es":
        assert english not in text, text


# --------------------------------------------------------------------------- admin commands

#: (who, command, English, Spanish), run in this order.
ADMIN_SCRIPT: tuple[tuple[str, str, str, str], ...] = (
    (
        ADMIN,
        f"team create ventas 1001-1003 <#{TEAM_CHANNEL}>",
        f"Created. *ventas* (operation `default`): 3 agents (1001-1003)\n"
        f"trail in <#{TEAM_CHANNEL}>",
        f"Creado. *ventas* (operación `default`): 3 agentes (1001-1003)\n"
        f"registro en <#{TEAM_CHANNEL}>",
    ),
    (
        ADMIN,
        "team set ventas approval-over 20",
        "changes that need approval: more than 20 of its agents at once",
        "cambios que requieren aprobación: más de 20 de sus agentes a la vez",
    ),
    (
        ADMIN,
        "team set ventas trail off",
        "trail off (no line in its channel for each change)",
        "registro desactivado (ninguna línea en su canal por cada cambio)",
    ),
    (
        ADMIN,
        "team add ventas 1004",
        "Added. *ventas* (operation `default`): 4 agents (1001-1004)",
        "Agregados. *ventas* (operación `default`): 4 agentes (1001-1004)",
    ),
    (
        ADMIN,
        "team remove ventas 1002-1004",
        "Removed. *ventas* (operation `default`): 1 agent (1001)",
        "Quitados. *ventas* (operación `default`): 1 agente (1001)",
    ),
    (
        ADMIN,
        f"grant <@{SUPERVISOR}> supervisor team:ventas",
        f"Granted <@{SUPERVISOR}>: supervisor of ventas [grant #1].",
        f"Permiso otorgado a <@{SUPERVISOR}>: supervisor de ventas [permiso #1].",
    ),
    (
        ADMIN,
        f"grant <@{SUPERVISOR}> supervisor team:ventas",
        f"<@{SUPERVISOR}> already has that: supervisor of ventas [grant #1].",
        f"<@{SUPERVISOR}> ya tiene eso: supervisor de ventas [permiso #1].",
    ),
    (
        ADMIN,
        f"grant <@{SUPERVISOR}> supervisor team:nadie",
        "There is no team named nadie.",
        "No hay ningún equipo llamado nadie.",
    ),
    (
        ADMIN,
        "whoami",
        f"You are <@{ADMIN}>.\n• admin (AGENTBOX_ADMINS: set by the operator, no command "
        "revokes it)",
        f"Eres <@{ADMIN}>.\n• admin (AGENTBOX_ADMINS: lo define el operador, ningún comando lo "
        "revoca)",
    ),
    (
        ADMIN,
        f"revoke <@{SUPERVISOR}> supervisor team:ventas",
        f"Revoked <@{SUPERVISOR}>'s grant #1 (supervisor).",
        f"Se revocó el permiso #1 (supervisor) de <@{SUPERVISOR}>.",
    ),
    (
        ADMIN,
        f"revoke <@{SUPERVISOR}>",
        f"<@{SUPERVISOR}> has no such grant.",
        f"<@{SUPERVISOR}> no tiene ese permiso.",
    ),
    (
        ADMIN,
        f"revoke <@{ADMIN}>",
        f"<@{ADMIN}> is an admin through AGENTBOX_ADMINS, which only the operator can change",
        f"<@{ADMIN}> es administrador por AGENTBOX_ADMINS, que solo el operador puede cambiar",
    ),
    (
        ADMIN,
        f"team create ventas 1005 <#{TEAM_CHANNEL}>",
        "A team named `ventas` exists already.",
        "Ya existe un equipo llamado `ventas`.",
    ),
    (
        ADMIN,
        f"team create otros 1001 <#{TEAM_CHANNEL}>",
        "already in a team: 1001 (ventas). Remove them there first",
        "ya están en un equipo: 1001 (ventas). Quítalos primero de allí",
    ),
    (
        ADMIN,
        "team add nadie 1009",
        "There is no team named `nadie`.",
        "No hay ningún equipo llamado `nadie`.",
    ),
    (
        ADMIN,
        f"team create otros 2001 <#{TEAM_CHANNEL}> operation:nope",
        "There is no wolkvox operation `nope` (known: `default`). An operator adds one",
        "No hay ninguna operación de wolkvox `nope` (conocidas: `default`). Un operador la agrega",
    ),
    (
        STRANGER,
        "team list",
        "You have no role in agentbox yet.",
        "Todavía no tienes un rol en agentbox.",
    ),
    (
        STRANGER,
        "whoami",
        "You have no role in agentbox yet; ask an admin.",
        "Todavía no tienes un rol en agentbox; pídeselo a un administrador.",
    ),
    (
        STRANGER,
        "team create mios 3001 <#C_MIO>",
        "Only agentbox admins manage grants and teams.",
        "Solo los administradores de agentbox gestionan permisos y equipos.",
    ),
)


@pytest.mark.parametrize("language", LANGUAGES)
async def test_admin_commands_answer_in_the_callers_language(
    agentbox: Harness, language: str
) -> None:
    await _speak(agentbox, language, ADMIN, STRANGER)
    for user, command, english, spanish in ADMIN_SCRIPT:
        text = ack_text(await agentbox.slash(command, user=user))
        _check(text, english, spanish, language)


def test_a_directory_error_is_english_for_the_operator_and_localized_for_the_user() -> None:
    error = DirectoryError(N_("A team named `{name}` exists already."), name="ventas")
    assert str(error) == "A team named `ventas` exists already."
    with use_language("es"):
        assert error.localized(_) == "Ya existe un equipo llamado `ventas`."
        assert str(error) == "A team named `ventas` exists already."


def test_an_internal_error_is_stored_in_english_and_shown_in_the_readers_language() -> None:
    stored = InternalError("KeyError").user_message
    assert stored == (
        "agentbox failed while handling the call; this is a bug, please report it. (KeyError)"
    )
    with use_language("es"):
        assert errors.localize(stored, _) == (
            "agentbox falló al procesar la solicitud; es un error, por favor repórtalo. (KeyError)"
        )


# --------------------------------------------------------------------------- App Home


def _sections(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {block["block_id"]: block for block in view["blocks"] if "block_id" in block}


def _text(view: dict[str, Any], block_id: str) -> str:
    return str(_sections(view)[block_id]["text"]["text"])


@pytest.mark.parametrize("language", LANGUAGES)
async def test_app_home_in_the_users_language(agentbox: Harness, language: str) -> None:
    for command in (
        f"team create ventas 1001-1003 <#{TEAM_CHANNEL}>",
        'hide dial 1001 --reason "a client complained"',
    ):
        assert ":no_entry:" not in ack_text(await agentbox.slash(command))
    await agentbox.idle()
    await _speak(agentbox, language, ADMIN, STRANGER)

    assert (await agentbox.app_home_opened(user=ADMIN)).status_code == 200
    await agentbox.idle()
    view = agentbox.slack.home_views[ADMIN]

    _check(_text(view, "roles"), "*Your roles*\n", "*Tus roles*\n", language)
    _check(
        _text(view, "teams"),
        f"*Teams*\n• *ventas*: 3 agents (1001-1003), trail in <#{TEAM_CHANNEL}> — you: admin",
        f"*Equipos*\n• *ventas*: 3 agentes (1001-1003), registro en <#{TEAM_CHANNEL}> — tú: admin",
        language,
    )
    (button,) = _sections(view)["change"]["elements"]
    assert button["text"]["text"] == (
        "Change agent buttons" if language == "en" else "Cambiar botones"
    )
    _check(
        _text(view, "approvals"),
        "*Waiting for your approval*\nNothing right now.",
        "*Esperando tu aprobación*\nNada por ahora.",
        language,
    )
    # What status and history say (commands/reads.py), under the section titles.
    _check(_text(view, "hidden"), "`dial`: 1 agent (1001)", "`dial`: 1 agente (1001)", language)
    _check(_text(view, "recent"), "*Recent activity*\n", "*Actividad reciente*\n", language)
    _check(
        view["blocks"][-1]["elements"][0]["text"],
        "at {time}|",
        "a las {time}|",
        language,
    )
    _check(
        view["blocks"][-1]["elements"][0]["text"],
        "UTC>. `/agentbox help` lists every command.",
        "UTC>. `/agentbox help` muestra todos los comandos.",
        language,
    )

    assert (await agentbox.app_home_opened(user=STRANGER)).status_code == 200
    await agentbox.idle()
    _check(
        _text(agentbox.slack.home_views[STRANGER], "roles"),
        f"You have no role in agentbox yet, so there is nothing to show you here. Ask an admin "
        f"(<@{ADMIN}>) for one.",
        f"Todavía no tienes un rol en agentbox, así que aquí no hay nada que mostrarte. "
        f"Pídeselo a un administrador (<@{ADMIN}>).",
        language,
    )


async def test_a_home_published_outside_the_users_request_is_in_their_language(
    agentbox: Harness,
) -> None:
    """After a change (followed in the background, maybe after a restart), the Home is
    published again: in its owner's language, not in the language of whatever task does it."""
    await _speak(agentbox, "es", ADMIN)
    with use_language("en"):
        await home.publish(agentbox.services, agentbox.app_client, Requester(user_id=ADMIN))
    assert _text(agentbox.slack.home_views[ADMIN], "teams") == "*Equipos*\nTodavía no hay equipos."


def _overview(roles: frozenset[Role], admins: tuple[str, ...] = ()) -> UserOverview:
    teams = (TeamView("ventas", ("1001",), TEAM_CHANNEL, tuple(roles)),) if roles else ()
    return UserOverview("U_ME", roles, (), teams, admins)


@pytest.mark.parametrize("language", LANGUAGES)
def test_home_approvals_and_the_first_admins_hint_in_both_languages(language: str) -> None:
    now = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    approvals = [PendingApproval(n, "U_REQ", "hide dial 1001") for n in range(1, 23)]
    with use_language(language):
        view = home_view(_overview(frozenset({Role.SUPERVISOR})), approvals, now)
        lonely = home_view(_overview(frozenset()), [], now)

    sections = _sections(view)
    _check(
        _text(view, "approvals"),
        "*Waiting for your approval* (22)",
        "*Esperando tu aprobación* (22)",
        language,
    )
    _check(
        _text(view, "approval-1"),
        "Change #1 from <@U_REQ>: `hide dial 1001`",
        "Cambio #1 de <@U_REQ>: `hide dial 1001`",
        language,
    )
    approve, reject = sections["approval-actions-1"]["elements"]
    assert (approve["text"]["text"], reject["text"]["text"]) == (
        ("Approve", "Reject") if language == "en" else ("Aprobar", "Rechazar")
    )
    _check(_text(view, "approvals-more"), "…and 2 more.", "…y 2 más.", language)
    _check(
        _text(view, "teams"),
        "1 agent (1001)",
        "1 agente (1001)",
        language,
    )
    _check(
        _text(lonely, "roles"),
        "The operator names the first admins in `AGENTBOX_ADMINS`.",
        "El operador define los primeros administradores en `AGENTBOX_ADMINS`.",
        language,
    )


# --------------------------------------------------------------------------- the change modal


@pytest.mark.parametrize("language", LANGUAGES)
async def test_the_change_modal_and_its_errors_in_the_users_language(
    agentbox: Harness, language: str
) -> None:
    assert ":no_entry:" not in ack_text(
        await agentbox.slash(f"team create ventas 1001-1003 <#{TEAM_CHANNEL}>")
    )
    await _speak(agentbox, language, ADMIN)
    assert (await agentbox.shortcut(SHORTCUT_CALLBACK_ID)).status_code == 200
    await agentbox.idle()
    view = agentbox.slack.opened_views[-1]

    blocks = {block["block_id"]: block for block in view["blocks"]}
    labels = [block["label"]["text"] for block in view["blocks"]]
    buttons = [o["text"]["text"] for o in blocks["buttons"]["element"]["options"]]
    durations = [o["text"]["text"] for o in blocks["duration"]["element"]["options"]]
    teams = [o["text"]["text"] for o in blocks["team"]["element"]["options"]]
    if language == "en":
        assert view["title"]["text"] == "Change agent buttons"
        assert labels == ["Show or hide", "Buttons", "Team", "Agents", "For how long", "Reason"]
        assert buttons[0] == "Call button (dial)" and durations[:2] == [
            "Until changed again",
            "15 minutes",
        ]
        assert teams == ["ventas (3 agents)"]
        assert (view["submit"]["text"], view["close"]["text"]) == ("Run", "Cancel")
    else:
        assert view["title"]["text"] == "Cambiar botones"
        assert labels == [
            "Mostrar u ocultar",
            "Botones",
            "Equipo",
            "Agentes",
            "Por cuánto tiempo",
            "Motivo",
        ]
        assert buttons == [
            "Botón de marcar (dial)",
            "Panel de tipificación (disposition)",
            "Botón de colgar (hungup)",
        ]
        assert durations[:3] == ["Hasta que se cambie de nuevo", "15 minutos", "30 minutos"]
        assert blocks["duration"]["element"]["initial_option"]["text"]["text"] == durations[0]
        assert teams == ["ventas (3 agentes)"]
        assert (view["submit"]["text"], view["close"]["text"]) == ("Ejecutar", "Cancelar")
        assert blocks["reason"]["hint"]["text"] == (
            "Se guarda en el registro de auditoría de agentbox."
        )
    assert len(view["title"]["text"]) <= 24  # Slack's limit for a modal's title

    values = {
        "buttons": {"buttons": {"type": "checkboxes", "selected_options": []}},
        "team": {
            "team": {
                "type": "static_select",
                "selected_option": {"text": {"type": "plain_text", "text": "x"}, "value": "nadie"},
            }
        },
    }
    response = await agentbox.view_submission(view, values)
    errors_shown = response.json()["errors"]
    _check(
        errors_shown["display"],
        "Choose whether to show or hide the buttons.",
        "Elige si quieres mostrar u ocultar los botones.",
        language,
    )
    _check(
        errors_shown["buttons"],
        "Choose at least one button.",
        "Elige al menos un botón.",
        language,
    )
    _check(
        errors_shown["team"],
        "There is no team named nadie.",
        "No hay ningún equipo llamado nadie.",
        language,
    )


#: (form, field, English, Spanish): what ChangeForm says is wrong with a field.
FORM_ERRORS = (
    (
        ChangeForm("hide", ["mute"], agents="1001"),
        "buttons",
        "`mute` is not a button: choose dial, disposition, hungup (or all).",
        "`mute` no es un botón: elige dial, disposition, hungup (o all).",
    ),
    (
        ChangeForm("hide", ["dial"], teams=["Ventas!"]),
        "team",
        "`ventas!` is not a team name.",
        "`ventas!` no es un nombre de equipo.",
    ),
    (
        ChangeForm("hide", ["dial"]),
        "agents",
        "Choose a team or type agent ids, like `1001, 1002-1010`.",
        "Elige un equipo o escribe ids de agentes, como `1001, 1002-1010`.",
    ),
    (
        ChangeForm("hide", ["dial"], agents="1001", duration="soon"),
        "duration",
        "`soon` is not a duration: write it like `30m` or `2h`.",
        "`soon` no es una duración: escríbela como `30m` o `2h`.",
    ),
    (
        ChangeForm("hide", ["dial"], agents="1001", reason="x" * 1000),
        "reason",
        "Keep the reason to",
        "El motivo puede tener como máximo",
    ),
    (
        ChangeForm("hide", ["dial"], agents="1001", reason="\" \u201d \u00bb '"),
        "reason",
        "The reason uses every kind of quote mark; leave one kind out.",
        "El motivo usa todos los tipos de comillas; deja fuera un tipo.",
    ),
)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("form", "field", "english", "spanish"), FORM_ERRORS)
def test_each_form_error_in_both_languages(
    form: ChangeForm, field: str, english: str, spanish: str, language: str
) -> None:
    with use_language(language):
        found = form.command_text()
    assert isinstance(found, dict)
    assert found[field].startswith(english if language == "en" else spanish), found[field]


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_modal_for_someone_who_may_not_change_buttons(language: str) -> None:
    with use_language(language):
        viewer = modal_view(_overview(frozenset({Role.VIEWER})))
        stranger = modal_view(_overview(frozenset(), admins=(ADMIN,)))
        alone = modal_view(_overview(frozenset()))
    _check(
        viewer["blocks"][0]["text"]["text"],
        "Your role is viewer: you may see status and history, not change buttons.",
        "Tu rol es viewer: puedes ver el estado y el historial, no cambiar botones.",
        language,
    )
    assert viewer["close"]["text"] == ("Close" if language == "en" else "Cerrar")
    _check(
        stranger["blocks"][0]["text"]["text"],
        f"You have no role in agentbox yet. Ask <@{ADMIN}> for one.",
        f"Todavía no tienes un rol en agentbox. Pídeselo a <@{ADMIN}>.",
        language,
    )
    _check(
        alone["blocks"][0]["text"]["text"],
        "You have no role in agentbox yet. Ask an admin for one.",
        "Todavía no tienes un rol en agentbox. Pídeselo a un administrador.",
        language,
    )


# --------------------------------------------------------------------------- the workflow step


@pytest.mark.parametrize("language", LANGUAGES)
async def test_the_workflow_step_speaks_the_language_of_who_runs_it(
    agentbox: Harness, language: str
) -> None:
    await _speak(agentbox, language, ADMIN)
    user = {"user_context": {"id": ADMIN, "secret": "c2VjcmV0"}}

    async def run(inputs: dict[str, Any], execution: str) -> tuple[str, Any]:
        response = await agentbox.function_executed(
            FUNCTION_CALLBACK_ID, inputs, execution_id=execution
        )
        assert response.status_code == 200, response.text
        await agentbox.idle()
        return agentbox.slack.function_results[execution]

    kind, outputs = await run(
        {**user, "display": "hide", "buttons": "dial", "agents": "1001"}, "Fx1"
    )
    assert kind == "success"
    assert outputs["results"] == (
        "1001: dial hidden" if language == "en" else "1001: dial ocultado"
    )

    kind, error = await run({**user, "display": "hide", "buttons": "mute"}, "Fx2")
    assert kind == "error"
    _check(
        error,
        "buttons: mute is not a button: choose dial, disposition, hungup (or all).",
        "buttons: mute no es un botón: elige dial, disposition, hungup (o all).",
        language,
    )

    kind, error = await run({"display": "hide", "buttons": "dial", "agents": "1001"}, "Fx3")
    assert kind == "error"
    # Nobody is known to run it: the workspace's default language (English here).
    assert error.startswith("This step needs the person who runs the workflow")

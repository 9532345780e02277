"""``/agentbox lang``: the language agentbox answers a user in, as the user chooses it.

Anyone may choose their own language (and only their own: the choice is stored for the caller).
How a request's language is found is bot/language.py's; this module only reads it (commands/i18n).
"""

from __future__ import annotations

from commands.grammar import AUTOMATIC_LANGUAGE, LanguageCommand
from commands.i18n import Language, Source, _, current, language_name, use_language
from storage.changes import Requester
from storage.settings_store import UserSettings


class LanguageChoices:
    def __init__(self, settings: UserSettings) -> None:
        self._settings = settings

    async def handle(self, requester: Requester, command: LanguageCommand) -> str:
        """Choose, drop or explain the caller's language; the answer is in the language that
        applies from now on."""
        here = current()
        if command.language is None:
            return _explain(here)
        if command.language == AUTOMATIC_LANGUAGE:
            await self._settings.set_language(requester.user_id, None)
            source = Source.SLACK if here.slack else Source.DEFAULT
            with use_language(Language(here.automatic, source, here.slack, here.default)):
                if here.slack:
                    return _(
                        "agentbox follows your Slack language again: it answers you in {name} "
                        "(`{code}`)."
                    ).format(name=language_name(here.automatic), code=here.automatic)
                return _(
                    "agentbox answers you in this workspace's default language again: {name} "
                    "(`{code}`). Slack does not tell agentbox yours, or agentbox does not speak it."
                ).format(name=language_name(here.automatic), code=here.automatic)
        await self._settings.set_language(requester.user_id, command.language)
        with use_language(Language(command.language, Source.CHOICE, here.slack, here.default)):
            return _(
                "From now on agentbox answers you in {name}. `/agentbox lang auto` follows your "
                "Slack language again."
            ).format(name=language_name(command.language))


def _explain(language: Language) -> str:
    name, code = language_name(language.code), language.code
    if language.source is Source.CHOICE:
        return _(
            "agentbox answers you in {name} (`{code}`): you chose it. `/agentbox lang auto` "
            "follows your Slack language again."
        ).format(name=name, code=code)
    if language.source is Source.SLACK:
        return _(
            "agentbox answers you in {name} (`{code}`), your Slack language. "
            "`/agentbox lang en` or `/agentbox lang es` chooses another one."
        ).format(name=name, code=code)
    return _(
        "agentbox answers you in {name} (`{code}`), this workspace's default "
        "(`AGENTBOX_LANGUAGE`): Slack does not tell agentbox your language, or agentbox does not "
        "speak it. `/agentbox lang en` or `/agentbox lang es` chooses one."
    ).format(name=name, code=code)

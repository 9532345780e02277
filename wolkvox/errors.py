"""Every way a wolkvox call can fail, each with words a supervisor understands.

``transient`` errors are worth retrying (the same call may succeed later); permanent ones are not.
No message here ever contains the token: errors are built from wolkvox's answer, never from the
request headers.

The sentences are English, marked for translation: a call's message is stored (``calls.message``)
and read later by whoever looks, so it is kept in English and shown in the reader's language with
:func:`localize`.
"""

from __future__ import annotations

from collections.abc import Callable


def N_(message: str) -> str:
    """Mark ``message`` for translation (gettext's marker, as in commands.i18n, which the core
    owns; wolkvox depends on nothing there)."""
    return message


class WolkvoxError(Exception):
    """Base of every failure of a wolkvox call."""

    kind: str = "error"
    transient: bool = False
    #: True when every call with the same token would fail the same way (a bad or exhausted
    #: token): the calls still queued for it are failed at once instead of being sent.
    token_wide: bool = False
    explanation: str = N_("wolkvox refused the call.")

    def __init__(self, detail: str = "", *, http_status: int | None = None) -> None:
        self.detail = detail
        self.http_status = http_status
        super().__init__(self.user_message)

    @property
    def user_message(self) -> str:
        """A sentence for the person who asked, with wolkvox's own words when it gave any.

        In English (it is stored); :func:`localize` shows it in the reader's language."""
        if self.detail:
            return f"{self.explanation} ({self.detail})"
        return self.explanation


class BadRequest(WolkvoxError):
    kind = "bad_request"
    explanation = N_(
        "wolkvox rejected the request as malformed; this is a bug in agentbox, please report it."
    )


class MissingToken(WolkvoxError):
    kind = "missing_token"
    token_wide = True
    explanation = N_("No wolkvox token is configured for this operation; ask an admin to set one.")


class InvalidToken(WolkvoxError):
    kind = "invalid_token"
    token_wide = True
    explanation = N_(
        "wolkvox says the operation's token is invalid or expired; ask an admin to renew it."
    )


class UnusableToken(InvalidToken):
    """The configured token cannot even be sent (characters a header cannot carry)."""

    explanation = N_(
        "The operation's wolkvox token is malformed, so agentbox did not send the call; "
        "ask an admin to set the token again."
    )


class QuotaExceeded(WolkvoxError):
    kind = "quota_exceeded"
    token_wide = True
    explanation = N_(
        "The operation's wolkvox token has used up its daily quota; "
        "try again tomorrow or ask an admin."
    )


class TooManySimultaneous(WolkvoxError):
    kind = "too_many_simultaneous"
    transient = True
    explanation = N_("wolkvox was busy with other calls on the same token.")


class Maintenance(WolkvoxError):
    kind = "maintenance"
    transient = True
    explanation = N_(
        "wolkvox refused the call, most likely for server maintenance "
        "(or this server's IP is not allowed)."
    )


class Timeout(WolkvoxError):
    kind = "timeout"
    transient = True
    explanation = N_("wolkvox did not answer in time.")


class ConnectionFailed(WolkvoxError):
    kind = "connection_failed"
    transient = True
    explanation = N_("agentbox could not reach wolkvox.")


class ServerError(WolkvoxError):
    kind = "server_error"
    transient = True
    explanation = N_("wolkvox had an internal error.")


class UnexpectedAnswer(WolkvoxError):
    """Not an answer what wolkvox documents: HTML, an empty body, JSON of the wrong shape."""

    kind = "unexpected_answer"
    transient = True
    explanation = N_("wolkvox gave an answer agentbox could not understand.")


class InvalidServer(WolkvoxError):
    """The operation's server code cannot be a wolkvox server code.

    Refused before any byte is sent: the code becomes part of the host name, so a malformed one
    could send the token to a host that is not wolkvox.
    """

    kind = "invalid_server"
    token_wide = True
    explanation = N_("The operation's wolkvox server code is not valid; ask an admin to check it.")


def _error_classes() -> list[type[WolkvoxError]]:
    """:class:`WolkvoxError` and every subclass of it (defined elsewhere too)."""
    found: list[type[WolkvoxError]] = []
    pending: list[type[WolkvoxError]] = [WolkvoxError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending += cls.__subclasses__()
    return found


def _explanations() -> list[str]:
    """Every error's sentence, the longest first."""
    return sorted({cls.explanation for cls in _error_classes()}, key=len, reverse=True)


def transient_kinds() -> frozenset[str]:
    """The ``kind`` of every error worth trying again later (a call stores its error's kind)."""
    return frozenset(cls.kind for cls in _error_classes() if cls.transient)


def localize(message: str, translate: Callable[[str], str]) -> str:
    """A call's stored message in the reader's language; ``translate`` is their gettext.

    wolkvox's own words (in parentheses) stay as wolkvox said them, and a message that is not one
    of these sentences (wolkvox's answer to a successful call) is returned as it is.
    """
    for explanation in _explanations():
        if message == explanation or message.startswith(f"{explanation} ("):
            return translate(explanation) + message[len(explanation) :]
    return message

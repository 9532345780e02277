"""Every way a wolkvox call can fail, each with words a supervisor understands.

``transient`` errors are worth retrying (the same call may succeed later); permanent ones are not.
No message here ever contains the token: errors are built from wolkvox's answer, never from the
request headers.
"""

from __future__ import annotations


class WolkvoxError(Exception):
    """Base of every failure of a wolkvox call."""

    kind: str = "error"
    transient: bool = False
    #: True when every call with the same token would fail the same way (a bad or exhausted
    #: token): the calls still queued for it are failed at once instead of being sent.
    token_wide: bool = False
    explanation: str = "wolkvox refused the call."

    def __init__(self, detail: str = "", *, http_status: int | None = None) -> None:
        self.detail = detail
        self.http_status = http_status
        super().__init__(self.user_message)

    @property
    def user_message(self) -> str:
        """A sentence for the person who asked, with wolkvox's own words when it gave any."""
        if self.detail:
            return f"{self.explanation} ({self.detail})"
        return self.explanation


class BadRequest(WolkvoxError):
    kind = "bad_request"
    explanation = (
        "wolkvox rejected the request as malformed; this is a bug in agentbox, please report it."
    )


class MissingToken(WolkvoxError):
    kind = "missing_token"
    token_wide = True
    explanation = "No wolkvox token is configured for this operation; ask an admin to set one."


class InvalidToken(WolkvoxError):
    kind = "invalid_token"
    token_wide = True
    explanation = (
        "wolkvox says the operation's token is invalid or expired; ask an admin to renew it."
    )


class UnusableToken(InvalidToken):
    """The configured token cannot even be sent (characters a header cannot carry)."""

    explanation = (
        "The operation's wolkvox token is malformed, so agentbox did not send the call; "
        "ask an admin to set the token again."
    )


class QuotaExceeded(WolkvoxError):
    kind = "quota_exceeded"
    token_wide = True
    explanation = (
        "The operation's wolkvox token has used up its daily quota; "
        "try again tomorrow or ask an admin."
    )


class TooManySimultaneous(WolkvoxError):
    kind = "too_many_simultaneous"
    transient = True
    explanation = "wolkvox was busy with other calls on the same token."


class Maintenance(WolkvoxError):
    kind = "maintenance"
    transient = True
    explanation = (
        "wolkvox refused the call, most likely for server maintenance "
        "(or this server's IP is not allowed)."
    )


class Timeout(WolkvoxError):
    kind = "timeout"
    transient = True
    explanation = "wolkvox did not answer in time."


class ConnectionFailed(WolkvoxError):
    kind = "connection_failed"
    transient = True
    explanation = "agentbox could not reach wolkvox."


class ServerError(WolkvoxError):
    kind = "server_error"
    transient = True
    explanation = "wolkvox had an internal error."


class UnexpectedAnswer(WolkvoxError):
    """Not an answer what wolkvox documents: HTML, an empty body, JSON of the wrong shape."""

    kind = "unexpected_answer"
    transient = True
    explanation = "wolkvox gave an answer agentbox could not understand."


class InvalidServer(WolkvoxError):
    """The operation's server code cannot be a wolkvox server code.

    Refused before any byte is sent: the code becomes part of the host name, so a malformed one
    could send the token to a host that is not wolkvox.
    """

    kind = "invalid_server"
    token_wide = True
    explanation = "The operation's wolkvox server code is not valid; ask an admin to check it."

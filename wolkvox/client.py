"""The HTTP client for wolkvox's agent_display API.

One :class:`WolkvoxClient` holds one small connection pool (an httpx transport) per token (the
calls of a token reuse their keep-alive connections) and turns every answer into either a
:class:`DisplayResult` or a :class:`WolkvoxError` subclass.
It does no retrying and no queueing: the per-token dispatcher decides what to retry (the
``transient`` flag of the error) and keeps the calls per token within wolkvox's limit.

The pools speak httpx's transport API (``httpx.Request`` in, ``httpx.Response`` out), but they
are :class:`AiohttpTransport`: aiohttp (already a dependency, for the server side) moves the bytes
instead of httpcore/h11. httpcore's pure-Python HTTP/1.1 and its anyio layer made a call cost
about 0.75 ms of CPU on a 2-core machine, against about 0.5 ms through this transport; with many
tokens at work agentbox is CPU-bound, so that is throughput. The transport maps aiohttp's failures
onto httpx's exceptions of the same meaning (connect and read timeouts, connection and protocol
errors), so everything above it (the deadline, the body limit, error kinds) stays as httpx defines
it; only the write timeout has no aiohttp counterpart (the deadline bounds a stuck send).
The client hands each request to the transport itself, without an ``httpx.AsyncClient``: the
client's per-call machinery (cookie jar, auth and redirect flow, event hooks, header merging) is
unused here and cost about 0.1 ms of CPU per call. So it does the little of it that matters
itself: the default headers, the timeouts in the request's extensions (as httpx's client puts
them), closing the response; redirects are not followed because nothing follows them, and no
cookie is ever kept or sent.
The ``httpx-aiohttp`` package does the same but maps a refused connection and a dropped one to
``httpx.ConnectTimeout`` (a Timeout here, not a ConnectionFailed), and lets aiohttp's own
exception through for a malformed answer.

The token is a secret. It travels only in the ``wolkvox-token`` header; log lines name it by its
fingerprint, and every text taken from an answer is redacted before it reaches an error or a
result, so a server that echoes the token back cannot make it leak.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from urllib.parse import quote

import aiohttp
import httpx
from yarl import URL

from .errors import (
    BadRequest,
    ConnectionFailed,
    InvalidServer,
    InvalidToken,
    Maintenance,
    MissingToken,
    QuotaExceeded,
    ServerError,
    Timeout,
    TooManySimultaneous,
    UnexpectedAnswer,
    UnusableToken,
    WolkvoxError,
)
from .model import Credentials, DisplayRequest, DisplayResult

__all__ = [
    "AGENT_DISPLAY_PATH",
    "CALL_DEADLINE_SECONDS",
    "DEFAULT_BASE_URL",
    "MAX_BODY_BYTES",
    "AiohttpTransport",
    "WolkvoxClient",
    "base_url_from_env",
    "interpret_answer",
]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://wv{server}.wolkvox.com"
#: wolkvox documents 60 seconds per call at most.
CALL_DEADLINE_SECONDS = 60.0
AGENT_DISPLAY_PATH = "/api/v2/agentbox.php"

#: The most bytes of an answer read; agent_display answers are a few dozen bytes.
MAX_BODY_BYTES = 64 * 1024
#: The most characters of wolkvox's own words put into an error's ``detail``.
MAX_DETAIL_CHARS = 200
_CONNECT_TIMEOUT = 10.0
_WRITE_TIMEOUT = 10.0
#: One pool per token: wolkvox allows 2 calls in flight per token (the dispatcher keeps to that);
#: the room above it lets a caller see wolkvox refuse a third. Small pools keep idle sockets few
#: with many tokens at work. aiohttp has no separate idle cap: a pool keeps up to
#: ``max_connections`` idle connections, each for ``keepalive_expiry`` seconds.
_POOL_LIMITS = httpx.Limits(max_connections=4, max_keepalive_connections=2, keepalive_expiry=30.0)
#: Sent with every call, in this order, before the two wolkvox headers: what httpx's client sent
#: by default, with agentbox's own User-Agent and Accept. httpx always decodes gzip and deflate.
_DEFAULT_HEADERS = {
    "Accept-Encoding": "gzip, deflate",
    "Connection": "keep-alive",
    "User-Agent": "agentbox",
    "Accept": "application/json",
}

# The server code becomes part of a host name: anything but these characters could point the
# request (and its token header) somewhere else.
_SERVER_CODE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Visible ASCII only: anything else cannot travel in an HTTP header (and h11 would put the
# offending value, i.e. the token, in its exception message; aiohttp refuses control characters
# without quoting them, but sends other non-ASCII as UTF-8 that wolkvox would not recognise).
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]")
_WHITESPACE = re.compile(r"\s+")
_REDACTED = "[redacted]"


def base_url_from_env(environ: Mapping[str, str] | None = None) -> str:
    """``WOLKVOX_BASE_URL`` when set and not blank, else :data:`DEFAULT_BASE_URL`."""
    env = os.environ if environ is None else environ
    return env.get("WOLKVOX_BASE_URL", "").strip() or DEFAULT_BASE_URL


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport that sends requests with aiohttp (HTTP/1.1, keep-alive, no proxies).

    One instance is one connection pool: ``limits.max_connections`` connections at most (a request
    beyond them waits for one, within the ``pool`` timeout) and ``limits.keepalive_expiry``
    seconds of idleness before a connection is closed. Its aiohttp session is made at the first
    request, on the running event loop, and closed by :meth:`aclose`.

    It only moves bytes, as an httpx transport does: no redirects (a 3xx is returned as is), no
    cookie jar, no decompression (the body comes as sent; ``httpx.Response.aiter_bytes`` undoes its
    Content-Encoding). Its timeouts are the request's ``timeout`` extension, as
    ``httpx.Timeout.as_dict()`` gives them: ``connect`` bounds making a connection, ``read``
    each wait for the answer or a piece of its body, ``pool`` getting a connection at all (waiting
    for a free one plus making it, as aiohttp counts it). aiohttp has no write timeout: a request's
    bytes are handed to the socket buffer without waiting, and a caller's own deadline bounds the
    rest. Failures come out as the httpx exception of the same meaning (:func:`_httpx_error`).
    The caller closes every response it gets (``await response.aclose()``), which gives its
    connection back to the pool, or drops it when the body was not read to the end.
    """

    def __init__(self, *, limits: httpx.Limits, ssl_context: ssl.SSLContext) -> None:
        self._limits = limits
        self._ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None

    def _new_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0,
            limit_per_host=0,
            keepalive_timeout=self._limits.keepalive_expiry or 0,
            ssl=self._ssl,
        )
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
            # No total: every request brings the timeouts httpx gives it.
            timeout=aiohttp.ClientTimeout(),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session
        if session is None:
            session = self._session = self._new_session()
        timeout = request.extensions.get("timeout", {})
        content = await request.aread()
        failure: httpx.TransportError | None = None
        try:
            response = await session.request(
                request.method,
                # httpx has encoded the URL already; yarl must not encode it again.
                URL(str(request.url), encoded=True),
                headers=request.headers.multi_items(),
                data=content or None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    connect=timeout.get("pool"),
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            failure = _httpx_error(exc)
        if failure is not None:
            # Raised outside the except block: aiohttp's exception (whose repr shows the request's
            # headers, the token among them) is neither the cause nor the context of this one.
            raise failure
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_AiohttpBody(response),
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("ascii", "replace"),
            },
        )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class _AiohttpBody(httpx.AsyncByteStream):
    """An answer's body as aiohttp receives it. Closed before its end, the connection is dropped
    rather than kept alive (aiohttp does not reuse a connection with unread data on it)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        failure: httpx.TransportError | None = None
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            failure = _httpx_error(exc)
        if failure is not None:
            raise failure

    async def aclose(self) -> None:
        self._response.release()


def _httpx_error(exc: BaseException) -> httpx.TransportError:
    """The httpx exception for an aiohttp (or socket) failure, with its text but not its object.

    aiohttp's exceptions carry the request (headers included) in their ``repr`` and attributes;
    only their text is kept, which names the host and the URL, never a header. Its parser's
    complaints quote the offending bytes of the answer, cut at some length: a token echoed there
    could be cut in two and escape redaction, so only the words before the quote are kept.
    """
    if isinstance(exc, aiohttp.ClientResponseError):
        message = _headline(exc.message)
    elif isinstance(exc, aiohttp.ClientPayloadError):
        message = _headline(str(exc))
    else:
        message = str(exc)
    message = message or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message)
    if isinstance(exc, TimeoutError):
        # aiohttp's read timeouts (SocketTimeoutError, ServerTimeoutError) and its pool timeout;
        # a caller's asyncio.timeout() reaches here as CancelledError, never as TimeoutError.
        return httpx.ReadTimeout(message)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message)
    if isinstance(
        exc,
        aiohttp.ClientResponseError | aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError,
    ):
        # A malformed answer, a body cut short, or the connection closed before any answer.
        return httpx.RemoteProtocolError(message)
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return httpx.UnsupportedProtocol(message)
    if isinstance(exc, aiohttp.ClientConnectionError | OSError):
        return httpx.ReadError(message)
    return httpx.TransportError(message)


def _headline(text: str) -> str:
    """aiohttp's words about a malformed answer, before the answer's own bytes that follow them."""
    return re.split(r"[:\n]", text, maxsplit=1)[0].strip()


class WolkvoxClient:
    """Calls wolkvox's agent_display; every failure comes out as a :class:`WolkvoxError`.

    ``base_url`` may contain ``{server}``, replaced by each call's server code; without it the URL
    is used as is (the simulator, a staging proxy). A ``transport`` passed in is used for every
    call and not closed; without one, each token gets an :class:`AiohttpTransport` (a connection
    pool) of its own, closed by :meth:`aclose`. Redirects are never followed: following one would
    resend the token header to wherever it points, and a redirect is not a documented answer.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        deadline: float = CALL_DEADLINE_SECONDS,
    ) -> None:
        if deadline <= 0:
            raise ValueError("deadline must be positive")
        self._base_url = base_url.strip().rstrip("/")
        self._deadline = deadline
        self._timeout = httpx.Timeout(
            deadline,
            connect=min(_CONNECT_TIMEOUT, deadline),
            write=min(_WRITE_TIMEOUT, deadline),
        )
        self._transport = transport  # given: used for every call, not closed
        # Loading the CA bundle takes tens of milliseconds: once, here, rather than in the first
        # command's first call; shared by every pool.
        self._tls = None if transport is not None else httpx.create_ssl_context(trust_env=False)
        # (server, token) -> that token's own pool, when no transport was given.
        self._pools: dict[tuple[str, str], AiohttpTransport] = {}
        self._parsed_urls: dict[str, httpx.URL] = {}

    def _new_pool(self) -> AiohttpTransport:
        assert self._tls is not None, "a client given a transport makes no pools"
        return AiohttpTransport(limits=_POOL_LIMITS, ssl_context=self._tls)

    def _pool_for(self, credentials: Credentials) -> httpx.AsyncBaseTransport:
        if self._transport is not None:
            return self._transport
        key = (credentials.server, credentials.token)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = self._new_pool()
        return pool

    @property
    def deadline(self) -> float:
        return self._deadline

    async def __aenter__(self) -> WolkvoxClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pools this client made (a ``transport`` given to it stays open)."""
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()

    def url_for(self, server: str) -> str:
        """The agent_display URL (without query) for one server code."""
        if not _SERVER_CODE.fullmatch(server):
            raise InvalidServer("it must be letters and digits, as given by wolkvox support")
        return self._base_url.replace("{server}", server) + AGENT_DISPLAY_PATH

    async def agent_display(
        self, credentials: Credentials, request: DisplayRequest
    ) -> DisplayResult:
        """Show or hide one button of one agent's softphone.

        Raises only :class:`WolkvoxError` subclasses. ``show``/``hide`` are idempotent on wolkvox's
        side, so a caller may repeat a call whose answer was lost (any ``transient`` error).
        """
        token = credentials.token
        if not token:
            raise MissingToken()
        if not _TOKEN_CHARS.fullmatch(token):
            raise UnusableToken()
        url = self.url_for(credentials.server)
        display = request.display.value
        params = {
            "agent_id": request.agent_id,
            "api": "agent_display",
            "display": display,
            "button": request.button.value,
        }
        headers = {**_DEFAULT_HEADERS, "wolkvox-token": token, "wolkvox_server": credentials.server}
        fingerprint = credentials.token_fingerprint
        log.debug(
            "wolkvox agent_display -> server=%s token=%s agent=%s display=%s button=%s",
            credentials.server,
            fingerprint,
            request.agent_id,
            display,
            request.button.value,
        )
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._deadline):
                status, content_type, body = await self._send(
                    self._pool_for(credentials), url, params, headers
                )
        except TimeoutError:
            # asyncio.timeout fired (a caller's own cancellation is not a TimeoutError).
            error: WolkvoxError = Timeout(f"no answer within {self._deadline:g} seconds")
        except httpx.TimeoutException as exc:
            error = Timeout(_describe(exc, token))
        except httpx.DecodingError as exc:
            # The server answered, but with a body its own Content-Encoding cannot undo.
            error = UnexpectedAnswer(_describe(exc, token))
        except httpx.HTTPError as exc:
            error = ConnectionFailed(_describe(exc, token))
        except (httpx.InvalidURL, ValueError, OSError) as exc:
            # Raised by httpx before any I/O (a malformed base URL) or by the socket layer.
            error = ConnectionFailed(_describe(exc, token))
        else:
            elapsed = time.monotonic() - started
            log.debug(
                "wolkvox agent_display <- HTTP %s in %.3fs token=%s (%d bytes, %s)",
                status,
                elapsed,
                fingerprint,
                len(body),
                content_type or "no content type",
            )
            return interpret_answer(status, content_type, body, token=token)
        log.debug(
            "wolkvox agent_display failed after %.3fs token=%s: %s",
            time.monotonic() - started,
            fingerprint,
            error.kind,
        )
        # ``from None``: the transport exception stays out of tracebacks of whoever logs this.
        raise error from None

    async def _send(
        self,
        transport: httpx.AsyncBaseTransport,
        url: str,
        params: dict[str, str],
        headers: dict[str, str],
    ) -> tuple[int, str, bytes]:
        """POST with an empty body; read at most :data:`MAX_BODY_BYTES` of the answer."""
        parsed = self._parsed_urls.get(url)
        if parsed is None:
            # httpx parses (and validates) a URL given as text on every request, and again when
            # it adds the query: a parsed one, kept per server, saves one of the two.
            parsed = self._parsed_urls[url] = httpx.URL(url)
        # ``params`` replaces any query of the URL, as httpx's client did. ``content=b""`` makes
        # httpx add Host and ``Content-Length: 0``.
        http_request = httpx.Request(
            "POST",
            parsed,
            params=params,
            headers=headers,
            content=b"",
            extensions={"timeout": self._timeout.as_dict()},
        )
        response = await transport.handle_async_request(http_request)
        try:
            chunks: list[bytes] = []
            size = 0
            # aiter_bytes undoes the Content-Encoding (a failure there is httpx.DecodingError).
            async for chunk in response.aiter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    break
            body = b"".join(chunks)[: MAX_BODY_BYTES + 1]
            return response.status_code, response.headers.get("content-type", ""), body
        finally:
            # Gives the connection back to the pool, or drops it when the body was not read whole.
            await response.aclose()


def interpret_answer(
    status: int, content_type: str, body: bytes, *, token: str = ""
) -> DisplayResult:
    """Turn one HTTP answer into a result or raise the matching :class:`WolkvoxError`.

    An error JSON that comes with HTTP 200 is judged by its own ``code``, and that code is what
    the error's ``http_status`` then holds.
    """
    payload = _parse_json_object(body)
    msg = _clean(payload.get("msg"), token) if payload is not None else ""
    if status == 200:
        if payload is None:
            raise UnexpectedAnswer(_describe_body(status, content_type, body), http_status=status)
        code = _parse_code(payload.get("code"))
        if code == 200:
            data = payload.get("data")
            if not isinstance(data, str) or not data.strip():
                raise UnexpectedAnswer("a success answer without a message", http_status=status)
            return DisplayResult(code=200, message=_clean(data, token, limit=500))
        if code is None:
            raise UnexpectedAnswer("JSON without a valid code", http_status=status)
        if code < 400:
            raise UnexpectedAnswer(f"HTTP 200 with code {code}", http_status=status)
        status = code
    raise _error_for(status, msg, content_type, body)


def _error_for(status: int, msg: str, content_type: str, body: bytes) -> WolkvoxError:
    upper = msg.upper()
    detail = msg or _describe_body(status, content_type, body)
    if "PLEASE ENTER THE WOLKVOX-TOKEN" in upper or status == 401:
        return MissingToken(detail, http_status=status)
    if status == 400:
        return BadRequest(detail, http_status=status)
    if status == 403:
        if "TOKEN LIMIT EXCEEDED" in upper:
            return QuotaExceeded(detail, http_status=status)
        if "SIMULTANEOUS" in upper:
            return TooManySimultaneous(detail, http_status=status)
        if "VALIDATE TOKEN" in upper:
            return InvalidToken(detail, http_status=status)
        return Maintenance(detail, http_status=status)
    if 500 <= status <= 599:
        return ServerError(detail, http_status=status)
    return UnexpectedAnswer(f"HTTP {status}: {detail}" if msg else detail, http_status=status)


def _parse_json_object(body: bytes) -> dict[str, object] | None:
    """The answer as a JSON object, or None when it is anything else (HTML, empty, a list …)."""
    try:
        value = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _parse_code(value: object) -> int | None:
    """wolkvox documents ``code`` as a string; other endpoints send a number. Accept both."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


def _clean(value: object, token: str, *, limit: int = MAX_DETAIL_CHARS) -> str:
    """wolkvox's words made safe to show: one line, no control characters, no token, capped."""
    if not isinstance(value, str):
        return ""
    text = _CONTROL_CHARS.sub("", _WHITESPACE.sub(" ", value))
    text = _WHITESPACE.sub(" ", text).strip()
    text = _redact(text, token)
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def _redact(text: str, token: str) -> str:
    if not token:
        return text
    for variant in {token, quote(token, safe=""), quote(token)}:
        text = re.sub(re.escape(variant), _REDACTED, text, flags=re.IGNORECASE)
    if token.lower() in text.lower():
        # Only possible when the replacement itself recreates the token (a token like "]").
        return "[withheld: it contained the token]"
    return text


def _describe_body(status: int, content_type: str, body: bytes) -> str:
    if not body.strip():
        return f"HTTP {status} with an empty body"
    if len(body) > MAX_BODY_BYTES:
        return f"HTTP {status} with an oversized body"
    kind = content_type.split(";", 1)[0].strip() or "unknown type"
    if _parse_json_object(body) is None:
        return f"HTTP {status} with a non-JSON body ({kind})"
    return f"HTTP {status} with JSON of an unexpected shape"


def _describe(exc: BaseException, token: str) -> str:
    """A transport failure in a few words; the library's text is redacted like wolkvox's."""
    text = _clean(str(exc), token)
    name = type(exc).__name__
    return f"{name}: {text}" if text else name

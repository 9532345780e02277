"""WolkvoxClient against the simulator and tiny ad-hoc servers, all over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from wolkvox.client import (
    AGENT_DISPLAY_PATH,
    CALL_DEADLINE_SECONDS,
    DEFAULT_BASE_URL,
    MAX_BODY_BYTES,
    AiohttpTransport,
    WolkvoxClient,
    base_url_from_env,
    interpret_answer,
)
from wolkvox.errors import (
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
    WolkvoxError,
)
from wolkvox.model import Button, Credentials, Display, DisplayRequest, DisplayResult
from wolkvox.simulator import CLIENT_CLOSED, Simulator, SimulatorConfig

TOKEN = "s3cr3t-T0KEN-4c1d9e7f0b2a"
CREDS = Credentials(server="0015", token=TOKEN)
HIDE = DisplayRequest(agent_id="1001", display=Display.HIDE, button=Button.DISPOSITION)
SHOW = DisplayRequest(agent_id="1001", display=Display.SHOW, button=Button.DISPOSITION)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[str]:
    """A throwaway HTTP server answering every method and path with ``handler``; yields its URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def answering(status: int, body: bytes | str, content_type: str = "application/json") -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        raw = body.encode() if isinstance(body, str) else body
        return web.Response(status=status, body=raw, content_type=content_type)

    return handler


def wolkvox_body(code: Any, error: str | None, msg: str, data: Any = None) -> str:
    return json.dumps({"code": code, "error": error, "msg": msg, "data": data})


def closed_port() -> int:
    """A port nothing listens on: bind one, then let it go."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def call_error(base_url: str, *, creds: Credentials = CREDS, **kwargs: Any) -> WolkvoxError:
    async with WolkvoxClient(base_url, **kwargs) as client:
        with pytest.raises(WolkvoxError) as info:
            await client.agent_display(creds, HIDE)
    return info.value


def assert_no_token(error: WolkvoxError, token: str = TOKEN) -> None:
    for text in (str(error), error.user_message, error.detail, repr(error), repr(error.args)):
        assert token not in text
        assert token.lower() not in text.lower()


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(SimulatorConfig(tokens=frozenset({TOKEN}))) as simulator:
        yield simulator


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[WolkvoxClient]:
    async with WolkvoxClient(sim.url) as wolkvox:
        yield wolkvox


# -- success ------------------------------------------------------------------------------------


async def test_success_against_the_simulator(sim: Simulator, client: WolkvoxClient) -> None:
    result = await client.agent_display(CREDS, HIDE)

    assert result == DisplayResult(code=200, message="Agentbox has been hide")
    assert sim.button_state("1001", "disposition") == "hide"
    assert (await client.agent_display(CREDS, SHOW)).message == "Agentbox has been show"
    assert sim.button_state("1001", "disposition") == "show"


@pytest.mark.parametrize("code", ["200", 200, " 200 ", 200.0])
async def test_success_code_as_string_or_number(code: Any) -> None:
    body = wolkvox_body(code, None, "default", "Agentbox has been hide")
    async with serve(answering(200, body)) as url, WolkvoxClient(url) as client:
        result = await client.agent_display(CREDS, HIDE)
    assert result == DisplayResult(code=200, message="Agentbox has been hide")


async def test_success_with_a_byte_order_mark_and_gzip() -> None:
    body = ("\ufeff" + wolkvox_body(200, None, "default", "Agentbox has been show")).encode()

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=gzip.compress(body),
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )

    async with serve(handler) as url, WolkvoxClient(url) as client:
        result = await client.agent_display(CREDS, SHOW)
    assert result.message == "Agentbox has been show"


async def test_a_body_its_content_encoding_cannot_undo_is_an_unexpected_answer() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=b"not gzip at all " + TOKEN.encode(),
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )

    async with serve(handler) as url:
        err = await call_error(url)
    assert isinstance(err, UnexpectedAnswer)
    assert err.detail.startswith("DecodingError")
    assert_no_token(err)


async def test_the_request_is_exactly_as_documented() -> None:
    seen: list[dict[str, Any]] = []

    async def record(request: web.Request) -> web.StreamResponse:
        seen.append(
            {
                "method": request.method,
                "path": request.path,
                "query_string": request.query_string,
                "query": list(request.query.items()),
                "headers": request.headers.copy(),
                "body": await request.read(),
            }
        )
        return web.Response(
            text=wolkvox_body("200", None, "default", "Agentbox has been hide"),
            content_type="application/json",
        )

    async with serve(record) as url, WolkvoxClient(url) as client:
        await client.agent_display(
            Credentials(server="0042", token=TOKEN),
            DisplayRequest(agent_id="2002", display=Display.HIDE, button=Button.HUNGUP),
        )

    [req] = seen
    assert req["method"] == "POST"
    assert req["path"] == AGENT_DISPLAY_PATH == "/api/v2/agentbox.php"
    assert req["query_string"] == "agent_id=2002&api=agent_display&display=hide&button=hungup"
    assert req["headers"]["wolkvox-token"] == TOKEN
    assert req["headers"]["wolkvox_server"] == "0042"
    assert req["body"] == b""
    assert req["headers"].get("Content-Length", "0") == "0"


async def test_the_request_headers_are_exactly_these_and_no_cookie() -> None:
    seen: list[list[tuple[str, str]]] = []

    async def record(request: web.Request) -> web.StreamResponse:
        seen.append([(name.decode(), value.decode()) for name, value in request.raw_headers])
        response = web.Response(
            text=wolkvox_body("200", None, "default", "Agentbox has been hide"),
            content_type="application/json",
        )
        response.set_cookie("session", "abc123")
        return response

    async with serve(record) as url, WolkvoxClient(url) as client:
        for _ in range(3):
            await client.agent_display(Credentials(server="0042", token=TOKEN), HIDE)

    expected = [
        ("accept-encoding", "gzip, deflate"),
        ("connection", "keep-alive"),
        ("user-agent", "agentbox"),
        ("accept", "application/json"),
        ("wolkvox-token", TOKEN),
        ("wolkvox_server", "0042"),
    ]
    assert len(seen) == 3
    for headers in seen:
        lowered = [(name.lower(), value) for name, value in headers]
        names = [name for name, _ in lowered]
        assert "cookie" not in names
        assert len(names) == len(set(names))
        assert [item for item in lowered if item[0] in dict(expected)] == expected
        assert dict(lowered)["content-length"] == "0"
        # Host and Content-Length from httpx; aiohttp adds a Content-Type to a body-less POST.
        assert set(names) - set(dict(expected)) <= {"host", "content-length", "content-type"}


async def test_base_url_server_placeholder_keeps_leading_zeros() -> None:
    paths: list[str] = []

    async def record(request: web.Request) -> web.StreamResponse:
        paths.append(request.path)
        return web.Response(
            text=wolkvox_body("200", None, "default", "Agentbox has been hide"),
            content_type="application/json",
        )

    async with serve(record) as url, WolkvoxClient(url + "/wv{server}/") as client:
        await client.agent_display(Credentials(server="0015", token=TOKEN), HIDE)
    assert paths == ["/wv0015/api/v2/agentbox.php"]


def test_default_base_url_and_env_override() -> None:
    assert DEFAULT_BASE_URL == "https://wv{server}.wolkvox.com"
    assert CALL_DEADLINE_SECONDS == 60.0
    assert WolkvoxClient().url_for("0015") == "https://wv0015.wolkvox.com/api/v2/agentbox.php"
    assert base_url_from_env({}) == DEFAULT_BASE_URL
    assert base_url_from_env({"WOLKVOX_BASE_URL": "  "}) == DEFAULT_BASE_URL
    assert base_url_from_env({"WOLKVOX_BASE_URL": "http://sim:8080"}) == "http://sim:8080"
    assert WolkvoxClient("http://sim:8080/").url_for("7") == "http://sim:8080/api/v2/agentbox.php"


# -- documented errors ----------------------------------------------------------------------------


async def test_bad_parameters_are_a_bad_request(client: WolkvoxClient) -> None:
    request = DisplayRequest(agent_id="not-a-number", display=Display.HIDE, button=Button.DIAL)
    with pytest.raises(BadRequest) as info:
        await client.agent_display(CREDS, request)
    assert info.value.http_status == 400
    assert "SOME PARAMETERS ARE REQUIRED" in info.value.user_message
    assert "bug in agentbox" in info.value.user_message
    assert not info.value.transient


async def test_invalid_token(sim: Simulator, client: WolkvoxClient) -> None:
    with pytest.raises(InvalidToken) as info:
        await client.agent_display(Credentials(server="0015", token="wrong-token-123"), HIDE)
    assert info.value.http_status == 403
    assert "PLEASE VALIDATE TOKEN" in info.value.user_message
    assert "renew" in info.value.user_message
    assert sim.button_state("1001", "disposition") is None


async def test_quota_exceeded(sim: Simulator, client: WolkvoxClient) -> None:
    sim.config.daily_quota = 1
    await client.agent_display(CREDS, HIDE)
    with pytest.raises(QuotaExceeded) as info:
        await client.agent_display(CREDS, SHOW)
    assert "TOKEN LIMIT EXCEEDED" in info.value.user_message
    assert "daily quota" in info.value.user_message
    assert not info.value.transient
    assert sim.button_state("1001", "disposition") == "hide"


async def test_maintenance(sim: Simulator, client: WolkvoxClient) -> None:
    sim.config.maintenance = True
    with pytest.raises(Maintenance) as info:
        await client.agent_display(CREDS, HIDE)
    assert info.value.transient
    assert "maintenance" in info.value.user_message
    assert "SERVICE UNDER MAINTENANCE" in info.value.detail


async def test_third_simultaneous_call_is_refused(sim: Simulator, client: WolkvoxClient) -> None:
    sim.hold()
    first = asyncio.create_task(client.agent_display(CREDS, HIDE))
    second = asyncio.create_task(client.agent_display(CREDS, HIDE))
    await sim.wait_in_flight(TOKEN, 2)

    with pytest.raises(TooManySimultaneous) as info:
        await client.agent_display(CREDS, SHOW)
    assert info.value.transient
    assert "SIMULTANEOUS" in info.value.detail

    sim.release()
    assert (await first).message == (await second).message == "Agentbox has been hide"
    assert sim.peak_in_flight(TOKEN) == 3
    assert sim.button_state("1001", "disposition") == "hide"


async def test_missing_token_is_refused_before_sending(sim: Simulator) -> None:
    async with WolkvoxClient(sim.url) as client:
        with pytest.raises(MissingToken) as info:
            await client.agent_display(Credentials(server="0015", token=""), HIDE)
    assert "ask an admin" in info.value.user_message
    assert sim.calls == []


@pytest.mark.parametrize("token", ["line\nbreak-token", "tab\ttoken", "tokén-unicode", " "])
async def test_unsendable_token_is_refused_before_sending(sim: Simulator, token: str) -> None:
    async with WolkvoxClient(sim.url) as client:
        with pytest.raises(InvalidToken) as info:
            await client.agent_display(Credentials(server="0015", token=token), HIDE)
    if token.strip():
        assert_no_token(info.value, token)
    assert sim.calls == []


@pytest.mark.parametrize("server", ["", "evil.example/", "0015@evil", "00 15", "a" * 65, "0015#"])
async def test_malformed_server_code_is_refused_before_sending(sim: Simulator, server: str) -> None:
    async with WolkvoxClient(sim.url + "/{server}") as client:
        with pytest.raises(InvalidServer) as info:
            await client.agent_display(Credentials(server=server, token=TOKEN), HIDE)
    assert "server code" in info.value.user_message
    assert sim.calls == []


DOCUMENTED = [
    (400, "BAD REQUEST", "THE API YOU WANT TO CONSULT DOES NOT EXIST", BadRequest),
    (400, "BAD REQUEST", "SOME PARAMETERS ARE REQUIRED", BadRequest),
    (401, "UNAUTHORIZED", "PLEASE ENTER THE WOLKVOX-TOKEN", MissingToken),
    (403, "FORBIDDEN", "TOKEN LIMIT EXCEEDED", QuotaExceeded),
    (
        403,
        "FORBIDDEN",
        "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (2)",
        TooManySimultaneous,
    ),
    (403, "FORBIDDEN", "PLEASE VALIDATE TOKEN", InvalidToken),
    (403, "FORBIDDEN", "please validate token", InvalidToken),
    (403, "FORBIDDEN", "SERVICE UNDER MAINTENANCE", Maintenance),
    (403, "FORBIDDEN", "", Maintenance),
]


@pytest.mark.parametrize(("status", "error", "msg", "expected"), DOCUMENTED)
async def test_documented_error_answers(
    status: int, error: str, msg: str, expected: type[WolkvoxError]
) -> None:
    body = wolkvox_body(str(status), error, msg)
    async with serve(answering(status, body)) as url:
        err = await call_error(url)
    assert type(err) is expected
    assert err.http_status == status
    assert err.user_message.startswith(expected.explanation)
    if msg:
        assert err.detail == msg
        assert f"({msg})" in err.user_message


@pytest.mark.parametrize(("status", "error", "msg", "expected"), DOCUMENTED)
async def test_documented_errors_with_http_200_use_the_body_code(
    status: int, error: str, msg: str, expected: type[WolkvoxError]
) -> None:
    async with serve(answering(200, wolkvox_body(status, error, msg))) as url:
        err = await call_error(url)
    assert type(err) is expected
    assert err.http_status == status


async def test_long_or_multiline_msg_is_trimmed_and_capped() -> None:
    msg = "  PLEASE VALIDATE TOKEN\n\x1b[31m" + "x" * 5000 + "  "
    async with serve(answering(403, wolkvox_body("403", "FORBIDDEN", msg))) as url:
        err = await call_error(url)
    assert isinstance(err, InvalidToken)
    assert err.detail.startswith("PLEASE VALIDATE TOKEN [31mx")
    assert len(err.detail) <= 200
    assert "\n" not in err.detail and "\x1b" not in err.detail


# -- undocumented answers -------------------------------------------------------------------------

HTML = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"

UNDOCUMENTED = [
    pytest.param(500, HTML, "text/html", ServerError, id="500-html"),
    pytest.param(502, HTML, "text/html", ServerError, id="502-html"),
    pytest.param(503, "", "text/plain", ServerError, id="503-empty"),
    pytest.param(500, wolkvox_body("500", "ERROR", "DB DOWN"), "application/json", ServerError,
                 id="500-json"),
    pytest.param(200, HTML, "text/html", UnexpectedAnswer, id="200-html"),
    pytest.param(200, "", "application/json", UnexpectedAnswer, id="200-empty"),
    pytest.param(200, "   \n", "application/json", UnexpectedAnswer, id="200-blank"),
    pytest.param(200, '{"code": "200", "da', "application/json", UnexpectedAnswer,
                 id="200-truncated-json"),
    pytest.param(200, "[1, 2, 3]", "application/json", UnexpectedAnswer, id="200-json-list"),
    pytest.param(200, '"Agentbox has been hide"', "application/json", UnexpectedAnswer,
                 id="200-json-string"),
    pytest.param(200, '{"status": "ok"}', "application/json", UnexpectedAnswer, id="200-no-code"),
    pytest.param(200, '{"code": true, "data": "x"}', "application/json", UnexpectedAnswer,
                 id="200-bool-code"),
    pytest.param(200, '{"code": "OK", "data": "x"}', "application/json", UnexpectedAnswer,
                 id="200-word-code"),
    pytest.param(200, wolkvox_body("200", None, "default", None), "application/json",
                 UnexpectedAnswer, id="200-no-data"),
    pytest.param(200, wolkvox_body("200", None, "default", {"a": 1}), "application/json",
                 UnexpectedAnswer, id="200-object-data"),
    pytest.param(200, wolkvox_body("201", None, "default", "x"), "application/json",
                 UnexpectedAnswer, id="200-code-201"),
    pytest.param(200, wolkvox_body("418", "TEAPOT", "NO"), "application/json", UnexpectedAnswer,
                 id="200-code-418"),
    pytest.param(404, HTML, "text/html", UnexpectedAnswer, id="404-html"),
    pytest.param(429, "", "text/plain", UnexpectedAnswer, id="429-empty"),
    pytest.param(403, HTML, "text/html", Maintenance, id="403-html"),
    pytest.param(401, "", "text/plain", MissingToken, id="401-empty"),
    pytest.param(400, HTML, "text/html", BadRequest, id="400-html"),
    pytest.param(200, b"\xff\xfe\x00garbage", "application/octet-stream", UnexpectedAnswer,
                 id="200-binary"),
]  # fmt: skip


@pytest.mark.parametrize(("status", "body", "content_type", "expected"), UNDOCUMENTED)
async def test_undocumented_answers(
    status: int, body: str | bytes, content_type: str, expected: type[WolkvoxError]
) -> None:
    async with serve(answering(status, body, content_type)) as url:
        err = await call_error(url)
    assert type(err) is expected
    assert err.user_message.startswith(expected.explanation)
    assert err.detail


async def test_redirect_is_not_followed() -> None:
    followed: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/elsewhere":
            followed.append(request.headers.get("wolkvox-token", ""))
            return web.Response(text=wolkvox_body("200", None, "d", "x"), content_type="text/json")
        raise web.HTTPFound("/elsewhere")

    async with serve(handler) as url:
        err = await call_error(url)
    assert isinstance(err, UnexpectedAnswer)
    assert err.http_status == 302
    assert followed == []


async def test_oversized_body_is_not_read_whole() -> None:
    huge = b"<html>" + b"x" * (MAX_BODY_BYTES * 4)
    async with serve(answering(200, huge, "text/html")) as url:
        err = await call_error(url)
    assert isinstance(err, UnexpectedAnswer)
    assert "oversized" in err.detail


async def test_simulated_server_error_and_garbage(sim: Simulator, client: WolkvoxClient) -> None:
    sim.config.error_rate = 1.0
    with pytest.raises(ServerError) as server_error:
        await client.agent_display(CREDS, HIDE)
    assert server_error.value.http_status == 500
    assert sim.button_state("1001", "disposition") is None

    sim.config.error_rate = 0.0
    sim.config.garbage_rate = 1.0
    with pytest.raises(UnexpectedAnswer) as garbage:
        await client.agent_display(CREDS, HIDE)
    assert garbage.value.transient
    assert "non-JSON" in garbage.value.detail


# -- timeouts and transport failures --------------------------------------------------------------


async def test_hang_hits_the_deadline(sim: Simulator) -> None:
    sim.config.hang_rate = 1.0
    async with WolkvoxClient(sim.url, deadline=0.2) as client:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(Timeout) as info:
            await client.agent_display(CREDS, HIDE)
        elapsed = loop.time() - started
    assert 0.15 <= elapsed < 5
    assert info.value.transient
    assert "0.2 seconds" in info.value.user_message
    # The simulator notices the client went away, and ends the hung call.
    await asyncio.wait_for(sim.wait_idle(), 10)
    assert [c.status for c in sim.calls] == [CLIENT_CLOSED]


async def test_slow_body_counts_against_the_deadline() -> None:
    release = asyncio.Event()

    async def slow_body(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"code": "200", ')
        await release.wait()
        return response

    try:
        async with serve(slow_body) as url:
            err = await call_error(url, deadline=0.2)
    finally:
        release.set()
    assert isinstance(err, Timeout)


class _ShortReadTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, reading for 0.1 s whatever timeouts the request brings."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.extensions["timeout"] = {**request.extensions["timeout"], "read": 0.1}
        return await super().handle_async_request(request)


async def test_httpx_timeout_is_a_timeout() -> None:
    release = asyncio.Event()

    async def never(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.Response()

    transport = _ShortReadTransport()
    try:
        async with serve(never) as url:
            # The deadline is far: only httpx's read timeout can end the call this soon.
            client = WolkvoxClient(url, transport=transport, deadline=30)
            started = asyncio.get_running_loop().time()
            with pytest.raises(Timeout) as info:
                await client.agent_display(CREDS, HIDE)
            assert asyncio.get_running_loop().time() - started < 10
    finally:
        release.set()
        await transport.aclose()
    assert info.value.detail.startswith("ReadTimeout")
    assert_no_token(info.value)


async def test_connection_refused() -> None:
    err = await call_error(f"http://127.0.0.1:{closed_port()}")
    assert isinstance(err, ConnectionFailed)
    assert err.transient
    assert "could not reach" in err.user_message
    assert_no_token(err)


async def test_unresolvable_host_is_a_connection_failure() -> None:
    err = await call_error("http://wv{server}.invalid")
    assert isinstance(err, ConnectionFailed)


async def test_malformed_base_url_is_a_connection_failure() -> None:
    err = await call_error("not a url at all")
    assert isinstance(err, ConnectionFailed)


async def test_connection_dropped_mid_answer() -> None:
    async def drop(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        raise ConnectionResetError

    async with serve(drop) as url:
        err = await call_error(url)
    assert isinstance(err, ConnectionFailed)


@asynccontextmanager
async def serve_raw(answer: bytes) -> AsyncIterator[str]:
    """A TCP server that reads a request's head, writes ``answer`` as is and hangs up."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


_ECHO = TOKEN.encode()
MALFORMED = [
    pytest.param(b"HTTP/1.1 abc OK\r\n\r\n", id="bad-status-line"),
    pytest.param(b"SSH-2.0-OpenSSH " + _ECHO + b"\r\n", id="not-http"),
    pytest.param(b"HTTP/1.1 200 OK\r\nno colon " + _ECHO + b"\r\n\r\n", id="bad-header"),
    # aiohttp quotes the first 100 bytes of an overlong header: the token echoed there would
    # come out cut in two, a piece that redaction does not recognise.
    pytest.param(b"HTTP/1.1 200 OK\r\nX-Echo: " + b"x" * 90 + _ECHO * 400 + b"\r\n\r\n",
                 id="overlong-header"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"code\"", id="short-body"),
    pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz" + _ECHO + b"\r\n",
                 id="bad-chunk"),
]  # fmt: skip


@pytest.mark.parametrize("answer", MALFORMED)
async def test_malformed_http_is_a_connection_failure_without_the_token(answer: bytes) -> None:
    async with serve_raw(answer) as url:
        err = await call_error(url)
    assert isinstance(err, ConnectionFailed)
    assert err.transient
    assert "RemoteProtocolError" in err.detail
    assert_no_token(err)
    assert TOKEN[:6] not in err.detail  # not even a piece of it
    assert err.__cause__ is None and err.__context__ is None


async def test_transport_read_timeout_is_an_httpx_read_timeout() -> None:
    """WolkvoxClient's pools read for as long as its deadline, so the deadline usually answers
    first; the transport's own read timeout must still come out as httpx's."""
    release = asyncio.Event()

    async def never(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.Response()

    transport = AiohttpTransport(limits=httpx.Limits(), ssl_context=ssl.create_default_context())
    try:
        async with (
            serve(never) as url,
            httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(30, read=0.2)) as http,
        ):
            started = asyncio.get_running_loop().time()
            with pytest.raises(httpx.ReadTimeout):
                await http.post(url, content=b"")
            assert asyncio.get_running_loop().time() - started < 5
    finally:
        release.set()


async def test_a_header_value_the_transport_refuses_does_not_surface(sim: Simulator) -> None:
    """WolkvoxClient refuses such tokens itself; should one get through, aiohttp's refusal
    does not quote it (h11's used to)."""
    transport = AiohttpTransport(limits=httpx.Limits(), ssl_context=ssl.create_default_context())
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises((ValueError, httpx.HTTPError)) as info:
            await http.post(sim.url, headers={"wolkvox-token": f"x\r\nX-Injected: {TOKEN}"})
    assert TOKEN not in str(info.value)
    assert TOKEN not in repr(info.value)
    assert sim.calls == []


async def test_one_small_pool_per_token() -> None:
    arrived: list[tuple[str, Any]] = []
    five_arrived, release = asyncio.Event(), asyncio.Event()

    async def hold(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        peer = request.transport.get_extra_info("peername")
        arrived.append((request.headers["wolkvox-token"], peer))
        if len(arrived) == 5:
            five_arrived.set()
        await release.wait()
        return web.Response(
            text=wolkvox_body("200", None, "default", "Agentbox has been hide"),
            content_type="application/json",
        )

    other = Credentials(server="0015", token="another-token-0123456789")
    async with serve(hold) as url, WolkvoxClient(url) as client:
        calls = [asyncio.create_task(client.agent_display(CREDS, HIDE)) for _ in range(6)]
        calls.append(asyncio.create_task(client.agent_display(other, HIDE)))
        await asyncio.wait_for(five_arrived.wait(), 10)
        await asyncio.sleep(0.2)
        # Four connections for the token, the other two calls wait for one; the other token's
        # pool is not held up by them.
        assert [token for token, _ in arrived].count(TOKEN) == 4
        assert [token for token, _ in arrived].count(other.token) == 1
        release.set()
        results = await asyncio.gather(*calls)
    assert all(result.code == 200 for result in results)
    peers = {peer for token, peer in arrived if token == TOKEN}
    assert len(peers) == 4
    assert not peers & {peer for token, peer in arrived if token == other.token}


async def test_callers_cancellation_is_not_turned_into_an_error(sim: Simulator) -> None:
    sim.config.hang_rate = 1.0
    async with WolkvoxClient(sim.url) as client:
        task = asyncio.create_task(client.agent_display(CREDS, HIDE))
        await sim.wait_in_flight(TOKEN, 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


# -- the token never leaks ------------------------------------------------------------------------

ECHOES = [
    pytest.param(400, f"SOME PARAMETERS ARE REQUIRED {TOKEN}", BadRequest, id="400"),
    pytest.param(401, f"PLEASE ENTER THE WOLKVOX-TOKEN, not {TOKEN}", MissingToken, id="401"),
    pytest.param(403, f"TOKEN LIMIT EXCEEDED for {TOKEN}", QuotaExceeded, id="403-quota"),
    pytest.param(403, f"SIMULTANEOUS {TOKEN.upper()}", TooManySimultaneous, id="403-busy"),
    pytest.param(403, f"PLEASE VALIDATE TOKEN {TOKEN.lower()}", InvalidToken, id="403-token"),
    pytest.param(403, f"token={TOKEN}&again={TOKEN}", Maintenance, id="403-other"),
    pytest.param(500, f"{TOKEN[:10]}\n{TOKEN[10:]}", ServerError, id="500-split"),
    pytest.param(500, f"{TOKEN[:10]}\x00{TOKEN[10:]}", ServerError, id="500-nul-split"),
    pytest.param(418, f"teapot {TOKEN}", UnexpectedAnswer, id="418"),
]


@pytest.mark.parametrize(("status", "msg", "expected"), ECHOES)
async def test_echoed_token_is_redacted(
    status: int, msg: str, expected: type[WolkvoxError]
) -> None:
    for answer_status in (status, 200):
        body = wolkvox_body(str(status), "ERR", msg, data=TOKEN)
        async with serve(answering(answer_status, body)) as url:
            err = await call_error(url)
        assert type(err) is expected
        assert_no_token(err)
        if TOKEN.lower() in msg.replace("\x00", "").lower():
            assert "[redacted]" in err.detail


async def test_token_echoed_in_html_or_success_data_never_surfaces() -> None:
    async with serve(answering(502, f"<html>{TOKEN}</html>", "text/html")) as url:
        err = await call_error(url)
    assert_no_token(err)

    body = wolkvox_body("200", None, "default", f"Agentbox has been hide {TOKEN}")
    async with serve(answering(200, body)) as url, WolkvoxClient(url) as client:
        result = await client.agent_display(CREDS, HIDE)
    assert TOKEN not in result.message
    assert TOKEN not in repr(result)


async def test_token_never_logged(caplog: pytest.LogCaptureFixture, sim: Simulator) -> None:
    caplog.set_level(logging.DEBUG)
    async with WolkvoxClient(sim.url, deadline=0.3) as client:
        await client.agent_display(CREDS, HIDE)
        sim.config.maintenance = True
        with pytest.raises(Maintenance):
            await client.agent_display(CREDS, HIDE)
        sim.config.maintenance = False
        sim.config.hang_rate = 1.0
        with pytest.raises(Timeout):
            await client.agent_display(CREDS, HIDE)
    await asyncio.wait_for(sim.wait_idle(), 10)
    client_lines = [r for r in caplog.records if r.name == "wolkvox.client"]
    assert client_lines
    assert any(CREDS.token_fingerprint in r.getMessage() for r in client_lines)
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        assert TOKEN not in repr(record.args)


_TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."


@settings(max_examples=300, deadline=None)
@given(
    token=st.text(alphabet=_TOKEN_ALPHABET, min_size=16, max_size=64),
    before=st.text(max_size=300),
    after=st.text(max_size=300),
    casing=st.sampled_from(["same", "upper", "lower"]),
    status=st.sampled_from([200, 400, 401, 403, 404, 500, 503]),
    code=st.sampled_from(["200", "400", "401", "403", "500", 403, 200]),
)
def test_no_answer_can_make_the_token_surface(
    token: str, before: str, after: str, casing: str, status: int, code: Any
) -> None:
    echoed = {"same": token, "upper": token.upper(), "lower": token.lower()}[casing]
    text = before + echoed + after
    body = json.dumps({"code": code, "error": text, "msg": text, "data": text}).encode()
    try:
        result = interpret_answer(status, "application/json", body, token=token)
    except WolkvoxError as err:
        assert_no_token(err, token)
    else:
        assert token.lower() not in result.message.lower()


# -- owning the HTTP client -----------------------------------------------------------------------


class _RecordingTransport(httpx.AsyncBaseTransport):
    """Hands every request on to ``inner``, keeping it; counts the calls of :meth:`aclose`."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[httpx.Request] = []
        self.closed = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        self.closed += 1
        await self.inner.aclose()


async def test_owned_http_client_is_closed_and_a_given_one_is_not(sim: Simulator) -> None:
    given = _RecordingTransport(
        AiohttpTransport(limits=httpx.Limits(), ssl_context=ssl.create_default_context())
    )
    try:
        async with WolkvoxClient(sim.url, transport=given) as client:
            await client.agent_display(CREDS, HIDE)
            await client.agent_display(CREDS, SHOW)
        assert len(given.requests) == 2
        assert given.closed == 0
        assert client._pools == {}
    finally:
        await given.aclose()

    owned = WolkvoxClient(sim.url)
    await owned.agent_display(CREDS, HIDE)
    [pool] = owned._pools.values()
    session = pool._session
    assert session is not None and not session.closed
    await owned.aclose()
    assert session.closed
    assert owned._pools == {}


@pytest.mark.parametrize("deadline", [CALL_DEADLINE_SECONDS, 3.0])
async def test_timeouts_travel_as_httpx_client_would_send_them(
    sim: Simulator, deadline: float
) -> None:
    given = _RecordingTransport(
        AiohttpTransport(limits=httpx.Limits(), ssl_context=ssl.create_default_context())
    )
    async with given, WolkvoxClient(sim.url, transport=given, deadline=deadline) as client:
        await client.agent_display(CREDS, HIDE)
    [request] = given.requests
    timeout = httpx.Timeout(deadline, connect=min(10.0, deadline), write=min(10.0, deadline))
    async with httpx.AsyncClient(timeout=timeout) as http:
        expected = http.build_request("POST", sim.url).extensions["timeout"]
    assert request.extensions["timeout"] == expected
    assert expected == {
        "connect": min(10.0, deadline),
        "read": deadline,
        "write": min(10.0, deadline),
        "pool": deadline,
    }


async def test_connections_are_reused() -> None:
    peers: set[Any] = set()

    async def record(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        peers.add(request.transport.get_extra_info("peername"))
        return web.Response(
            text=wolkvox_body("200", None, "default", "Agentbox has been hide"),
            content_type="application/json",
        )

    async with serve(record) as url, WolkvoxClient(url) as wolkvox:
        for _ in range(5):
            await wolkvox.agent_display(CREDS, HIDE)
    assert len(peers) == 1


def test_deadline_must_be_positive() -> None:
    with pytest.raises(ValueError):
        WolkvoxClient(deadline=0)

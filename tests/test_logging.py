"""Logs: JSON lines (or text), and no token in any of them, whatever carries it there."""

from __future__ import annotations

import io
import json
import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from bot.fake_slack import FakeSlack
from bot.logs import (
    REDACTED,
    build_handler,
    configure_logging,
    log_format_from_env,
    redact,
)
from bot.slash import signed_headers, slash_command_body
from storage.audit import AuditEntry
from storage.models import Decision
from storage.secrets import generate_key
from tests.harness import TOKEN, Harness, ack_text, start_harness
from tests.processes import agentbox_process, clean_env
from wolkvox.redaction import register_secret
from wolkvox.simulator import Simulator

BOT_TOKEN = "xoxb-test"  # the harness's bot token
STORED_TOKEN = "stored-wv-token-5d1e8b2a"


@contextmanager
def captured(log_format: str = "json", level: int = logging.DEBUG) -> Iterator[io.StringIO]:
    """Every record of every logger, through agentbox's own handler, into a string."""
    stream = io.StringIO()
    handler = build_handler(log_format, stream)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    lines = stream.getvalue().splitlines()
    assert lines, "nothing was logged"
    return [json.loads(line) for line in lines]  # every line is one JSON object


# --- the redaction rules ------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    [
        "xoxb-1234-5678-abcdEFGH",
        "xoxp-1-2-3-4-deadbeef",
        "xapp-1-A0123-456-abcdef",
        "xoxe.xoxp-1-Mi0yLTEyMzQ",
        "xoxe-1-My0xLTEyMzQ",
        "xoxa-2-abc",
    ],
)
def test_slack_tokens_are_redacted_registered_or_not(secret: str) -> None:
    assert (
        redact(f"posting with {secret}, then failing") == f"posting with {REDACTED}, then failing"
    )


def test_credentials_shaped_values_are_redacted() -> None:
    assert redact("POST https://hooks.slack.com/commands/T1/2/aBcD3 failed") == (
        f"POST https://hooks.slack.com/{REDACTED} failed"
    )
    assert redact("headers {'Authorization': 'Bearer abc.def'}") == (
        f"headers {{'Authorization': 'Bearer {REDACTED}'}}"
    )
    assert redact('{"wolkvox-token": "s3cr3t", "wolkvox_server": "0042"}') == (
        f'{{"wolkvox-token": "{REDACTED}", "wolkvox_server": "0042"}}'
    )


def test_registered_secrets_are_redacted_in_every_spelling() -> None:
    secret = "wv/Secret+Token=42"
    assert redact(f"token {secret}") == f"token {secret}", "not registered yet"
    register_secret(secret)

    assert redact(f"token {secret} again") == f"token {REDACTED} again"
    assert redact(f"url ?t={quote(secret, safe='')}") == f"url ?t={REDACTED}"
    assert redact(f"shouting {secret.upper()}") == f"shouting {REDACTED}"


def test_short_values_are_not_registered_as_secrets() -> None:
    register_secret("abc")
    register_secret("")
    register_secret(None)

    assert redact("abc is a word") == "abc is a word"


def test_text_without_secrets_is_unchanged() -> None:
    text = "wolkvox call for token 1a2b3c4d5e6f failed (maintenance), attempt 1 of 3"
    assert redact(text) == text


def test_log_format_comes_from_the_environment() -> None:
    assert log_format_from_env({}) == "text"
    assert log_format_from_env({"AGENTBOX_LOG_FORMAT": " JSON "}) == "json"
    with pytest.raises(ValueError, match="AGENTBOX_LOG_FORMAT must be 'text' or 'json', not 'xml'"):
        log_format_from_env({"AGENTBOX_LOG_FORMAT": "xml"})


# --- records ------------------------------------------------------------------------------


def test_json_lines_carry_the_record_and_no_secret() -> None:
    secret = "wv-record-token-9c2f"
    register_secret(secret)
    log = logging.getLogger("tests.logging.records")

    with captured() as stream:
        log.info("calling with %s and %s", secret, "xoxb-999-abc", extra={"operation": "ventas"})
        log.warning("extra fields", extra={"headers": {"wolkvox-token": secret}, "note": secret})
        try:
            raise RuntimeError(f"wolkvox refused {secret} (bot xoxp-1-2)")
        except RuntimeError:
            log.exception("it failed")
        log.error("where from", stack_info=True)

    text = stream.getvalue()
    assert secret not in text and "xoxb-999-abc" not in text and "xoxp-1-2" not in text
    info, extra, failure, stack = json_lines(stream)
    assert info["message"] == f"calling with {REDACTED} and {REDACTED}"
    assert (info["level"], info["logger"], info["operation"]) == (
        "INFO",
        "tests.logging.records",
        "ventas",
    )
    assert str(info["time"]).endswith("+00:00")
    assert extra["note"] == REDACTED and REDACTED in str(extra["headers"])
    assert failure["message"] == "it failed"
    assert "Traceback" in str(failure["exception"])
    assert f"RuntimeError: wolkvox refused {REDACTED} (bot {REDACTED})" in str(failure["exception"])
    assert "test_json_lines_carry_the_record_and_no_secret" in str(stack["stack"])


def test_text_lines_are_redacted_too() -> None:
    log = logging.getLogger("tests.logging.text")

    with captured("text") as stream:
        try:
            raise ValueError("bad token xapp-1-A1-2-3")
        except ValueError:
            log.exception("text %s", "xoxb-1-2")

    text = stream.getvalue()
    assert "xapp-1-A1-2-3" not in text and "xoxb-1-2" not in text
    assert f"ERROR tests.logging.text: text {REDACTED}" in text
    assert f"ValueError: bad token {REDACTED}" in text


def test_configure_logging_replaces_the_handlers_and_logs_uncaught_errors() -> None:
    root = logging.getLogger()
    saved, level, hook = list(root.handlers), root.level, sys.excepthook
    stream = io.StringIO()
    try:
        configure_logging("info", "json", stream=stream)
        configure_logging("info", "json", stream=stream)  # again: still one line per record
        logging.getLogger("tests.logging.configure").info("once with %s", "xoxb-1-1")
        try:
            raise RuntimeError("crashed holding xoxb-2-2")
        except RuntimeError as error:
            sys.excepthook(RuntimeError, error, error.__traceback__)
        with pytest.raises(ValueError, match="not 'yaml'"):
            configure_logging("info", "yaml")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(level)
        sys.excepthook = hook

    once, crash = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert once["message"] == f"once with {REDACTED}"
    assert crash["level"] == "CRITICAL"
    assert f"RuntimeError: crashed holding {REDACTED}" in crash["exception"]


# --- a whole run --------------------------------------------------------------------------


async def test_a_run_with_failing_wolkvox_and_slack_logs_no_token(
    database_url: str, simulator: Simulator
) -> None:
    """wolkvox in maintenance and Slack down behind a proxy that echoes the bot token, at DEBUG,
    with an operation whose token is stored in the database: not one line holds a token."""
    async with start_harness(
        database_url=database_url, simulator=simulator, encryption_keys=(generate_key(),)
    ) as agentbox:
        with captured() as stream:
            await _run_with_failures(agentbox)
        secrets = {
            TOKEN,
            BOT_TOKEN,
            STORED_TOKEN,
            agentbox.signing_secret,
            quote(TOKEN, safe=""),
        }

    records = json_lines(stream)
    for record in records:
        line = json.dumps(record)
        assert not any(secret in line for secret in secrets), line
    text = "\n".join(json.dumps(record) for record in records)
    assert f"Bearer {REDACTED}" in text, "the echoing Slack outage was logged"
    assert "maintenance" in text, "the wolkvox failures were logged"
    leak = next(r for r in records if r["logger"] == "tests.logging.leak")
    assert leak["message"] == f"stored {REDACTED}, default {REDACTED}, signing {REDACTED}"
    assert f"RuntimeError: {REDACTED} / {REDACTED}" in str(leak["exception"])


async def _run_with_failures(agentbox: Harness) -> None:
    audit = AuditEntry(
        user_id="U_ADMIN", action="operation.put", text="test", decision=Decision.ALLOWED
    )
    await agentbox.services.directory.put_operation(
        "bogota", "0100", STORED_TOKEN, concurrency=1, audit=audit
    )
    await agentbox.services.operations.refresh()  # loads, and so registers, the stored token
    assert "ventas" in ack_text(await agentbox.slash("team create ventas 1001-1003 <#CVENTAS>"))
    agentbox.simulator.config.maintenance = True
    agentbox.slack.web_api_down = True
    agentbox.slack.outage_echoes_credentials = True
    await agentbox.slash("hide dial 1001-1002")
    await agentbox.idle()
    try:
        raise RuntimeError(f"{TOKEN} / {BOT_TOKEN}")
    except RuntimeError:
        logging.getLogger("tests.logging.leak").exception(
            "stored %s, default %s, signing %s", STORED_TOKEN, TOKEN, agentbox.signing_secret
        )


# --- agentbox serve, as deployed ----------------------------------------------------------


async def test_serve_writes_json_lines_without_tokens(tmp_path: Path, slack: FakeSlack) -> None:
    """``AGENTBOX_LOG_FORMAT=json agentbox serve --log-level DEBUG``: the port announcement,
    a change whose Slack messages fail behind an echoing proxy, a scrape and SIGTERM, all as JSON
    lines, none with a token; ``/metrics`` is served."""
    secrets = {
        "SLACK_BOT_TOKEN": "xoxb-serve-7a7a7a7a",
        "SLACK_SIGNING_SECRET": "signing-secret-3b3b3b3b3b",
        "WOLKVOX_TOKEN": "wv-serve-token-4c4c4c4c",
    }
    env = clean_env(
        **secrets,
        SLACK_API_URL=slack.api_url,
        WOLKVOX_SERVER="0042",
        AGENTBOX_ADMINS="U1",
        AGENTBOX_LOG_FORMAT="json",
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
    )
    args = ("--log-level", "DEBUG", "serve", "--simulator", "--host", "127.0.0.1", "--port", "0")
    async with agentbox_process("serve", *args, env=env) as server:
        async with httpx.AsyncClient(base_url=await server.ready()) as http:

            async def slash(text: str) -> None:
                body = slash_command_body(text, user_id="U1", response_url=slack.new_response_url())
                headers = signed_headers(body, secrets["SLACK_SIGNING_SECRET"])
                response = await http.post("/slack/events", content=body, headers=headers)
                assert response.status_code == 200, response.text

            await slash("help")  # Bolt checks the bot token (auth.test) while Slack is up
            slack.web_api_down = True
            slack.outage_echoes_credentials = True
            await slash("hide dial 1001")
            try:
                await slack.wait_for(lambda: bool(slack.responses), within=30)
            except TimeoutError:
                raise AssertionError(f"no summary on the response_url\n{server.tail()}") from None
            metrics = await http.get("/metrics")
        server.process.send_signal(signal.SIGTERM)
        assert await server.wait() == 0
        lines = list(server.lines)

    assert metrics.status_code == 200
    assert 'agentbox_wolkvox_results_total{operation="default",result="ok"} 1.0' in metrics.text
    records = [json.loads(line) for line in lines]  # every line is JSON
    assert any(str(r["message"]).startswith("listening on http://") for r in records)
    text = "\n".join(lines)
    for name, secret in secrets.items():
        assert secret not in text, f"{name} leaked"
    assert f"Bearer {REDACTED}" in text, "the echoing Slack outage was logged"

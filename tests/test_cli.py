"""The `agentbox` command as an operator runs it: real processes, real ports (chosen by the OS)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from bot.fake_slack import FakeSlack
from bot.slash import signed_headers, slash_command_body
from wolkvox.simulator import Simulator

AGENTBOX = str(Path(sys.executable).parent / "agentbox")
LISTENING = re.compile(r"listening on (http://\S+)")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SLACK_", "WOLKVOX_", "AGENTBOX_", "DATABASE_URL"))
    }
    env["DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    env.update(extra)
    return env


async def _run(*args: str, env: dict[str, str], stdin: bytes = b"") -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        AGENTBOX,
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate(stdin)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_console_one_shot_runs_a_change(tmp_path: Path) -> None:
    code, out, err = await _run(
        "console",
        "--user",
        "U1",
        "hide",
        "dial",
        "1001",
        env=_env(tmp_path, AGENTBOX_ADMINS="U1"),
    )
    assert code == 0, err
    assert "Hiding `dial` for agent 1001" in out
    assert "Agentbox has been hide" in out


async def test_console_reads_lines_and_refuses_a_non_admin(tmp_path: Path) -> None:
    code, out, err = await _run(
        "console",
        "--user",
        "U2",
        env=_env(tmp_path, AGENTBOX_ADMINS="U1"),
        stdin=b"/agentbox help\nhide dial 1001\n",
    )
    assert code == 0, err
    assert "Examples" in out
    assert "not allowed" in out and "<@U1>" in out
    assert "Agentbox has been" not in out


async def test_serve_refuses_to_start_without_slack_credentials(tmp_path: Path) -> None:
    code, _, err = await _run("serve", "--port", "0", env=_env(tmp_path))
    assert code != 0
    assert "SLACK_BOT_TOKEN" in err


async def _read_url(stream: asyncio.StreamReader, pattern: re.Pattern[str]) -> str:
    async with asyncio.timeout(30):
        while line := (await stream.readline()).decode():
            if match := pattern.search(line):
                return match.group(1)
    raise AssertionError("the process ended before it was listening")


@asynccontextmanager
async def _process(*args: str, env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        AGENTBOX, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_serve_http_mode_end_to_end_and_stops_on_sigterm(
    tmp_path: Path, simulator: Simulator
) -> None:
    secret = secrets.token_hex(16)
    async with FakeSlack() as slack:
        env = _env(
            tmp_path,
            SLACK_BOT_TOKEN="xoxb-test",
            SLACK_SIGNING_SECRET=secret,
            SLACK_API_URL=slack.api_url,
            WOLKVOX_SERVER="0042",
            WOLKVOX_TOKEN="cli-test-token",
            WOLKVOX_BASE_URL=simulator.url,
            AGENTBOX_ADMINS="U1",
        )
        async with _process("serve", "--host", "127.0.0.1", "--port", "0", env=env) as server:
            assert server.stderr is not None
            url = await _read_url(server.stderr, LISTENING)
            async with httpx.AsyncClient(base_url=url) as http:
                assert (await http.get("/healthz")).status_code == 200
                assert (await http.get("/readyz")).json()["status"] == "ready"
                body = slash_command_body(
                    "hide disposition 1001", user_id="U1", response_url=slack.new_response_url()
                )
                ack = await http.post(
                    "/slack/events", content=body, headers=signed_headers(body, secret)
                )
                assert ack.status_code == 200 and "1001" in ack.json()["text"]
                await slack.wait_for(
                    lambda: any("Agentbox has been hide" in m.text for m in slack.messages.values())
                )
            assert simulator.button_state("1001", "disposition") == "hide"

            server.send_signal(signal.SIGTERM)
            async with asyncio.timeout(20):
                assert await server.wait() == 0


async def test_simulator_command_serves_agent_display(tmp_path: Path) -> None:
    pattern = re.compile(r"listening on (http://\S+)")
    async with _process("simulator", "--port", "0", "--latency", "0", env=_env(tmp_path)) as sim:
        assert sim.stdout is not None
        url = await _read_url(sim.stdout, pattern)
        async with httpx.AsyncClient(base_url=url) as http:
            answer = await http.post(
                "/api/v2/agentbox.php",
                params={
                    "agent_id": "1001",
                    "api": "agent_display",
                    "display": "hide",
                    "button": "dial",
                },
                headers={"wolkvox-token": "t"},
            )
        assert answer.json()["data"] == "Agentbox has been hide"
        sim.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            await sim.wait()


@pytest.mark.parametrize("concurrency", ["0", "3"])
async def test_concurrency_beyond_the_documented_limit_is_refused(
    tmp_path: Path, concurrency: str
) -> None:
    code, _, err = await _run(
        "console", "--user", "U1", "help", env=_env(tmp_path, WOLKVOX_CONCURRENCY=concurrency)
    )
    assert code != 0 and "wolkvox_concurrency" in err.lower()


async def test_db_upgrade_and_current(tmp_path: Path) -> None:
    code, out, err = await _run("db", "upgrade", env=_env(tmp_path))
    assert code == 0, err
    code, current, err = await _run("db", "current", env=_env(tmp_path))
    assert code == 0, err
    revision = out.strip().rsplit(" ", 1)[-1]
    assert f"database: {revision}, newest: {revision}" in current


async def test_operation_add_reads_the_token_from_stdin_and_stores_it_encrypted(
    tmp_path: Path,
) -> None:
    _, key, _ = await _run("keys", "generate", env=_env(tmp_path))
    env = _env(tmp_path, AGENTBOX_ENCRYPTION_KEYS=key.strip())
    token = "wv-cli-token-5e1f"

    code, out, err = await _run(
        "operation", "add", "--name", "bogota", "--server", "0100", env=env,
        stdin=f"{token}\n".encode(),
    )  # fmt: skip
    assert code == 0, err
    code, listed, err = await _run("operation", "list", env=env)

    assert code == 0 and "bogota" in listed and "0100" in listed
    assert token not in out + err + listed
    for database_file in tmp_path.glob("cli.db*"):  # noqa: ASYNC240 - a few small files
        assert token.encode() not in database_file.read_bytes()


async def test_operation_add_without_keys_says_how_to_make_one(tmp_path: Path) -> None:
    code, _, err = await _run(
        "operation", "add", "--name", "bogota", "--server", "0100", env=_env(tmp_path),
        stdin=b"tok\n",
    )  # fmt: skip
    assert code != 0 and "agentbox keys generate" in err


async def test_apply_dry_run_then_apply_then_nothing_left(tmp_path: Path) -> None:
    _, key, _ = await _run("keys", "generate", env=_env(tmp_path))
    env = _env(tmp_path, AGENTBOX_ENCRYPTION_KEYS=key.strip(), WV_TOKEN_NORTE="wv-norte-77")
    config = tmp_path / "agentbox.yml"
    config.write_text(
        "operations:\n"
        "  - name: norte\n"
        '    server: "0100"\n'
        "    token_env: WV_TOKEN_NORTE\n"
        "teams:\n"
        "  - name: ventas\n"
        "    operation: norte\n"
        '    agents: ["1001-1005"]\n'
        "    channel: C0VENTAS\n"
    )

    code, dry, err = await _run("apply", str(config), "--dry-run", env=env)
    assert code == 0, err
    assert "norte" in dry and "ventas" in dry and "wv-norte-77" not in dry
    code, _, err = await _run("apply", str(config), env=env)
    assert code == 0, err
    code, again, err = await _run("apply", str(config), "--dry-run", env=env)
    assert code == 0 and "No changes" in again


async def test_apply_reports_every_error_with_its_line(tmp_path: Path) -> None:
    config = tmp_path / "agentbox.yml"
    config.write_text(
        "teams:\n"
        "  - name: ventas\n"
        '    agents: ["1010-1001"]\n'
        "    channel: C0VENTAS\n"
        "grants:\n"
        "  - user: U1\n"
        "    role: boss\n"
    )
    code, _, err = await _run("apply", str(config), env=_env(tmp_path))
    assert code != 0
    assert f"{config}:3:" in err and f"{config}:7:" in err


async def test_audit_export_writes_every_event_since_a_date(tmp_path: Path) -> None:
    env = _env(tmp_path, AGENTBOX_ADMINS="U1")
    await _run("console", "--user", "U1", "hide", "dial", "1001", env=env)
    await _run("console", "--user", "U2", "hide", "dial", "1001", env=env)

    code, csv_out, err = await _run("audit", "export", "--since", "2000-01-01", env=env)
    assert code == 0, err
    lines = csv_out.strip().splitlines()
    assert lines[0].startswith("id,at,user_id") and len(lines) == 3
    assert ",U1," in lines[1] and "allowed" in lines[1]
    assert ",U2," in lines[2] and "refused" in lines[2]

    code, jsonl, err = await _run(
        "audit", "export", "--since", "2000-01-01", "--format", "jsonl", env=env
    )
    assert code == 0, err
    events = [json.loads(line) for line in jsonl.strip().splitlines()]
    assert [(e["user_id"], e["decision"]) for e in events] == [("U1", "allowed"), ("U2", "refused")]

    code, later, _ = await _run("audit", "export", "--since", "2999-01-01", env=env)
    assert code == 0 and len(later.strip().splitlines()) == 1  # the header only

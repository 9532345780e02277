"""The ``agentbox`` command line."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from bot.logs import LOG_FORMATS, configure_logging, log_format_from_env
from bot.settings import Settings
from commands.i18n import LANGUAGES
from storage.secrets import SecretsError

if TYPE_CHECKING:
    from storage.directory import Directory

T = TypeVar("T")


def _settings() -> Settings:
    try:
        return Settings()
    except Exception as error:  # pydantic's ValidationError lists every bad variable
        raise click.ClickException(f"invalid configuration:\n{error}") from error


@click.group()
@click.option(
    "--log-level",
    default=None,
    help="DEBUG, INFO, WARNING… (default INFO; WARNING for the console, whose output is the chat)",
)
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default=None,
    help="text or json lines on standard error (default: AGENTBOX_LOG_FORMAT, else text)",
)
@click.pass_context
def main(ctx: click.Context, log_level: str | None, log_format: str | None) -> None:
    """agentbox: show or hide wolkvox softphone buttons from Slack."""
    if log_level is None:
        log_level = "WARNING" if ctx.invoked_subcommand == "console" else "INFO"
    try:
        configure_logging(log_level, log_format or log_format_from_env())
    except ValueError as error:  # a bad AGENTBOX_LOG_FORMAT or --log-level
        raise click.ClickException(str(error)) from error


@main.command()
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", default=3000, show_default=True, type=int)
@click.option(
    "--simulator",
    "with_simulator",
    is_flag=True,
    help="Send calls to an embedded wolkvox simulator instead of wolkvox (demos, staging).",
)
def serve(host: str, port: int, with_simulator: bool) -> None:
    """Run the Slack app (Socket Mode when SLACK_APP_TOKEN is set, else HTTP)."""
    from bot.serve import ConfigurationError
    from bot.serve import serve as run

    try:
        asyncio.run(run(_settings(), host=host, port=port, with_simulator=with_simulator))
    except ConfigurationError as error:
        raise click.ClickException(str(error)) from error


@main.command()
@click.option("--user", "user_id", default="U_CONSOLE", show_default=True, help="Slack user ID")
@click.option(
    "--lang",
    "language",
    type=click.Choice(LANGUAGES),
    default=None,
    help="The user's Slack language (their own `/agentbox lang` choice still wins)",
)
@click.argument("command", nargs=-1)
def console(user_id: str, language: str | None, command: tuple[str, ...]) -> None:
    """Type /agentbox commands as a Slack user; COMMAND runs one and exits."""
    from bot.console import run_console

    commands = [" ".join(command)] if command else []
    status = asyncio.run(
        run_console(_settings(), user_id=user_id, commands=commands, language=language)
    )
    sys.exit(status)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8800, show_default=True, type=int, help="0 picks a free port")
@click.option("--token", "tokens", multiple=True, help="A valid token (repeatable); default any")
@click.option("--latency", default=0.05, show_default=True, type=float, help="Seconds per call")
@click.option("--jitter", default=0.0, show_default=True, type=float, help="± seconds")
@click.option("--error-rate", default=0.0, show_default=True, type=float, help="Fraction of 500s")
@click.option("--garbage-rate", default=0.0, show_default=True, type=float)
@click.option("--hang-rate", default=0.0, show_default=True, type=float)
@click.option("--maintenance", is_flag=True, help="Answer every call 403 (maintenance)")
@click.option("--daily-quota", default=None, type=int, help="Calls per token before 403")
@click.option("--seed", default=None, type=int)
def simulator(
    host: str,
    port: int,
    tokens: tuple[str, ...],
    latency: float,
    jitter: float,
    error_rate: float,
    garbage_rate: float,
    hang_rate: float,
    maintenance: bool,
    daily_quota: int | None,
    seed: int | None,
) -> None:
    """Run a wolkvox agent_display simulator (a real HTTP server)."""
    from wolkvox.simulator import SimulatorConfig, run_simulator

    run_simulator(
        host,
        port,
        SimulatorConfig(
            tokens=frozenset(tokens) if tokens else None,
            latency=latency,
            latency_jitter=jitter,
            error_rate=error_rate,
            garbage_rate=garbage_rate,
            hang_rate=hang_rate,
            maintenance=maintenance,
            daily_quota=daily_quota,
            seed=seed,
        ),
    )


@main.group()
def db() -> None:
    """Database schema migrations (Alembic)."""


@db.command()
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Bring the database (DATABASE_URL) to REVISION (default: the newest)."""
    from storage import migrate
    from storage.database import Database

    async def run() -> str | None:
        database = Database(_settings().database_url)
        try:
            await migrate.upgrade(database, revision)
            return await migrate.current_revision(database)
        finally:
            await database.dispose()

    click.echo(f"database at revision {asyncio.run(run())}")


@db.command()
def current() -> None:
    """Show the database's revision and the newest one this version knows."""
    from storage import migrate
    from storage.database import Database

    async def run() -> str | None:
        database = Database(_settings().database_url)
        try:
            return await migrate.current_revision(database)
        finally:
            await database.dispose()

    click.echo(f"database: {asyncio.run(run())}, newest: {migrate.head_revision()}")


def _directory_run(work: Callable[[Directory], Awaitable[T]]) -> T:
    """Run ``work`` against the configured database's directory (migrated first)."""
    from storage import migrate
    from storage.database import Database
    from storage.directory import Directory
    from storage.secrets import TokenCipher

    settings = _settings()

    async def run() -> T:
        database = Database(settings.database_url)
        try:
            await migrate.upgrade(database)
            return await work(
                Directory(database, lambda: TokenCipher(settings.agentbox_encryption_keys))
            )
        finally:
            await database.dispose()

    try:
        return asyncio.run(run())
    except SecretsError as error:
        raise click.ClickException(str(error)) from error


@main.group()
def operation() -> None:
    """wolkvox operations (tenants) and their tokens. Tokens never go through Slack."""


@operation.command("add")
@click.option("--name", required=True, help="A short name, used in team definitions")
@click.option("--server", required=True, help="The operation's server code, e.g. 0042")
@click.option(
    "--token-env",
    default=None,
    help="Read the token from this environment variable (default: standard input)",
)
@click.option("--concurrency", default=1, show_default=True, type=click.IntRange(1, 2))
def operation_add(name: str, server: str, token_env: str | None, concurrency: int) -> None:
    """Add or update an operation; its token is read from stdin or an environment variable."""
    from storage.audit import AuditEntry
    from storage.models import Decision

    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", name):
        raise click.ClickException("--name: lowercase letters, digits, - and _ (at most 64)")
    if token_env is not None:
        token = os.environ.get(token_env, "").strip()
        if not token:
            raise click.ClickException(f"the environment variable {token_env} is empty or unset")
    else:
        if sys.stdin.isatty():
            token = click.prompt("wolkvox token", hide_input=True).strip()
        else:
            token = sys.stdin.readline().strip()
        if not token:
            raise click.ClickException("no token on standard input")
    audit = AuditEntry(
        user_id=_cli_actor(),
        action="operation.put",
        text=f"operation add --name {name} --server {server} --concurrency {concurrency}",
        decision=Decision.ALLOWED,
    )
    created = _directory_run(
        lambda d: d.put_operation(name, server, token, concurrency=concurrency, audit=audit)
    )
    click.echo(f"operation {name} {'added' if created else 'updated'} (server {server})")


@operation.command("list")
def operation_list() -> None:
    """The stored operations, without their tokens."""
    operations = _directory_run(lambda d: d.operations())
    if not operations:
        click.echo("no stored operations (the default one comes from WOLKVOX_SERVER/TOKEN)")
    for op in operations:
        click.echo(f"{op.name}\tserver {op.server}\tconcurrency {op.concurrency}")


@main.group()
def keys() -> None:
    """Encryption keys for stored tokens (AGENTBOX_ENCRYPTION_KEYS)."""


@keys.command("generate")
def keys_generate() -> None:
    """Print a new key; put it first in AGENTBOX_ENCRYPTION_KEYS."""
    from storage.secrets import generate_key

    click.echo(generate_key())


@keys.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every stored token with the first (newest) key."""
    count = _directory_run(lambda d: d.rotate_tokens())
    click.echo(f"re-encrypted {count} token(s) with the newest key; older keys may now be dropped")


@main.command("apply")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Print the differences; change nothing")
@click.option("--prune", is_flag=True, help="Also remove grants the file does not list")
def apply_command(path: Path, dry_run: bool, prune: bool) -> None:
    """Make operations, teams and grants what PATH declares (configuration as code)."""
    from commands.config_file import (
        ApplyFailed,
        ConfigInvalid,
        apply_file,
        default_actor,
        format_plan,
        plan_file,
    )

    try:
        if dry_run:
            steps = _directory_run(lambda d: plan_file(path, d, environ=os.environ, prune=prune))
        else:
            steps = _directory_run(
                lambda d: apply_file(
                    path, d, environ=os.environ, prune=prune, actor=default_actor()
                )
            )
    except ConfigInvalid as error:
        raise click.ClickException(f"{len(error.errors)} error(s):\n{error.render()}") from error
    except ApplyFailed as error:
        raise click.ClickException(str(error)) from error
    click.echo(format_plan(steps, applied=not dry_run))


def _cli_actor() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"[:32]
    except Exception:
        return "cli"


@main.group()
def audit() -> None:
    """The audit trail (every attempt, grant, revoke, team change…)."""


@audit.command("export")
@click.option(
    "--since",
    required=True,
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]),
    help="From this date (UTC), e.g. 2026-11-01",
)
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv")
def audit_export(since: datetime, fmt: str) -> None:
    """Write the audit events since a date to standard output, as CSV or JSON lines."""
    import csv
    import dataclasses
    import json

    from storage import migrate
    from storage.database import Database
    from storage.history import AuditRow, History

    settings = _settings()
    fields = [field.name for field in dataclasses.fields(AuditRow)]
    out = sys.stdout
    writer = csv.DictWriter(out, fieldnames=fields) if fmt == "csv" else None
    if writer is not None:
        writer.writeheader()

    async def run() -> int:
        database = Database(settings.database_url)
        count = 0
        try:
            await migrate.upgrade(database)
            async for row in History(database).audit(since.replace(tzinfo=UTC)):
                record = dataclasses.asdict(row)
                record["at"] = row.at.isoformat()
                if writer is not None:
                    writer.writerow(record)
                else:
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
                count += 1
        finally:
            await database.dispose()
        return count

    count = asyncio.run(run())
    click.echo(f"{count} event(s)", err=True)

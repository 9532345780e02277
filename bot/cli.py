"""The ``agentbox`` command line."""

from __future__ import annotations

import asyncio
import logging
import sys

import click

from bot.settings import Settings


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
@click.pass_context
def main(ctx: click.Context, log_level: str | None) -> None:
    """agentbox: show or hide wolkvox softphone buttons from Slack."""
    if log_level is None:
        log_level = "WARNING" if ctx.invoked_subcommand == "console" else "INFO"
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # One line per wolkvox request at INFO is noise; agentbox logs what matters itself.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))


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
@click.argument("command", nargs=-1)
def console(user_id: str, command: tuple[str, ...]) -> None:
    """Type /agentbox commands as a Slack user; COMMAND runs one and exits."""
    from bot.console import run_console

    commands = [" ".join(command)] if command else []
    status = asyncio.run(run_console(_settings(), user_id=user_id, commands=commands))
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

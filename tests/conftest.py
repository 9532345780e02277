"""Shared fixtures: the databases every storage-touching test runs on, and a running agentbox.

Tests that use ``database_url`` (directly or through ``agentbox``) run once on SQLite and once on
PostgreSQL. PostgreSQL is taken from ``AGENTBOX_TEST_POSTGRES_URL`` (default: the local server CI
provides); when it is unreachable those runs are skipped with the reason shown, except under
``CI=true``, where an unreachable PostgreSQL fails the run instead of skipping silently.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from bot.fake_slack import FakeSlack
from tests.harness import Harness, MovableClock, start_harness
from wolkvox.simulator import Simulator, SimulatorConfig

POSTGRES_URL = os.environ.get(
    "AGENTBOX_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _postgres_problem() -> str | None:
    async def probe() -> None:
        engine = create_async_engine(POSTGRES_URL)
        try:
            async with asyncio.timeout(5), engine.connect():
                pass
        finally:
            await engine.dispose()

    try:
        asyncio.run(probe())
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database of this test session's own on the PostgreSQL server, dropped at the end.

    Several sessions may share one server (developers, CI); each resets its schema before every
    test, so they must not share a database. Where databases cannot be created (no CREATEDB),
    the configured database itself is used.
    """
    problem = _postgres_problem()
    if problem is not None:
        message = f"PostgreSQL not reachable at {POSTGRES_URL} ({problem})"
        if IN_CI:
            pytest.fail(f"{message}; CI must run the PostgreSQL tests", pytrace=False)
        pytest.skip(message)
    name = f"agentbox_test_{secrets.token_hex(4)}"
    if not asyncio.run(_admin(f'CREATE DATABASE "{name}"')):
        yield POSTGRES_URL
        return
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin(statement: str) -> bool:
    engine = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    except DBAPIError:
        return False
    finally:
        await engine.dispose()
    return True


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'agentbox.db'}"
    else:
        url: str = request.getfixturevalue("postgres_url")
        asyncio.run(_reset_postgres(url))
        yield url


async def _reset_postgres(url: str) -> None:
    """An empty database for each test: the app migrates it from scratch."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
    finally:
        await engine.dispose()


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    sim = Simulator(SimulatorConfig())
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
def clock() -> MovableClock:
    """A clock to hand to ``start_harness``, moved forward by the test instead of waiting."""
    return MovableClock()


@pytest.fixture
async def agentbox(database_url: str, simulator: Simulator) -> AsyncIterator[Harness]:
    async with start_harness(database_url=database_url, simulator=simulator) as harness:
        yield harness

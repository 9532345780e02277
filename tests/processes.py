"""Test-only helpers for black-box tests with real processes.

- :class:`AgentboxProcess`: an ``agentbox`` subprocess whose stdout and stderr are drained all the
  time (a full pipe would block it) and kept, so that a test can wait for a log line and show the
  last lines when it fails.
- :class:`TcpProxy`: a TCP relay on 127.0.0.1 that a test can cut (every connection closed, new
  ones refused) and restore on the same port, to restart "the database" without touching it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections import deque
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

AGENTBOX = str(Path(sys.executable).parent / "agentbox")
LISTENING = re.compile(r"listening on (http://\S+)")
_KEPT_LINES = 5000


def clean_env(**settings: str) -> dict[str, str]:
    """The test's environment without any agentbox setting of its own, plus ``settings``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SLACK_", "WOLKVOX_", "AGENTBOX_", "DATABASE_URL"))
    }
    env.update(settings)
    return env


class AgentboxProcess:
    """A running ``agentbox`` command; its output lines are kept as ``[name] line``."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self.lines: deque[str] = deque(maxlen=_KEPT_LINES)
        self._arrived = asyncio.Condition()
        streams = [s for s in (process.stdout, process.stderr) if s is not None]
        self._open_streams = len(streams)  # until each one's drainer reads its end
        self._drainers = [
            asyncio.create_task(self._drain(stream), name=f"drain-{name}") for stream in streams
        ]
        self.url: str | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        try:
            while raw := await stream.readline():
                async with self._arrived:
                    self.lines.append(raw.decode(errors="replace").rstrip())
                    self._arrived.notify_all()
        finally:
            self._open_streams -= 1
            async with self._arrived:
                self._arrived.notify_all()

    async def wait_for_line(
        self, pattern: re.Pattern[str], *, count: int = 1, within: float = 30.0
    ) -> re.Match[str]:
        """The ``count``-th kept line matching ``pattern``, waiting for it if need be."""
        found: list[re.Match[str]] = []

        def seen() -> bool:
            found[:] = [m for line in self.lines if (m := pattern.search(line)) is not None]
            return len(found) >= count or self._open_streams == 0

        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(seen)
        if len(found) < count:
            raise AssertionError(
                f"{self.name} ended (exit code {self.process.returncode}) with "
                f"{len(found)} of {count} line(s) matching {pattern.pattern!r}"
            )
        return found[count - 1]

    async def ready(self, *, within: float = 30.0) -> str:
        """Wait for ``serve``'s "listening on" line (written once it has resumed what was left)."""
        self.url = (await self.wait_for_line(LISTENING, within=within)).group(1)
        return self.url

    def tail(self, count: int = 60) -> str:
        kept = list(self.lines)[-count:]
        return "\n".join(f"[{self.name}] {line}" for line in kept) or f"[{self.name}] (no output)"

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye, as a crash or an OOM kill would end it."""
        if self.running:
            self.process.send_signal(signal.SIGKILL)

    async def wait(self, *, within: float = 20.0) -> int:
        async with asyncio.timeout(within):
            code = await self.process.wait()
            await asyncio.gather(*self._drainers, return_exceptions=True)
        return code

    async def aclose(self) -> None:
        """Kill it if it still runs, and reap it."""
        self.kill()
        with contextlib.suppress(TimeoutError, ProcessLookupError):
            await self.wait(within=10)
        for drainer in self._drainers:
            drainer.cancel()
        await asyncio.gather(*self._drainers, return_exceptions=True)


@asynccontextmanager
async def agentbox_process(
    name: str, *args: str, env: dict[str, str]
) -> AsyncIterator[AgentboxProcess]:
    """Start ``agentbox *args``; it is killed and reaped on the way out, whatever happened."""
    process = await asyncio.create_subprocess_exec(
        AGENTBOX,
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    running = AgentboxProcess(name, process)
    try:
        yield running
    finally:
        await running.aclose()


def logs_of(processes: Iterable[AgentboxProcess], count: int = 60) -> str:
    return "\n".join(process.tail(count) for process in processes)


class TcpProxy:
    """Relays TCP connections from 127.0.0.1:``port`` to ``target``; can be cut and restored."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pumps: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        """Listen (on a port chosen by the OS the first time, on the same port afterwards)."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Close every relayed connection and stop accepting new ones (connections are refused)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        pumps = list(self._pumps)
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def restore(self) -> None:
        await self.start()

    async def aclose(self) -> None:
        await self.cut()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._server is None:
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        if self._server is None:  # cut while connecting upstream
            writer.transport.abort()
            upstream_writer.transport.abort()
            return
        self._writers.update((writer, upstream_writer))
        pumps = [
            asyncio.create_task(self._pump(reader, upstream_writer)),
            asyncio.create_task(self._pump(upstream_reader, writer)),
        ]
        self._pumps.update(pumps)
        for pump in pumps:
            pump.add_done_callback(self._pumps.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

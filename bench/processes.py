"""The processes under test: ``agentbox serve`` and ``agentbox simulator``, each on port 0.

A child's stdout and stderr are drained for as long as it runs (a full pipe would block its
logging, and with it the app), the last lines are kept for error messages, and error log lines
are counted so the report can say whether the app complained during a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import shutil
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

SERVER_READY = re.compile(r"listening on http://(?P<host>[^\s/]+):(?P<port>\d+) \(HTTP\)")
SIMULATOR_READY = re.compile(r"wolkvox simulator listening on (?P<url>http://\S+)")
_ERROR_RECORD = re.compile(r" (ERROR|CRITICAL) ")
#: The start of a log record (see bot.cli's format): what ends a traceback.
_LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")

#: Environment variables agentbox reads; the bench sets its own and drops any inherited ones.
_APP_VARIABLES = re.compile(r"^(SLACK_|WOLKVOX_|AGENTBOX_|DATABASE_URL$)", re.IGNORECASE)

_TRACEBACK_NOISE = (
    "Traceback (most recent call last):",
    "During handling of the above exception",
    "The above exception was the direct cause",
)
_TAIL_LINES = 60
_KEPT_ERRORS = 5


class BenchError(Exception):
    """The bench could not measure (a process did not start, a deadline passed…)."""


def agentbox_command() -> list[str]:
    """How to run the ``agentbox`` console script of this interpreter's environment."""
    beside = Path(sys.executable).with_name("agentbox")
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("agentbox")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from bot.cli import main; sys.exit(main())"]


def app_environment(overrides: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without agentbox's own variables, plus ``overrides``."""
    env = {key: value for key, value in os.environ.items() if not _APP_VARIABLES.match(key)}
    env.update(overrides)
    return env


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux /proc); NaN elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return math.nan
    # The command name (field 2) may hold spaces; the fields after its ")" are fixed.
    fields = stat.rpartition(")")[2].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def cpu_wait_seconds(pid: int) -> float:
    """Seconds the main thread of ``pid`` (for agentbox: its event loop) was ready to run but
    waited for a CPU core (Linux /proc schedstat); NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/schedstat").read_text(encoding="ascii").split()
    except OSError:
        return math.nan
    return int(fields[1]) / 1e9


def rss_bytes(pid: int) -> int:
    """Resident set size of process ``pid`` (Linux /proc); 0 elsewhere."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class ChildProcess:
    """A child started with :meth:`start`, ready once a line matches ``ready``.

    Use as an async context manager: leaving it kills the child if it is still running (the normal
    path stops it first with :meth:`stop`, which sends SIGTERM and times the exit).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        ready: re.Pattern[str],
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.cwd = cwd
        self.ready_pattern = ready
        self.tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self.error_lines = 0
        self._errors: list[list[str]] = []  # [record, exception line of its traceback or ""]
        self._in_traceback = False
        self._process: asyncio.subprocess.Process | None = None
        self._drains: list[asyncio.Task[None]] = []
        self._ready: asyncio.Future[re.Match[str]] | None = None

    async def __aenter__(self) -> ChildProcess:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.kill()

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.returncode

    @property
    def pid(self) -> int:
        if self._process is None:
            raise BenchError(f"{self.name} is not started")
        return self._process.pid

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the child has used so far; NaN where /proc cannot say."""
        return cpu_seconds(self.pid)

    def cpu_wait_seconds(self) -> float:
        """Time the child's main thread has waited for a CPU core so far; NaN where unknown."""
        return cpu_wait_seconds(self.pid)

    def rss_bytes(self) -> int:
        """The child's resident set size now; 0 where /proc cannot say."""
        return rss_bytes(self.pid)

    async def start(self, within: float) -> re.Match[str]:
        """Start the child; return the match of its ready line, or raise :class:`BenchError`."""
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        self._process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
            cwd=self.cwd,
        )
        streams = [s for s in (self._process.stdout, self._process.stderr) if s is not None]
        open_streams = len(streams)

        def closed() -> None:
            nonlocal open_streams
            open_streams -= 1
            if open_streams == 0 and self._ready is not None and not self._ready.done():
                self._ready.set_exception(
                    BenchError(f"{self.name} ended before it was ready:\n{self.last_output()}")
                )

        self._drains = [
            loop.create_task(self._drain(stream, closed), name=f"drain-{self.name}")
            for stream in streams
        ]
        try:
            async with asyncio.timeout(within):
                return await self._ready
        except TimeoutError:
            raise BenchError(
                f"{self.name} did not say it was ready within {within:.0f} s:\n{self.last_output()}"
            ) from None

    async def stop(self, within: float) -> float:
        """SIGTERM, wait up to ``within`` s (then kill); the seconds it took to exit."""
        process = self._process
        if process is None or process.returncode is not None:
            return 0.0
        started = time.perf_counter()
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(within):
                await process.wait()
        except TimeoutError:
            await self.kill()
            raise BenchError(
                f"{self.name} did not exit within {within:.0f} s of SIGTERM (killed):\n"
                f"{self.last_output()}"
            ) from None
        elapsed = time.perf_counter() - started
        await self._join_drains()
        return elapsed

    async def kill(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await process.wait()
        await self._join_drains()

    def last_output(self, lines: int = 20) -> str:
        kept = list(self.tail)[-lines:]
        return "\n".join(f"  | {line}" for line in kept) or "  | (no output)"

    async def _join_drains(self) -> None:
        drains, self._drains = self._drains, []
        if not drains:
            return
        _, pending = await asyncio.wait(drains, timeout=2)
        for task in pending:
            task.cancel()
        await asyncio.gather(*drains, return_exceptions=True)

    async def _drain(self, stream: asyncio.StreamReader, closed: Callable[[], None]) -> None:
        buffer = b""
        try:
            while True:
                chunk = await stream.read(65536)
                if not chunk:
                    break
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for raw in lines:
                    self._line(raw.decode("utf-8", errors="replace").rstrip("\r"))
            if buffer:
                self._line(buffer.decode("utf-8", errors="replace"))
        finally:
            closed()

    @property
    def first_errors(self) -> list[str]:
        """The first error records, each with the exception its traceback ended with, if any."""
        return [f"{record} -> {raised}" if raised else record for record, raised in self._errors]

    def _line(self, line: str) -> None:
        self.tail.append(line)
        if _LOG_RECORD.match(line):
            self._in_traceback = False
            if _ERROR_RECORD.search(line):
                self.error_lines += 1
                if len(self._errors) < _KEPT_ERRORS:
                    self._errors.append([line, ""])
                    self._in_traceback = True
        elif (
            self._in_traceback
            and line
            and not line[0].isspace()
            and not line.startswith(_TRACEBACK_NOISE)
        ):
            # "module.Error: message"; with chained exceptions the last one wins.
            self._errors[-1][1] = line.strip()
        if self._ready is not None and not self._ready.done():
            match = self.ready_pattern.search(line)
            if match is not None:
                self._ready.set_result(match)

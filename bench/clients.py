"""The Slack side's HTTP client: times each request from sending it to reading its response.

Two implementations: aiohttp (the default) and httpx. With 200 requests in flight at once, httpx's
connection pool costs the *client* several hundred milliseconds per request on a small machine
(encode/httpx#3215), which would be charged to agentbox's ack latency; aiohttp's client adds a few
milliseconds. ``--client httpx`` is there to compare. The ``GET /healthz`` baseline of the ack
burst shows what the chosen client and the transport cost on their own.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal, Protocol

import aiohttp
import httpx

ClientKind = Literal["aiohttp", "httpx"]
CLIENT_KINDS: tuple[ClientKind, ...] = ("aiohttp", "httpx")


@dataclass(frozen=True)
class Sample:
    latency_ms: float
    status: int | None
    text: str
    """The response body, or the error when there was no response."""


class Client(Protocol):
    async def send(
        self,
        method: str,
        path: str,
        *,
        content: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Sample: ...


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


class _AiohttpClient:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def send(
        self,
        method: str,
        path: str,
        *,
        content: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Sample:
        data = None if content is None else content.encode()
        started = time.perf_counter()
        try:
            async with self._session.request(method, path, data=data, headers=headers) as response:
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as error:
            return Sample(_elapsed_ms(started), None, f"{type(error).__name__}: {error}")
        return Sample(_elapsed_ms(started), response.status, text)


class _HttpxClient:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def send(
        self,
        method: str,
        path: str,
        *,
        content: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Sample:
        started = time.perf_counter()
        try:
            response = await self._client.request(method, path, content=content, headers=headers)
        except httpx.HTTPError as error:
            return Sample(_elapsed_ms(started), None, f"{type(error).__name__}: {error}")
        return Sample(_elapsed_ms(started), response.status_code, response.text)


@asynccontextmanager
async def open_client(
    kind: ClientKind, base_url: str, *, connections: int, request_timeout: float
) -> AsyncIterator[Client]:
    """A client for ``base_url``: ``connections`` at once, ``request_timeout`` s per request."""
    if kind == "aiohttp":
        async with aiohttp.ClientSession(
            base_url=base_url,
            connector=aiohttp.TCPConnector(limit=connections, limit_per_host=connections),
            timeout=aiohttp.ClientTimeout(total=request_timeout),
        ) as session:
            yield _AiohttpClient(session)
    else:
        async with httpx.AsyncClient(
            base_url=base_url,
            timeout=request_timeout,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        ) as client:
            yield _HttpxClient(client)

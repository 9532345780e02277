"""Prometheus metrics of the calls to wolkvox, kept in this process (prometheus_client's registry).

Importing this module imports neither Slack nor HTTP servers: the core and the dispatcher may use
it. ``bot/metrics.py`` serves these together with the queue's state read from the database.

Series are labelled by operation name (a wolkvox tenant, e.g. ``default``), never by token.
:func:`call_with_retry <wolkvox.retrying.call_with_retry>` only sees credentials, so whoever loads
credentials names them here (:func:`name_operation`, from commands/operations.py).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from wolkvox.model import Credentials

#: The label of a call whose credentials no operation was named for.
UNNAMED = "unnamed"
#: The ``result`` label of a call that succeeded; failures carry their error kind.
OK = "ok"

WOLKVOX_REQUEST_SECONDS = Histogram(
    "agentbox_wolkvox_request_seconds",
    "Time one HTTP request to wolkvox's agent_display took (each attempt, answered or not).",
    ["operation"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
WOLKVOX_RESULTS = Counter(
    "agentbox_wolkvox_results",
    "Calls to wolkvox by final result (after retries): ok, or the error kind.",
    ["operation", "result"],
)
WOLKVOX_RETRIES = Counter(
    "agentbox_wolkvox_retries",
    "Attempts that failed transiently and were retried, by error kind.",
    ["operation", "kind"],
)

_names: dict[Credentials, str] = {}


def name_operation(credentials: Credentials, operation: str) -> None:
    """Label the calls made with ``credentials`` as ``operation`` (the last name given wins)."""
    _names[credentials] = operation


def operation_of(credentials: Credentials) -> str:
    return _names.get(credentials, UNNAMED)

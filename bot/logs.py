"""Logging: text or JSON lines on standard error, with every secret scrubbed.

``AGENTBOX_LOG_FORMAT=json`` writes one JSON object per line (``time``, ``level``, ``logger``,
``message``, ``exception`` and any ``extra=`` fields), for log collectors; ``text`` (the default)
is for people. Either way a :class:`RedactingFilter` on the handler scrubs, from the message, its
arguments, extra fields, tracebacks and stack traces:

- every secret registered at run time (wolkvox tokens as they are loaded, the Slack credentials
  and database password from the settings: wolkvox/redaction.py);
- anything shaped like a Slack token (``xoxb-…``, ``xoxp-…``, ``xapp-…``, ``xoxe.xoxp-…``), a
  Slack webhook or response URL, an ``Authorization: Bearer …`` value or a ``wolkvox-token``
  header value, registered or not.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TextIO

from wolkvox.redaction import redact_secrets

LOG_FORMATS = ("text", "json")
LOG_FORMAT_VARIABLE = "AGENTBOX_LOG_FORMAT"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "[redacted]"

_PATTERNS = (
    # Slack tokens: bot, user, app-level, refresh (xoxe-, xoxe.xoxp-), legacy and client kinds.
    (re.compile(r"\b(?:xox[a-z](?:\.xox[a-z])?|xapp)-[A-Za-z0-9-]+", re.IGNORECASE), REDACTED),
    # Incoming webhooks and response_urls carry their secret in the path.
    (
        re.compile(r"(hooks\.slack\.com/)(?:commands|services|actions|triggers|workflows)/\S+"),
        rf"\g<1>{REDACTED}",
    ),
    (re.compile(r"(\bBearer\s+)[^\s'\",;)]+", re.IGNORECASE), rf"\g<1>{REDACTED}"),
    (
        re.compile(r"(wolkvox[-_]token['\"]?\s*[:=]\s*['\"]?)[^\s'\",;}]+", re.IGNORECASE),
        rf"\g<1>{REDACTED}",
    ),
)

#: The attributes every LogRecord has; anything else came from ``extra=``.
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def redact(text: str) -> str:
    """``text`` without any registered secret or anything shaped like a Slack credential."""
    text = redact_secrets(text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Scrubs secrets from a record before any formatter sees it (attach it to handlers)."""

    def __init__(self) -> None:
        super().__init__()
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key not in _RECORD_ATTRIBUTES and isinstance(value, str):
                setattr(record, key, redact(value))
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_") and key not in entry:
                entry[key] = value
        # The whole line once more: extra fields that are not strings (a dict, an object).
        return redact(json.dumps(entry, ensure_ascii=False, default=str))


def log_format_from_env(environ: Mapping[str, str] | None = None) -> str:
    """``AGENTBOX_LOG_FORMAT`` (``text`` when unset); raises ValueError naming a bad value."""
    value = (os.environ if environ is None else environ).get(LOG_FORMAT_VARIABLE, "").strip()
    value = value.lower() or "text"
    if value not in LOG_FORMATS:
        raise ValueError(f"{LOG_FORMAT_VARIABLE} must be 'text' or 'json', not {value!r}")
    return value


def build_handler(log_format: str, stream: TextIO) -> logging.Handler:
    """A handler writing ``log_format`` lines to ``stream``, with the redaction filter."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be 'text' or 'json', not {log_format!r}")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())
    return handler


def configure_logging(level: str | int, log_format: str, *, stream: TextIO | None = None) -> None:
    """Send every log record to ``stream`` (standard error) in ``log_format``, scrubbed.

    Replaces the root logger's handlers, so calling it again reconfigures rather than doubles.
    """
    handler = build_handler(log_format, stream or sys.stderr)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    # A crash's traceback goes through the same handler (format and redaction), not raw stderr.
    sys.excepthook = _log_uncaught
    # One line per wolkvox request at INFO is noise; agentbox logs what matters itself.
    for noisy in ("httpx", "alembic", "aiosqlite"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def _log_uncaught(
    kind: type[BaseException], error: BaseException, traceback: TracebackType | None
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, traceback)
        return
    logging.getLogger("agentbox").critical("stopped by an error", exc_info=(kind, error, traceback))

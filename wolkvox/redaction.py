"""Secrets known at run time (wolkvox tokens, Slack's credentials), to scrub from any text.

Whoever loads a secret registers it (commands/operations.py for wolkvox tokens, bot/services.py
for the settings); bot/logs.py scrubs every log line with :func:`redact_secrets`. Redaction
reuses the wolkvox client's own (plain, URL-encoded, any case).
"""

from __future__ import annotations

import threading

from wolkvox.client import _redact

#: Shorter values are not registered: scrubbing them would blank ordinary words.
MIN_SECRET_LENGTH = 6

_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Scrub ``value`` from every log line from now on (values under 6 characters are not)."""
    if value and len(value.strip()) >= MIN_SECRET_LENGTH:
        with _lock:
            _secrets.add(value.strip())


def redact_secrets(text: str) -> str:
    """``text`` with every registered secret replaced by ``[redacted]``."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)  # longest first: one may contain another
    for secret in secrets:
        if secret.lower() in text.lower() or "%" in text:
            text = _redact(text, secret)
    return text

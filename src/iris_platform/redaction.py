"""Credentials never leave the process: URIs and log lines with their passwords masked."""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit, urlunsplit

# scheme://user:password@host: the password is whatever lies between the user's colon and the @.
_URI_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@")


def redact_uri(uri: str) -> str:
    """The tracking URI without a password, for /health and logs."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def redact_text(text: str) -> str:
    """Every `scheme://user:password@` in a text with the password masked."""
    return _URI_PASSWORD.sub(r"\1***@", text)


def describe(exc: BaseException) -> str:
    """An error as `Type: message`, first line only, credentials masked: what /health and a 503 show."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return redact_text(f"{type(exc).__name__}: {first}" if first else type(exc).__name__)[:400]


class RedactingFilter(logging.Filter):
    """On a handler: the record's message, formatted, with passwords in URIs masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def redact_logs(logger: logging.Logger | None = None) -> None:
    """Mask passwords in everything `logger`'s handlers (the root's by default) write."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())

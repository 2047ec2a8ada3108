"""The `detail` of the errors the app answers for causes other than an InputError: written once, for the
app's exception handlers and for the command line's local commands, which fail in the same words."""

from __future__ import annotations

import errno

from fastapi.exceptions import RequestValidationError

from iris_platform.redaction import describe, redact_uri

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# A folder the server writes to is unwritable, missing or replaced by a file.
CANNOT_WRITE_ERRNOS = (errno.EACCES, errno.EROFS, errno.EPERM, errno.ENOENT, errno.ENOTDIR, errno.EISDIR)
DISK_FULL = "The server's disk is full: free some space and try again; the model that was serving is still serving."


def invalid_request(exc: RequestValidationError) -> str:
    """FastAPI's validation errors as one sentence: where each wrong value is and what is wrong with it."""
    parts = []
    for error in exc.errors()[:10]:
        location = [str(part) for part in error.get("loc", ())]
        where = f"{location[0]} field '{'.'.join(location[1:])}'" if len(location) > 1 else ".".join(location)
        parts.append(f"{where or 'the request'}: {error.get('msg', 'invalid')}")
    return "Invalid request: " + "; ".join(parts) + "."


def tracking_unavailable(tracking_uri: str, exc: Exception) -> str:
    return (
        f"The MLflow tracking store ({redact_uri(tracking_uri)}) is unavailable or refused the write "
        f"({describe(exc)}); nothing was half-written. Try again when it is back: single predictions are "
        "still served and journaled meanwhile."
    )


def cannot_write(exc: OSError) -> str:
    """A folder the server writes to is unwritable, missing or replaced by a file."""
    return (
        f"The server cannot write where it needs to ({exc.filename or exc}: {exc.strerror}): check that the "
        "folder exists and is writable; the model that was serving is still serving."
    )


def internal_error(exc: Exception) -> str:
    return f"Internal error ({type(exc).__name__}): this is the server's bug, not your request's."

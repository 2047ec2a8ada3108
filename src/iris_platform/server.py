"""Start the server: `iris-platform`, `python -m iris_platform` or `python main.py`.

Flags: [--host HOST] [--port PORT] [--workers N].
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
from typing import Any

import uvicorn

from iris_platform.config import Settings
from iris_platform.header_timeout import header_timeout_protocol
from iris_platform.redaction import redact_logs

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="iris-platform", description="Serve the Iris ML platform.")
    # Flags given win over the environment; unset, the settings read IRIS_HOST, IRIS_PORT and IRIS_WORKERS.
    parser.add_argument("--host", help="interface to bind (default 127.0.0.1, this machine only; env IRIS_HOST)")
    parser.add_argument("--port", type=int, help="port (default 8000; env IRIS_PORT)")
    parser.add_argument(
        "--workers",
        type=int,
        help="serving processes behind the port, each with its own journal (default 1; env IRIS_WORKERS)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    redact_logs()
    flags = {k: v for k, v in (("host", args.host), ("port", args.port), ("workers", args.workers)) if v is not None}
    try:
        settings = Settings.from_env(**flags)
    except ValueError as exc:  # a malformed variable: one line that names it, and exit status 2
        parser.error(str(exc))
    if settings.workers < 1:
        parser.error(f"--workers (IRIS_WORKERS) must be at least 1, not {settings.workers}")

    from iris_platform.api.app import create_app, prepare_tracking  # after logging is configured

    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "access_log": settings.access_log,
        "log_config": redacted_log_config(),
        # uvicorn's own protocol with a bound on request headers; with --workers it reaches every worker.
        "http": header_timeout_protocol(settings.header_timeout_s),
    }
    if settings.workers == 1:
        uvicorn.run(create_app(settings), **options)
        return
    # Each worker process builds its app from the environment, as this process read it.
    os.environ.update({"IRIS_HOST": settings.host, "IRIS_PORT": str(settings.port)})
    prepare_tracking(settings)  # the store's schema is created once, before the workers race to it
    uvicorn.run("iris_platform.api.app:create_app", factory=True, workers=settings.workers, **options)


def redacted_log_config() -> dict[str, Any]:
    """uvicorn's own logging set-up plus the platform's loggers (also in worker processes), with
    passwords in URIs masked on every handler."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config.setdefault("filters", {})["redact"] = {"()": "iris_platform.redaction.RedactingFilter"}
    config["formatters"]["platform"] = {"format": LOG_FORMAT}
    config["handlers"]["platform"] = {
        "formatter": "platform",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact")
    config["root"] = {"handlers": ["platform"], "level": "INFO"}
    return config

"""Start the server: `iris-platform`, `python -m iris_platform` or `python main.py` [--host HOST] [--port PORT]."""

from __future__ import annotations

import argparse
import copy
import logging
from typing import Any

import uvicorn

from iris_platform.config import Settings
from iris_platform.redaction import redact_logs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="iris-platform", description="Serve the Iris ML platform.")
    # Flags given win over the environment; unset, the settings read IRIS_HOST and IRIS_PORT.
    parser.add_argument("--host", help="interface to bind (default 127.0.0.1, this machine only; env IRIS_HOST)")
    parser.add_argument("--port", type=int, help="port (default 8000; env IRIS_PORT)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redact_logs()
    flags = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = Settings.from_env(**flags)

    from iris_platform.api.app import create_app  # after logging is configured

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=settings.access_log,
        log_config=redacted_log_config(),
    )


def redacted_log_config() -> dict[str, Any]:
    """uvicorn's own logging set-up, with passwords in URIs masked on its handlers too."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config.setdefault("filters", {})["redact"] = {"()": "iris_platform.redaction.RedactingFilter"}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact")
    return config

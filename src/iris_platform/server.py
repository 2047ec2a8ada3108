"""Start the server: `iris-platform`, `python -m iris_platform` or `python main.py`.

Flags: [--host HOST] [--port PORT] [--workers N].
"""

from __future__ import annotations

import argparse
import atexit
import copy
import gc
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import MutableMapping
from pathlib import Path
from types import FrameType
from typing import Any

# Before anything else that is large: skops (the format MLflow saves scikit-learn models in) finds the
# module of each scipy ufunc by scanning sys.modules in import order, 600 ufuncs over 3,000 modules
# once MLflow is loaded; with scipy.special among the first modules the scan ends early, which takes
# about a second off the first training after start-up (and costs start-up nothing measurable).
import scipy.special  # noqa: F401
import uvicorn

from iris_platform.config import Settings
from iris_platform.header_timeout import header_timeout_protocol
from iris_platform.redaction import redact_logs
from iris_platform.training_process import TrainingProcess

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
METRICS_FOLDER_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's multiprocess mode
log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    # No cyclic garbage collection while the start-up imports build some 10^6 objects that live as long
    # as the process: about a sixth of the start-up's CPU. The app turns it on again (api/app.py).
    gc.disable()
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

    if settings.metrics:
        folder, made_here = prepare_metrics_folder()
        if made_here:
            remove_at_exit(folder)
    # Before the app's imports, so that it warms up on the other core meanwhile; after the metrics
    # folder is set, which it inherits.
    trainer = TrainingProcess(settings) if settings.training_process and settings.workers == 1 else None
    # After logging is configured and the metrics folder is set: importing the app imports prometheus_client.
    from iris_platform.api.app import create_app, prepare_tracking

    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "access_log": settings.access_log,
        "log_config": redacted_log_config(),
        # uvicorn's own protocol with a bound on request headers; with --workers it reaches every worker.
        "http": header_timeout_protocol(settings.header_timeout_s),
    }
    if settings.workers == 1:
        try:
            uvicorn.run(create_app(settings, trainer), **options)
        finally:
            if trainer is not None:  # also when uvicorn did not start (a port in use)
                trainer.close()
        return
    # Each worker process builds its app from the environment, as this process read it.
    os.environ.update({"IRIS_HOST": settings.host, "IRIS_PORT": str(settings.port)})
    prepare_tracking(settings)  # the store's schema is created once, before the workers race to it
    gc.enable()  # this process only supervises: no app of its own turns it on again
    uvicorn.run("iris_platform.api.app:create_app", factory=True, workers=settings.workers, **options)


def prepare_metrics_folder(environ: MutableMapping[str, str] = os.environ) -> tuple[Path, bool]:
    """The folder where every process writes its metrics, so that GET /metrics answers for all of them.

    The serving processes (--workers) and their tracking workers are separate processes, so even one
    serving process needs prometheus-client's multiprocess mode. It reads PROMETHEUS_MULTIPROC_DIR when it
    is first imported, hence this runs before the app is imported; the child processes inherit the
    variable. A folder the user set is emptied of the last run's files (prometheus-client's docs: wipe it
    between runs); otherwise a private temporary folder (`made_here`: the caller removes it at exit).
    """
    if "prometheus_client" in sys.modules:  # too late for its multiprocess mode in this process
        log.warning("prometheus_client was imported before %s was set", METRICS_FOLDER_VARIABLE)
    given = environ.get(METRICS_FOLDER_VARIABLE, "").strip()
    if given:
        folder = Path(given).resolve()  # the same folder for a child that changes its directory
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink(missing_ok=True)
    else:
        folder = Path(tempfile.mkdtemp(prefix="iris-metrics-"))
    environ[METRICS_FOLDER_VARIABLE] = str(folder)
    log.info("metrics of every process are gathered in %s", folder)
    return folder, not given


def remove_at_exit(folder: Path) -> None:
    """Remove `folder` when this process ends: on a normal exit, and on SIGTERM, which uvicorn raises
    again once it has shut down gracefully, so that the process dies of it without running atexit."""

    def remove() -> None:
        shutil.rmtree(folder, ignore_errors=True)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        remove()
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)  # and die of it, as the process would have

    atexit.register(remove)
    signal.signal(signal.SIGTERM, on_sigterm)  # uvicorn restores it when it stops serving


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

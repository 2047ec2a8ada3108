"""One settings object, read from the environment once at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    # MLflow's own variable wins, so PostgreSQL or a remote `mlflow server` needs no code change.
    tracking_uri: str = DEFAULT_TRACKING_URI
    models_dir: Path = field(default_factory=lambda: Path("models"))
    # The inference journal keeps acknowledged predictions until MLflow has them.
    journal_dir: Path = field(default_factory=lambda: Path("journal"))
    # fsync each journal line: survives power loss, not only a crash of the process.
    journal_fsync: bool = False
    # Above this many records waiting, the tracking worker writes one run per window of records.
    writer_window_threshold: int = 50
    # The most records one window run holds (and the worker holds in memory at once).
    writer_window_max: int = 20_000
    # A batch answer lists at most this many rows; the full predictions are a download.
    batch_inline_rows: int = 1000
    # When set, train, load_model, predict and predict_batch need `Authorization: Bearer <token>`.
    api_token: str | None = None
    # Request body limits: training uploads (and every other route), and batch files, which stream.
    max_upload_mb: float = 50
    max_batch_upload_mb: float = 1024
    # uvicorn's line per request costs about a fifth of /predict's throughput, and MLflow already
    # records every prediction; IRIS_ACCESS_LOG=1 turns it on.
    access_log: bool = False
    random_state: int = 42

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        values = {
            "host": os.environ.get("IRIS_HOST", cls.host),
            "port": int(os.environ.get("IRIS_PORT", cls.port)),
            "tracking_uri": os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI,
            "models_dir": Path(os.environ.get("IRIS_MODELS_DIR", "models")),
            "journal_dir": Path(os.environ.get("IRIS_JOURNAL_DIR", "journal")),
            "journal_fsync": _env_bool("IRIS_JOURNAL_FSYNC", False),
            "writer_window_threshold": int(os.environ.get("IRIS_WRITER_WINDOW_THRESHOLD", cls.writer_window_threshold)),
            "writer_window_max": int(os.environ.get("IRIS_WRITER_WINDOW_MAX", cls.writer_window_max)),
            "batch_inline_rows": int(os.environ.get("IRIS_BATCH_INLINE_ROWS", cls.batch_inline_rows)),
            "api_token": os.environ.get("IRIS_API_TOKEN") or None,
            "max_upload_mb": float(os.environ.get("IRIS_MAX_UPLOAD_MB", cls.max_upload_mb)),
            "max_batch_upload_mb": float(os.environ.get("IRIS_MAX_BATCH_UPLOAD_MB", cls.max_batch_upload_mb)),
            "access_log": _env_bool("IRIS_ACCESS_LOG", cls.access_log),
        }
        values.update(overrides)
        return cls(**values)


def megabytes(value: float) -> int:
    return int(value * 1024 * 1024)

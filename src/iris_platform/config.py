"""One settings object, read from the environment once at start-up.

Each setting names its environment variable once, in its field's metadata; `from_env` reads them all.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iris_platform.web_origins import AllowedHosts, AllowedOrigins, split_comma_list

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
_TRUE = {"1", "true", "yes", "on"}


def _env(name: str, default: Any = dataclasses.MISSING, **kwargs: Any) -> Any:
    if default is dataclasses.MISSING:
        return field(metadata={"env": name}, **kwargs)
    return field(default=default, metadata={"env": name}, **kwargs)


@dataclass(frozen=True)
class Settings:
    host: str = _env("IRIS_HOST", "127.0.0.1")
    port: int = _env("IRIS_PORT", 8000)
    # MLflow's own variable, so PostgreSQL or a remote `mlflow server` needs no code change.
    tracking_uri: str = _env("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)
    models_dir: Path = _env("IRIS_MODELS_DIR", default_factory=lambda: Path("models"))
    # The inference journal keeps acknowledged predictions until MLflow has them.
    journal_dir: Path = _env("IRIS_JOURNAL_DIR", default_factory=lambda: Path("journal"))
    # fsync each journal line: survives power loss, not only a crash of the process.
    journal_fsync: bool = _env("IRIS_JOURNAL_FSYNC", False)
    # Above this many records waiting, the tracking worker writes one run per window of records.
    writer_window_threshold: int = _env("IRIS_WRITER_WINDOW_THRESHOLD", 50)
    # The most records one window run holds (and the worker holds in memory at once).
    writer_window_max: int = _env("IRIS_WRITER_WINDOW_MAX", 20_000)
    # The registered model of the MLflow Model Registry every training adds a version to; its alias
    # `champion` is the model every replica serves.
    registered_model: str = _env("IRIS_REGISTERED_MODEL", "iris_classifier")
    # How often a replica asks the registry which version is champion (seconds).
    model_poll_s: float = _env("IRIS_MODEL_POLL_S", 2.0)
    # Serving processes behind the one port; each journals to its own journal folder.
    workers: int = _env("IRIS_WORKERS", 1)
    # Optional: the database behind a remote `mlflow server` (a read-only user suffices), which the
    # dashboard's run listings and counts query directly instead of paging through MLflow's search.
    query_database_uri: str | None = _env("IRIS_QUERY_DATABASE_URI", None)
    # A batch answer lists at most this many rows; the full predictions are a download.
    batch_inline_rows: int = _env("IRIS_BATCH_INLINE_ROWS", 1000)
    # When set, train, load_model, predict and predict_batch need `Authorization: Bearer <token>`.
    api_token: str | None = _env("IRIS_API_TOKEN", None)
    # Host names the server answers to (a DNS-rebinding page sends its own); none given: localhost
    # names, loopback and private addresses, the address it binds and this machine's host name.
    allowed_hosts: tuple[str, ...] = _env("IRIS_ALLOWED_HOSTS", ())
    # Other sites whose pages may call the API from a browser; a state-changing request from any
    # other page is refused.
    cors_allowed_origins: tuple[str, ...] = _env("IRIS_CORS_ALLOWED_ORIGINS", ())
    # Request body limits: training uploads (and every other route), and batch files, which stream.
    max_upload_mb: float = _env("IRIS_MAX_UPLOAD_MB", 50.0)
    max_batch_upload_mb: float = _env("IRIS_MAX_BATCH_UPLOAD_MB", 1024.0)
    # uvicorn's line per request costs about a fifth of /predict's throughput, and MLflow already
    # records every prediction; IRIS_ACCESS_LOG=1 turns it on.
    access_log: bool = _env("IRIS_ACCESS_LOG", False)
    # A connection whose request headers are not complete this many seconds after it opened (or after the first
    # byte of its next request) is answered 408 and closed: half-sent headers would hold it open for ever.
    header_timeout_s: float = _env("IRIS_HEADER_TIMEOUT_S", 10.0)
    # Monitoring. Drift of the inputs against the training data is measured on every batch, every
    # `single_window` run, and every this many single predictions of one model version.
    drift_window: int = _env("IRIS_DRIFT_WINDOW", 500)
    # PSI at or above `drift_psi_warn` is a warning; a feature drifts when its PSI reaches
    # `drift_psi_alert` and its Kolmogorov-Smirnov p-value is below `drift_p_value` (which also bounds
    # the chi-square test of the predicted classes against the training priors).
    drift_psi_warn: float = _env("IRIS_DRIFT_PSI_WARN", 0.1)
    drift_psi_alert: float = _env("IRIS_DRIFT_PSI_ALERT", 0.2)
    drift_p_value: float = _env("IRIS_DRIFT_P_VALUE", 0.05)
    # Feedback accuracy is measured over each version's last this many labels; an alert needs at least
    # `feedback_min_labels` of them and an accuracy `feedback_alert_drop` (a fraction) below the test accuracy.
    feedback_window: int = _env("IRIS_FEEDBACK_WINDOW", 100)
    feedback_min_labels: int = _env("IRIS_FEEDBACK_MIN_LABELS", 20)
    feedback_alert_drop: float = _env("IRIS_FEEDBACK_ALERT_DROP", 0.10)
    # Every alert (drift detected, accuracy drop) is also POSTed as JSON to this URL, with bounded retries.
    alert_webhook: str | None = _env("IRIS_ALERT_WEBHOOK", None)
    # GET /metrics in Prometheus's text format (IRIS_METRICS=0 turns the counting off).
    metrics: bool = _env("IRIS_METRICS", True)
    # Trainings run in a process of their own, spawned first and warmed while the server starts
    # (training_process.py); IRIS_TRAINING_PROCESS=0 trains in the serving process.
    training_process: bool = _env("IRIS_TRAINING_PROCESS", True)
    random_state: int = 42

    def __post_init__(self) -> None:
        # Malformed patterns stop the start with a message naming the variable, not the first request.
        AllowedHosts(self.allowed_hosts)
        AllowedOrigins(self.cors_allowed_origins)
        if not (math.isfinite(self.header_timeout_s) and self.header_timeout_s > 0):
            raise ValueError(
                f"IRIS_HEADER_TIMEOUT_S: {self.header_timeout_s!r} is no bound; write a number of seconds above 0,"
                " such as 10 (the default)"
            )
        if not 0 < self.drift_psi_warn <= self.drift_psi_alert:
            raise ValueError(
                f"IRIS_DRIFT_PSI_WARN ({self.drift_psi_warn}) must be above 0 and at most IRIS_DRIFT_PSI_ALERT "
                f"({self.drift_psi_alert}); the defaults are 0.1 and 0.2"
            )
        if not 0 < self.drift_p_value < 1:
            raise ValueError(f"IRIS_DRIFT_P_VALUE must be between 0 and 1, such as 0.05; got {self.drift_p_value}")
        for variable, value in (
            ("IRIS_DRIFT_WINDOW", self.drift_window),
            ("IRIS_FEEDBACK_WINDOW", self.feedback_window),
            ("IRIS_FEEDBACK_MIN_LABELS", self.feedback_min_labels),
        ):
            if value < 1:
                raise ValueError(f"{variable} must be a count of at least 1, got {value}")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from the environment (unset or blank variables keep their defaults), then `overrides`."""
        environ = dict(os.environ) if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = f.metadata.get("env")
            raw = environ.get(name, "") if name else ""
            if name and raw.strip():  # set and not blank; the value itself is taken as written
                values[f.name] = _parse(f.name, name, raw, f.type)
        values.update(overrides)
        return cls(**values)


def _parse(setting: str, variable: str, raw: str, kind: Any) -> Any:
    kind = str(kind)
    try:
        if kind == "bool":
            return raw.strip().lower() in _TRUE
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        raise ValueError(f"{variable}={raw!r} is not a valid {kind} for the setting {setting}") from None
    if kind == "tuple[str, ...]":
        return split_comma_list(raw)
    if kind == "Path":
        return Path(raw)
    return raw


def megabytes(value: float) -> int:
    return int(value * 1024 * 1024)

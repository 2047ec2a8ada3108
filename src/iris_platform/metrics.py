"""Prometheus metrics: what GET /metrics answers, and the small functions the platform records through.

Every recording function is safe anywhere: with metrics off (IRIS_METRICS=0, or `configure(False)`) it
returns at once, and a failure to record (say a full disk under the multiprocess folder) is logged once
and never reaches the caller, since a metric must not cost a prediction or a tracking write.

Processes. The serving processes (`--workers N`) and each one's tracking worker (a spawned process)
all record, and one scrape must answer for all of them: prometheus-client's multiprocess mode. Each
process writes its values to files in PROMETHEUS_MULTIPROC_DIR, which server.py sets before
prometheus_client is first imported (a private temporary folder unless the user set one) and the
child processes inherit; `exposition()` merges the files. Without that variable (an app built in
process, as the tests do) the values live in this process's default registry.

In multiprocess mode a gauge says how the processes' values combine (`multiprocess_mode`):
- the journal backlog is the total of the whole journal folder, counted by whichever process answered
  the last scrape: `mostrecent`;
- drift and feedback accuracy describe the last window the tracking workers measured, whichever worker
  measured it, and stay after it exits: `mostrecent`;
- the serving model is 1 for every model some live serving process serves: `livemax`, each process
  setting its previous model to 0 (labels cannot be removed in multiprocess mode), and the files of
  exited processes are dropped (`mark_process_dead`) at the next scrape.
"""

from __future__ import annotations

import glob
import logging
import os
import struct
import time
from collections.abc import Mapping

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

log = logging.getLogger(__name__)

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# The classic text format (version 0.0.4); prometheus-client 0.26's CONTENT_TYPE_LATEST names 1.0.0,
# whose only difference is UTF-8 metric names, which no name here needs.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# prometheus_client chose its value class when it was imported: files (multiprocess) or memory.
MULTIPROCESS = values.ValueClass is not values.MutexValue
SCRAPE_ATTEMPTS = 5  # reads of every process's values, 20 ms apart, while one is being created
SCRAPE_RETRY_S = 0.02
NO_VERSION = "none"  # the label of a model no registry version names (loaded from a file)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# /predict answers in about a millisecond, a training in seconds to minutes.
REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# One MLflow run: tens of milliseconds on sqlite, seconds on a remote server or a big window.
WRITE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

REQUESTS = Counter(
    "iris_http_requests",
    "HTTP requests answered, by method, route (the path template, or 'unmatched') and status code",
    ["method", "route", "status"],
)
REQUEST_SECONDS = Histogram(
    "iris_http_request_duration_seconds",
    "Seconds from a request's arrival to the end of its answer, by method, route and status code",
    ["method", "route", "status"],
    buckets=REQUEST_BUCKETS,
)
PREDICTIONS = Counter(
    "iris_predictions",
    "Predictions made (single and batch rows), by model version and predicted class",
    ["model_version", "class_name"],
)
TRACKING_WRITE_SECONDS = Histogram(
    "iris_tracking_write_seconds",
    "Seconds the tracking worker took to write one run to MLflow, by kind (single, window, batch, drift, feedback)",
    ["kind"],
    buckets=WRITE_BUCKETS,
)
JOURNAL_BACKLOG = Gauge(
    "iris_journal_backlog_records",
    "Records journaled but not yet written to MLflow, over every journal of the journal folder",
    multiprocess_mode="mostrecent",
)
DRIFT_PSI = Gauge(
    "iris_drift_psi",
    "Population stability index of a feature's last measured window against the training data",
    ["model_version", "feature"],
    multiprocess_mode="mostrecent",
)
DRIFT_DETECTED = Gauge(
    "iris_drift_detected",
    "1 when the last measured window of a model version drifted from its training data, else 0",
    ["model_version"],
    multiprocess_mode="mostrecent",
)
FEEDBACK_ACCURACY = Gauge(
    "iris_feedback_accuracy",
    "Accuracy of a model version's predictions over its last labelled ones (POST /feedback)",
    ["model_version"],
    multiprocess_mode="mostrecent",
)
FEEDBACK_LABELS = Gauge(
    "iris_feedback_labels",
    "How many labelled predictions iris_feedback_accuracy was measured over",
    ["model_version"],
    multiprocess_mode="mostrecent",
)
SERVING_MODEL = Gauge(
    "iris_serving_model_info",
    "1 for the model a serving process serves: its registry version, model file and runtime",
    ["version", "model_path", "runtime"],
    multiprocess_mode="livemax",
)
ALERTS = Counter("iris_alerts", "Alerts raised (drift detected, accuracy drop), by kind", ["kind"])


def _from_environment() -> bool:
    # A spawned tracking worker has no Settings: it reads IRIS_METRICS as config.py does (unset is on).
    raw = os.environ.get("IRIS_METRICS", "").strip().lower()
    return not raw or raw in {"1", "true", "yes", "on"}


_enabled = _from_environment()
_failed: set[str] = set()
# (method, route, status) -> the counter's and the histogram's children: one dict lookup a request
# instead of two `labels()` calls. Bounded: routes are templates, methods a known set, statuses numbers.
_request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
# (model version, class) -> its counter: a single prediction's count is on /predict's path too.
_prediction_children: dict[tuple[str | None, str], Counter] = {}
_serving: tuple[str, str, str] | None = None  # this process's labels on SERVING_MODEL
_collector_registry: CollectorRegistry | None = None


def enabled() -> bool:
    return _enabled


def configure(enabled: bool) -> None:
    """Turn the counting on or off in this process (the app does it from IRIS_METRICS)."""
    global _enabled
    _enabled = enabled


def _failure(what: str) -> None:
    if what not in _failed:  # once: a broken metrics folder would otherwise log on every request
        _failed.add(what)
        log.warning("recording the %s metric failed (logged once; nothing else depends on it)", what, exc_info=True)


def _version(version: str | None) -> str:
    return NO_VERSION if version is None else str(version)


def record_request(method: str, route: str, status: int, seconds: float) -> None:
    """One answered HTTP request (the request-metrics middleware calls it)."""
    if not _enabled:
        return
    try:
        key = (method, route, status)
        children = _request_children.get(key)
        if children is None:
            shown = method if method in KNOWN_METHODS else "other"  # a client chooses the method
            labels = (shown, route, str(status))
            children = _request_children.setdefault(key, (REQUESTS.labels(*labels), REQUEST_SECONDS.labels(*labels)))
        children[0].inc()
        children[1].observe(seconds)
    except Exception:
        _failure("request")


def count_predictions(version: str | None, counts: Mapping[str, int]) -> None:
    """Predictions a model version made: class name -> how many (one for a single prediction)."""
    if not _enabled:
        return
    try:
        for class_name, count in counts.items():
            if count:
                key = (version, class_name)
                child = _prediction_children.get(key)
                if child is None:
                    labels = (_version(version), str(class_name))
                    child = _prediction_children.setdefault(key, PREDICTIONS.labels(*labels))
                child.inc(count)
    except Exception:
        _failure("predictions")


def observe_tracking_write(kind: str, seconds: float) -> None:
    """How long writing one run to MLflow took; kind: single, window, batch, drift or feedback."""
    if not _enabled:
        return
    try:
        TRACKING_WRITE_SECONDS.labels(kind).observe(seconds)
    except Exception:
        _failure("tracking write")


def set_journal_backlog(records: int) -> None:
    """The records waiting for MLflow in every journal of the journal folder."""
    if not _enabled:
        return
    try:
        JOURNAL_BACKLOG.set(records)
    except Exception:
        _failure("journal backlog")


def set_drift(version: str | None, psi: Mapping[str, float], drift_detected: bool) -> None:
    """The last drift measure of a model version: the PSI of each feature, and whether it drifted."""
    if not _enabled:
        return
    try:
        label = _version(version)
        for feature, value in psi.items():
            DRIFT_PSI.labels(label, str(feature)).set(value)
        DRIFT_DETECTED.labels(label).set(1 if drift_detected else 0)
    except Exception:
        _failure("drift")


def set_feedback_accuracy(version: str | None, accuracy: float, count: int) -> None:
    """A model version's accuracy over its last `count` labelled predictions."""
    if not _enabled:
        return
    try:
        label = _version(version)
        FEEDBACK_ACCURACY.labels(label).set(accuracy)
        FEEDBACK_LABELS.labels(label).set(count)
    except Exception:
        _failure("feedback accuracy")


def set_serving_model(version: str | None, model_path: str | None, runtime: str | None) -> None:
    """The model this process serves (all None: none); the one it served before drops to 0."""
    global _serving
    if not _enabled:
        return
    try:
        labels = None if model_path is None else (_version(version), str(model_path), str(runtime or "unknown"))
        previous, _serving = _serving, labels
        if previous is not None and previous != labels:
            if MULTIPROCESS:
                SERVING_MODEL.labels(*previous).set(0)  # remove() is not supported across processes
            else:
                SERVING_MODEL.remove(*previous)
        if labels is not None:
            SERVING_MODEL.labels(*labels).set(1)
    except Exception:
        _failure("serving model")


def count_alert(kind: str) -> None:
    """One alert raised (drift, accuracy_drop, ...)."""
    if not _enabled:
        return
    try:
        ALERTS.labels(kind).inc()
    except Exception:
        _failure("alert")


# -- the scrape ----------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process holds the number
        return True
    return True


def forget_dead_processes(directory: str) -> None:
    """mark_process_dead for every process with live-gauge files that has exited (a uvicorn worker killed
    and replaced, whose supervisor has no hook to tell us), so its serving model no longer shows."""
    for path in glob.glob(os.path.join(directory, "gauge_live*_*.db")):
        pid = os.path.basename(path)[: -len(".db")].rpartition("_")[2]
        if pid.isdigit() and not _pid_alive(int(pid)):
            multiprocess.mark_process_dead(int(pid), directory)


def forget_this_process() -> None:
    """At a serving process's shutdown: its live gauges (the serving model) leave the answer."""
    directory = os.environ.get(MULTIPROC_DIR_VARIABLE)
    if MULTIPROCESS and directory:
        try:
            multiprocess.mark_process_dead(os.getpid(), directory)
        except OSError:
            log.warning("could not remove this process's metric files from %s", directory, exc_info=True)


def exposition() -> bytes:
    """Every metric in Prometheus's text format: of every process in multiprocess mode, else of this one."""
    global _collector_registry
    if not MULTIPROCESS:
        return generate_latest(REGISTRY)
    directory = os.environ[MULTIPROC_DIR_VARIABLE]
    forget_dead_processes(directory)
    if _collector_registry is None:
        # A registry of its own: the metrics above are in the default one, and registering them to the
        # collector's registry too would export them twice (prometheus-client's multiprocess docs).
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        _collector_registry = registry
    for _ in range(SCRAPE_ATTEMPTS - 1):
        try:
            return generate_latest(_collector_registry)
        except struct.error:
            # A process was creating its file of values: prometheus-client creates it empty, then sizes
            # it (client_python issue 1199), and a read in between fails. A moment later it reads whole.
            time.sleep(SCRAPE_RETRY_S)
    return generate_latest(_collector_registry)

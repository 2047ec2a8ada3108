"""The tracking worker's job: journaled prediction records written as runs, each exactly once.

One `single_prediction_<timestamp>` run per record while the worker keeps up; one `single_window`
run for many records of one model when it falls behind, with the window's statistics and every
record in a CSV artifact.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import numpy as np
from mlflow.entities import ViewType

from iris_platform import metrics
from iris_platform.alerts import AlertSender
from iris_platform.batch_statistics import BatchResult, StatisticsAccumulator
from iris_platform.drift import DriftAccumulator, DriftReport
from iris_platform.tracking import names
from iris_platform.tracking.monitoring import (
    MonitorConfig,
    VersionCatalog,
    alert_payload,
    alert_tags,
    drift_alert,
    drift_metrics,
    drift_tags,
)
from iris_platform.tracking.records import FeedbackRecord, InferenceRecord, JournalRecord, is_feedback
from iris_platform.tracking.run_writer import RunWriter, run_name, statistics_metrics
from iris_platform.tracking.store import TrackingStore

log = logging.getLogger(__name__)


def _name(prefix: str, record: JournalRecord) -> str:
    return run_name(prefix, datetime.fromisoformat(record["timestamp"]))


def _version_param(record: JournalRecord) -> dict[str, str]:
    version = record.get("model_version")
    return {names.P_MODEL_VERSION: version} if version else {}


def _result(records: list[InferenceRecord], classes: list[str]) -> BatchResult:
    return BatchResult(
        indexes=np.array([r["class_index"] for r in records]),
        confidences=np.array([r["confidence"] for r in records]),
        probabilities=np.array([[r["probabilities"].get(c, 0.0) for c in classes] for r in records]),
    )


def _window_figures(records: list[InferenceRecord], prediction_type: str) -> tuple[dict[str, Any], dict[str, float]]:
    """A window's params (its model and first and last times) and its span in ms, as metrics."""
    first, last = records[0], records[-1]
    params = {
        names.P_PREDICTION_TYPE: prediction_type,
        names.P_MODEL_PATH: first["model_path"],
        **_version_param(first),
        names.P_TIMESTAMP: first["timestamp"],
        names.P_WINDOW_END: last["timestamp"],
    }
    return params, {names.M_WINDOW_START_MS: first["time_ms"], names.M_WINDOW_END_MS: last["time_ms"]}


@dataclass
class _FeedbackState:
    """A version's last labels (True: predicted right), and whether its accuracy drop is alerted."""

    window: deque[bool]
    alerting: bool = False


@dataclass
class _DriftWindow:
    records: list[InferenceRecord] = field(default_factory=list)


class PredictionRunWriter:
    def __init__(self, store: TrackingStore, monitor: MonitorConfig | None = None):
        self.store = store
        self.runs = RunWriter(store)
        self.monitor = monitor or MonitorConfig()
        self.catalog = VersionCatalog(store, self.monitor.registered_model)
        self.alerts = AlertSender(self.monitor.alert_webhook)
        # Single predictions written one run each, per version, until a drift window is full.
        self._drift_windows: dict[str | None, _DriftWindow] = {}
        self._feedback: dict[str | None, _FeedbackState] = {}

    def write_single(self, record: InferenceRecord) -> str:
        """One `single_prediction_<timestamp>` run for one prediction record."""
        params = {
            names.P_PREDICTION_TYPE: names.PREDICTION_TYPE_SINGLE,
            names.P_MODEL_PATH: record["model_path"],
            **_version_param(record),
            names.P_TIMESTAMP: record["timestamp"],
            **record["features"],
            names.P_PREDICTED_CLASS: record["class_name"],
        }
        metrics = {
            names.M_PREDICTED_CLASS_INDEX: record["class_index"],
            names.M_PREDICTION_CONFIDENCE: record["confidence"],
            **{names.probability_metric(c): p for c, p in record["probabilities"].items()},
        }
        tags = {names.T_PREDICTION_ID: record["prediction_id"]}
        name = _name(names.SINGLE_RUN_PREFIX, record)
        with self.runs.run(names.INFERENCE_EXPERIMENT, name, tags, start_ms=record["time_ms"]) as run_id:
            self.runs.log(run_id, params, metrics, timestamp_ms=record["time_ms"])
        self._drift_windows.setdefault(record.get("model_version"), _DriftWindow()).records.append(record)
        return run_id

    def _drift_report(self, records: list[InferenceRecord]) -> DriftReport | None:
        """The records (of one version) against their version's training profile; None without one."""
        profile = self.catalog.facts(records[0].get("model_version")).profile
        if profile is None:
            return None
        features = list(records[0]["features"])
        drift = DriftAccumulator(profile, features)
        index = {c: i for i, c in enumerate(profile["class_priors"])}
        drift.add(
            drift.matrix([r["features"] for r in records]),
            np.array([index.get(r["class_name"], 0) for r in records]),
            np.array([r["confidence"] for r in records]),
        )
        return drift.report(self.monitor.thresholds)

    def flush_drift_windows(self) -> int:
        """Write a drift window run for every version with IRIS_DRIFT_WINDOW single predictions written.

        Derived figures: a window is kept until its run is written, but a worker restart starts it afresh.
        """
        written = 0
        for version, window in list(self._drift_windows.items()):
            while len(window.records) >= self.monitor.drift_window:
                records = window.records[: self.monitor.drift_window]
                report = self._drift_report(records)
                if report is not None:
                    self._write_drift_window(records, report)
                    written += 1
                del window.records[: len(records)]
            if not window.records:
                del self._drift_windows[version]
        return written

    def _write_drift_window(self, records: list[InferenceRecord], report: DriftReport) -> str:
        first, last = records[0], records[-1]
        classes = list(first["probabilities"])
        totals = StatisticsAccumulator(classes)
        totals.add(_result(records, classes))
        params, span = _window_figures(records, names.PREDICTION_TYPE_DRIFT)
        metrics = {
            **statistics_metrics(totals.result()),
            **drift_metrics(report),
            names.M_DRIFT_WINDOW_RECORDS: len(records),
            **span,
        }
        name = _name(names.DRIFT_RUN_PREFIX, last)
        tags = drift_tags(report, self.monitor.thresholds)
        with self.runs.run(names.INFERENCE_EXPERIMENT, name, tags, start_ms=last["time_ms"]) as run_id:
            self.runs.log(run_id, params, metrics, timestamp_ms=last["time_ms"])
        self._alert_drift(report, run_id, name, first.get("model_version"))
        return run_id

    def _alert_drift(self, report: DriftReport, run_id: str, name: str, version: str | None) -> None:
        metrics.set_drift(version, report.psi, report.drift_detected)
        if report.drift_detected:
            self.alerts.send(drift_alert(report, run_id=run_id, run_name=name, model_version=version))
            metrics.count_alert(names.ALERT_DRIFT)

    def write_window(self, records: list[InferenceRecord]) -> str:
        """One `single_window` run for many prediction records of one model, with all of them as a CSV."""
        import pandas as pd

        first, last = records[0], records[-1]
        classes = list(first["probabilities"])
        result = _result(records, classes)
        probabilities = result.probabilities
        report = self._drift_report(records)
        totals = StatisticsAccumulator(classes)
        totals.add(result)
        table = pd.DataFrame(
            {
                names.T_PREDICTION_ID: [r["prediction_id"] for r in records],
                names.P_TIMESTAMP: [r["timestamp"] for r in records],
                **{f: [r["features"].get(f) for r in records] for f in first["features"]},
                names.COL_PREDICTED_CLASS: [r["class_name"] for r in records],
                names.COL_CONFIDENCE: result.confidences,
                **{names.probability_column(c): probabilities[:, i] for i, c in enumerate(classes)},
            }
        )
        params, span = _window_figures(records, names.PREDICTION_TYPE_WINDOW)
        metrics = {
            **statistics_metrics(totals.result()),
            **(drift_metrics(report) if report else {}),
            **span,
        }
        tags = {
            names.T_WINDOW_FIRST_ID: first["prediction_id"],
            names.T_WINDOW_RECORDS: str(len(records)),
            **(drift_tags(report, self.monitor.thresholds) if report else {}),
        }
        name = _name(names.WINDOW_RUN_PREFIX, first)
        with self.runs.run(names.INFERENCE_EXPERIMENT, name, tags, start_ms=first["time_ms"]) as run_id:
            self.runs.log(run_id, params, metrics, timestamp_ms=last["time_ms"])
            self.runs.log_files(run_id, {names.WINDOW_ARTIFACT: table.to_csv(index=False).encode()})
        if report is not None:
            self._alert_drift(report, run_id, name, first.get("model_version"))
        return run_id

    def _feedback_state(self, version: str | None) -> _FeedbackState:
        """The version's window of labels: held here, else continued from its newest feedback run."""
        state = self._feedback.get(version)
        if state is not None:
            return state
        state = _FeedbackState(deque(maxlen=self.monitor.feedback_window))
        version_filter = f" and params.{names.P_MODEL_VERSION} = '{version}'" if version else ""
        latest = self.store.client.search_runs(
            [self.store.experiment_id(names.INFERENCE_EXPERIMENT)],
            filter_string=f"params.{names.P_PREDICTION_TYPE} = '{names.PREDICTION_TYPE_FEEDBACK}'{version_filter}"
            " and attributes.status = 'FINISHED'",
            run_view_type=ViewType.ACTIVE_ONLY,
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if latest:
            tags = latest[0].data.tags
            state.window.extend(bit == "1" for bit in tags.get(names.T_FEEDBACK_WINDOW, ""))
            state.alerting = (
                tags.get(names.T_ALERT) == names.ALERT_ACCURACY_DROP or tags.get(names.T_FEEDBACK_ALERTING) == "1"
            )
        self._feedback[version] = state
        return state

    def write_feedback(self, records: list[FeedbackRecord]) -> str:
        """One `feedback_<timestamp>` run for labels of one version: the labels, and the accuracy over the
        version's last IRIS_FEEDBACK_WINDOW labels, with an alert when it falls far below the test accuracy."""
        import pandas as pd

        first, last = records[0], records[-1]
        version = first.get("model_version")
        state = self._feedback_state(version)
        correct = [r["true_label"] == r["predicted_class"] for r in records]
        window = deque(state.window, maxlen=self.monitor.feedback_window)
        window.extend(correct)
        accuracy = sum(window) / len(window)
        test_accuracy = self.catalog.facts(version).test_accuracy
        below = (
            test_accuracy is not None
            and len(window) >= self.monitor.feedback_min_labels
            and accuracy <= test_accuracy - self.monitor.feedback_alert_drop + 1e-12
        )
        params: dict[str, Any] = {
            names.P_PREDICTION_TYPE: names.PREDICTION_TYPE_FEEDBACK,
            **_version_param(first),
            names.P_TIMESTAMP: first["timestamp"],
        }
        if len(records) == 1:  # one label: its facts as params; many: a CSV
            params.update(
                {
                    names.P_LABELLED_PREDICTION_ID: first["labelled_prediction_id"] or "",
                    names.P_BATCH_RUN_ID: first["batch_run_id"] or "",
                    names.P_ROW: "" if first["row"] is None else first["row"],
                    names.P_TRUE_LABEL: first["true_label"],
                    names.P_PREDICTED_CLASS: first["predicted_class"],
                }
            )
        figures = {
            names.M_FEEDBACK_ACCURACY: accuracy,
            names.M_FEEDBACK_COUNT: len(window),
            names.M_FEEDBACK_LABELS: len(records),
            names.M_FEEDBACK_CORRECT: sum(correct),
            **({names.M_TEST_ACCURACY: test_accuracy} if test_accuracy is not None else {}),
        }
        tags = {
            names.T_FEEDBACK_FIRST_ID: first["feedback_id"],
            names.T_FEEDBACK_RECORDS: str(len(records)),
            names.T_FEEDBACK_WINDOW: "".join("1" if bit else "0" for bit in window),
            names.T_FEEDBACK_ALERTING: "1" if below else "0",
        }
        alert = None
        if below and not state.alerting and test_accuracy is not None:  # once per fall below the bound
            message = (
                f"Feedback accuracy of model version {version} is {accuracy:.1%} over its last {len(window)} labels, "
                f"{test_accuracy - accuracy:.1%} below its test accuracy of {test_accuracy:.1%}."
            )
            tags.update(alert_tags(names.ALERT_ACCURACY_DROP, message))
            alert = message
        name = _name(names.FEEDBACK_RUN_PREFIX, first)
        with self.runs.run(names.INFERENCE_EXPERIMENT, name, tags, start_ms=first["time_ms"]) as run_id:
            self.runs.log(run_id, params, figures, timestamp_ms=last["time_ms"])
            if len(records) > 1:
                table = pd.DataFrame(records).drop(columns=["kind"])
                self.runs.log_files(run_id, {names.FEEDBACK_ARTIFACT: table.to_csv(index=False).encode()})
        state.window, state.alerting = window, below
        metrics.set_feedback_accuracy(version, accuracy, len(window))
        if alert is not None:
            details = {"feedback_accuracy": accuracy, "feedback_count": len(window), "test_accuracy": test_accuracy}
            payload = alert_payload(
                names.ALERT_ACCURACY_DROP, alert, run_id=run_id, run_name=name, model_version=version, details=details
            )
            self.alerts.send(payload)
            metrics.count_alert(names.ALERT_ACCURACY_DROP)
        return run_id

    def written_unit_size(self, record: JournalRecord) -> int:
        """How many records starting at `record` MLflow already holds as one finished run (0 if none).

        Only the first unit after a restart or a failure can be in doubt; a run left unfinished by
        the interruption is removed so the unit is written again whole.
        """
        client = self.store.client
        experiment = [self.store.experiment_id(names.INFERENCE_EXPERIMENT)]
        if is_feedback(record):
            prediction_id = record["feedback_id"]
            units: tuple[tuple[str, str | None], ...] = ((names.T_FEEDBACK_FIRST_ID, names.T_FEEDBACK_RECORDS),)
        else:
            prediction_id = cast(InferenceRecord, record)["prediction_id"]
            units = ((names.T_PREDICTION_ID, None), (names.T_WINDOW_FIRST_ID, names.T_WINDOW_RECORDS))
        for tag, size in units:
            for run in client.search_runs(
                experiment, filter_string=f"tags.{tag} = '{prediction_id}'", run_view_type=ViewType.ACTIVE_ONLY
            ):
                if run.info.status == "FINISHED":
                    return int(run.data.tags[size]) if size else 1
                client.delete_run(run.info.run_id)
        return 0

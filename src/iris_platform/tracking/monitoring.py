"""Monitoring as MLflow records: drift reports as metrics and tags, alerts as tags and webhook payloads."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iris_platform.drift import DriftReport, DriftThresholds
from iris_platform.timestamps import utc_now
from iris_platform.tracking import names
from iris_platform.tracking.store import TrackingStore, is_not_found


def drift_metrics(report: DriftReport) -> dict[str, float]:
    metrics: dict[str, float] = {names.M_DRIFT_DETECTED: 1.0 if report.drift_detected else 0.0}
    metrics.update({names.psi_metric(f): v for f, v in report.psi.items()})
    metrics.update({names.ks_pvalue_metric(f): v for f, v in report.ks_pvalue.items()})
    metrics.update({names.chi2_pvalue_metric(f): v for f, v in report.chi2_pvalue.items()})
    if report.class_drift_pvalue is not None:
        metrics[names.M_CLASS_DRIFT_PVALUE] = report.class_drift_pvalue
    return metrics


def drift_tags(report: DriftReport, thresholds: DriftThresholds) -> dict[str, str]:
    tags = {
        names.T_DRIFTED_FEATURES: ",".join(report.drifted_features),
        names.T_DRIFT_WARNED_FEATURES: ",".join(report.warned_features),
        names.T_DRIFT_THRESHOLDS: json.dumps(dataclasses.asdict(thresholds)),
    }
    if report.drift_detected:
        tags.update(alert_tags(names.ALERT_DRIFT, drift_message(report)))
    return tags


def drift_message(report: DriftReport) -> str:
    parts = []
    if report.drifted_features:
        shown = ", ".join(f"{f} (PSI {report.psi[f]:.2f})" for f in report.drifted_features)
        parts.append(f"inputs drifted from the training data: {shown}")
    if report.class_drift:
        p_value = report.class_drift_pvalue
        parts.append(f"predicted classes differ from the training priors (chi-square p={p_value:.2g})")
    return f"Drift over {report.n} predictions: " + "; ".join(parts) + "."


def alert_tags(kind: str, message: str) -> dict[str, str]:
    return {names.T_ALERT: kind, names.T_ALERT_MESSAGE: message[:5000]}


def alert_payload(
    kind: str,
    message: str,
    *,
    run_id: str,
    run_name: str,
    model_version: str | None,
    details: dict[str, Any],
) -> dict[str, Any]:
    """The JSON a webhook receives: what happened, where MLflow records it, and the figures."""
    return {
        "kind": kind,
        "message": message,
        "time": utc_now().isoformat(),
        "experiment": names.INFERENCE_EXPERIMENT,
        "run_id": run_id,
        "run_name": run_name,
        "model_version": model_version,
        "details": details,
    }


def drift_alert(report: DriftReport, *, run_id: str, run_name: str, model_version: str | None) -> dict[str, Any]:
    return alert_payload(
        names.ALERT_DRIFT,
        drift_message(report),
        run_id=run_id,
        run_name=run_name,
        model_version=model_version,
        details=report.as_dict(),
    )


@dataclass(frozen=True)
class MonitorConfig:
    """What the tracking worker needs to monitor: the settings of the same names (config.py)."""

    registered_model: str = "iris_classifier"
    drift_window: int = 500
    thresholds: DriftThresholds = DriftThresholds()
    feedback_window: int = 100
    feedback_min_labels: int = 20
    feedback_alert_drop: float = 0.10
    alert_webhook: str | None = None


@dataclass(frozen=True)
class VersionFacts:
    """What monitoring compares a version's predictions with: its training profile and test accuracy."""

    profile: dict[str, Any] | None
    test_accuracy: float | None


class VersionCatalog:
    """Each registered version's facts, read from MLflow once (the profile is its training run's artifact)."""

    def __init__(self, store: TrackingStore, registered_model: str):
        self.store = store
        self.registered_model = registered_model
        self._facts: dict[str, VersionFacts] = {}

    def facts(self, version: str | None) -> VersionFacts:
        if not version:
            return VersionFacts(None, None)
        if version not in self._facts:
            self._facts[version] = self._read(version)
        return self._facts[version]

    def _read(self, version: str) -> VersionFacts:
        from mlflow.exceptions import MlflowException

        client = self.store.client
        try:
            found = client.get_model_version(self.registered_model, version)
        except MlflowException as exc:
            if is_not_found(exc):
                return VersionFacts(None, None)  # another registered model's, or deleted
            raise
        try:
            accuracy = float(json.loads(found.tags.get(names.T_VERSION_METRICS) or "{}")[names.M_ACCURACY])
        except (ValueError, TypeError, KeyError, AttributeError):
            accuracy = None
        profile = None
        # Listed first: a version trained before profiles existed has none (no drift for it), while an
        # error reading one that exists propagates and is retried, not remembered as "no profile".
        if found.run_id and any(
            a.path == names.REFERENCE_PROFILE_ARTIFACT for a in client.list_artifacts(found.run_id)
        ):
            with tempfile.TemporaryDirectory() as tmp:
                local = client.download_artifacts(found.run_id, names.REFERENCE_PROFILE_ARTIFACT, tmp)
                try:
                    profile = json.loads(Path(local).read_text())
                except ValueError:
                    profile = None
        return VersionFacts(profile if isinstance(profile, dict) else None, accuracy)

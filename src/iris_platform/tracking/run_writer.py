"""Writing runs: the run life cycle, params and metrics, artifacts, the MLflow model, and batch runs.

Every run ends FINISHED, or FAILED with the reason as a tag; none is left RUNNING.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param

from iris_platform.batch_statistics import BatchStatistics
from iris_platform.timestamps import run_stamp
from iris_platform.tracking import names
from iris_platform.tracking.store import TrackingStore

# mlflow.sklearn.log_model reads the process-global tracking URI; this lock keeps two stores in one
# process (two apps, as in the tests) from pointing it elsewhere between setting it and logging.
_FLUENT_LOCK = threading.Lock()
MAX_PARAM_LENGTH = 6000


def run_name(prefix: str, moment: datetime) -> str:
    return f"{prefix}_{run_stamp(moment)}"


def statistics_metrics(stats: BatchStatistics) -> dict[str, float]:
    """The metrics of a batch or window run."""
    return {
        names.M_TOTAL_SAMPLES: stats.total_samples,
        names.M_AVG_CONFIDENCE: stats.avg_confidence,
        names.M_MIN_CONFIDENCE: stats.min_confidence,
        names.M_MAX_CONFIDENCE: stats.max_confidence,
        names.M_UNIQUE_CLASSES: stats.unique_classes_predicted,
        **{names.count_metric(c): n for c, n in stats.prediction_distribution.items()},
        **{names.percentage_metric(c): p for c, p in stats.prediction_percentages.items()},
    }


def skops_trusted_types(estimator: Any) -> list[str]:
    """The types skops must be told to trust to reload this model: scikit-learn's and numpy's only."""
    import skops.io

    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(estimator))
    foreign = [t for t in untrusted if not t.startswith(("sklearn.", "numpy."))]
    if foreign:
        raise RuntimeError(f"refusing to trust non-scikit-learn types in the MLflow model: {foreign}")
    return untrusted


class RunWriter:
    def __init__(self, store: TrackingStore):
        self.store = store
        # mlflow.sklearn.log_model only speaks through the fluent API, which reads this global.
        mlflow.set_tracking_uri(store.tracking_uri)

    @contextmanager
    def run(
        self, experiment: str, name: str, tags: dict[str, str] | None = None, start_ms: int | None = None
    ) -> Iterator[str]:
        """A run that ends FINISHED, or FAILED with the reason as a tag; never left RUNNING."""
        client = self.store.client
        run = client.create_run(
            self.store.experiment_id(experiment), start_time=start_ms, tags=tags or {}, run_name=name
        )
        run_id = run.info.run_id
        try:
            yield run_id
        except BaseException as exc:
            try:
                client.set_tag(run_id, names.T_FAILURE_REASON, f"{type(exc).__name__}: {exc}"[:5000])
                client.set_terminated(run_id, "FAILED")
            except Exception:
                pass  # the original error matters more than this one
            raise
        client.set_terminated(run_id, "FINISHED")

    def log(
        self,
        run_id: str,
        params: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        ts = timestamp_ms or int(time.time() * 1000)
        self.store.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), ts, 0) for k, v in (metrics or {}).items()],
            params=[Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in (params or {}).items()],
        )

    def log_files(self, run_id: str, files: dict[str, bytes], artifact_path: str | None = None) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            for filename, data in files.items():
                local = Path(tmp) / filename
                local.write_bytes(data)
                self.store.client.log_artifact(run_id, str(local), artifact_path)

    def log_model_files(self, model_uri: str, files: dict[str, bytes]) -> None:
        """Add the platform's files of a model to its logged MLflow model (so its registered version holds them)."""
        model_id = model_uri.removeprefix("models:/")
        with tempfile.TemporaryDirectory() as tmp:
            for filename, data in files.items():
                (Path(tmp) / filename).write_bytes(data)
            self.store.client.log_model_artifacts(model_id, tmp, names.MODEL_FILES_ARTIFACT_DIR)

    def log_sklearn_model(self, run_id: str, estimator: Any, example: Any) -> str:
        """Log the MLflow model so `mlflow models serve -m models:/<model_id>` serves it; returns its URI.

        The pip requirements are stated (inferring them runs a slow subprocess), and skops is told which
        types to trust, computed from the model itself.
        """
        import mlflow.sklearn
        from mlflow.models import infer_signature

        pip_requirements = mlflow.sklearn.get_default_pip_requirements(include_skops=True)
        trusted_types = skops_trusted_types(estimator)

        signature = infer_signature(example, estimator.predict(example))
        client = self.store.client
        # Create the logged model in the run's own experiment: left to itself, log_model files it
        # under the process's "current" experiment (Default), not the run's.
        run = client.get_run(run_id)
        logged = client.create_logged_model(
            experiment_id=run.info.experiment_id,
            name=names.MLFLOW_MODEL_NAME,
            source_run_id=run_id,
            params=dict(run.data.params),
        )
        with _FLUENT_LOCK:
            mlflow.set_tracking_uri(self.store.tracking_uri)
            info = mlflow.sklearn.log_model(
                estimator,
                name=names.MLFLOW_MODEL_NAME,
                run_id=run_id,
                model_id=logged.model_id,
                signature=signature,
                input_example=example.head(5),
                pip_requirements=pip_requirements,
                skops_trusted_types=trusted_types,
            )
        return info.model_uri

    def write_batch_run(
        self,
        *,
        moment: datetime,
        model_path: str,
        model_version: str | None,
        input_file: str,
        statistics: BatchStatistics,
        predictions_csv: Path,
    ) -> str:
        """One `batch_prediction_<timestamp>` run with its statistics and predictions CSV; returns its id."""
        params = {
            names.P_PREDICTION_TYPE: names.PREDICTION_TYPE_BATCH,
            names.P_MODEL_PATH: model_path,
            **({names.P_MODEL_VERSION: model_version} if model_version else {}),
            names.P_INPUT_FILE: input_file,
            names.P_TIMESTAMP: moment.isoformat(),
        }
        with self.run(names.INFERENCE_EXPERIMENT, run_name(names.BATCH_RUN_PREFIX, moment)) as run_id:
            self.log(run_id, params, statistics_metrics(statistics))
            self.store.client.log_artifact(run_id, str(predictions_csv))
        return run_id

"""Writing runs: the run life cycle, params and metrics, artifacts, the MLflow model, and batch runs.

Every run ends FINISHED, or FAILED with the reason as a tag; none is left RUNNING.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import DatasetInput, Metric, Param, RunTag

from iris_platform.batch_statistics import BatchStatistics
from iris_platform.timestamps import run_stamp
from iris_platform.tracking import names
from iris_platform.tracking.store import TrackingStore

# Logging a model reads the process-global tracking URI; this lock keeps two stores in one process
# (two apps, as in the tests) from pointing it elsewhere between setting it and logging. It also
# serialises loading models from code, which passes the model through a global of MLflow's.
_FLUENT_LOCK = threading.Lock()
# The logged MLflow model's code (models from code): read by MLflow as a file, never imported here.
PYFUNC_MODEL_CODE = Path(__file__).with_name("mlflow_pyfunc.py")
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


@contextmanager
def _forgetting_model_code() -> Iterator[None]:
    """Let go of what MLflow keeps after loading a model from code, once the block ends.

    Logging the model with an input example loads it once to check the example: MLflow imports the
    model's code as a new `code_model_<hex>` module, left in sys.modules, and keeps the loaded model (a
    full copy of the forest, read back from its skops file) in a global of its own until the next model
    from code is loaded. Neither is used again; held, they kept a second forest in memory after every
    training (hundreds of MB for 1,000 trees). Run under _FLUENT_LOCK: the global is shared.
    """
    import mlflow.models.model

    modules = set(sys.modules)
    try:
        yield
    finally:
        mlflow.models.model.__mlflow_model__ = None
        for name in [m for m in sys.modules if m.startswith("code_model_") and m not in modules]:
            sys.modules.pop(name, None)


def skops_trusted_types(estimator: Any) -> list[str]:
    """The types skops must be told to trust to reload this model: scikit-learn's and numpy's only."""
    import skops.io

    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(estimator))
    foreign = [t for t in untrusted if not t.startswith(("sklearn.", "numpy."))]
    if foreign:
        raise RuntimeError(f"refusing to trust non-scikit-learn types in the MLflow model: {foreign}")
    return untrusted


# The trusted types found per model structure (models_alike): computing them takes a skops dump of the
# whole model, as long as the one MLflow then writes, so it is done once per structure in a process.
_TRUSTED_TYPES: dict[tuple[str, ...], list[str]] = {}
_TRUSTED_TYPES_LOCK = threading.Lock()


def models_alike(estimator: Any) -> tuple[str, ...]:
    """The classes a model is made of (itself, its steps and their parts): such models hold alike types."""
    parts = [estimator, *(v for v in estimator.get_params(deep=True).values() if hasattr(v, "get_params"))]
    return tuple(sorted({f"{type(p).__module__}.{type(p).__qualname__}" for p in parts}))


def _save_sklearn_model(estimator: Any, folder: Path, pip_requirements: list[str]) -> None:
    """The estimator as a skops `mlflow.sklearn` model, trusting the types found for models alike; MLflow
    reloads what it wrote with them, so a type such a model did not hold before is found then and added."""
    import mlflow.sklearn
    from mlflow.exceptions import MlflowException

    def save(trusted: list[str]) -> None:
        mlflow.sklearn.save_model(
            estimator,
            str(folder),
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
            skops_trusted_types=trusted,
            pip_requirements=pip_requirements,
        )

    key = models_alike(estimator)
    with _TRUSTED_TYPES_LOCK:
        known = _TRUSTED_TYPES.get(key)
    if known is not None:
        try:
            return save(known)
        except MlflowException:  # untrusted types: computed below, as for a model of a new structure
            shutil.rmtree(folder, ignore_errors=True)
    trusted = sorted({*(known or []), *skops_trusted_types(estimator)})
    save(trusted)
    with _TRUSTED_TYPES_LOCK:
        _TRUSTED_TYPES[key] = trusted


def mlflow_signature(feature_names: list[str], class_names: list[str], text_features: Collection[str] = ()) -> Any:
    """The MLflow model's signature: the features in (numbers, text for text features), the class name,
    confidence and probabilities out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("string" if f in text_features else "double", str(f)) for f in feature_names]),
        outputs=Schema(
            [
                ColSpec("string", names.COL_PREDICTED_CLASS),
                ColSpec("double", names.COL_CONFIDENCE),
                *[ColSpec("double", names.probability_column(c)) for c in class_names],
            ]
        ),
    )


def _model_artifacts(
    folder: Path, estimator: Any, columns: dict[str, Any], pip_requirements: list[str]
) -> tuple[Path, Path]:
    """The pyfunc's two artifacts in `folder`: the forest as a skops `mlflow.sklearn` model (trusting only
    the types computed from models alike) and the columns JSON."""
    estimator_dir = folder / names.MLFLOW_ESTIMATOR_ARTIFACT
    _save_sklearn_model(estimator, estimator_dir, pip_requirements)
    columns_file = folder / f"{names.MLFLOW_COLUMNS_ARTIFACT}.json"
    columns_file.write_text(json.dumps(columns, indent=1), encoding="utf-8")
    return estimator_dir, columns_file


class RunWriter:
    def __init__(self, store: TrackingStore):
        self.store = store
        # Logging a model only speaks through the fluent API, which reads this global.
        mlflow.set_tracking_uri(store.tracking_uri)

    @contextmanager
    def run(
        self, experiment: str, name: str, tags: dict[str, str] | None = None, start_ms: int | None = None
    ) -> Iterator[str]:
        """A run that ends FINISHED, or FAILED with the reason as a tag; never left RUNNING."""
        run_id = self.start(experiment, name, tags, start_ms)
        try:
            yield run_id
        except BaseException as exc:
            with contextlib.suppress(Exception):  # the original error matters more than this one
                self.end(run_id, "FAILED", f"{type(exc).__name__}: {exc}")
            raise
        self.end(run_id, "FINISHED")

    def start(self, experiment: str, name: str, tags: dict[str, str] | None = None, start_ms: int | None = None) -> str:
        """A RUNNING run, for work that outlives one call (a tuning); `end` must follow."""
        run = self.store.client.create_run(
            self.store.experiment_id(experiment), start_time=start_ms, tags=tags or {}, run_name=name
        )
        return str(run.info.run_id)

    def end(self, run_id: str, status: str, failure: str | None = None) -> None:
        if failure is not None:
            self.store.client.set_tag(run_id, names.T_FAILURE_REASON, failure[:5000])
        self.store.client.set_terminated(run_id, status)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self.store.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log(
        self,
        run_id: str,
        params: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        timestamp_ms: int | None = None,
        step: int = 0,
    ) -> None:
        ts = timestamp_ms or int(time.time() * 1000)
        self.store.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), ts, step) for k, v in (metrics or {}).items()],
            params=[Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in (params or {}).items()],
        )

    def log_inputs(self, run_id: str, inputs: Sequence[DatasetInput]) -> None:
        """The data the run used, shown in MLflow's Dataset column (see datasets.py)."""
        if inputs:
            self.store.client.log_inputs(run_id, datasets=list(inputs))

    def log_files(self, run_id: str, files: dict[str, bytes], artifact_path: str | None = None) -> None:
        with tempfile.TemporaryDirectory() as tmp:  # one upload for all of them
            for filename, data in files.items():
                (Path(tmp) / filename).write_bytes(data)
            self.store.client.log_artifacts(run_id, tmp, artifact_path)

    def log_model_files(
        self, model_uri: str, files: dict[str, bytes], artifact_path: str | None = names.MODEL_FILES_ARTIFACT_DIR
    ) -> None:
        """Add files to a logged MLflow model (so its registered version holds them): by default the platform's
        files of the model, under `model_files/`."""
        model_id = model_uri.removeprefix("models:/")
        with tempfile.TemporaryDirectory() as tmp:
            for filename, data in files.items():
                (Path(tmp) / filename).write_bytes(data)
            self.store.client.log_model_artifacts(model_id, tmp, artifact_path)

    @staticmethod
    def warm_up(estimator: Any, example: Any, class_names: list[str]) -> None:
        """Save a model as log_mlflow_model logs one, into a temporary folder, off the request path: the
        skops dump and MLflow's model-from-code machinery load much code the first time they run."""
        import mlflow.pyfunc
        import mlflow.sklearn

        with tempfile.TemporaryDirectory() as tmp:
            estimator_dir, columns_file = _model_artifacts(Path(tmp), estimator, {"class_names": class_names}, [])
            mlflow.pyfunc.save_model(
                str(Path(tmp) / names.MLFLOW_MODEL_NAME),
                python_model=str(PYFUNC_MODEL_CODE),
                artifacts={
                    names.MLFLOW_ESTIMATOR_ARTIFACT: str(estimator_dir),
                    names.MLFLOW_COLUMNS_ARTIFACT: str(columns_file),
                },
                signature=mlflow_signature(list(example.columns), class_names),
                input_example=example.head(5),  # as a training logs it (without one MLflow warns)
                pip_requirements=[],
            )

    def log_mlflow_model(
        self,
        run_id: str,
        estimator: Any,
        example: Any,
        class_names: list[str],
        *,
        imputes_blanks: bool = False,
        text_features: Sequence[str] = (),
    ) -> str:
        """Log the MLflow model so `mlflow models serve -m models:/<model_id>` serves it; returns its URI.

        The model is a pyfunc from code (`mlflow_pyfunc.py`, standalone) answering, for each row of
        `example`'s feature columns, the class name, its confidence and every class's probability. The
        forest is saved beside it as an `mlflow.sklearn` model in the skops format, with the types skops
        must trust computed from the forest itself; the pip requirements are stated (inferring them runs
        a slow subprocess).
        """
        import mlflow.pyfunc
        import mlflow.sklearn
        from mlflow.models import Model

        feature_names = [str(c) for c in example.columns]
        probability_columns = [names.probability_column(c) for c in class_names]
        pip_requirements = [
            *mlflow.sklearn.get_default_pip_requirements(include_skops=True),
            f"numpy=={importlib.metadata.version('numpy')}",
            f"pandas=={importlib.metadata.version('pandas')}",
        ]
        signature = mlflow_signature(feature_names, class_names, text_features)
        columns = {
            "feature_names": feature_names,
            "class_names": [str(c) for c in class_names],
            "predicted_class": names.COL_PREDICTED_CLASS,
            "confidence": names.COL_CONFIDENCE,
            "probabilities": probability_columns,
            # A Pipeline whose first step fills blank cells: the pyfunc passes NaN (a text's "") on to it.
            "imputes_blanks": imputes_blanks,
            # Features the Pipeline one-hot encodes: passed as text.
            "text_features": list(text_features),
        }
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
        with tempfile.TemporaryDirectory() as tmp:
            estimator_dir, columns_file = _model_artifacts(Path(tmp), estimator, columns, pip_requirements)
            with _FLUENT_LOCK, _forgetting_model_code():
                mlflow.set_tracking_uri(self.store.tracking_uri)
                # mlflow.pyfunc.log_model with the run: Model.log is what it calls, given the run's id
                # (log_model itself only takes the fluent API's active run).
                info = Model.log(
                    artifact_path=None,
                    name=names.MLFLOW_MODEL_NAME,
                    flavor=mlflow.pyfunc,
                    run_id=run_id,
                    model_id=logged.model_id,
                    python_model=str(PYFUNC_MODEL_CODE),
                    artifacts={
                        names.MLFLOW_ESTIMATOR_ARTIFACT: str(estimator_dir),
                        names.MLFLOW_COLUMNS_ARTIFACT: str(columns_file),
                    },
                    signature=signature,
                    input_example=example.head(5),
                    pip_requirements=pip_requirements,
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
        inputs: Sequence[DatasetInput] = (),
        extra_metrics: dict[str, float] | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        """One `batch_prediction_<timestamp>` run with its statistics (and drift, as `extra_metrics` and
        `tags`) and predictions CSV; returns its id."""
        params = {
            names.P_PREDICTION_TYPE: names.PREDICTION_TYPE_BATCH,
            names.P_MODEL_PATH: model_path,
            **({names.P_MODEL_VERSION: model_version} if model_version else {}),
            names.P_INPUT_FILE: input_file,
            names.P_TIMESTAMP: moment.isoformat(),
        }
        with self.run(names.INFERENCE_EXPERIMENT, run_name(names.BATCH_RUN_PREFIX, moment), tags) as run_id:
            self.log(run_id, params, {**statistics_metrics(statistics), **(extra_metrics or {})})
            self.log_inputs(run_id, inputs)
            self.store.client.log_artifact(run_id, str(predictions_csv))
        return run_id

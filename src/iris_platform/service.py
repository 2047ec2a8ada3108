"""The platform's actions (train, predict, load a model) tying data, model, store and tracking together.

Routes stay thin: they parse HTTP and call one method here.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import mlflow.sklearn
import numpy as np

from iris_platform.api.middleware.security import redact_uri
from iris_platform.config import Settings
from iris_platform.errors import NoModelError
from iris_platform.ml.batch_stream import predict_csv
from iris_platform.ml.compiled_model import CompiledModel, check_parity, convert, parity_inputs
from iris_platform.ml.data import load_iris_training_data, parse_features, prepare_training_data, read_csv_upload
from iris_platform.ml.inference import Predictor, inference_record, prediction_time_ms, run_stamp, utc_now
from iris_platform.ml.model_store import ModelStore, StoredModel
from iris_platform.ml.training import MODEL_TYPE, check_parameters, train_model
from iris_platform.tracking import names
from iris_platform.tracking.tracker import Tracker, statistics_metrics
from iris_platform.tracking.worker import TrackingWriter, WorkerConfig

log = logging.getLogger(__name__)

MAX_NAME_LENGTH = 250


def skops_trusted_types(estimator: Any) -> list[str]:
    """The types skops must be told to trust to reload this model: scikit-learn's and numpy's only."""
    import skops.io

    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(estimator))
    foreign = [t for t in untrusted if not t.startswith(("sklearn.", "numpy."))]
    if foreign:
        raise RuntimeError(f"refusing to trust non-scikit-learn types in the MLflow model: {foreign}")
    return untrusted


def compiled_predictor(stored: StoredModel, X_check: np.ndarray) -> tuple[Predictor, dict[str, Any]]:
    """A predictor on the compiled path if its ONNX form matches scikit-learn on X_check and around it."""
    reference = Predictor(stored)
    if stored.onnx_bytes is None:
        return reference, {"runtime": "scikit-learn", "reason": "no ONNX form"}
    try:
        compiled = CompiledModel(stored.onnx_bytes)
        report = check_parity(compiled, reference.sklearn_proba, parity_inputs(X_check))
    except Exception as exc:
        log.warning("compiled model unusable, serving with scikit-learn: %s", exc)
        return reference, {"runtime": "scikit-learn", "reason": f"{type(exc).__name__}: {exc}"[:300]}
    if not report.ok:
        log.warning("compiled model differs from scikit-learn (%s), serving with scikit-learn", report)
        return reference, {**report.as_dict(), "runtime": "scikit-learn"}
    return Predictor(stored, compiled), report.as_dict()


def _upload_name(filename: str | None) -> str:
    return (filename or "upload.csv")[:MAX_NAME_LENGTH]


class IrisService:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.tracker = Tracker(settings.tracking_uri)
        self.store = ModelStore(settings.models_dir)
        self.writer = TrackingWriter(
            WorkerConfig(
                tracking_uri=settings.tracking_uri,
                journal_dir=Path(settings.journal_dir).resolve(),
                window_threshold=settings.writer_window_threshold,
                window_max=settings.writer_window_max,
            ),
            fsync=settings.journal_fsync,
        )
        self.predictor: Predictor | None = None
        self._train_lock = threading.Lock()

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        try:
            self.tracker.ensure_experiments()
        except Exception as exc:  # predictions are still served; their records wait in the journal
            log.warning("MLflow tracking store %s is unreachable: %s", self.settings.tracking_uri, exc)
        self.writer.start()
        current = self.store.current_filename()
        if current:
            try:
                self.predictor = self._predictor_for(self.store.load(current))
            except Exception as exc:
                log.warning("could not load the current model %s: %s", current, exc)

    def stop(self) -> None:
        self.writer.stop()

    def _predictor_for(self, stored: StoredModel) -> Predictor:
        """Check a saved model's compiled form again on this machine's onnxruntime before serving it."""
        ranges = stored.metadata.get("feature_ranges") or {}
        bounds = np.array([ranges.get(f, [0.0, 1.0]) for f in stored.metadata["feature_names"]], dtype=float).T
        predictor, _ = compiled_predictor(stored, bounds)
        return predictor

    def require_predictor(self) -> Predictor:
        predictor = self.predictor  # one read: a concurrent model swap cannot split a request
        if predictor is None:
            raise NoModelError()
        return predictor

    # -- training ----------------------------------------------------------------------------

    def train(
        self,
        content: bytes | None,
        filename: str | None,
        n_estimators: int,
        test_size: float,
        target_column: str | None,
    ) -> dict[str, Any]:
        check_parameters(n_estimators, test_size)
        if content is None:
            data, source = load_iris_training_data(), names.DATA_SOURCE_IRIS
        else:
            data = prepare_training_data(read_csv_upload(content, filename), target_column)
            source = names.DATA_SOURCE_CSV
        with self._train_lock:
            return self._train(data, source, filename, n_estimators, test_size)

    def _train(self, data, source, filename, n_estimators, test_size) -> dict[str, Any]:
        moment = utc_now()
        stamp = run_stamp(moment)
        params = {
            names.P_MODEL_TYPE: MODEL_TYPE,
            names.P_N_ESTIMATORS: n_estimators,
            names.P_TEST_SIZE: test_size,
            names.P_N_FEATURES: len(data.feature_names),
            names.P_N_SAMPLES: len(data.y),
            names.P_N_CLASSES: len(data.class_names),
            names.P_DATA_SOURCE: source,
        }
        if source == names.DATA_SOURCE_CSV:
            params[names.P_INPUT_FILE] = _upload_name(filename)

        with self.tracker.run(names.TRAINING_EXPERIMENT, f"{names.TRAINING_RUN_PREFIX}_{stamp}") as run_id:
            self.tracker.log(run_id, params)
            trained = train_model(data, n_estimators, test_size, self.settings.random_state)
            self.tracker.log(run_id, metrics=trained.metrics)
            model_uri = self.tracker.log_sklearn_model(
                run_id,
                trained.estimator,
                data.X,
                pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True),
                trusted_types=skops_trusted_types(trained.estimator),
            )
            metadata = {
                "feature_names": data.feature_names,
                "class_names": data.class_names,
                "target_column": data.target_column,
                "data_source": source,
                "input_file": params.get(names.P_INPUT_FILE),
                "model_type": MODEL_TYPE,
                "n_estimators": n_estimators,
                "test_size": test_size,
                "n_train": trained.n_train,
                "n_test": trained.n_test,
                "training_timestamp": moment.isoformat(),
                "metrics": trained.metrics,
                "feature_ranges": trained.feature_ranges,
                "run_id": run_id,
                "mlflow_model_uri": model_uri,
            }
            # Convert once here; the ONNX file is kept only if it matches scikit-learn.
            onnx_bytes = convert(trained.estimator, len(data.feature_names))
            candidate = StoredModel(trained.estimator, metadata, "", onnx_bytes)
            predictor, compiled_report = compiled_predictor(candidate, data.X.to_numpy())
            metadata["compiled"] = compiled_report
            keep_onnx = onnx_bytes if predictor.compiled is not None else None
            model_file, metadata, files = self.store.save(trained.estimator, metadata, stamp, keep_onnx)
            try:
                self.tracker.log_files(run_id, files, names.MODEL_FILES_ARTIFACT_DIR)
            except BaseException:
                self.store.remove(model_file)  # the run failed: leave no model behind for it
                raise
        self.store.set_current(model_file)
        model_path = self.store.path_of(model_file)
        self.predictor = Predictor(StoredModel(trained.estimator, metadata, model_path, keep_onnx), predictor.compiled)
        return {
            "status": "success",
            "run_id": run_id,
            "model_path": model_path,
            **trained.metrics,
            "classification_report": trained.classification_report,
            "confusion_matrix": trained.confusion_matrix,
            "model_metadata": metadata,
        }

    # -- prediction --------------------------------------------------------------------------

    def predict_one(self, values: Mapping[str, Any]) -> dict[str, Any]:
        predictor = self.require_predictor()
        features = parse_features(values, predictor.feature_names)
        prediction = predictor.predict_one(features)
        record = inference_record(predictor, features, prediction)
        self.writer.submit(record)
        return {
            "status": "success",
            "prediction": prediction.index,
            "class_name": prediction.class_name,
            "confidence": prediction.confidence,
            "probabilities": prediction.probabilities,
            "prediction_id": record["prediction_id"],
            "model_path": predictor.model_path,
            "out_of_range_features": predictor.out_of_range(features),
        }

    def predict_batch(self, source: BinaryIO, filename: str | None) -> dict[str, Any]:
        predictor = self.require_predictor()
        inline = self.settings.batch_inline_rows
        with tempfile.TemporaryDirectory() as tmp:
            output = Path(tmp) / names.PREDICTIONS_ARTIFACT
            streamed = predict_csv(source, filename, predictor, output, keep_rows=inline)
            moment = utc_now()
            params = {
                names.P_PREDICTION_TYPE: names.PREDICTION_TYPE_BATCH,
                names.P_MODEL_PATH: predictor.model_path,
                names.P_INPUT_FILE: _upload_name(filename),
                names.P_TIMESTAMP: moment.isoformat(),
            }
            run_name = f"{names.BATCH_RUN_PREFIX}_{run_stamp(moment)}"
            with self.tracker.run(names.INFERENCE_EXPERIMENT, run_name) as run_id:
                self.tracker.log(run_id, params, statistics_metrics(streamed.statistics))
                self.tracker.client.log_artifact(run_id, str(output))
        truncated = streamed.total > inline
        return {
            "status": "success",
            "run_id": run_id,
            "model_path": predictor.model_path,
            "total_samples": streamed.total,
            "truncated": truncated,
            "predictions": streamed.first_rows,
            "predictions_url": f"/mlflow/run/{run_id}/artifacts/{names.PREDICTIONS_ARTIFACT}",
            "replaced_columns": streamed.replaced_columns,
            "batch_statistics": streamed.statistics,
        }

    def find_prediction(self, prediction_id: str) -> dict[str, Any] | None:
        return self.tracker.find_prediction(prediction_id, prediction_time_ms(prediction_id))

    # -- models ------------------------------------------------------------------------------

    def list_models(self) -> dict[str, Any]:
        current = self.predictor.model_path if self.predictor else None
        models = [{**m, "is_current": m["path"] == current} for m in self.store.list()]
        return {"models": models, "current_model": current}

    def load_model(self, requested: str) -> dict[str, Any]:
        filename = self.store.resolve(requested)
        predictor = self._predictor_for(self.store.load(filename))
        self.store.set_current(filename)
        self.predictor = predictor
        return {
            "status": "success",
            "model_path": predictor.model_path,
            "runtime": predictor.runtime,
            "model_metadata": predictor.metadata,
        }

    def health(self) -> dict[str, Any]:
        self.writer.ensure_running()
        predictor = self.predictor
        return {
            "status": "healthy",
            "model_loaded": predictor is not None,
            "current_model": predictor.model_path if predictor else None,
            "runtime": predictor.runtime if predictor else None,
            "tracking_uri": redact_uri(self.settings.tracking_uri),
            "pending_inference_records": self.writer.pending,
            "tracking_error": self.writer.last_error,
            "tracking_worker": self.writer.stats(),
        }

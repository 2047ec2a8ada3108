"""The platform's actions (train, predict, load a model) tying data, model, store and tracking together.

Routes stay thin: they parse HTTP and call one method here.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Mapping

import mlflow.sklearn

from . import tracking_names as names
from .config import Settings
from .data import (
    features_from_frame,
    load_iris_training_data,
    parse_features,
    prepare_training_data,
    read_csv_upload,
)
from .errors import NoModelError
from .inference import (
    Predictor,
    batch_statistics,
    inference_record,
    predictions_table,
    run_stamp,
    utc_now,
)
from .model_store import ModelStore, StoredModel
from .tracking import Tracker
from .tracking_writer import Journal, TrackingWriter
from .training import MODEL_TYPE, check_parameters, train_model

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


def _upload_name(filename: str | None) -> str:
    return (filename or "upload.csv")[:MAX_NAME_LENGTH]


class IrisService:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.tracker = Tracker(settings.tracking_uri)
        self.store = ModelStore(settings.models_dir)
        self.writer = TrackingWriter(
            Journal(settings.journal_dir, fsync=settings.journal_fsync),
            write=self.tracker.write_single_prediction,
            already_written=self._already_written,
        )
        self.predictor: Predictor | None = None
        self._train_lock = threading.Lock()

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        try:
            self.tracker.ensure_experiments()
        except Exception as exc:  # predictions are still served; their records wait in the journal
            log.warning("MLflow tracking store %s is unreachable: %s", self.settings.tracking_uri, exc)
        replayed = self.writer.start()
        if replayed:
            log.info("replaying %d inference records from the journal", replayed)
        current = self.store.current_filename()
        if current:
            try:
                self.predictor = Predictor(self.store.load(current))
            except Exception as exc:
                log.warning("could not load the current model %s: %s", current, exc)

    def stop(self) -> None:
        self.writer.stop()

    def _already_written(self, record: dict[str, Any]) -> bool:
        """Whether a replayed record already has its finished run; a half-written run is removed."""
        finished = False
        for run in self.tracker.find_prediction_runs(record["prediction_id"]):
            if run.info.status == "FINISHED" and not finished:
                finished = True
            else:
                self.tracker.delete_run(run.info.run_id)
        return finished

    def require_predictor(self) -> Predictor:
        predictor = self.predictor  # one read: a concurrent model swap cannot split a request
        if predictor is None:
            raise NoModelError()
        return predictor

    # -- training ----------------------------------------------------------------------------

    def train(self, content: bytes | None, filename: str | None, n_estimators: int, test_size: float,
              target_column: str | None) -> dict[str, Any]:
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
            filename_pkl, metadata, blob, meta_blob = self.store.save(trained.estimator, metadata, stamp)
            try:
                self.tracker.log_files(
                    run_id,
                    {filename_pkl: blob, ModelStore.metadata_name(filename_pkl): meta_blob},
                    names.MODEL_FILES_ARTIFACT_DIR,
                )
            except BaseException:
                self.store.remove(filename_pkl)  # the run failed: leave no model behind for it
                raise
        self.store.set_current(filename_pkl)
        model_path = self.store.path_of(filename_pkl)
        self.predictor = Predictor(StoredModel(trained.estimator, metadata, model_path))
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

    def predict_batch(self, content: bytes, filename: str | None) -> dict[str, Any]:
        predictor = self.require_predictor()
        frame = read_csv_upload(content, filename)
        X = features_from_frame(frame, predictor.feature_names)
        result = predictor.predict_batch(X)
        classes = predictor.class_names
        stats = batch_statistics(result, classes)
        table = predictions_table(frame, result, classes)
        moment = utc_now()
        params = {
            names.P_PREDICTION_TYPE: names.PREDICTION_TYPE_BATCH,
            names.P_MODEL_PATH: predictor.model_path,
            names.P_INPUT_FILE: _upload_name(filename),
            names.P_TIMESTAMP: moment.isoformat(),
        }
        metrics = {
            names.M_TOTAL_SAMPLES: stats["total_samples"],
            names.M_AVG_CONFIDENCE: stats["avg_confidence"],
            names.M_MIN_CONFIDENCE: stats["min_confidence"],
            names.M_MAX_CONFIDENCE: stats["max_confidence"],
            names.M_UNIQUE_CLASSES: stats["unique_classes_predicted"],
            **{names.count_metric(c): n for c, n in stats["prediction_distribution"].items()},
            **{names.percentage_metric(c): p for c, p in stats["prediction_percentages"].items()},
        }
        run_name = f"{names.BATCH_RUN_PREFIX}_{run_stamp(moment)}"
        with self.tracker.run(names.INFERENCE_EXPERIMENT, run_name) as run_id:
            self.tracker.log(run_id, params, metrics)
            self.tracker.log_files(run_id, {names.PREDICTIONS_ARTIFACT: table.to_csv(index=False).encode()})
        rows = [
            {
                "sample_index": i,
                "prediction": int(index),
                "class_name": classes[index],
                "confidence": float(result.confidences[i]),
                "probabilities": dict(zip(classes, map(float, result.probabilities[i]))),
            }
            for i, index in enumerate(result.indexes)
        ]
        return {
            "status": "success",
            "run_id": run_id,
            "model_path": predictor.model_path,
            "total_samples": stats["total_samples"],
            "predictions": rows,
            "batch_statistics": stats,
        }

    # -- models ------------------------------------------------------------------------------

    def list_models(self) -> dict[str, Any]:
        current = self.predictor.model_path if self.predictor else None
        models = [{**m, "is_current": m["path"] == current} for m in self.store.list()]
        return {"models": models, "current_model": current}

    def load_model(self, requested: str) -> dict[str, Any]:
        filename = self.store.resolve(requested)
        predictor = Predictor(self.store.load(filename))
        self.store.set_current(filename)
        self.predictor = predictor
        return {"status": "success", "model_path": predictor.model_path, "model_metadata": predictor.metadata}

    def health(self) -> dict[str, Any]:
        predictor = self.predictor
        return {
            "status": "healthy",
            "model_loaded": predictor is not None,
            "current_model": predictor.model_path if predictor else None,
            "tracking_uri": self.settings.tracking_uri,
            "pending_inference_records": self.writer.pending,
            "tracking_error": self.writer.last_error,
        }

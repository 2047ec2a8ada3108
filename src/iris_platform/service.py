"""The platform's actions (train, predict, load a model, read runs) tying data, model, store and tracking together.

Routes stay thin: they parse HTTP and call one method here; nothing in the HTTP edge reaches past it.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from iris_platform.champion import ChampionFollower, fetch_version
from iris_platform.config import Settings
from iris_platform.errors import InputError, NoModelError
from iris_platform.memory import releasing_memory
from iris_platform.ml.batch_stream import predict_csv
from iris_platform.ml.compiled_model import CompiledModel, convert, to_tree_input
from iris_platform.ml.data import TrainingData, load_iris_training_data, prepare_training_data, read_csv_upload
from iris_platform.ml.features import parse_features
from iris_platform.ml.inference import Prediction, Predictor, compiled_predictor, training_bounds
from iris_platform.ml.metadata import ModelMetadata
from iris_platform.ml.model_store import ModelStore, StoredModel, sha256_hex
from iris_platform.ml.training import MAX_ESTIMATORS as MAX_ESTIMATORS  # the bound the API documents
from iris_platform.ml.training import MODEL_TYPE, check_parameters, train_model, warm_up
from iris_platform.redaction import describe, redact_uri
from iris_platform.timestamps import run_stamp, utc_now
from iris_platform.tracking import names
from iris_platform.tracking.datasets import batch_input, file_digest, training_input
from iris_platform.tracking.records import InferenceRecord, new_record, prediction_time_ms
from iris_platform.tracking.registry import ModelRegistry, describe_version
from iris_platform.tracking.run_reader import RUN_TYPES, RunReader
from iris_platform.tracking.run_writer import RunWriter
from iris_platform.tracking.store import TrackingStore
from iris_platform.tracking.worker import TrackingWriter, WorkerConfig

log = logging.getLogger(__name__)

MAX_NAME_LENGTH = 250
_HEX = frozenset("0123456789abcdef")


def _upload_name(filename: str | None) -> str:
    return (filename or "upload.csv")[:MAX_NAME_LENGTH]


def _training_input(data: TrainingData, source: str, input_file: str | None) -> Any:
    """The training table as the run's MLflow dataset input: the bundled Iris data, or the upload by name."""
    name = input_file or names.IRIS_DATASET_NAME
    labels = [data.class_names[i] for i in data.y]
    return training_input(data.X, labels, target=data.target_column, name=name, source=input_file or source)


def _experiment(experiment_name: str | None, run_type: str | None) -> str | None:
    return RUN_TYPES[run_type] if run_type else experiment_name


def _ensure_experiments(store: TrackingStore) -> None:
    try:
        store.ensure_experiments()
    except Exception as exc:  # predictions are still served; their records wait in the journal
        log.warning("MLflow tracking store %s is unreachable: %s", redact_uri(store.tracking_uri), describe(exc))


def prediction_record(predictor: Predictor, features: list[float], prediction: Prediction) -> InferenceRecord:
    """The journal's record of one answered prediction, stamped now."""
    return new_record(
        model_path=predictor.model_path,
        model_version=predictor.version,
        features=dict(zip(predictor.feature_names, features, strict=True)),
        class_index=prediction.index,
        class_name=prediction.class_name,
        confidence=prediction.confidence,
        probabilities=prediction.probabilities,
    )


class IrisService:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.tracking = TrackingStore(settings.tracking_uri)
        self.runs = RunWriter(self.tracking)
        self.reader = RunReader(self.tracking, query_database_uri=settings.query_database_uri)
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
        self.registry = ModelRegistry(self.tracking, settings.registered_model)
        self.predictor: Predictor | None = None
        self._train_lock = threading.Lock()
        # Held while the champion moves or the serving model is swapped (training, load, rollback, follower).
        self._model_lock = threading.Lock()
        self.follower = ChampionFollower(
            self.registry,
            self.store,
            poll_s=settings.model_poll_s,
            serving_version=lambda: self.predictor.version if self.predictor else None,
            swap=self._serve,
            lock=self._model_lock,
        )

    @staticmethod
    def prepare_tracking(settings: Settings) -> None:
        """Create the tracking store's schema and the experiments from one process, before worker
        processes that would otherwise all do it at once. A store that is down is left to them."""
        _ensure_experiments(TrackingStore(settings.tracking_uri))

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        self.writer.claim_journal()  # a journal of this process's own, before anything is served
        _ensure_experiments(self.tracking)
        self.writer.start()
        # Serve what this folder served last at once; the follower then moves to the registry's champion.
        current, version = self.store.current()
        if current:
            try:
                predictor = self._predictor_for(self.store.load(current))
                predictor.version = version
                self.predictor = predictor
            except Exception as exc:
                log.warning("could not load the current model %s: %s", current, exc)
        self.follower.start()

    def stop(self) -> None:
        self.follower.stop()
        self.writer.stop()
        self.reader.close()

    def _serve(self, predictor: Predictor) -> None:
        """Make `predictor` the serving model here, and remember it in the folder for the next start."""
        self.store.set_current(Path(predictor.model_path).name, predictor.version)
        self.predictor = predictor

    @staticmethod
    def warm_up() -> None:
        """Pay the first training's one-time costs off the request path, once the server answers.

        Imports alone left the first training several times slower than the next ones (the first
        conversion, ONNX session, skops dump and MLflow model save each load more code), also after
        a tracking outage, when the first successful training is often the process's first. So a tiny
        forest goes through every step here; nothing is written to the store or the models folder.
        """
        warm_up()
        data = load_iris_training_data()
        trained = train_model(data, n_estimators=2, test_size=0.3, random_state=0)
        onnx_bytes = convert(trained.estimator, len(data.feature_names))
        if onnx_bytes is not None:
            CompiledModel(onnx_bytes).predict_proba(to_tree_input(data.X.to_numpy()[:5]))
        _training_input(data, names.DATA_SOURCE_IRIS, None)
        RunWriter.warm_up(trained.estimator, data.X, data.class_names)

    def reset_tracking_connections(self) -> None:
        """After a tracking error: a connection opened during the outage may stay broken."""
        self.tracking.reset_connections()

    def _predictor_for(self, stored: StoredModel) -> Predictor:
        """Check a saved model's compiled form again on this machine's onnxruntime before serving it."""
        predictor, _ = compiled_predictor(stored, training_bounds(stored))
        return predictor

    def require_predictor(self) -> Predictor:
        predictor = self.predictor  # one read: a concurrent model swap cannot split a request
        if predictor is None:
            raise NoModelError()
        return predictor

    # -- training ----------------------------------------------------------------------------

    def train(
        self,
        *,
        content: bytes | None,
        filename: str | None,
        n_estimators: int,
        test_size: float,
        target_column: str | None,
        keep_columns: str | None = None,
    ) -> dict[str, Any]:
        check_parameters(n_estimators, test_size)
        if content is None:
            for name, value in (("target_column", target_column), ("keep_columns", keep_columns)):
                if value is not None:
                    raise InputError(
                        f"{name} applies to an uploaded CSV and no file was sent: send the file with it as "
                        f"multipart form data, or leave {name} out to train on the bundled Iris data."
                    )
            data, source = load_iris_training_data(), names.DATA_SOURCE_IRIS
        else:
            data = prepare_training_data(read_csv_upload(content, filename), target_column, keep_columns)
            source = names.DATA_SOURCE_CSV
        with self._train_lock, releasing_memory():  # what the training freed goes back to the OS
            return self._train(data, source=source, filename=filename, n_estimators=n_estimators, test_size=test_size)

    def _train(
        self, data: TrainingData, *, source: str, filename: str | None, n_estimators: int, test_size: float
    ) -> dict[str, Any]:
        moment = utc_now()
        stamp = run_stamp(moment)
        params: dict[str, Any] = {
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
        if data.dropped_columns:
            params[names.P_DROPPED_COLUMNS] = ",".join(data.dropped_columns)

        with self.runs.run(names.TRAINING_EXPERIMENT, f"{names.TRAINING_RUN_PREFIX}_{stamp}") as run_id:
            self.runs.log(run_id, params)
            self.runs.log_inputs(run_id, [_training_input(data, source, params.get(names.P_INPUT_FILE))])
            trained = train_model(
                data, n_estimators=n_estimators, test_size=test_size, random_state=self.settings.random_state
            )
            self.runs.log(run_id, metrics=trained.metrics)
            model_uri = self.runs.log_mlflow_model(run_id, trained.estimator, data.X, data.class_names)
            metadata = ModelMetadata(
                feature_names=data.feature_names,
                class_names=data.class_names,
                target_column=data.target_column,
                data_source=source,
                input_file=params.get(names.P_INPUT_FILE),
                dropped_columns=data.dropped_columns,
                model_type=MODEL_TYPE,
                n_estimators=n_estimators,
                test_size=test_size,
                n_train=trained.n_train,
                n_test=trained.n_test,
                training_timestamp=moment.isoformat(),
                metrics=trained.metrics,
                feature_ranges=trained.feature_ranges,
                run_id=run_id,
                mlflow_model_uri=model_uri,
            )
            # Convert once here; the ONNX file is kept only if it matches scikit-learn.
            onnx_bytes = convert(trained.estimator, len(data.feature_names))
            candidate = StoredModel(trained.estimator, metadata, "", onnx_bytes)
            predictor, compiled_report = compiled_predictor(candidate, data.X.to_numpy())
            metadata.compiled = compiled_report
            keep_onnx = onnx_bytes if predictor.compiled is not None else None
            model_file, metadata, files = self.store.save(
                trained.estimator, metadata, stamp=stamp, onnx_bytes=keep_onnx
            )
            try:
                version = self._register(run_id, model_uri, model_file, metadata, files)
            except BaseException:
                self.store.remove(model_file)  # the run failed: leave no model behind for it
                raise
        model_path = self.store.path_of(model_file)
        served = Predictor(StoredModel(trained.estimator, metadata, model_path, keep_onnx), predictor.compiled)
        served.version = version
        self._serve(served)
        return {
            "status": "success",
            "run_id": run_id,
            "model_path": model_path,
            "model_version": version,
            **trained.metrics,
            "classification_report": trained.classification_report,
            "confusion_matrix": trained.confusion_matrix,
            "dropped_columns": data.dropped_columns,
            "model_metadata": metadata.to_dict(),
        }

    def _register(
        self, run_id: str, model_uri: str, model_file: str, metadata: ModelMetadata, files: dict[str, bytes]
    ) -> str:
        """Add the model's files to the run and its logged model, register a version of it, make it champion.

        The run keeps its copy for the dashboard's run page; the version's copy is what replicas fetch.
        """
        self.runs.log_files(run_id, files, names.MODEL_FILES_ARTIFACT_DIR)
        self.runs.log_model_files(model_uri, files)
        version = self.registry.register(
            run_id=run_id,
            model_uri=model_uri,
            model_file=model_file,
            sha256=metadata.sha256 or "",
            metadata_sha256=sha256_hex(files[self.store.metadata_name(model_file)]),
            metrics=metadata.metrics,
        )
        with self._model_lock:  # the follower must not swap an older champion in between
            self.registry.promote(version)
        return version

    # -- prediction --------------------------------------------------------------------------

    def predict_one(self, values: Mapping[str, Any]) -> dict[str, Any]:
        predictor = self.require_predictor()
        features = parse_features(values, predictor.feature_names)
        prediction = predictor.predict_one(features)
        record = prediction_record(predictor, features, prediction)
        self.writer.submit(record)
        return {
            "status": "success",
            "prediction": prediction.index,
            "class_name": prediction.class_name,
            "confidence": prediction.confidence,
            "probabilities": prediction.probabilities,
            "prediction_id": record["prediction_id"],
            "model_path": predictor.model_path,
            "model_version": predictor.version,
            "out_of_range_features": predictor.out_of_range(features),
        }

    def predict_batch(self, source: BinaryIO, filename: str | None) -> dict[str, Any]:
        predictor = self.require_predictor()
        inline = self.settings.batch_inline_rows
        with tempfile.TemporaryDirectory() as tmp:
            output = Path(tmp) / names.PREDICTIONS_ARTIFACT
            sha256 = file_digest(source)
            streamed = predict_csv(source, filename, predictor, output, keep_rows=inline)
            run_id = self.runs.write_batch_run(
                moment=utc_now(),
                model_path=predictor.model_path,
                model_version=predictor.version,
                input_file=_upload_name(filename),
                statistics=streamed.statistics,
                predictions_csv=output,
                inputs=[batch_input(name=_upload_name(filename), sha256=sha256, rows=streamed.total)],
            )
        return {
            "status": "success",
            "run_id": run_id,
            "model_path": predictor.model_path,
            "model_version": predictor.version,
            "total_samples": streamed.total,
            "truncated": len(streamed.first_rows) < streamed.total,
            "predictions": streamed.first_rows,
            "predictions_url": f"/mlflow/run/{run_id}/artifacts/{names.PREDICTIONS_ARTIFACT}",
            "replaced_columns": streamed.replaced_columns,
            "batch_statistics": streamed.statistics.as_dict(),
        }

    def find_prediction(self, prediction_id: str) -> dict[str, Any]:
        """The run (single or window) that holds a prediction; 404 while its record still waits."""
        if len(prediction_id) != 32 or not set(prediction_id) <= _HEX:
            raise InputError("A prediction id is the 32 hexadecimal characters that POST /predict returned.")
        time_ms = prediction_time_ms(prediction_id)
        found = self.reader.find_prediction(prediction_id, time_ms)
        if found is not None:
            return {"status": "success", "prediction_id": prediction_id, **found}
        # Acknowledged but not yet in MLflow: its journal holds it (looked up before MLflow is asked
        # again, since the worker deletes the journal's copy only after MLflow has the run).
        record = self.writer.find_unwritten(prediction_id)
        if record is not None:
            return {"status": "pending", "prediction_id": prediction_id, "run": None, "record": dict(record)}
        found = self.reader.find_prediction(prediction_id, time_ms)
        if found is None:
            raise InputError(
                f"No MLflow run and no journal holds prediction '{prediction_id}': it was not made by this "
                "platform, or its run was deleted.",
                404,
            )
        return {"status": "success", "prediction_id": prediction_id, **found}

    # -- models ------------------------------------------------------------------------------

    def list_models(self) -> dict[str, Any]:
        """The registered versions (and any model file of the folder no version holds), newest first."""
        predictor = self.predictor
        serving = predictor.version if predictor else None
        current = predictor.model_path if predictor else None
        local = {m["filename"]: m for m in self.store.list()}
        entries: list[dict[str, Any]] = []
        champion, error = None, None
        try:
            state = self.registry.state()
            champion = state.champion
            for files, created_ms in self.registry.versions():
                cached = local.pop(files.model_file, None)
                entries.append(
                    {
                        **describe_version(files, created_ms, state, serving),
                        "path": self.store.path_of(files.model_file),
                        "is_current": files.version == serving,
                        "cached": cached is not None,
                        "metadata": cached["metadata"] if cached else None,
                    }
                )
        except Exception as exc:  # the registry is unreachable: the cache still lists what it holds
            error = describe(exc)
        for entry in local.values():
            metadata = entry["metadata"]
            entries.append(
                {
                    "version": None,
                    "run_id": metadata.get("run_id"),
                    "filename": entry["filename"],
                    "path": entry["path"],
                    "metrics": metadata.get("metrics") or {},
                    "aliases": [],
                    "created_ms": None,
                    "serving": entry["path"] == current,
                    "is_current": entry["path"] == current,
                    "cached": True,
                    "metadata": metadata,
                }
            )
        return {
            "registered_model": self.registry.name,
            "champion": champion,
            "model_version": serving,
            "current_model": current,
            "models": entries,
            "registry_error": error,
        }

    def load_model(self, *, model_path: str | None = None, version: int | None = None) -> dict[str, Any]:
        """Make a registered version (named by number, or by a model path GET /models lists) the champion."""
        if (model_path is None) == (version is None):
            raise InputError(
                'Name the model to serve: send {"version": N} or {"model_path": "<a path GET /models lists>"}.'
            )
        with self._model_lock:
            target = str(version) if version is not None else self._version_of_file(model_path or "")
            predictor = fetch_version(self.registry, self.store, target)  # checked before the alias moves
            previous = self.registry.promote(target)
            self._serve(predictor)
        return self._loaded(predictor, previous)

    def rollback(self) -> dict[str, Any]:
        """Move the champion back to the version it named before the last move."""
        with self._model_lock:
            target = self.registry.rollback_target()
            predictor = fetch_version(self.registry, self.store, target)
            previous = self.registry.rollback(target)
            self._serve(predictor)
        return self._loaded(predictor, previous)

    @staticmethod
    def _loaded(predictor: Predictor, previous: str | None) -> dict[str, Any]:
        return {
            "status": "success",
            "model_path": predictor.model_path,
            "model_version": predictor.version,
            "previous_version": previous,
            "runtime": predictor.runtime,
            "model_metadata": predictor.metadata.to_dict(),
        }

    def _version_of_file(self, model_path: str) -> str:
        """The registered version of a model file of the folder, registering one for a file trained before
        the registry (its logged MLflow model gains the files, as training does today)."""
        filename = self.store.resolve(model_path)
        metadata = self.store.load(filename).metadata  # verifies the file before anything is registered
        if metadata.run_id:
            found = self.registry.version_of_run(metadata.run_id)
            if found is not None:
                return found
        if not metadata.run_id or not metadata.mlflow_model_uri or not metadata.sha256:
            raise InputError(
                f"'{filename}' has no registered version and its metadata names no MLflow model to register: "
                "train a new model instead.",
                409,
            )
        files = self.store.files_of(filename)
        self.runs.log_model_files(metadata.mlflow_model_uri, files)
        return self.registry.register(
            run_id=metadata.run_id,
            model_uri=metadata.mlflow_model_uri,
            model_file=filename,
            sha256=metadata.sha256,
            metadata_sha256=sha256_hex(files[self.store.metadata_name(filename)]),
            metrics=metadata.metrics,
        )

    # -- runs --------------------------------------------------------------------------------

    def experiments(self) -> list[dict[str, Any]]:
        return self.reader.experiments()

    def query_runs(
        self,
        *,
        experiment_name: str | None,
        run_type: str | None,
        search: str | None,
        order_by: str,
        descending: bool,
        page_size: int,
        page: int,
    ) -> dict[str, Any]:
        return self.reader.query_runs(
            experiment_name=_experiment(experiment_name, run_type),
            page_size=page_size,
            search=search,
            order_by=order_by,
            descending=descending,
            page=page,
        )

    def export_runs(
        self,
        *,
        experiment_name: str | None,
        run_type: str | None,
        search: str | None,
        order_by: str,
        descending: bool,
        limit: int,
    ) -> Iterator[dict[str, Any]]:
        return self.reader.export_runs(
            experiment_name=_experiment(experiment_name, run_type),
            search=search,
            order_by=order_by,
            descending=descending,
            limit=limit,
        )

    def summary(self) -> dict[str, Any]:
        return self.reader.summary()

    def get_run(self, run_id: str) -> dict[str, Any]:
        return self.reader.get_run(run_id)

    def download_artifact(self, run_id: str, path: str, destination: str) -> str:
        return self.reader.download_artifact(run_id, path, destination)

    # -- health ------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        self.writer.ensure_running()
        self.tracking.recheck()
        predictor = self.predictor
        journals = self.writer.journals()
        return {
            "status": "healthy",
            "model_loaded": predictor is not None,
            "current_model": predictor.model_path if predictor else None,
            "model_version": predictor.version if predictor else None,
            "runtime": predictor.runtime if predictor else None,
            "tracking_uri": redact_uri(self.settings.tracking_uri),
            # Every journal of the folder: this process's, its sibling workers', and any left by a stopped one.
            "pending_inference_records": sum(j["pending"] for j in journals),
            "journals": journals,
            # The store's own error (unreachable, a missing driver or database) or the worker's last one.
            "tracking_error": self.tracking.last_error or self.writer.last_error,
            "model_registry_error": self.follower.last_error,
            "tracking_worker": self.writer.stats(),
        }

    def ready(self) -> tuple[bool, str]:
        """For a load balancer: a model serves and the tracking store answers; else what is missing."""
        if self.predictor is None:
            return False, "No model is loaded yet: train one with POST /train or load one with POST /load_model."
        try:
            self.tracking.ping()
        except Exception as exc:
            return False, (
                f"The MLflow tracking store ({redact_uri(self.settings.tracking_uri)}) is unreachable "
                f"({describe(exc)}): trainings and batches would answer 503."
            )
        return True, f"Serving {self.predictor.model_path}; the tracking store answers."

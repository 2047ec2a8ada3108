"""A training as the platform records it: checked, fitted, logged to an MLflow run, converted and checked
against its compiled form, saved, registered and made champion. The same steps for POST /train (in the
serving process or the training process) and for each trial of a tuning.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from iris_platform.config import Settings
from iris_platform.errors import InputError
from iris_platform.memory import releasing_memory
from iris_platform.ml.compiled_model import CompiledModel, convert, to_tree_input
from iris_platform.ml.data import (
    DEFAULT_IMPUTE,
    TrainingData,
    check_impute,
    load_iris_training_data,
    prepare_training_data,
    read_csv_upload,
)
from iris_platform.ml.inference import Predictor, compiled_predictor
from iris_platform.ml.metadata import ModelMetadata
from iris_platform.ml.model_store import ModelStore, StoredModel, sha256_hex
from iris_platform.ml.model_types import (
    DEFAULT_MODEL_TYPE,
    MODEL_TYPES,
    model_type_of,
    resolve_hyperparameters,
)
from iris_platform.ml.text_features import FeatureLayout
from iris_platform.ml.training import (
    Candidate,
    TrainedModel,
    check_folds,
    check_neighbours,
    check_parameters,
    train_model,
    warm_up,
)
from iris_platform.timestamps import run_stamp, utc_now
from iris_platform.tracking import names
from iris_platform.tracking.datasets import training_input
from iris_platform.tracking.registry import ModelRegistry
from iris_platform.tracking.run_writer import RunWriter
from iris_platform.tracking.store import TrackingStore

MAX_NAME_LENGTH = 250
# Set while no warm-up runs in this process. A training that arrives during one waits for it instead of
# racing it for the GIL and the import lock, which made the first training slower still (4.2 s against
# 3.1 s when trainings ran in the serving process, before the training process).
_NOT_WARMING = threading.Event()
_NOT_WARMING.set()
WARM_UP_WAIT_S = 30.0


def begin_warm_up() -> None:
    """Called before a warm-up starts in its thread: trainings wait for it from now on."""
    _NOT_WARMING.clear()


def end_warm_up() -> None:
    _NOT_WARMING.set()


def upload_name(filename: str | None) -> str:
    return (filename or "upload.csv")[:MAX_NAME_LENGTH]


def _training_input(data: TrainingData, source: str, input_file: str | None) -> Any:
    """The training table as the run's MLflow dataset input: the bundled Iris data, or the upload by name."""
    name = input_file or names.IRIS_DATASET_NAME
    labels = [data.class_names[i] for i in data.y]
    return training_input(data.X, labels, target=data.target_column, name=name, source=input_file or source)


class Trainer:
    """Trains and publishes models on one tracking store, models folder and registry, one at a time."""

    def __init__(
        self,
        settings: Settings,
        tracking: TrackingStore,
        store: ModelStore,
        registry: ModelRegistry,
        *,
        model_lock: threading.Lock,
        serve: Callable[[Predictor], None] | None = None,
    ):
        """`model_lock`: held while the champion moves; `serve`: makes a promoted model the serving one
        (none in the training process, whose server loads the model itself)."""
        self.settings = settings
        self.runs = RunWriter(tracking)
        self.store = store
        self.registry = registry
        self.model_lock = model_lock
        self.serve = serve
        self.lock = threading.Lock()  # one training (or tuning trial) at a time
        # Told the run id while a training's run is open, then "": the training process tells its server.
        self.on_run: Callable[[str], None] = lambda run_id: None

    @staticmethod
    def warm_up() -> None:
        """Pay the first training's one-time costs off the request path.

        Imports alone left the first training several times slower than the next ones (the first
        conversion, ONNX session, skops dump and MLflow model save each load more code), also after
        a tracking outage, when the first successful training is often the process's first. So a tiny
        forest goes through every step here; nothing is written to the store or the models folder.
        """
        warm_up()
        data = load_iris_training_data()
        trained = train_model(
            data,
            model_type=MODEL_TYPES[DEFAULT_MODEL_TYPE],
            hyperparameters={"n_estimators": 2},
            test_size=0.3,
            random_state=0,
        )
        onnx_bytes = convert(trained.estimator, FeatureLayout(data.feature_names))
        if onnx_bytes is not None:
            CompiledModel(onnx_bytes).predict_proba(to_tree_input(data.X.to_numpy()[:5]))
        _training_input(data, names.DATA_SOURCE_IRIS, None)
        RunWriter.warm_up(trained.estimator, data.X, data.class_names)

    def train(
        self,
        *,
        content: bytes | None,
        filename: str | None,
        test_size: float = 0.2,
        target_column: str | None = None,
        keep_columns: str | None = None,
        impute: str | None = None,
        model_type: str = DEFAULT_MODEL_TYPE,
        cv_folds: int = 0,
        **hyperparameters: Any,
    ) -> dict[str, Any]:
        """Train `model_type` with `hyperparameters` (those it takes; the rest are its defaults) and make the
        model champion; the answer, as POST /train gives it."""
        chosen = model_type_of(model_type)
        resolved = resolve_hyperparameters(chosen, hyperparameters)
        check_parameters(test_size, cv_folds)
        if content is None:
            for name, value in (("target_column", target_column), ("keep_columns", keep_columns), ("impute", impute)):
                if value is not None:
                    raise InputError(
                        f"{name} applies to an uploaded CSV and no file was sent: send the file with it as "
                        f"multipart form data, or leave {name} out to train on the bundled Iris data."
                    )
            data, source = load_iris_training_data(), names.DATA_SOURCE_IRIS
        else:
            chosen_impute = check_impute(DEFAULT_IMPUTE if impute is None else impute)
            data = prepare_training_data(read_csv_upload(content, filename), target_column, keep_columns, chosen_impute)
            source = names.DATA_SOURCE_CSV
        check_folds(data, cv_folds)  # before a run is opened: a refused request leaves none
        check_neighbours(data, chosen, resolved, test_size, cv_folds)
        _NOT_WARMING.wait(WARM_UP_WAIT_S)
        candidate = Candidate(chosen, resolved, test_size, cv_folds)
        with self.lock, releasing_memory():  # what the training freed goes back to the OS
            return self._train(data, candidate, source=source, filename=filename)

    def training_params(
        self, data: TrainingData, candidate: Candidate, *, source: str, filename: str | None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            names.P_MODEL_TYPE: candidate.model_type.estimator_class,
            **candidate.hyperparameters,
            names.P_TEST_SIZE: candidate.test_size,
            names.P_N_FEATURES: len(data.feature_names),
            names.P_N_SAMPLES: len(data.y),
            names.P_N_CLASSES: len(data.class_names),
            names.P_DATA_SOURCE: source,
            names.P_PREPROCESSING: data.preprocessing,
            names.P_N_NUMERIC_FEATURES: len(data.numeric_features),
            names.P_N_TEXT_FEATURES: len(data.text_features),
        }
        if candidate.cv_folds:
            params[names.P_CV_FOLDS] = candidate.cv_folds
        if source == names.DATA_SOURCE_CSV:
            params[names.P_INPUT_FILE] = upload_name(filename)
            params[names.P_IMPUTE] = data.impute
        if data.dropped_columns:
            params[names.P_DROPPED_COLUMNS] = ",".join(data.dropped_columns)
        if data.constant_columns:
            params[names.P_CONSTANT_COLUMNS] = ",".join(data.constant_columns)
        return params

    def fit_logged(self, run_id: str, data: TrainingData, params: dict[str, Any], candidate: Candidate) -> TrainedModel:
        """Fit in the open run `run_id`: its params, data, metrics and evaluation artifacts (not yet the model)."""
        self.runs.log(run_id, params)
        self.runs.log_inputs(
            run_id, [_training_input(data, params[names.P_DATA_SOURCE], params.get(names.P_INPUT_FILE))]
        )
        trained = train_model(
            data,
            model_type=candidate.model_type,
            hyperparameters=candidate.hyperparameters,
            test_size=candidate.test_size,
            cv_folds=candidate.cv_folds,
            random_state=self.settings.random_state,
        )
        self.runs.log(run_id, metrics=trained.metrics)
        self.runs.log_files(run_id, trained.evidence.artifacts, names.EVALUATION_ARTIFACT_DIR)
        return trained

    def _train(self, data: TrainingData, candidate: Candidate, *, source: str, filename: str | None) -> dict[str, Any]:
        moment = utc_now()
        params = self.training_params(data, candidate, source=source, filename=filename)
        try:
            with self.runs.run(names.TRAINING_EXPERIMENT, f"{names.TRAINING_RUN_PREFIX}_{run_stamp(moment)}") as run_id:
                self.on_run(run_id)
                trained = self.fit_logged(run_id, data, params, candidate)
                return self.publish(run_id, data, params, candidate, trained, moment, promote=True)
        finally:
            self.on_run("")  # ended, FINISHED or FAILED

    def publish(
        self,
        run_id: str,
        data: TrainingData,
        params: dict[str, Any],
        candidate: Candidate,
        trained: TrainedModel,
        moment: datetime,
        *,
        promote: bool,
    ) -> dict[str, Any]:
        """Log the fitted model to its run, save it, register a version; make it champion if `promote` (and
        serve it, if this trainer serves). Returns the training's answer."""
        model_type, hyperparameters = candidate.model_type, candidate.hyperparameters
        stamp = run_stamp(moment)
        model_uri = self.runs.log_mlflow_model(
            run_id,
            trained.estimator,
            data.X,
            data.class_names,
            imputes_blanks=bool(data.imputed_cells),
            text_features=data.text_features,
        )
        metadata = ModelMetadata(
            feature_names=data.feature_names,
            class_names=data.class_names,
            target_column=data.target_column,
            data_source=params[names.P_DATA_SOURCE],
            input_file=params.get(names.P_INPUT_FILE),
            dropped_columns=data.dropped_columns,
            preprocessing=data.preprocessing,
            text_categories=trained.text_categories,
            model_type=model_type.estimator_class,
            n_estimators=hyperparameters.get("n_estimators"),
            hyperparameters=hyperparameters,
            cv_folds=candidate.cv_folds,
            test_size=candidate.test_size,
            n_train=trained.n_train,
            n_test=trained.n_test,
            training_timestamp=moment.isoformat(),
            metrics=trained.metrics,
            feature_ranges=trained.feature_ranges,
            run_id=run_id,
            mlflow_model_uri=model_uri,
        )
        # Convert once here; the ONNX file is kept only if it matches scikit-learn.
        layout = FeatureLayout(data.feature_names, trained.text_categories)
        onnx_bytes = convert(trained.estimator, layout)
        checked = StoredModel(trained.estimator, metadata, "", onnx_bytes)
        predictor, compiled_report = compiled_predictor(checked, layout.encode(data.X))
        metadata.compiled = compiled_report
        keep_onnx = onnx_bytes if predictor.compiled is not None else None
        model_file, metadata, files = self.store.save(
            trained.estimator, metadata, stamp=stamp, onnx_bytes=keep_onnx, profile=trained.profile
        )
        try:
            version = self._register(run_id, model_uri, model_file, metadata, files, promote=promote)
        except BaseException:
            self.store.remove(model_file)  # the run failed: leave no model behind for it
            raise
        model_path = self.store.path_of(model_file)
        served = Predictor(
            StoredModel(trained.estimator, metadata, model_path, keep_onnx, trained.profile), predictor.compiled
        )
        served.version = version
        if promote and self.serve is not None:
            self.serve(served)
        return {
            "status": "success",
            "run_id": run_id,
            "model_path": model_path,
            "model_version": version,
            **trained.metrics,
            "model_type": model_type.name,
            "hyperparameters": hyperparameters,
            "cv_folds": candidate.cv_folds,
            "runtime": served.runtime,
            "classification_report": trained.classification_report,
            "confusion_matrix": trained.confusion_matrix,
            "dropped_columns": data.dropped_columns,
            "constant_columns": data.constant_columns,
            "preprocessing": data.preprocessing,
            "imputed_cells": data.imputed_cells,
            "text_features": trained.text_categories,
            "model_metadata": metadata.to_dict(),
        }

    def _register(
        self,
        run_id: str,
        model_uri: str,
        model_file: str,
        metadata: ModelMetadata,
        files: dict[str, bytes],
        *,
        promote: bool = True,
    ) -> str:
        """Add the model's files to the run and its logged model, register a version of it, make it champion
        if `promote`.

        The run keeps its copy for the dashboard's run page; the version's copy is what replicas fetch.
        """
        self.runs.log_files(run_id, files, names.MODEL_FILES_ARTIFACT_DIR)
        self.runs.log_model_files(model_uri, files)
        profile = files.get(self.store.profile_name(model_file))
        if profile is not None:  # also at the top level, where MLflow's UI and users look for it
            self.runs.log_files(run_id, {names.REFERENCE_PROFILE_ARTIFACT: profile})
            self.runs.log_model_files(model_uri, {names.REFERENCE_PROFILE_ARTIFACT: profile}, None)
        version = self.registry.register(
            run_id=run_id,
            model_uri=model_uri,
            model_file=model_file,
            sha256=metadata.sha256 or "",
            metadata_sha256=sha256_hex(files[self.store.metadata_name(model_file)]),
            metrics=metadata.metrics,
        )
        if promote:
            with self.model_lock:  # the follower must not swap an older champion in between
                self.registry.promote(version)
        return version

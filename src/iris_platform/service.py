"""The platform's actions (train, predict, load a model, read runs) tying data, model, store and tracking together.

Routes stay thin: they parse HTTP and call one method here; nothing in the HTTP edge reaches past it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from iris_platform import metrics
from iris_platform.alerts import AlertSender
from iris_platform.champion import ChampionFollower, fetch_version
from iris_platform.config import Settings
from iris_platform.drift import DriftThresholds
from iris_platform.errors import InputError, NoModelError
from iris_platform.memory import releasing_memory
from iris_platform.ml.batch_stream import predict_csv
from iris_platform.ml.data import IMPUTE_CHOICES as IMPUTE_CHOICES  # the API documents it
from iris_platform.ml.data import (
    TrainingData,
    load_iris_training_data,
)
from iris_platform.ml.features import parse_features
from iris_platform.ml.inference import Prediction, Predictor, compiled_predictor, training_bounds
from iris_platform.ml.model_store import ModelStore, StoredModel, sha256_hex
from iris_platform.ml.model_types import DEFAULT_MODEL_TYPE as DEFAULT_MODEL_TYPE  # the API documents these
from iris_platform.ml.model_types import HYPERPARAMETERS as HYPERPARAMETERS
from iris_platform.ml.model_types import MODEL_TYPES as MODEL_TYPES
from iris_platform.ml.model_types import model_type_of
from iris_platform.ml.search_space import MAX_TRIALS as MAX_TRIALS
from iris_platform.ml.search_space import SEARCHES as SEARCHES
from iris_platform.ml.search_space import TUNING_METRICS as TUNING_METRICS
from iris_platform.ml.search_space import check_metric
from iris_platform.ml.search_space import trials as search_trials
from iris_platform.ml.training import MAX_CV_FOLDS as MAX_CV_FOLDS
from iris_platform.ml.training import (
    TrainedModel,
    check_folds,
    check_neighbours,
    check_parameters,
    warm_up,
)
from iris_platform.redaction import describe, redact_uri
from iris_platform.timestamps import run_stamp, utc_now
from iris_platform.tracking import names
from iris_platform.tracking.datasets import batch_input, file_digest
from iris_platform.tracking.monitoring import MonitorConfig, drift_alert, drift_metrics, drift_tags
from iris_platform.tracking.records import InferenceRecord, new_feedback, new_record, prediction_time_ms
from iris_platform.tracking.registry import ModelRegistry, describe_version
from iris_platform.tracking.run_reader import RUN_TYPES, RunReader
from iris_platform.tracking.run_writer import RunWriter, run_name
from iris_platform.tracking.store import TrackingStore
from iris_platform.tracking.worker import TrackingWriter, WorkerConfig
from iris_platform.trainer import Trainer, begin_warm_up, end_warm_up, upload_name
from iris_platform.training_process import TrainingProcess, TrainingProcessLost
from iris_platform.tuning import RUN_STATUS as TUNING_RUN_STATUS
from iris_platform.tuning import RUNNING, Trial, Tuning, TuningSteps, run_tuning, tuning_from_runs

log = logging.getLogger(__name__)
_HEX = frozenset("0123456789abcdef")


def _experiment(experiment_name: str | None, run_type: str | None) -> str | None:
    return RUN_TYPES[run_type] if run_type else experiment_name


def _ensure_experiments(store: TrackingStore) -> None:
    try:
        store.ensure_experiments()
    except Exception as exc:  # predictions are still served; their records wait in the journal
        log.warning("MLflow tracking store %s is unreachable: %s", redact_uri(store.tracking_uri), describe(exc))


def prediction_record(predictor: Predictor, features: list[float | str], prediction: Prediction) -> InferenceRecord:
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
    def __init__(self, settings: Settings, training_process: TrainingProcess | None = None):
        """`training_process`: where POST /train trains, if not here."""
        self.settings = settings
        self.training_process = training_process
        self.tracking = TrackingStore(settings.tracking_uri)
        self.runs = RunWriter(self.tracking)
        self.reader = RunReader(self.tracking, query_database_uri=settings.query_database_uri)
        self.store = ModelStore(settings.models_dir)
        self.thresholds = DriftThresholds(settings.drift_psi_warn, settings.drift_psi_alert, settings.drift_p_value)
        self.writer = TrackingWriter(
            WorkerConfig(
                tracking_uri=settings.tracking_uri,
                journal_dir=Path(settings.journal_dir).resolve(),
                window_threshold=settings.writer_window_threshold,
                window_max=settings.writer_window_max,
                monitor=MonitorConfig(
                    registered_model=settings.registered_model,
                    drift_window=settings.drift_window,
                    thresholds=self.thresholds,
                    feedback_window=settings.feedback_window,
                    feedback_min_labels=settings.feedback_min_labels,
                    feedback_alert_drop=settings.feedback_alert_drop,
                    alert_webhook=settings.alert_webhook,
                ),
            ),
            fsync=settings.journal_fsync,
        )
        self.registry = ModelRegistry(self.tracking, settings.registered_model)
        self.alerts = AlertSender(settings.alert_webhook)
        self.predictor: Predictor | None = None
        self._train_lock = threading.Lock()  # trainings sent to the training process, served in order
        # Tunings started by this process, by their parent run's id, and the threads running them.
        self._tunings: dict[str, Tuning] = {}
        self._tuning_threads: dict[str, threading.Thread] = {}
        self._tuning_lock = threading.Lock()
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
        self.trainer = Trainer(
            settings, self.tracking, self.store, self.registry, model_lock=self._model_lock, serve=self._serve
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
                self.predictor = self._load_saved(current, version)
            except Exception as exc:
                log.warning("could not load the current model %s: %s", current, exc)
        self.follower.start()

    def stop(self) -> None:
        self._stop_tunings()
        if self.training_process is not None:
            self.training_process.close()
        self.follower.stop()
        self.writer.stop()
        self.reader.close()
        self.alerts.close()

    def _serve(self, predictor: Predictor) -> None:
        """Make `predictor` the serving model here, and remember it in the folder for the next start."""
        self.store.set_current(Path(predictor.model_path).name, predictor.version)
        self.predictor = predictor
        metrics.set_serving_model(predictor.version, predictor.model_path, predictor.runtime)

    @staticmethod
    def warming_up() -> None:
        """Called before warm_up starts in its thread: trainings wait for it from now on."""
        begin_warm_up()

    def warm_up(self) -> None:
        """Once the server answers: what trains here warms the training path; with a training process,
        only what loading the models it trains needs (scikit-learn, whose classes the model files name)."""
        try:
            if self.training_process is None:
                Trainer.warm_up()
            else:
                warm_up()
        finally:
            end_warm_up()

    def reset_tracking_connections(self) -> None:
        """After a tracking error: a connection opened during the outage may stay broken."""
        self.tracking.reset_connections()

    def _load_saved(self, filename: str, version: str | None) -> Predictor:
        """A model of the models folder, ready to serve as `version`."""
        predictor = self._predictor_for(self.store.load(filename))
        predictor.version = version
        return predictor

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

    def train(self, **request: Any) -> dict[str, Any]:
        """Train as Trainer.train does, with its keywords (the CSV's content and name, the model type, its
        hyperparameters, ...), make the model champion and serve it: in the training process if there is
        one, else here."""
        if self.training_process is None:
            return self.trainer.train(**request)
        with self._train_lock:
            try:
                answer = self.training_process.train(request)
            except TrainingProcessLost as lost:
                if lost.run_id:  # what the process had begun is recorded as failed, not left RUNNING
                    with contextlib.suppress(Exception):  # the store down: the 503 says what matters
                        self.trainer.runs.end(lost.run_id, "FAILED", lost.detail)
                raise
            version = answer["model_version"]
            # Under the model lock: the champion follower, which saw the registry move, waits instead of
            # loading a second copy; what loading freed goes back to the operating system.
            with self._model_lock, releasing_memory():
                if self.predictor is None or self.predictor.version != version:  # else the follower served it
                    # As the registry's champion would be: the saved files, checked again on this onnxruntime.
                    self._serve(self._load_saved(Path(answer["model_path"]).name, version))
        return answer

    # -- tuning ------------------------------------------------------------------------------

    def tune(
        self,
        *,
        model_type: str,
        space: dict[str, Any],
        search: str = "grid",
        n_trials: int | None = None,
        metric: str = "accuracy",
        cv_folds: int = 0,
        test_size: float = 0.2,
        promote: bool = False,
    ) -> dict[str, Any]:
        """Start a tuning of `model_type` over `space` on the bundled Iris data; its progress at once."""
        chosen = model_type_of(model_type)
        check_metric(metric)
        check_parameters(test_size, cv_folds)
        planned = search_trials(chosen, space, search, n_trials, self.settings.random_state)
        data = load_iris_training_data()
        check_folds(data, cv_folds)
        for hyperparameters in planned:
            check_neighbours(data, chosen, hyperparameters, test_size, cv_folds)
        with self._tuning_lock:
            running = [t.run_id for t in self._tunings.values() if not t.ended.is_set()]
            if running:
                raise InputError(
                    f"Tuning {running[0]} is still running in this process: wait for it (GET /tune/{running[0]}) "
                    f"or cancel it (DELETE /tune/{running[0]}) first.",
                    409,
                )
            moment = utc_now()
            tuning = Tuning(
                run_id="",
                model_type=chosen.name,
                search=search,
                metric=metric,
                cv_folds=cv_folds,
                test_size=test_size,
                promote=promote,
                trials=[Trial(i + 1, hyperparameters) for i, hyperparameters in enumerate(planned)],
                started_ms=int(moment.timestamp() * 1000),
            )
            params = {
                names.P_MODEL_TYPE: chosen.estimator_class,
                names.P_SEARCH: search,
                names.P_SEARCH_SPACE: json.dumps(space, sort_keys=True),
                names.P_TUNING_METRIC: tuning.scored_by,
                names.P_N_TRIALS: len(planned),
                names.P_TEST_SIZE: test_size,
                names.P_PROMOTE: promote,
                names.P_DATA_SOURCE: names.DATA_SOURCE_IRIS,
                **({names.P_CV_FOLDS: cv_folds} if cv_folds else {}),
            }
            tags = {names.T_RUN_KIND: names.RUN_KIND_TUNING, names.T_TUNING_STATUS: RUNNING}
            tuning.run_id = self.runs.start(
                names.TRAINING_EXPERIMENT, f"{names.TUNING_RUN_PREFIX}_{run_stamp(moment)}", tags, tuning.started_ms
            )
            try:
                self.runs.log(tuning.run_id, params)
            except BaseException as exc:
                self.runs.end(tuning.run_id, "FAILED", describe(exc))
                raise
            thread = threading.Thread(
                target=run_tuning, args=(tuning, self._tuning_steps(data)), name="iris-tuning", daemon=True
            )
            self._tunings[tuning.run_id] = tuning
            self._tuning_threads[tuning.run_id] = thread
            thread.start()
            return tuning.as_dict()

    def tuning(self, tuning_id: str) -> dict[str, Any]:
        """A tuning's progress: from memory while this process runs it, else as MLflow recorded it."""
        known = self._tunings.get(tuning_id)
        return known.as_dict() if known is not None else tuning_from_runs(*self.reader.tuning_runs(tuning_id)).as_dict()

    def cancel_tuning(self, tuning_id: str) -> dict[str, Any]:
        """Ask a tuning to stop after its current trial: the finished trials stay; nothing is registered."""
        progress = self.tuning(tuning_id)  # 404 for an unknown id
        if progress["status"] not in (RUNNING, "cancelling"):
            raise InputError(f"Tuning {tuning_id} has already ended ({progress['status']}): nothing to cancel.", 409)
        self.runs.set_tags(tuning_id, {names.T_TUNING_CANCEL: "1"})  # seen by whichever process runs it
        known = self._tunings.get(tuning_id)
        if known is not None:
            known.cancel.set()
            return known.as_dict()
        return {**progress, "status": "cancelling"}

    def _tuning_steps(self, data: TrainingData) -> TuningSteps:
        def params_of(tuning: Tuning, trial: Trial) -> dict[str, Any]:
            candidate = tuning.candidate(trial, MODEL_TYPES[tuning.model_type])
            params = self.trainer.training_params(data, candidate, source=names.DATA_SOURCE_IRIS, filename=None)
            return {**params, names.P_TRIAL: trial.number}

        def fit_trial(tuning: Tuning, trial: Trial) -> TrainedModel:
            moment = utc_now()
            tags = {names.T_PARENT_RUN_ID: tuning.run_id, names.T_RUN_KIND: names.RUN_KIND_TRIAL}
            name = f"{names.TRIAL_RUN_PREFIX}_{trial.number}_{run_stamp(moment)}"
            candidate = tuning.candidate(trial, MODEL_TYPES[tuning.model_type])
            with (
                self.trainer.lock,
                releasing_memory(),
                self.runs.run(names.TRAINING_EXPERIMENT, name, tags) as run_id,
            ):
                trial.run_id = run_id
                return self.trainer.fit_logged(run_id, data, params_of(tuning, trial), candidate)

        def publish(tuning: Tuning, trial: Trial, trained: TrainedModel) -> dict[str, Any]:
            assert trial.run_id is not None
            candidate = tuning.candidate(trial, MODEL_TYPES[tuning.model_type])
            with self.trainer.lock:
                return self.trainer.publish(
                    trial.run_id, data, params_of(tuning, trial), candidate, trained, utc_now(), promote=tuning.promote
                )

        def cancel_requested(tuning: Tuning) -> bool:
            try:
                tags = self.tracking.client.get_run(tuning.run_id).data.tags
            except Exception:  # the store is down: the trial that follows fails and says so
                return False
            return tags.get(names.T_TUNING_CANCEL) == "1"

        def log_progress(tuning: Tuning, trial: Trial) -> None:
            assert trial.score is not None and tuning.best is not None
            scores = {names.M_TRIAL_SCORE: trial.score, names.M_BEST_SCORE: tuning.best.score or 0.0}
            self.runs.log(tuning.run_id, metrics=scores, step=trial.number)

        def end(tuning: Tuning) -> None:
            tags = {names.T_TUNING_STATUS: tuning.status}
            if tuning.best is not None and tuning.best.run_id is not None:
                tags[names.T_TUNING_BEST_RUN] = tuning.best.run_id
            if tuning.model_version is not None:
                tags[names.T_TUNING_MODEL_VERSION] = tuning.model_version
            self.runs.set_tags(tuning.run_id, tags)
            self.runs.end(tuning.run_id, TUNING_RUN_STATUS[tuning.status], tuning.error)

        return TuningSteps(fit_trial, publish, cancel_requested, log_progress, end)

    def _stop_tunings(self, wait_s: float = 30.0) -> None:
        """At shutdown: cancel what runs, let the current trial end, so no parent run stays RUNNING."""
        for tuning in list(self._tunings.values()):
            tuning.cancel.set()
        deadline = time.monotonic() + wait_s
        for run_id, thread in list(self._tuning_threads.items()):
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("tuning %s did not stop in time; its run may stay RUNNING", run_id)

    # -- prediction --------------------------------------------------------------------------

    def predict_one(self, values: Mapping[str, Any]) -> dict[str, Any]:
        predictor = self.require_predictor()
        features = parse_features(
            values, predictor.feature_names, predictor.imputes_blanks, predictor.layout.categories
        )
        prediction = predictor.predict_one(features)
        record = prediction_record(predictor, features, prediction)
        self.writer.submit(record)
        metrics.count_predictions(predictor.version, {prediction.class_name: 1})
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
            "unseen_categories": predictor.unseen_categories(features),
        }

    def predict_batch(self, source: BinaryIO, filename: str | None) -> dict[str, Any]:
        predictor = self.require_predictor()
        inline = self.settings.batch_inline_rows
        with tempfile.TemporaryDirectory() as tmp:
            output = Path(tmp) / names.PREDICTIONS_ARTIFACT
            sha256 = file_digest(source)
            streamed = predict_csv(source, filename, predictor, output, keep_rows=inline)
            moment = utc_now()
            report = streamed.drift.report(self.thresholds) if streamed.drift is not None else None
            started = time.perf_counter()
            run_id = self.runs.write_batch_run(
                moment=moment,
                model_path=predictor.model_path,
                model_version=predictor.version,
                input_file=upload_name(filename),
                statistics=streamed.statistics,
                predictions_csv=output,
                inputs=[batch_input(name=upload_name(filename), sha256=sha256, rows=streamed.total)],
                extra_metrics={
                    **(drift_metrics(report) if report else {}),
                    **{names.unseen_metric(f): n for f, n in streamed.unseen_categories.items()},
                }
                or None,
                tags=drift_tags(report, self.thresholds) if report else None,
            )
            metrics.observe_tracking_write("batch", time.perf_counter() - started)
        metrics.count_predictions(predictor.version, streamed.statistics.prediction_distribution)
        if report is not None:
            metrics.set_drift(predictor.version, report.psi, report.drift_detected)
        if report is not None and report.drift_detected:  # recorded on the run; the webhook hears it off this path
            name = run_name(names.BATCH_RUN_PREFIX, moment)
            self.alerts.send(drift_alert(report, run_id=run_id, run_name=name, model_version=predictor.version))
            metrics.count_alert(names.ALERT_DRIFT)
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
            "unseen_categories": streamed.unseen_categories,
            "batch_statistics": streamed.statistics.as_dict(),
            "drift": report.as_dict() if report else None,
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

    def feedback(
        self, *, true_label: str, prediction_id: str | None = None, run_id: str | None = None, row: int | None = None
    ) -> dict[str, Any]:
        """Journal the true label of a prediction (single, by id; batch, by run and row) for the tracking worker."""
        if (prediction_id is None) == (run_id is None) or (run_id is None) != (row is None):
            raise InputError(
                'Name one prediction: send {"prediction_id": ..., "true_label": ...} for a single prediction, or '
                '{"run_id": ..., "row": N, "true_label": ...} for row N (0 is the first) of a batch run.'
            )
        if prediction_id is not None:
            facts = self._single_prediction_facts(prediction_id)
        else:
            assert run_id is not None and row is not None
            facts = self.reader.batch_row(run_id, row)
        label = str(true_label)
        known = [str(c) for c in facts["classes"]]
        if label not in known and names.key_part(label) not in known:
            raise InputError(
                f"true_label '{label[:200]}' is not a class of the model that made this prediction; "
                f"its classes are {known}.",
                422,
            )
        record = new_feedback(
            prediction_id=prediction_id,
            batch_run_id=run_id,
            row=row,
            true_label=label,
            predicted_class=facts["predicted_class"],
            model_version=facts["model_version"],
            model_path=facts["model_path"],
        )
        self.writer.submit(record)
        return {
            "status": "accepted",
            "feedback_id": record["feedback_id"],
            "prediction_id": prediction_id,
            "run_id": run_id,
            "row": row,
            "true_label": label,
            "predicted_class": record["predicted_class"],
            "correct": label == record["predicted_class"],
            "model_version": record["model_version"],
        }

    def _single_prediction_facts(self, prediction_id: str) -> dict[str, Any]:
        """The class a single prediction answered, the model's classes and version, wherever its record is."""
        # The journal first: its copy goes only once MLflow holds the finished run, while a run MLflow
        # lists may still be getting its params.
        pending = self.writer.find_unwritten(prediction_id) if len(prediction_id) == 32 else None
        found: dict[str, Any] = (
            {"record": dict(pending), "run": None} if pending else self.find_prediction(prediction_id)  # 404 if none
        )
        record, run = found.get("record"), found.get("run")
        if run is None:  # still in a journal: the record itself
            assert record is not None
            return {
                "predicted_class": record["class_name"],
                "classes": list(record["probabilities"]),
                "model_version": record.get("model_version"),
                "model_path": record.get("model_path"),
            }
        params, metrics = run["params"], run["metrics"]
        if record is not None:  # a row of a window run's CSV
            classes = [c[len(names.PROB_COLUMN_PREFIX) :] for c in record if c.startswith(names.PROB_COLUMN_PREFIX)]
            predicted = str(record[names.COL_PREDICTED_CLASS])
        else:  # its own single run
            prefix = names.PROBABILITY_PREFIX
            classes = [k[len(prefix) :] for k in metrics if k.startswith(prefix)]
            predicted = params[names.P_PREDICTED_CLASS]
        return {
            "predicted_class": predicted,
            "classes": classes,
            "model_version": params.get(names.P_MODEL_VERSION),
            "model_path": params.get(names.P_MODEL_PATH),
        }

    def monitoring(self, *, model_version: str | None = None, limit: int = 200) -> dict[str, Any]:
        """The monitoring view: the series, the alerts, the thresholds, and the serving model's reference."""
        predictor = self.predictor
        reference = None
        if predictor is not None:
            profile = predictor.profile or {}
            reference = {
                "model_version": predictor.version,
                "feature_names": predictor.feature_names,
                "class_names": predictor.class_names,
                "class_priors": profile.get("class_priors"),
                "test_accuracy": predictor.metadata.metrics.get(names.M_ACCURACY),
                "confidence_mean": (profile.get("confidence") or {}).get("mean"),
            }
        return {
            **self.reader.monitoring(model_version=model_version, limit=limit),
            "thresholds": {
                "psi_warn": self.thresholds.psi_warn,
                "psi_alert": self.thresholds.psi_alert,
                "p_value": self.thresholds.p_value,
                "feedback_alert_drop": self.settings.feedback_alert_drop,
                "feedback_min_labels": self.settings.feedback_min_labels,
                "drift_window": self.settings.drift_window,
            },
            "reference": reference,
        }

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

"""Hyperparameter tuning in the background: a parent run in the training experiment with a child run
per trial (MLflow's nested runs), the best trial's model registered (and promoted if asked).

The trials run one after another in a thread of their own, each under the service's training lock, so
predictions are served meanwhile. Progress is read from memory while the tuning runs here, and from
MLflow otherwise (another worker process, after a restart). A cancellation is a tag on the parent run,
read between trials, so any process can ask for it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlflow.entities import Run

from iris_platform.ml.model_types import ModelType, by_estimator_class
from iris_platform.ml.training import Candidate, TrainedModel
from iris_platform.redaction import describe
from iris_platform.timestamps import iso_from_ms, utc_now
from iris_platform.tracking import names

log = logging.getLogger(__name__)

RUNNING, FINISHED, CANCELLED, FAILED = "running", "finished", "cancelled", "failed"
# The parent run's MLflow status for each ending.
RUN_STATUS = {FINISHED: "FINISHED", CANCELLED: "KILLED", FAILED: "FAILED"}


@dataclass
class Trial:
    number: int  # from 1
    hyperparameters: dict[str, Any]
    run_id: str | None = None
    status: str = "pending"  # pending, running, finished, failed
    score: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "trial": self.number,
            "run_id": self.run_id,
            "status": self.status,
            "hyperparameters": self.hyperparameters,
            "score": self.score,
            "metrics": self.metrics,
            "error": self.error,
        }


@dataclass
class Tuning:
    """One tuning's request and progress."""

    run_id: str  # the parent run's id: the tuning's id
    model_type: str
    search: str
    metric: str  # as asked: accuracy, precision, recall, f1_score
    cv_folds: int
    test_size: float
    promote: bool
    trials: list[Trial]
    started_ms: int
    status: str = RUNNING
    best: Trial | None = None
    model_version: str | None = None
    promoted: bool = False
    error: str | None = None
    finished_ms: int | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    # Set once the parent run has ended in MLflow: until then the tuning is shown running (or cancelling),
    # so "finished" is never answered for a run MLflow still holds RUNNING.
    ended: threading.Event = field(default_factory=threading.Event)

    @property
    def shown_status(self) -> str:
        if self.ended.is_set() and self.status not in (RUNNING, "cancelling"):
            return self.status
        return "cancelling" if self.cancel.is_set() or self.status == "cancelling" else RUNNING

    @property
    def scored_by(self) -> str:
        """The metric trials are ranked by: the cross-validated mean when there are folds."""
        return names.cv_metric(self.metric, "mean") if self.cv_folds else self.metric

    def candidate(self, trial: Trial, model_type: Any) -> Candidate:
        return Candidate(model_type, trial.hyperparameters, self.test_size, self.cv_folds)

    def as_dict(self) -> dict[str, Any]:
        done = [t for t in self.trials if t.status in ("finished", "failed")]
        return {
            "tuning_id": self.run_id,
            "status": self.shown_status,
            "model_type": self.model_type,
            "search": self.search,
            "metric": self.metric,
            "scored_by": self.scored_by,
            "cv_folds": self.cv_folds,
            "n_trials": len(self.trials),
            "trials_done": len(done),
            "best": None if self.best is None else self.best.as_dict(),
            "model_version": self.model_version,
            "promoted": self.promoted,
            "started": iso_from_ms(self.started_ms),
            "finished": None if self.finished_ms is None else iso_from_ms(self.finished_ms),
            "error": self.error,
            "trials": [t.as_dict() for t in self.trials],
        }


@dataclass
class TuningSteps:
    """What a tuning needs from the service: open a trial's child run and fit in it, publish the best."""

    fit_trial: Callable[[Tuning, Trial], TrainedModel]  # sets trial.run_id; the run ends FINISHED or FAILED
    publish: Callable[[Tuning, Trial, TrainedModel], dict[str, Any]]  # registers; promotes if tuning.promote
    cancel_requested: Callable[[Tuning], bool]  # the parent's cancel tag (any process may set it)
    log_progress: Callable[[Tuning, Trial], None]  # trial_score / best_score on the parent
    end: Callable[[Tuning], None]  # the parent's tags and status


def run_tuning(tuning: Tuning, steps: TuningSteps) -> None:
    """The trials in order, then the best one's model; the parent run always ends (never left RUNNING)."""
    best_model: TrainedModel | None = None
    try:
        for trial in tuning.trials:
            if tuning.cancel.is_set() or steps.cancel_requested(tuning):
                tuning.status = CANCELLED
                break
            trial.status = "running"
            try:
                trained = steps.fit_trial(tuning, trial)
            except Exception as exc:  # one trial's failure (a bad combination) does not end the tuning
                trial.status, trial.error = "failed", describe(exc)
                log.warning("tuning %s: trial %d failed: %s", tuning.run_id, trial.number, trial.error)
                continue
            trial.metrics = dict(trained.metrics)
            trial.score = trained.metrics[tuning.scored_by]
            trial.status = "finished"
            if tuning.best is None or trial.score > (tuning.best.score or 0.0):
                tuning.best, best_model = trial, trained
            steps.log_progress(tuning, trial)
        if tuning.status == RUNNING:
            if tuning.best is None or best_model is None:
                tuning.status, tuning.error = FAILED, "every trial failed: see the trials' errors"
            else:
                answer = steps.publish(tuning, tuning.best, best_model)
                tuning.model_version = answer["model_version"]
                tuning.promoted = tuning.promote
                tuning.status = FINISHED
    except Exception as exc:
        tuning.status, tuning.error = FAILED, describe(exc)
        log.exception("tuning %s failed", tuning.run_id)
    finally:
        tuning.finished_ms = int(utc_now().timestamp() * 1000)
        try:
            steps.end(tuning)
        except Exception:
            log.exception("tuning %s: could not end its run", tuning.run_id)
        tuning.ended.set()


def _number(text: str | None, default: float = 0.0) -> float:
    try:
        return float(text) if text is not None else default
    except ValueError:
        return default


def tuning_from_runs(parent: Run, children: list[Run]) -> Tuning:
    """A tuning as MLflow recorded it (run by another process, or before a restart)."""
    params, tags = parent.data.params, parent.data.tags
    model_type = by_estimator_class(params.get(names.P_MODEL_TYPE))
    scored_by = params.get(names.P_TUNING_METRIC, "accuracy")
    cv_folds = int(_number(params.get(names.P_CV_FOLDS)))
    metric = scored_by.removeprefix("cv_").removesuffix("_mean") if cv_folds else scored_by
    status = tags.get(names.T_TUNING_STATUS, RUNNING)
    if status == RUNNING and tags.get(names.T_TUNING_CANCEL) == "1":
        status = "cancelling"
    if status == RUNNING and parent.info.status != "RUNNING":  # its process died: the run was ended for it
        status = FAILED
    if status not in (RUNNING, "cancelling") and parent.info.status == "RUNNING":  # its run is being ended
        status = "cancelling" if tags.get(names.T_TUNING_CANCEL) == "1" else RUNNING
    trials = []
    for child in children:
        number = int(_number(child.data.params.get(names.P_TRIAL)))
        hyperparameters = _typed(model_type, child.data.params)
        state = {"FINISHED": "finished", "RUNNING": "running"}.get(child.info.status, "failed")
        trials.append(
            Trial(
                number,
                hyperparameters,
                run_id=child.info.run_id,
                status=state,
                score=child.data.metrics.get(scored_by),
                metrics=dict(child.data.metrics),
                error=child.data.tags.get(names.T_FAILURE_REASON),
            )
        )
    trials.sort(key=lambda t: t.number)
    best_id = tags.get(names.T_TUNING_BEST_RUN)
    finished = [t for t in trials if t.score is not None]
    best = next((t for t in trials if t.run_id == best_id), None) or (
        max(finished, key=lambda t: t.score or 0.0) if finished else None
    )
    tuning = Tuning(
        run_id=parent.info.run_id,
        model_type=model_type.name if model_type else params.get(names.P_MODEL_TYPE, ""),
        search=params.get(names.P_SEARCH, ""),
        metric=metric,
        cv_folds=cv_folds,
        test_size=_number(params.get(names.P_TEST_SIZE), 0.2),
        promote=params.get(names.P_PROMOTE) == "True",
        trials=trials,
        started_ms=parent.info.start_time,
        status=status,
        best=best,
        model_version=tags.get(names.T_TUNING_MODEL_VERSION),
        error=tags.get(names.T_FAILURE_REASON),
        finished_ms=parent.info.end_time,
    )
    tuning.promoted = tuning.promote and tuning.model_version is not None
    if parent.info.status != "RUNNING":
        tuning.ended.set()
    # Trials not yet started are not in MLflow: n_trials says how many were planned.
    planned = int(_number(params.get(names.P_N_TRIALS), len(trials)))
    tuning.trials += [Trial(n, {}) for n in range(len(trials) + 1, planned + 1)]
    return tuning


def _typed(model_type: ModelType | None, params: dict[str, str]) -> dict[str, Any]:
    """A trial's hyperparameters from its params (text in MLflow), as the model type types them."""
    if model_type is None:
        return {}
    out: dict[str, Any] = {}
    for h in model_type.hyperparameters:
        text = params.get(h.name)
        if text is None:
            continue
        try:
            out[h.name] = None if text == "None" else h.kind(float(text)) if h.kind is int else h.kind(text)
        except ValueError:
            out[h.name] = text
    return out

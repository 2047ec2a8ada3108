"""The record of one single prediction: what the server journals and the tracking worker turns into a run.

Prediction ids are 32 hex digits: the time in milliseconds, then randomness, so ids sort by time
and say when they were made, which is how a window run holding one is found.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Literal, TypedDict, TypeGuard

from iris_platform.timestamps import epoch_ms, utc_now


class InferenceRecord(TypedDict):
    prediction_id: str
    timestamp: str  # ISO 8601, UTC
    time_ms: int
    model_path: str
    model_version: str | None  # absent from records journaled before the registry
    features: dict[str, float | str]  # a text feature: its text
    class_index: int
    class_name: str
    confidence: float
    probabilities: dict[str, float]


def new_prediction_id(moment: datetime) -> str:
    return f"{epoch_ms(moment):012x}{os.urandom(10).hex()}"


def prediction_time_ms(prediction_id: str) -> int | None:
    try:
        return int(prediction_id[:12], 16)
    except ValueError:
        return None


def new_record(
    *,
    model_path: str,
    model_version: str | None,
    features: dict[str, float | str],
    class_index: int,
    class_name: str,
    confidence: float,
    probabilities: dict[str, float],
) -> InferenceRecord:
    """A record stamped now, with a new prediction id."""
    moment = utc_now()
    return InferenceRecord(
        prediction_id=new_prediction_id(moment),
        timestamp=moment.isoformat(),
        time_ms=epoch_ms(moment),
        model_path=model_path,
        model_version=model_version,
        features=features,
        class_index=class_index,
        class_name=class_name,
        confidence=confidence,
        probabilities=probabilities,
    )


FEEDBACK: Literal["feedback"] = "feedback"


class FeedbackRecord(TypedDict):
    """A true label for a prediction (a single one by id, or a batch run's row), journaled as predictions are."""

    kind: Literal["feedback"]
    feedback_id: str  # made as prediction ids are: sorts by time
    timestamp: str
    time_ms: int
    labelled_prediction_id: str | None
    batch_run_id: str | None
    row: int | None
    true_label: str
    predicted_class: str
    model_version: str | None
    model_path: str | None


JournalRecord = InferenceRecord | FeedbackRecord


def is_feedback(record: JournalRecord) -> TypeGuard[FeedbackRecord]:
    return record.get("kind") == FEEDBACK


def new_feedback(
    *,
    prediction_id: str | None,
    batch_run_id: str | None,
    row: int | None,
    true_label: str,
    predicted_class: str,
    model_version: str | None,
    model_path: str | None,
) -> FeedbackRecord:
    moment = utc_now()
    return FeedbackRecord(
        kind=FEEDBACK,
        feedback_id=new_prediction_id(moment),
        timestamp=moment.isoformat(),
        time_ms=epoch_ms(moment),
        labelled_prediction_id=prediction_id,
        batch_run_id=batch_run_id,
        row=row,
        true_label=true_label,
        predicted_class=predicted_class,
        model_version=model_version,
        model_path=model_path,
    )

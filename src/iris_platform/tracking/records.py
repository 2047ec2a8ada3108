"""The record of one single prediction: what the server journals and the tracking worker turns into a run.

Prediction ids are 32 hex digits: the time in milliseconds, then randomness, so ids sort by time
and say when they were made, which is how a window run holding one is found.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import TypedDict

from iris_platform.timestamps import epoch_ms, utc_now


class InferenceRecord(TypedDict):
    prediction_id: str
    timestamp: str  # ISO 8601, UTC
    time_ms: int
    model_path: str
    model_version: str | None  # absent from records journaled before the registry
    features: dict[str, float]
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
    features: dict[str, float],
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

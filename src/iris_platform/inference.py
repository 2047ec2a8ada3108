"""Predictions from the current model: one feature set, or a whole table at once."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from . import tracking_names as names
from .model_store import StoredModel


@dataclass
class Prediction:
    index: int
    class_name: str
    confidence: float
    probabilities: dict[str, float]


@dataclass
class BatchResult:
    indexes: np.ndarray
    confidences: np.ndarray
    probabilities: np.ndarray  # rows x classes


class Predictor:
    """The loaded model, held in memory; swapped whole when another model becomes current."""

    def __init__(self, stored: StoredModel):
        self.estimator = stored.estimator
        self.metadata = stored.metadata
        self.model_path = stored.model_path
        self.feature_names: list[str] = list(stored.metadata["feature_names"])
        self.class_names: list[str] = [str(c) for c in stored.metadata["class_names"]]
        # The estimator saw class indexes; a class absent from its training split has no column.
        self._columns = np.asarray(self.estimator.classes_, dtype=np.int64)
        ranges = stored.metadata.get("feature_ranges") or {}
        self._ranges = {f: ranges[f] for f in self.feature_names if f in ranges}

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        frame = pd.DataFrame(np.asarray(X, dtype=float), columns=self.feature_names)
        raw = self.estimator.predict_proba(frame)
        if len(self._columns) == len(self.class_names):
            return raw
        full = np.zeros((raw.shape[0], len(self.class_names)))
        full[:, self._columns] = raw
        return full

    def predict_one(self, values: list[float]) -> Prediction:
        proba = self.predict_proba(np.asarray([values]))[0]
        index = int(np.argmax(proba))
        return Prediction(
            index=index,
            class_name=self.class_names[index],
            confidence=float(proba[index]),
            probabilities={c: float(p) for c, p in zip(self.class_names, proba)},
        )

    def predict_batch(self, X: np.ndarray) -> BatchResult:
        proba = self.predict_proba(X)
        indexes = np.argmax(proba, axis=1)
        return BatchResult(indexes=indexes, confidences=proba[np.arange(len(indexes)), indexes], probabilities=proba)

    def out_of_range(self, values: list[float]) -> list[str]:
        """Features outside the range seen in training: served, but worth a second look."""
        flagged = []
        for name, value in zip(self.feature_names, values):
            bounds = self._ranges.get(name)
            if bounds and not (bounds[0] <= value <= bounds[1]):
                flagged.append(name)
        return flagged


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def run_stamp(moment: datetime) -> str:
    """The `<timestamp>` part of run names and model file names."""
    return moment.strftime("%Y%m%d_%H%M%S_%f")


def new_prediction_id() -> str:
    return uuid.uuid4().hex


def inference_record(predictor: Predictor, values: list[float], prediction: Prediction) -> dict[str, Any]:
    """What the tracking writer turns into a `single_prediction_<timestamp>` run."""
    moment = utc_now()
    return {
        "prediction_id": new_prediction_id(),
        "timestamp": moment.isoformat(),
        "time_ms": int(moment.timestamp() * 1000),
        "model_path": predictor.model_path,
        "features": dict(zip(predictor.feature_names, values)),
        "class_index": prediction.index,
        "class_name": prediction.class_name,
        "confidence": prediction.confidence,
        "probabilities": prediction.probabilities,
    }


def batch_statistics(result: BatchResult, class_names: list[str]) -> dict[str, Any]:
    total = len(result.indexes)
    counts = np.bincount(result.indexes, minlength=len(class_names))
    return {
        "total_samples": total,
        "avg_confidence": float(result.confidences.mean()),
        "min_confidence": float(result.confidences.min()),
        "max_confidence": float(result.confidences.max()),
        "unique_classes_predicted": int(np.count_nonzero(counts)),
        "prediction_distribution": {c: int(n) for c, n in zip(class_names, counts)},
        "prediction_percentages": {c: 100.0 * int(n) / total for c, n in zip(class_names, counts)},
    }


def predictions_table(frame: pd.DataFrame, result: BatchResult, class_names: list[str]) -> pd.DataFrame:
    """The original columns, then the predicted class, its confidence and every class probability."""
    out = frame.copy()
    out[names.COL_PREDICTED_CLASS] = np.asarray(class_names, dtype=object)[result.indexes]
    out[names.COL_CONFIDENCE] = result.confidences
    for i, class_name in enumerate(class_names):
        out[names.probability_column(class_name)] = result.probabilities[:, i]
    return out

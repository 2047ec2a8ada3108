"""Predictions from the current model: one feature set, or a whole table at once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from iris_platform.ml.compiled_model import CompiledModel, near_ties
from iris_platform.ml.model_store import StoredModel

# scikit-learn's trees compare features as float32 and refuse a value beyond its range (1e308 is a
# finite float64): such a value is answered as the largest float32 of its sign, which every
# threshold is below, exactly as onnxruntime answers its float32 infinity. It is still flagged.
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _tree_range(X: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(X, dtype=float), -_FLOAT32_MAX, _FLOAT32_MAX)


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
    """The loaded model, held in memory; swapped whole when another model becomes current.

    With a compiled (ONNX) model that passed its parity check, probabilities come from
    onnxruntime; rows where two classes are within a rounding error of a tie are answered by
    scikit-learn, so the class always equals scikit-learn's.
    """

    def __init__(self, stored: StoredModel, compiled: CompiledModel | None = None):
        self.estimator = stored.estimator
        self.metadata = stored.metadata
        self.model_path = stored.model_path
        self.compiled = compiled
        self.feature_names: list[str] = list(stored.metadata["feature_names"])
        self.class_names: list[str] = [str(c) for c in stored.metadata["class_names"]]
        # The estimator saw class indexes; a class absent from its training split has no column.
        self._columns = np.asarray(self.estimator.classes_, dtype=np.int64)
        ranges = stored.metadata.get("feature_ranges") or {}
        self._ranges = {f: ranges[f] for f in self.feature_names if f in ranges}

    @property
    def runtime(self) -> str:
        return "onnxruntime" if self.compiled is not None else "scikit-learn"

    def sklearn_proba(self, X: np.ndarray) -> np.ndarray:
        frame = pd.DataFrame(_tree_range(X), columns=self.feature_names)
        raw = self.estimator.predict_proba(frame)
        if len(self._columns) == len(self.class_names):
            return raw
        full = np.zeros((raw.shape[0], len(self.class_names)))
        full[:, self._columns] = raw
        return full

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        X = _tree_range(X)
        if self.compiled is None:
            return self.sklearn_proba(X)
        proba = self.compiled.predict_proba(X)
        ties = near_ties(proba)
        if ties.any():
            proba[ties] = self.sklearn_proba(np.asarray(X)[ties])
        return proba

    def predict_one(self, values: list[float]) -> Prediction:
        proba = self.predict_proba(np.asarray([values]))[0]
        index = int(np.argmax(proba))
        return Prediction(
            index=index,
            class_name=self.class_names[index],
            confidence=float(proba[index]),
            probabilities={c: float(p) for c, p in zip(self.class_names, proba, strict=False)},
        )

    def predict_batch(self, X: np.ndarray) -> BatchResult:
        proba = self.predict_proba(X)
        indexes = np.argmax(proba, axis=1)
        return BatchResult(indexes=indexes, confidences=proba[np.arange(len(indexes)), indexes], probabilities=proba)

    def out_of_range(self, values: list[float]) -> list[str]:
        """Features outside the range seen in training: served, but worth a second look."""
        flagged = []
        for name, value in zip(self.feature_names, values, strict=False):
            bounds = self._ranges.get(name)
            if bounds and not (bounds[0] <= value <= bounds[1]):
                flagged.append(name)
        return flagged


def utc_now() -> datetime:
    return datetime.now(UTC)


def run_stamp(moment: datetime) -> str:
    """The `<timestamp>` part of run names and model file names."""
    return moment.strftime("%Y%m%d_%H%M%S_%f")


def new_prediction_id(moment: datetime) -> str:
    """32 hex digits: the time in milliseconds, then randomness; ids sort by time and say when."""
    return f"{int(moment.timestamp() * 1000):012x}{os.urandom(10).hex()}"


def prediction_time_ms(prediction_id: str) -> int | None:
    try:
        return int(prediction_id[:12], 16)
    except ValueError:
        return None


def inference_record(predictor: Predictor, values: list[float], prediction: Prediction) -> dict[str, Any]:
    """What the tracking writer turns into a `single_prediction_<timestamp>` run."""
    moment = utc_now()
    return {
        "prediction_id": new_prediction_id(moment),
        "timestamp": moment.isoformat(),
        "time_ms": int(moment.timestamp() * 1000),
        "model_path": predictor.model_path,
        "features": dict(zip(predictor.feature_names, values, strict=False)),
        "class_index": prediction.index,
        "class_name": prediction.class_name,
        "confidence": prediction.confidence,
        "probabilities": prediction.probabilities,
    }


class StatisticsAccumulator:
    """Batch statistics summed over chunks: counts per class and confidence bounds."""

    def __init__(self, class_names: list[str]):
        self.class_names = class_names
        self.counts = np.zeros(len(class_names), dtype=np.int64)
        self.total = 0
        self.confidence_sum = 0.0
        self.confidence_min = float("inf")
        self.confidence_max = float("-inf")

    def add(self, result: BatchResult) -> None:
        if len(result.indexes) == 0:
            return
        self.counts += np.bincount(result.indexes, minlength=len(self.class_names))
        self.total += len(result.indexes)
        self.confidence_sum += float(result.confidences.sum())
        self.confidence_min = min(self.confidence_min, float(result.confidences.min()))
        self.confidence_max = max(self.confidence_max, float(result.confidences.max()))

    def result(self) -> dict[str, Any]:
        total = max(self.total, 1)
        return {
            "total_samples": self.total,
            "avg_confidence": self.confidence_sum / total,
            "min_confidence": self.confidence_min,
            "max_confidence": self.confidence_max,
            "unique_classes_predicted": int(np.count_nonzero(self.counts)),
            "prediction_distribution": {c: int(n) for c, n in zip(self.class_names, self.counts, strict=False)},
            "prediction_percentages": {
                c: 100.0 * int(n) / total for c, n in zip(self.class_names, self.counts, strict=False)
            },
        }


def prediction_rows(
    result: BatchResult, class_names: list[str], offset: int = 0, limit: int | None = None
) -> list[dict[str, Any]]:
    """The API's per-row answer for the first `limit` rows of a batch: class, confidence, probabilities."""
    indexes = result.indexes if limit is None else result.indexes[:limit]
    return [
        {
            "sample_index": offset + i,
            "prediction": int(index),
            "class_name": class_names[index],
            "confidence": float(result.confidences[i]),
            "probabilities": dict(zip(class_names, map(float, result.probabilities[i]), strict=False)),
        }
        for i, index in enumerate(indexes)
    ]

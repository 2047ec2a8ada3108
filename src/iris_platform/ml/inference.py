"""Predictions from the current model: one feature set, or a whole table at once."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from iris_platform.batch_statistics import BatchResult
from iris_platform.ml.compiled_model import CompiledModel, check_parity, near_ties, parity_inputs
from iris_platform.ml.features import FLOAT32_MAX
from iris_platform.ml.metadata import preprocessing_steps
from iris_platform.ml.model_store import StoredModel
from iris_platform.ml.model_types import float32_features
from iris_platform.ml.text_features import BLANK, FeatureLayout
from iris_platform.tracking import names

log = logging.getLogger(__name__)


def _tree_range(X: np.ndarray) -> np.ndarray:
    # scikit-learn's trees compare features as float32 and refuse a value beyond its range (1e308 is
    # a finite float64): such a value is answered as the largest float32 of its sign, which every
    # threshold is below, exactly as onnxruntime answers its float32 infinity. It is still flagged.
    return np.clip(np.asarray(X, dtype=float), -FLOAT32_MAX, FLOAT32_MAX)


@dataclass
class Prediction:
    index: int
    class_name: str
    confidence: float
    probabilities: dict[str, float]


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
        # The registered version this model is, once the registry has named it (set before serving).
        self.version: str | None = None
        self.compiled = compiled
        self.feature_names: list[str] = list(stored.metadata.feature_names)
        # Which features are text, and their categories: the matrix holds their codes.
        self.layout = FeatureLayout(self.feature_names, stored.metadata.text_categories)
        # Whether the model fills in a blank feature itself (its first step imputes): read by every /predict.
        self.imputes_blanks = names.PREPROCESSING_MEDIAN_IMPUTATION in preprocessing_steps(
            stored.metadata.preprocessing
        )
        self.class_names: list[str] = list(stored.metadata.class_names)
        # The training data's profile, which drift is measured against (None for older models).
        self.profile = stored.profile
        # The estimator saw class indexes; a class absent from its training split has no column.
        self._columns = np.asarray(self.estimator.classes_, dtype=np.int64)
        ranges = stored.metadata.feature_ranges
        self._ranges = {f: ranges[f] for f in self.feature_names if f in ranges}

    @property
    def runtime(self) -> str:
        return "onnxruntime" if self.compiled is not None else "scikit-learn"

    def sklearn_proba(self, X: np.ndarray) -> np.ndarray:
        X = _tree_range(X)
        frame = self.layout.frame(X) if self.layout.has_text else pd.DataFrame(X, columns=self.feature_names)
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

    def row(self, values: list[float | str]) -> np.ndarray:
        """One feature set (numbers, text for text features) as the matrix's row: text as its code."""
        return np.array(
            [
                [
                    self.layout.code(f, v) if isinstance(v, str) else v
                    for f, v in zip(self.feature_names, values, strict=True)
                ]
            ],
            dtype=float,
        )

    def unseen_categories(self, values: list[float | str]) -> dict[str, str]:
        """The text features whose text the training never had (ignored by the model), with that text."""
        return {
            f: v
            for f, v in zip(self.feature_names, values, strict=True)
            if isinstance(v, str) and v != BLANK and self.layout.code(f, v) < 0
        }

    def predict_one(self, values: list[float | str]) -> Prediction:
        proba = self.predict_proba(self.row(values))[0]
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

    def out_of_range(self, values: list[float | str]) -> list[str]:
        """Numeric features outside the range seen in training: served, but worth a second look."""
        flagged = []
        for name, value in zip(self.feature_names, values, strict=False):
            bounds = self._ranges.get(name)
            # A blank (NaN) is filled in by the model with a training median: inside the range.
            if isinstance(value, str) or not bounds or math.isnan(value):
                continue
            if not (bounds[0] <= value <= bounds[1]):
                flagged.append(name)
        return flagged


def compiled_predictor(stored: StoredModel, X_check: np.ndarray) -> tuple[Predictor, dict[str, Any]]:
    """A predictor on the compiled path if its ONNX form matches scikit-learn on X_check and around it,
    with the parity report (or why the model is served by scikit-learn)."""
    reference = Predictor(stored)
    if stored.onnx_bytes is None:
        return reference, {"runtime": "scikit-learn", "reason": "no ONNX form"}
    try:
        layout = reference.layout
        compiled = CompiledModel(stored.onnx_bytes, float32_features(stored.metadata.model_type), layout)
        report = check_parity(compiled, reference.sklearn_proba, parity_inputs(X_check, layout))
    except Exception as exc:
        log.warning("compiled model unusable, serving with scikit-learn: %s", exc)
        return reference, {"runtime": "scikit-learn", "reason": f"{type(exc).__name__}: {exc}"[:300]}
    if not report.ok:
        log.warning("compiled model differs from scikit-learn (%s), serving with scikit-learn", report)
        return reference, {**report.as_dict(), "runtime": "scikit-learn"}
    return Predictor(stored, compiled), report.as_dict()


def training_bounds(stored: StoredModel) -> np.ndarray:
    """Rows at the corners of the training range: where a saved model's compiled form is checked again."""
    ranges, categories = stored.metadata.feature_ranges, stored.metadata.text_categories
    corners = [
        [0.0, float(len(categories[f]) - 1)] if f in categories else ranges.get(f, [0.0, 1.0])
        for f in stored.metadata.feature_names
    ]
    return np.array(corners, dtype=float).T


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

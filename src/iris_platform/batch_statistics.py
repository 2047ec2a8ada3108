"""Statistics of many predictions (a batch file, a window of single predictions), summed chunk by chunk.

Inference computes them and tracking records them; neither needs the other to do so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class BatchResult:
    """Predictions of many rows: class index, confidence and every class probability per row."""

    indexes: np.ndarray
    confidences: np.ndarray
    probabilities: np.ndarray  # rows x classes


@dataclass(frozen=True)
class BatchStatistics:
    total_samples: int
    avg_confidence: float
    min_confidence: float
    max_confidence: float
    unique_classes_predicted: int
    prediction_distribution: dict[str, int]
    prediction_percentages: dict[str, float]

    def as_dict(self) -> dict[str, object]:
        """The API's `batch_statistics` object."""
        return {
            "total_samples": self.total_samples,
            "avg_confidence": self.avg_confidence,
            "min_confidence": self.min_confidence,
            "max_confidence": self.max_confidence,
            "unique_classes_predicted": self.unique_classes_predicted,
            "prediction_distribution": dict(self.prediction_distribution),
            "prediction_percentages": dict(self.prediction_percentages),
        }


class StatisticsAccumulator:
    """Counts per class and confidence bounds, summed over chunks."""

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

    def add_totals(
        self, counts: Sequence[int], confidence_sum: float, confidence_min: float, confidence_max: float
    ) -> None:
        """Add rows summed elsewhere (a Spark aggregation): per class their number, then their confidences."""
        self.counts += np.asarray(counts, dtype=np.int64)
        self.total += int(sum(counts))
        self.confidence_sum += confidence_sum
        self.confidence_min = min(self.confidence_min, confidence_min)
        self.confidence_max = max(self.confidence_max, confidence_max)

    def result(self) -> BatchStatistics:
        total = max(self.total, 1)
        counts = {c: int(n) for c, n in zip(self.class_names, self.counts, strict=True)}
        return BatchStatistics(
            total_samples=self.total,
            avg_confidence=self.confidence_sum / total,
            min_confidence=self.confidence_min,
            max_confidence=self.confidence_max,
            unique_classes_predicted=int(np.count_nonzero(self.counts)),
            prediction_distribution=counts,
            prediction_percentages={c: 100.0 * n / total for c, n in counts.items()},
        )

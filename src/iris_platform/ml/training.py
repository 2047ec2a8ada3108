"""Fitting a classifier and measuring it on a held-out split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from iris_platform.errors import InputError
from iris_platform.ml.data import TrainingData
from iris_platform.tracking import names

MODEL_TYPE = "RandomForestClassifier"
MAX_ESTIMATORS = 1000


def warm_up() -> None:
    """Import scikit-learn (about a second) after start-up rather than before it: a server in an
    empty directory has no model to load and can answer at once; the first training then finds it loaded."""
    import sklearn.ensemble  # noqa: F401
    import sklearn.metrics  # noqa: F401
    import sklearn.model_selection  # noqa: F401


@dataclass
class TrainedModel:
    estimator: Any  # a fitted sklearn.ensemble.RandomForestClassifier
    metrics: dict[str, float]
    classification_report: dict[str, Any]
    confusion_matrix: list[list[int]]
    feature_ranges: dict[str, list[float]]
    n_train: int
    n_test: int


def check_parameters(n_estimators: int, test_size: float) -> None:
    if not 1 <= n_estimators <= MAX_ESTIMATORS:
        raise InputError(f"n_estimators must be between 1 and {MAX_ESTIMATORS}, got {n_estimators}.")
    if not 0.0 < test_size < 1.0:
        raise InputError(f"test_size must be a fraction between 0 and 1 (exclusive), got {test_size}.")


def _split(data: TrainingData, test_size: float, random_state: int) -> list[Any]:
    from sklearn.model_selection import train_test_split

    n_classes = len(data.class_names)
    n_test = int(np.ceil(test_size * len(data.y)))
    counts = np.bincount(data.y, minlength=n_classes)
    # Stratify when every class can appear on both sides; tiny files fall back to a plain split.
    stratify = data.y if counts.min() >= 2 and n_test >= n_classes and len(data.y) - n_test >= n_classes else None
    try:
        return train_test_split(data.X, data.y, test_size=test_size, random_state=random_state, stratify=stratify)
    except ValueError as exc:
        raise InputError(
            f"Cannot split {len(data.y)} rows with test_size={test_size} ({exc}): "
            "upload more rows or choose another test_size."
        ) from exc


def train_model(data: TrainingData, *, n_estimators: int, test_size: float, random_state: int) -> TrainedModel:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import (
        accuracy_score,
        classification_report,
        confusion_matrix,
        f1_score,
        precision_score,
        recall_score,
    )

    check_parameters(n_estimators, test_size)
    if len(data.y) < len(data.class_names) + 1:
        raise InputError(
            f"The data has {len(data.y)} rows for {len(data.class_names)} classes: "
            "it needs more rows than classes to train and test."
        )
    X_train, X_test, y_train, y_test = _split(data, test_size, random_state)
    estimator = RandomForestClassifier(n_estimators=n_estimators, random_state=random_state)
    estimator.fit(X_train, y_train)
    predicted = estimator.predict(X_test)

    labels = list(range(len(data.class_names)))
    metrics = {
        names.M_ACCURACY: float(accuracy_score(y_test, predicted)),
        names.M_PRECISION: float(
            precision_score(y_test, predicted, labels=labels, average="weighted", zero_division=0)
        ),
        names.M_RECALL: float(recall_score(y_test, predicted, labels=labels, average="weighted", zero_division=0)),
        names.M_F1: float(f1_score(y_test, predicted, labels=labels, average="weighted", zero_division=0)),
    }
    report = classification_report(
        y_test, predicted, labels=labels, target_names=data.class_names, output_dict=True, zero_division=0
    )
    matrix = confusion_matrix(y_test, predicted, labels=labels).tolist()
    ranges = {f: [float(data.X[f].min()), float(data.X[f].max())] for f in data.feature_names}
    return TrainedModel(estimator, metrics, report, matrix, ranges, len(y_train), len(y_test))

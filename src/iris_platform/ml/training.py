"""Fitting a classifier and measuring it on a held-out split (and, if asked, by cross-validation)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from iris_platform.drift import reference_profile
from iris_platform.errors import InputError
from iris_platform.ml.data import TrainingData
from iris_platform.ml.evaluation import Evidence, evidence
from iris_platform.ml.model_types import MODEL_TYPES, ModelType
from iris_platform.ml.text_features import FeatureLayout
from iris_platform.tracking import names

MAX_CV_FOLDS = 20


def warm_up() -> None:
    """Import scikit-learn (about a second) after start-up rather than before it: a server in an
    empty directory has no model to load and can answer at once; the first training then finds it loaded."""
    import sklearn.compose  # noqa: F401
    import sklearn.ensemble  # noqa: F401
    import sklearn.impute  # noqa: F401
    import sklearn.metrics  # noqa: F401
    import sklearn.model_selection  # noqa: F401
    import sklearn.pipeline  # noqa: F401
    import sklearn.preprocessing  # noqa: F401

    for model_type in MODEL_TYPES.values():
        __import__(model_type.module)


@dataclass(frozen=True)
class Candidate:
    """What to train: a model type with its (checked) hyperparameters, and how to measure it."""

    model_type: ModelType
    hyperparameters: dict[str, Any]
    test_size: float
    cv_folds: int = 0


@dataclass
class TrainedModel:
    estimator: Any  # a fitted scikit-learn classifier, or a Pipeline of its preprocessing and one
    metrics: dict[str, float]  # held-out, then cv_<metric>_mean and _std when cross-validated
    classification_report: dict[str, Any]
    confusion_matrix: list[list[int]]
    evidence: Evidence  # the artifacts that show how the model does, class by class
    feature_ranges: dict[str, list[float]]
    n_train: int
    n_test: int
    # The training data's profile that drift is measured against (drift.reference_profile).
    profile: dict[str, Any]
    # Per text feature, the categories its one-hot encoder learned (in its order): what codes index.
    text_categories: dict[str, list[str]]


def check_parameters(test_size: float, cv_folds: int = 0) -> None:
    if not 0.0 < test_size < 1.0:
        raise InputError(f"test_size must be a fraction between 0 and 1 (exclusive), got {test_size}.")
    if cv_folds != 0 and not 2 <= cv_folds <= MAX_CV_FOLDS:
        raise InputError(f"cv_folds must be 0 (no cross-validation) or from 2 to {MAX_CV_FOLDS}, got {cv_folds}.")


def check_folds(data: TrainingData, cv_folds: int) -> None:
    """Stratified folds need every class in every fold: no more folds than the smallest class has rows."""
    if cv_folds == 0:
        return
    counts = np.bincount(data.y, minlength=len(data.class_names))
    smallest = int(counts.min())
    if cv_folds > smallest:
        rarest = data.class_names[int(counts.argmin())]
        raise InputError(
            f"cv_folds={cv_folds} is larger than the smallest class ('{rarest}', {smallest} rows): "
            f"choose cv_folds from 2 to {smallest}, or 0 for no cross-validation."
        )


def check_neighbours(
    data: TrainingData, model_type: ModelType, hyperparameters: dict[str, Any], test_size: float, cv_folds: int = 0
) -> None:
    """A nearest-neighbours model votes among n_neighbors training rows: no more than the training split
    (and, when cross-validated, each fold's training rows) holds, which scikit-learn finds only at predict time.
    """
    wanted = hyperparameters.get("n_neighbors")
    if wanted is None:
        return
    n_rows = len(data.y)
    rows, where = n_rows - int(np.ceil(test_size * n_rows)), f"the training split of test_size={test_size}"
    if cv_folds:
        # StratifiedKFold's test folds differ in size by one row at most: the largest holds ceil(n / folds).
        fold_rows = n_rows - int(np.ceil(n_rows / cv_folds))
        if fold_rows < rows:
            rows, where = fold_rows, f"the smallest training fold of cv_folds={cv_folds}"
    if wanted > rows:
        raise InputError(
            f"n_neighbors for model_type '{model_type.name}' must be at most the rows it is trained on, "
            f"{max(rows, 0)} in {where}, got {wanted}: choose a smaller n_neighbors or test_size, or fewer cv_folds."
        )


def build_estimator(
    model_type: ModelType, hyperparameters: dict[str, Any], random_state: int, data: TrainingData
) -> Any:
    """The model to fit: the classifier, behind its preprocessing when the table needs some (the saved
    Pipeline does the same at prediction): a median imputer when the table has blank cells, a one-hot
    encoder for text features (a text unseen at training is ignored: all its inputs 0)."""
    classifier = model_type.build(hyperparameters, random_state)
    if not data.imputed_cells and not data.text_features:
        return classifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    # keep_empty_features: a column blank in every row of a split keeps its place (as 0), so the model's
    # inputs stay the table's features.
    imputer = SimpleImputer(strategy="median", keep_empty_features=True)
    if not data.text_features:
        return Pipeline([("impute", imputer), ("classifier", classifier)])
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    numeric = data.numeric_features
    steps: list[tuple[str, Any, list[str]]] = []
    if numeric:
        steps.append(("numeric", imputer if data.imputed_cells else "passthrough", numeric))
    steps.append(("text", OneHotEncoder(handle_unknown="ignore", sparse_output=False), data.text_features))
    return Pipeline([("encode", ColumnTransformer(steps)), ("classifier", classifier)])


def text_categories(estimator: Any, data: TrainingData) -> dict[str, list[str]]:
    """The categories a fitted model's one-hot encoder learned, per text feature."""
    if not data.text_features:
        return {}
    encoder = estimator.named_steps["encode"].named_transformers_["text"]
    return {f: [str(c) for c in cats] for f, cats in zip(data.text_features, encoder.categories_, strict=True)}


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


def _scores(y_true: Any, predicted: Any, labels: list[int]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    weighted = {"labels": labels, "average": "weighted", "zero_division": 0}
    return {
        names.M_ACCURACY: float(accuracy_score(y_true, predicted)),
        names.M_PRECISION: float(precision_score(y_true, predicted, **weighted)),
        names.M_RECALL: float(recall_score(y_true, predicted, **weighted)),
        names.M_F1: float(f1_score(y_true, predicted, **weighted)),
    }


def cross_validated(
    model_type: ModelType, hyperparameters: dict[str, Any], data: TrainingData, cv_folds: int, random_state: int
) -> dict[str, float]:
    """cv_<metric>_mean and cv_<metric>_std over stratified folds of the whole table."""
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold

    labels = list(range(len(data.class_names)))
    prototype = build_estimator(model_type, hyperparameters, random_state, data)
    folds = StratifiedKFold(n_splits=cv_folds, shuffle=True, random_state=random_state)
    per_fold: list[dict[str, float]] = []
    for train_rows, test_rows in folds.split(data.X, data.y):
        fold = clone(prototype).fit(data.X.iloc[train_rows], data.y[train_rows])
        per_fold.append(_scores(data.y[test_rows], fold.predict(data.X.iloc[test_rows]), labels))
    out: dict[str, float] = {}
    for metric in names.TRAINING_METRICS:
        values = np.array([f[metric] for f in per_fold])
        out[names.cv_metric(metric, "mean")] = float(values.mean())
        out[names.cv_metric(metric, "std")] = float(values.std())
    return out


def train_model(
    data: TrainingData,
    *,
    model_type: ModelType,
    hyperparameters: dict[str, Any],
    test_size: float,
    random_state: int,
    cv_folds: int = 0,
) -> TrainedModel:
    from sklearn.metrics import classification_report, confusion_matrix

    check_parameters(test_size, cv_folds)
    if len(data.y) < len(data.class_names) + 1:
        raise InputError(
            f"The data has {len(data.y)} rows for {len(data.class_names)} classes: "
            "it needs more rows than classes to train and test."
        )
    check_folds(data, cv_folds)
    check_neighbours(data, model_type, hyperparameters, test_size, cv_folds)
    X_train, X_test, y_train, y_test = _split(data, test_size, random_state)
    estimator = build_estimator(model_type, hyperparameters, random_state, data)
    try:
        estimator.fit(X_train, y_train)
    except ValueError as exc:  # e.g. a training split of one class, which most models refuse
        raise InputError(
            f"model_type '{model_type.name}' cannot be trained on this data ({exc}): upload more rows of each "
            "class, choose another test_size or another model_type."
        ) from exc
    test_probabilities = _full_proba(estimator, X_test, len(data.class_names))
    predicted = test_probabilities.argmax(axis=1)

    labels = list(range(len(data.class_names)))
    metrics = _scores(y_test, predicted, labels)
    if cv_folds:
        metrics.update(cross_validated(model_type, hyperparameters, data, cv_folds, random_state))
    report = classification_report(
        y_test, predicted, labels=labels, target_names=data.class_names, output_dict=True, zero_division=0
    )
    matrix = confusion_matrix(y_test, predicted, labels=labels).tolist()
    categories = text_categories(estimator, data)
    layout = FeatureLayout(data.feature_names, categories)
    ranges = {f: [float(data.X[f].min()), float(data.X[f].max())] for f in data.numeric_features}
    train_codes = layout.encode(X_train)
    profile = reference_profile(
        {f: _filled(train_codes[:, i], data.X[f], layout) for i, f in enumerate(data.feature_names)},
        data.class_names,
        np.asarray(y_train),
        test_probabilities.max(axis=1),
        random_state=random_state,
        categories=categories,
    )
    shown = evidence(np.asarray(y_test), test_probabilities, data.class_names, report, matrix)
    metrics.update(shown.metrics)
    return TrainedModel(
        estimator, metrics, report, matrix, shown, ranges, len(y_train), len(y_test), profile, categories
    )


def _filled(split: np.ndarray, whole: pd.Series, layout: FeatureLayout) -> np.ndarray:
    """The split's filled cells of a numeric feature (the whole column's if the split has none): blanks have
    no bin. A text feature's codes as they are: a blank is a category."""
    if layout.is_text(str(whole.name)):
        return split
    values = split[~np.isnan(split)]
    return values if len(values) else whole.dropna().to_numpy(dtype=float)


def _full_proba(estimator: Any, X: Any, n_classes: int) -> np.ndarray:
    """Probabilities with a column per class, also for a class the training split lacked."""
    raw = estimator.predict_proba(X)
    columns = np.asarray(estimator.classes_, dtype=np.int64)
    if len(columns) == n_classes:
        return np.asarray(raw)
    full = np.zeros((raw.shape[0], n_classes))
    full[:, columns] = raw
    return full

"""A trained model's metadata: what training wrote beside the model file, and what serving reads back.

The JSON file on disk keeps its keys (users and the dashboard read them); this dataclass is how the
code passes it around. Metadata read from disk is answered exactly as it was read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from iris_platform.errors import InputError
from iris_platform.tracking import names


def preprocessing_of(*, imputes: bool, one_hot: bool) -> str:
    """The `preprocessing` of a model: its steps before the classifier joined by "+", or "none"."""
    steps = [names.PREPROCESSING_MEDIAN_IMPUTATION] * imputes + [names.PREPROCESSING_ONE_HOT_ENCODING] * one_hot
    return names.PREPROCESSING_SEPARATOR.join(steps) or names.PREPROCESSING_NONE


def preprocessing_steps(preprocessing: str | None) -> list[str]:
    """The steps a `preprocessing` names (none for "none", and for older metadata without one)."""
    given = (preprocessing or names.PREPROCESSING_NONE).split(names.PREPROCESSING_SEPARATOR)
    return [step for step in given if step != names.PREPROCESSING_NONE]


@dataclass
class ModelMetadata:
    feature_names: list[str]
    class_names: list[str]
    target_column: str | None = None
    data_source: str | None = None
    input_file: str | None = None
    # The file's columns left out of the features as row identifiers (absent from older metadata: none).
    dropped_columns: list[str] = field(default_factory=list)
    # What the saved model does before its classifier: "median_imputation" fills blank cells (at
    # prediction too), "none" (and older metadata) takes only filled-in features.
    preprocessing: str = names.PREPROCESSING_NONE
    # Per text feature, the categories its one-hot encoder learned, in its order (absent: no text feature).
    text_categories: dict[str, list[str]] = field(default_factory=dict)
    model_type: str | None = None  # the scikit-learn class, as the param model_type
    n_estimators: int | None = None  # for the models that have trees or stages (as older metadata has it)
    test_size: float | None = None
    # The model type's hyperparameters as trained (absent from older metadata: a forest of n_estimators).
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    cv_folds: int = 0
    n_train: int | None = None
    n_test: int | None = None
    training_timestamp: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    # Per feature, [min, max] seen in training: served beyond them, but flagged.
    feature_ranges: dict[str, list[float]] = field(default_factory=dict)
    run_id: str | None = None
    mlflow_model_uri: str | None = None
    # The compiled path's parity report, or why the model is served by scikit-learn.
    compiled: dict[str, Any] | None = None
    # Written by the model store: the files and their SHA-256, checked before anything is unpickled.
    model_file: str | None = None
    sha256: str | None = None
    onnx_file: str | None = None
    onnx_sha256: str | None = None
    profile_file: str | None = None
    profile_sha256: str | None = None
    # The object as read from disk (None for metadata training has just made).
    source: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    # Absent rather than null until set: the compiled report, and the files the model store adds.
    _ABSENT_WHEN_NONE = frozenset(
        {"compiled", "model_file", "sha256", "onnx_file", "onnx_sha256", "profile_file", "profile_sha256"}
    )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written on disk and answered by the API."""
        if self.source is not None:
            return dict(self.source)
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "source" or (f.name in self._ABSENT_WHEN_NONE and value is None):
                continue
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], label: str) -> ModelMetadata:
        """Read back a metadata object; refuse one this platform's training cannot have written."""
        lacking = [k for k in ("feature_names", "class_names") if not isinstance(data.get(k), list)]
        if lacking:
            raise InputError(
                f"The metadata of '{label}' lacks {lacking}: it was not written by this platform's training, "
                "so the model is refused and was not unpickled.",
                422,
            )
        known = {f.name for f in dataclasses.fields(cls)} - {"source"}
        values = {k: v for k, v in data.items() if k in known}
        values["feature_names"] = [str(f) for f in data["feature_names"]]
        values["class_names"] = [str(c) for c in data["class_names"]]
        values["metrics"] = dict(data.get("metrics") or {})
        values["feature_ranges"] = dict(data.get("feature_ranges") or {})
        values["hyperparameters"] = dict(data.get("hyperparameters") or {})
        categories = data.get("text_categories")
        values["text_categories"] = (
            {str(f): [str(c) for c in cats] for f, cats in categories.items() if isinstance(cats, list)}
            if isinstance(categories, dict)
            else {}
        )
        dropped = data.get("dropped_columns")
        values["dropped_columns"] = [str(c) for c in dropped] if isinstance(dropped, list) else []
        return cls(**values, source=dict(data))

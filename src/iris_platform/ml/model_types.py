"""The classifiers this platform trains: their names in the API, their scikit-learn classes, and the
hyperparameters each takes, with the bounds a request is checked against.

One table, so the API's schema, the checks, the logged params and the dashboard's form agree.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from iris_platform.errors import InputError

DEFAULT_MODEL_TYPE = "random_forest"


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    kind: type  # int, float or str
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # the bound itself is refused (a learning rate of 0)
    choices: tuple[str, ...] = ()
    nullable: bool = False  # None has a meaning (no depth limit)

    def allowed(self) -> str:
        """The allowed values, in the words a refusal uses."""
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        kind = "an integer" if self.kind is int else "a number"
        if self.low is not None and self.high is not None:
            if self.low_open:
                bounds = f"above {_show(self.low)} and at most {_show(self.high)}"
            else:
                bounds = f"between {_show(self.low)} and {_show(self.high)}"
        elif self.low is not None:
            bounds = f"{'above' if self.low_open else 'at least'} {_show(self.low)}"
        else:
            bounds = ""
        return f"{kind} {bounds}".strip() + (" or null (no limit)" if self.nullable else "")

    def schema(self) -> dict[str, Any]:
        """The JSON Schema keywords of its bounds, for the API's documentation."""
        if self.choices:
            return {"enum": list(self.choices)}
        out: dict[str, Any] = {}
        if self.low is not None:
            out["exclusiveMinimum" if self.low_open else "minimum"] = self.low
        if self.high is not None:
            out["maximum"] = self.high
        return out

    def check(self, model_type: str, value: Any) -> Any:
        """The value if it is allowed, else an InputError naming the field and the allowed values."""
        if value is None and self.nullable:
            return None
        refused = InputError(
            f"{self.name} for model_type '{model_type}' must be {self.allowed()}, got {_given(value)}."
        )
        if self.choices:
            if not isinstance(value, str) or value not in self.choices:
                raise refused
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise refused
        if self.kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise refused
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise refused
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            raise refused
        if self.high is not None and value > self.high:
            raise refused
        return value


def _show(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else repr(number)


def _given(value: Any) -> str:
    return "null" if value is None else repr(value)[:40]


MAX_ESTIMATORS = 1000
_TREES = Hyperparameter("n_estimators", int, 100, "Trees in the ensemble", 1, MAX_ESTIMATORS)
_BOOSTING_STAGES = Hyperparameter("n_estimators", int, 100, "Boosting stages", 1, MAX_ESTIMATORS)
_MAX_DEPTH = Hyperparameter("max_depth", int, None, "Deepest a tree may grow (null: no limit)", 1, 100, nullable=True)
_MIN_SAMPLES_LEAF = Hyperparameter("min_samples_leaf", int, 1, "Fewest training rows in a leaf", 1, 10_000)
_LEARNING_RATE = Hyperparameter("learning_rate", float, 0.1, "Shrinks each stage's contribution", 0, 1, low_open=True)
_C = Hyperparameter("C", float, 1.0, "Inverse regularisation strength", 0, 1e6, low_open=True)


@dataclass(frozen=True)
class ModelType:
    name: str  # as the API and the dashboard name it
    estimator_class: str  # the scikit-learn class, logged as the param model_type (the seed's value)
    module: str
    hyperparameters: tuple[Hyperparameter, ...]
    fixed: Mapping[str, Any] = field(default_factory=dict)  # always set, never asked for
    takes_random_state: bool = True
    calibrated: bool = False  # probabilities from a calibration of its decision function
    # scikit-learn's decision trees compare features as float32 (onnxruntime's tree ensembles too), so
    # the compiled path rounds inputs the same way; other models compute in float64.
    float32_features: bool = False

    def hyperparameter(self, name: str) -> Hyperparameter | None:
        return next((h for h in self.hyperparameters if h.name == name), None)

    def build(self, hyperparameters: Mapping[str, Any], random_state: int) -> Any:
        cls = getattr(importlib.import_module(self.module), self.estimator_class)
        extra = {"random_state": random_state} if self.takes_random_state else {}
        estimator = cls(**hyperparameters, **self.fixed, **extra)
        if not self.calibrated:
            return estimator
        from sklearn.calibration import CalibratedClassifierCV

        # Platt scaling on out-of-fold scores, as SVC(probability=True) did before scikit-learn 1.9
        # deprecated it; one model refitted on all rows (ensemble=False) keeps serving fast.
        return CalibratedClassifierCV(estimator, method="sigmoid", ensemble=False)


MODEL_TYPES: dict[str, ModelType] = {
    t.name: t
    for t in (
        ModelType(
            "random_forest",
            "RandomForestClassifier",
            "sklearn.ensemble",
            (_TREES, _MAX_DEPTH, _MIN_SAMPLES_LEAF),
            float32_features=True,
        ),
        ModelType(
            "extra_trees",
            "ExtraTreesClassifier",
            "sklearn.ensemble",
            (_TREES, _MAX_DEPTH, _MIN_SAMPLES_LEAF),
            float32_features=True,
        ),
        ModelType(
            "hist_gradient_boosting",
            "HistGradientBoostingClassifier",
            "sklearn.ensemble",
            (
                Hyperparameter("max_iter", int, 100, "Boosting iterations", 1, MAX_ESTIMATORS),
                _LEARNING_RATE,
                Hyperparameter("max_leaf_nodes", int, 31, "Most leaves in a tree", 2, 1000),
                _MAX_DEPTH,
            ),  # its trees compare the raw float64 values with float64 thresholds
        ),
        ModelType(
            "gradient_boosting",
            "GradientBoostingClassifier",
            "sklearn.ensemble",
            (
                _BOOSTING_STAGES,
                _LEARNING_RATE,
                Hyperparameter("max_depth", int, 3, "Deepest a tree may grow", 1, 100),
            ),
            float32_features=True,
        ),
        ModelType(
            "logistic_regression",
            "LogisticRegression",
            "sklearn.linear_model",
            (_C, Hyperparameter("max_iter", int, 1000, "Solver iterations", 1, 100_000)),
        ),
        ModelType(
            "svc",
            "SVC",
            "sklearn.svm",
            (
                _C,
                Hyperparameter("kernel", str, "rbf", "Kernel", choices=("rbf", "linear", "poly", "sigmoid")),
                Hyperparameter("gamma", str, "scale", "Kernel coefficient", choices=("scale", "auto")),
            ),
            calibrated=True,  # probabilities, for confidences
        ),
        ModelType(
            "knn",
            "KNeighborsClassifier",
            "sklearn.neighbors",
            (
                Hyperparameter("n_neighbors", int, 5, "Neighbours that vote", 1, 1000),
                Hyperparameter("weights", str, "uniform", "How neighbours vote", choices=("uniform", "distance")),
            ),
            takes_random_state=False,
        ),
    )
}

# Every hyperparameter some model type takes, by name (the same name means the same thing).
HYPERPARAMETERS: dict[str, Hyperparameter] = {}
for _type in MODEL_TYPES.values():
    for _h in _type.hyperparameters:
        HYPERPARAMETERS.setdefault(_h.name, _h)


def model_type_of(name: str) -> ModelType:
    try:
        return MODEL_TYPES[name]
    except KeyError:
        raise InputError(
            f"model_type must be one of {', '.join(repr(n) for n in MODEL_TYPES)}, got {_given(name)}."
        ) from None


def by_estimator_class(estimator_class: str | None) -> ModelType | None:
    """The model type of a saved model's metadata (its class name), if this platform knows it."""
    return next((t for t in MODEL_TYPES.values() if t.estimator_class == estimator_class), None)


def float32_features(estimator_class: str | None) -> bool:
    """Whether the compiled path rounds inputs to float32; a model older than the choice was a forest."""
    known = by_estimator_class(estimator_class)
    return True if known is None else known.float32_features


def resolve_hyperparameters(model_type: ModelType, given: Mapping[str, Any]) -> dict[str, Any]:
    """The model's hyperparameters: those given, checked, and the defaults for the rest.

    A hyperparameter of another model type is refused rather than silently ignored.
    """
    check_names(model_type, given)
    return {
        h.name: h.check(model_type.name, given[h.name]) if h.name in given else h.default
        for h in model_type.hyperparameters
    }


def check_names(model_type: ModelType, given: Iterable[str]) -> None:
    """Refuse a hyperparameter the model type does not take, naming those it does."""
    foreign = [name for name in given if model_type.hyperparameter(name) is None]
    if foreign:
        takes = ", ".join(h.name for h in model_type.hyperparameters)
        raise InputError(
            f"{', '.join(foreign)} {'does' if len(foreign) == 1 else 'do'} not apply to model_type "
            f"'{model_type.name}', which takes {takes}: leave {'it' if len(foreign) == 1 else 'them'} out "
            "or choose another model_type."
        )

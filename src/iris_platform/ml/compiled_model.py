"""The compiled serving path: the trained model converted to ONNX and run by onnxruntime.

scikit-learn spends ~10 ms per single-row `predict_proba` on a 100-tree forest in Python overhead;
onnxruntime does the same arithmetic in ~10 us. The conversion is used only after it has matched
scikit-learn on the training data and on random inputs around it; any model that cannot be
converted, or does not match, is served by scikit-learn instead.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from iris_platform.ml.text_features import UNSEEN, FeatureLayout

log = logging.getLogger(__name__)

# Probabilities must equal scikit-learn's to this tolerance (the API promises 1e-5).
PARITY_TOLERANCE = 1e-6
# Where the top two probabilities are closer than this, float rounding could flip the class,
# so those rows are answered by scikit-learn itself.
TIE_MARGIN = 1e-6
RANDOM_ROWS = 5000


def to_tree_input(X: np.ndarray) -> np.ndarray:
    """scikit-learn trees compare float32 features; round the same way, then feed as float64."""
    return np.asarray(X, dtype=np.float32).astype(np.float64)


def _initial_types(layout: FeatureLayout, tensor_type: Any) -> list[tuple[str, Any]]:
    """One input "X" of every feature; for a table with text, one input per column (by its name), as
    the model's ColumnTransformer selects them."""
    if not layout.has_text:
        return [("X", tensor_type([None, len(layout.feature_names)]))]
    from skl2onnx.common.data_types import StringTensorType

    return [
        (f, StringTensorType([None, 1]) if layout.is_text(f) else tensor_type([None, 1])) for f in layout.feature_names
    ]


def convert(estimator: Any, layout: FeatureLayout) -> bytes | None:
    """The estimator as ONNX bytes (probabilities as a plain tensor), or None if it cannot be converted.

    Float64 inputs first; some of skl2onnx's converters (extra trees, boosting) only make a graph
    onnxruntime accepts with float32 inputs, which is how their trees compare features anyway.
    """
    try:
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
    except ImportError as exc:
        log.warning("skl2onnx is not importable, serving with scikit-learn: %s", exc)
        return None
    failures = []
    for tensor_type in (DoubleTensorType, FloatTensorType):
        try:
            with warnings.catch_warnings():  # skl2onnx reads attributes scikit-learn has deprecated (SVC's probA_)
                warnings.simplefilter("ignore", FutureWarning)
                model = to_onnx(
                    estimator,
                    initial_types=_initial_types(layout, tensor_type),
                    options={id(_classifier_of(estimator)): {"zipmap": False}},
                ).SerializeToString()
            _session(model, 1)  # onnxruntime must accept the graph, not only skl2onnx make it
            return model
        except Exception as exc:  # any converter gap means: try the next input type, then scikit-learn
            failures.append(f"{tensor_type.__name__}: {str(exc)[:300]}")
    log.warning("ONNX conversion failed, serving with scikit-learn: %s", "; ".join(failures))
    return None


def _classifier_of(estimator: Any) -> Any:
    """The classifier itself: a Pipeline's last step (its probabilities are the graph's output)."""
    steps = getattr(estimator, "steps", None)
    return steps[-1][1] if steps else estimator


def _session(onnx_bytes: bytes, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


class CompiledModel:
    """An onnxruntime session per use: one thread for single rows, all cores for batches.

    `float32_features`: the model's scikit-learn form compares features as float32 (decision trees),
    so inputs are rounded the same way first; other models get them as they are. `layout`: a model of
    a table with text takes a column per input, its text features as text (X holds their codes).
    """

    def __init__(self, onnx_bytes: bytes, float32_features: bool = True, layout: FeatureLayout | None = None):
        self.float32_features = float32_features
        self._single = _session(onnx_bytes, 1)
        self._batch = _session(onnx_bytes, 0)  # 0: onnxruntime picks one thread per core
        self._output = self._single.get_outputs()[1].name
        self._layout = layout if layout is not None and layout.has_text else None
        # The graph's numeric input type: float64, or float32 where only that converted (see convert).
        numeric = [i.type for i in self._single.get_inputs() if i.type != "tensor(string)"]
        self._dtype = np.float32 if numeric and numeric[0] == "tensor(float)" else np.float64

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        X = to_tree_input(X) if self.float32_features else np.asarray(X, dtype=np.float64)
        session = self._single if len(X) <= 64 else self._batch
        if self._layout is not None:
            feeds = self._layout.onnx_feeds(X, self._dtype)
        else:
            feeds = {"X": X.astype(self._dtype, copy=False)}
        proba = session.run([self._output], feeds)[0]
        # A float32 sum of trees' votes can end a rounding error past 1 (1.0000001): no probability does.
        return np.clip(np.asarray(proba, dtype=np.float64), 0.0, 1.0)


@dataclass
class ParityReport:
    ok: bool
    max_abs_diff: float
    rows_checked: int
    class_mismatches: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "runtime": "onnxruntime",
            "parity_ok": self.ok,
            "max_abs_diff": self.max_abs_diff,
            "rows_checked": self.rows_checked,
            "class_mismatches": self.class_mismatches,
        }


def parity_inputs(X_train: np.ndarray, layout: FeatureLayout | None = None, seed: int = 0) -> np.ndarray:
    """The training rows plus random rows spread over (and beyond) the training range; a text feature's
    random codes are its categories and unseen texts."""
    X_train = np.asarray(X_train, dtype=float)
    low, high = np.nanmin(X_train, axis=0), np.nanmax(X_train, axis=0)  # blanks: imputed by the model
    span = np.maximum(high - low, 1.0)
    rng = np.random.default_rng(seed)
    random_rows = rng.uniform(low - span, high + span, size=(RANDOM_ROWS, X_train.shape[1]))
    if layout is not None:
        for i, feature in layout.text_positions.items():
            random_rows[:, i] = rng.integers(UNSEEN, len(layout.categories[feature]), size=RANDOM_ROWS)
    return np.vstack([X_train, random_rows])


def check_parity(
    compiled: CompiledModel, reference_proba: Callable[[np.ndarray], np.ndarray], X: np.ndarray
) -> ParityReport:
    """Compare the compiled model with `reference_proba` (scikit-learn's) on X."""
    expected = reference_proba(X)
    got = compiled.predict_proba(X)
    if got.shape != expected.shape:
        return ParityReport(False, float("inf"), len(X), len(X))
    diff = float(np.abs(got - expected).max())
    differs = np.argmax(got, axis=1) != np.argmax(expected, axis=1)
    # A near-tie is re-answered by scikit-learn at serving time, so it is not a mismatch here.
    mismatches = int(np.count_nonzero(differs & ~near_ties(got)))
    return ParityReport(diff <= PARITY_TOLERANCE and mismatches == 0, diff, len(X), mismatches)


def near_ties(proba: np.ndarray) -> np.ndarray:
    """Rows whose best and second-best probabilities are within TIE_MARGIN."""
    if proba.shape[1] < 2:
        return np.zeros(len(proba), dtype=bool)
    top2 = np.partition(proba, -2, axis=1)[:, -2:]
    return (top2[:, 1] - top2[:, 0]) < TIE_MARGIN

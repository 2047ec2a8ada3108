"""Text features: their categories, and the codes that stand for them in a feature matrix.

The serving path works on one float matrix per request or batch block, a column per feature. A text
feature's column holds codes: the index of the text among the categories the model's one-hot encoder
learned (in its order), or UNSEEN for a text the training split never had. The model itself takes
the text: `frame` and `onnx_feeds` turn codes back into it, and an unseen text becomes one the encoder
ignores, as it ignores the unseen text itself (handle_unknown="ignore").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from iris_platform.drift import UNSEEN_CODE

UNSEEN = UNSEEN_CODE  # the code drift counts in its own bin
# What an unseen code turns back into: no CSV cell or JSON string of this platform holds a NUL.
_UNSEEN_TEXT = "\x00"
# A blank text cell is the category "" (learned like any other, when the training file had blanks).
BLANK = ""


class FeatureLayout:
    """The model's features in order, and the categories of those that are text."""

    def __init__(self, feature_names: Sequence[str], categories: Mapping[str, Sequence[str]] | None = None):
        self.feature_names = list(feature_names)
        self.categories = {f: list(c) for f, c in (categories or {}).items() if f in self.feature_names}
        self.text_positions = {i: f for i, f in enumerate(self.feature_names) if f in self.categories}
        self._lookup = {f: {c: i for i, c in enumerate(cats)} for f, cats in self.categories.items()}
        # Per text feature, its categories then the unseen text: codes index it (UNSEEN is the last).
        self._texts = {f: np.array([*cats, _UNSEEN_TEXT], dtype=object) for f, cats in self.categories.items()}

    @property
    def has_text(self) -> bool:
        return bool(self.categories)

    def is_text(self, feature: str) -> bool:
        return feature in self.categories

    def code(self, feature: str, text: str) -> int:
        return self._lookup[feature].get(text, UNSEEN)

    def codes(self, feature: str, texts: Any) -> np.ndarray:
        """The codes of a column of texts (stripped already)."""
        lookup = self._lookup[feature]
        return np.fromiter((lookup.get(t, UNSEEN) for t in texts), dtype=float, count=len(texts))

    def texts(self, feature: str, codes: np.ndarray) -> np.ndarray:
        return self._texts[feature][np.asarray(codes, dtype=np.int64)]

    def frame(self, X: np.ndarray) -> pd.DataFrame:
        """The rows as the saved scikit-learn model takes them: numbers, and text for text features."""
        frame = pd.DataFrame(X, columns=self.feature_names)
        for i, feature in self.text_positions.items():
            frame[feature] = self.texts(feature, X[:, i])
        return frame

    def onnx_feeds(self, X: np.ndarray, dtype: Any) -> dict[str, np.ndarray]:
        """The rows as the compiled model of a table with text takes them: one input per column."""
        return {
            f: (self.texts(f, X[:, i]) if i in self.text_positions else X[:, i].astype(dtype)).reshape(-1, 1)
            for i, f in enumerate(self.feature_names)
        }

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """A training table (numbers, and text for text features) as the serving path's matrix."""
        columns = [
            self.codes(f, frame[f].tolist()) if f in self.categories else frame[f].to_numpy(dtype=float)
            for f in self.feature_names
        ]
        return np.column_stack(columns) if columns else np.empty((len(frame), 0))

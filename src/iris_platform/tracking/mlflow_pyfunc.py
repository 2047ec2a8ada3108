"""The MLflow model of a training, as code: a pyfunc answering class names and probabilities, as /predict does.

MLflow logs this file itself as the model's code ("models from code", `mlflow.models.set_model`) and
runs it wherever the model is loaded: `mlflow models serve`, `mlflow.pyfunc.load_model`,
`mlflow.pyfunc.spark_udf`, on machines where the platform is not installed. So it is standalone: it
imports only mlflow, numpy and pandas (and scikit-learn and skops through `mlflow.sklearn`), never
`iris_platform`, and nothing of it is pickled. Its two artifact keys repeat names in
`tracking/names.py` (a test checks they agree); every other name, the output columns included, comes
from the model's `columns` artifact, written at training from `names.py`.

Artifacts of the model:
- `estimator`: the fitted scikit-learn forest as an `mlflow.sklearn` model in the skops format, with
  the types skops may trust recorded beside it, so loading it runs no pickle;
- `columns`: a JSON object: `feature_names` (the input columns, in the estimator's order),
  `class_names` (by class index), and the output columns `predicted_class`, `confidence` and
  `probabilities` (one per class, in class order).

`predict` takes a table of the feature columns (by the platform's normalised names; floats, and text
for the `text_features` the Pipeline one-hot encodes) and
answers a pandas DataFrame, one row per input row: the class name, its probability, and the
probability of every class, the columns of the platform's batch predictions CSV.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel, PythonModelContext

# The artifact keys (tracking/names.py: MLFLOW_ESTIMATOR_ARTIFACT, MLFLOW_COLUMNS_ARTIFACT).
ESTIMATOR_ARTIFACT = "estimator"
COLUMNS_ARTIFACT = "columns"

# scikit-learn's trees compare features as float32 and refuse a finite float64 beyond its range; the
# platform answers such a value as the largest float32 of its sign, and so does this model.
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class IrisClassifier(PythonModel):
    """The forest with its feature and class names; `predict` answers class names, not indexes."""

    def load_context(self, context: PythonModelContext) -> None:
        import mlflow.sklearn

        self.estimator = mlflow.sklearn.load_model(context.artifacts[ESTIMATOR_ARTIFACT])
        columns = json.loads(Path(context.artifacts[COLUMNS_ARTIFACT]).read_text(encoding="utf-8"))
        self.feature_names: list[str] = list(columns["feature_names"])
        self.class_names: list[str] = list(columns["class_names"])
        self.class_column: str = columns["predicted_class"]
        self.confidence_column: str = columns["confidence"]
        self.probability_columns: list[str] = list(columns["probabilities"])
        self.imputes_blanks: bool = bool(columns.get("imputes_blanks", False))  # absent in older models
        self.text_features: list[str] = list(columns.get("text_features", []))  # absent in older models
        # The estimator saw class indexes; a class absent from its training split has no column.
        self._present = np.asarray(self.estimator.classes_, dtype=np.int64)
        self._names = np.asarray(self.class_names, dtype=object)

    def _with_text(self, model_input: Any) -> pd.DataFrame:
        """A table with text features as the Pipeline takes it: numbers as floats, text stripped (a blank
        is "", refused unless the model imputes)."""
        if not isinstance(model_input, pd.DataFrame):
            rows = np.asarray(model_input, dtype=object).reshape(-1, len(self.feature_names))
            model_input = pd.DataFrame(rows, columns=self.feature_names)
        frame = model_input[self.feature_names].copy()
        for name in self.text_features:
            column = frame[name].astype(object)
            text = column.where(column.notna(), "").astype(str).str.strip()
            if not self.imputes_blanks and (text == "").any():
                blank = np.flatnonzero(text.to_numpy() == "")
                raise MlflowException.invalid_parameter_value(
                    f"Feature '{name}' must be a non-blank text: row(s) {blank[:5].tolist()} are blank."
                )
            frame[name] = text
        numeric = [f for f in self.feature_names if f not in self.text_features]
        if numeric:
            values = frame[numeric].to_numpy(dtype=float)
            self._check_finite(values, numeric)
            frame[numeric] = np.clip(values, -_FLOAT32_MAX, _FLOAT32_MAX)
        return frame

    def _check_finite(self, values: np.ndarray, feature_names: list[str]) -> None:
        # NaN is a blank cell: the model's imputer fills it in, if it has one; infinity never.
        finite = ~np.isinf(values) if self.imputes_blanks else np.isfinite(values)
        if not finite.all():  # as the platform's own checks
            rows, columns = np.nonzero(~finite)
            bad = sorted({feature_names[c] for c in columns})
            what = "infinity" if self.imputes_blanks else "NaN or infinity"
            raise MlflowException.invalid_parameter_value(
                f"Features {bad} must be finite numbers: row(s) {rows[:5].tolist()} hold {what}."
            )

    def predict_proba(self, model_input: Any) -> np.ndarray:
        """Every class's probability for each row (rows by class index), as the platform computes them."""
        raw = self.estimator.predict_proba(self._table(model_input))
        if len(self._present) == len(self.class_names):
            return np.asarray(raw, dtype=float)
        proba = np.zeros((raw.shape[0], len(self.class_names)))
        proba[:, self._present] = raw
        return proba

    def _table(self, model_input: Any) -> pd.DataFrame:
        """The rows as the estimator takes them, checked as the platform checks them."""
        if self.text_features:
            return self._with_text(model_input)
        frame = None
        if isinstance(model_input, pd.DataFrame):
            # The signature has already put the columns in feature order: then the table goes as it is.
            same = list(model_input.columns) == self.feature_names
            frame = model_input if same else model_input[self.feature_names]
            values = frame.to_numpy(dtype=float)
            if not all(pd.api.types.is_float_dtype(t) for t in frame.dtypes):
                frame = None
        else:  # an array or a list of rows, columns in feature order
            values = np.asarray(model_input, dtype=float).reshape(-1, len(self.feature_names))
        self._check_finite(values, self.feature_names)
        if frame is None or np.nanmax(np.abs(values), initial=0.0) > _FLOAT32_MAX:
            values = np.clip(values, -_FLOAT32_MAX, _FLOAT32_MAX)
            frame = pd.DataFrame(values, columns=self.feature_names)
        return frame

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        proba = self.predict_proba(model_input)
        best = np.argmax(proba, axis=1)
        columns = {self.class_column: self._names[best], self.confidence_column: proba[np.arange(len(best)), best]}
        columns.update(zip(self.probability_columns, proba.T, strict=True))
        return pd.DataFrame(columns)


set_model(IrisClassifier())

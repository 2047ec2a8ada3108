"""The logged MLflow model answers as /predict does: class names, confidence, every class's probability.

The model is a pyfunc from code (src/iris_platform/tracking/mlflow_pyfunc.py): MLflow runs that file
wherever the model is loaded, so it must stand alone. The platform serves through its compiled (ONNX)
path, whose probabilities equal scikit-learn's within the parity tolerance: classes are compared
exactly, probabilities within 1e-6.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from mlflow.pyfunc import PythonModelContext

from iris_platform.tracking import names
from iris_platform.tracking.run_writer import skops_trusted_types
from tests.helpers.api import FAST_TREES, predict, train
from tests.helpers.data import (
    IRIS_CLASSES,
    IRIS_FEATURES,
    SETOSA,
    SKLEARN_HEADERS,
    VERSICOLOR,
    VIRGINICA,
    csv_bytes,
    iris_frame,
)
from tests.helpers.platform import open_platform

MODEL_CODE = Path(__file__).resolve().parents[1] / "src" / "iris_platform" / "tracking" / "mlflow_pyfunc.py"
CHAMPION_URI = "models:/iris_classifier@champion"
TOLERANCE = 1e-6
# What the model file may import: the standard library, and what the model's stated requirements hold.
STANDALONE_IMPORTS = {"mlflow", "numpy", "pandas", "sklearn", "skops"}


def random_flowers(n: int, seed: int = 12) -> list[dict[str, float]]:
    """`n` rows drawn across the Iris data's range: near class borders too, where forests disagree."""
    frame = iris_frame()[IRIS_FEATURES]
    rng = np.random.default_rng(seed)
    values = rng.uniform(frame.min().to_numpy(), frame.max().to_numpy(), size=(n, len(IRIS_FEATURES)))
    return [dict(zip(IRIS_FEATURES, map(float, row), strict=True)) for row in values]


def output_columns(class_names: list[str]) -> list[str]:
    return [names.COL_PREDICTED_CLASS, names.COL_CONFIDENCE, *[names.probability_column(c) for c in class_names]]


def assert_same_answers(rows: list[dict[str, Any]], ours: list[dict[str, Any]]) -> None:
    """The MLflow model's rows (records of its DataFrame) against /predict's answers, row by row."""
    assert len(rows) == len(ours)
    for i, (row, answer) in enumerate(zip(rows, ours, strict=True)):
        where = f"row {i}: MLflow {row} vs /predict {answer}"
        assert list(row) == output_columns(list(answer["probabilities"])), where
        assert row[names.COL_PREDICTED_CLASS] == answer["class_name"], where
        assert abs(row[names.COL_CONFIDENCE] - answer["confidence"]) <= TOLERANCE, where
        for class_name, probability in answer["probabilities"].items():
            assert abs(row[names.probability_column(class_name)] - probability) <= TOLERANCE, where


def load_champion(tracking_uri: str) -> Any:
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        return mlflow.pyfunc.load_model(CHAMPION_URI)
    finally:
        mlflow.set_tracking_uri(previous)


# -- the model file stands alone ---------------------------------------------------------------------


def test_the_model_file_imports_nothing_of_the_platform():
    tree = ast.parse(MODEL_CODE.read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    foreign = {m for m in imported if m.split(".")[0] not in STANDALONE_IMPORTS | sys.stdlib_module_names}
    assert not foreign, f"{MODEL_CODE.name} must stand alone, but imports {sorted(foreign)}"


def test_the_model_file_uses_the_artifact_names_of_names_py():
    tree = ast.parse(MODEL_CODE.read_text())
    constants = {
        t.id: n.value.value
        for n in tree.body
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    assert constants["ESTIMATOR_ARTIFACT"] == names.MLFLOW_ESTIMATOR_ARTIFACT
    assert constants["COLUMNS_ARTIFACT"] == names.MLFLOW_COLUMNS_ARTIFACT


def test_a_missing_class_and_extreme_values_are_answered_as_the_platform_does(tmp_path):
    # A forest that never saw class 1 (a class absent from its training split) has no column for it;
    # the model answers it with probability 0. A value beyond float32 is taken as float32's largest.
    from sklearn.ensemble import RandomForestClassifier

    X = pd.DataFrame([[1.0, 1.0], [1.1, 0.9], [5.0, 5.0], [5.2, 4.8]], columns=["a", "b"])
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, [0, 0, 2, 2])
    mlflow.sklearn.save_model(
        forest, tmp_path / "estimator", serialization_format="skops", skops_trusted_types=skops_trusted_types(forest)
    )
    columns = {
        "feature_names": ["a", "b"],
        "class_names": ["low", "middle", "high"],
        "predicted_class": names.COL_PREDICTED_CLASS,
        "confidence": names.COL_CONFIDENCE,
        "probabilities": [names.probability_column(c) for c in ["low", "middle", "high"]],
    }
    (tmp_path / "columns.json").write_text(json.dumps(columns))
    spec = importlib.util.spec_from_file_location("iris_model_under_test", MODEL_CODE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.IrisClassifier()
    artifacts = {
        names.MLFLOW_ESTIMATOR_ARTIFACT: str(tmp_path / "estimator"),
        names.MLFLOW_COLUMNS_ARTIFACT: str(tmp_path / "columns.json"),
    }
    model.load_context(PythonModelContext(artifacts=artifacts, model_config=None))

    answer = model.predict(None, pd.DataFrame({"b": [1.0, 5.0, 1e308], "a": [1.0, 5.0, 1e308]}))
    assert list(answer.columns) == output_columns(["low", "middle", "high"])
    assert list(answer[names.COL_PREDICTED_CLASS]) == ["low", "high", "high"]
    assert list(answer["prob_middle"]) == [0.0, 0.0, 0.0]
    assert np.allclose(answer[["prob_low", "prob_middle", "prob_high"]].sum(axis=1), 1.0)
    # NaN and infinity are refused, as /predict refuses them, naming the feature.
    with pytest.raises(mlflow.exceptions.MlflowException, match=r"\['b'\].*finite"):
        model.predict(None, pd.DataFrame({"a": [1.0, 2.0], "b": [1.0, float("nan")]}))


# -- the registered champion, loaded in process, answers as /predict -----------------------------------


def test_the_champion_loaded_with_pyfunc_answers_as_predict(tmp_path):
    with open_platform(tmp_path) as platform:
        trained = train(platform.client, n_estimators=FAST_TREES)
        flowers = [SETOSA, VERSICOLOR, VIRGINICA, *random_flowers(30)]
        ours = [predict(platform.client, flower) for flower in flowers]
        assert {a["model_version"] for a in ours} == {trained["model_version"]}
        model = load_champion(platform.settings.tracking_uri)

    logged_uri = trained["model_metadata"]["mlflow_model_uri"]
    assert platform.mlflow.get_model_version("iris_classifier", trained["model_version"]).source == logged_uri
    assert f"models:/{model.metadata.model_id}" == logged_uri
    signature = model.metadata.signature
    assert signature.inputs.input_names() == IRIS_FEATURES
    assert [c.type.name for c in signature.inputs.inputs] == ["double"] * len(IRIS_FEATURES)
    assert signature.outputs.input_names() == output_columns(IRIS_CLASSES)

    answer = model.predict(pd.DataFrame(flowers, columns=IRIS_FEATURES))
    assert isinstance(answer, pd.DataFrame)
    assert [r[names.COL_PREDICTED_CLASS] for r in answer.to_dict("records")[:3]] == IRIS_CLASSES
    assert_same_answers(answer.to_dict("records"), ours)
    # The signature refuses a table without one of the features, naming it.
    with pytest.raises(mlflow.exceptions.MlflowException, match="petal_width"):
        model.predict(pd.DataFrame([SETOSA]).drop(columns=["petal_width"]))


def test_an_uploaded_files_classes_and_columns_name_the_answer(tmp_path):
    # Kaggle-style labels and scikit-learn's headers: the model takes the normalised feature names and
    # names its probability columns after the file's own classes.
    prefixed = ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]
    upload = ("iris.csv", csv_bytes(iris_frame(SKLEARN_HEADERS, labels="prefixed")))
    with open_platform(tmp_path) as platform:
        trained = train(platform.client, upload, n_estimators=FAST_TREES)
        flowers = random_flowers(10, seed=5)
        ours = [predict(platform.client, flower) for flower in flowers]
        model = load_champion(platform.settings.tracking_uri)

    assert trained["model_metadata"]["class_names"] == prefixed
    assert model.metadata.signature.inputs.input_names() == IRIS_FEATURES
    # Columns in another order are matched by name.
    answer = model.predict(pd.DataFrame(flowers, columns=IRIS_FEATURES)[IRIS_FEATURES[::-1]])
    assert list(answer.columns) == output_columns(prefixed)
    assert_same_answers(answer.to_dict("records"), ours)

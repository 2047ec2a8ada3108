"""Preprocessing of real tables: blank numeric cells imputed with the median by a first step of the saved
model (a scikit-learn Pipeline, converted to ONNX and parity-checked like any model), impute=none keeping
the refusal, columns of one value left out with a note; the params that say so."""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

from iris_platform.ml.model_store import ModelStore
from iris_platform.tracking import names
from tests.helpers.api import FAST_TREES, assert_error, predict, predict_batch, train, wait_for_writer
from tests.helpers.data import PENGUIN_BLANKS as BLANKS
from tests.helpers.data import csv_bytes, penguins, read_json, training_split
from tests.helpers.drift import independent_psi
from tests.helpers.mlflow_reads import (
    all_runs,
    assert_no_running_runs,
    download_artifact,
    read_artifact_csv,
    use_tracking_uri,
)
from tests.helpers.platform import open_platform


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with open_platform(tmp_path_factory.mktemp("preprocessing")) as platform:
        yield platform


@pytest.fixture(scope="module")
def table():
    return penguins()


@pytest.fixture(scope="module")
def imputed(platform, table):
    return train(platform.client, file=("penguins.csv", csv_bytes(table)), n_estimators=FAST_TREES)


def test_blank_cells_are_imputed_and_a_constant_column_left_out(imputed):
    assert imputed["preprocessing"] == "median_imputation"
    assert imputed["imputed_cells"] == {"bill_length": BLANKS}  # by feature (normalised) name
    assert imputed["constant_columns"] == ["year"]
    assert imputed["model_metadata"]["feature_names"] == ["bill_length", "bill_depth", "flipper_length"]
    assert imputed["accuracy"] > 0.9
    # The Pipeline (imputer, then the forest) converts to ONNX and matches scikit-learn.
    assert imputed["runtime"] == "onnxruntime"


def test_the_run_says_what_was_done(platform, imputed):
    params = platform.mlflow.get_run(imputed["run_id"]).data.params
    assert params[names.P_PREPROCESSING] == "median_imputation"
    assert params[names.P_IMPUTE] == "median"
    assert params[names.P_N_NUMERIC_FEATURES] == "3" and params[names.P_N_TEXT_FEATURES] == "0"
    assert params[names.P_N_FEATURES] == "3"
    assert params[names.P_CONSTANT_COLUMNS] == "year"


def test_the_imputer_holds_the_training_splits_medians(platform, imputed, table):
    estimator = ModelStore(platform.models_dir).load(imputed["model_metadata"]["model_file"]).estimator
    imputer = estimator.steps[0][1]
    assert imputer.strategy == "median"
    # Independently: the same stratified split of the same rows, and numpy's median of what is filled in.
    X_train = training_split(table)[["bill_length_mm", "bill_depth_mm", "flipper_length_mm"]].to_numpy(dtype=float)
    assert imputer.statistics_ == pytest.approx(np.nanmedian(X_train, axis=0))


def test_predictions_and_the_mlflow_model_take_the_raw_columns(platform, imputed, table):
    gentoo = {"bill_length_mm": 47.5, "bill_depth_mm": 15.0, "flipper_length_mm": 217}
    assert predict(platform.client, gentoo)["class_name"] == "Gentoo"
    # The logged MLflow model is the same Pipeline: a blank cell is filled in by its imputer.
    use_tracking_uri(platform.settings.tracking_uri)
    model = mlflow.pyfunc.load_model(imputed["model_metadata"]["mlflow_model_uri"])
    rows = pd.DataFrame(
        [
            {"bill_length": np.nan, "bill_depth": 15.0, "flipper_length": 217.0},
            {"bill_length": 38.8, "bill_depth": 18.3, "flipper_length": 190.0},
        ]
    )
    assert list(model.predict(rows)[names.COL_PREDICTED_CLASS]) == ["Gentoo", "Adelie"]


def test_impute_none_keeps_the_refusal_and_leaves_no_run(platform, table):
    before = len(all_runs(platform.mlflow, "iris_classification"))
    refused = platform.client.post(
        "/train", files={"file": ("penguins.csv", csv_bytes(table), "text/csv")}, data={"impute": "none"}
    )
    blank_rows = [int(i) + 1 for i in np.flatnonzero(table["bill_length_mm"].isna())[:5]]
    assert_error(refused, 422, "'bill_length_mm'", "blank", str(blank_rows), "impute=median")
    assert len(all_runs(platform.mlflow, "iris_classification")) == before
    assert_no_running_runs(platform)


@pytest.mark.parametrize(
    "data, fragments",
    [
        ({"impute": "mean"}, ["impute", "median", "none"]),
        ({"impute": ""}, ["impute"]),
    ],
    ids=["unknown-choice", "blank-choice"],
)
def test_bad_impute_choices_are_refused(platform, table, data, fragments):
    refused = platform.client.post("/train", files={"file": ("p.csv", csv_bytes(table), "text/csv")}, data=data)
    assert_error(refused, 422, *fragments)


def test_impute_without_a_file_is_refused(platform):
    assert_error(platform.client.post("/train", json={"impute": "median"}), 422, "impute", "no file")


def test_a_table_of_constant_columns_only_is_refused(platform):
    frame = pd.DataFrame({"year": [2007] * 6, "site": [1.0] * 6, "species": ["a", "b"] * 3})
    refused = platform.client.post("/train", files={"file": ("c.csv", csv_bytes(frame), "text/csv")})
    assert_error(refused, 422, "single value", "'year'", "'site'")


# -- serving: a blank feature is filled in by the model ---------------------------------------------------


FEATURES = ["bill_length", "bill_depth", "flipper_length"]
FILE_COLUMNS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm"]


@pytest.fixture(scope="module")
def pipeline(platform, imputed):
    return ModelStore(platform.models_dir).load(imputed["model_metadata"]["model_file"]).estimator


def expected_classes(pipeline, rows: np.ndarray) -> list[str]:
    """scikit-learn's own answer: the saved Pipeline on the same rows, NaN where a cell is blank."""
    indexes = pipeline.predict(pd.DataFrame(rows, columns=FEATURES))
    return [["Adelie", "Chinstrap", "Gentoo"][i] for i in indexes]


def test_a_blank_feature_of_a_single_prediction_is_filled_in(platform, imputed, pipeline):
    sent = {"bill_length_mm": None, "bill_depth_mm": 15.0, "flipper_length_mm": 217}
    answer = predict(platform.client, sent)
    expected = pipeline.predict_proba(pd.DataFrame([[np.nan, 15.0, 217.0]], columns=FEATURES))[0]
    assert answer["probabilities"] == pytest.approx(
        dict(zip(["Adelie", "Chinstrap", "Gentoo"], expected, strict=True)), abs=1e-5
    )
    assert answer["out_of_range_features"] == []
    # An empty form field is a blank too; infinity is still refused.
    form = platform.client.post(
        "/predict", data={"bill_length_mm": "", "bill_depth_mm": "15", "flipper_length_mm": "217"}
    )
    assert form.status_code == 200 and form.json()["class_name"] == answer["class_name"]
    infinite = platform.client.post("/predict", json={**sent, "bill_length_mm": "inf"})
    assert_error(infinite, 422, "bill_length", "finite")
    # The journal keeps the blank as null (JSON has no NaN); its MLflow run logs the param as None.
    wait_for_writer(platform.client)
    found = platform.client.get(f"/predictions/{answer['prediction_id']}").json()
    params = found["run"]["params"]
    assert (params["bill_length"], params["bill_depth"], params["predicted_class"]) == (
        "None",
        "15.0",
        answer["class_name"],
    )
    # The document says so: null is a value this model takes.
    schema = platform.client.get("/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]
    assert schema["content"]["application/json"]["schema"]["properties"]["bill_length"]["type"] == ["number", "null"]


def test_a_batch_with_blank_cells_is_predicted_and_its_drift_counts_the_filled_cells(
    platform, imputed, pipeline, table, tmp_path
):
    rows = table[FILE_COLUMNS]
    answer = predict_batch(platform.client, csv_bytes(rows))  # blank cells are written as empty fields
    values = rows.to_numpy(dtype=float)
    assert answer["total_samples"] == len(rows)
    assert [r["class_name"] for r in answer["predictions"]] == expected_classes(pipeline, values)[
        : len(answer["predictions"])
    ]
    blank = np.isnan(values[:, 0])
    shown = answer["predictions"]
    assert [r["input"]["bill_length_mm"] is None for r in shown] == blank[: len(shown)].tolist()
    # The predictions file keeps every row, the blank cells as they were written.
    written = read_artifact_csv(platform.mlflow, answer["run_id"], "predictions.csv", tmp_path)
    assert int(written["bill_length_mm"].isna().sum()) == BLANKS
    assert list(written["predicted_class"]) == expected_classes(pipeline, values)
    # Drift over the filled cells only, as numpy computes it from the same profile.
    profile = read_json(download_artifact(platform.mlflow, imputed["run_id"], "reference_profile.json", tmp_path))
    metrics = platform.mlflow.get_run(answer["run_id"]).data.metrics
    for feature, column in zip(FEATURES, FILE_COLUMNS, strict=True):
        filled = rows[column].dropna().to_numpy(dtype=float)
        assert metrics[f"psi_{feature}"] == pytest.approx(independent_psi(profile["features"][feature], filled))
    # Infinity is still refused, naming the row.
    infinite = rows.head(3).astype(object)
    infinite.iloc[1, 0] = "inf"
    refused = platform.client.post("/predict_batch", files={"file": ("b.csv", csv_bytes(infinite), "text/csv")})
    assert_error(refused, 422, "bill_length_mm", "infinite", "row 2")


def test_a_model_without_imputation_still_needs_every_feature(platform):
    # Last in this module: the Iris model it trains serves from now on.
    assert train(platform.client, n_estimators=FAST_TREES)["preprocessing"] == "none"
    blank = {"sepal_length": None, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
    assert_error(platform.client.post("/predict", json=blank), 422, "sepal_length", "null")
    schema = platform.client.get("/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]
    assert schema["content"]["application/json"]["schema"]["properties"]["sepal_length"]["type"] == "number"

"""Preprocessing of real tables: blank numeric cells imputed with the median by a first step of the saved
model (a scikit-learn Pipeline, converted to ONNX and parity-checked like any model), impute=none keeping
the refusal, columns of one value left out with a note; the params that say so."""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from iris_platform.ml.model_store import ModelStore
from iris_platform.tracking import names
from tests.helpers.api import FAST_TREES, assert_error, predict, train
from tests.helpers.data import PENGUIN_BLANKS as BLANKS
from tests.helpers.data import csv_bytes, penguins
from tests.helpers.mlflow_reads import all_runs, assert_no_running_runs, use_tracking_uri
from tests.helpers.platform import open_platform

RANDOM_STATE = 42  # the platform's default (Settings.random_state)


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
    X = table[["bill_length_mm", "bill_depth_mm", "flipper_length_mm"]].to_numpy(dtype=float)
    y = np.unique(table["species"].to_numpy(), return_inverse=True)[1]
    X_train, *_ = train_test_split(X, y, test_size=0.2, random_state=RANDOM_STATE, stratify=y)
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

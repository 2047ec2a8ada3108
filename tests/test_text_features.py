"""Text columns of a training table: one-hot encoded by the saved Pipeline (a text unseen at training is
ignored and counted in the answer), converted to ONNX with the numbers and parity-checked; single and batch
predictions, drift, the MLflow model and the OpenAPI document take the text as text."""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from scipy.stats import chisquare

from iris_platform.ml.model_store import ModelStore
from iris_platform.tracking import names
from tests.helpers.api import (
    FAST_TREES,
    assert_error,
    load_model,
    predict,
    predict_batch,
    train,
    wait_for_writer,
    wait_until,
)
from tests.helpers.data import PENGUIN_ISLANDS, csv_bytes, penguins, read_json, training_split
from tests.helpers.mlflow_reads import (
    all_runs,
    assert_no_running_runs,
    download_artifact,
    read_artifact_csv,
    use_tracking_uri,
)
from tests.helpers.platform import open_platform

CLASSES = ["Adelie", "Chinstrap", "Gentoo"]
FEATURES = ["island", "bill_length", "bill_depth", "flipper_length"]
FILE_COLUMNS = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm"]
ISLANDS = sorted({i for islands in PENGUIN_ISLANDS.values() for i in islands})


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with open_platform(tmp_path_factory.mktemp("text-features")) as platform:
        yield platform


@pytest.fixture(scope="module")
def table():
    return penguins(island=True)


@pytest.fixture(scope="module")
def trained(platform, table):
    return train(platform.client, file=("penguins.csv", csv_bytes(table)), n_estimators=FAST_TREES)


@pytest.fixture(scope="module")
def pipeline(platform, trained):
    return ModelStore(platform.models_dir).load(trained["model_metadata"]["model_file"]).estimator


def sklearn_proba(pipeline, rows: pd.DataFrame) -> np.ndarray:
    """The saved Pipeline's own answer on the raw columns (text as text), by the model's feature names."""
    return pipeline.predict_proba(rows.set_axis(FEATURES, axis=1).astype({"island": object}))


def test_a_text_column_is_one_hot_encoded_and_served_compiled(platform, trained, table):
    assert trained["preprocessing"] == "median_imputation+one_hot_encoding"
    assert trained["model_metadata"]["feature_names"] == FEATURES  # the file's order, text among the numbers
    # The categories are the training split's islands, in the encoder's (sorted) order.
    assert trained["text_features"] == {"island": sorted(training_split(table)["island"].unique())}
    assert trained["text_features"]["island"] == ISLANDS
    assert trained["model_metadata"]["text_categories"] == trained["text_features"]
    assert trained["accuracy"] > 0.9
    # The Pipeline (imputer and one-hot encoder, then the forest) converts to ONNX and matches scikit-learn.
    assert trained["runtime"] == "onnxruntime"
    assert trained["model_metadata"]["compiled"]["parity_ok"] is True
    params = platform.mlflow.get_run(trained["run_id"]).data.params
    assert params[names.P_PREPROCESSING] == "median_imputation+one_hot_encoding"
    assert (params[names.P_N_FEATURES], params[names.P_N_NUMERIC_FEATURES], params[names.P_N_TEXT_FEATURES]) == (
        "4",
        "3",
        "1",
    )


def test_the_encoder_ignores_unseen_text(pipeline):
    encoder = pipeline.named_steps["encode"].named_transformers_["text"]
    assert encoder.handle_unknown == "ignore"
    assert [list(c) for c in encoder.categories_] == [ISLANDS]


def test_a_single_prediction_takes_text_and_names_an_unseen_one(platform, trained, pipeline):
    gentoo = {"island": "Biscoe", "bill_length_mm": 47.5, "bill_depth_mm": 15.0, "flipper_length_mm": 217}
    for island in ("Biscoe", "Dream", "Atlantis"):
        sent = {**gentoo, "island": island}
        answer = predict(platform.client, sent)
        expected = sklearn_proba(pipeline, pd.DataFrame([sent]))[0]
        assert answer["probabilities"] == pytest.approx(dict(zip(CLASSES, expected, strict=True)), abs=1e-5)
        assert answer["unseen_categories"] == ({"island": "Atlantis"} if island == "Atlantis" else {})
    # A form field is text as well; spaces around it are not part of it.
    form = platform.client.post(
        "/predict",
        data={"island": "  Dream ", "bill_length_mm": "48.8", "bill_depth_mm": "18.4", "flipper_length_mm": "196"},
    )
    assert form.status_code == 200 and form.json()["unseen_categories"] == {}
    assert form.json()["class_name"] == "Chinstrap"
    # The run logs the text as the feature's param.
    wait_for_writer(platform.client)
    found = platform.client.get(f"/predictions/{form.json()['prediction_id']}").json()
    assert found["run"]["params"]["island"] == "Dream"


@pytest.mark.parametrize(
    "island, fragments",
    [(True, ["island", "text", "true"]), ({"a": 1}, ["island", "text"]), ("   ", ["island", "non-blank"])],
    ids=["boolean", "object", "blank-for-a-model-without-blank-islands"],
)
def test_a_text_feature_refuses_what_is_not_text(platform, trained, island, fragments):
    sent = {"island": island, "bill_length_mm": 47.5, "bill_depth_mm": 15.0, "flipper_length_mm": 217}
    # This model imputes (its table had blank bill lengths), so a blank island is "" (a category it never had).
    response = platform.client.post("/predict", json=sent)
    if island == "   ":
        assert response.status_code == 200 and response.json()["unseen_categories"] == {}
        return
    assert_error(response, 422, *fragments)


def test_a_batch_takes_text_and_counts_unseen_texts(platform, trained, pipeline, table, tmp_path):
    rows = table[FILE_COLUMNS].copy()
    rows.loc[rows.index[:7], "island"] = "Atlantis"
    answer = predict_batch(platform.client, csv_bytes(rows))
    assert answer["unseen_categories"] == {"island": 7}
    shown = answer["predictions"]
    assert [r["input"]["island"] for r in shown] == rows["island"].head(len(shown)).tolist()  # the text as written
    # Every row's probabilities are the Pipeline's on the raw columns (6 decimals in the file).
    written = read_artifact_csv(platform.mlflow, answer["run_id"], "predictions.csv", tmp_path)
    expected = sklearn_proba(pipeline, rows)
    got = written[[names.probability_column(c) for c in CLASSES]].to_numpy()
    assert np.abs(got - expected).max() < 1e-5
    assert list(written["island"]) == list(rows["island"])
    metrics = platform.mlflow.get_run(answer["run_id"]).data.metrics
    assert metrics[names.unseen_metric("island")] == 7


def test_batch_drift_of_a_text_feature_is_over_its_categories(platform, trained, table, tmp_path):
    rows = table[FILE_COLUMNS].copy()
    rows["island"] = "Dream"  # every penguin on one island
    rows.loc[rows.index[:5], "island"] = "Atlantis"
    answer = predict_batch(platform.client, csv_bytes(rows))
    profile = read_json(download_artifact(platform.mlflow, trained["run_id"], "reference_profile.json", tmp_path))
    assert profile["features"]["island"]["categories"] == ISLANDS
    # Independently: the training split's island shares, and the batch's, with a bin for unseen texts.
    psi = independent_text_psi(table, rows["island"].tolist())
    drift = answer["drift"]
    assert drift["psi"]["island"] == pytest.approx(psi)
    assert drift["chi2_pvalue"]["island"] == 0.0  # a text the training never had
    assert "island" in drift["drifted_features"]
    metrics = platform.mlflow.get_run(answer["run_id"]).data.metrics
    assert metrics[names.psi_metric("island")] == pytest.approx(psi)
    assert metrics[names.chi2_pvalue_metric("island")] == 0.0
    # Without unseen texts, the p-value is scipy's chi-square of the counts against the training shares.
    seen = rows[rows["island"] != "Atlantis"].copy()
    seen["island"] = [ISLANDS[i % 3] for i in range(len(seen))]
    answer = predict_batch(platform.client, csv_bytes(seen))
    counts = np.array([(seen["island"] == i).sum() for i in ISLANDS])
    train_counts = training_split(table)["island"].value_counts()
    shares = np.array([train_counts.get(i, 0) for i in ISLANDS]) / train_counts.sum()
    assert answer["drift"]["chi2_pvalue"]["island"] == pytest.approx(chisquare(counts, shares * counts.sum()).pvalue)


def independent_text_psi(table: pd.DataFrame, islands: list[str]) -> float:
    """PSI of `islands` against the training split's island shares, with a bin for unseen texts (0.0001 for
    an empty bin), computed here from the table itself."""
    train_counts = training_split(table)["island"].value_counts()
    expected = np.array([train_counts.get(i, 0) for i in ISLANDS] + [0]) / train_counts.sum()
    counts = np.array([islands.count(i) for i in ISLANDS] + [sum(i not in ISLANDS for i in islands)])
    e, a = np.clip(expected, 1e-4, None), np.clip(counts / len(islands), 1e-4, None)
    return float(np.sum((a - e) * np.log(a / e)))


def test_a_drift_window_of_single_predictions_compares_the_texts(tmp_path, table):
    with open_platform(tmp_path, drift_window=10) as platform:
        train(platform.client, file=("penguins.csv", csv_bytes(table)), n_estimators=FAST_TREES)
        islands = ["Dream"] * 8 + ["Atlantis"] * 2
        for island in islands:
            sent = {"island": island, "bill_length_mm": 48.8, "bill_depth_mm": 18.4, "flipper_length_mm": 196}
            predict(platform.client, sent)
        wait_for_writer(platform.client)
        runs = wait_until(
            lambda: all_runs(
                platform.mlflow,
                "iris_inference",
                "params.prediction_type = 'drift_window' and attributes.status = 'FINISHED'",
            ),
            20,
            "a drift window run",
        )
        metrics = runs[0].data.metrics
        assert metrics[names.psi_metric("island")] == pytest.approx(independent_text_psi(table, islands))
        assert metrics[names.chi2_pvalue_metric("island")] == 0.0  # Atlantis: never seen in training
        assert "island" in runs[0].data.tags[names.T_DRIFTED_FEATURES].split(",")


def test_the_mlflow_model_takes_text(platform, trained, pipeline):
    use_tracking_uri(platform.settings.tracking_uri)
    model = mlflow.pyfunc.load_model(trained["model_metadata"]["mlflow_model_uri"])
    inputs = {spec.name: spec.type.name for spec in model.metadata.get_input_schema().inputs}
    assert inputs == {"island": "string", "bill_length": "double", "bill_depth": "double", "flipper_length": "double"}
    rows = pd.DataFrame(
        {
            "island": ["Biscoe", "Dream", "Atlantis"],
            "bill_length": [np.nan, 48.8, 38.8],
            "bill_depth": [15.0, 18.4, 18.3],
            "flipper_length": [217.0, 196.0, 190.0],
        }
    )
    answer = model.predict(rows)
    expected = sklearn_proba(pipeline, rows)
    assert answer[[names.probability_column(c) for c in CLASSES]].to_numpy() == pytest.approx(expected)
    assert list(answer[names.COL_PREDICTED_CLASS]) == [CLASSES[i] for i in expected.argmax(axis=1)]


def test_the_openapi_body_says_text(platform, trained):
    body = platform.client.get("/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]
    island = body["content"]["application/json"]["schema"]["properties"]["island"]
    # This model imputes: a blank (null or "") is taken too.
    assert {"type": "null"} in island["anyOf"]
    assert island["anyOf"][0]["type"] == "string" and "Biscoe" in island["description"]


# -- training choices and refusals --------------------------------------------------------------------


def test_blank_text_is_a_category_of_its_own_or_refused_with_impute_none(platform, table):
    rows = table.drop(columns="year").copy()
    rows["bill_length_mm"] = rows["bill_length_mm"].fillna(45.0)
    blank = rows.index[[3, 8, 20, 40, 77, 100, 130]]
    rows.loc[blank, "island"] = ""
    before = len(all_runs(platform.mlflow, "iris_classification"))
    refused = platform.client.post(
        "/train", files={"file": ("p.csv", csv_bytes(rows), "text/csv")}, data={"impute": "none"}
    )
    assert_error(refused, 422, "'island'", "blank", str([int(i) + 1 for i in blank[:5]]), "impute=median")
    assert len(all_runs(platform.mlflow, "iris_classification")) == before
    assert_no_running_runs(platform)
    answer = train(platform.client, file=("p.csv", csv_bytes(rows)), n_estimators=FAST_TREES)
    assert answer["imputed_cells"] == {"island": len(blank)}
    assert answer["preprocessing"] == "median_imputation+one_hot_encoding"
    assert "" in answer["text_features"]["island"]
    sent = {"island": None, "bill_length_mm": 47.5, "bill_depth_mm": 15.0, "flipper_length_mm": 217}
    assert predict(platform.client, sent)["unseen_categories"] == {}


def test_a_table_without_blanks_refuses_a_blank_text_at_prediction(platform, table):
    rows = table.drop(columns="year").copy()
    rows["bill_length_mm"] = rows["bill_length_mm"].fillna(45.0)
    answer = train(platform.client, file=("p.csv", csv_bytes(rows)), n_estimators=FAST_TREES)
    assert answer["preprocessing"] == "one_hot_encoding" and answer["runtime"] == "onnxruntime"
    sent = {"island": "", "bill_length_mm": 47.5, "bill_depth_mm": 15.0, "flipper_length_mm": 217}
    assert_error(platform.client.post("/predict", json=sent), 422, "island", "non-blank")
    blank_cell = rows[FILE_COLUMNS].head(3).copy()
    blank_cell.iloc[1, 0] = ""
    refused = platform.client.post("/predict_batch", files={"file": ("b.csv", csv_bytes(blank_cell), "text/csv")})
    assert_error(refused, 422, "'island'", "blank", "row 2")


def test_a_text_column_of_too_many_texts_is_refused(platform):
    rows = penguins(rows=450, island=True)
    rows.insert(0, "name", [f"penguin {i // 2}" for i in range(len(rows))])  # not unique, so not an identifier
    refused = platform.client.post("/train", files={"file": ("p.csv", csv_bytes(rows), "text/csv")})
    assert_error(refused, 422, "'name'", "225 different texts", "at most 200")


def test_a_numeric_last_column_beside_text_needs_the_target_named(platform, table):
    rows = table[["species", "island", "bill_depth_mm", "flipper_length_mm", "bill_length_mm"]].dropna()
    refused = platform.client.post("/train", files={"file": ("p.csv", csv_bytes(rows), "text/csv")})
    assert_error(refused, 422, "hold text", "target_column", "'bill_length_mm'")
    answer = train(platform.client, file=("p.csv", csv_bytes(rows)), target_column="species", n_estimators=FAST_TREES)
    assert answer["model_metadata"]["feature_names"] == ["island", "bill_depth", "flipper_length", "bill_length"]
    assert answer["text_features"] == {"island": ISLANDS}


@pytest.mark.parametrize("model_type", ["svc", "hist_gradient_boosting", "knn"])
def test_every_model_type_trains_on_text(platform, table, model_type):
    answer = train(platform.client, file=("p.csv", csv_bytes(table)), model_type=model_type)
    assert answer["text_features"] == {"island": ISLANDS}
    sent = {"island": "Torgersen", "bill_length_mm": 38.8, "bill_depth_mm": 18.3, "flipper_length_mm": 190}
    assert predict(platform.client, sent)["class_name"] == "Adelie"


def test_a_text_model_loaded_again_is_checked_and_served_with_its_categories(platform, trained, pipeline):
    # Last in this module: other models have served since; loading reads the categories from the metadata.
    loaded = load_model(platform.client, trained["model_path"])
    assert loaded["runtime"] == "onnxruntime"  # its ONNX form checked again, text inputs included
    sent = {"island": "Torgersen", "bill_length_mm": 38.8, "bill_depth_mm": 18.3, "flipper_length_mm": 190}
    answer = predict(platform.client, sent)
    expected = sklearn_proba(pipeline, pd.DataFrame([sent]))[0]
    assert answer["probabilities"] == pytest.approx(dict(zip(CLASSES, expected, strict=True)), abs=1e-5)
    assert answer["model_path"] == trained["model_path"]
    assert predict(platform.client, {**sent, "island": "Atlantis"})["unseen_categories"] == {"island": "Atlantis"}

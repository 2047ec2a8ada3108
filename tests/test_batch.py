"""POST /predict_batch: the answer, its `batch_prediction_<timestamp>` run and the predictions CSV."""

import csv
import io
import math
import re
from datetime import datetime, timedelta

import pandas as pd
import pytest

from iris_platform.ml import batch_stream
from iris_platform.tracking import names
from tests.helpers.api import assert_error, predict, predict_batch, wait_for_writer
from tests.helpers.contract import INFERENCE_EXPERIMENT
from tests.helpers.data import IRIS_CLASSES, SETOSA, SKLEARN_HEADERS, VIRGINICA, csv_bytes
from tests.helpers.mlflow_reads import all_runs, assert_no_running_runs, read_artifact_csv

# Only setosa and virginica rows: versicolor is predicted zero times and must still be counted.
ROWS = [SETOSA, VIRGINICA, {**SETOSA, "sepal_length": 4.9}, {**VIRGINICA, "petal_length": 6.1}, SETOSA]


def batch_frame() -> pd.DataFrame:
    """scikit-learn headers, shuffled column order, an id and a label column the model does not use."""
    frame = pd.DataFrame(ROWS)
    frame.columns = SKLEARN_HEADERS
    frame.insert(0, "id", [101, 102, 103, 104, 105])
    frame["label"] = ["a", "b", "c", "d", "e"]
    return frame[["id", "petal width (cm)", "sepal length (cm)", "label", "petal length (cm)", "sepal width (cm)"]]


@pytest.fixture(scope="module")
def batch(trained_platform):
    return predict_batch(trained_platform.client, csv_bytes(batch_frame()), filename="five flowers.csv")


def test_batch_answer_matches_single_predictions(trained_platform, batch):
    assert batch["status"] == "success"
    assert batch["total_samples"] == len(ROWS)
    assert batch["model_path"] == trained_platform.client.get("/health").json()["current_model"]
    rows = batch["predictions"]
    assert [r["sample_index"] for r in rows] == list(range(len(ROWS)))
    for row, features in zip(rows, ROWS, strict=False):
        single = predict(trained_platform.client, features)
        assert row["prediction"] == single["prediction"]
        assert row["class_name"] == single["class_name"] == IRIS_CLASSES[row["prediction"]]
        assert row["confidence"] == pytest.approx(single["confidence"])
        assert row["probabilities"] == pytest.approx(single["probabilities"])
        assert math.fsum(row["probabilities"].values()) == pytest.approx(1.0)
    assert [r["class_name"] for r in rows] == ["setosa", "virginica", "setosa", "virginica", "setosa"]


def test_batch_statistics(batch):
    stats = batch["batch_statistics"]
    confidences = [r["confidence"] for r in batch["predictions"]]
    assert stats["avg_confidence"] == pytest.approx(sum(confidences) / len(confidences))
    assert stats["min_confidence"] == pytest.approx(min(confidences))
    assert stats["max_confidence"] == pytest.approx(max(confidences))
    assert stats["prediction_distribution"] == {"setosa": 3, "versicolor": 0, "virginica": 2}


def test_batch_run_params_and_metrics(trained_platform, batch):
    run = trained_platform.mlflow.get_run(batch["run_id"])
    inference = trained_platform.mlflow.get_experiment_by_name(INFERENCE_EXPERIMENT)
    assert run.info.experiment_id == inference.experiment_id
    assert run.info.status == "FINISHED"
    assert re.fullmatch(r"batch_prediction_\d{8}_\d{6}_\d{6}", run.info.run_name)

    params = dict(run.data.params)
    assert datetime.fromisoformat(params.pop("timestamp")).utcoffset() == timedelta(0)
    assert params == {
        "prediction_type": "batch",
        "model_path": batch["model_path"],
        "model_version": batch["model_version"],
        "input_file": "five flowers.csv",
    }
    assert batch["model_version"] == trained_platform.client.get("/health").json()["model_version"]

    stats = batch["batch_statistics"]
    expected = {
        "total_samples": 5,
        "avg_confidence": stats["avg_confidence"],
        "min_confidence": stats["min_confidence"],
        "max_confidence": stats["max_confidence"],
        "unique_classes_predicted": 2,
        "count_setosa": 3,
        "count_versicolor": 0,
        "count_virginica": 2,
        "percentage_setosa": 60.0,
        "percentage_versicolor": 0.0,
        "percentage_virginica": 40.0,
    }
    drift = {k: v for k, v in run.data.metrics.items() if k not in expected}
    assert {k: v for k, v in run.data.metrics.items() if k in expected} == pytest.approx(expected)
    # Besides the statistics, the batch's drift against the training data (tests/test_monitoring.py checks values).
    features = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert set(drift) == {
        "drift_detected",
        "class_drift_pvalue",
        *(f"psi_{f}" for f in features),
        *(f"ks_pvalue_{f}" for f in features),
    }
    assert math.fsum(run.data.metrics[f"percentage_{c}"] for c in IRIS_CLASSES) == pytest.approx(100.0)


def test_predictions_csv_artifact(trained_platform, batch, tmp_path):
    listed = [a.path for a in trained_platform.mlflow.list_artifacts(batch["run_id"])]
    assert listed == [names.PREDICTIONS_ARTIFACT]
    table = read_artifact_csv(trained_platform.mlflow, batch["run_id"], names.PREDICTIONS_ARTIFACT, tmp_path)

    original = batch_frame()
    assert list(table.columns) == [
        *original.columns,
        "predicted_class",
        "confidence",
        *(f"prob_{c}" for c in IRIS_CLASSES),
    ]
    assert len(table) == len(original)
    pd.testing.assert_frame_equal(table[list(original.columns)], original)  # same rows, input order
    rows = batch["predictions"]
    assert table["predicted_class"].tolist() == [r["class_name"] for r in rows]
    assert table["confidence"].tolist() == pytest.approx([r["confidence"] for r in rows])
    for c in IRIS_CLASSES:
        assert table[f"prob_{c}"].tolist() == pytest.approx([r["probabilities"][c] for r in rows])


def test_inline_rows_carry_the_kept_input_columns_with_the_inputs_values(batch):
    original = batch_frame()
    for row, (_, expected) in zip(batch["predictions"], original.iterrows(), strict=True):
        assert list(row) == ["sample_index", "input", "prediction", "class_name", "confidence", "probabilities"]
        assert list(row["input"]) == list(original.columns)  # the header's names, in the file's order
        assert row["input"] == expected.to_dict()
        assert type(row["input"]["id"]) is int and type(row["input"]["label"]) is str
        assert all(type(row["input"][c]) is float for c in SKLEARN_HEADERS)  # the numbers predicted on
    assert [r["input"]["id"] for r in batch["predictions"]] == [101, 102, 103, 104, 105]


def test_an_id_column_of_text_stays_text_and_numbers_become_numbers(trained_platform):
    frame = pd.DataFrame(ROWS)
    frame.insert(0, "sample_id", [f"s{i:03d}" for i in range(len(ROWS))])
    frame["zip"] = ["02134", "10001", "00501", "94105", "60601"]  # zero-padded: an identifier, kept as text
    frame["long_id"] = ["1234567890123456789"] * len(ROWS)  # more digits than a float holds
    frame["weight"] = ["1.5", "", "2", "3e2", "-4"]  # numbers, one blank
    frame["mixed"] = ["1", "two", "3", "4", "5"]
    frame["flag"] = ["nan", "inf", "1", "2", "3"]  # parse as floats, but JSON has no such numbers
    frame["note"] = ['a, "b"', "c", "", "d", "e"]
    frame["confidence"] = 0.0  # named like an added column: replaced, so not an input the output keeps
    body = predict_batch(trained_platform.client, csv_bytes(frame))
    assert body["replaced_columns"] == ["confidence"]
    inputs = [r["input"] for r in body["predictions"]]
    assert [i["sample_id"] for i in inputs] == ["s000", "s001", "s002", "s003", "s004"]
    assert [i["zip"] for i in inputs] == ["02134", "10001", "00501", "94105", "60601"]
    assert [i["long_id"] for i in inputs] == ["1234567890123456789"] * len(ROWS)
    assert [i["weight"] for i in inputs] == [1.5, None, 2.0, 300.0, -4.0]
    assert [i["mixed"] for i in inputs] == ["1", "two", "3", "4", "5"]
    assert [i["flag"] for i in inputs] == ["nan", "inf", "1", "2", "3"]
    assert [i["note"] for i in inputs] == ['a, "b"', "c", "", "d", "e"]
    for row, features in zip(body["predictions"], ROWS, strict=True):
        assert "confidence" not in row["input"]
        assert {f: row["input"][f] for f in features} == features
        assert row["confidence"] == max(row["probabilities"].values())  # the row's own, not the input's 0.0


def read_raw_csv(platform, body) -> str:
    response = platform.client.get(body["predictions_url"])
    assert response.status_code == 200, response.text
    return response.content.decode()


def test_predictions_csv_writes_numbers_unquoted_and_every_probability_with_six_decimals(trained_platform, batch):
    text = read_raw_csv(trained_platform, batch)
    assert '"' not in text  # no cell of this file needs quotes
    lines = text.splitlines()
    assert lines[0] == (
        "id,petal width (cm),sepal length (cm),label,petal length (cm),sepal width (cm),"
        "predicted_class,confidence,prob_setosa,prob_versicolor,prob_virginica"
    )
    assert lines[1].startswith("101,0.2,5.1,a,1.4,3.5,setosa,")  # the input's cells as written
    decimals = batch_stream.PROBABILITY_DECIMALS
    assert decimals == 6
    for line, row in zip(lines[1:], batch["predictions"], strict=True):
        cells = line.split(",")
        assert cells[6] == row["class_name"]
        written = cells[7:]
        assert all(re.fullmatch(rf"[01]\.\d{{{decimals}}}", cell) for cell in written), written
        assert written[0] == written[1 + row["prediction"]]  # the confidence is the class's probability
        served = [row["confidence"], *(row["probabilities"][c] for c in IRIS_CLASSES)]
        for cell, value in zip(written, served, strict=True):
            assert abs(float(cell) - value) <= 0.5 * 10**-decimals + 1e-12


def test_predictions_csv_quotes_only_the_cells_that_need_it(trained_platform):
    frame = pd.DataFrame(ROWS)
    frame["note"] = ["plain", "a, comma", 'a "quote"', "", "  spaced  "]
    frame["code"] = ["007", "1e3", "-0", "4.60", "x"]  # kept exactly as written
    body = predict_batch(trained_platform.client, csv_bytes(frame))
    text = read_raw_csv(trained_platform, body)
    rows = list(csv.reader(io.StringIO(text)))
    expected = io.StringIO()
    csv.writer(expected, lineterminator="\n", quoting=csv.QUOTE_MINIMAL).writerows(rows)
    assert text == expected.getvalue()  # Python's minimal quoting writes the same bytes
    assert [r[4] for r in rows[1:]] == list(frame["note"])
    assert [r[5] for r in rows[1:]] == list(frame["code"])
    assert text.splitlines()[1].startswith("5.1,3.5,1.4,0.2,plain,007,setosa,")
    assert '"a, comma"' in text and '"a ""quote"""' in text


def test_the_answer_schema_documents_the_inline_rows(trained_platform):
    schemas = trained_platform.client.get("/openapi.json").json()["components"]["schemas"]
    predictions = schemas["BatchResponse"]["properties"]["predictions"]
    assert predictions["items"] == {"$ref": "#/components/schemas/BatchPredictionRow"}
    assert f"{batch_stream.INLINE_INPUT_VALUES:,} values" in predictions["description"]
    row = schemas["BatchPredictionRow"]
    assert row["required"] == ["sample_index", "input", "prediction", "class_name", "confidence", "probabilities"]
    assert "predictions.csv keeps" in row["properties"]["input"]["description"]
    assert (
        f"{batch_stream.PROBABILITY_DECIMALS} decimals"
        in schemas["BatchResponse"]["properties"]["predictions_url"]["description"]
    )


def test_batch_run_is_listed_by_the_api(trained_platform, batch):
    detail = trained_platform.client.get(f"/mlflow/run/{batch['run_id']}").json()
    assert detail["run_name"].startswith("batch_prediction_")
    assert detail["params"]["input_file"] == "five flowers.csv"
    assert detail["artifacts"][0]["path"] == names.PREDICTIONS_ARTIFACT
    assert detail["artifacts"][0]["size_bytes"] > 0


# -- the caller's mistakes --------------------------------------------------------------------------


def batch_csv(frame_change) -> bytes:
    frame = pd.DataFrame(ROWS)
    return csv_bytes(frame_change(frame))


def _semicolons() -> bytes:
    buffer = io.StringIO()
    pd.DataFrame(ROWS).to_csv(buffer, sep=";", index=False)
    return buffer.getvalue().encode()


@pytest.mark.parametrize(
    "content, status, fragments",
    [
        (batch_csv(lambda f: f.drop(columns=["petal_width"])), 422, ["lacks", "'petal_width'"]),
        (
            batch_csv(lambda f: f.drop(columns=["sepal_length", "sepal_width"])),
            422,
            ["'sepal_length'", "'sepal_width'"],
        ),
        (
            batch_csv(lambda f: f.astype({"petal_length": object}).assign(petal_length=[1.4, "long", 1.5, 6.1, 1.4])),
            422,
            ["'petal_length'", "numeric", "[2]", "long"],
        ),
        (batch_csv(lambda f: f.assign(sepal_width=[3.5, None, 3.0, 3.0, 3.5])), 422, ["'sepal_width'", "blank", "[2]"]),
        (b"", 400, ["empty"]),
        (b"sepal_length,sepal_width,petal_length,petal_width\n", 400, ["no data rows"]),
        (
            "sepal_length,sepal_width,petal_length,petal_width,note\n5.1,3.5,1.4,0.2,d\u00e9j\u00e0\n".encode("cp1252"),
            400,
            ["UTF-8"],
        ),
        (_semicolons(), 400, ["semicolon"]),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 400, ["UTF-8"]),
    ],
    ids=[
        "missing-column",
        "missing-columns",
        "text-cell",
        "blank-cell",
        "empty",
        "header-only",
        "cp1252",
        "semicolon",
        "binary",
    ],
)
def test_bad_batch_files_are_refused_clearly(trained_platform, content, status, fragments):
    wait_for_writer(trained_platform.client)
    before = len(all_runs(trained_platform.mlflow, INFERENCE_EXPERIMENT))
    response = trained_platform.client.post("/predict_batch", files={"file": ("bad.csv", content, "text/csv")})
    assert_error(response, status, *fragments)
    assert len(all_runs(trained_platform.mlflow, INFERENCE_EXPERIMENT)) == before
    assert_no_running_runs(trained_platform)


def test_batch_without_a_file_is_refused(trained_platform):
    # A URL-encoded form cannot carry a file: the media type is refused and says what to send.
    response = trained_platform.client.post("/predict_batch", data={"note": "no file"})
    assert_error(response, 415, "multipart form data", "'file'")
    # Multipart without the file part: the field sent instead is named, not ignored.
    response = trained_platform.client.post("/predict_batch", files={"note": (None, "no file")})
    assert_error(response, 422, "Unknown form field 'note'")
    # A browser's file input with nothing chosen sends an empty part with filename="".
    nothing_chosen = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename=""\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n\r\n--b--\r\n"
    )
    headers = {"content-type": "multipart/form-data; boundary=b"}
    response = trained_platform.client.post("/predict_batch", content=nothing_chosen, headers=headers)
    assert_error(response, 422, "No file was sent")

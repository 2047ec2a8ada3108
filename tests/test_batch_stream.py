"""POST /predict_batch streamed: the first rows inline, the full predictions as a download, errors by row."""

import io
import re

import numpy as np
import pandas as pd
import pytest

from iris_platform.ml import batch_stream
from iris_platform.ml.model_store import ModelStore
from tests.helpers.api import FAST_TREES, assert_error, predict_batch, train
from tests.helpers.data import IRIS_CLASSES, IRIS_FEATURES, SKLEARN_HEADERS, csv_bytes, iris_frame
from tests.helpers.mlflow_reads import assert_no_running_runs, read_artifact_csv, run_ids
from tests.helpers.platform import open_platform

INLINE = 50
ROWS = 5000
PREDICTION_COLUMNS = ["predicted_class", "confidence", *[f"prob_{c}" for c in IRIS_CLASSES]]
# scikit-learn headers, shuffled, with a text column the model does not use (some cells need quoting).
COLUMNS = ["note", "petal width (cm)", "sepal length (cm)", "petal length (cm)", "sepal width (cm)"]
FEATURE_OF = dict(zip(SKLEARN_HEADERS, IRIS_FEATURES, strict=False))


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with open_platform(tmp_path_factory.mktemp("stream"), batch_inline_rows=INLINE) as platform:
        platform.trained = train(platform.client, n_estimators=FAST_TREES)
        yield platform


@pytest.fixture(scope="module")
def estimator(platform):
    store = ModelStore(platform.models_dir)
    return store.load(platform.trained["model_metadata"]["model_file"]).estimator


def flowers(rows: int, seed: int = 0) -> pd.DataFrame:
    """`rows` Iris-like flowers (measurements jittered, one decimal) under the columns above."""
    base = iris_frame(headers=SKLEARN_HEADERS)
    rng = np.random.default_rng(seed)
    picked = base.iloc[rng.integers(0, len(base), rows)].reset_index(drop=True)
    frame = (picked[SKLEARN_HEADERS] + rng.normal(0, 0.2, (rows, 4))).round(1).clip(lower=0.1)
    notes = [f"flower {i}" if i % 7 else f'flower {i}, "quoted"' for i in range(rows)]
    frame.insert(0, "note", notes)
    return frame[COLUMNS]


def sklearn_classes(estimator, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    X = frame[SKLEARN_HEADERS].rename(columns=FEATURE_OF)[IRIS_FEATURES].to_numpy(dtype=float)
    proba = estimator.predict_proba(pd.DataFrame(X, columns=IRIS_FEATURES))
    return proba, np.argmax(proba, axis=1)


@pytest.fixture(scope="module")
def big(platform):
    frame = flowers(ROWS)
    return frame, predict_batch(platform.client, csv_bytes(frame), filename="five thousand.csv")


@pytest.fixture(scope="module")
def downloaded(platform, big):
    response = platform.client.get(big[1]["predictions_url"])
    assert response.status_code == 200, response.text
    return pd.read_csv(io.BytesIO(response.content), dtype={"note": str})


def test_a_large_batch_answers_the_first_rows_and_a_download_url(big):
    frame, body = big
    assert body["status"] == "success"
    assert body["total_samples"] == ROWS
    assert body["truncated"] is True
    assert len(body["predictions"]) == INLINE
    assert [r["sample_index"] for r in body["predictions"]] == list(range(INLINE))
    assert body["predictions_url"] == f"/mlflow/run/{body['run_id']}/artifacts/predictions.csv"
    assert sum(body["batch_statistics"]["prediction_distribution"].values()) == ROWS


def test_the_download_holds_every_row_in_input_order(big, downloaded, estimator):
    frame, body = big
    assert list(downloaded.columns) == COLUMNS + PREDICTION_COLUMNS
    assert len(downloaded) == ROWS
    pd.testing.assert_frame_equal(downloaded[COLUMNS], frame, check_dtype=False)

    proba, classes = sklearn_classes(estimator, frame)
    assert list(downloaded["predicted_class"]) == [IRIS_CLASSES[c] for c in classes]
    got = downloaded[[f"prob_{c}" for c in IRIS_CLASSES]].to_numpy()
    assert np.abs(got - proba).max() <= 1e-5
    assert np.allclose(downloaded["confidence"], proba.max(axis=1), atol=1e-5)

    assert len(body["predictions"]) == INLINE
    inline_rows = zip(downloaded.head(INLINE).itertuples(index=False), body["predictions"], classes, strict=False)
    for row, inline, expected in inline_rows:  # the answer's first rows, the download's and scikit-learn's agree
        assert inline["prediction"] == expected
        assert row.predicted_class == inline["class_name"] == IRIS_CLASSES[expected]
        assert row.confidence == pytest.approx(inline["confidence"])
        assert {c: getattr(row, f"prob_{c}") for c in IRIS_CLASSES} == pytest.approx(inline["probabilities"])


def test_the_inline_rows_carry_the_inputs_columns_and_values(big):
    frame, body = big
    for row, (_, expected) in zip(body["predictions"], frame.head(INLINE).iterrows(), strict=True):
        assert list(row["input"]) == COLUMNS  # the file's names and order, the text column included
        assert row["input"] == expected.to_dict()
        assert type(row["input"]["note"]) is str


def test_the_download_writes_cells_as_written_and_probabilities_at_one_precision(platform, big):
    frame, body = big
    text = platform.client.get(body["predictions_url"]).content.decode()
    lines = text.splitlines()
    assert len(lines) == ROWS + 1
    decimals = batch_stream.PROBABILITY_DECIMALS
    fixed = re.compile(rf"[01]\.\d{{{decimals}}}")
    notes = list(frame["note"])
    for index, line in enumerate(lines[1:]):
        note = notes[index]
        if '"' in note:  # the only cells that need quotes; nothing else is quoted
            quoted = '"' + note.replace('"', '""') + '"'
            assert line.startswith(quoted + ","), line
            line = line[len(quoted) :]
        else:
            assert '"' not in line, line
            line = line[len(note) :]
        cells = line.split(",")[1:]
        assert cells[:4] == [f"{v:.1f}" for v in frame.iloc[index, 1:]]  # the numbers as written, unquoted
        assert all(fixed.fullmatch(c) for c in cells[5:]), cells
    # The written probabilities are the served ones, to the last decimal.
    for line, row in zip(lines[1 : INLINE + 1], body["predictions"], strict=True):
        written = [float(c) for c in line.rsplit(",", 4)[1:]]
        served = [row["confidence"], *(row["probabilities"][c] for c in IRIS_CLASSES)]
        assert np.abs(np.array(written) - served).max() <= 0.5 * 10**-decimals + 1e-12


def test_the_inline_rows_over_several_blocks_give_each_column_one_type(platform, monkeypatch):
    monkeypatch.setattr(batch_stream, "BLOCK_BYTES", 1024)  # about 20 rows a block: the 50 inline rows span 3
    frame = flowers(INLINE + 10, seed=7)
    frame["tag"] = [str(i) for i in range(len(frame))]
    frame["count"] = [str(i) for i in range(len(frame))]
    frame.loc[45, "tag"] = "x"  # a text cell in the third block: the whole column is text
    body = predict_batch(platform.client, csv_bytes(frame))
    assert len(body["predictions"]) == INLINE and body["truncated"] is True
    assert [r["sample_index"] for r in body["predictions"]] == list(range(INLINE))
    assert [r["input"]["tag"] for r in body["predictions"]] == [*map(str, range(45)), "x", *map(str, range(46, 50))]
    assert [r["input"]["count"] for r in body["predictions"]] == list(range(INLINE))


def test_a_block_written_in_several_steps_is_the_same_file(platform, monkeypatch):
    content = csv_bytes(flowers(300, seed=9))
    whole = platform.client.get(predict_batch(platform.client, content)["predictions_url"]).content
    monkeypatch.setattr(batch_stream, "_PROBABILITY_TEXT_BYTES", 1000)  # 27 rows a step, as for a model of many classes
    steps = platform.client.get(predict_batch(platform.client, content)["predictions_url"]).content
    assert steps == whole and whole.count(b"\n") == 301


def test_a_file_of_many_columns_lists_fewer_inline_rows(platform, monkeypatch):
    monkeypatch.setattr(batch_stream, "INLINE_INPUT_VALUES", 100)
    frame = flowers(30, seed=8)
    for i in range(15):
        frame[f"extra_{i}"] = i  # with the note and the 4 features: 20 input columns, so 5 rows
    body = predict_batch(platform.client, csv_bytes(frame))
    assert body["total_samples"] == 30
    assert len(body["predictions"]) == 5 and body["truncated"] is True
    assert all(len(r["input"]) == 20 for r in body["predictions"])
    small = predict_batch(platform.client, csv_bytes(frame.head(5)))
    assert len(small["predictions"]) == 5 and small["truncated"] is False


def test_statistics_agree_with_the_download_and_the_run(platform, big, downloaded):
    frame, body = big
    stats = body["batch_statistics"]
    counts = downloaded["predicted_class"].value_counts()
    assert stats["prediction_distribution"] == {c: int(counts.get(c, 0)) for c in IRIS_CLASSES}
    assert stats["avg_confidence"] == pytest.approx(downloaded["confidence"].mean())
    assert stats["min_confidence"] == pytest.approx(downloaded["confidence"].min())
    assert stats["max_confidence"] == pytest.approx(downloaded["confidence"].max())

    run = platform.mlflow.get_run(body["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["input_file"] == "five thousand.csv"
    assert run.data.metrics["total_samples"] == ROWS
    for c in IRIS_CLASSES:
        assert run.data.metrics[f"count_{c}"] == counts.get(c, 0)
        assert run.data.metrics[f"percentage_{c}"] == pytest.approx(100 * counts.get(c, 0) / ROWS)


def test_the_download_is_the_runs_artifact(platform, big, downloaded, tmp_path):
    artifact = read_artifact_csv(platform.mlflow, big[1]["run_id"], "predictions.csv", tmp_path)
    pd.testing.assert_frame_equal(artifact, downloaded, check_dtype=False)


def test_a_predictions_file_sent_again_gets_fresh_predictions_without_duplicate_columns(platform, big, estimator):
    frame, first = big
    assert first["replaced_columns"] == []
    again = flowers(200, seed=5)
    stale = again.assign(predicted_class="virginica", confidence=0.0, prob_setosa=0.5)  # a column in the middle too
    stale = stale[["predicted_class"] + COLUMNS + ["confidence", "prob_setosa"]]
    body = predict_batch(platform.client, csv_bytes(stale))
    assert body["replaced_columns"] == ["predicted_class", "confidence", "prob_setosa"]
    out = pd.read_csv(io.BytesIO(platform.client.get(body["predictions_url"]).content), dtype={"note": str})
    assert list(out.columns) == COLUMNS + PREDICTION_COLUMNS  # each name once: the new values replace the old
    proba, classes = sklearn_classes(estimator, again)
    assert list(out["predicted_class"]) == [IRIS_CLASSES[c] for c in classes]
    assert np.abs(out[[f"prob_{c}" for c in IRIS_CLASSES]].to_numpy() - proba).max() <= 1e-5


def test_spaces_around_header_names_are_read_as_the_names(platform, estimator):
    frame = flowers(20, seed=6)
    content = csv_bytes(frame).replace(b",", b" , ", len(COLUMNS) - 1)  # "note , petal width (cm) , ..."
    content = content.replace(b"\n", b",  id\n", 1)  # and an extra column, " id", with numbers
    lines = content.decode().splitlines()
    content = "\n".join([lines[0]] + [f"{line},{i}" for i, line in enumerate(lines[1:])]).encode() + b"\n"
    body = predict_batch(platform.client, content)
    assert body["total_samples"] == 20 and body["replaced_columns"] == []
    _, classes = sklearn_classes(estimator, frame)
    assert [r["class_name"] for r in body["predictions"]] == [IRIS_CLASSES[c] for c in classes]
    out = pd.read_csv(io.BytesIO(platform.client.get(body["predictions_url"]).content), dtype={"note": str})
    assert list(out.columns) == COLUMNS + ["id"] + PREDICTION_COLUMNS
    assert list(out["id"]) == list(range(20))


def test_a_small_batch_lists_every_row(platform, estimator):
    frame = flowers(INLINE, seed=1)
    body = predict_batch(platform.client, csv_bytes(frame))
    assert body["truncated"] is False
    assert body["total_samples"] == INLINE
    assert [r["sample_index"] for r in body["predictions"]] == list(range(INLINE))
    proba, classes = sklearn_classes(estimator, frame)
    assert [r["class_name"] for r in body["predictions"]] == [IRIS_CLASSES[c] for c in classes]
    got = np.array([[r["probabilities"][c] for c in IRIS_CLASSES] for r in body["predictions"]])
    assert np.abs(got - proba).max() <= 1e-5
    downloaded = pd.read_csv(io.BytesIO(platform.client.get(body["predictions_url"]).content))
    assert len(downloaded) == INLINE


# -- a bad cell far into a file of many blocks ------------------------------------------------------


@pytest.mark.parametrize(
    "cell, row, fragments",
    [
        ("abc", 3001, ["must be numeric", "3001", "abc"]),
        ("", 4321, ["blank", "4321"]),
        ("inf", 2222, ["blank, nan or infinite", "2222"]),
        ("nan", 4999, ["4999"]),
    ],
    ids=["text", "blank", "infinite", "nan"],
)
def test_a_bad_cell_deep_in_the_file_names_its_column_and_row(platform, monkeypatch, cell, row, fragments):
    monkeypatch.setattr(batch_stream, "BLOCK_BYTES", 4096)  # ~150 KB of CSV: over 30 blocks
    frame = flowers(ROWS, seed=2).astype({"petal width (cm)": object})
    frame.loc[row - 1, "petal width (cm)"] = cell  # data row `row` (1-based, after the header)
    content = csv_bytes(frame)
    assert len(content) > 30 * 4096
    before = run_ids(platform.mlflow)
    detail = assert_error(
        platform.client.post("/predict_batch", files={"file": ("bad.csv", content, "text/csv")}),
        422,
        "petal width (cm)",
        *fragments,
    )
    assert f"row {row}" in detail or f"[{row}]" in detail, detail
    assert run_ids(platform.mlflow) == before
    assert_no_running_runs(platform)


@pytest.mark.parametrize("where", ["last column", "first column"])
def test_an_unclosed_quote_deep_in_the_file_is_refused_not_read_to_the_end(platform, monkeypatch, where):
    # pyarrow reads an unclosed quote in the last column to the end of the file as one cell: without
    # a check, every row after it would silently go unpredicted.
    monkeypatch.setattr(batch_stream, "BLOCK_BYTES", 4096)
    frame = flowers(ROWS, seed=3)
    frame["note"] = [f"flower {i}" for i in range(ROWS)]  # no other quote in the file to close it
    if where == "last column":
        frame = frame[[c for c in COLUMNS if c != "note"] + ["note"]]
    lines = csv_bytes(frame).decode().splitlines(keepends=True)
    # In the last block: an unclosed quote in an earlier block makes pyarrow's chunker fail loudly.
    row = ROWS - 20 if where == "last column" else 3210
    lines[row] = lines[row].replace("flower", '"flower', 1) if where == "last column" else '"' + lines[row]
    before = run_ids(platform.mlflow)
    detail = assert_error(
        platform.client.post("/predict_batch", files={"file": ("quote.csv", "".join(lines).encode(), "text/csv")}),
        400,
        "unclosed quote",
        "runs across lines",
    )
    if where == "last column":
        assert f"data row {row}" in detail and "'note'" in detail, detail
    assert run_ids(platform.mlflow) == before
    assert_no_running_runs(platform)


# -- downloading artifacts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "nope.csv",
        "..%2F..%2Fetc%2Fpasswd",
        "../../etc/passwd",
        "%2Fetc%2Fpasswd",
        "predictions.csv%2F..%2F..%2Fmlflow.db",
        "..%2F..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    ],
)
def test_the_artifact_route_refuses_anything_the_run_does_not_list(platform, big, path):
    response = platform.client.get(f"/mlflow/run/{big[1]['run_id']}/artifacts/{path}")
    assert 400 <= response.status_code < 500, response.text
    assert b"root:" not in response.content
    assert b"SQLite format" not in response.content
    if path == "nope.csv":
        assert_error(response, 404, "no artifact", "nope.csv", "predictions.csv")


def test_the_artifact_route_refuses_bad_and_unknown_run_ids(platform):
    assert_error(platform.client.get("/mlflow/run/not-a-run/artifacts/predictions.csv"), 422, "32 hexadecimal")
    assert_error(platform.client.get(f"/mlflow/run/{'0' * 32}/artifacts/predictions.csv"), 404, "0" * 32)
    training_run = platform.trained["run_id"]  # a real run without that artifact
    assert_error(platform.client.get(f"/mlflow/run/{training_run}/artifacts/predictions.csv"), 404, "no artifact")

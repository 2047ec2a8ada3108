"""One table of bad (and borderline) requests: each gets its expected 4xx and a `detail` naming the problem.

After every request the same invariants are checked: the status is under 500; a 4xx carries a
non-empty `detail` string with the row's fragments; a run the request started ended FAILED with a
`failure_reason` tag and no run is left RUNNING; the models folder holds exactly what it held, all
of it complete models (no temporary or partial file); and the current model is unchanged, both as
GET /models reports it and by a fixed prediction's answer.

Rows answered 200 are borderline input that is not a mistake (extra columns in a batch, 1e308,
negative measurements): their row checks what the answer must then say.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import pickle
import select
import shutil
import socket
import struct
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow import MlflowClient

from iris_platform.ml.features import FLOAT32_MAX
from iris_platform.ml.inference import Predictor
from iris_platform.ml.model_store import ModelStore
from tests.helpers.api import FAST_TREES, predict, train
from tests.helpers.data import IRIS_FEATURES, SETOSA, csv_bytes, iris_frame
from tests.helpers.mlflow_reads import read_artifact_csv
from tests.helpers.raw_http import read_answer, status_and_detail
from tests.reliability.helpers import assert_only_complete_models, models_snapshot, open_app, run_index, running_runs

LIMIT_MB = 1  # both body limits of the app under test: over-limit files stay small and fast
# Between versicolor and virginica: its probabilities differ from one forest to the next.
BORDER = {"sepal_length": 6.0, "sepal_width": 2.7, "petal_length": 4.9, "petal_width": 1.6}
HEADER = ",".join(IRIS_FEATURES) + ",species"


# -- payloads --------------------------------------------------------------------------------------


def iris_csv() -> bytes:
    return csv_bytes(iris_frame())


def with_cell(row: int, column: str, value: str) -> bytes:
    """The Iris CSV with the cell at data row `row` (1-based) of `column` replaced by `value`, as written."""
    lines = iris_csv().decode().splitlines()
    header = lines[0].split(",")
    cells = lines[row].split(",")
    cells[header.index(column)] = value
    lines[row] = ",".join(cells)
    return ("\n".join(lines) + "\n").encode()


def png_bytes() -> bytes:
    """A real 1x1 PNG image: signature, IHDR, IDAT, IEND."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


def zip_bytes() -> bytes:
    """A real zip archive (PK\\x03\\x04...) holding the Iris CSV."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("iris.csv", iris_csv())
    return buffer.getvalue()


def wide_csv(columns: int = 20_000, rows: int = 5) -> bytes:
    header = ",".join(f"c{i}" for i in range(columns)) + ",species"
    body = "\n".join(",".join(str((i * j) % 7) for i in range(columns)) + f",{'ab'[j % 2]}" for j in range(rows))
    return f"{header}\n{body}\n".encode()


def over_limit_csv() -> bytes:
    """A valid Iris CSV of about 1.5 times the body limit."""
    lines = iris_csv().decode().splitlines()
    rows = lines[1:]
    repeat = math.ceil(1.5 * LIMIT_MB * 1024 * 1024 / len("\n".join(rows)))
    return ("\n".join([lines[0]] + rows * repeat) + "\n").encode()


def multipart_body(file_content: bytes, filename: str = "data.csv", **fields: str) -> tuple[bytes, str]:
    boundary = "reliability-boundary-7d41"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: text/csv\r\n\r\n".encode()
        + file_content
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class Marker:
    """Unpickling this object creates the file `path`: proof that a pickle was (or was not) loaded."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


# -- the app under test ----------------------------------------------------------------------------


@dataclass
class Bench:
    platform: Any
    model_path: str
    model_file: str
    run_id: str
    reference: dict[str, Any]
    scratch: Path

    @property
    def client(self):
        return self.platform.client

    @property
    def models_dir(self) -> Path:
        return Path(self.platform.settings.models_dir)

    @property
    def mlflow(self) -> MlflowClient:
        return self.platform.mlflow

    def marker(self, name: str) -> Path:
        return self.scratch / f"unpickled-{name}"


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bad-inputs")
    with open_app(directory, max_upload_mb=LIMIT_MB, max_batch_upload_mb=LIMIT_MB) as platform:
        body = train(platform.client, n_estimators=FAST_TREES)
        scratch = directory / "scratch"
        scratch.mkdir()
        # The marker pickle works: loading it creates its file (so a missing file later means "not loaded").
        control = scratch / "control"
        pickle.loads(pickle.dumps(Marker(control))).close()  # what it loads is the file it opened
        assert control.exists()
        yield Bench(
            platform,
            body["model_path"],
            Path(body["model_path"]).name,
            body["run_id"],
            predict(platform.client, BORDER),
            scratch,
        )


# -- the table -------------------------------------------------------------------------------------

Send = Callable[[Bench], Any]


@dataclass(frozen=True)
class Case:
    group: str
    name: str
    route: str
    sent_as: str
    send: Send
    status: int
    fragments: tuple[str, ...] = ()
    prepare: Callable[[Bench], set[str]] | None = None  # plants files in the models folder; returns their names
    check: Callable[[Bench, Any], None] | None = None  # more checks on the answer (all 200 rows have one)

    @property
    def id(self) -> str:
        return f"{self.route.split()[-1].strip('/').replace('/', '.')}-{self.name}".replace(" ", "-")


def post_file(route: str, content: bytes, filename: str = "data.csv", **form: str) -> Send:
    return lambda b: b.client.post(route, files={"file": (filename, content, "text/csv")}, data=form or None)


def post_file_chunked(route: str, content: bytes, **form: str) -> Send:
    """The same multipart body sent with Transfer-Encoding: chunked (no Content-Length to refuse it by)."""

    def send(b: Bench):
        body, content_type = multipart_body(content, **form)
        chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
        return b.client.post(route, content=chunks, headers={"content-type": content_type})

    return send


def post_json(value: Any) -> Send:
    return lambda b: b.client.post("/predict", json=value)


def post_raw(content: bytes, content_type: str | None = "application/json") -> Send:
    headers = {"content-type": content_type} if content_type else {}
    return lambda b: b.client.post("/predict", content=content, headers=headers)


def post_form(route: str, **form: Any) -> Send:
    return lambda b: b.client.post(route, data=form)


def get(url: str | Callable[[Bench], str], **params: Any) -> Send:
    return lambda b: b.client.get(url(b) if callable(url) else url, params=params or None)


def features(**changes: Any) -> dict[str, Any]:
    return {**SETOSA, **changes}


def without(name: str) -> dict[str, Any]:
    return {k: v for k, v in SETOSA.items() if k != name}


# Answers to borderline input that is accepted.


def check_extra_columns_kept(b: Bench, response) -> None:
    """Extra columns are kept in the predictions artifact as written, and ignored for prediction."""
    body = response.json()
    frame = pd.read_csv(io.BytesIO(EXTRA_COLUMNS_CSV))
    table = read_artifact_csv(b.mlflow, body["run_id"], "predictions.csv", b.scratch / body["run_id"])
    assert list(table.columns[: len(frame.columns)]) == list(frame.columns)
    assert table["id"].tolist() == frame["id"].tolist()
    assert table["note"].tolist() == frame["note"].tolist()
    plain = b.client.post("/predict_batch", files={"file": ("plain.csv", csv_bytes(frame[IRIS_FEATURES]), "text/csv")})
    assert plain.status_code == 200, plain.text
    assert [r["probabilities"] for r in body["predictions"]] == [
        r["probabilities"] for r in plain.json()["predictions"]
    ]


def check_all_rows_predicted(b: Bench, response) -> None:
    assert response.json()["total_samples"] == 150


def check_huge_cell_answered(b: Bench, response) -> None:
    body = response.json()
    assert body["total_samples"] == 150
    first = body["predictions"][0]
    same = predict(b.client, features(sepal_length=FLOAT32_MAX, sepal_width=3.5, petal_length=1.4, petal_width=0.2))
    assert first["probabilities"] == pytest.approx(same["probabilities"])


def check_flagged(*flagged: str) -> Callable[[Bench, Any], None]:
    def check(b: Bench, response) -> None:
        body = response.json()
        assert body["status"] == "success" and body["model_path"] == b.model_path
        assert sorted(body["out_of_range_features"]) == sorted(flagged)
        assert math.isclose(sum(body["probabilities"].values()), 1.0, abs_tol=1e-6)

    return check


def check_1e308(b: Bench, response) -> None:
    check_flagged("sepal_length")(b, response)
    # Both runtimes answer it: onnxruntime (serving) and scikit-learn (the fallback), which refuses
    # values beyond float32 on its own; the answer is that of the largest float32.
    stored = ModelStore(b.models_dir).load(b.model_file)
    sklearn_answer = Predictor(stored).predict_one([1e308, 3.5, 1.4, 0.2])
    assert sklearn_answer.class_name == response.json()["class_name"]
    assert sklearn_answer.probabilities == pytest.approx(response.json()["probabilities"], abs=1e-6)


EXTRA_COLUMNS_CSV = csv_bytes(
    iris_frame().iloc[[0, 1, 50, 51, 100, 101]].assign(id=[11, 12, 13, 14, 15, 16], note=["a", "b", "c", "d", "e", "f"])
)


# Planted files for POST /load_model.


def plant_marker_pickle(name: str, metadata: str | None = None, marker: str = "") -> Callable[[Bench], set[str]]:
    """A pickle that would create a marker file when unpickled, with or without a metadata file.

    metadata: None (no metadata file), "wrong-sha" (a copy of the real metadata: its SHA-256 is the
    real model's, not this file's), "no-sha" (the metadata without a sha256), "forged" (the pickle's
    own SHA-256, but none of the rest of what training writes) or "not-an-object" (JSON `[]`).
    """

    def prepare(b: Bench) -> set[str]:
        planted = {name}
        blob = pickle.dumps(Marker(b.marker(marker or name)))
        (b.models_dir / name).write_bytes(blob)
        if metadata is not None:
            real = json.loads((b.models_dir / ModelStore.metadata_name(b.model_file)).read_text())
            real["model_file"] = name
            real.pop("onnx_file", None)
            real.pop("profile_file", None)
            if metadata == "no-sha":
                real.pop("sha256")
            elif metadata == "forged":
                real = {"model_file": name, "sha256": hashlib.sha256(blob).hexdigest()}
            elif metadata == "not-an-object":
                real = []
            meta_name = ModelStore.metadata_name(name)
            (b.models_dir / meta_name).write_text(json.dumps(real))
            planted.add(meta_name)
        return planted

    return prepare


def check_listing_skips_stray(b: Bench, response) -> None:
    listing = response.json()
    assert listing["current_model"] == b.model_path
    assert "iris_model_stray.pkl" not in {m["filename"] for m in listing["models"]}
    assert b.model_file in {m["filename"] for m in listing["models"]}


def plant_model_with_bad_onnx(b: Bench) -> set[str]:
    name = "iris_model_badonnx.pkl"
    shutil.copy(b.models_dir / b.model_file, b.models_dir / name)
    metadata = json.loads((b.models_dir / ModelStore.metadata_name(b.model_file)).read_text())
    metadata.update(model_file=name, onnx_file=ModelStore.onnx_name(name))
    metadata.pop("profile_file", None)
    (b.models_dir / ModelStore.onnx_name(name)).write_bytes(b"not the ONNX file that was trained")
    (b.models_dir / ModelStore.metadata_name(name)).write_text(json.dumps(metadata))
    return {name, ModelStore.onnx_name(name), ModelStore.metadata_name(name)}


def copy_model_elsewhere(b: Bench) -> set[str]:
    elsewhere = b.scratch / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    for name in (b.model_file, ModelStore.metadata_name(b.model_file), ModelStore.onnx_name(b.model_file)):
        if (b.models_dir / name).exists():
            shutil.copy(b.models_dir / name, elsewhere / name)
    return set()


def load(path: str | Callable[[Bench], str]) -> Send:
    return lambda b: b.client.post("/load_model", data={"model_path": path(b) if callable(path) else path})


def not_unpickled(*markers: str) -> Callable[[Bench, Any], None]:
    def check(b: Bench, response) -> None:
        for name in markers:
            assert not b.marker(name).exists(), f"{name} was unpickled"

    return check


def csv_cases() -> list[Case]:
    """The CSV mistakes, each sent to both upload routes (with the answer each route gives)."""
    H = HEADER + "\n"
    # name, content, (train status, fragments), (batch status, fragments); None: not applicable there
    table: list[tuple[str, bytes, tuple | None, tuple | None]] = [
        ("empty file", b"", (400, ("empty",)), (400, ("empty",))),
        ("header only", H.encode(), (400, ("header but no data rows",)), (400, ("header but no data rows",))),
        (
            "not UTF-8 (Latin-1)",
            (H + "5.1,3.5,1.4,0.2,s\u00e9tosa\n4.9,3.0,1.4,0.2,virginica\n").encode("latin-1"),
            (400, ("not UTF-8",)),
            (400, ("not UTF-8",)),
        ),
        ("UTF-16 text", iris_csv().decode().encode("utf-16"), (400, ("binary", "UTF-8")), (400, ("binary", "UTF-8"))),
        ("a PNG image", png_bytes(), (400, ("binary", "not UTF-8 CSV")), (400, ("binary", "not UTF-8 CSV"))),
        ("a zip archive", zip_bytes(), (400, ("binary", "not UTF-8 CSV")), (400, ("binary", "not UTF-8 CSV"))),
        ("semicolon-delimited", iris_csv().replace(b",", b";"), (400, ("semicolon",)), (400, ("semicolon",))),
        ("tab-delimited", iris_csv().replace(b",", b"\t"), (400, ("tab-delimited",)), (400, ("tab-delimited",))),
        (
            "missing feature column",
            csv_bytes(iris_frame().drop(columns=["petal_width"])),
            None,
            (422, ("lacks the feature column", "petal_width")),
        ),
        (
            "no feature column",
            b"species\nsetosa\nvirginica\nsetosa\n",
            (422, ("only the target column",)),
            (422, ("lacks the feature column",)),
        ),
        (
            "non-numeric cell",
            with_cell(3, "sepal_width", "abc"),
            (422, ("sepal_width", "numeric", "abc", "[3]")),
            (422, ("sepal_width", "numeric", "abc")),
        ),
        (
            "blank cell",
            with_cell(4, "petal_length", ""),
            (422, ("petal_length", "blank", "[4]")),
            (422, ("petal_length", "blank", "row")),
        ),
        (
            "NaN cell",
            with_cell(5, "petal_width", "NaN"),
            (422, ("petal_width", "NaN", "[5]")),
            (422, ("petal_width", "NaN", "row 5")),
        ),
        (
            "infinite cell",
            with_cell(6, "sepal_length", "inf"),
            (422, ("sepal_length", "infinite", "[6]")),
            (422, ("sepal_length", "infinite", "row 6")),
        ),
        (
            "-infinite cell",
            with_cell(7, "sepal_length", "-Infinity"),
            (422, ("sepal_length", "infinite")),
            (422, ("sepal_length", "infinite")),
        ),
        (
            "1e308 cell (finite, beyond float32)",
            with_cell(1, "sepal_length", "1e308"),
            (422, ("sepal_length", "too large", "[1]")),
            None,
        ),  # batch: accepted, see the borderline rows
        (
            "duplicate column names",
            iris_csv().replace(b"sepal_width", b"sepal_length", 1),
            (400, ("duplicate", "sepal_length")),
            (400, ("duplicate", "sepal_length")),
        ),
        (
            "two names, one normalised name",
            iris_csv().replace(b"sepal_width", b"Sepal Length (cm)", 1),
            (422, ("both normalise", "sepal_length")),
            (422, ("both normalise", "sepal_length")),
        ),
        (
            "header with a blank name",
            iris_csv().replace(b"petal_width", b"", 1),
            (400, ("no name", "[4]")),
            (400, ("no name", "[4]")),
        ),
        (
            "first row has an extra field",
            (H + "5.1,3.5,1.4,0.2,setosa,extra\n4.9,3.0,1.4,0.2,virginica\n").encode(),
            (400, ("could not be parsed", "more fields")),
            (400, ("could not be parsed", "expected 5 columns")),
        ),
        (
            "later row has an extra field",
            (H + "5.1,3.5,1.4,0.2,setosa\n4.9,3.0,1.4,0.2,virginica,x,y\n").encode(),
            (400, ("could not be parsed",)),
            (400, ("could not be parsed",)),
        ),
        (
            "short row",
            (H + "5.1,3.5,1.4\n4.9,3.0,1.4,0.2,virginica\n5.0,3.0,1.0,0.2,setosa\n").encode(),
            (422, ("petal_width", "blank", "[1]")),
            (400, ("could not be parsed", "expected 5 columns")),
        ),
        (
            "unclosed quote",
            (H + '"5.1,3.5,1.4,0.2,setosa\n4.9,3.0,1.4,0.2,virginica\n').encode(),
            (400, ("unclosed double quote", "data row 1 (line 2)", "'sepal_length'")),
            (400, ("could not be parsed",)),
        ),
        (
            "unclosed quote in the last column",
            (H + '5.1,3.5,1.4,0.2,"setosa\n4.9,3.0,1.4,0.2,virginica\n').encode(),
            (400, ("unclosed double quote", "data row 1 (line 2)", "'species'")),
            (400, ("unclosed quote", "'species'", "data row 1")),
        ),
        (
            "CR-only line endings, one class",
            (H + "5.1,3.5,1.4,0.2,setosa\n4.9,3.0,1.4,0.2,setosa\n").replace("\n", "\r").encode(),
            (422, ("only one class",)),
            None,
        ),  # batch: accepted, see the borderline rows
        (
            "target with one class",
            (H + "5.1,3.5,1.4,0.2,setosa\n4.9,3.0,1.4,0.2,setosa\n4.7,3.2,1.3,0.2,setosa\n").encode(),
            (422, ("only one class", "'setosa'")),
            None,
        ),
        (
            "no more rows than classes",
            (H + "5.1,3.5,1.4,0.2,setosa\n6.0,2.9,4.5,1.5,versicolor\n6.7,3.0,5.8,2.3,virginica\n").encode(),
            (422, ("3 rows for 3 classes", "more rows than classes")),
            None,
        ),
        (
            "blank target cell",
            (H + "5.1,3.5,1.4,0.2,setosa\n4.9,3.0,1.4,0.2,\n4.7,3.2,1.3,0.2,virginica\n").encode(),
            (422, ("target column 'species'", "blank", "[2]")),
            None,
        ),
        (
            "non-integer numeric target",
            b"a,b,label\n1,2,0.5\n2,3,1.5\n3,4,0.5\n4,5,1.5\n",
            (422, ("non-integer",)),
            None,
        ),
        (
            "feature named like an inference param",
            b"model_path,b,label\n1,2,x\n2,3,y\n3,4,x\n4,5,y\n",
            (422, ("model_path", "clash")),
            None,
        ),
        (
            "column name without letters",
            b"???,b,label\n1,2,x\n2,3,y\n3,4,x\n4,5,y\n",
            (422, ("'???'", "no letters")),
            None,
        ),
        (
            "20,000 columns",
            wide_csv(),
            (422, ("20,001 columns", "at most 1,000")),
            (422, ("lacks the feature column", "20,001 in all")),
        ),
    ]
    cases = []
    for name, content, on_train, on_batch in table:
        for route, expected in (("POST /train", on_train), ("POST /predict_batch", on_batch)):
            if expected is None:
                continue
            path = route.split()[1]
            # impute=none: blank cells refused, as the table expects (the default fills them with the median).
            form = {"n_estimators": "5", "impute": "none"} if path == "/train" else {}
            cases.append(
                Case(
                    f"CSV upload to {path}",
                    name,
                    route,
                    "multipart file",
                    post_file(path, content, **form),
                    expected[0],
                    expected[1],
                )
            )
    cases.append(
        Case(
            "CSV upload to /train",
            "target_column not in the file",
            "POST /train",
            "multipart file",
            post_file("/train", iris_csv(), target_column="colour"),
            422,
            ("target_column 'colour'", "not a column", "species"),
        )
    )
    big = over_limit_csv()
    for path in ("/train", "/predict_batch"):
        cases.append(
            Case(
                f"CSV upload to {path}",
                "over the upload limit (declared length)",
                f"POST {path}",
                "multipart file",
                post_file(path, big),
                413,
                ("over this route's limit of 1 MB",),
            )
        )
        cases.append(
            Case(
                f"CSV upload to {path}",
                "over the upload limit (chunked)",
                f"POST {path}",
                "multipart, chunked",
                post_file_chunked(path, big),
                413,
                ("over this route's limit of 1 MB",),
            )
        )
    return cases


def model_choice_cases() -> list[Case]:
    """/train's model type, its hyperparameters and the cross-validation folds: each refusal names the field,
    the model type and the values allowed."""
    M = "model choice of /train"
    types = "'random_forest', 'extra_trees', 'hist_gradient_boosting', 'gradient_boosting', 'logistic_regression'"
    # Five rows of class 'c': at most 5 folds.
    rare = iris_frame().iloc[[*range(0, 50), *range(50, 100), *range(100, 105)]]
    return [
        Case(
            M,
            "unknown model_type",
            "POST /train",
            "JSON",
            lambda b: b.client.post("/train", json={"model_type": "xgboost"}),
            422,
            ("model_type must be one of", types, "'svc', 'knn'", "got 'xgboost'"),
        ),
        Case(
            M,
            "model_type of the wrong type",
            "POST /train",
            "JSON",
            lambda b: b.client.post("/train", json={"model_type": 3}),
            422,
            ("model_type", "valid string", types),
        ),
        Case(
            M,
            "another model type's hyperparameter",
            "POST /train",
            "form",
            post_form("/train", model_type="knn", n_estimators="5"),
            422,
            ("n_estimators does not apply to model_type 'knn'", "takes n_neighbors, weights"),
        ),
        Case(
            M,
            "learning_rate 0",
            "POST /train",
            "JSON",
            lambda b: b.client.post("/train", json={"model_type": "gradient_boosting", "learning_rate": 0}),
            422,
            ("learning_rate for model_type 'gradient_boosting'", "above 0 and at most 1", "got 0"),
        ),
        Case(
            M,
            "C -1",
            "POST /train",
            "form",
            post_form("/train", model_type="svc", C="-1"),
            422,
            ("C for model_type 'svc'", "above 0 and at most 1000000", "got -1"),
        ),
        Case(
            M,
            "C not a number",
            "POST /train",
            "form",
            post_form("/train", model_type="logistic_regression", C="much"),
            422,
            ("'C'", "valid number", "model_type 'logistic_regression'", "above 0 and at most 1000000"),
        ),
        Case(
            M,
            "kernel cubic",
            "POST /train",
            "JSON",
            lambda b: b.client.post("/train", json={"model_type": "svc", "kernel": "cubic"}),
            422,
            ("kernel for model_type 'svc'", "one of 'rbf', 'linear', 'poly', 'sigmoid'", "got 'cubic'"),
        ),
        Case(
            M,
            "max_depth null for gradient boosting",
            "POST /train",
            "JSON",
            lambda b: b.client.post("/train", json={"model_type": "gradient_boosting", "max_depth": None}),
            422,
            ("max_depth for model_type 'gradient_boosting'", "between 1 and 100", "got null"),
        ),
        Case(
            M,
            "n_neighbors over the training rows",
            "POST /train",
            "JSON",
            lambda b: b.client.post("/train", json={"model_type": "knn", "n_neighbors": 500}),
            422,
            ("n_neighbors for model_type 'knn'", "at most", "120 in the training split", "got 500"),
        ),
        Case(M, "cv_folds 1", "POST /train", "form", post_form("/train", cv_folds="1"), 422, ("cv_folds", "2 to 20")),
        Case(
            M,
            "cv_folds 21",
            "POST /train",
            "JSON",
            lambda b: b.client.post("/train", json={"cv_folds": 21}),
            422,
            ("cv_folds", "2 to 20", "got 21"),
        ),
        Case(
            M,
            "cv_folds over the smallest class",
            "POST /train",
            "multipart",
            post_file("/train", csv_bytes(rare), "rare.csv", cv_folds="6"),
            422,
            ("cv_folds=6", "smallest class ('virginica', 5 rows)", "from 2 to 5"),
        ),
    ]


def other_cases() -> list[Case]:
    T, P, L, R = "form fields of /train", "single prediction", "model loading", "run and prediction lookups"
    nan_json = json.dumps(SETOSA).replace("5.1", "NaN").encode()
    return [
        # -- training parameters
        Case(
            T,
            "n_estimators not a number",
            "POST /train",
            "form",
            post_form("/train", n_estimators="many"),
            422,
            ("n_estimators", "valid integer", "model_type 'random_forest'", "between 1 and 1000"),
        ),
        Case(
            T,
            "n_estimators 0",
            "POST /train",
            "form",
            post_form("/train", n_estimators="0"),
            422,
            ("n_estimators", "between 1 and 1000"),
        ),
        Case(
            T,
            "n_estimators 5000",
            "POST /train",
            "form",
            post_form("/train", n_estimators="5000"),
            422,
            ("n_estimators", "between 1 and 1000"),
        ),
        Case(T, "test_size 1.5", "POST /train", "form", post_form("/train", test_size="1.5"), 422, ("test_size",)),
        *model_choice_cases(),
        Case(
            T, "test_size NaN", "POST /train", "form", post_form("/train", test_size="nan"), 422, ("test_size", "nan")
        ),
        Case(
            T,
            "file sent as a text field",
            "POST /train",
            "form",
            post_form("/train", file="a,b\n1,2\n"),
            422,
            ("'file'", "must be a file"),
        ),
        Case(
            "CSV upload to /predict_batch",
            "no file",
            "POST /predict_batch",
            "form",
            post_form("/predict_batch", other="x"),
            415,
            ("multipart form data", "'file'"),
        ),
        # -- single prediction
        Case(
            P,
            "missing feature",
            "POST /predict",
            "JSON",
            post_json(without("petal_width")),
            422,
            ("missing", "petal_width"),
        ),
        Case(
            P,
            "missing feature (form)",
            "POST /predict",
            "URL-encoded form",
            post_form("/predict", **without("sepal_width")),
            422,
            ("missing", "sepal_width"),
        ),
        Case(P, "unknown feature", "POST /predict", "JSON", post_json(features(colour=3)), 422, ("unknown", "colour")),
        Case(
            P,
            "string",
            "POST /predict",
            "JSON",
            post_json(features(sepal_length="long")),
            422,
            ("sepal_length", "must be a number", "long"),
        ),
        Case(
            P,
            "string (multipart)",
            "POST /predict",
            "multipart form",
            lambda b: b.client.post(
                "/predict", files={k: (None, str(v)) for k, v in features(petal_width="wide").items()}
            ),
            422,
            ("petal_width", "must be a number"),
        ),
        Case(
            P, "boolean", "POST /predict", "JSON", post_json(features(sepal_length=True)), 422, ("sepal_length", "true")
        ),
        Case(P, "null", "POST /predict", "JSON", post_json(features(sepal_length=None)), 422, ("sepal_length", "null")),
        Case(
            P,
            "list",
            "POST /predict",
            "JSON",
            post_json(features(sepal_length=[5.1])),
            422,
            ("sepal_length", "must be a number"),
        ),
        Case(
            P,
            "object",
            "POST /predict",
            "JSON",
            post_json(features(sepal_length={"cm": 5.1})),
            422,
            ("sepal_length", "must be a number"),
        ),
        Case(
            P, "NaN", "POST /predict", "JSON (NaN literal)", post_raw(nan_json), 422, ("sepal_length", "finite", "nan")
        ),
        Case(
            P,
            "NaN (form)",
            "POST /predict",
            "URL-encoded form",
            post_form("/predict", **features(petal_length="nan")),
            422,
            ("petal_length", "finite"),
        ),
        Case(
            P,
            "Infinity",
            "POST /predict",
            "JSON (Infinity literal)",
            post_raw(json.dumps(SETOSA).replace("3.5", "Infinity").encode()),
            422,
            ("sepal_width", "finite", "inf"),
        ),
        Case(
            P,
            "-Infinity",
            "POST /predict",
            "JSON (-Infinity literal)",
            post_raw(json.dumps(SETOSA).replace("0.2", "-Infinity").encode()),
            422,
            ("petal_width", "finite"),
        ),
        Case(
            P,
            "1e999 (overflows to infinity)",
            "POST /predict",
            "JSON",
            post_raw(json.dumps(SETOSA).replace("1.4", "1e999").encode()),
            422,
            ("petal_length", "finite"),
        ),
        Case(
            P,
            "integer beyond any float (10**400)",
            "POST /predict",
            "JSON",
            post_json(features(sepal_length=10**400)),
            422,
            ("sepal_length", "finite", "401 digits"),
        ),
        Case(
            P,
            "integer of 5,000 digits",
            "POST /predict",
            "JSON",
            post_raw(json.dumps(SETOSA).replace("5.1", "1" * 5000).encode()),
            400,
            ("not valid JSON",),
        ),
        Case(
            P,
            "JSON nested 100,000 deep",
            "POST /predict",
            "JSON",
            post_raw(b"[" * 100_000 + b"]" * 100_000),
            400,
            ("not valid JSON",),
        ),
        Case(
            P,
            "feature given twice",
            "POST /predict",
            "URL-encoded form",
            lambda b: b.client.post("/predict", data={**SETOSA, "Sepal Length (cm)": "5"}),
            422,
            ("twice",),
        ),
        Case(
            P,
            "a file as a feature",
            "POST /predict",
            "multipart form",
            lambda b: b.client.post(
                "/predict", data=without("petal_width"), files={"petal_width": ("p.txt", b"0.2", "text/plain")}
            ),
            422,
            ("file",),
        ),
        Case(P, "JSON array", "POST /predict", "JSON", post_json([5.1, 3.5, 1.4, 0.2]), 400, ("object",)),
        Case(P, "invalid JSON", "POST /predict", "JSON", post_raw(b"{sepal_length: 5.1"), 400, ("not valid JSON",)),
        Case(P, "empty JSON body", "POST /predict", "JSON", post_raw(b""), 400, ("not valid JSON",)),
        Case(
            P,
            "text/plain body",
            "POST /predict",
            "text/plain",
            post_raw(b"5.1,3.5,1.4,0.2", "text/plain"),
            415,
            ("content type 'text/plain'",),
        ),
        Case(P, "no content type", "POST /predict", "no body", post_raw(b"", None), 415, ("content type 'none'",)),
        Case(
            P,
            "body over the limit",
            "POST /predict",
            "JSON",
            post_raw(json.dumps({**SETOSA, "padding": "x" * (LIMIT_MB * 1024 * 1024)}).encode()),
            413,
            ("limit of 1 MB",),
        ),
        # -- loading models
        Case(
            L,
            "../ path to a saved model",
            "POST /load_model",
            "form",
            load(lambda b: f"../{b.models_dir.name}/{b.model_file}"),
            404,
            ("not one of the saved models",),
        ),
        Case(
            L,
            "path through .. that resolves to a saved model",
            "POST /load_model",
            "form",
            load(lambda b: f"{b.models_dir}/../{b.models_dir.name}/{b.model_file}"),
            404,
            ("not one of the saved models",),
        ),
        Case(
            L,
            "../../ path out of the folder",
            "POST /load_model",
            "form",
            load("../../../../etc/passwd"),
            404,
            ("'../../../../etc/passwd'", "not one of the saved models"),
        ),
        Case(
            L,
            "absolute path outside the folder",
            "POST /load_model",
            "form",
            load("/etc/passwd"),
            404,
            ("not one of the saved models",),
        ),
        Case(
            L,
            "absolute path to a copy of a model elsewhere",
            "POST /load_model",
            "form",
            load(lambda b: str(b.scratch / "elsewhere" / b.model_file)),
            404,
            ("not one of the saved models",),
            prepare=copy_model_elsewhere,
        ),
        Case(
            L,
            "a pickle in the folder not written by the platform",
            "POST /load_model",
            "form",
            load(lambda b: str(b.models_dir / "evil.pkl")),
            404,
            ("not one of the saved models",),
            prepare=plant_marker_pickle("evil.pkl"),
            check=not_unpickled("evil.pkl"),
        ),
        Case(
            L,
            "a model-named pickle without metadata",
            "POST /load_model",
            "form",
            load("iris_model_planted.pkl"),
            404,
            ("not one of the saved models",),
            prepare=plant_marker_pickle("iris_model_planted.pkl"),
            check=not_unpickled("iris_model_planted.pkl"),
        ),
        Case(
            L,
            "a pickle whose SHA-256 differs from its metadata",
            "POST /load_model",
            "form",
            load(lambda b: str(b.models_dir / "iris_model_tampered.pkl")),
            422,
            ("iris_model_tampered.pkl", "SHA-256", "not unpickled"),
            prepare=plant_marker_pickle("iris_model_tampered.pkl", "wrong-sha"),
            check=not_unpickled("iris_model_tampered.pkl"),
        ),
        Case(
            L,
            "metadata without a SHA-256",
            "POST /load_model",
            "form",
            load("iris_model_nosha.pkl"),
            422,
            ("SHA-256",),
            prepare=plant_marker_pickle("iris_model_nosha.pkl", "no-sha"),
            check=not_unpickled("iris_model_nosha.pkl"),
        ),
        Case(
            L,
            "a pickle with its own SHA-256 in forged metadata",
            "POST /load_model",
            "form",
            load("iris_model_forged.pkl"),
            422,
            ("lacks", "feature_names", "not unpickled"),
            prepare=plant_marker_pickle("iris_model_forged.pkl", "forged"),
            check=not_unpickled("iris_model_forged.pkl"),
        ),
        Case(
            L,
            "metadata that is not a JSON object",
            "POST /load_model",
            "form",
            load("iris_model_stray.pkl"),
            404,
            ("not one of the saved models",),
            prepare=plant_marker_pickle("iris_model_stray.pkl", "not-an-object"),
            check=not_unpickled("iris_model_stray.pkl"),
        ),
        Case(
            L,
            "ONNX file that differs from its metadata",
            "POST /load_model",
            "form",
            load("iris_model_badonnx.pkl"),
            422,
            ("ONNX", "SHA-256"),
            prepare=plant_model_with_bad_onnx,
        ),
        Case(L, "no model_path", "POST /load_model", "form", post_form("/load_model"), 422, ("model_path", "version")),
        Case(
            L,
            "a version the registry does not have",
            "POST /load_model",
            "json",
            lambda b: b.client.post("/load_model", json={"version": 999}),
            404,
            ("no version 999", "GET /models"),
        ),
        Case(
            L,
            "a version given as true",
            "POST /load_model",
            "json",
            lambda b: b.client.post("/load_model", json={"version": True}),
            422,
            ('"version"',),
        ),
        Case(
            L,
            "NUL byte in the path",
            "POST /load_model",
            "form",
            load("iris_model_x\x00.pkl"),
            404,
            ("not one of the saved models",),
        ),
        Case(
            L,
            "10,000-character path",
            "POST /load_model",
            "form",
            load("a/" * 5000),
            404,
            ("not one of the saved models",),
        ),
        # -- run and prediction lookups
        Case(
            R,
            "run id too short",
            "GET /mlflow/run/{run_id}",
            "path",
            get("/mlflow/run/abc"),
            422,
            ("'abc'", "32 hexadecimal"),
        ),
        Case(
            R,
            "run id upper-case",
            "GET /mlflow/run/{run_id}",
            "path",
            get("/mlflow/run/" + "A" * 32),
            422,
            ("32 hexadecimal",),
        ),
        Case(
            R,
            "run id with SQL",
            "GET /mlflow/run/{run_id}",
            "path",
            get("/mlflow/run/' OR '1'='1"),
            422,
            ("32 hexadecimal",),
        ),
        Case(
            R,
            "run id of 5,000 characters",
            "GET /mlflow/run/{run_id}",
            "path",
            get("/mlflow/run/" + "f" * 5000),
            422,
            ("32 hexadecimal",),
        ),
        Case(
            R,
            "well-formed unknown run id",
            "GET /mlflow/run/{run_id}",
            "path",
            get("/mlflow/run/" + "0" * 32),
            404,
            ("no run with id",),
        ),
        Case(
            R,
            "run id ../../etc",
            "GET /mlflow/run/{run_id}",
            "path (%2F-encoded)",
            get("/mlflow/run/..%2F..%2Fetc"),
            404,
            ("not found",),
        ),
        Case(
            R,
            "artifact path ../../../etc/passwd",
            "GET /mlflow/run/{run_id}/artifacts/{path}",
            "path (%2F-encoded)",
            get(lambda b: f"/mlflow/run/{b.run_id}/artifacts/..%2F..%2F..%2Fetc%2Fpasswd"),
            404,
            ("has no artifact", "../../../etc/passwd"),
        ),
        Case(
            R,
            "artifact path absolute",
            "GET /mlflow/run/{run_id}/artifacts/{path}",
            "path",
            get(lambda b: f"/mlflow/run/{b.run_id}/artifacts/%2Fetc%2Fpasswd"),
            404,
            ("has no artifact",),
        ),
        Case(
            R,
            "unknown experiment name",
            "GET /mlflow/runs",
            "query",
            get("/mlflow/runs", experiment_name="nope"),
            404,
            ("'nope'", "does not exist"),
        ),
        Case(
            R,
            "experiment name with quotes",
            "GET /mlflow/runs",
            "query",
            get("/mlflow/runs", experiment_name="x' OR name LIKE '%"),
            404,
            ("does not exist",),
        ),
        Case(
            R,
            "experiment name of 300 characters",
            "GET /mlflow/runs",
            "query",
            get("/mlflow/runs", experiment_name="e" * 300),
            422,
            ("experiment_name", "256"),
        ),
        Case(
            R,
            "unknown run_type",
            "GET /mlflow/runs",
            "query",
            get("/mlflow/runs", run_type="deleted"),
            422,
            ("run_type",),
        ),
        Case(
            R,
            "order_by not sortable",
            "GET /mlflow/runs",
            "query",
            get("/mlflow/runs", order_by="params.x; DROP"),
            422,
            ("order_by", "not sortable"),
        ),
        Case(
            R, "max_results 0", "GET /mlflow/runs", "query", get("/mlflow/runs", max_results=0), 422, ("max_results",)
        ),
        Case(
            R,
            "max_results not a number",
            "GET /mlflow/runs",
            "query",
            get("/mlflow/runs", max_results="all"),
            422,
            ("max_results", "valid integer"),
        ),
        Case(R, "page 0", "GET /mlflow/runs", "query", get("/mlflow/runs", page=0), 422, ("page",)),
        Case(
            R,
            "unknown experiment (CSV export)",
            "GET /mlflow/runs/export.csv",
            "query",
            get("/mlflow/runs/export.csv", experiment_name="nope"),
            404,
            ("does not exist",),
        ),
        Case(
            R,
            "prediction id malformed",
            "GET /predictions/{prediction_id}",
            "path",
            get("/predictions/xyz"),
            422,
            ("32 hexadecimal",),
        ),
        Case(
            R,
            "prediction id unknown",
            "GET /predictions/{prediction_id}",
            "path",
            get("/predictions/" + "0" * 32),
            404,
            ("no mlflow run and no journal holds",),
        ),
    ]


def borderline_cases() -> list[Case]:
    B = "borderline input, accepted"
    return [
        Case(
            B,
            "a stray metadata file that is not an object",
            "GET /models",
            "-",
            get("/models"),
            200,
            prepare=plant_marker_pickle("iris_model_stray.pkl", "not-an-object"),
            check=check_listing_skips_stray,
        ),
        Case(
            B,
            "extra columns in a batch",
            "POST /predict_batch",
            "multipart file",
            post_file("/predict_batch", EXTRA_COLUMNS_CSV),
            200,
            check=check_extra_columns_kept,
        ),
        Case(
            B,
            "CR-only line endings in a batch",
            "POST /predict_batch",
            "multipart file",
            post_file("/predict_batch", iris_csv().replace(b"\n", b"\r")),
            200,
            check=check_all_rows_predicted,
        ),
        Case(
            B,
            "1e308 cell in a batch",
            "POST /predict_batch",
            "multipart file",
            post_file("/predict_batch", with_cell(1, "sepal_length", "1e308")),
            200,
            check=check_huge_cell_answered,
        ),
        Case(
            B,
            "1e308 (finite): answered, flagged",
            "POST /predict",
            "JSON",
            post_json(features(sepal_length=1e308)),
            200,
            check=check_1e308,
        ),
        Case(
            B,
            "negative measurements: answered, flagged",
            "POST /predict",
            "JSON",
            post_json(features(sepal_length=-5.1, petal_width=-0.2)),
            200,
            check=check_flagged("sepal_length", "petal_width"),
        ),
        Case(
            B,
            "negative measurement (form)",
            "POST /predict",
            "URL-encoded form",
            post_form("/predict", **features(petal_length="-1.4")),
            200,
            check=check_flagged("petal_length"),
        ),
    ]


def cross_site_cases() -> list[Case]:
    """What a page of another site can make the user's browser send: a cross-site write, or any request
    under its own (rebound) DNS name. Each is refused from its headers, before any handler."""
    C = "cross-site requests"
    evil = {"Origin": "http://evil.example"}
    foreign = {"Host": "evil.example:8761"}
    refused_write = ("cross-site", "IRIS_CORS_ALLOWED_ORIGINS")
    refused_host = ("does not answer to the host name", "IRIS_ALLOWED_HOSTS")

    def with_headers(method: str, route: str, headers: dict[str, str], **kwargs: Any) -> Send:
        return lambda b: b.client.request(method, route, headers=headers, **kwargs)

    def load_current(headers: dict[str, str]) -> Send:
        return lambda b: b.client.post("/load_model", data={"model_path": b.model_path}, headers=headers)

    batch = {"file": ("b.csv", csv_bytes(iris_frame().head(3)), "text/csv")}
    train_form = {"n_estimators": str(FAST_TREES)}
    return [
        Case(
            C,
            "cross-site form post",
            "POST /train",
            "form, Origin",
            with_headers("POST", "/train", evil, data=train_form),
            403,
            refused_write,
        ),
        Case(
            C,
            "cross-site upload",
            "POST /train",
            "multipart file, Origin",
            with_headers("POST", "/train", evil, files={"file": ("t.csv", iris_csv(), "text/csv")}),
            403,
            refused_write,
        ),
        Case(
            C,
            "cross-site JSON post",
            "POST /predict",
            "JSON, Origin",
            with_headers("POST", "/predict", evil, json=SETOSA),
            403,
            refused_write,
        ),
        Case(
            C,
            "cross-site form post",
            "POST /predict",
            "form, Referer",
            with_headers("POST", "/predict", {"Referer": "http://evil.example/a"}, data=SETOSA),
            403,
            refused_write,
        ),
        Case(
            C,
            "cross-site upload",
            "POST /predict_batch",
            "multipart file, Origin",
            with_headers("POST", "/predict_batch", evil, files=batch),
            403,
            refused_write,
        ),
        Case(C, "cross-site form post", "POST /load_model", "form, Origin", load_current(evil), 403, refused_write),
        Case(
            C,
            "cross-site post from a sandboxed frame",
            "POST /load_model",
            "form, Origin: null",
            load_current({"Origin": "null"}),
            403,
            refused_write,
        ),
        Case(
            C,
            "cross-site post",
            "POST /models/rollback",
            "no body, Sec-Fetch-Site",
            with_headers("POST", "/models/rollback", {"Sec-Fetch-Site": "cross-site"}),
            403,
            refused_write,
        ),
        Case(
            C,
            "cross-site preflight",
            "OPTIONS /predict",
            "preflight, Origin",
            with_headers("OPTIONS", "/predict", {**evil, "Access-Control-Request-Method": "POST"}),
            403,
            refused_write[1:],
        ),
        Case(
            C,
            "foreign Host (DNS rebinding)",
            "GET /mlflow/runs",
            "Host header",
            with_headers("GET", "/mlflow/runs", foreign),
            400,
            refused_host,
        ),
        Case(
            C,
            "foreign Host (DNS rebinding)",
            "GET /mlflow/run/{run_id}",
            "Host header",
            lambda b: b.client.get(f"/mlflow/run/{b.run_id}", headers=foreign),
            400,
            refused_host,
        ),
        Case(
            C,
            "foreign Host (DNS rebinding)",
            "GET /models",
            "Host header",
            with_headers("GET", "/models", foreign),
            400,
            refused_host,
        ),
        Case(
            C,
            "foreign Host (DNS rebinding)",
            "POST /predict",
            "JSON, Host header",
            with_headers("POST", "/predict", foreign, json=SETOSA),
            400,
            refused_host,
        ),
        Case(
            C,
            "foreign Host (DNS rebinding)",
            "POST /train",
            "form, Host header",
            with_headers("POST", "/train", foreign, data=train_form),
            400,
            refused_host,
        ),
    ]


def request_body_cases() -> list[Case]:
    """Bodies that ask for something the route cannot do as sent: each is refused, none half-read or ignored."""
    R = "request bodies and media types"

    def post_raw_to(route: str, content: bytes, content_type: str) -> Send:
        return lambda b: b.client.post(route, content=content, headers={"content-type": content_type})

    def cut_off(route: str, **fields: str) -> Send:
        """A multipart body that stops mid-file, without its closing boundary (an upload dropped halfway)."""
        body, content_type = multipart_body(iris_csv(), **fields)
        return post_raw_to(route, body[: len(body) // 2], content_type)

    def check_same_prediction(b: Bench, response) -> None:
        assert response.json()["probabilities"] == b.reference["probabilities"]

    cut = ("cut off", "closing boundary", "send the whole request again")
    return [
        Case(
            R,
            "multipart cut off mid-file",
            "POST /train",
            "multipart, no closing boundary",
            cut_off("/train"),
            400,
            cut,
        ),
        Case(
            R,
            "multipart cut off after fields",
            "POST /train",
            "multipart, no closing boundary",
            cut_off("/train", n_estimators="3", target_column="species"),
            400,
            cut,
        ),
        Case(
            R,
            "multipart cut off mid-file",
            "POST /predict_batch",
            "multipart, no closing boundary",
            cut_off("/predict_batch"),
            400,
            cut,
        ),
        Case(
            R,
            "trees out of range as JSON",
            "POST /train",
            "JSON",
            lambda b: b.client.post("/train", json={"n_estimators": 0}),
            422,
            ("n_estimators", "between 1 and 1000"),
        ),
        Case(
            R,
            "trees as a JSON string",
            "POST /train",
            "JSON",
            lambda b: b.client.post("/train", json={"n_estimators": "5"}),
            422,
            ("n_estimators", "valid integer", "model_type 'random_forest'", "between 1 and 1000"),
        ),
        Case(
            R,
            "unknown JSON field",
            "POST /train",
            "JSON",
            lambda b: b.client.post("/train", json={"n_estimators": FAST_TREES, "trees": 5}),
            422,
            ("trees", "extra inputs are not permitted"),
        ),
        Case(R, "JSON array", "POST /train", "JSON", lambda b: b.client.post("/train", json=[5]), 400, ("object",)),
        Case(
            R,
            "target column without a file",
            "POST /train",
            "form",
            post_form("/train", n_estimators=str(FAST_TREES), target_column="species"),
            422,
            ("target_column", "no file was sent"),
        ),
        Case(
            R,
            "impute without a file (JSON)",
            "POST /train",
            "JSON",
            lambda b: b.client.post("/train", json={"impute": "none"}),
            422,
            ("impute", "no file was sent"),
        ),
        Case(
            R,
            "unknown impute choice",
            "POST /train",
            "multipart file",
            post_file("/train", iris_csv(), n_estimators="5", impute="mean"),
            422,
            ("impute must be one of 'median', 'none'", "'mean'"),
        ),
        Case(
            R,
            "keep columns without a file (JSON)",
            "POST /train",
            "JSON",
            lambda b: b.client.post("/train", json={"keep_columns": "id"}),
            422,
            ("keep_columns", "no file was sent"),
        ),
        Case(
            R,
            "unknown form field",
            "POST /train",
            "form",
            post_form("/train", n_estimators=str(FAST_TREES), criterion="gini"),
            422,
            ("Unknown form field 'criterion'",),
        ),
        Case(
            R,
            "text/plain body",
            "POST /train",
            "text/plain",
            post_raw_to("/train", b"n_estimators=5", "text/plain"),
            415,
            ("JSON object or as form fields", "'text/plain'"),
        ),
        Case(
            R,
            "a media type that only starts like JSON",
            "POST /predict",
            "application/jsonx",
            post_raw_to("/predict", json.dumps(SETOSA).encode(), "application/jsonx"),
            415,
            ("'application/jsonx'",),
        ),
        Case(
            R,
            "JSON with a parameter that names another type",
            "POST /load_model",
            "application/json-patch+json",
            post_raw_to("/load_model", b'{"version": 1}', "application/json-patch+json"),
            415,
            ("'application/json-patch+json'",),
        ),
        Case(
            R,
            "media type in capitals",
            "POST /predict",
            "APPLICATION/JSON; Charset=UTF-8",
            post_raw_to("/predict", json.dumps(BORDER).encode(), "APPLICATION/JSON; Charset=UTF-8"),
            200,
            check=check_same_prediction,
        ),
        Case(
            R,
            "another route's field on load_model",
            "POST /load_model",
            "form",
            post_form("/load_model", version="1", n_estimators="5"),
            422,
            ("n_estimators",),
        ),
    ]


CASES = csv_cases() + other_cases() + borderline_cases() + cross_site_cases() + request_body_cases()
# The refusal found only inside a training's run (the split needs more rows than classes): that run ends FAILED
# with the reason. Every other refusal comes before any run starts.
STARTS_A_FAILED_RUN = {"train-no-more-rows-than-classes"}


def test_the_table_covers_each_route_and_group():
    assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"
    assert {c.id for c in CASES} >= STARTS_A_FAILED_RUN
    routes = {c.route for c in CASES}
    assert {
        "POST /train",
        "POST /predict_batch",
        "POST /predict",
        "POST /load_model",
        "GET /mlflow/run/{run_id}",
        "GET /mlflow/runs",
        "POST /models/rollback",
    } <= routes


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, bench: Bench, results):
    planted = case.prepare(bench) if case.prepare else set()
    try:
        drain(bench.client)
        runs_before = set(run_index(bench.mlflow))
        models_before = models_snapshot(bench.models_dir)

        response = case.send(bench)
        body = _json(response)
        detail = body.get("detail") if isinstance(body, dict) else None
        results.bad_input(
            group=case.group,
            case=case.name,
            route=case.route,
            sent_as=case.sent_as,
            expected=case.status,
            status=response.status_code,
            detail=detail if isinstance(detail, str) else f"(200: {_summary(body)})",
        )

        assert response.status_code < 500, response.text
        assert response.status_code == case.status, response.text[:2000]
        if case.status >= 400:
            assert isinstance(detail, str) and detail.strip(), response.text
            for fragment in case.fragments:
                assert fragment.lower() in detail.lower(), f"{fragment!r} not in {detail!r}"
            assert len(detail) < 3000, "a detail should be read, not scrolled"
        if case.check:
            case.check(bench, response)
        if case.status >= 400:  # a run the mistake started (a training's split) ended FAILED, with the reason
            new_runs = [run for run_id, run in run_index(bench.mlflow).items() if run_id not in runs_before]
            # The count first: a loop over no new run would check nothing.
            assert len(new_runs) == (1 if case.id in STARTS_A_FAILED_RUN else 0), [r.info for r in new_runs]
            for run in new_runs:
                assert run.info.status == "FAILED", run.info
                assert run.data.tags.get("failure_reason"), run.data.tags

        assert models_snapshot(bench.models_dir) == models_before
        assert_only_complete_models(bench.models_dir, ignore=planted)
        assert bench.client.get("/models").json()["current_model"] == bench.model_path
        answer = predict(bench.client, BORDER)
        assert answer["model_path"] == bench.model_path
        assert answer["probabilities"] == bench.reference["probabilities"]
        drain(bench.client)
        assert not running_runs(bench.mlflow)
    finally:
        for name in planted:
            (bench.models_dir / name).unlink(missing_ok=True)


def drain(client, timeout: float = 20.0) -> None:
    """Until the tracking worker has written every journaled prediction (polled faster than wait_for_writer)."""
    deadline = time.monotonic() + timeout
    while client.get("/health").json()["pending_inference_records"]:
        assert time.monotonic() < deadline, "the tracking worker did not drain"
        time.sleep(0.01)


def _json(response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"detail": None, "text": response.text[:200]}


def _summary(body: Any) -> str:
    if not isinstance(body, dict):
        return str(body)[:80]
    if "total_samples" in body:
        return f"{body['total_samples']} rows predicted"
    if "out_of_range_features" in body:
        return f"{body['class_name']}, out_of_range_features={body['out_of_range_features']}"
    return ", ".join(sorted(body))[:80]


# -- the body limit on the real server: refused while the body arrives, not after buffering it ---------


@pytest.mark.parametrize("path", ["/train", "/predict_batch"])
def test_an_endless_chunked_upload_is_refused_while_it_arrives(live_server, results, path):
    """A chunked body that never ends: the 413 must come while it is still arriving."""
    mlflow = MlflowClient(tracking_uri=live_server.tracking_uri)
    models = Path(live_server.directory) / "models"
    before = models_snapshot(models)
    planned = 64 * 1024 * 1024  # 64 times the limit; the terminating chunk is never sent
    chunk = (HEADER + "\n" + "5.1,3.5,1.4,0.2,setosa\n" * 2800).encode()[:65536]
    sent = 0
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=20) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
            "Content-Type: multipart/form-data; boundary=b0undary\r\n\r\n".encode()
        )
        first = b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="endless.csv"\r\n\r\n'
        sock.sendall(b"%x\r\n%s\r\n" % (len(first), first))
        try:
            while sent < planned:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
                if select.select([sock], [], [], 0)[0]:
                    break  # the server answered
        except (BrokenPipeError, ConnectionResetError):
            pass  # it answered and closed: the answer is in the socket's buffer
        status, detail = status_and_detail(read_answer(sock))
    results.bad_input(
        group="upload limit, real server",
        case="endless chunked upload",
        route=f"POST {path}",
        sent_as=f"raw socket, chunked, {sent / 2**20:.1f} MB sent of a body that never ends",
        expected=413,
        status=status,
        detail=detail,
    )
    assert status == 413 and "limit of 1 MB" in detail
    assert sent < planned  # answered mid-body (the body never ended, so the answer cannot come after it)
    assert models_snapshot(models) == before
    assert not running_runs(mlflow)


@pytest.mark.parametrize("path", ["/train", "/predict_batch", "/predict"])
def test_a_declared_length_over_the_limit_is_refused_before_the_body(live_server, results, path):
    """Content-Length: 10 GB and no body at all: the answer comes at once."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=20) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {10 * 2**30}\r\n"
            "Content-Type: application/json\r\n\r\n".encode()
        )
        status, detail = status_and_detail(read_answer(sock, timeout=10))
    elapsed = time.monotonic() - started
    results.bad_input(
        group="upload limit, real server",
        case="Content-Length 10 GB, no body",
        route=f"POST {path}",
        sent_as="raw socket, headers only",
        expected=413,
        status=status,
        detail=detail,
    )
    assert status == 413 and "limit of 1 MB" in detail
    assert elapsed < 5

"""POST /train: the response, the `iris_classification` run, the model files and the MLflow model."""

import hashlib
import re
from datetime import datetime
from pathlib import Path

import mlflow.pyfunc
import pandas as pd
import pytest

from iris_platform.tracking import names
from tests.helpers.api import FAST_TREES, assert_error, load_model, predict, predict_batch, train, wait_for_writer
from tests.helpers.contract import (
    TRAINING_ANSWER_HEAD,
    TRAINING_ANSWER_TAIL,
    TRAINING_EXPERIMENT,
    TRAINING_METRICS,
)
from tests.helpers.data import (
    IRIS_CLASSES,
    IRIS_FEATURES,
    SETOSA,
    SKLEARN_HEADERS,
    VERSICOLOR,
    VIRGINICA,
    csv_bytes,
    iris_frame,
    read_json,
)
from tests.helpers.mlflow_reads import (
    all_runs,
    assert_no_running_runs,
    read_artifact_csv,
    run_ids,
    use_tracking_uri,
    version_files,
)
from tests.helpers.platform import open_platform

STAMP = r"\d{8}_\d{6}_\d{6}"
PREFIXED_CLASSES = ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
KAGGLE_CSV = EXAMPLES / "Iris.csv"  # Kaggle's shape: Id, SepalLengthCm, ..., Species (Iris-setosa, ...)
BATCH_CSV = EXAMPLES / "iris_batch.csv"


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with open_platform(tmp_path_factory.mktemp("training")) as platform:
        yield platform


@pytest.fixture(scope="module")
def iris_training(platform):
    """Training on the bundled Iris data with the defaults (100 trees, test_size 0.2)."""
    return train(platform.client)


@pytest.fixture(scope="module")
def upload_training(platform):
    """Training on an uploaded CSV with scikit-learn's headers and 'Iris-setosa' labels."""
    content = csv_bytes(iris_frame(SKLEARN_HEADERS, labels="prefixed"))
    return train(platform.client, file=("my iris.csv", content), n_estimators=FAST_TREES, test_size=0.3)


# Four numeric features with no blank cell: no step before the classifier.
NUMERIC_ONLY = {"preprocessing": "none", "n_numeric_features": 4, "n_text_features": 0}


def check_training_run(platform, body, expected_params):
    """The run has exactly the contract's params (with these values) and the response's metrics."""
    run = platform.mlflow.get_run(body["run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.experiment_id == platform.mlflow.get_experiment_by_name(TRAINING_EXPERIMENT).experiment_id
    assert re.fullmatch(rf"training_{STAMP}", run.info.run_name)
    assert run.data.params == {k: str(v) for k, v in expected_params.items()}
    assert set(run.data.metrics) == set(TRAINING_METRICS)
    for metric in TRAINING_METRICS:
        assert run.data.metrics[metric] == pytest.approx(body[metric])
        assert 0.0 <= body[metric] <= 1.0
    # The held-out split's evidence; three classes: no ROC or precision-recall curve.
    evaluation = [a.path for a in platform.mlflow.list_artifacts(run.info.run_id, "evaluation")]
    assert evaluation == ["evaluation/confusion_matrix.json", "evaluation/per_class_metrics.json"]
    return run


def check_model_files(platform, body, tmp_path):
    """The .pkl and metadata in models/ and in the run's artifacts are the same bytes, and the hash holds."""
    model_path = platform.models_dir / body["model_metadata"]["model_file"]
    assert str(model_path) == body["model_path"]
    assert re.fullmatch(rf"iris_model_{STAMP}\.pkl", model_path.name)
    metadata_path = model_path.with_name(model_path.stem + "_metadata.json")
    assert metadata_path.is_file()
    metadata = read_json(metadata_path)
    assert metadata == body["model_metadata"]
    assert hashlib.sha256(model_path.read_bytes()).hexdigest() == metadata["sha256"]

    # The forest's ONNX form passed its parity check, so it is kept beside the pkl.
    onnx_path = model_path.with_suffix(".onnx")
    assert metadata["onnx_file"] == onnx_path.name
    assert hashlib.sha256(onnx_path.read_bytes()).hexdigest() == metadata["onnx_sha256"]
    assert metadata["compiled"]["parity_ok"] is True and metadata["compiled"]["max_abs_diff"] <= 1e-6

    # The training data's reference profile, pinned by the metadata like the ONNX file.
    profile_path = model_path.with_name(model_path.stem + "_reference_profile.json")
    assert metadata["profile_file"] == profile_path.name
    assert hashlib.sha256(profile_path.read_bytes()).hexdigest() == metadata["profile_sha256"]

    # The registered version holds the same files beside the MLflow model, and names its run and hash.
    version = platform.mlflow.get_model_version("iris_classifier", body["model_version"])
    assert version.run_id == body["run_id"]
    assert version.tags["iris.sha256"] == metadata["sha256"]
    assert version.tags["iris.model_file"] == model_path.name
    registered = version_files(platform.mlflow, body["model_version"], tmp_path / "registered")
    assert sorted(p.name for p in registered.iterdir()) == sorted(
        p.name for p in (model_path, metadata_path, onnx_path, profile_path)
    )
    for path in (model_path, metadata_path, onnx_path, profile_path):
        assert (registered / path.name).read_bytes() == path.read_bytes()
    return metadata


# -- the bundled Iris data --------------------------------------------------------------------------


def test_iris_training_response(iris_training):
    body = iris_training
    assert body["status"] == "success"
    assert list(body) == [*TRAINING_ANSWER_HEAD, *TRAINING_ANSWER_TAIL]
    assert body["dropped_columns"] == [] and body["model_metadata"]["dropped_columns"] == []
    assert body["constant_columns"] == [] and body["imputed_cells"] == {} and body["preprocessing"] == "none"
    # The default model type, every hyperparameter it takes (the given and the defaults), no cross-validation.
    assert body["model_type"] == "random_forest"
    assert body["hyperparameters"] == {"n_estimators": 100, "max_depth": None, "min_samples_leaf": 1}
    assert body["cv_folds"] == 0 and body["runtime"] == "onnxruntime"
    assert body["accuracy"] > 0.85
    report = body["classification_report"]
    assert set(IRIS_CLASSES) <= set(report)
    assert report["weighted avg"]["precision"] == pytest.approx(body["precision"])
    assert report["weighted avg"]["recall"] == pytest.approx(body["recall"])
    assert report["weighted avg"]["f1-score"] == pytest.approx(body["f1_score"])
    matrix = body["confusion_matrix"]
    assert len(matrix) == 3 and all(len(row) == 3 for row in matrix)
    assert sum(map(sum, matrix)) == 30  # 20% of 150 held out
    assert sum(matrix[i][i] for i in range(3)) / 30 == pytest.approx(body["accuracy"])


def test_iris_training_run_params_and_metrics(platform, iris_training):
    check_training_run(
        platform,
        iris_training,
        {
            "model_type": "RandomForestClassifier",
            "n_estimators": 100,
            "max_depth": None,
            "min_samples_leaf": 1,
            "test_size": 0.2,
            "n_features": 4,
            "n_samples": 150,
            "n_classes": 3,
            "data_source": "sklearn_iris",
            **NUMERIC_ONLY,
        },
    )


def test_iris_model_files_and_metadata(platform, iris_training, tmp_path):
    metadata = check_model_files(platform, iris_training, tmp_path)
    assert metadata["feature_names"] == IRIS_FEATURES
    assert metadata["class_names"] == IRIS_CLASSES
    assert metadata["data_source"] == "sklearn_iris"
    assert metadata["model_type"] == "RandomForestClassifier"
    assert metadata["n_estimators"] == 100
    assert metadata["hyperparameters"] == iris_training["hyperparameters"]
    assert metadata["cv_folds"] == 0
    assert metadata["run_id"] == iris_training["run_id"]
    assert metadata["metrics"] == {m: iris_training[m] for m in TRAINING_METRICS}
    moment = datetime.fromisoformat(metadata["training_timestamp"])
    assert moment.utcoffset().total_seconds() == 0
    assert moment.strftime("%Y%m%d_%H%M%S_%f") in metadata["model_file"]


def test_mlflow_model_loads_from_its_uri_and_predicts_like_the_app(platform, iris_training):
    metadata = iris_training["model_metadata"]
    uri = metadata["mlflow_model_uri"]
    assert uri.startswith("models:/")
    logged = platform.mlflow.get_logged_model(uri.removeprefix("models:/"))
    run = platform.mlflow.get_run(iris_training["run_id"])
    assert logged.source_run_id == run.info.run_id
    assert logged.experiment_id == run.info.experiment_id  # in iris_classification, not in "Default"
    assert str(logged.status) == "READY"
    assert [o.model_id for o in run.outputs.model_outputs] == [logged.model_id]

    samples = [
        SETOSA,
        VERSICOLOR,
        VIRGINICA,
        {"sepal_length": 6.3, "sepal_width": 2.8, "petal_length": 4.9, "petal_width": 1.6},
    ]
    frame = pd.DataFrame(samples, columns=metadata["feature_names"])
    use_tracking_uri(platform.settings.tracking_uri)
    load_model(platform.client, iris_training["model_path"])
    pyfunc_model = mlflow.pyfunc.load_model(uri)
    sklearn_model = pyfunc_model.unwrap_python_model().estimator  # the forest inside, saved with skops
    assert pyfunc_model.metadata.get_input_schema().input_names() == IRIS_FEATURES

    app_classes = [predict(platform.client, s)["prediction"] for s in samples]
    assert app_classes[:3] == [0, 1, 2]
    assert list(sklearn_model.predict(frame)) == app_classes
    assert list(pyfunc_model.predict(frame)[names.COL_PREDICTED_CLASS]) == [IRIS_CLASSES[i] for i in app_classes]


# -- an uploaded CSV --------------------------------------------------------------------------------


def test_upload_with_sklearn_headers_and_string_labels(platform, upload_training, tmp_path):
    body = upload_training
    check_training_run(
        platform,
        body,
        {
            "model_type": "RandomForestClassifier",
            "n_estimators": FAST_TREES,
            "max_depth": None,
            "min_samples_leaf": 1,
            "test_size": 0.3,
            "n_features": 4,
            "n_samples": 150,
            "n_classes": 3,
            "data_source": "uploaded_csv",
            "input_file": "my iris.csv",
            "impute": "median",
            **NUMERIC_ONLY,
        },
    )
    metadata = check_model_files(platform, body, tmp_path)
    assert metadata["feature_names"] == IRIS_FEATURES
    assert metadata["class_names"] == PREFIXED_CLASSES
    assert metadata["data_source"] == "uploaded_csv" and metadata["input_file"] == "my iris.csv"
    assert sum(map(sum, body["confusion_matrix"])) == 45  # 30% of 150
    assert set(PREFIXED_CLASSES) <= set(body["classification_report"])


def test_model_trained_on_upload_serves_the_four_field_form(platform, upload_training):
    load_model(platform.client, upload_training["model_path"])
    response = platform.client.post("/predict", data={k: str(v) for k, v in VIRGINICA.items()})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_path"] == upload_training["model_path"]
    assert body["class_name"] == "Iris-virginica" and body["prediction"] == 2
    assert set(body["probabilities"]) == set(PREFIXED_CLASSES)


def test_model_trained_on_upload_names_batch_metrics_and_columns_after_its_classes(platform, upload_training, tmp_path):
    load_model(platform.client, upload_training["model_path"])
    frame = iris_frame(SKLEARN_HEADERS, labels="prefixed").iloc[[0, 50, 100, 1]]
    body = predict_batch(platform.client, csv_bytes(frame), "with labels.csv")
    assert [r["class_name"] for r in body["predictions"]] == frame["species"].tolist()
    metrics = platform.mlflow.get_run(body["run_id"]).data.metrics
    assert {k: v for k, v in metrics.items() if k.startswith("count_")} == {
        "count_Iris-setosa": 2,
        "count_Iris-versicolor": 1,
        "count_Iris-virginica": 1,
    }
    table = read_artifact_csv(platform.mlflow, body["run_id"], names.PREDICTIONS_ARTIFACT, tmp_path)
    assert list(table.columns) == [
        *SKLEARN_HEADERS,
        "species",
        "predicted_class",
        "confidence",
        *(f"prob_{c}" for c in PREFIXED_CLASSES),
    ]
    assert table["predicted_class"].tolist() == table["species"].tolist()


def test_integer_labels_and_target_column_by_name(platform):
    frame = iris_frame(labels="integers", target="label")[["label", *IRIS_FEATURES]]  # target first
    body = train(
        platform.client, file=("numbers.csv", csv_bytes(frame)), n_estimators=FAST_TREES, target_column="label"
    )
    metadata = body["model_metadata"]
    assert metadata["class_names"] == ["0", "1", "2"]
    assert metadata["feature_names"] == IRIS_FEATURES
    assert metadata["target_column"] == "label"
    params = platform.mlflow.get_run(body["run_id"]).data.params
    assert params["n_features"] == "4" and params["n_classes"] == "3" and params["input_file"] == "numbers.csv"
    prediction = predict(platform.client, SETOSA)
    assert prediction["class_name"] == "0"
    assert set(prediction["probabilities"]) == {"0", "1", "2"}


# -- row identifiers --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kaggle_training(platform):
    """Training on Kaggle's Iris.csv as downloaded: an Id column first, sorted by species."""
    return train(platform.client, file=(KAGGLE_CSV.name, KAGGLE_CSV.read_bytes()), n_estimators=FAST_TREES)


def test_kaggle_iris_csv_trains_on_the_four_measurements_and_reports_the_dropped_id(
    platform, kaggle_training, tmp_path
):
    body = kaggle_training
    assert body["dropped_columns"] == ["Id"]
    check_training_run(
        platform,
        body,
        {
            "model_type": "RandomForestClassifier",
            "n_estimators": FAST_TREES,
            "max_depth": None,
            "min_samples_leaf": 1,
            "test_size": 0.2,
            "n_features": 4,
            "n_samples": 150,
            "n_classes": 3,
            "data_source": "uploaded_csv",
            "input_file": "Iris.csv",
            names.P_DROPPED_COLUMNS: "Id",
            "impute": "median",
            **NUMERIC_ONLY,
        },
    )
    metadata = check_model_files(platform, body, tmp_path)  # the file on disk and the registered version's
    assert metadata["dropped_columns"] == ["Id"]
    assert metadata["feature_names"] == IRIS_FEATURES
    assert metadata["class_names"] == PREFIXED_CLASSES and metadata["target_column"] == "Species"
    listed = {m["version"]: m for m in platform.client.get("/models").json()["models"]}
    assert listed[body["model_version"]]["metadata"]["dropped_columns"] == ["Id"]


def test_model_trained_on_kaggle_iris_csv_predicts_the_four_features_and_the_example_batch(platform, kaggle_training):
    load_model(platform.client, kaggle_training["model_path"])
    for flower, expected in ((SETOSA, "Iris-setosa"), (VERSICOLOR, "Iris-versicolor"), (VIRGINICA, "Iris-virginica")):
        answer = predict(platform.client, flower)
        assert answer["model_path"] == kaggle_training["model_path"] and answer["class_name"] == expected
    batch = predict_batch(platform.client, BATCH_CSV.read_bytes(), BATCH_CSV.name)
    assert batch["total_samples"] == len(pd.read_csv(BATCH_CSV))
    assert {r["class_name"] for r in batch["predictions"]} <= set(PREFIXED_CLASSES)


def test_keep_columns_trains_on_an_identifier(platform):
    body = train(
        platform.client, file=(KAGGLE_CSV.name, KAGGLE_CSV.read_bytes()), n_estimators=FAST_TREES, keep_columns="Id"
    )
    assert body["dropped_columns"] == [] and body["model_metadata"]["dropped_columns"] == []
    assert body["model_metadata"]["feature_names"] == ["id", *IRIS_FEATURES]
    params = platform.mlflow.get_run(body["run_id"]).data.params
    assert params["n_features"] == "5" and names.P_DROPPED_COLUMNS not in params  # logged only when some are
    assert predict(platform.client, {"id": 1, **SETOSA})["model_version"] == body["model_version"]


def test_row_numbers_under_any_name_are_dropped_and_a_repeating_integer_feature_is_kept(platform):
    frame = iris_frame()
    frame.insert(0, "row", range(150))
    frame.insert(1, "petals", [i % 5 for i in range(150)])  # integers with repeats: a feature
    body = train(platform.client, file=("rows.csv", csv_bytes(frame)), n_estimators=FAST_TREES)
    assert body["dropped_columns"] == ["row"]
    assert body["model_metadata"]["feature_names"] == ["petals", *IRIS_FEATURES]
    params = platform.mlflow.get_run(body["run_id"]).data.params
    assert params[names.P_DROPPED_COLUMNS] == "row" and params["n_features"] == "5"


# -- the caller's mistakes --------------------------------------------------------------------------

_LATIN1 = "sepal_length,species\n5.1,caf\u00e9\n".encode("latin-1")
STARTS_A_RUN = {"too-few-rows"}  # the mistakes found only inside the training's run
_TEXT_FEATURE = b"x,label\n1,a\nwide,b\n3,a\n4,b\n"
_TARGET_FIRST = csv_bytes(iris_frame(SKLEARN_HEADERS, labels="prefixed")[["species", *SKLEARN_HEADERS]])
_UNCLOSED_QUOTE = b'x,y,label\n1,2,a\n3,4,b\n"5,6,a\n7,8,b\n'


@pytest.mark.parametrize(
    "file, form, status, fragments",
    [
        (("e.csv", b""), {}, 400, ["empty"]),
        (("h.csv", b"sepal_length,species\n"), {}, 400, ["no data rows"]),
        (("l.csv", _LATIN1), {}, 400, ["UTF-8"]),
        (("s.csv", b"a;b;label\n1;2;x\n3;4;y\n"), {}, 400, ["semicolon"]),
        (("one.csv", b"x,label\n1,a\n2,a\n3,a\n"), {}, 422, ["only one class", "'a'"]),
        (("t.csv", b"x,label\n1,a\n2,b\n"), {"target_column": "species"}, 422, ["'species'", "not a column"]),
        (("n.csv", _TEXT_FEATURE), {}, 422, ["'x'", "numeric", "wide"]),
        (None, {"n_estimators": 0}, 422, ["n_estimators"]),
        (None, {"n_estimators": 5000}, 422, ["n_estimators"]),
        (None, {"test_size": 1.5}, 422, ["test_size"]),
        (("tiny.csv", b"x,label\n1,a\n2,b\n"), {}, 422, ["rows", "classes"]),
        (("first.csv", _TARGET_FIRST), {}, 422, ["'species' holds text", "target_column=species", "last column"]),
        (("q.csv", _UNCLOSED_QUOTE), {}, 400, ["'q.csv'", "unclosed double quote", "data row 3 (line 4)"]),
        (
            (KAGGLE_CSV.name, KAGGLE_CSV.read_bytes()),
            {"keep_columns": "Id,colour"},
            422,
            ["keep_columns", "['colour']", "['Id', 'SepalLengthCm'", "'Species']"],
        ),
    ],
    ids=[
        "empty",
        "header-only",
        "latin-1",
        "semicolon",
        "one-class",
        "no-target",
        "text-feature",
        "zero-trees",
        "too-many-trees",
        "test-size",
        "too-few-rows",
        "target-first",
        "unclosed-quote",
        "keep-missing-column",
    ],
)
def test_bad_training_requests_are_refused_clearly(platform, file, form, status, fragments, request):
    wait_for_writer(platform.client)
    before = run_ids(platform.mlflow)
    models_before = sorted(platform.models_dir.iterdir())
    files = {"file": (file[0], file[1], "text/csv")} if file else None
    response = platform.client.post("/train", data={k: str(v) for k, v in form.items()}, files=files)
    assert_error(response, status, *fragments)
    assert_no_running_runs(platform)
    assert sorted(platform.models_dir.iterdir()) == models_before  # no model file left behind
    # A run started before the mistake showed (too few rows for the split) ends FAILED with the reason; the
    # other mistakes are refused before any run starts. The count first: an empty loop would check nothing.
    new_runs = [platform.mlflow.get_run(run_id) for run_id in run_ids(platform.mlflow) - before]
    assert len(new_runs) == (1 if request.node.callspec.id in STARTS_A_RUN else 0), [r.info for r in new_runs]
    for run in new_runs:
        assert run.info.status == "FAILED" and names.T_FAILURE_REASON in run.data.tags


def test_failed_training_leaves_the_current_model_serving(platform, iris_training):
    current = load_model(platform.client, iris_training["model_path"])["model_path"]
    response = platform.client.post("/train", files={"file": ("tiny.csv", b"x,label\n1,a\n2,b\n", "text/csv")})
    assert response.status_code == 422  # fails inside its run, after the run started
    assert platform.client.get("/health").json()["current_model"] == current
    assert predict(platform.client, SETOSA)["model_path"] == current


def test_every_training_run_is_finished_or_failed(platform, iris_training):
    statuses = {r.info.status for r in all_runs(platform.mlflow, TRAINING_EXPERIMENT)}
    assert statuses <= {"FINISHED", "FAILED"} and "FINISHED" in statuses


def test_two_apps_in_one_process_log_their_mlflow_models_to_their_own_stores(platform, tmp_path):
    with open_platform(tmp_path) as other:  # created last, so MLflow's process-global tracking URI is its store
        body = train(platform.client, n_estimators=2)
        logged = platform.mlflow.get_logged_model(body["model_metadata"]["mlflow_model_uri"].removeprefix("models:/"))
        assert logged.source_run_id == body["run_id"]
        other_experiments = [e.experiment_id for e in other.mlflow.search_experiments()]
        assert other.mlflow.search_logged_models(experiment_ids=other_experiments) == []

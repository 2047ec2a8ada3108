"""The OpenAPI document is the contract, tested as a client would test it, against the real server process.

1. Schemathesis's command line (`st run`) with every check but use-after-free (`--checks all`: status
   codes, content types, response schemas, negative data rejected, positive data accepted, unsupported
   methods, the stateful checks), positive and negative modes (positive only in the stateful sequences:
   see schemathesis.toml), and its four phases: the schema's examples, coverage (each parameter's
   boundaries and each documented status), fuzzing, and stateful sequences that follow the document's
   links (train -> run, predict -> prediction lookup, batch -> run and predictions.csv, tune -> progress
   and cancel). It must find nothing. Its settings are in schemathesis.toml beside this file.
2. A client generated from the document by openapi-python-client parses a success and an error of every
   route into the document's models (an undocumented status or a body that does not fit raises).
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.helpers.api import FAST_TREES
from tests.helpers.contract import MODEL_TYPE_NAMES
from tests.helpers.data import SETOSA
from tests.helpers.server_process import ServerProcess

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
EXAMPLES = 12  # per operation and phase: about 800 requests, under two minutes on 2 cores
SEED = 13
OPERATION_IDS = [
    "health",
    "ready",
    "train",
    "model_types",
    "predict",
    "predict_batch",
    "find_prediction",
    "list_models",
    "load_model",
    "rollback",
    "feedback",
    "monitoring",
    "tune",
    "get_tuning",
    "cancel_tuning",
    "list_experiments",
    "list_runs",
    "export_runs",
    "summary",
    "get_run",
    "download_artifact",
]
# A generated file is no CSV of the model's features, and a generated path names no artifact; their
# successes are covered by the generated client's test below and by the in-process fuzzing test.
NO_RANDOM_SUCCESS = {"POST /predict_batch", "GET /mlflow/run/{run_id}/artifacts/{path}", "POST /feedback"}
BATCH_CSV = b"sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.7,3.0,5.8,2.3\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[ServerProcess]:
    """The server with two trained versions (so a rollback can succeed), a prediction and a batch run."""
    server = ServerProcess(tmp_path_factory.mktemp("contract"))
    try:
        server.wait_healthy(timeout=120)
        for _ in range(2):
            trained = httpx2.post(f"{server.url}/train", json={"n_estimators": FAST_TREES}, timeout=120)
            assert trained.status_code == 200, trained.text
        assert httpx2.post(f"{server.url}/predict", json=SETOSA).status_code == 200
        batch = httpx2.post(f"{server.url}/predict_batch", files={"file": ("b.csv", BATCH_CSV, "text/csv")})
        assert batch.status_code == 200, batch.text
        yield server
    finally:
        server.stop()


def test_schemathesis_finds_nothing_with_every_check_and_phase(served, tmp_path):
    report = tmp_path / "report.json"
    command = [
        str(BIN / "st"),
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "run",
        f"{served.url}/openapi.json",
        "--checks",
        "all",
        # The API's one DELETE, DELETE /tune/{id}, cancels a tuning, as the API says: the tuning and its
        # finished trials stay on record (MLflow runs) and readable, so a GET after it answers 200 by design,
        # not the 404 this check expects after a deletion (ST301). (`--checks all` overrides the settings file.)
        "--exclude-checks",
        "use_after_free",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--request-timeout",
        "90",  # a generated /train may ask for 1,000 trees
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    output = done.stdout[-12000:] + done.stderr[-3000:]
    assert done.returncode == 0, output
    summary = json.loads(report.read_text())
    assert summary["complete"] and not summary["failures"] and not summary["errors"], output
    assert summary["operations"]["tested"] == len(OPERATION_IDS), summary["operations"]
    assert {name: phase["status"] for name, phase in summary["phases"].items()} == dict.fromkeys(
        ("examples", "coverage", "fuzzing", "stateful"), "success"
    )
    assert summary["test_cases"]["generated"] > 500, summary["test_cases"]  # a real run, not a handful
    # Every operation got past its input checks at least once (a 2xx or an expected 404/409), so its
    # handler and its answer's schema were exercised, not only its refusals.
    # (a cancel of a tuning that has ended is a 409 "conflict": its handler found the tuning and said so).
    accepted = {
        op: sum(p["accepted"] + p["conflicts"] for p in phases.values())
        for op, phases in summary["valid_rates"].items()
    }
    never = [op for op, n in accepted.items() if n == 0 and op not in NO_RANDOM_SUCCESS]
    assert not never, summary["valid_rates"]


# -- a generated client ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client_package(served, tmp_path_factory) -> Any:
    """`iris_client`, generated from the server's document as a user would generate it."""
    directory = tmp_path_factory.mktemp("client")
    document = directory / "openapi.json"
    document.write_bytes(httpx2.get(f"{served.url}/openapi.json").content)
    config = directory / "config.json"
    config.write_text(json.dumps({"project_name_override": "iris-client", "package_name_override": "iris_client"}))
    done = subprocess.run(
        [str(BIN / "openapi-python-client"), "generate", "--path", str(document), "--meta", "none"]
        + ["--output-path", str(directory / "iris_client"), "--config", str(config)],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Skipping" not in done.stdout.replace("Skipping Integration", ""), done.stdout  # every route generated
    # openapi-python-client 0.29 annotates a required body of several media types (/predict's) as
    # `... | Unset` without importing Unset; lazy annotations let the module import as written.
    for module in (directory / "iris_client" / "api").rglob("*.py"):
        module.write_text("from __future__ import annotations\n" + module.read_text())
    sys.path.insert(0, str(directory))
    try:
        yield importlib.import_module("iris_client")
    finally:
        sys.path.remove(str(directory))
        for name in [m for m in sys.modules if m == "iris_client" or m.startswith("iris_client.")]:
            del sys.modules[name]


def test_a_generated_client_parses_a_success_and_an_error_of_every_route(served, client_package):
    api = importlib.import_module("iris_client.api")
    models = importlib.import_module("iris_client.models")
    # Closed at the end: an httpx client left open is a ResourceWarning, an error here.
    with (
        client_package.Client(base_url=served.url, raise_on_unexpected_status=True, timeout=120) as client,
        client_package.Client(
            base_url=served.url, raise_on_unexpected_status=True, headers={"Host": "evil.example"}
        ) as foreign,
    ):
        exercise_every_route(client, foreign, client_package, models, api)


def exercise_every_route(client: Any, foreign: Any, client_package: Any, models: Any, api: Any) -> None:
    def call(module: str, *args: Any, via: Any = client, **kwargs: Any) -> Any:
        group, name = module.split(".")
        operation = importlib.import_module(f"iris_client.api.{group}.{name}")
        return operation.sync_detailed(*args, client=via, **kwargs)

    def ok(response: Any, model: str) -> Any:
        assert response.status_code == 200, response.content[:500]
        assert isinstance(response.parsed, getattr(models, model)), type(response.parsed)
        return response.parsed

    def error(response: Any, status: int, fragment: str) -> None:
        assert response.status_code == status, response.content[:500]
        assert isinstance(response.parsed, models.ErrorResponse), type(response.parsed)
        assert fragment.lower() in response.parsed.detail.lower(), response.parsed.detail

    assert api is not None
    # health
    assert ok(call("health.health"), "HealthResponse").model_loaded is True
    error(call("health.health", via=foreign), 400, "IRIS_ALLOWED_HOSTS")
    assert ok(call("health.ready"), "ReadyResponse").ready is True
    error(call("health.ready", via=foreign), 400, "host name")
    # training: the model types, JSON parameters, and a CSV as multipart
    types = ok(call("training.model_types"), "ModelTypesResponse")
    assert types.default == "random_forest" and types.max_cv_folds == 20
    assert [t.name for t in types.model_types] == MODEL_TYPE_NAMES
    error(call("training.model_types", via=foreign), 400, "host name")
    knn = models.TrainJsonBody.from_dict({"model_type": "knn", "n_neighbors": 3, "cv_folds": 3})
    neighbours = ok(call("training.train", body=knn), "TrainResponse")
    assert neighbours.model_type == "knn" and neighbours.hyperparameters.to_dict() == {
        "n_neighbors": 3,
        "weights": "uniform",
    }
    assert neighbours.cv_folds == 3 and 0.8 < neighbours.cv_accuracy_mean <= 1
    trained = ok(call("training.train", body=models.TrainJsonBody(n_estimators=FAST_TREES)), "TrainResponse")
    assert trained.model_version and trained.accuracy > 0.8
    assert trained.model_type == "random_forest" and trained.runtime == "onnxruntime"
    error(call("training.train", body=models.TrainJsonBody(n_estimators=0)), 422, "between 1 and 1000")
    another_types = models.TrainJsonBody.from_dict({"model_type": "knn", "n_estimators": 5})  # typed: in range
    error(call("training.train", body=another_types), 422, "does not apply to model_type 'knn'")
    upload = client_package.types.File(payload=b"", file_name="empty.csv")
    error(call("training.train", body=models.TrainFilesBody(file=upload)), 400, "is empty")
    # prediction
    features = models.PredictJsonBody.from_dict(SETOSA)
    predicted = ok(call("prediction.predict", body=features), "PredictResponse")
    assert predicted.class_name == "setosa" and predicted.model_version == trained.model_version
    error(call("prediction.predict", body=features, via=foreign), 400, "host name")  # typed values cannot be wrong
    found = ok(call("prediction.find_prediction", predicted.prediction_id), "PredictionLookup")
    assert found.prediction_id == predicted.prediction_id and found.status in ("success", "pending")
    error(call("prediction.find_prediction", "0" * 32), 404, "0" * 32)
    csv = client_package.types.File(payload=BATCH_CSV, file_name="batch.csv")
    batch = ok(call("prediction.predict_batch", body=models.PredictBatchBody(file=csv)), "BatchResponse")
    assert batch.total_samples == 2 and [row.class_name for row in batch.predictions] == ["setosa", "virginica"]
    not_csv = client_package.types.File(payload=b"\x89PNG\r\n\x1a\n", file_name="image.png")
    error(call("prediction.predict_batch", body=models.PredictBatchBody(file=not_csv)), 400, "")
    # models
    listing = ok(call("models.list_models"), "ModelsResponse")
    assert listing.champion == trained.model_version
    error(call("models.list_models", via=foreign), 400, "host name")
    loaded = ok(call("models.load_model", body=models.LoadModelJsonLoadByVersion(version=1)), "LoadModelResponse")
    assert loaded.model_version == "1"
    error(call("models.load_model", body=models.LoadModelJsonLoadByVersion(version=999)), 404, "999")
    ok(call("models.rollback"), "LoadModelResponse")
    error(call("models.rollback", via=foreign), 400, "host name")
    # monitoring
    label = models.FeedbackJsonFeedbackForPrediction(prediction_id=predicted.prediction_id, true_label="setosa")
    accepted = ok(call("monitoring.feedback", body=label), "FeedbackResponse")
    assert accepted.correct is True and accepted.predicted_class == "setosa"
    wrong = models.FeedbackJsonFeedbackForPrediction(prediction_id=predicted.prediction_id, true_label="rose")
    error(call("monitoring.feedback", body=wrong), 422, "rose")
    view = ok(call("monitoring.monitoring"), "MonitoringResponse")
    assert batch.run_id in {p.run_id for p in view.drift}
    # runs
    experiments = ok(call("mlflow.list_experiments"), "ExperimentsResponse")
    assert {e.name for e in experiments.experiments} >= {"iris_classification", "iris_inference"}
    error(call("mlflow.list_experiments", via=foreign), 400, "host name")
    page = ok(call("mlflow.list_runs", experiment_name="iris_classification"), "RunsPage")
    assert trained.run_id in {r.run_id for r in page.runs}
    error(call("mlflow.list_runs", experiment_name="nope"), 404, "does not exist")
    exported = call("mlflow.export_runs", run_type=models.ExportRunsRunTypeType0("training"))
    assert exported.status_code == 200 and trained.run_id in exported.parsed
    error(call("mlflow.export_runs", order_by="nope"), 422, "not sortable")
    ok(call("mlflow.summary"), "Summary")
    error(call("mlflow.summary", via=foreign), 400, "host name")
    run = ok(call("mlflow.get_run", batch.run_id), "RunDetail")
    assert run.run_type == "inference" and "predictions.csv" in {a.path for a in run.artifacts}
    error(call("mlflow.get_run", "g" * 32), 422, "32 hexadecimal")
    download = call("mlflow.download_artifact", batch.run_id, "predictions.csv")
    assert download.status_code == 200 and download.parsed.payload.read().startswith(b"sepal_length,")
    error(call("mlflow.download_artifact", batch.run_id, "nope.csv"), 404, "nope.csv")
    # tuning: a bad space refused, a small grid followed to its end, a finished tuning not cancellable
    bad_space = models.TuneTuneRequest.from_dict({"model_type": "knn", "space": {"n_estimators": [3]}})
    error(call("tuning.tune", body=bad_space), 422, "n_estimators")
    grid = models.TuneTuneRequest.from_dict({"model_type": "knn", "space": {"n_neighbors": [3, 5]}})
    started = call("tuning.tune", body=grid)
    if started.status_code == 409:  # one at a time: a tuning Schemathesis started may still run; cancel it
        running = re.search(r"Tuning ([0-9a-f]{32})", started.parsed.detail).group(1)
        call("tuning.cancel_tuning", running)  # 200, or 409 if it has just ended
        deadline = time.monotonic() + 120
        while ok(call("tuning.get_tuning", running), "TuningProgress").status in ("running", "cancelling"):
            assert time.monotonic() < deadline, running
            time.sleep(0.2)
        started = call("tuning.tune", body=grid)
    assert started.status_code == 202 and isinstance(started.parsed, models.TuningProgress), started.content[:500]
    tuning_id = started.parsed.tuning_id
    deadline = time.monotonic() + 120
    while (progress := ok(call("tuning.get_tuning", tuning_id), "TuningProgress")).status == "running":
        assert time.monotonic() < deadline, progress
        time.sleep(0.2)
    assert progress.status == "finished" and progress.trials_done == 2 and progress.model_version
    assert sorted(t.hyperparameters.to_dict()["n_neighbors"] for t in progress.trials) == [3, 5]
    error(call("tuning.cancel_tuning", tuning_id), 409, "already ended")
    error(call("tuning.get_tuning", "0" * 32), 404, "0" * 32)

"""Shared helpers: a real app on a real MLflow sqlite store in a temporary directory.

Nothing here mocks MLflow. Each `Platform` is the app from `create_app`, driven by a TestClient used as
a context manager (so the lifespan starts and stops the tracking writer), plus an `MlflowClient` on
the same store to read back what the app wrote.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from mlflow.entities import ViewType

from iris_platform.api.app import create_app
from iris_platform.config import Settings
from iris_platform.ml.data import parse_features
from iris_platform.ml.inference import Predictor, inference_record
from iris_platform.ml.model_store import ModelStore
from iris_platform.tracking.journal import JournalAppender

WRITER_TIMEOUT_S = 20.0

# The MLflow contract's names, spelled out here so that a renamed key fails the tests.
TRAINING_EXPERIMENT = "iris_classification"
INFERENCE_EXPERIMENT = "iris_inference"
EXPERIMENTS = (TRAINING_EXPERIMENT, INFERENCE_EXPERIMENT)
TRAINING_METRICS = ("accuracy", "precision", "recall", "f1_score")
PREDICTION_ID_TAG = "prediction_id"

# Well inside the Iris clusters: every reasonable forest predicts these classes.
SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
VERSICOLOR = {"sepal_length": 6.0, "sepal_width": 2.9, "petal_length": 4.5, "petal_width": 1.5}
VIRGINICA = {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.8, "petal_width": 2.3}
IRIS_FEATURES = list(SETOSA)
IRIS_CLASSES = ["setosa", "versicolor", "virginica"]
SKLEARN_HEADERS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
FAST_TREES = 10  # small forests keep training quick; one test checks the default of 100


# -- process-wide isolation -----------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _isolated_working_directory(tmp_path_factory):
    """MLflow puts a sqlite store's artifacts in ./mlruns: keep them out of the repository.

    Also restore MLFLOW_TRACKING_URI, which `mlflow.set_tracking_uri` (called by the app) exports.
    """
    previous_cwd = os.getcwd()
    previous_uri = os.environ.get("MLFLOW_TRACKING_URI")
    os.chdir(tmp_path_factory.mktemp("cwd"))
    try:
        yield
    finally:
        os.chdir(previous_cwd)
        if previous_uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous_uri


# -- the platform under test ----------------------------------------------------------------------


def settings_for(directory: Path, **overrides: Any) -> Settings:
    """Settings on `directory`; `overrides` sets any other field (writer_window_threshold=5, ...)."""
    directory = Path(directory)
    return Settings(
        tracking_uri=f"sqlite:///{directory}/mlflow.db",
        models_dir=directory / "models",
        journal_dir=directory / "journal",
        **overrides,
    )


@dataclass
class Platform:
    directory: Path
    settings: Settings
    client: TestClient
    mlflow: MlflowClient

    @property
    def models_dir(self) -> Path:
        return self.settings.models_dir


@contextmanager
def open_platform(directory: Path, **overrides: Any) -> Iterator[Platform]:
    """Start a fresh app on `directory` (store, models, journal); a second call is a restart."""
    settings = settings_for(directory, **overrides)
    with TestClient(create_app(settings)) as client:
        yield Platform(Path(directory), settings, client, MlflowClient(tracking_uri=settings.tracking_uri))


@pytest.fixture
def fresh_platform(tmp_path) -> Iterator[Platform]:
    """An app with an empty store and no model."""
    with open_platform(tmp_path) as platform:
        yield platform


@pytest.fixture(scope="module")
def trained_platform(tmp_path_factory) -> Iterator[Platform]:
    """One app per test module, with a model trained on the bundled Iris data."""
    with open_platform(tmp_path_factory.mktemp("trained")) as platform:
        train(platform.client, n_estimators=FAST_TREES)
        yield platform


# -- requests -------------------------------------------------------------------------------------


def train(client: TestClient, file: tuple[str, bytes] | None = None, **form: Any) -> dict[str, Any]:
    """POST /train, expect success, return the JSON body."""
    files = {"file": (file[0], file[1], "text/csv")} if file else None
    response = client.post("/train", data={k: str(v) for k, v in form.items()}, files=files)
    assert response.status_code == 200, response.text
    return response.json()


def predict(client: TestClient, features: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/predict", json=features)
    assert response.status_code == 200, response.text
    return response.json()


def predict_batch(client: TestClient, content: bytes, filename: str = "batch.csv") -> dict[str, Any]:
    response = client.post("/predict_batch", files={"file": (filename, content, "text/csv")})
    assert response.status_code == 200, response.text
    return response.json()


def load_model(client: TestClient, model_path: str) -> dict[str, Any]:
    response = client.post("/load_model", data={"model_path": model_path})
    assert response.status_code == 200, response.text
    return response.json()


def assert_error(response, status: int, *fragments: str) -> str:
    """The response is `status` with a JSON `detail` string that mentions every fragment."""
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail.strip(), response.text
    for fragment in fragments:
        assert fragment.lower() in detail.lower(), f"{fragment!r} not in {detail!r}"
    return detail


def wait_for_writer(client: TestClient, timeout: float = WRITER_TIMEOUT_S) -> dict[str, Any]:
    """Poll /health until the tracking writer has written every queued inference record."""
    deadline = time.monotonic() + timeout
    while True:
        health = client.get("/health").json()
        if health["pending_inference_records"] == 0:
            return health
        if time.monotonic() > deadline:
            pytest.fail(f"tracking writer did not drain within {timeout}s: {health}")
        time.sleep(0.05)


# -- data -----------------------------------------------------------------------------------------


def iris_frame(headers: list[str] | None = None, labels: str = "names", target: str = "species") -> pd.DataFrame:
    """The Iris data as a table: `labels` is "names" (setosa), "prefixed" (Iris-setosa) or "integers"."""
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    frame = iris.data.copy()
    frame.columns = headers or IRIS_FEATURES
    codes = iris.target.to_numpy()
    if labels == "integers":
        frame[target] = codes
    else:
        prefix = "Iris-" if labels == "prefixed" else ""
        frame[target] = [f"{prefix}{iris.target_names[c]}" for c in codes]
    return frame


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def samples_csv(samples: list[dict[str, float]], **extra_columns: list[Any]) -> bytes:
    frame = pd.DataFrame(samples)
    for column, values in extra_columns.items():
        frame[column] = values
    return csv_bytes(frame)


# -- reading MLflow back --------------------------------------------------------------------------


def experiment_id(mlflow_client: MlflowClient, name: str) -> str:
    experiment = mlflow_client.get_experiment_by_name(name)
    assert experiment is not None, f"experiment {name} missing"
    return experiment.experiment_id


def all_runs(mlflow_client: MlflowClient, experiment_name: str, filter_string: str = "") -> list:
    return mlflow_client.search_runs(
        [experiment_id(mlflow_client, experiment_name)],
        filter_string=filter_string,
        run_view_type=ViewType.ACTIVE_ONLY,
        max_results=1000,
    )


def runs_for_prediction(mlflow_client: MlflowClient, prediction_id: str) -> list:
    return all_runs(mlflow_client, INFERENCE_EXPERIMENT, f"tags.{PREDICTION_ID_TAG} = '{prediction_id}'")


def the_run_for_prediction(mlflow_client: MlflowClient, prediction_id: str):
    runs = runs_for_prediction(mlflow_client, prediction_id)
    assert len(runs) == 1, f"expected one run for prediction {prediction_id}, found {len(runs)}"
    return runs[0]


def run_ids(mlflow_client: MlflowClient) -> set[str]:
    return {r.info.run_id for name in EXPERIMENTS for r in all_runs(mlflow_client, name)}


def assert_no_running_runs(platform: Platform) -> None:
    """Once the writer has drained, no run of either experiment is still RUNNING."""
    wait_for_writer(platform.client)
    for name in EXPERIMENTS:
        running = all_runs(platform.mlflow, name, "attributes.status = 'RUNNING'")
        assert not running, f"runs left RUNNING in {name}: {[r.info.run_name for r in running]}"


def download_artifact(mlflow_client: MlflowClient, run_id: str, path: str, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    return Path(mlflow_client.download_artifacts(run_id, path, str(dst)))


def read_artifact_csv(mlflow_client: MlflowClient, run_id: str, path: str, dst: Path) -> pd.DataFrame:
    return pd.read_csv(download_artifact(mlflow_client, run_id, path, dst))


def logged_prediction_ids(mlflow_client: MlflowClient, dst: Path) -> Counter:
    """How often each prediction_id is in MLflow: single runs' tags plus every window run's CSV rows."""
    found: Counter = Counter()
    for run in all_runs(mlflow_client, INFERENCE_EXPERIMENT):
        if run.data.params.get("prediction_type") == "single_window":
            table = pd.read_csv(
                download_artifact(mlflow_client, run.info.run_id, "window_predictions.csv", dst / run.info.run_id),
                dtype={PREDICTION_ID_TAG: str},
            )
            found.update(table[PREDICTION_ID_TAG])
        elif PREDICTION_ID_TAG in run.data.tags:
            found[run.data.tags[PREDICTION_ID_TAG]] += 1
    return found


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def use_tracking_uri(uri: str) -> None:
    """Point MLflow's fluent API (model loading by `models:/` URI) at a test store."""
    mlflow.set_tracking_uri(uri)


# -- inference records, as the app hands them to the tracking writer --------------------------------


def inference_record_for(models_dir: Path, features: dict[str, float]) -> dict[str, Any]:
    """A real record: the current model of `models_dir` predicts `features`, as POST /predict would."""
    store = ModelStore(models_dir)
    predictor = Predictor(store.load(store.current_filename()))
    values = parse_features(features, predictor.feature_names)
    return inference_record(predictor, values, predictor.predict_one(values))


def leave_in_journal(journal_dir: Path, *records: dict[str, Any]) -> None:
    """What a process that died before its writer drained leaves behind: records not marked done."""
    journal = JournalAppender(journal_dir)
    journal.open()
    for record in records:
        journal.append(record)
    journal.close()


def check_single_run(run, record: dict[str, Any]) -> None:
    """A `single_prediction_<timestamp>` run carries exactly what the record says."""
    assert run.info.status == "FINISHED"
    stamp = datetime.fromisoformat(record["timestamp"]).strftime("%Y%m%d_%H%M%S_%f")
    assert run.info.run_name == f"single_prediction_{stamp}"
    assert run.data.tags[PREDICTION_ID_TAG] == record["prediction_id"]
    assert run.data.params == {
        "prediction_type": "single",
        "model_path": record["model_path"],
        "timestamp": record["timestamp"],
        **{k: str(v) for k, v in record["features"].items()},
        "predicted_class": record["class_name"],
    }
    assert run.data.metrics == pytest.approx(
        {
            "predicted_class_index": record["class_index"],
            "prediction_confidence": record["confidence"],
            **{f"probability_{c}": p for c, p in record["probabilities"].items()},
        }
    )

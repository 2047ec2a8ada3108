"""The platform on the machine's PostgreSQL (127.0.0.1:5432, trust authentication), a fresh database per test,
and what a user sees when the database, its driver or its server is missing: the real cause, at once."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from iris_platform.api.app import create_app
from tests.helpers.api import FAST_TREES, predict, predict_batch, train, wait_for_writer
from tests.helpers.contract import EXPERIMENTS
from tests.helpers.data import SETOSA, VIRGINICA, samples_csv
from tests.helpers.mlflow_reads import all_runs
from tests.helpers.platform import local_client, open_platform, settings_for
from tests.helpers.server_process import ServerProcess

SERVER = "postgresql://postgres@127.0.0.1:5432"


def _admin(sql: str) -> None:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True, connect_timeout=5) as connection:
        connection.execute(sql)


@pytest.fixture
def postgres_uri() -> Iterator[str]:
    """A new, empty database for one test, dropped afterwards."""
    name = f"iris_test_{uuid.uuid4().hex[:12]}"
    try:
        _admin(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL must run on 127.0.0.1:5432 (`.ci/run` starts it): {exc}")
    try:
        yield f"{SERVER}/{name}"
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def app_on(directory: Path, tracking_uri: str) -> TestClient:
    """The app alone (no MLflow client of the test's own: the store cannot be opened)."""
    return local_client(create_app(settings_for(directory, tracking_uri=tracking_uri)))


@pytest.mark.slow
def test_train_predict_batch_and_read_runs_on_postgresql(tmp_path, postgres_uri):
    with open_platform(tmp_path, tracking_uri=postgres_uri) as platform:
        trained = train(platform.client, n_estimators=FAST_TREES)
        single = predict(platform.client, SETOSA)
        batch = predict_batch(platform.client, samples_csv([SETOSA, VIRGINICA]))
        health = wait_for_writer(platform.client)
        assert health["tracking_error"] is None and health["tracking_uri"] == postgres_uri

        # What MLflow holds, read with its own client from the same database.
        training_runs = all_runs(platform.mlflow, EXPERIMENTS[0])
        assert [r.info.run_id for r in training_runs] == [trained["run_id"]]
        assert training_runs[0].data.metrics["accuracy"] == pytest.approx(trained["accuracy"])
        inference = {r.info.run_id: r for r in all_runs(platform.mlflow, EXPERIMENTS[1])}
        assert len(inference) == 2 and batch["run_id"] in inference
        assert inference[batch["run_id"]].data.metrics["total_samples"] == 2

        # The dashboard's SQL over MLflow's tables, on PostgreSQL: counts, search and the samples sort.
        summary = platform.client.get("/mlflow/summary").json()
        assert summary == {
            "status": "success",
            "total_runs": 3,
            "training_runs": 1,
            "inference_runs": 2,
            "avg_accuracy": pytest.approx(trained["accuracy"]),
        }
        by_samples = platform.client.get("/mlflow/runs", params={"order_by": "samples", "order": "desc"}).json()
        assert [r["run_id"] for r in by_samples["runs"]][:2] == [trained["run_id"], batch["run_id"]]
        assert by_samples["total"] == 3
        found = platform.client.get("/mlflow/runs", params={"search": "sklearn_iris"}).json()
        assert [r["run_id"] for r in found["runs"]] == [trained["run_id"]]
        lookup = platform.client.get(f"/predictions/{single['prediction_id']}").json()
        assert lookup["run"]["params"]["predicted_class"] == single["class_name"]
        assert platform.client.get("/ready").json()["ready"] is True


def test_a_missing_database_is_named_at_once(tmp_path):
    uri = f"{SERVER}/iris_no_such_database_{uuid.uuid4().hex[:8]}"
    with app_on(tmp_path, uri) as client:
        assert "does not exist" in (client.get("/health").json()["tracking_error"] or "")
        started = time.monotonic()
        response = client.post("/train", data={"n_estimators": str(FAST_TREES)})
        assert time.monotonic() - started < 10  # not MLflow's ten engine retries over about 100 s
        assert response.status_code == 503
        assert "does not exist" in response.json()["detail"]
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["ready"] is False


def test_a_missing_driver_is_named(tmp_path):
    with pytest.raises(ImportError):
        __import__("pg8000")  # a PostgreSQL driver this project does not install
    with app_on(tmp_path, "postgresql+pg8000://postgres@127.0.0.1:5432/postgres") as client:
        assert "pg8000" in (client.get("/health").json()["tracking_error"] or "")
        response = client.post("/train", data={"n_estimators": str(FAST_TREES)})
        assert response.status_code == 503
        assert "No module named 'pg8000'" in response.json()["detail"]


@pytest.mark.slow
def test_the_server_names_the_cause_stops_promptly_and_never_logs_the_password(tmp_path):
    uri = f"postgresql://postgres:secret-pw-123@127.0.0.1:5432/iris_no_such_database_{uuid.uuid4().hex[:8]}"
    server = ServerProcess(tmp_path, MLFLOW_TRACKING_URI=uri)
    try:
        started = time.monotonic()
        health = server.wait_healthy(timeout=30)
        assert time.monotonic() - started < 30
        assert "does not exist" in health["tracking_error"]
        assert health["tracking_uri"].startswith("postgresql://postgres:***@")
        stopping = time.monotonic()
        server.stop(grace_s=20)
        assert time.monotonic() - stopping < 20
    finally:
        server.kill()
    log = server.output(chars=1_000_000)
    assert "does not exist" in log  # the start-up warning names the cause...
    assert "secret-pw-123" not in log  # ...without the password

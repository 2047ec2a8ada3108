"""The dashboard's listings and counts through a remote `mlflow server`, with the database behind it as
IRIS_QUERY_DATABASE_URI: SQL over that database picks a page's runs and reads them too (they must be what
the server answers for them); single runs and artifacts still come from the server.

A real `mlflow server` (sqlite backend) runs as a subprocess for the module; the app reaches it over HTTP.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import psycopg
import pytest
from mlflow.exceptions import MlflowException
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from iris_platform.tracking.run_index import QueryDatabase, RunQuery, SearchRunIndex, SqlRunIndex
from iris_platform.tracking.run_reader import RunReader
from iris_platform.tracking.store import DB_CONNECT_TIMEOUT_S, TrackingStore
from tests.helpers.api import FAST_TREES, assert_error, predict, predict_batch, train, wait_for_writer
from tests.helpers.contract import EXPERIMENTS, INFERENCE_EXPERIMENT, TRAINING_EXPERIMENT
from tests.helpers.data import SETOSA, VERSICOLOR, VIRGINICA, csv_bytes, iris_frame, samples_csv
from tests.helpers.mlflow_reads import all_runs
from tests.helpers.platform import open_platform
from tests.helpers.server_process import free_port, server_environment

pytestmark = pytest.mark.slow  # an `mlflow server` takes 5 to 20 s to answer

MLFLOW = Path(sys.executable).with_name("mlflow")
SERVER_START_TIMEOUT_S = 120.0
# In one run's params only (the uploaded file's name), never in a run name.
MARKER = "petals_qx7"
POSTGRES = "postgresql://postgres@127.0.0.1:5432"  # as in test_postgresql.py: `.ci/run` starts it


def _postgres_admin(sql: str) -> None:
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True, connect_timeout=5) as connection:
        connection.execute(sql)


@dataclass
class MlflowServer:
    url: str
    database: Path

    @property
    def database_uri(self) -> str:
        return f"sqlite:///{self.database}"


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory) -> Iterator[MlflowServer]:
    directory = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    database = directory / "mlflow.db"
    log_path = directory / "mlflow-server.log"
    argv = [str(MLFLOW), "server", "--backend-store-uri", f"sqlite:///{database}"]
    argv += ["--artifacts-destination", str(directory / "artifacts"), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--workers", "1"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            argv,
            cwd=directory,
            # No job runner (a dozen huey consumers): only tracking is needed, and it starts faster.
            env=server_environment(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its uvicorn children stop with it
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"mlflow server exited with {process.returncode}: {log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx2.TransportError):
                if httpx2.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server silent for {SERVER_START_TIMEOUT_S}s: {log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield MlflowServer(url, database)
    finally:
        # The group this fixture started, by its leader's pid: SIGTERM, then SIGKILL for anything left.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)


@pytest.fixture(scope="module")
def platform(mlflow_server, tmp_path_factory):
    """The app on the remote server with its database as the query database: two trainings (one on an
    uploaded CSV whose name only its params hold), a batch and three single predictions."""
    directory = tmp_path_factory.mktemp("platform")
    with open_platform(
        directory, tracking_uri=mlflow_server.url, query_database_uri=mlflow_server.database_uri
    ) as platform:
        client = platform.client
        train(client, n_estimators=FAST_TREES)
        train(client, file=(f"{MARKER}.csv", csv_bytes(iris_frame())), n_estimators=3, test_size=0.5)
        predict_batch(client, samples_csv([SETOSA, VIRGINICA]))
        for features in (SETOSA, VERSICOLOR, VIRGINICA):
            predict(client, features)
        wait_for_writer(client)
        yield platform


def stored_runs(platform, experiments=EXPERIMENTS) -> list:
    """Every active run, read through the tracking server, newest first (ties by run id, as the index does)."""
    runs = [r for name in experiments for r in all_runs(platform.mlflow, name)]
    return sorted(runs, key=lambda r: (-r.info.start_time, r.info.run_id))


def get_json(platform, url: str, **params) -> dict:
    response = platform.client.get(url, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_index_is_sql_over_the_query_database(platform):
    index = platform.client.app.state.service.reader.index
    assert isinstance(index, SqlRunIndex)
    assert index.database is not None  # the query database's own engine, not MLflow's store


def test_without_the_setting_the_index_is_mlflow_search(platform, mlflow_server):
    reader = RunReader(TrackingStore(mlflow_server.url))
    assert isinstance(reader.index, SearchRunIndex)
    # MLflow's search looks at run names only: the param value is not found that way.
    assert reader.query_runs(experiment_name=None, page_size=10, search=MARKER)["total"] == 0
    reader.close()  # nothing of its own to release


def content(run) -> dict:
    """All a run says but its inputs and outputs: every info field, params, tags, and the latest value of
    each metric with its step and time."""
    return {
        "info": dict(run.info),
        "params": run.data.params,
        "metrics": sorted((m.key, m.value, m.step, m.timestamp) for m in run.data._metric_objs),
        "tags": run.data.tags,
    }


@pytest.mark.parametrize("order_by", ["start_time", "run_name", "samples", "metrics.accuracy"])
def test_a_page_read_from_the_query_database_is_what_the_server_answers(platform, monkeypatch, order_by):
    """Run by run, a page built from the query database equals MlflowClient.get_run through the server, for
    training and inference runs; and the page asks the server nothing."""
    service = platform.client.app.state.service
    for name, count in ((TRAINING_EXPERIMENT, 2), (INFERENCE_EXPERIMENT, 4)):
        query = RunQuery(
            experiment_ids=(platform.mlflow.get_experiment_by_name(name).experiment_id,), order_by=order_by
        )
        with monkeypatch.context() as patched:
            for method in ("search_runs", "get_run"):
                patched.setattr(service.reader.store.client, method, _refused)
            runs, total = service.reader.index.page(query)
        assert total == len(runs) == count
        assert {r.info.experiment_id for r in runs} == set(query.experiment_ids)
        for run in runs:
            served = platform.mlflow.get_run(run.info.run_id)
            assert content(run) == content(served)
            assert run.data.params and run.data.metrics and run.data.tags  # a real comparison, not of empties
            assert served.info.lifecycle_stage == "active" and served.info.end_time is not None


def _refused(*args, **kwargs):
    raise AssertionError("a page from the query database must not ask the tracking server")


def test_close_disposes_of_the_query_database_connections(platform, mlflow_server):
    reader = RunReader(TrackingStore(mlflow_server.url), query_database_uri=mlflow_server.database_uri)
    assert reader.query_runs(experiment_name=None, page_size=2)["total"] == 6
    database = reader.index.database
    assert database is not None and database.engine.pool.checkedin() >= 1
    reader.close()
    assert database.engine.pool.checkedin() == 0
    reader.close()  # twice is harmless
    # A request that arrives during shutdown still gets an answer, on a fresh connection.
    assert reader.summary()["total_runs"] == 6
    reader.close()


def test_runs_pages_list_the_right_runs_in_order(platform):
    stored = stored_runs(platform)
    assert len(stored) == 2 + 1 + 3  # two trainings, a batch, three single predictions
    newest_first = [r.info.run_id for r in stored]
    first = get_json(platform, "/mlflow/runs", max_results=4)
    second = get_json(platform, "/mlflow/runs", max_results=4, page=2)
    assert (first["total"], first["pages"], second["total"], second["pages"]) == (6, 2, 6, 2)
    assert [r["run_id"] for r in first["runs"] + second["runs"]] == newest_first

    by_id = {r.info.run_id: r for r in stored}
    for run in first["runs"] + second["runs"]:
        mlflow_run = by_id[run["run_id"]]
        assert run["run_name"] == mlflow_run.info.run_name
        assert run["params"] == mlflow_run.data.params
        assert run["metrics"] == mlflow_run.data.metrics
        assert run["experiment_name"] == platform.mlflow.get_experiment(mlflow_run.info.experiment_id).name

    oldest_first = get_json(platform, "/mlflow/runs", order="asc", max_results=100)
    assert [r["run_id"] for r in oldest_first["runs"]] == sorted(
        newest_first, key=lambda i: (by_id[i].info.start_time, i)
    )


def test_runs_of_one_experiment_sorted_by_a_metric(platform):
    training = stored_runs(platform, [TRAINING_EXPERIMENT])
    assert len(training) == 2
    body = get_json(platform, "/mlflow/runs", run_type="training", order_by="metrics.accuracy", order="desc")
    assert body["total"] == 2
    expected = sorted(training, key=lambda r: (-r.data.metrics["accuracy"], -r.info.start_time))
    assert [r["run_id"] for r in body["runs"]] == [r.info.run_id for r in expected]

    inference = stored_runs(platform, [INFERENCE_EXPERIMENT])
    body = get_json(platform, "/mlflow/runs", experiment_name=INFERENCE_EXPERIMENT, max_results=2)
    assert body["total"] == len(inference) == 4
    assert [r["run_id"] for r in body["runs"]] == [r.info.run_id for r in inference[:2]]


def test_search_finds_a_param_value(platform):
    (marked,) = [r for r in stored_runs(platform) if r.data.params.get("input_file") == f"{MARKER}.csv"]
    assert MARKER not in marked.info.run_name
    body = get_json(platform, "/mlflow/runs", search=MARKER.upper())  # case-insensitive
    assert body["total"] == 1
    assert [r["run_id"] for r in body["runs"]] == [marked.info.run_id]

    singles = [r.info.run_id for r in stored_runs(platform) if r.info.run_name.startswith("single_prediction_")]
    body = get_json(platform, "/mlflow/runs", search="single_prediction")
    assert body["total"] == 3
    assert [r["run_id"] for r in body["runs"]] == singles


def test_summary_counts(platform):
    training = stored_runs(platform, [TRAINING_EXPERIMENT])
    accuracies = [r.data.metrics["accuracy"] for r in training]
    summary = get_json(platform, "/mlflow/summary")
    assert {k: summary[k] for k in ("total_runs", "training_runs", "inference_runs")} == {
        "total_runs": 6,
        "training_runs": 2,
        "inference_runs": 4,
    }
    assert summary["avg_accuracy"] == pytest.approx(sum(accuracies) / len(accuracies))
    assert get_json(platform, "/mlflow/runs", run_type="inference", max_results=1)["total"] == 4


def test_a_deleted_run_leaves_the_listing_and_the_counts(platform):
    (single, *_) = [r for r in stored_runs(platform) if r.info.run_name.startswith("single_prediction_")]
    platform.mlflow.delete_run(single.info.run_id)
    try:
        assert get_json(platform, "/mlflow/summary")["inference_runs"] == 3
        listed = get_json(platform, "/mlflow/runs", max_results=100)
        assert listed["total"] == 5
        assert single.info.run_id not in {r["run_id"] for r in listed["runs"]}
    finally:
        platform.mlflow.restore_run(single.info.run_id)
    assert get_json(platform, "/mlflow/summary")["inference_runs"] == 4


def test_the_query_database_is_never_written(platform, mlflow_server):
    """The engine opens sqlite read-only: a write through it fails, and nothing else changed."""
    index = platform.client.app.state.service.reader.index
    with index.database.engine.connect() as connection, pytest.raises(OperationalError, match="readonly"):
        connection.execute(text("CREATE TABLE iris_probe (x INTEGER)"))
    with sqlite3.connect(mlflow_server.database) as db:
        assert db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'iris_probe'").fetchone() == (0,)


def test_a_missing_query_database_is_a_503_that_names_it(mlflow_server, tmp_path):
    missing = tmp_path / "missing.db"
    with open_platform(tmp_path, tracking_uri=mlflow_server.url, query_database_uri=f"sqlite:///{missing}") as p:
        for url in ("/mlflow/runs", "/mlflow/summary"):
            assert_error(p.client.get(url), 503, "IRIS_QUERY_DATABASE_URI", str(missing), "unable to open")
        assert p.client.get("/health").status_code == 200  # the tracking server itself is fine
    assert not missing.exists()  # read-only: not created as an empty database


def test_another_database_is_refused(mlflow_server, tmp_path):
    """A database without the tracking server's experiments would list runs the server does not have."""
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE experiments (experiment_id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO experiments VALUES (0, 'Default'), (1, 'someone_else')")
    reader = RunReader(TrackingStore(mlflow_server.url), query_database_uri=f"sqlite:///{other}")
    with pytest.raises(MlflowException, match="is not the database behind the tracking server") as raised:
        reader.summary()
    for name in EXPERIMENTS:
        assert name in str(raised.value)


def test_an_unreachable_query_database_fails_fast_without_its_password(mlflow_server):
    reader = RunReader(
        TrackingStore(mlflow_server.url), query_database_uri="postgresql://reader:s3cret-pw@127.0.0.1:1/mlflow"
    )
    start = time.monotonic()
    with pytest.raises(MlflowException, match="IRIS_QUERY_DATABASE_URI") as raised:
        reader.query_runs(experiment_name=None, page_size=10)
    assert time.monotonic() - start < DB_CONNECT_TIMEOUT_S + 5
    message = str(raised.value)
    assert "s3cret-pw" not in message
    assert "postgresql://reader:***@127.0.0.1:1/mlflow" in message


def test_a_postgresql_query_database_is_opened_read_only():
    """Beyond sqlite's read-only file: PostgreSQL's transactions default to read-only on this engine."""
    name = f"iris_query_{uuid.uuid4().hex[:12]}"
    _postgres_admin(f'CREATE DATABASE "{name}"')
    try:
        database = QueryDatabase(f"{POSTGRES}/{name}")
        try:
            with pytest.raises(MlflowException, match="ReadOnlySqlTransaction"), database.session() as session:
                session.execute(text("CREATE TABLE iris_probe (x integer)"))
                session.commit()
        finally:
            database.close()
    finally:
        _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

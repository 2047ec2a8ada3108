"""Two replicas behind a real `mlflow server` on PostgreSQL: real processes, real sockets, no mocks.

For the module: a fresh PostgreSQL database, an `mlflow server` on it that proxies artifacts to a folder
of its own (`--artifacts-destination`), and two replicas, A and B (`python main.py`, each in a folder of
its own, IRIS_MODEL_POLL_S=1), whose tracking URI is that server. A trains; B follows the champion
through the registry, downloads its files and answers as A does; every prediction either answers is in
MLflow exactly once, also when B is SIGKILLed under load and restarted on its folder.

The tests share the replicas and the store, in file order; every prediction a replica acknowledged in
any of them is in the module's ledger, which the exactly-once checks compare MLflow with.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import psycopg
import pytest
from mlflow import MlflowClient

from iris_platform.tracking.worker import unwritten
from tests.helpers.api import wait_until
from tests.helpers.contract import INFERENCE_EXPERIMENT, TRAINING_EXPERIMENT
from tests.helpers.data import SETOSA, VERSICOLOR, VIRGINICA
from tests.helpers.mlflow_reads import all_runs, logged_prediction_ids
from tests.helpers.mlflow_server import MlflowServer
from tests.helpers.server_process import ServerProcess

pytestmark = pytest.mark.slow  # an mlflow server (~15 s to answer), two replicas, a crash and a restart

POSTGRES = "postgresql://postgres@127.0.0.1:5432"  # as in test_postgresql.py: `.ci/run` starts it
REGISTERED_MODEL = "iris_classifier"
TREES = 5
POLL_S = 1
FOLLOW_LIMIT_S = 5.0  # from A's /train answer to B serving the new champion
DRAIN_TIMEOUT_S = 90.0
FLOWERS = [SETOSA, VERSICOLOR, VIRGINICA]


# -- the tracking server and the replicas -----------------------------------------------------------------


def _postgres_admin(sql: str) -> None:
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True, connect_timeout=5) as connection:
        connection.execute(sql)


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory) -> Iterator[MlflowServer]:
    """`mlflow server` on a new PostgreSQL database, artifacts proxied to <folder>/artifacts."""
    name = f"iris_replicas_{uuid.uuid4().hex[:12]}"
    try:
        _postgres_admin(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL must run on 127.0.0.1:5432 (`.ci/run` starts it): {exc}")
    server = None
    try:
        directory = tmp_path_factory.mktemp("mlflow-server")
        server = MlflowServer(directory, f"{POSTGRES}/{name}", artifacts_destination=directory / "artifacts")
        server.wait_healthy(timeout=60)
        yield server
    finally:
        if server is not None:
            server.stop()
        _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Ledger:
    """Every prediction a replica acknowledged (a 200 received), and requests that got no answer at all
    (a killed replica may have journaled those, so MLflow may hold at most that many ids beyond the ledger)."""

    acknowledged: list[str] = field(default_factory=list)
    unanswered: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ack(self, prediction_id: str) -> None:
        with self.lock:
            self.acknowledged.append(prediction_id)

    def lost_answer(self) -> None:
        with self.lock:
            self.unanswered += 1


@dataclass
class Replicas:
    a: ServerProcess
    b: ServerProcess
    env: dict[str, str]
    tracking_server: MlflowServer
    ledger: Ledger = field(default_factory=Ledger)
    started: list[ServerProcess] = field(default_factory=list)

    def restart_b(self) -> ServerProcess:
        """A new B on the old B's folder (its models cache and journal), as after a reboot."""
        self.b = ServerProcess(self.b.directory, **self.env)
        self.started.append(self.b)
        return self.b

    @property
    def mlflow(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.tracking_server.url)


@pytest.fixture(scope="module")
def replicas(tracking_server, tmp_path_factory) -> Iterator[Replicas]:
    env = {"MLFLOW_TRACKING_URI": tracking_server.url, "IRIS_MODEL_POLL_S": str(POLL_S)}
    a = ServerProcess(tmp_path_factory.mktemp("replica-a"), **env)
    b = ServerProcess(tmp_path_factory.mktemp("replica-b"), **env)
    group = Replicas(a, b, env, tracking_server, started=[a, b])
    try:
        for replica in (a, b):
            health = replica.wait_healthy()
            assert health["tracking_error"] is None, (health, replica.output())
            assert health["model_loaded"] is False, "a new store has no champion yet"
        yield group
    finally:
        for replica in group.started:
            replica.stop(grace_s=20)


@pytest.fixture(scope="module")
def champion(replicas) -> dict[str, Any]:
    """A trains once: the registry's first version, champion; `answered_at` is when A's answer arrived."""
    response = httpx2.post(f"{replicas.a.url}/train", data={"n_estimators": str(TREES)}, timeout=120)
    answered_at = time.monotonic()
    assert response.status_code == 200, (response.text, replicas.a.output())
    return {**response.json(), "answered_at": answered_at}


# -- requests ---------------------------------------------------------------------------------------------


def health(replica: ServerProcess) -> dict[str, Any]:
    response = httpx2.get(f"{replica.url}/health", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def predict(replica: ServerProcess, features: dict[str, float], ledger: Ledger) -> dict[str, Any]:
    """One prediction that must succeed; its id goes in the ledger."""
    response = httpx2.post(f"{replica.url}/predict", json=features, timeout=10)
    assert response.status_code == 200, (response.text, replica.output())
    answer = response.json()
    ledger.ack(answer["prediction_id"])
    return answer


def load(replica: ServerProcess, count: int, ledger: Ledger, errors: list[str], offset: int = 0) -> None:
    """Up to `count` predictions on one connection, each acknowledged id in the ledger; stops at the first
    request without an answer (the replica died). Any other failure goes in `errors`."""
    with httpx2.Client(timeout=10) as client:
        for i in range(offset, offset + count):
            try:
                response = client.post(f"{replica.url}/predict", json=FLOWERS[i % len(FLOWERS)])
            except httpx2.TransportError:
                ledger.lost_answer()
                return
            if response.status_code != 200:
                errors.append(f"{response.status_code}: {response.text[:300]}")
                return
            ledger.ack(response.json()["prediction_id"])


def in_threads(targets: list[tuple[Any, tuple]]) -> list[threading.Thread]:
    threads = [threading.Thread(target=target, args=args, daemon=True) for target, args in targets]
    for thread in threads:
        thread.start()
    return threads


def wait_drained(*servers: ServerProcess, timeout: float = DRAIN_TIMEOUT_S) -> None:
    """Every replica's /health says its tracking worker wrote everything it journaled, without error."""
    deadline = time.monotonic() + timeout
    for replica in servers:
        while (state := health(replica))["pending_inference_records"]:
            if time.monotonic() > deadline:
                pytest.fail(f"{replica.url} still has records to write after {timeout}s: {state}\n{replica.output()}")
            time.sleep(0.2)
        assert state["tracking_error"] is None, state
        assert state["tracking_worker"]["worker_alive"] is True, state


def serves(replica: ServerProcess, version: str) -> bool:
    state = health(replica)
    return state["model_version"] == version and state["model_registry_error"] is None


# -- what MLflow holds --------------------------------------------------------------------------------------


def assert_exactly_once(replicas: Replicas, scratch: Path) -> Counter:
    """Every acknowledged prediction is in MLflow once; beyond them, at most the unanswered requests."""
    ledger = replicas.ledger
    acknowledged = Counter(ledger.acknowledged)
    assert all(n == 1 for n in acknowledged.values()), "a prediction id was answered twice"
    logged = logged_prediction_ids(replicas.mlflow, scratch)
    duplicates = {i: n for i, n in logged.items() if n > 1}
    assert not duplicates, f"{len(duplicates)} predictions in MLflow more than once: {list(duplicates.items())[:5]}"
    missing = set(acknowledged) - set(logged)
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged predictions not in MLflow: " + str(
        sorted(missing)[:5]
    )
    extra = set(logged) - set(acknowledged)
    assert len(extra) <= ledger.unanswered, (
        f"{len(extra)} predictions in MLflow that no replica acknowledged "
        f"({ledger.unanswered} requests went unanswered): {sorted(extra)[:5]}"
    )
    for name in (TRAINING_EXPERIMENT, INFERENCE_EXPERIMENT):
        running = all_runs(replicas.mlflow, name, "attributes.status = 'RUNNING'")
        assert not running, f"runs left RUNNING in {name}: {[r.info.run_name for r in running]}"
    return logged


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the tests ----------------------------------------------------------------------------------------------


def test_b_serves_the_champion_a_trained_within_five_seconds_and_answers_as_a_does(replicas, champion):
    version = champion["model_version"]
    state = wait_until(
        lambda: serves(replicas.b, version) and health(replicas.b),
        timeout=FOLLOW_LIMIT_S + 10,
        what=f"replica B did not serve version {version} (A's training)",
        interval=0.05,
    )
    followed_s = time.monotonic() - champion["answered_at"]
    print(f"replica B served version {version} {followed_s:.2f}s after A's /train answer")
    assert followed_s <= FOLLOW_LIMIT_S, f"B took {followed_s:.2f}s to serve the champion: {replicas.b.output()}"
    assert state["model_loaded"] is True and state["current_model"] == champion["model_path"], state
    assert health(replicas.a)["model_version"] == version

    for features in FLOWERS:
        on_a = predict(replicas.a, features, replicas.ledger)
        on_b = predict(replicas.b, features, replicas.ledger)
        assert on_a["prediction_id"] != on_b["prediction_id"]
        for key in ("prediction", "class_name", "model_version", "model_path"):
            assert on_a[key] == on_b[key], (key, on_a, on_b)
        assert on_b["model_version"] == version
        assert on_b["probabilities"] == pytest.approx(on_a["probabilities"], abs=1e-6)
        assert on_b["confidence"] == pytest.approx(on_a["confidence"], abs=1e-6)


def test_predictions_on_both_replicas_are_in_mlflow_exactly_once_and_both_summaries_count_them(
    replicas, champion, tmp_path
):
    wait_until(lambda: serves(replicas.b, champion["model_version"]), 15, "replica B did not serve the champion")
    errors: list[str] = []
    # Two connections a replica, 100 predictions each, all four at once.
    threads = in_threads(
        [(load, (replica, 100, replicas.ledger, errors, k)) for replica in (replicas.a, replicas.b) for k in (0, 1)]
    )
    for thread in threads:
        thread.join(120)
    assert not any(t.is_alive() for t in threads), "the load did not finish within 120 s"
    assert not errors, errors[:5]
    assert replicas.ledger.unanswered == 0, "a replica that stays up answers every request"
    assert len(replicas.ledger.acknowledged) >= 400

    wait_drained(replicas.a, replicas.b)
    logged = assert_exactly_once(replicas, tmp_path)
    assert sum(logged.values()) == len(replicas.ledger.acknowledged)

    # The dashboard's counts, on either replica, are what the tracking server holds.
    training = all_runs(replicas.mlflow, TRAINING_EXPERIMENT)
    inference = all_runs(replicas.mlflow, INFERENCE_EXPERIMENT)
    assert [r.info.run_id for r in training] == [champion["run_id"]]
    kinds = Counter(r.data.params.get("prediction_type") for r in inference)
    assert set(kinds) <= {"single", "single_window"}, kinds
    print(f"inference runs in MLflow: {dict(kinds)} for {sum(logged.values())} predictions")
    expected = {
        "status": "success",
        "total_runs": len(training) + len(inference),
        "training_runs": 1,
        "inference_runs": len(inference),
        "avg_accuracy": pytest.approx(champion["accuracy"]),
    }
    for replica in (replicas.a, replicas.b):
        response = httpx2.get(f"{replica.url}/mlflow/summary", timeout=30)
        assert response.status_code == 200, response.text
        assert response.json() == expected, replica.url

    # Each replica's tracking worker wrote its own share: together, every inference run there is.
    stats = [health(replica)["tracking_worker"] for replica in (replicas.a, replicas.b)]
    assert sum(s["single_runs"] + s["window_runs"] for s in stats) == len(inference), stats


def test_b_killed_under_load_then_restarted_loses_no_acknowledged_prediction(replicas, champion, tmp_path):
    version = champion["model_version"]
    wait_until(lambda: serves(replicas.b, version), 15, "replica B did not serve the champion")
    killed = replicas.b
    ledger = replicas.ledger
    before = len(ledger.acknowledged)
    errors: list[str] = []

    # Two connections post to B until it dies; it is SIGKILLed (with its tracking worker: the whole
    # group) once 150 more predictions were acknowledged.
    threads = in_threads([(load, (killed, 5000, ledger, errors, k)) for k in (0, 1)])
    wait_until(lambda: len(ledger.acknowledged) - before >= 150, 60, "B did not acknowledge 150 predictions")
    killed.kill()
    for thread in threads:
        thread.join(30)
    assert not any(t.is_alive() for t in threads), "the load on the killed replica did not stop"
    assert not errors, errors[:5]
    acknowledged_by_killed = len(ledger.acknowledged) - before
    assert 150 <= acknowledged_by_killed < 10_000
    backlog = unwritten(killed.directory / "journal")
    print(f"B killed after {acknowledged_by_killed} answers; {backlog} records left in its journal")
    assert backlog > 0, "B's tracking worker had written everything: the kill tested nothing"

    # A never depended on B: it answers while B is down.
    for features in FLOWERS:
        assert predict(replicas.a, features, ledger)["model_version"] == version

    restarted = replicas.restart_b()
    state = restarted.wait_healthy()
    assert state["tracking_error"] is None, state
    wait_until(lambda: serves(restarted, version), 10, f"restarted B did not serve version {version}")
    answer = predict(restarted, SETOSA, ledger)
    assert answer["model_version"] == version and answer["class_name"] == "setosa"

    wait_drained(restarted, replicas.a)
    assert unwritten(restarted.directory / "journal") == 0, "the restarted B left records of its journal unwritten"
    assert_exactly_once(replicas, tmp_path)


def test_artifacts_are_proxied_to_the_servers_folder_and_b_downloaded_the_version(replicas, champion):
    version = champion["model_version"]
    wait_until(lambda: serves(replicas.b, version), 15, "replica B did not serve the champion")
    mlflow = replicas.mlflow
    registered = mlflow.get_model_version(REGISTERED_MODEL, version)
    model_file = registered.tags["iris.model_file"]
    sha256 = registered.tags["iris.sha256"]
    download_uri = mlflow.get_model_version_download_uri(REGISTERED_MODEL, version)
    assert download_uri.startswith("mlflow-artifacts:/"), download_uri  # served by the tracking server

    # The version's files live under --artifacts-destination (the logged model's folder, where its
    # mlflow-artifacts:/ location points), and nowhere in the replicas' folders.
    destination = replicas.tracking_server.artifacts_destination
    version_folder = destination / download_uri.removeprefix("mlflow-artifacts:/").strip("/") / "model_files"
    stored = version_folder / model_file
    assert stored.is_file(), f"{stored} missing; {destination} holds {sorted(destination.rglob(model_file))}"
    assert sha256_of(stored) == sha256
    for replica in (replicas.a, replicas.b):
        local = [p.name for p in replica.directory.iterdir() if p.name in ("mlruns", "mlartifacts", "mlflow.db")]
        assert not local, f"{replica.directory} holds a local store or artifacts: {local}"

    # B never trained: its models folder holds the version's files as the server stores them.
    version_files = {p.name: sha256_of(p) for p in version_folder.iterdir() if p.is_file()}
    b_models = replicas.b.directory / "models"
    b_files = {p.name: sha256_of(p) for p in b_models.iterdir() if p.is_file() and not p.name.startswith(".")}
    b_files.pop("current_model.json", None)
    assert b_files == version_files, (sorted(b_files), sorted(version_files))
    assert b_files[model_file] == sha256
    leftovers = [p.name for p in b_models.iterdir() if p.name.startswith(".download-")]
    assert not leftovers, f"download folders left in B's models folder: {leftovers}"

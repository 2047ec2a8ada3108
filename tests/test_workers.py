"""More than one serving process: `--workers N` on one port, and two servers started in one folder.

Each process journals to a journal of its own; every acknowledged prediction is in MLflow exactly
once, also when a serving process is killed with SIGKILL in the middle of a load and replaced.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx2
import pytest
from mlflow import MlflowClient

from tests.helpers.data import SETOSA, VIRGINICA
from tests.helpers.mlflow_reads import logged_prediction_ids
from tests.helpers.server_process import ServerProcess

pytestmark = pytest.mark.slow

DRAIN_TIMEOUT_S = 90


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            state, parent = stat.rsplit(")", 1)[1].split()[:2]
            if int(parent) == pid and state != "Z":  # a killed process stays a zombie until reaped
                found.append(int(entry.name))
    return found


def serving_processes(server: ServerProcess) -> list[int]:
    """uvicorn's worker processes: the server's children that are not multiprocessing's resource tracker."""
    return [
        pid
        for pid in children(server.process.pid)
        if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


class Load:
    """Threads posting predictions until stopped; keeps the id of every prediction answered 200."""

    def __init__(self, url: str, threads: int = 4):
        self.url = url
        self.acknowledged: list[str] = []
        self.failures = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, index: int) -> None:
        features = SETOSA if index % 2 else VIRGINICA
        with httpx2.Client(timeout=10) as client:
            while not self._stop.is_set():
                try:
                    answer = client.post(f"{self.url}/predict", json=features)
                except httpx2.TransportError:
                    with self._lock:
                        self.failures += 1  # the connection went with the killed process: not acknowledged
                    continue
                with self._lock:
                    if answer.status_code == 200:
                        self.acknowledged.append(answer.json()["prediction_id"])
                    else:
                        self.failures += 1

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def wait_for(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acknowledged) < count:
            assert time.monotonic() < deadline, f"only {len(self.acknowledged)} predictions answered"
            time.sleep(0.05)


def drained(url: str) -> dict:
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while True:
        health = httpx2.get(f"{url}/health", timeout=10).json()
        if health["pending_inference_records"] == 0 and all(j["pending"] == 0 for j in health["journals"]):
            return health
        assert time.monotonic() < deadline, f"the journals were not drained: {health}"
        time.sleep(0.2)


def assert_recorded_once(tracking_uri: str, acknowledged: list[str], tmp_path: Path) -> None:
    found = logged_prediction_ids(MlflowClient(tracking_uri=tracking_uri), tmp_path / "artifacts")
    missing = [i for i in acknowledged if found[i] == 0]
    twice = {i: n for i, n in found.items() if n > 1}
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged predictions are not in MLflow"
    assert not twice, f"predictions recorded more than once: {list(twice.items())[:5]}"


def train(url: str) -> dict:
    answer = httpx2.post(f"{url}/train", data={"n_estimators": "5"}, timeout=120)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_two_workers_serve_one_port_and_a_killed_worker_loses_nothing(tmp_path):
    server = ServerProcess(tmp_path, argv=None, IRIS_WORKERS="2")
    try:
        health = server.wait_healthy(timeout=120)
        trained = train(server.url)
        # Both processes serve the new champion (the other one follows the registry).
        deadline = time.monotonic() + 10
        while len({h["model_version"] for h in (httpx2.get(f"{server.url}/health").json() for _ in range(6))}) != 1:
            assert time.monotonic() < deadline
        workers = serving_processes(server)
        assert len(workers) == 2, f"expected two serving processes, found {workers}"
        health = httpx2.get(f"{server.url}/health", timeout=10).json()
        assert len(health["journals"]) == 2  # a journal per process, both reported by either

        with Load(server.url) as load:
            load.wait_for(300)
            os.kill(workers[0], signal.SIGKILL)  # mid-load: its journal holds records not yet in MLflow
            before = len(load.acknowledged)
            load.wait_for(before + 300, timeout=120)  # uvicorn replaces the process; answers go on
        deadline = time.monotonic() + 30
        while len(replacement := serving_processes(server)) != 2 or workers[0] in replacement:
            assert time.monotonic() < deadline, f"the killed process was not replaced: {replacement}"
            time.sleep(0.2)

        health = drained(server.url)
        assert health["model_version"] == trained["model_version"]
        assert_recorded_once(server.tracking_uri, load.acknowledged, tmp_path)
    finally:
        server.stop()


def test_two_servers_in_one_folder_both_serve_and_record_every_prediction(tmp_path):
    first = ServerProcess(tmp_path)
    second = ServerProcess(tmp_path)  # started at once: the store's schema is created once
    try:
        first.wait_healthy(timeout=120)
        second.wait_healthy(timeout=120)
        trained = train(first.url)
        deadline = time.monotonic() + 10
        while httpx2.get(f"{second.url}/health").json()["model_version"] != trained["model_version"]:
            assert time.monotonic() < deadline, "the second server did not follow the champion"
            time.sleep(0.1)
        acknowledged = []
        for server in (first, second, first, second):
            for _ in range(25):
                answer = httpx2.post(f"{server.url}/predict", json=SETOSA, timeout=10)
                assert answer.status_code == 200, answer.text
                acknowledged.append(answer.json()["prediction_id"])
        for server in (first, second):
            health = drained(server.url)
            assert health["tracking_error"] is None
            assert sorted(j["journal"] for j in health["journals"]) == [
                str(tmp_path / "journal"),
                str(tmp_path / "journal" / "p1"),
            ]
    finally:
        second.stop()
        first.stop()
    assert_recorded_once(first.tracking_uri, acknowledged, tmp_path)
    for server in (first, second):
        assert "already exists" not in server.output(20000)  # no schema-creation race

    # Once both stopped, a server starts in that folder again and serves the champion.
    again = ServerProcess(tmp_path)
    try:
        assert again.wait_healthy()["model_version"] == trained["model_version"]
    finally:
        again.stop()

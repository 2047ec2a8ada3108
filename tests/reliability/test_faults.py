"""Faults: the tracking backend goes away and comes back, the disk fills up, and 500 predictions race two trainings.

Nothing acknowledged may be lost: every prediction that got a 200 is found in MLflow exactly once
(single runs by their `prediction_id` tag, window runs by the rows of their CSV artifact), and the
actions that must write their run (training, batch) answer 503 or 507 quickly instead of hanging
or half-writing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx2
import numpy as np
import pytest
from conftest import (
    FAST_TREES,
    INFERENCE_EXPERIMENT,
    TRAINING_EXPERIMENT,
    all_runs,
    csv_bytes,
    iris_frame,
    logged_prediction_ids,
    predict,
    train,
)
from mlflow import MlflowClient

from iris_platform.conftest import assert_only_complete_models, free_port, models_snapshot, open_app, running_runs
from iris_platform.ml.inference import Predictor
from iris_platform.ml.model_store import ModelStore

MLFLOW = Path(sys.executable).with_name("mlflow")
FAULT_ANSWER_S = 30.0  # a training or batch must answer within this while the tracking store is down
DRAIN_TIMEOUT_S = 90.0
BORDER = {"sepal_length": 6.0, "sepal_width": 2.7, "petal_length": 4.9, "petal_width": 1.6}


def flowers(count: int, seed: int) -> list[dict[str, float]]:
    """Measurements spread over (and a little beyond) the Iris ranges: answers differ between models."""
    rng = np.random.default_rng(seed)
    low, high = np.array([4.3, 2.0, 1.0, 0.1]), np.array([7.9, 4.4, 6.9, 2.5])
    rows = rng.uniform(low - 0.3, high + 0.3, size=(count, 4)).round(2)
    return [dict(zip(BORDER, map(float, row), strict=False)) for row in rows]


def wait_until(condition, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:.0f}s")
        time.sleep(interval)


def drained(client) -> dict:
    return wait_until(
        lambda: (h := client.get("/health").json())["pending_inference_records"] == 0 and h,
        DRAIN_TIMEOUT_S,
        "the journal did not drain",
    )


def exactly_once(mlflow: MlflowClient, ids: list[str], scratch: Path) -> tuple[int, int, int, Counter]:
    """(found once, lost, found more than once) among `ids`, and every id MLflow holds."""
    found = logged_prediction_ids(mlflow, scratch)
    once = sum(found[i] == 1 for i in ids)
    lost = sum(found[i] == 0 for i in ids)
    twice = sum(found[i] > 1 for i in ids)
    return once, lost, twice, found


def timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


# -- the tracking backend goes away ---------------------------------------------------------------


class MlflowServer:
    """A real `mlflow server` on `port`, in its own process group."""

    def __init__(self, directory: Path, port: int):
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(directory / "mlflow-server.log", "wb")
        self.process = subprocess.Popen(
            [
                str(MLFLOW),
                "server",
                "--backend-store-uri",
                f"sqlite:///{directory}/server.db",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            cwd=directory,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_up(self, timeout: float = 60.0) -> None:
        def up():
            assert self.process.poll() is None, "mlflow server exited"
            try:
                return httpx2.get(f"{self.url}/health", timeout=1).status_code == 200
            except httpx2.TransportError:
                return False

        wait_until(up, timeout, "mlflow server did not start", interval=0.2)

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)  # the group this test started (the CLI and its uvicorn)
            except ProcessLookupError:
                break
            try:
                self.process.wait(10)
                break
            except subprocess.TimeoutExpired:
                continue
        self.log.close()


def outage_while_serving(
    platform, results, fault: str, injected: str, come_back, scratch: Path, store_uri: str
) -> None:
    """The shared script: predictions are served and journaled, training and batch answer 503, and
    once `come_back()` has restored the store every acknowledged prediction lands exactly once."""
    client = platform.client
    serving = client.get("/models").json()["current_model"]
    models_before = models_snapshot(platform.models_dir)

    during = [predict(client, f) for f in flowers(60, seed=1)]
    assert {p["model_path"] for p in during} == {serving}
    health = wait_until(
        lambda: (h := client.get("/health").json())["tracking_error"] and h,
        30,
        "/health did not report the tracking error",
    )
    assert health["pending_inference_records"] == len(during)
    assert health["status"] == "healthy" and health["model_loaded"]

    training, training_s = timed(lambda: client.post("/train", data={"n_estimators": str(FAST_TREES)}))
    batch, batch_s = timed(
        lambda: client.post("/predict_batch", files={"file": ("b.csv", csv_bytes(iris_frame()), "text/csv")})
    )
    for response, seconds in ((training, training_s), (batch, batch_s)):
        assert response.status_code == 503, response.text
        assert "tracking store" in response.json()["detail"] and "unavailable" in response.json()["detail"]
        assert seconds < FAULT_ANSWER_S
    assert client.get("/health").json()["pending_inference_records"] == len(during)  # nothing lost meanwhile
    assert models_snapshot(platform.models_dir) == models_before  # the failed training left no model
    assert client.get("/models").json()["current_model"] == serving

    come_back()
    after = [predict(client, f) for f in flowers(5, seed=2)]
    drained(client)
    health = client.get("/health").json()
    assert health["tracking_error"] is None

    mlflow = MlflowClient(tracking_uri=store_uri)
    ids = [p["prediction_id"] for p in during + after]
    once, lost, twice, found = exactly_once(mlflow, ids, scratch)
    assert (once, lost, twice) == (len(ids), 0, 0)
    assert not running_runs(mlflow)
    batch_runs = [r for r in all_runs(mlflow, INFERENCE_EXPERIMENT) if r.data.params.get("prediction_type") == "batch"]
    assert not batch_runs, "the refused batch half-wrote a run"
    if mlflow.get_experiment_by_name(TRAINING_EXPERIMENT) is not None:  # the refused training started no run
        assert all(r.info.status == "FINISHED" for r in all_runs(mlflow, TRAINING_EXPERIMENT))

    again = client.post("/predict_batch", files={"file": ("b.csv", csv_bytes(iris_frame()), "text/csv")})
    assert again.status_code == 200, again.text  # the store is usable again, from the serving process too
    results.fault(
        fault=fault,
        injected=injected,
        answers=f"POST /predict 200 ({len(during)}x); POST /train 503 in {training_s:.1f} s; "
        f"POST /predict_batch 503 in {batch_s:.1f} s; /health: {len(during)} waiting + tracking_error",
        acknowledged=len(ids),
        found_once=once,
        lost=lost,
        duplicated=twice,
        survived="journal drained once the store was back; batch answered 200 again",
    )


def test_remote_tracking_server_down_then_back(tmp_path, results):
    """The tracking URI is a remote `mlflow server` that is not running; later one starts on its port."""
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    with open_app(tmp_path) as seed:  # a model to serve, trained while a store was there
        train(seed.client, n_estimators=FAST_TREES)
    server = None
    try:
        started = time.monotonic()
        with open_app(tmp_path, tracking_uri=uri, writer_window_threshold=20) as platform:
            startup_s = time.monotonic() - started
            assert startup_s < FAULT_ANSWER_S  # a store down at start-up does not keep the server from serving

            def come_back():
                nonlocal server
                server = MlflowServer(tmp_path, port)
                server.wait_up()

            outage_while_serving(
                platform,
                results,
                "remote tracking server stopped",
                "tracking URI http://127.0.0.1:<port> with nothing listening; then a real "
                "`mlflow server` started on that port",
                come_back,
                tmp_path / "read",
                uri,
            )
    finally:
        if server is not None:
            server.stop()


def _immutable_files_possible(directory: Path) -> str | None:
    """None if chattr +i works here (root, ext4-like filesystem), else why not."""
    if os.geteuid() != 0 or shutil.which("chattr") is None:
        return "not root, or no chattr"
    probe = directory / "chattr-probe"
    probe.write_text("x")
    try:
        result = subprocess.run(["chattr", "+i", str(probe)], capture_output=True, text=True)
        if result.returncode != 0:
            return f"chattr +i refused: {result.stderr.strip()}"
        subprocess.run(["chattr", "-i", str(probe)], check=True)
        return None
    finally:
        probe.unlink()


def test_database_refusing_writes_then_back(tmp_path, results):
    """The sqlite database and its folder are made immutable (chattr +i: root cannot write them either)."""
    why_not = _immutable_files_possible(tmp_path)
    if why_not:
        _unopenable_database_instead(tmp_path, results, why_not)
        return
    store = tmp_path / "store"
    store.mkdir()
    uri = f"sqlite:///{store}/mlflow.db"
    frozen: list[Path] = []

    def thaw() -> None:
        while frozen:
            subprocess.run(["chattr", "-i", str(frozen.pop())], check=True)

    try:
        with open_app(tmp_path, tracking_uri=uri) as platform:
            train(platform.client, n_estimators=FAST_TREES)
            for path in (store / "mlflow.db", store):
                subprocess.run(["chattr", "+i", str(path)], check=True)
                frozen.append(path)
            with pytest.raises(OSError) as refused:
                (store / "mlflow.db").open("ab").close()
            assert refused.value.errno == errno.EPERM  # the fault is real: even root cannot write it
            outage_while_serving(
                platform,
                results,
                "database refusing writes",
                "sqlite file and folder made immutable (chattr +i) while the server ran; then chattr -i",
                thaw,
                tmp_path / "read",
                uri,
            )
            recovered = platform.client.post("/train", data={"n_estimators": "5"})
            assert recovered.status_code == 200, recovered.text  # the serving process writes again too
    finally:
        thaw()


def _unopenable_database_instead(tmp_path: Path, results, why: str) -> None:
    """Without chattr: a database that cannot be opened (its folder is a regular file), then can."""
    with open_app(tmp_path) as seed:  # a model to serve
        train(seed.client, n_estimators=FAST_TREES)
    blocked = tmp_path / "blocked"
    blocked.write_text("a regular file where the database's folder should be")
    uri = f"sqlite:///{blocked}/mlflow.db"

    def come_back() -> None:
        blocked.unlink()
        blocked.mkdir()

    with open_app(tmp_path, tracking_uri=uri) as platform:
        outage_while_serving(
            platform,
            results,
            "database that cannot be opened",
            f"(immutable files impossible here: {why}) the sqlite file's folder is a regular file; then a folder",
            come_back,
            tmp_path / "read",
            uri,
        )


# -- the disk fills up ----------------------------------------------------------------------------


def test_disk_full_answers_507_and_the_previous_model_serves(tmp_path, results):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        _unwritable_folder_instead(tmp_path, results, mounted.stderr.strip())
        return
    try:
        with open_app(tmp_path, models_dir=disk / "models") as platform:
            client = platform.client
            first = train(client, n_estimators=FAST_TREES)
            reference = predict(client, BORDER)
            filler = disk / "filler"
            with open(filler, "wb") as handle:  # fill the disk for real, to ENOSPC
                with pytest.raises(OSError) as full:
                    while True:
                        handle.write(b"\0" * 65536)
                        handle.flush()
            assert full.value.errno == errno.ENOSPC
            models_before = models_snapshot(platform.models_dir)

            response = client.post("/train", data={"n_estimators": str(FAST_TREES)})
            assert response.status_code == 507, response.text
            assert "disk is full" in response.json()["detail"] and "still serving" in response.json()["detail"]
            failed = all_runs(platform.mlflow, TRAINING_EXPERIMENT, "attributes.status = 'FAILED'")
            assert len(failed) == 1 and "No space left" in failed[0].data.tags["failure_reason"]
            assert not running_runs(platform.mlflow)
            assert models_snapshot(platform.models_dir) == models_before  # no temporary or partial file
            assert_only_complete_models(platform.models_dir)
            answer = predict(client, BORDER)
            assert answer["model_path"] == first["model_path"] == client.get("/models").json()["current_model"]
            assert answer["probabilities"] == reference["probabilities"]

            filler.unlink()
            recovered = client.post("/train", data={"n_estimators": str(FAST_TREES)})
            assert recovered.status_code == 200, recovered.text
        results.fault(
            fault="disk full (models folder)",
            injected="1 MB tmpfs as the models folder, filled to ENOSPC",
            answers=f"POST /train 507 ('{response.json()['detail'].split(':')[0]}'); the run FAILED with "
            f"failure_reason '{failed[0].data.tags['failure_reason'].split(':')[0]}: [Errno 28] No space left'",
            survived="the previous model kept serving (same answer); no partial or temporary file; "
            "training worked again once space was freed",
        )
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _unwritable_folder_instead(tmp_path: Path, results, why: str) -> None:
    """Without a mount, ENOSPC cannot be made for real: the unwritable folder (503) instead."""
    with open_app(tmp_path) as platform:
        first = train(platform.client, n_estimators=FAST_TREES)
        away = platform.models_dir.with_name("models.away")
        platform.models_dir.rename(away)
        platform.models_dir.write_text("not a folder")
        try:
            response = platform.client.post("/train", data={"n_estimators": str(FAST_TREES)})
        finally:
            platform.models_dir.unlink()
            away.rename(platform.models_dir)
        assert response.status_code == 503, response.text
        assert predict(platform.client, BORDER)["model_path"] == first["model_path"]
    results.fault(
        fault="disk full: not injectable here",
        injected=f"mount refused ({why[:80]}); models folder replaced by a file instead",
        answers=f"POST /train {response.status_code}",
        survived="the previous model kept serving",
    )


# -- 500 concurrent predictions while two trainings run -----------------------------------------------


CONCURRENT = 500


async def _load(url: str, training_sizes: list[int], seed: int) -> dict:
    """Trainings in flight, and waves of CONCURRENT predictions until both trainings have answered."""
    # keepalive_expiry below uvicorn's 5 s keep-alive: a connection idle through a slow wave must not be
    # reused just as the server closes it (a client-side race, seen once as a ReadError).
    limits = httpx2.Limits(
        max_connections=CONCURRENT + len(training_sizes), max_keepalive_connections=CONCURRENT, keepalive_expiry=2.0
    )
    async with httpx2.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

        async def one(features):
            started = time.monotonic()
            response = await client.post("/predict", json=features)
            return features, response, time.monotonic() - started

        async def training(n):
            response = await client.post("/train", data={"n_estimators": str(n)})
            return response

        trainings = [asyncio.create_task(training(n)) for n in training_sizes]
        await asyncio.sleep(0.2)  # the first training is running when the load starts
        answers, waves = [], 0
        started = time.monotonic()
        while True:
            waves += 1
            answers += await asyncio.gather(*(one(f) for f in flowers(CONCURRENT, seed + waves)))
            if all(t.done() for t in trainings):
                break
        seconds = time.monotonic() - started
        trained = [await t for t in trainings]
    return {"answers": answers, "trainings": trained, "waves": waves, "seconds": seconds}


def test_500_concurrent_predictions_while_two_trainings_run(live_server, results, tmp_path):
    first = httpx2.post(f"{live_server.url}/train", data={"n_estimators": str(FAST_TREES)}, timeout=120)
    assert first.status_code == 200, first.text
    # In a thread of its own: Playwright's sync API (the browser tests) may leave an event loop
    # running in this one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        load = pool.submit(asyncio.run, _load(live_server.url, [30, 60], seed=10)).result()
    answers, trainings = load["answers"], load["trainings"]

    texts = [r.text for _, r, _ in answers] + [t.text for t in trainings]
    locked = sum("database is locked" in t for t in texts)
    statuses = Counter(r.status_code for _, r, _ in answers)
    assert statuses == Counter({200: len(answers)}), statuses
    assert [t.status_code for t in trainings] == [200, 200], [t.text[:300] for t in trainings]
    assert locked == 0

    bodies = [(features, r.json()) for features, r, _ in answers]
    ids = [b["prediction_id"] for _, b in bodies]
    assert len(set(ids)) == len(ids)

    # No answer mixes two models: each is what its own model_path's model answers for its features.
    store = ModelStore(Path(live_server.directory) / "models")
    predictors = {path: Predictor(store.load(Path(path).name)) for path in {b["model_path"] for _, b in bodies}}
    mixed = 0
    for features, body in bodies:
        expected = predictors[body["model_path"]].predict_one(list(features.values()))
        probabilities = np.array(list(body["probabilities"].values()))
        if expected.class_name != body["class_name"] or not np.allclose(
            probabilities, list(expected.probabilities.values()), atol=1e-5
        ):
            mixed += 1
    assert mixed == 0

    drained_health = None
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        drained_health = httpx2.get(f"{live_server.url}/health", timeout=10).json()
        if drained_health["pending_inference_records"] == 0:
            break
        time.sleep(0.2)
    assert drained_health["pending_inference_records"] == 0, drained_health
    mlflow = MlflowClient(tracking_uri=live_server.tracking_uri)
    once, lost, twice, found = exactly_once(mlflow, ids, tmp_path)
    assert (once, lost, twice) == (len(ids), 0, 0)
    assert not running_runs(mlflow)

    runs = all_runs(mlflow, INFERENCE_EXPERIMENT)
    latencies = sorted(seconds for _, _, seconds in answers)
    results.load_held(
        predictions=len(answers),
        in_flight=CONCURRENT,
        waves=load["waves"],
        cores=os.cpu_count(),
        trainings=len(trainings),
        trainings_ok=sum(t.status_code == 200 for t in trainings),
        seconds=load["seconds"],
        ok=statuses[200],
        unique_ids=len(set(ids)),
        found_once=once,
        lost=lost,
        duplicated=twice,
        single_runs=sum(r.data.params.get("prediction_type") == "single" for r in runs),
        window_runs=sum(r.data.params.get("prediction_type") == "single_window" for r in runs),
        models_served=len(predictors),
        mixed=mixed,
        locked=locked,
        p50_ms=1000 * statistics.median(latencies),
        p99_ms=1000 * latencies[int(0.99 * (len(latencies) - 1))],
        max_ms=1000 * latencies[-1],
    )
    results.fault(
        fault=f"{len(answers)} concurrent predictions during two trainings",
        injected=f"{CONCURRENT} requests in flight at once (httpx2.AsyncClient) against the real server",
        answers=f"{statuses[200]} x 200, trainings {[t.status_code for t in trainings]}, "
        f"{len(predictors)} models answered, 0 mixed, 0 'database is locked'",
        acknowledged=len(ids),
        found_once=once,
        lost=lost,
        duplicated=twice,
        survived="every answer is its own model's; every record in MLflow once",
    )

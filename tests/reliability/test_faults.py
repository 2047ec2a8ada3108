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
import itertools
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
from mlflow import MlflowClient

from iris_platform.ml.inference import Predictor
from iris_platform.ml.model_store import ModelStore
from tests.helpers.api import FAST_TREES, predict, train, wait_until
from tests.helpers.contract import INFERENCE_EXPERIMENT, TRAINING_EXPERIMENT
from tests.helpers.data import csv_bytes, iris_frame
from tests.helpers.mlflow_reads import all_runs, logged_prediction_ids
from tests.helpers.server_process import free_port
from tests.reliability.helpers import assert_only_complete_models, models_snapshot, open_app, running_runs

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
        self.log = open(directory / "mlflow-server.log", "wb")  # noqa: SIM115 (closed by stop())
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
    platform, results, fault: str, injected: str, come_back, scratch: Path, store_uri: str, trainings_before: int
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
    # The refused training started no run: the store holds the trainings made before the fault, all FINISHED.
    trainings = all_runs(mlflow, TRAINING_EXPERIMENT) if mlflow.get_experiment_by_name(TRAINING_EXPERIMENT) else []
    assert [r.info.status for r in trainings] == ["FINISHED"] * trainings_before

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


@pytest.mark.slow  # a real `mlflow server` started mid-test, and the writer's retries: 30-80 s
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
                trainings_before=0,  # the model served was trained on another store
            )
    finally:
        if server is not None:
            server.stop()


def cannot_inject(fault: str, missing: str):
    """A fault test tests its fault or fails: it never passes on a weaker substitute, nor skips."""
    pytest.fail(f"cannot inject the fault '{fault}': {missing}", pytrace=False)


def _immutable_files_impossible(directory: Path) -> str | None:
    """None if chattr +i works here (root, a filesystem with the immutable attribute), else what is missing."""
    if os.geteuid() != 0:
        return f"needs root for chattr +i (running as uid {os.geteuid()})"
    if shutil.which("chattr") is None:
        return "needs the chattr command (e2fsprogs) for chattr +i"
    probe = directory / "chattr-probe"
    probe.write_text("x")
    try:
        result = subprocess.run(["chattr", "+i", str(probe)], capture_output=True, text=True)
        if result.returncode != 0:
            return f"needs a filesystem that supports chattr +i under {directory}: {result.stderr.strip()}"
        subprocess.run(["chattr", "-i", str(probe)], check=True)
        return None
    finally:
        probe.unlink()


def test_database_refusing_writes_then_back(tmp_path, results):
    """The sqlite database and its folder are made immutable (chattr +i: root cannot write them either)."""
    missing = _immutable_files_impossible(tmp_path)
    if missing:
        cannot_inject("database refusing writes", missing)
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
                trainings_before=1,
            )
            recovered = platform.client.post("/train", data={"n_estimators": "5"})
            assert recovered.status_code == 200, recovered.text  # the serving process writes again too
    finally:
        thaw()


def test_connections_a_read_opened_while_the_database_refused_writes_do_not_fail_later_writes(tmp_path):
    """SQLite opens a file it may not write read-only, for good: a read during the refusal must not leave
    such a connection pooled for the first training after it (the tracking and the registry engines)."""
    from iris_platform.tracking.store import TrackingStore

    missing = _immutable_files_impossible(tmp_path)
    if missing:
        cannot_inject("database refusing writes", missing)
    database = tmp_path / "mlflow.db"
    store = TrackingStore(f"sqlite:///{database}")
    store.ensure_experiments()
    store.reset_connections()  # the pools start empty: the next reads open connections
    subprocess.run(["chattr", "+i", str(database)], check=True)
    try:
        store.client.search_experiments(max_results=1)
        store.client.search_registered_models(max_results=1)
    finally:
        subprocess.run(["chattr", "-i", str(database)], check=True)
    experiment = store.experiment_id(TRAINING_EXPERIMENT)
    run = store.client.create_run(experiment)  # no error in between: no reset_connections() has run
    store.client.create_registered_model("written_after_the_refusal")
    assert store.client.get_run(run.info.run_id).info.experiment_id == experiment
    assert store.client.get_registered_model("written_after_the_refusal").name == "written_after_the_refusal"


# -- the disk fills up ----------------------------------------------------------------------------


def test_disk_full_answers_507_and_the_previous_model_serves(tmp_path, results):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        cannot_inject(
            "disk full",
            f"needs root to mount a 1 MB tmpfs (mount -t tmpfs) for a real ENOSPC: {mounted.stderr.strip()}",
        )
    try:
        with open_app(tmp_path, models_dir=disk / "models") as platform:
            client = platform.client
            first = train(client, n_estimators=FAST_TREES)
            reference = predict(client, BORDER)
            filler = disk / "filler"
            with open(filler, "wb") as handle, pytest.raises(OSError) as full:  # fill the disk for real, to ENOSPC
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


# -- 500 concurrent predictions while two trainings run -----------------------------------------------


CONCURRENT = 500


async def _load(url: str, training_sizes: list[int], seed: int) -> dict:
    """Trainings in flight, and CONCURRENT predictions kept in flight (each answer is followed by the next
    request) until every training has answered and CONCURRENT more answers came after the last one: each
    model switch happens while predictions are in flight and is followed by answers (waves, which a slow
    client can answer all before a switch, were seen to leave the switch out of the load)."""
    # keepalive_expiry below uvicorn's 5 s keep-alive: a connection idle through a slow wave must not be
    # reused just as the server closes it (a client-side race, seen once as a ReadError).
    limits = httpx2.Limits(
        max_connections=CONCURRENT + len(training_sizes), max_keepalive_connections=CONCURRENT, keepalive_expiry=2.0
    )
    async with httpx2.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        answers: list = []
        stop = asyncio.Event()

        def endless_flowers():
            for chunk in itertools.count(seed):
                yield from flowers(CONCURRENT, chunk)

        source = endless_flowers()

        async def one_after_another():
            while not stop.is_set():
                features = next(source)
                started = time.monotonic()
                response = await client.post("/predict", json=features)
                answers.append((features, response, started, time.monotonic()))

        async def training(n):
            response = await client.post("/train", data={"n_estimators": str(n)})
            return response, time.monotonic()  # the new model serves by the time its training answers

        trainings = [asyncio.create_task(training(n)) for n in training_sizes]
        await asyncio.sleep(0.2)  # the first training is running when the load starts
        started = time.monotonic()
        senders = [asyncio.create_task(one_after_another()) for _ in range(CONCURRENT)]
        trained = await asyncio.gather(*trainings)
        after_the_last = len(answers) + CONCURRENT
        deadline = time.monotonic() + FAULT_ANSWER_S
        while len(answers) < after_the_last and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*senders)
        seconds = time.monotonic() - started
    return {
        "answers": answers,
        "trainings": [response for response, _ in trained],
        "trained_at": [at for _, at in trained],
        "waves": -(-len(answers) // CONCURRENT),  # in rounds of CONCURRENT
        "seconds": seconds,
    }


def test_500_concurrent_predictions_while_two_trainings_run(live_server, results, tmp_path):
    first = httpx2.post(f"{live_server.url}/train", data={"n_estimators": str(FAST_TREES)}, timeout=120)
    assert first.status_code == 200, first.text
    # In a thread of its own: Playwright's sync API (the browser tests) may leave an event loop
    # running in this one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        load = pool.submit(asyncio.run, _load(live_server.url, [30, 60], seed=10)).result()
    answers, trainings = load["answers"], load["trainings"]

    texts = [r.text for _, r, *_ in answers] + [t.text for t in trainings]
    locked = sum("database is locked" in t for t in texts)
    statuses = Counter(r.status_code for _, r, *_ in answers)
    assert statuses == Counter({200: len(answers)}), statuses
    assert [t.status_code for t in trainings] == [200, 200], [t.text[:300] for t in trainings]
    assert locked == 0

    bodies = [(features, r.json()) for features, r, *_ in answers]
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

    # A model switch completed during the load, not before or after it: a training answered (its model
    # serving) while predictions were in flight, requests sent before it were answered by another model,
    # and the new model answered too. Without this the test could pass with one model throughout.
    served = Counter(body["model_path"] for _, body in bodies)
    known = {first.json()["model_path"], *(t.json()["model_path"] for t in trainings)}
    assert set(served) <= known, (served, known)
    spans = [
        (body["model_path"], started, ended) for (_, body), (*_, started, ended) in zip(bodies, answers, strict=True)
    ]
    began, ended = min(s for _, s, _ in spans), max(e for _, _, e in spans)
    switches = [
        (path, at)
        for path, at in zip((t.json()["model_path"] for t in trainings), load["trained_at"], strict=True)
        if began < at < ended
        and any(s < at < e for _, s, e in spans)  # requests in flight when the switch was acknowledged
        and any(model != path and s < at for model, s, _ in spans)  # the model before it answered some
        and served[path] > 0  # and it answered some itself
    ]
    assert len(served) >= 2 and switches, (
        f"no model switch during the load: answers by {dict(served)} within {ended - began:.1f} s; "
        f"trainings answered at {[round(at - began, 1) for at in load['trained_at']]} s from the load's start"
    )

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
    latencies = sorted(ended - started for _, _, started, ended in answers)
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
        f"{len(predictors)} models answered ({len(switches)} switch(es) while requests were in flight), 0 mixed, "
        "0 'database is locked'",
        acknowledged=len(ids),
        found_once=once,
        lost=lost,
        duplicated=twice,
        survived="every answer is its own model's; every record in MLflow once",
    )

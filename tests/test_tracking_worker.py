"""The tracking worker process: single runs while it keeps up, window runs past the bound, nothing lost."""

import os
import re
import signal
from collections import Counter
from datetime import datetime

import pandas as pd
import pytest

from iris_platform.tracking.journal import JournalReader
from iris_platform.tracking.prediction_runs import PredictionRunWriter
from iris_platform.tracking.store import TrackingStore
from tests.helpers.api import FAST_TREES, assert_error, predict, train, wait_for_writer
from tests.helpers.contract import INFERENCE_EXPERIMENT, PREDICTION_ID_TAG
from tests.helpers.data import IRIS_CLASSES, IRIS_FEATURES, SETOSA, VERSICOLOR, VIRGINICA
from tests.helpers.journal import inference_record_for, leave_in_journal
from tests.helpers.mlflow_reads import (
    all_runs,
    check_single_run,
    download_artifact,
    logged_prediction_ids,
    the_run_for_prediction,
)
from tests.helpers.platform import open_platform

THRESHOLD = 5  # above this many waiting records the worker writes window runs
CENTRES = [SETOSA, VERSICOLOR, VIRGINICA]
WINDOW_COLUMNS = [
    "prediction_id",
    "timestamp",
    *IRIS_FEATURES,
    "predicted_class",
    "confidence",
    *[f"prob_{c}" for c in IRIS_CLASSES],
]


def sample(i: int) -> dict[str, float]:
    """The i-th of a spread of flowers around the three Iris centres (all three classes come up)."""
    centre = CENTRES[i % 3]
    return {k: round(v + 0.05 * ((i * 7 + j * 3) % 5 - 2), 2) for j, (k, v) in enumerate(centre.items())}


class Acknowledged:
    """Every prediction this module's app answered with 200: id -> (features sent, response body)."""

    def __init__(self):
        self.by_id: dict[str, tuple[dict, dict]] = {}

    def predict(self, client, features) -> dict:
        body = predict(client, features)
        assert body["prediction_id"] not in self.by_id
        self.by_id[body["prediction_id"]] = (features, body)
        return body

    def burst(self, client, count: int, offset: int = 0) -> list[str]:
        return [self.predict(client, sample(offset + i))["prediction_id"] for i in range(count)]


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with open_platform(tmp_path_factory.mktemp("worker"), writer_window_threshold=THRESHOLD) as platform:
        train(platform.client, n_estimators=FAST_TREES)
        yield platform


@pytest.fixture(scope="module")
def acknowledged():
    return Acknowledged()


@pytest.fixture(scope="module")
def singles(platform, acknowledged):
    """Predictions made one at a time, each written before the next: always below the bound."""
    ids = []
    for features in CENTRES:
        ids.append(acknowledged.predict(platform.client, features)["prediction_id"])
        wait_for_writer(platform.client)
    return ids


@pytest.fixture(scope="module")
def burst(platform, acknowledged, singles):
    """60 predictions as fast as the client sends them: the backlog passes the bound."""
    ids = acknowledged.burst(platform.client, 60)
    wait_for_writer(platform.client)
    return ids


def inference_runs_by_type(mlflow_client) -> dict[str, list]:
    runs: dict[str, list] = {}
    for run in all_runs(mlflow_client, INFERENCE_EXPERIMENT):
        runs.setdefault(run.data.params["prediction_type"], []).append(run)
    return runs


def record_from(features, body, timestamp) -> dict:
    return {
        "prediction_id": body["prediction_id"],
        "model_path": body["model_path"],
        "model_version": body["model_version"],
        "timestamp": timestamp,
        "features": features,
        "class_name": body["class_name"],
        "class_index": body["prediction"],
        "confidence": body["confidence"],
        "probabilities": body["probabilities"],
    }


def window_table(mlflow_client, run, tmp_path) -> pd.DataFrame:
    path = download_artifact(mlflow_client, run.info.run_id, "window_predictions.csv", tmp_path / run.info.run_id)
    return pd.read_csv(path, dtype={"prediction_id": str, "timestamp": str})


def check_window_run(run, table: pd.DataFrame, acknowledged: Acknowledged) -> None:
    """A `single_window` run: params, metrics and tags agree with its CSV, and the CSV with the answers."""
    assert run.info.status == "FINISHED"
    first, last = table.iloc[0], table.iloc[-1]
    stamp = datetime.fromisoformat(first["timestamp"]).strftime("%Y%m%d_%H%M%S_%f")
    assert run.info.run_name == f"single_window_{stamp}"
    assert list(table.columns) == WINDOW_COLUMNS
    n = len(table)
    assert n >= 1 and table["prediction_id"].is_unique

    models = {
        (acknowledged.by_id[i][1]["model_path"], acknowledged.by_id[i][1]["model_version"])
        for i in table["prediction_id"]
    }
    assert len(models) == 1  # the answers in one window all came from one model
    model_path, model_version = models.pop()  # the one the answers named
    assert run.data.params == {
        "prediction_type": "single_window",
        "model_path": model_path,
        "model_version": model_version,
        "timestamp": first["timestamp"],
        "window_end": last["timestamp"],
    }
    assert run.data.tags["window_first_prediction_id"] == first["prediction_id"]
    assert run.data.tags["window_records"] == str(n)
    assert PREDICTION_ID_TAG not in run.data.tags

    counts = table["predicted_class"].value_counts()
    metrics = run.data.metrics
    assert metrics["total_samples"] == n
    assert metrics["avg_confidence"] == pytest.approx(table["confidence"].mean())
    assert metrics["min_confidence"] == pytest.approx(table["confidence"].min())
    assert metrics["max_confidence"] == pytest.approx(table["confidence"].max())
    assert metrics["unique_classes_predicted"] == len(counts)
    for c in IRIS_CLASSES:
        assert metrics[f"count_{c}"] == counts.get(c, 0)
        assert metrics[f"percentage_{c}"] == pytest.approx(100.0 * counts.get(c, 0) / n)
    assert sum(metrics[f"percentage_{c}"] for c in IRIS_CLASSES) == pytest.approx(100.0)
    # The window's span in ms is the first and last prediction's time, which their ids begin with.
    assert metrics["window_start_ms"] == int(first["prediction_id"][:12], 16)
    assert metrics["window_end_ms"] == int(last["prediction_id"][:12], 16)
    assert metrics["window_start_ms"] <= metrics["window_end_ms"]
    assert list(table["timestamp"]) == sorted(table["timestamp"])

    for row in table.itertuples(index=False):
        features, body = acknowledged.by_id[row.prediction_id]
        assert {f: getattr(row, f) for f in IRIS_FEATURES} == pytest.approx(features)
        assert row.predicted_class == body["class_name"]
        assert row.confidence == pytest.approx(body["confidence"])
        assert {c: getattr(row, f"prob_{c}") for c in IRIS_CLASSES} == pytest.approx(body["probabilities"])


def assert_each_logged_once(mlflow_client, ids, tmp_path) -> Counter:
    logged = logged_prediction_ids(mlflow_client, tmp_path)
    duplicates = {i: n for i, n in logged.items() if n > 1}
    assert not duplicates, f"predictions in MLflow more than once: {duplicates}"
    missing = set(ids) - set(logged)
    assert not missing, f"{len(missing)} acknowledged predictions are not in MLflow: {sorted(missing)[:5]}"
    return logged


# -- below and above the bound ----------------------------------------------------------------------


def test_below_the_bound_each_prediction_is_one_single_run(platform, acknowledged, singles):
    runs = inference_runs_by_type(platform.mlflow)
    assert set(runs) == {"single"}, "no window run while the worker keeps up"
    assert len(runs["single"]) == len(singles)
    for prediction_id in singles:
        run = the_run_for_prediction(platform.mlflow, prediction_id)
        features, body = acknowledged.by_id[prediction_id]
        check_single_run(run, record_from(features, body, run.data.params["timestamp"]))
    health = platform.client.get("/health").json()
    assert health["tracking_worker"] == {
        "single_runs": len(singles),
        "window_runs": 0,
        "feedback_runs": 0,
        "drift_runs": 0,
        "worker_alive": True,
    }


def test_a_burst_past_the_bound_is_written_as_window_runs(platform, acknowledged, burst, tmp_path):
    runs = inference_runs_by_type(platform.mlflow)
    assert set(runs) <= {"single", "single_window"}
    windows = runs.get("single_window", [])
    assert windows, "60 predictions at once should pass a bound of 5"

    in_windows = Counter()
    for run in windows:
        table = window_table(platform.mlflow, run, tmp_path)
        check_window_run(run, table, acknowledged)
        in_windows.update(table["prediction_id"])
    in_singles = Counter(r.data.tags[PREDICTION_ID_TAG] for r in runs["single"])
    for run in runs["single"]:
        features, body = acknowledged.by_id[run.data.tags[PREDICTION_ID_TAG]]
        check_single_run(run, record_from(features, body, run.data.params["timestamp"]))

    # Every answered prediction is in exactly one place, and nothing else is.
    assert set(in_windows) & set(in_singles) == set()
    assert in_windows + in_singles == Counter(list(acknowledged.by_id))
    assert sum(int(r.data.tags["window_records"]) for r in windows) + len(runs["single"]) == len(acknowledged.by_id)

    health = platform.client.get("/health").json()
    assert health["pending_inference_records"] == 0
    assert health["tracking_error"] is None
    assert health["tracking_worker"] == {
        "single_runs": len(runs["single"]),
        "window_runs": len(windows),
        "feedback_runs": 0,
        "drift_runs": 0,
        "worker_alive": True,
    }
    summary = platform.client.get("/mlflow/summary").json()
    assert summary["inference_runs"] == len(runs["single"]) + len(windows)


def test_window_runs_are_listed_as_inference_runs(platform, burst):
    listed = platform.client.get("/mlflow/runs", params={"experiment_name": INFERENCE_EXPERIMENT}).json()
    windows = [r for r in listed["runs"] if r["params"].get("prediction_type") == "single_window"]
    assert windows
    for run in windows:
        assert run["run_type"] == "inference"
        assert run["experiment_name"] == INFERENCE_EXPERIMENT
        assert re.fullmatch(r"single_window_\d{8}_\d{6}_\d{6}", run["run_name"])
        assert run["metrics"]["total_samples"] >= 1


# -- finding a prediction ---------------------------------------------------------------------------


def test_find_a_single_run_prediction(platform, acknowledged, singles):
    prediction_id = singles[1]
    response = platform.client.get(f"/predictions/{prediction_id}")
    assert response.status_code == 200, response.text
    found = response.json()
    run = the_run_for_prediction(platform.mlflow, prediction_id)
    assert found["prediction_id"] == prediction_id
    assert found["record"] is None
    assert found["run"]["run_id"] == run.info.run_id
    assert found["run"]["params"]["prediction_type"] == "single"
    assert found["run"]["params"]["predicted_class"] == acknowledged.by_id[prediction_id][1]["class_name"]


def test_find_a_windowed_prediction(platform, acknowledged, burst, tmp_path):
    windows = inference_runs_by_type(platform.mlflow)["single_window"]
    run = max(windows, key=lambda r: int(r.data.tags["window_records"]))
    table = window_table(platform.mlflow, run, tmp_path)
    for position in (0, len(table) // 2, len(table) - 1):  # the first, a middle and the last record
        prediction_id = table["prediction_id"].iloc[position]
        response = platform.client.get(f"/predictions/{prediction_id}")
        assert response.status_code == 200, response.text
        found = response.json()
        assert found["run"]["run_id"] == run.info.run_id
        assert found["run"]["params"]["prediction_type"] == "single_window"
        features, body = acknowledged.by_id[prediction_id]
        record = found["record"]
        assert record["prediction_id"] == prediction_id
        assert record["predicted_class"] == body["class_name"]
        assert record["confidence"] == pytest.approx(body["confidence"])
        assert {f: record[f] for f in IRIS_FEATURES} == pytest.approx(features)
        assert {c: record[f"prob_{c}"] for c in IRIS_CLASSES} == pytest.approx(body["probabilities"])


@pytest.mark.parametrize("bad_id", ["not-an-id", "0" * 31, "g" * 32, "A" * 32, "0" * 33])
def test_find_a_malformed_prediction_id_is_422(platform, bad_id):
    assert_error(platform.client.get(f"/predictions/{bad_id}"), 422, "32 hexadecimal")


def test_find_an_unknown_prediction_id_is_404(platform, burst):
    # A plausible id: a time inside the burst's windows, randomness no prediction had.
    unknown = burst[len(burst) // 2][:12] + "f" * 20
    detail = assert_error(platform.client.get(f"/predictions/{unknown}"), 404, unknown, "no mlflow run")
    assert "no journal" in detail
    assert_error(platform.client.get(f"/predictions/{'0' * 32}"), 404, "0" * 32)


def test_the_worker_follows_the_journal_across_segment_rotations(platform, acknowledged, burst, tmp_path):
    from iris_platform.tracking.journal import segment_numbers

    journal = platform.client.app.state.service.writer.journal
    first_segment, saved = journal.segment, journal.segment_bytes
    journal.segment_bytes = 2000  # ~5 records a segment
    try:
        ids = []
        for i in range(40):
            ids.append(acknowledged.predict(platform.client, sample(300 + i))["prediction_id"])
            if i % 10 == 9:
                wait_for_writer(platform.client)
    finally:
        journal.segment_bytes = saved
    assert journal.segment >= first_segment + 6
    wait_for_writer(platform.client)
    assert_each_logged_once(platform.mlflow, ids, tmp_path)
    # Finished segments are deleted as the checkpoint passes them.
    assert segment_numbers(platform.settings.journal_dir)[0] >= journal.segment - 1


# -- the worker dies --------------------------------------------------------------------------------


def test_a_killed_worker_is_restarted_by_health_and_nothing_is_lost(platform, acknowledged, burst, tmp_path):
    service = platform.client.app.state.service
    before = service.writer._process
    busy = acknowledged.burst(platform.client, 30, offset=100)  # the worker is likely mid-write
    os.kill(before.pid, signal.SIGKILL)
    before.join(10)
    assert not before.is_alive()
    while_dead = acknowledged.burst(platform.client, 10, offset=200)  # journaled, nobody writing them

    health = platform.client.get("/health").json()  # GET /health restarts the worker
    after = service.writer._process
    assert after.pid != before.pid
    assert health["tracking_worker"]["worker_alive"] is True
    assert health["pending_inference_records"] > 0
    wait_for_writer(platform.client)

    assert_each_logged_once(platform.mlflow, busy + while_dead, tmp_path)
    logged = assert_each_logged_once(platform.mlflow, acknowledged.by_id, tmp_path)
    assert set(logged) == set(acknowledged.by_id)
    assert JournalReader(platform.settings.journal_dir).peek(10) == []


# -- stopping and starting again ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """An app that trained a model, answered 12 predictions and stopped without waiting for its writer."""
    with open_platform(tmp_path_factory.mktemp("stopped"), writer_window_threshold=THRESHOLD) as platform:
        train(platform.client, n_estimators=FAST_TREES)
        platform.ids = [predict(platform.client, sample(i))["prediction_id"] for i in range(12)]
    return platform


def test_clean_shutdown_writes_every_journaled_record(stopped, tmp_path):
    logged = assert_each_logged_once(stopped.mlflow, stopped.ids, tmp_path)
    assert set(logged) == set(stopped.ids)
    reader = JournalReader(stopped.settings.journal_dir)
    reader.all_final = True
    assert reader.peek(100) == []


def test_replay_does_not_write_a_window_mlflow_already_has(stopped, tmp_path):
    """The process died after MLflow took a window run but before the checkpoint moved past it."""
    records = [inference_record_for(stopped.models_dir, sample(i)) for i in range(12)]
    window = PredictionRunWriter(TrackingStore(stopped.settings.tracking_uri)).write_window(records[:8])
    leave_in_journal(stopped.settings.journal_dir, *records)
    runs_before = {r.info.run_id for r in all_runs(stopped.mlflow, INFERENCE_EXPERIMENT)}

    with open_platform(stopped.directory, writer_window_threshold=THRESHOLD) as restarted:
        wait_for_writer(restarted.client)
        health = restarted.client.get("/health").json()
        # The window was already there; the 4 records after it (below the bound) are single runs.
        assert health["tracking_worker"] == {
            "single_runs": 4,
            "window_runs": 0,
            "feedback_runs": 0,
            "drift_runs": 0,
            "worker_alive": True,
        }

    new_runs = [r for r in all_runs(stopped.mlflow, INFERENCE_EXPERIMENT) if r.info.run_id not in runs_before]
    assert len(new_runs) == 4
    for record in records[8:]:
        check_single_run(the_run_for_prediction(stopped.mlflow, record["prediction_id"]), record)
    windows = all_runs(
        stopped.mlflow, INFERENCE_EXPERIMENT, f"tags.window_first_prediction_id = '{records[0]['prediction_id']}'"
    )
    assert [r.info.run_id for r in windows] == [window]
    table = window_table(stopped.mlflow, windows[0], tmp_path)
    assert list(table["prediction_id"]) == [r["prediction_id"] for r in records[:8]]
    logged = assert_each_logged_once(stopped.mlflow, [r["prediction_id"] for r in records] + stopped.ids, tmp_path)
    assert len(logged) == 12 + 12


def test_records_an_orphaned_worker_wrote_are_not_counted_as_pending(stopped, tmp_path):
    """A crashed server's worker (orphaned, still draining) holds the journal while the next server starts.

    The orphan writes what its own server journaled, never the new server's segment; once it exits,
    the new server's worker writes the rest, and /health's backlog reaches 0 (not the start-up count).
    """
    import fcntl

    from iris_platform.tracking.journal import segment_numbers
    from iris_platform.tracking.worker import LOCK_FILE

    journal_dir = stopped.settings.journal_dir
    records = [inference_record_for(stopped.models_dir, sample(i)) for i in range(6)]
    leave_in_journal(journal_dir, *records)
    dead_server_segment = segment_numbers(journal_dir)[-1]
    with open(journal_dir / LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the orphan's lock: the new server's worker waits for it
        with open_platform(stopped.directory, writer_window_threshold=THRESHOLD) as restarted:
            try:
                new_id = predict(restarted.client, SETOSA)["prediction_id"]
                assert restarted.client.get("/health").json()["pending_inference_records"] == 7
                # The orphan, stopping, drains what its server journaled, as the worker does.
                orphan = JournalReader(journal_dir)
                orphan.all_final = True
                orphan.last_segment = dead_server_segment
                waiting = orphan.peek(100)
                assert [r["prediction_id"] for r in waiting] == [r["prediction_id"] for r in records]
                tracker = PredictionRunWriter(TrackingStore(stopped.settings.tracking_uri))
                for record in waiting[:4]:
                    tracker.write_single(record)
                orphan.commit(4)
                tracker.write_window(waiting[4:])
                orphan.commit(2)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)  # the orphan exits
            health = wait_for_writer(restarted.client)
            assert health["tracking_worker"] == {
                "single_runs": 1,
                "window_runs": 0,
                "feedback_runs": 0,
                "drift_runs": 0,
                "worker_alive": True,
            }
    assert the_run_for_prediction(stopped.mlflow, new_id).data.params["prediction_type"] == "single"
    assert_each_logged_once(stopped.mlflow, [r["prediction_id"] for r in records] + [new_id], tmp_path)

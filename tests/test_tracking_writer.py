"""The background tracking writer and its on-disk journal: nothing acknowledged is lost or written twice."""

import sqlite3
import time

import pytest

from iris_platform.service import IrisService
from iris_platform.tracking_writer import JOURNAL_FILE, Journal, TrackingWriter

from conftest import (
    INFERENCE_EXPERIMENT,
    SETOSA,
    VERSICOLOR,
    VIRGINICA,
    all_runs,
    check_single_run,
    inference_record_for,
    open_platform,
    predict,
    settings_for,
    the_run_for_prediction,
    train,
    wait_for_writer,
)


@pytest.fixture(scope="module")
def records(trained_platform):
    """Three real inference records from a trained model, as POST /predict would queue them."""
    return [inference_record_for(trained_platform.models_dir, f) for f in (SETOSA, VERSICOLOR, VIRGINICA)]


# -- the journal on its own -------------------------------------------------------------------------


def test_journal_keeps_only_unfinished_records_across_reopening(tmp_path, records):
    journal = Journal(tmp_path)
    assert journal.open() == []
    for record in records:
        journal.append(record)
    journal.mark_done(records[1]["prediction_id"])
    assert journal.pending == 2
    journal.close()  # the process stops here without marking the rest done

    reopened = Journal(tmp_path)
    assert reopened.open() == [records[0], records[2]]
    assert reopened.pending == 2
    assert len((tmp_path / JOURNAL_FILE).read_text().splitlines()) == 2  # rewritten to what is owed
    reopened.close()


def test_journal_ignores_a_line_torn_by_a_crash(tmp_path, records):
    leave_first = Journal(tmp_path)
    leave_first.open()
    leave_first.append(records[0])
    leave_first.close()
    with open(tmp_path / JOURNAL_FILE, "ab") as handle:
        handle.write(b'{"record":{"prediction_id":"torn","timest')  # the write a crash cut short
    journal = Journal(tmp_path)
    assert journal.open() == [records[0]]
    journal.close()


def test_journal_is_emptied_once_nothing_is_owed(tmp_path, records):
    journal = Journal(tmp_path)
    journal.open()
    for record in records:
        journal.append(record)
    for record in records:
        journal.mark_done(record["prediction_id"])
    assert journal.pending == 0
    assert (tmp_path / JOURNAL_FILE).stat().st_size == 0
    journal.close()
    assert Journal(tmp_path).open() == []


# -- the writer against a real MLflow store ---------------------------------------------------------


def flaky(write, failures: int, after_writing: bool = False):
    """`write`, but its first `failures` calls raise, before (backend down) or after reaching MLflow."""
    calls = {"n": 0}

    def attempt(record):
        calls["n"] += 1
        if calls["n"] <= failures:
            if after_writing:
                write(record)
            raise ConnectionError(f"MLflow unreachable (attempt {calls['n']})")
        return write(record)

    attempt.calls = calls
    return attempt


def drain(writer: TrackingWriter, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while writer.pending:
        assert time.monotonic() < deadline, f"writer did not drain: {writer.last_error}"
        time.sleep(0.02)


@pytest.mark.parametrize("after_writing", [False, True], ids=["fails-before-mlflow", "fails-after-mlflow"])
def test_writer_retries_a_failed_write_and_writes_each_record_once(tmp_path, records, after_writing):
    service = IrisService(settings_for(tmp_path))  # the real tracker and idempotency check, no app
    write = flaky(service.tracker.write_single_prediction, failures=2, after_writing=after_writing)
    writer = TrackingWriter(Journal(tmp_path / "journal"), write=write,
                            already_written=service._already_written, retry_seconds=0.01)
    writer.start()
    try:
        writer.submit(records[0])
        drain(writer)
    finally:
        writer.stop()
    # Two failures then success; or, once a write has reached MLflow, no second write at all.
    assert write.calls["n"] == (1 if after_writing else 3)
    assert writer.last_error is None
    check_single_run(the_run_for_prediction(service.tracker.client, records[0]["prediction_id"]), records[0])
    assert Journal(tmp_path / "journal").open() == []


def test_clean_shutdown_flushes_every_queued_record(tmp_path):
    """Predictions made right before the app stops all reach MLflow; the journal is left empty."""
    with open_platform(tmp_path) as platform:
        train(platform.client, n_estimators=2)
        ids = [predict(platform.client, VIRGINICA)["prediction_id"] for _ in range(15)]
        # no waiting: leaving the `with` stops the app, which must flush the queue
    for prediction_id in ids:
        run = the_run_for_prediction(platform.mlflow, prediction_id)
        assert run.info.status == "FINISHED"
        assert run.data.params["predicted_class"] == "virginica"
    assert len(all_runs(platform.mlflow, INFERENCE_EXPERIMENT)) == 15
    assert Journal(platform.settings.journal_dir).open() == []


def test_a_prediction_does_not_wait_for_mlflow(trained_platform):
    """With the sqlite store locked by another writer, /predict still answers; its run follows the unlock."""
    client = trained_platform.client
    wait_for_writer(client)
    lock = sqlite3.connect(trained_platform.directory / "mlflow.db", timeout=10)
    lock.execute("BEGIN EXCLUSIVE")  # nobody else can read or write the store now
    try:
        body = predict(client, VERSICOLOR)
        assert body["class_name"] == "versicolor"
        time.sleep(0.3)
        assert client.get("/health").json()["pending_inference_records"] == 1  # acknowledged, not yet in MLflow
    finally:
        lock.rollback()
        lock.close()
    health = wait_for_writer(client)
    assert health["tracking_error"] is None
    run = the_run_for_prediction(trained_platform.mlflow, body["prediction_id"])
    assert run.data.params["predicted_class"] == "versicolor"
    assert run.data.params["model_path"] == body["model_path"]

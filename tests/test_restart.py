"""A restarted app (a new create_app on the same directories): same model, and no inference record lost."""

import pytest

from iris_platform.tracking.journal import JournalReader
from iris_platform.tracking.prediction_runs import PredictionRunWriter
from iris_platform.tracking.store import TrackingStore
from tests.helpers.api import FAST_TREES, load_model, predict, train, wait_for_health, wait_for_writer
from tests.helpers.contract import INFERENCE_EXPERIMENT, PREDICTION_ID_TAG, TRAINING_EXPERIMENT
from tests.helpers.data import SETOSA, VERSICOLOR, VIRGINICA
from tests.helpers.journal import inference_record_for, leave_in_journal
from tests.helpers.mlflow_reads import (
    all_runs,
    check_single_run,
    experiment_id,
    runs_for_prediction,
    the_run_for_prediction,
)
from tests.helpers.platform import open_platform

SAMPLES = [SETOSA, VERSICOLOR, VIRGINICA]


def answers(client):
    """The predictions for SAMPLES, without the per-request prediction_id."""
    return [{k: v for k, v in predict(client, s).items() if k != "prediction_id"} for s in SAMPLES]


@pytest.mark.slow  # two app start-ups, a training and a drained writer: 7-18 s on a 2-core machine
def test_restart_serves_the_same_model_with_the_same_predictions(tmp_path):
    with open_platform(tmp_path) as first:
        trained = train(first.client, n_estimators=FAST_TREES)
        before = answers(first.client)
    with open_platform(tmp_path) as second:
        health = second.client.get("/health").json()
        assert health["model_loaded"] is True
        assert health["current_model"] == trained["model_path"]
        assert second.client.get("/models").json()["current_model"] == trained["model_path"]
        assert answers(second.client) == before
        wait_for_writer(second.client)
        # Both processes wrote to the same store: 1 training, 3 + 3 single predictions.
        assert len(all_runs(second.mlflow, TRAINING_EXPERIMENT)) == 1
        assert len(all_runs(second.mlflow, INFERENCE_EXPERIMENT)) == 6
        assert second.client.get("/mlflow/summary").json()["total_runs"] == 7


def test_restart_keeps_serving_the_model_that_was_loaded_last(tmp_path):
    with open_platform(tmp_path) as first:
        older = train(first.client, n_estimators=3)
        train(first.client, n_estimators=FAST_TREES)
        load_model(first.client, older["model_path"])
    with open_platform(tmp_path) as second:
        assert second.client.get("/health").json()["current_model"] == older["model_path"]
        assert predict(second.client, SETOSA)["model_path"] == older["model_path"]


def test_restart_replaces_a_cached_model_changed_while_stopped(tmp_path):
    """The models folder is a cache: a file changed while stopped is never unpickled; the registry's copy
    of the champion (checked against the version's SHA-256) takes its place."""
    with open_platform(tmp_path) as first:
        trained = train(first.client, n_estimators=3)
    pkl = first.models_dir / trained["model_metadata"]["model_file"]
    original = pkl.read_bytes()
    pkl.write_bytes(original[:-1] + b"\x00")
    with open_platform(tmp_path) as second:
        health = wait_for_health(second.client, lambda h: h["model_version"] == trained["model_version"])
        assert health["current_model"] == trained["model_path"]
        assert pkl.read_bytes() == original
        assert predict(second.client, SETOSA)["model_version"] == trained["model_version"]


# -- the journal: what a stopped process owed MLflow ------------------------------------------------


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """An app that trained a model and stopped (its client is closed); each test restarts one on its directory."""
    with open_platform(tmp_path_factory.mktemp("stopped")) as platform:
        train(platform.client, n_estimators=FAST_TREES)
    return platform


def test_records_left_in_the_journal_are_written_once_after_restart(stopped):
    records = [inference_record_for(stopped.models_dir, f) for f in (SETOSA, VIRGINICA)]
    leave_in_journal(stopped.settings.journal_dir, *records)
    for record in records:
        assert runs_for_prediction(stopped.mlflow, record["prediction_id"]) == []

    with open_platform(stopped.directory) as restarted:
        wait_for_writer(restarted.client)
        for record in records:
            check_single_run(the_run_for_prediction(restarted.mlflow, record["prediction_id"]), record)

    with open_platform(stopped.directory) as again:  # nothing is replayed a second time
        assert again.client.get("/health").json()["pending_inference_records"] == 0
        for record in records:
            the_run_for_prediction(again.mlflow, record["prediction_id"])
    assert JournalReader(stopped.settings.journal_dir).peek(10) == []


def test_replay_does_not_write_a_prediction_mlflow_already_has(stopped):
    """The process died after MLflow took the run but before the journal marked it done."""
    record = inference_record_for(stopped.models_dir, VERSICOLOR)
    written = PredictionRunWriter(TrackingStore(stopped.settings.tracking_uri)).write_single(record)
    leave_in_journal(stopped.settings.journal_dir, record)

    with open_platform(stopped.directory) as restarted:
        wait_for_writer(restarted.client)
        run = the_run_for_prediction(restarted.mlflow, record["prediction_id"])
    assert run.info.run_id == written
    check_single_run(run, record)


def test_replay_replaces_a_half_written_run(stopped):
    """The process died while writing the run: the RUNNING leftover is removed and the run written whole."""
    record = inference_record_for(stopped.models_dir, SETOSA)
    half = stopped.mlflow.create_run(
        experiment_id(stopped.mlflow, INFERENCE_EXPERIMENT),
        tags={PREDICTION_ID_TAG: record["prediction_id"]},
        run_name="single_prediction_half_written",
    )
    leave_in_journal(stopped.settings.journal_dir, record)

    with open_platform(stopped.directory) as restarted:
        wait_for_writer(restarted.client)
        run = the_run_for_prediction(restarted.mlflow, record["prediction_id"])
    assert run.info.run_id != half.info.run_id
    check_single_run(run, record)
    assert stopped.mlflow.get_run(half.info.run_id).info.lifecycle_stage == "deleted"


def test_start_up_leaves_scikit_learn_to_the_warm_up_thread():
    # Issue 3's start-up goal: importing scikit-learn costs about a second that an empty directory
    # (no model to load) need not wait for. The warm-up thread imports it once the server answers.
    import subprocess
    import sys

    code = (
        "import sys, iris_platform.api.app; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'skl2onnx'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]", done.stdout

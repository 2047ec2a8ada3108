"""A training that fails after its run started: the run ends FAILED with the reason, the answer is 503,
and the old model serves.

The failures are real ones, injected from outside while the server runs (the tests run as root,
where a chmod does not stop a write, so permissions are not the lever): the models folder is
replaced by a regular file, or removed, and the MLflow artifact location is replaced by a file.
Each makes the training fail after its run started (the forest is fitted and logged first).
The disk-full case (507) is in test_faults.py.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.api import FAST_TREES, predict, train, wait_for_writer
from tests.helpers.contract import TRAINING_EXPERIMENT
from tests.helpers.mlflow_reads import all_runs
from tests.reliability.helpers import assert_only_complete_models, open_app, running_runs

BORDER = {"sepal_length": 6.0, "sepal_width": 2.7, "petal_length": 4.9, "petal_width": 1.6}


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    directory = tmp_path_factory.mktemp("failed-training")
    previous = os.getcwd()
    os.chdir(directory)  # the experiments' artifact folders (./mlruns/<id>) are this module's own
    try:
        with open_app(directory) as platform:
            train(platform.client, n_estimators=FAST_TREES)
            yield platform
    finally:
        os.chdir(previous)


def artifact_folder(platform) -> Path:
    experiment = platform.mlflow.get_experiment_by_name(TRAINING_EXPERIMENT)
    return Path(experiment.artifact_location.removeprefix("file://"))


def replace_with_file(path: Path) -> Callable[[], None]:
    backup = path.with_name(path.name + ".away")
    path.rename(backup)
    path.write_text("a regular file where a folder should be\n")

    def restore() -> None:
        path.unlink()
        backup.rename(path)

    return restore


def remove_folder(path: Path) -> Callable[[], None]:
    backup = path.with_name(path.name + ".away")
    path.rename(backup)
    return lambda: backup.rename(path)


INJECTIONS = {  # fault: (inject, the error it causes, how it is injected)
    "models folder replaced by a file": (
        lambda p: replace_with_file(p.models_dir),
        "Not a directory",
        "models/ renamed away and a regular file put in its place",
    ),
    "models folder removed": (
        lambda p: remove_folder(p.models_dir),
        "No such file or directory",
        "models/ renamed away",
    ),
    "MLflow artifact folder replaced by a file": (
        lambda p: replace_with_file(artifact_folder(p)),
        "Not a directory",
        "the training experiment's artifact folder replaced by a file",
    ),
}


@pytest.mark.parametrize("fault", list(INJECTIONS))
def test_a_training_failing_after_its_run_started_ends_failed(platform, results, fault):
    client = platform.client
    serving = client.get("/models").json()["current_model"]
    reference = predict(client, BORDER)
    wait_for_writer(client)
    failed_before = {
        r.info.run_id for r in all_runs(platform.mlflow, TRAINING_EXPERIMENT, "attributes.status = 'FAILED'")
    }

    inject, error_text, how = INJECTIONS[fault]
    restore = inject(platform)
    try:
        response = client.post("/train", data={"n_estimators": str(FAST_TREES)})
    finally:
        restore()

    assert response.status_code == 503, response.text
    detail = response.json()["detail"]
    assert "cannot write where it needs to" in detail and error_text in detail and "still serving" in detail
    failed = [
        r
        for r in all_runs(platform.mlflow, TRAINING_EXPERIMENT, "attributes.status = 'FAILED'")
        if r.info.run_id not in failed_before
    ]
    assert len(failed) == 1, "the training's run, started before the failure, ends FAILED"
    reason = failed[0].data.tags.get("failure_reason", "")
    assert error_text in reason, reason
    assert "accuracy" in failed[0].data.metrics  # it failed after fitting: the run had started its work
    assert not running_runs(platform.mlflow)

    # The previous model keeps serving, and the folder holds only complete models.
    assert client.get("/models").json()["current_model"] == serving
    answer = predict(client, BORDER)
    assert answer["model_path"] == serving and answer["probabilities"] == reference["probabilities"]
    assert_only_complete_models(platform.models_dir)

    # Once the folder is back, training works again.
    recovered = client.post("/train", data={"n_estimators": "5"})
    assert recovered.status_code == 200, recovered.text
    results.fault(
        fault=f"training: {fault}",
        injected=f"{how}, while the server ran",
        answers=f"POST /train {response.status_code}, run FAILED with failure_reason "
        f"'{re.sub(r': ?.?/.*$', '', reason)}: <path>'",
        survived="the previous model kept serving (same answer); no partial model file; "
        "training worked again once the folder was back",
    )
    wait_for_writer(client)

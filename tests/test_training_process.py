"""POST /train in the training process (training_process.py): the same answers and records as in process,
errors that keep their status across the process boundary, and a process that lives and dies with the server.

The other suites train in process (tests/helpers/platform.settings_for) for speed; the real server
(`python main.py`) trains here by default, which the server-process suites exercise too.
"""

from __future__ import annotations

import os
import pickle
import re
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mlflow import MlflowClient

from iris_platform.errors import InputError, NoModelError
from iris_platform.tracking.names import TRAINING_EXPERIMENT
from iris_platform.training_process import TrainingProcessLost
from tests.helpers.api import FAST_TREES, assert_error, predict, train, wait_until
from tests.helpers.data import csv_bytes, iris_frame
from tests.helpers.mlflow_reads import all_runs, assert_no_running_runs
from tests.helpers.platform import Platform, open_platform
from tests.helpers.server_process import ServerProcess

FLOWER = {"sepal_length": 6.1, "sepal_width": 2.8, "petal_length": 4.7, "petal_width": 1.2}
READY_LINE = re.compile(r"training-process\[(\d+)\]: ready")


@pytest.fixture(scope="module")
def platform(tmp_path_factory) -> Iterator[Platform]:
    with open_platform(tmp_path_factory.mktemp("training-process"), training_process=True) as platform:
        yield platform


def service_of(platform: Platform) -> Any:
    return platform.client.app.state.service  # type: ignore[attr-defined]


def training_pid(platform: Platform) -> int:
    process = service_of(platform).training_process
    assert process is not None, "the app trains in process: training_process=True was not applied"
    return int(process.pid())


def running_trainings(mlflow: MlflowClient) -> list[Any]:
    return all_runs(mlflow, TRAINING_EXPERIMENT, "attributes.status = 'RUNNING'")


def test_a_training_runs_there_and_its_model_serves_here(platform):
    pid = training_pid(platform)
    assert pid != os.getpid()
    answer = train(platform.client, n_estimators=FAST_TREES)
    assert training_pid(platform) == pid, "one process trains every time"

    run = platform.mlflow.get_run(answer["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["n_estimators"] == str(FAST_TREES)
    assert run.data.metrics["accuracy"] == pytest.approx(answer["accuracy"])
    champion = platform.mlflow.get_model_version_by_alias("iris_classifier", "champion")
    assert str(champion.version) == answer["model_version"]

    # The serving process loaded what the training process saved, on the runtime the answer named.
    health = platform.client.get("/health").json()
    assert (health["model_version"], health["runtime"]) == (answer["model_version"], answer["runtime"])
    served = predict(platform.client, FLOWER)
    assert (served["model_version"], served["model_path"]) == (answer["model_version"], answer["model_path"])
    assert Path(answer["model_path"]).is_file()


def test_errors_keep_their_status_and_detail(platform, tmp_path):
    two_rows = csv_bytes(iris_frame().head(2))
    there = platform.client.post("/train", files={"file": ("two.csv", two_rows, "text/csv")})
    with open_platform(tmp_path) as here:
        in_process = here.client.post("/train", files={"file": ("two.csv", two_rows, "text/csv")})
    detail = assert_error(there, 422, "only one class", "at least two")
    assert (there.status_code, detail) == (in_process.status_code, in_process.json()["detail"])
    assert_no_running_runs(platform)


@pytest.mark.parametrize(
    "error",
    [InputError("send a CSV", 413), NoModelError(), TrainingProcessLost("killed")],
    ids=["input", "no-model", "lost"],
)
def test_an_input_error_pickles_whole(error):
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert (copy.detail, copy.status_code, str(copy)) == (error.detail, error.status_code, str(error))


def test_concurrent_trainings_are_served_in_the_order_they_were_trained(platform):
    answers: list[dict[str, Any]] = []

    def one() -> None:
        answers.append(train(platform.client, n_estimators=FAST_TREES))

    threads = [threading.Thread(target=one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(answers) == 3
    newest = max(answers, key=lambda a: int(a["model_version"]))
    champion = platform.mlflow.get_model_version_by_alias("iris_classifier", "champion")
    assert str(champion.version) == newest["model_version"]
    assert platform.client.get("/health").json()["model_version"] == newest["model_version"]


def test_a_killed_training_process_answers_503_and_a_new_one_trains(platform):
    serving = platform.client.get("/health").json()["model_version"]
    pid = training_pid(platform)
    answer: dict[str, Any] = {}

    def slow() -> None:  # 11 fits of 1,000 trees: long enough to be killed mid-way
        answer["response"] = platform.client.post("/train", data={"n_estimators": "1000", "cv_folds": "10"})

    thread = threading.Thread(target=slow)
    thread.start()
    wait_until(lambda: running_trainings(platform.mlflow), 60, "the slow training's run did not start")
    os.kill(pid, signal.SIGKILL)
    thread.join(60)
    assert_error(answer["response"], 503, "training process stopped", "send the training again")
    assert platform.client.get("/health").json()["model_version"] == serving, "the model that served still serves"

    again = train(platform.client, n_estimators=FAST_TREES)
    assert training_pid(platform) != pid
    assert platform.client.get("/health").json()["model_version"] == again["model_version"]
    # What the killed process had begun is recorded as failed, with the reason.
    assert not running_trainings(platform.mlflow)
    (failed,) = all_runs(platform.mlflow, TRAINING_EXPERIMENT, "attributes.status = 'FAILED'")
    assert failed.info.run_id not in (again["run_id"], "")
    assert failed.data.params["n_estimators"] == "1000"
    assert "training process stopped" in failed.data.tags["failure_reason"]


# -- the real server ---------------------------------------------------------------------------------


def ready_pid(server: ServerProcess, timeout: float = 60.0) -> int:
    found = wait_until(
        lambda: READY_LINE.search(server.output(100_000)), timeout, "the training process did not get ready"
    )
    return int(found.group(1))


def is_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1][0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_the_server_trains_there_and_the_process_ends_with_a_crash(tmp_path):
    server = ServerProcess(tmp_path)
    try:
        server.wait_healthy()
        pid = ready_pid(server)
        assert pid != server.process.pid and is_alive(pid)
        trained = httpx2.post(f"{server.url}/train", data={"n_estimators": str(FAST_TREES)}, timeout=120)
        assert trained.status_code == 200, trained.text
        assert httpx2.get(f"{server.url}/health").json()["model_version"] == trained.json()["model_version"]
        server.crash()  # SIGKILL: the server cannot close the training process
        wait_until(lambda: not is_alive(pid), 10, "the training process outlived the server")
    finally:
        server.kill()


def test_sigterm_to_the_whole_group_lets_the_training_in_progress_finish(tmp_path):
    server = ServerProcess(tmp_path)
    answer: dict[str, Any] = {}
    try:
        server.wait_healthy()
        pid = ready_pid(server)

        def training() -> None:
            answer["response"] = httpx2.post(f"{server.url}/train", data={"n_estimators": "600"}, timeout=120)

        thread = threading.Thread(target=training)
        thread.start()
        mlflow = MlflowClient(tracking_uri=server.tracking_uri)
        wait_until(lambda: running_trainings(mlflow), 60, "the training's run did not start")
        os.killpg(server.process.pid, signal.SIGTERM)  # as a service manager or a terminal reaches every process
        server.process.wait(40)
        thread.join(60)
        assert answer["response"].status_code == 200, answer["response"].text
        run = mlflow.get_run(answer["response"].json()["run_id"])
        assert run.info.status == "FINISHED"
        wait_until(lambda: not is_alive(pid), 5, "the training process outlived the server's shutdown")
    finally:
        server.kill()

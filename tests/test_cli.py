"""`iris-platform`'s commands on a local store (in process, through typer's runner) and against a real server
(--url): the answers the API gives, the records MLflow keeps, errors in the API's words, exit statuses 0/1/2."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from iris_platform.cli.main import app
from iris_platform.tracking.names import TRAINING_EXPERIMENT
from tests.helpers.api import FAST_TREES
from tests.helpers.data import SETOSA, VIRGINICA, csv_bytes, iris_frame
from tests.helpers.mlflow_reads import all_runs, the_run_for_prediction
from tests.helpers.platform import open_platform
from tests.helpers.server_process import ServerProcess

SCRIPT = Path(sys.executable).parent / "iris-platform"


def features(sample: dict[str, float]) -> list[str]:
    return [arg for name, value in sample.items() for arg in ("--feature", f"{name}={value}")]


class Local:
    """The commands on a store of `directory`, as the environment names it for `iris-platform serve`."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.env = {
            "MLFLOW_TRACKING_URI": f"sqlite:///{directory}/mlflow.db",
            "IRIS_MODELS_DIR": str(directory / "models"),
            "IRIS_JOURNAL_DIR": str(directory / "journal"),
        }
        self.mlflow = MlflowClient(tracking_uri=self.env["MLFLOW_TRACKING_URI"])

    def run(self, *args: str) -> Any:
        return CliRunner().invoke(app, list(args), env=self.env, catch_exceptions=False)

    def json(self, *args: str) -> dict[str, Any]:
        result = self.run(*args, "--json")
        assert result.exit_code == 0, result.output
        answer: dict[str, Any] = json.loads(result.stdout)
        return answer


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> Local:
    return Local(tmp_path_factory.mktemp("cli"))


@pytest.fixture(scope="module")
def trained(local) -> dict[str, Any]:
    return local.json("train", "--param", f"n_estimators={FAST_TREES}")


def test_train_registers_a_champion_and_logs_its_run(local, trained):
    run = local.mlflow.get_run(trained["run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.experiment_id == local.mlflow.get_experiment_by_name(TRAINING_EXPERIMENT).experiment_id
    assert run.data.params["n_estimators"] == str(FAST_TREES)
    assert run.data.metrics["accuracy"] == pytest.approx(trained["accuracy"])
    champion = local.mlflow.get_model_version_by_alias("iris_classifier", "champion")
    assert str(champion.version) == trained["model_version"]
    assert Path(trained["model_path"]).parent == local.directory / "models"


def test_train_on_a_csv_with_its_options(local, trained, tmp_path):
    table = tmp_path / "flowers.csv"
    table.write_bytes(csv_bytes(iris_frame()))
    answer = local.json("train", str(table), "--model-type", "logistic_regression", "--cv-folds", "3", "-p", "C=0.5")
    run = local.mlflow.get_run(answer["run_id"])
    assert (answer["model_type"], answer["cv_folds"]) == ("logistic_regression", 3)
    assert run.data.params["C"] == "0.5" and run.data.params["input_file"] == "flowers.csv"
    assert "cv_accuracy_mean" in run.data.metrics
    local.json("promote", trained["model_version"])  # the forest serves the other tests again


def test_predict_answers_and_the_record_reaches_mlflow(local, trained):
    answer = local.json("predict", *features(VIRGINICA))
    assert answer["class_name"] == "virginica" and answer["model_version"] == trained["model_version"]
    assert sum(answer["probabilities"].values()) == pytest.approx(1.0)
    # The command waited for the tracking worker: the prediction is in MLflow once it has exited.
    run = the_run_for_prediction(local.mlflow, answer["prediction_id"])
    assert run.data.params["model_version"] == trained["model_version"]


def test_a_human_answer_names_the_class(local, trained):
    result = local.run("predict", *features(SETOSA))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("setosa (confidence ")


def test_batch_writes_every_prediction_and_one_run(local, trained, tmp_path):
    table, output = tmp_path / "samples.csv", tmp_path / "out" / "predictions.csv"
    output.parent.mkdir()
    samples = iris_frame().drop(columns=["species"])
    table.write_bytes(csv_bytes(samples))
    answer = local.json("batch", str(table), "--output", str(output))
    written = pd.read_csv(output)
    assert len(written) == len(samples) == answer["total_samples"]
    assert list(written.columns[: len(samples.columns)]) == list(samples.columns)
    assert {"predicted_class", "confidence"} <= set(written.columns)
    counts = written["predicted_class"].value_counts().to_dict()
    assert counts == answer["batch_statistics"]["prediction_distribution"]
    run = local.mlflow.get_run(answer["run_id"])
    assert run.data.metrics["total_samples"] == len(samples)


def test_runs_and_models_list_what_mlflow_holds(local, trained):
    listed = local.json("runs", "--type", "training", "--limit", "50")
    assert trained["run_id"] in {r["run_id"] for r in listed["runs"]}
    assert {r["run_type"] for r in listed["runs"]} == {"training"}
    assert listed["total"] == len(all_runs(local.mlflow, TRAINING_EXPERIMENT))
    assert len(local.json("runs", "--limit", "1")["runs"]) == 1
    table = local.run("runs", "--limit", "3")
    assert table.exit_code == 0 and "started" in table.stdout

    models = local.json("models")["models"]
    champion = local.mlflow.get_model_version_by_alias("iris_classifier", "champion")
    assert [m["version"] for m in models if "champion" in m["aliases"]] == [str(champion.version)]


def test_promote_and_rollback_move_the_champion(local, trained):
    second = local.json("train", "--param", f"n_estimators={FAST_TREES}")
    moved = local.json("promote", trained["model_version"])
    assert (moved["model_version"], moved["previous_version"]) == (trained["model_version"], second["model_version"])
    back = local.json("rollback")
    assert back["model_version"] == second["model_version"]
    assert (
        str(local.mlflow.get_model_version_by_alias("iris_classifier", "champion").version) == second["model_version"]
    )


def test_tune_waits_for_its_trials(local, trained):
    answer = local.json("tune", "--model-type", "knn", "--space", '{"n_neighbors": [3, 5]}')
    assert (answer["status"], answer["trials_done"], answer["n_trials"]) == ("finished", 2, 2)
    parent = local.mlflow.get_run(answer["tuning_id"])
    assert parent.info.status == "FINISHED"
    children = all_runs(local.mlflow, TRAINING_EXPERIMENT, f"tags.mlflow.parentRunId = '{answer['tuning_id']}'")
    assert len(children) == 2


# -- failures: the API's words on stderr, exit status 1; bad usage, 2 -------------------------------------


def api_detail(tmp_path: Path, method: str, path: str, **kwargs: Any) -> str:
    with open_platform(tmp_path / "api") as platform:
        platform.client.post("/train", data={"n_estimators": str(FAST_TREES)})
        response = platform.client.request(method, path, **kwargs)
    assert response.status_code >= 400, response.text
    return str(response.json()["detail"])


REFUSED = {
    "not-a-number": {**{k: str(v) for k, v in SETOSA.items()}, "petal_width": "wide"},
    "missing-feature": {k: str(v) for k, v in SETOSA.items() if k != "sepal_width"},
}


@pytest.mark.parametrize("sample", REFUSED.values(), ids=REFUSED.keys())
def test_a_refused_prediction_fails_in_the_apis_words(local, trained, tmp_path, sample):
    result = local.run("predict", *[arg for name, value in sample.items() for arg in ("-f", f"{name}={value}")])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.strip() == api_detail(tmp_path, "POST", "/predict", data=sample)


def test_a_refused_training_fails_in_the_apis_words(local, tmp_path):
    one_class = tmp_path / "one.csv"
    one_class.write_bytes(csv_bytes(iris_frame().head(10)))
    result = local.run("train", str(one_class))
    assert result.exit_code == 1
    with open_platform(tmp_path / "api") as platform:
        response = platform.client.post("/train", files={"file": ("one.csv", one_class.read_bytes(), "text/csv")})
    assert result.stderr.strip() == response.json()["detail"]

    bad_value = local.run("train", "-p", "n_estimators=many")
    assert bad_value.exit_code == 1
    assert "n_estimators" in bad_value.stderr and "valid integer" in bad_value.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "--feature", "sepal_length"],
        ["runs", "--type", "everything"],
        ["nonsense"],
        ["train", "missing.csv"],
        ["batch", "rows.csv", "--engine", "dask"],
    ],
    ids=["not-name-value", "unknown-choice", "unknown-command", "missing-training-file", "unknown-engine"],
)
def test_bad_usage_exits_2(local, args):
    result = local.run(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""


@pytest.mark.parametrize("make", [lambda d: d / "missing.csv", lambda d: d], ids=["missing", "a folder"])
def test_a_batch_input_that_is_no_file_fails_in_one_line(local, tmp_path, make):
    # Exit status 1, as for Spark's inputs: the path may be a folder or a URI there, so it is no usage error.
    path = make(tmp_path)
    result = local.run("batch", str(path))
    assert result.exit_code == 1
    what = "does not exist" if path.suffix else "is a folder"
    assert result.stderr == f"'{path}' {what}: give a CSV file (or a Parquet or CSV folder with --engine spark).\n"


# -- against a running server ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("cli-server"))
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


def script(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it."""
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def test_the_console_script_drives_a_server(server, tmp_path):
    trained = script("train", "--url", server.url, "-p", f"n_estimators={FAST_TREES}", "--json")
    assert trained.returncode == 0, trained.stderr
    version = json.loads(trained.stdout)["model_version"]
    assert httpx2.get(f"{server.url}/health").json()["model_version"] == version

    predicted = script("predict", "--url", server.url, *features(SETOSA), "--json")
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)["class_name"] == "setosa"

    table, output = tmp_path / "samples.csv", tmp_path / "predictions.csv"
    table.write_bytes(csv_bytes(iris_frame().drop(columns=["species"])))
    batch = script("batch", str(table), "--url", server.url, "--output", str(output), "--json")
    assert batch.returncode == 0, batch.stderr
    assert len(pd.read_csv(output)) == json.loads(batch.stdout)["total_samples"] == len(iris_frame())

    refused = script("predict", "--url", server.url, "--feature", "sepal_length=1")
    response = httpx2.post(f"{server.url}/predict", data={"sepal_length": "1"})
    assert (refused.returncode, refused.stderr.strip()) == (1, response.json()["detail"])


def test_an_unreachable_server_fails_with_what_to_do(tmp_path):
    done = script("models", "--url", "http://127.0.0.1:9")
    assert done.returncode == 1
    assert "Cannot reach the server at http://127.0.0.1:9" in done.stderr and "--url" in done.stderr

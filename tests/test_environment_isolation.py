"""The developer's shell never reaches the platform under test: IRIS_* and MLFLOW_TRACKING_URI are ignored.

A shell that exports, say, IRIS_MODELS_DIR for `make run` must not have the tests write models, journal
lines or MLflow runs into that folder: the server processes the tests start get an environment without
those variables (plus what the test passes), and the apps made in process get settings built field by
field, never read from the environment.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx2
import pytest

from iris_platform.config import Settings
from tests.helpers.api import FAST_TREES, predict, train, wait_for_writer
from tests.helpers.data import SETOSA
from tests.helpers.platform import open_platform, settings_for
from tests.helpers.server_process import ServerProcess, server_environment

SHELL_TOKEN = "token-from-the-shell"


@pytest.fixture
def shell_folder(tmp_path, monkeypatch) -> Path:
    """A folder the developer's shell points every platform setting at, as `make run` would use it."""
    folder = tmp_path / "shell"
    folder.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder}/mlflow.db")
    monkeypatch.setenv("IRIS_MODELS_DIR", str(folder / "models"))
    monkeypatch.setenv("IRIS_JOURNAL_DIR", str(folder / "journal"))
    monkeypatch.setenv("IRIS_API_TOKEN", SHELL_TOKEN)  # if it leaked, /train would answer 401
    monkeypatch.setenv("IRIS_MAX_UPLOAD_MB", "0.001")  # if it leaked, a training upload would answer 413
    return folder


def test_server_environment_leaves_out_the_shells_platform_settings(shell_folder, monkeypatch):
    monkeypatch.setenv("IRIS_SOMETHING_NEW", "1")
    monkeypatch.setenv("UNRELATED_VARIABLE", "kept")

    environment = server_environment(IRIS_WRITER_WINDOW_THRESHOLD="5", UNRELATED_VARIABLE=None)

    assert environment["IRIS_WRITER_WINDOW_THRESHOLD"] == "5"  # what the test passes is set
    assert "UNRELATED_VARIABLE" not in environment  # None leaves a variable out
    assert {k for k in environment if k.startswith("IRIS_")} == {"IRIS_WRITER_WINDOW_THRESHOLD"}
    assert "MLFLOW_TRACKING_URI" not in environment
    assert environment["PATH"] == os.environ["PATH"]  # everything else is inherited


def test_apps_in_process_ignore_the_shells_platform_settings(shell_folder, tmp_path, monkeypatch):
    def from_env(*args, **kwargs):
        raise AssertionError("the tests' apps must not read their settings from the environment")

    monkeypatch.setattr(Settings, "from_env", from_env)
    directory = tmp_path / "app"

    assert settings_for(directory) == Settings(
        tracking_uri=f"sqlite:///{directory}/mlflow.db",
        models_dir=directory / "models",
        journal_dir=directory / "journal",
        training_process=False,
    )
    with open_platform(directory) as platform:
        trained = train(platform.client, n_estimators=FAST_TREES)
        predict(platform.client, SETOSA)
        wait_for_writer(platform.client)

    assert (directory / "models" / Path(trained["model_path"]).name).is_file()
    assert list(shell_folder.iterdir()) == []


@pytest.mark.slow  # a server process started, trained and stopped: 8-16 s on a 2-core machine
def test_server_processes_ignore_the_shells_platform_settings(shell_folder, tmp_path):
    directory = tmp_path / "server"
    directory.mkdir()
    server = ServerProcess(directory)
    try:
        server.wait_healthy()
        with httpx2.Client(base_url=server.url, timeout=60) as client:
            trained = client.post("/train", data={"n_estimators": str(FAST_TREES)})
            assert trained.status_code == 200, trained.text
            predicted = client.post("/predict", json=SETOSA)
            assert predicted.status_code == 200, predicted.text
    finally:
        server.stop()

    assert server.tracking_uri == f"sqlite:///{directory}/mlflow.db"
    assert (directory / "mlflow.db").is_file()
    assert (directory / "models" / Path(trained.json()["model_path"]).name).is_file()
    assert (directory / "journal").is_dir()
    assert list(shell_folder.iterdir()) == []

"""The app under test, in process: a real app on a real MLflow sqlite store in a temporary directory.

Nothing here mocks MLflow. Each `Platform` is the app from `create_app`, driven by a TestClient used as
a context manager (so the lifespan starts and stops the tracking writer), plus an `MlflowClient` on
the same store to read back what the app wrote.

The settings are built field by field (`settings_for`), never by `Settings.from_env`: an IRIS_* or
MLFLOW_TRACKING_URI variable of the developer's shell must not point a test at a real store or folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from mlflow import MlflowClient

from iris_platform.api.app import create_app
from iris_platform.config import Settings

# The app answers only to this machine's names by default (IRIS_ALLOWED_HOSTS): TestClient's own
# `testserver` is not one, so the tests talk to it as a browser on this machine would.
LOCAL_URL = "http://localhost"


def local_client(app: Any, **kwargs: Any) -> TestClient:
    return TestClient(app, base_url=LOCAL_URL, **kwargs)


def settings_for(directory: Path, **overrides: Any) -> Settings:
    """Settings on `directory`; `overrides` sets any field (writer_window_threshold=5, a tracking_uri, ...)."""
    directory = Path(directory)
    fields: dict[str, Any] = {
        "tracking_uri": f"sqlite:///{directory}/mlflow.db",
        "models_dir": directory / "models",
        "journal_dir": directory / "journal",
        # In process: a test that trains through the training process asks for it (test_training_process.py).
        "training_process": False,
    }
    return Settings(**{**fields, **overrides})


@dataclass
class Platform:
    directory: Path
    settings: Settings
    client: TestClient
    mlflow: MlflowClient

    @property
    def models_dir(self) -> Path:
        return self.settings.models_dir


@contextmanager
def open_platform(directory: Path, **overrides: Any) -> Iterator[Platform]:
    """Start a fresh app on `directory` (store, models, journal); a second call is a restart."""
    settings = settings_for(directory, **overrides)
    with local_client(create_app(settings)) as client:
        yield Platform(Path(directory), settings, client, MlflowClient(tracking_uri=settings.tracking_uri))

"""What the reliability tests share: the app in process answering 5xx instead of raising, and the checks
that must hold after any refused request (complete models only, no run left RUNNING).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from iris_platform.api.app import create_app
from tests.helpers.contract import EXPERIMENTS
from tests.helpers.mlflow_reads import all_runs
from tests.helpers.platform import Platform, local_client, settings_for

# -- the app in process, answering 5xx instead of raising (a 500 is a finding, not a crash of the test) --


@contextmanager
def open_app(directory: Path, **overrides: Any) -> Iterator[Platform]:
    """The app on `directory` (store, models, journal); `overrides` replaces any setting, tracking_uri included."""
    settings = replace(settings_for(directory), **overrides)
    with local_client(create_app(settings), raise_server_exceptions=False) as client:
        yield Platform(Path(directory), settings, client, LazyMlflowClient(settings.tracking_uri))


class LazyMlflowClient:
    """An MlflowClient made on first use: a store that cannot be opened yet must not fail the set-up."""

    def __init__(self, tracking_uri: str):
        self.tracking_uri = tracking_uri
        self._client: MlflowClient | None = None

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return getattr(self._client, name)


# -- what must hold after any refused request --------------------------------------------------------

_MODEL_FILE = re.compile(
    r"^iris_model_(?P<stamp>[0-9A-Za-z_]+?)(?P<kind>\.pkl|_metadata\.json|\.onnx|_reference_profile\.json)$"
)


def models_snapshot(models_dir: Path) -> dict[str, tuple[int, int]]:
    """Every entry of the models folder (hidden ones included): name -> (size, mtime_ns)."""
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in Path(models_dir).iterdir()}


def assert_only_complete_models(models_dir: Path, ignore: set[str] = frozenset()) -> None:
    """The folder holds complete models (pkl + metadata, + the ONNX and profile files its metadata names) and
    the pointer."""
    stamps: dict[str, set[str]] = {}
    for path in Path(models_dir).iterdir():
        if path.name in ignore or path.name == "current_model.json":
            continue
        match = _MODEL_FILE.match(path.name)
        assert match and path.is_file(), f"unexpected entry in the models folder: {path.name}"
        stamps.setdefault(match["stamp"], set()).add(match["kind"])
    for stamp, kinds in stamps.items():
        assert {".pkl", "_metadata.json"} <= kinds, f"incomplete model {stamp}: {sorted(kinds)}"
        metadata = json.loads((Path(models_dir) / f"iris_model_{stamp}_metadata.json").read_text())
        assert (".onnx" in kinds) == bool(metadata.get("onnx_file")), f"model {stamp}: ONNX file vs metadata"
        profile = "_reference_profile.json" in kinds
        assert profile == bool(metadata.get("profile_file")), f"model {stamp}: profile file vs metadata"


def _experiments(mlflow_client: MlflowClient) -> list[str]:
    """The platform's experiments that exist in the store (a store that never saw a training lacks one)."""
    return [name for name in EXPERIMENTS if mlflow_client.get_experiment_by_name(name) is not None]


def running_runs(mlflow_client: MlflowClient) -> list:
    return [
        r
        for name in _experiments(mlflow_client)
        for r in all_runs(mlflow_client, name, "attributes.status = 'RUNNING'")
    ]


def run_index(mlflow_client: MlflowClient) -> dict[str, Any]:
    return {r.info.run_id: r for name in _experiments(mlflow_client) for r in all_runs(mlflow_client, name)}

"""Fixtures of the reliability suite, and the hooks that write docs/RELIABILITY.md from its records.

docs/RELIABILITY.md is (re)written at the end of a session only when every test of this folder was
selected and passed: a run of one file, a `-k`/`-m`/`--lf` selection, an `-x` stop or any failure
leaves the committed document as it was (the terminal summary says why). The figures are then
always those of one complete, passing run.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import EXPERIMENTS, Platform, all_runs, settings_for
from fastapi.testclient import TestClient
from hypothesis.configuration import set_hypothesis_home_dir
from mlflow import MlflowClient
from server_process import ServerProcess  # free_port: test_faults.py imports it from here

from iris_platform.api.app import create_app
from iris_platform.results import Results

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DOCUMENT = REPO / "docs" / "RELIABILITY.md"

RESULTS = Results()

# Hypothesis keeps caches (and, where enabled, examples) in ./.hypothesis of the directory it was
# imported from; set before the test modules define their strategies, this keeps them out of the repository.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "iris-reliability-hypothesis")


@pytest.fixture(scope="session")
def results() -> Results:
    return RESULTS


# -- the app in process, answering 5xx instead of raising (a 500 is a finding, not a crash of the test) --


@contextmanager
def open_app(directory: Path, **overrides: Any) -> Iterator[Platform]:
    """The app on `directory` (store, models, journal); `overrides` replaces any setting, tracking_uri included."""
    settings = replace(settings_for(directory), **overrides)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
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

_MODEL_FILE = re.compile(r"^iris_model_(?P<stamp>[0-9A-Za-z_]+?)(?P<kind>\.pkl|_metadata\.json|\.onnx)$")


def models_snapshot(models_dir: Path) -> dict[str, tuple[int, int]]:
    """Every entry of the models folder (hidden ones included): name -> (size, mtime_ns)."""
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in Path(models_dir).iterdir()}


def assert_only_complete_models(models_dir: Path, ignore: set[str] = frozenset()) -> None:
    """The folder holds complete models (pkl + metadata, + the ONNX file its metadata names) and the pointer."""
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


# -- the real server, as a process -------------------------------------------------------------------


@pytest.fixture(scope="package")
def live_server(tmp_path_factory) -> Iterator[ServerProcess]:
    """The real server (main.py under uvicorn) with 1 MB body limits, shared by the tests that need sockets."""
    directory = tmp_path_factory.mktemp("live")
    server = ServerProcess(
        directory,
        MLFLOW_TRACKING_URI=f"sqlite:///{directory}/mlflow.db",
        IRIS_MODELS_DIR=str(directory / "models"),
        IRIS_JOURNAL_DIR=str(directory / "journal"),
        IRIS_MAX_UPLOAD_MB="1",
        IRIS_MAX_BATCH_UPLOAD_MB="1",
    )
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


# -- writing docs/RELIABILITY.md -------------------------------------------------------------------------

_session: dict[str, Any] = {"start": time.monotonic(), "partial": [], "items": set(), "passed": set(), "failed": set()}


def _ours(path: Any) -> bool:
    return HERE in Path(str(path)).resolve().parents


def pytest_deselected(items):
    if any(_ours(item.path) for item in items):
        _session["partial"].append("some tests of tests/reliability were deselected (-k, -m, --lf, ...)")


def pytest_collection_finish(session):
    ours = [item for item in session.items if _ours(item.path)]
    _session["items"] = {item.nodeid for item in ours}
    collected = {Path(str(item.path)).name for item in ours}
    missing = sorted(p.name for p in HERE.glob("test_*.py") if p.name not in collected)
    if missing:
        _session["partial"].append(f"not collected: {', '.join(missing)}")
    if any("::" in arg and _ours(arg.split("::")[0]) for arg in session.config.args):
        _session["partial"].append("single tests were selected by node id")


def pytest_runtest_logreport(report):
    if report.nodeid not in _session["items"]:
        return
    if report.failed:
        _session["failed"].add(report.nodeid)
    elif report.when == "call" and report.passed:
        _session["passed"].add(report.nodeid)


def _why_not_written() -> str | None:
    if not _session["items"]:
        return "no test of tests/reliability ran"
    if _session["partial"]:
        return "; ".join(_session["partial"])
    if _session["failed"]:
        return f"{len(_session['failed'])} reliability test(s) failed"
    not_passed = _session["items"] - _session["passed"]
    if not_passed:
        return f"{len(not_passed)} reliability test(s) did not pass (skipped or not run)"
    return None


def pytest_sessionfinish(session, exitstatus):
    reason = _why_not_written()
    _session["written"] = reason is None
    _session["reason"] = reason
    if reason is None:
        DOCUMENT.parent.mkdir(parents=True, exist_ok=True)
        DOCUMENT.write_text(RESULTS.markdown(time.monotonic() - _session["start"], len(_session["items"])))


def pytest_terminal_summary(terminalreporter):
    if not _session["items"]:
        return
    if _session.get("written"):
        terminalreporter.write_line(f"reliability: wrote {DOCUMENT.relative_to(REPO)}")
    else:
        terminalreporter.write_line(
            f"reliability: {DOCUMENT.relative_to(REPO)} left as it was ({_session.get('reason')})"
        )

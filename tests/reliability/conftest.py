"""Fixtures of the reliability suite, and the hooks that write test-artifacts/RELIABILITY.md from its records.

The report is (re)written at the end of a session only when every test of this folder was selected and
passed: a run of one file, a `-k`/`-m`/`--lf` selection, an `-x` stop or any failure leaves the file as it
was (the terminal summary says why), so its figures are always those of one complete, passing run. It goes
to test-artifacts/ (ignored by git), so `make test` leaves the tree clean; `make reliability-report`
runs this folder and copies the report to docs/RELIABILITY.md.

The helpers the tests share are in `tests.reliability.helpers`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

from tests.helpers.server_process import ServerProcess
from tests.reliability.results import Results

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DOCUMENT = REPO / "test-artifacts" / "RELIABILITY.md"

RESULTS = Results()

# Hypothesis keeps caches (and, where enabled, examples) in ./.hypothesis of the directory it was
# imported from; set before the test modules define their strategies, this keeps them out of the repository.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "iris-reliability-hypothesis")


@pytest.fixture(scope="session")
def results() -> Results:
    return RESULTS


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


# -- writing test-artifacts/RELIABILITY.md ---------------------------------------------------------------

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

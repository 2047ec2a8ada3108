"""Fixtures and hooks of the whole suite; the helpers the tests share are modules of `tests.helpers`.

- Every test runs in a temporary working directory (MLflow puts a sqlite store's artifacts in ./mlruns).
- The platform's settings variables of the developer's shell (IRIS_*, MLFLOW_TRACKING_URI) are taken out
  of the environment for the session, so nothing in process can read them (server processes started by
  the tests get an environment without them too: see `tests.helpers.server_process`).
- Markers by directory: tests/browser is `browser`, tests/reliability is `reliability` (declared, with
  `slow`, in pyproject.toml; `make test-fast` leaves all three out).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.api import FAST_TREES, train
from tests.helpers.platform import Platform, open_platform
from tests.helpers.server_process import is_platform_setting

TESTS = Path(__file__).resolve().parent
MARKERS_BY_DIRECTORY = {TESTS / "browser": "browser", TESTS / "reliability": "reliability"}


# -- markers ----------------------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        parents = Path(str(item.path)).resolve().parents
        for directory, marker in MARKERS_BY_DIRECTORY.items():
            if directory in parents:
                item.add_marker(marker)


# -- process-wide isolation -----------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _isolated_working_directory(tmp_path_factory):
    """MLflow puts a sqlite store's artifacts in ./mlruns: keep them out of the repository.

    Also take the shell's IRIS_* and MLFLOW_TRACKING_URI out of the environment for the session, and
    restore them afterwards (MLFLOW_TRACKING_URI is exported by `mlflow.set_tracking_uri`, which the
    app calls, so it is reset either way).
    """
    previous_cwd = os.getcwd()
    previous_settings = {k: v for k, v in os.environ.items() if is_platform_setting(k)}
    for name in previous_settings:
        del os.environ[name]
    os.chdir(tmp_path_factory.mktemp("cwd"))
    try:
        yield
    finally:
        os.chdir(previous_cwd)
        for name in [k for k in os.environ if is_platform_setting(k)]:
            del os.environ[name]
        os.environ.update(previous_settings)


# -- the platform under test ----------------------------------------------------------------------


@pytest.fixture
def fresh_platform(tmp_path) -> Iterator[Platform]:
    """An app with an empty store and no model."""
    with open_platform(tmp_path) as platform:
        yield platform


@pytest.fixture(scope="module")
def trained_platform(tmp_path_factory) -> Iterator[Platform]:
    """One app per test module, with a model trained on the bundled Iris data."""
    with open_platform(tmp_path_factory.mktemp("trained")) as platform:
        train(platform.client, n_estimators=FAST_TREES)
        yield platform

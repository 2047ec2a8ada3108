"""Memory after a training (issue 13): what the training freed goes back to the operating system, and
neither its table nor the model it replaced stays reachable.

A 1,000-tree training on a 17 MB table left the server gigabytes above its level before: glibc kept the
freed heap in its arenas. The bench's memory goal measures that on a server process; these tests catch
the release breaking, in process and in a few seconds.
"""

from __future__ import annotations

import ctypes
import sys
import weakref
from collections.abc import Iterator
from typing import Any

import mlflow.models.model
import numpy as np
import pandas as pd
import pytest

import iris_platform.memory as memory
import iris_platform.trainer as trainer_module
from iris_platform.memory import Released, can_trim, release_memory, resident_bytes
from tests.helpers.api import FAST_TREES, train
from tests.helpers.data import IRIS_FEATURES, csv_bytes
from tests.helpers.platform import Platform, open_platform

MB = 2**20
needs_glibc = pytest.mark.skipif(not can_trim(), reason="only glibc's malloc has malloc_trim")


def table_csv(rows: int = 5000, features: int = 50, seed: int = 0) -> bytes:
    """Numeric features and a class column that three of them decide, 2% of the labels flipped."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 10, size=(rows, features)).round(2)
    y = (X[:, 0] > 5).astype(int) * 2 + (X[:, 1] + X[:, 2] > 10)
    flip = rng.random(rows) < 0.02
    y[flip] = rng.integers(0, 4, int(flip.sum()))
    frame = pd.DataFrame(X, columns=[f"m{i}" for i in range(features)])
    frame["species"] = np.asarray(["a", "b", "c", "d"])[y]
    return csv_bytes(frame)


@pytest.fixture
def releases(monkeypatch) -> list[Released]:
    """Every release the platform runs, recorded (the real one runs)."""
    found: list[Released] = []

    def recorded() -> Released:
        released = release_memory()
        found.append(released)
        return released

    monkeypatch.setattr(memory, "release_memory", recorded)
    return found


@pytest.fixture(scope="module")
def platform(tmp_path_factory) -> Iterator[Platform]:
    with open_platform(tmp_path_factory.mktemp("memory")) as platform:
        train(platform.client, n_estimators=FAST_TREES)  # the first training's one-time costs
        yield platform


# -- the release itself --------------------------------------------------------------------------


@needs_glibc
def test_release_returns_freed_heap_pages():
    # 64 MB of small blocks (below malloc's mmap threshold, so on the heap), touched, then freed but for
    # the last, which keeps the freed ones below the top of the heap: glibc keeps them until trimmed.
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    block = 16 * 1024
    blocks = [libc.malloc(block) for _ in range(64 * MB // block)]
    assert all(blocks)
    for address in blocks:
        ctypes.memset(address, 1, block)
    for address in blocks[:-1]:
        libc.free(address)
    try:
        released = release_memory()
    finally:
        libc.free(blocks[-1])
    assert released.trimmed
    assert released.returned is not None and released.returned >= 32 * MB, released


def test_resident_bytes_is_this_process():
    rss = resident_bytes()
    if rss is None:
        pytest.skip("no /proc here")
    with open("/proc/self/status") as status:
        vm_rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) * 1024
    assert abs(rss - vm_rss) < 64 * MB


# -- after a training ----------------------------------------------------------------------------


@needs_glibc
def test_a_training_leaves_no_free_heap_behind(platform, releases):
    """Right after POST /train, trimming again finds almost nothing to return (before the fix: ~30 MB)."""
    train(platform.client, file=("table.csv", table_csv()), n_estimators=30)
    assert len(releases) == 1 and releases[0].trimmed
    trim = ctypes.CDLL(None).malloc_trim
    before = resident_bytes()
    trim(0)
    after = resident_bytes()
    assert before is not None and after is not None
    assert before - after < 15 * MB, f"{(before - after) / MB:.0f} MB of freed heap was still held after the training"


def test_a_failed_training_releases_too(platform, releases):
    # Two rows for two classes: the table is read, then the training itself refuses it.
    content = b"sepal_length,species\n1.0,a\n2.0,b\n"
    response = platform.client.post("/train", files={"file": ("two.csv", content, "text/csv")})
    assert response.status_code == 422 and "more rows than classes" in response.text, response.text
    assert len(releases) == 1


def test_the_training_table_is_not_kept(platform, monkeypatch):
    """Not even by a reference cycle: on every training but a registry's first, MLflow's "registered model
    exists" IntegrityError (caught in tracking/registry.py) stays in a cycle through its traceback's frames,
    and through their f_back the training's own frames, with the table, the pickle and the ONNX bytes;
    without the release's collection they lived until the collector's next full pass."""
    tables: list[weakref.ref[Any]] = []
    prepare = trainer_module.prepare_training_data

    def watched(*args: Any, **kwargs: Any) -> Any:
        data = prepare(*args, **kwargs)
        tables.extend([weakref.ref(data), weakref.ref(data.X), weakref.ref(data.y)])
        return data

    monkeypatch.setattr(trainer_module, "prepare_training_data", watched)
    frame = pd.DataFrame(np.random.default_rng(1).uniform(1, 7, size=(300, 4)), columns=IRIS_FEATURES)
    frame["species"] = ["setosa", "versicolor", "virginica"] * 100
    train(platform.client, file=("iris.csv", csv_bytes(frame)), n_estimators=FAST_TREES)
    assert len(tables) == 3
    assert [ref() is None for ref in tables] == [True] * 3, "the training's table is still reachable"


def test_the_replaced_model_is_not_kept(platform):
    service = platform.client.app.state.service  # type: ignore[attr-defined]
    first = service.predictor
    refs = [weakref.ref(first), weakref.ref(first.estimator)]
    if first.compiled is not None:
        refs.append(weakref.ref(first.compiled))
    del first
    train(platform.client, n_estimators=FAST_TREES)
    assert [ref() is None for ref in refs] == [True] * len(refs), "the model that was replaced is still reachable"


def test_mlflow_keeps_no_copy_of_the_model(platform):
    """Logging the MLflow model loads it once (to check the input example): MLflow kept that copy of the
    forest in a global, and its code as one more module, until the next training."""
    modules = {m for m in sys.modules if m.startswith("code_model_")}
    train(platform.client, n_estimators=FAST_TREES)
    assert mlflow.models.model.__mlflow_model__ is None
    assert {m for m in sys.modules if m.startswith("code_model_")} <= modules

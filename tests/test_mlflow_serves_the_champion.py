"""`make serve-mlflow` (stock `mlflow models serve` of `models:/iris_classifier@champion`, as the README
gives it) answers what /predict answers: the class names, confidences and probabilities."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from tests.helpers.api import FAST_TREES, predict, train
from tests.helpers.data import IRIS_FEATURES, SETOSA, VERSICOLOR, VIRGINICA
from tests.helpers.platform import open_platform
from tests.helpers.server_process import free_port, server_environment
from tests.test_mlflow_pyfunc import assert_same_answers, random_flowers

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def path_without_the_venv() -> str:
    """PATH as a fresh shell has it: the Makefile target, not an activated venv, must find `uvicorn`."""
    entries = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(e for e in entries if e and Path(e).resolve() != VENV_BIN.resolve())


def test_make_serve_mlflow_answers_as_predict(tmp_path):
    with open_platform(tmp_path) as platform:
        train(platform.client, n_estimators=3)
        champion = train(platform.client, n_estimators=FAST_TREES)
        flowers = [SETOSA, VERSICOLOR, VIRGINICA, *random_flowers(12)]
        ours = [predict(platform.client, flower) for flower in flowers]
        tracking_uri = platform.settings.tracking_uri
    assert {answer["model_version"] for answer in ours} == {champion["model_version"]}

    port = free_port()
    log_path = tmp_path / "mlflow-serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            ["make", "-s", "-C", str(ROOT), "serve-mlflow", f"PORT={port}"],
            cwd=tmp_path,
            env=server_environment(MLFLOW_TRACKING_URI=tracking_uri, PATH=path_without_the_venv()),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # make, mlflow and uvicorn: stopped together below
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, log_path.read_text(errors="replace")[-3000:]
            try:
                if httpx2.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert time.monotonic() < deadline, log_path.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        rows = [[f[c] for c in IRIS_FEATURES] for f in flowers]
        body = {"dataframe_split": {"columns": IRIS_FEATURES, "data": rows}}
        answer = httpx2.post(f"http://127.0.0.1:{port}/invocations", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        predictions = answer.json()["predictions"]
        assert [p["predicted_class"] for p in predictions[:3]] == ["setosa", "versicolor", "virginica"]
        assert_same_answers(predictions, ours)
        # Whole numbers in JSON are taken as the signature's doubles.
        whole = {"dataframe_split": {"columns": IRIS_FEATURES, "data": [[5, 3, 1, 0]]}}
        answer = httpx2.post(f"http://127.0.0.1:{port}/invocations", json=whole, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"][0]["predicted_class"] == "setosa"
    finally:
        stop_group(process)


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to the process group the test started (make, mlflow, uvicorn), SIGKILL if it lingers."""
    for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue

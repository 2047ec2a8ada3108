"""`mlflow models serve -m models:/iris_classifier@champion` serves the model the platform serves."""

from __future__ import annotations

import os
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

pytestmark = pytest.mark.slow

MLFLOW = Path(sys.executable).with_name("mlflow")


def test_stock_mlflow_serves_the_champion(tmp_path):
    with open_platform(tmp_path) as platform:
        train(platform.client, n_estimators=3)
        champion = train(platform.client, n_estimators=FAST_TREES)
        flowers = [SETOSA, VERSICOLOR, VIRGINICA]
        ours = [predict(platform.client, flower) for flower in flowers]
        tracking_uri = platform.settings.tracking_uri
    assert {answer["model_version"] for answer in ours} == {champion["model_version"]}

    port = free_port()
    log_path = tmp_path / "mlflow-serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(MLFLOW), "models", "serve", "-m", "models:/iris_classifier@champion", "--env-manager", "local"]
            + ["-h", "127.0.0.1", "-p", str(port)],
            cwd=tmp_path,
            # mlflow runs `uvicorn` from PATH: the venv's, as an activated venv would have it.
            env=server_environment(
                MLFLOW_TRACKING_URI=tracking_uri, PATH=f"{MLFLOW.parent}:{os.environ.get('PATH', '')}"
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
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
        body = {"dataframe_split": {"columns": IRIS_FEATURES, "data": [[f[c] for c in IRIS_FEATURES] for f in flowers]}}
        answer = httpx2.post(f"http://127.0.0.1:{port}/invocations", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == [a["prediction"] for a in ours]
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()

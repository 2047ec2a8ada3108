"""Two servers in one folder: the second refuses to start and says what to set; the first keeps working."""

from __future__ import annotations

import time

import httpx2
import pytest

from tests.helpers.data import SETOSA
from tests.helpers.server_process import ServerProcess

pytestmark = pytest.mark.slow


def test_a_second_server_in_the_same_folder_refuses_and_the_first_keeps_every_record(tmp_path):
    first = ServerProcess(tmp_path)
    second = None
    try:
        first.wait_healthy()
        assert httpx2.post(f"{first.url}/train", data={"n_estimators": "5"}, timeout=60).status_code == 200

        second = ServerProcess(tmp_path)
        assert second.process.wait(60) != 0, "the second server should refuse to start"
        refusal = second.output()
        assert "Another server is running on the journal folder" in refusal
        assert "IRIS_JOURNAL_DIR" in refusal and "IRIS_MODELS_DIR" in refusal

        # The first server's predictions are still written to MLflow: its worker was never blocked.
        ids = []
        for _ in range(5):
            answer = httpx2.post(f"{first.url}/predict", json=SETOSA, timeout=10)
            assert answer.status_code == 200
            ids.append(answer.json()["prediction_id"])
        deadline = time.monotonic() + 30
        while (health := httpx2.get(f"{first.url}/health", timeout=5).json())["pending_inference_records"]:
            assert time.monotonic() < deadline, health
            time.sleep(0.2)
        assert health["tracking_error"] is None
        for prediction_id in ids:
            found = httpx2.get(f"{first.url}/predictions/{prediction_id}", timeout=10)
            assert found.status_code == 200 and found.json()["prediction_id"] == prediction_id
    finally:
        if second is not None:
            second.kill()
        first.stop()

    # Once the first has stopped, a server starts in that folder again and serves its model.
    again = ServerProcess(tmp_path)
    try:
        assert again.wait_healthy()["model_loaded"] is True
    finally:
        again.stop()

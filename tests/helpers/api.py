"""Requests to the app that must succeed (each returns the JSON body), and the checks of refused ones."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

WRITER_TIMEOUT_S = 20.0
FAST_TREES = 10  # small forests keep training quick; one test checks the default of 100


def train(client: TestClient, file: tuple[str, bytes] | None = None, **form: Any) -> dict[str, Any]:
    """POST /train, expect success, return the JSON body."""
    files = {"file": (file[0], file[1], "text/csv")} if file else None
    response = client.post("/train", data={k: str(v) for k, v in form.items()}, files=files)
    assert response.status_code == 200, response.text
    return response.json()


def predict(client: TestClient, features: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/predict", json=features)
    assert response.status_code == 200, response.text
    return response.json()


def predict_batch(client: TestClient, content: bytes, filename: str = "batch.csv") -> dict[str, Any]:
    response = client.post("/predict_batch", files={"file": (filename, content, "text/csv")})
    assert response.status_code == 200, response.text
    return response.json()


def load_model(client: TestClient, model_path: str) -> dict[str, Any]:
    response = client.post("/load_model", data={"model_path": model_path})
    assert response.status_code == 200, response.text
    return response.json()


def assert_error(response, status: int, *fragments: str) -> str:
    """The response is `status` with a JSON `detail` string that mentions every fragment."""
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail.strip(), response.text
    for fragment in fragments:
        assert fragment.lower() in detail.lower(), f"{fragment!r} not in {detail!r}"
    return detail


def wait_for_writer(client: TestClient, timeout: float = WRITER_TIMEOUT_S) -> dict[str, Any]:
    """Poll /health until the tracking writer has written every queued inference record."""
    deadline = time.monotonic() + timeout
    while True:
        health = client.get("/health").json()
        if health["pending_inference_records"] == 0:
            return health
        if time.monotonic() > deadline:
            pytest.fail(f"tracking writer did not drain within {timeout}s: {health}")
        time.sleep(0.05)


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll `condition` until it returns something truthy; fail naming `what` and the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:.0f}s (last: {value!r})")
        time.sleep(interval)


def wait_for_health(client: Any, condition: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
    """Poll /health until `condition` holds for its answer (a replica following the champion, say)."""
    last: dict[str, Any] = {}

    def reached() -> dict[str, Any] | None:
        last.update(client.get("/health").json())
        return dict(last) if condition(last) else None

    return wait_until(reached, timeout, f"/health did not reach the expected state (last: {last})", 0.05)


TUNING_TIMEOUT_S = 120


def wait_for_tuning(client: Any, tuning_id: str, timeout: float = TUNING_TIMEOUT_S) -> dict[str, Any]:
    """Poll GET /tune/{id} until the tuning has ended (finished, cancelled or failed); its progress."""
    return wait_until(
        lambda: (p := client.get(f"/tune/{tuning_id}").json())["status"] in ("finished", "cancelled", "failed") and p,
        timeout,
        f"tuning {tuning_id} did not end",
        interval=0.2,
    )

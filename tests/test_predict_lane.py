"""POST /predict's bare ASGI lane answers exactly as the FastAPI route it stands in front of.

Two apps trained on the same data (the forest is seeded, so both hold the same model): one as
`create_app` builds it, one with the lane taken out so that FastAPI's own route serves /predict.
Every request below must get the same status, the same error text and the same prediction from both.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

from iris_platform.api.app import create_app
from iris_platform.api.middleware.predict_lane import PredictLane
from tests.helpers.api import FAST_TREES, assert_error, train, wait_for_writer
from tests.helpers.data import SETOSA, VIRGINICA
from tests.helpers.platform import local_client, settings_for


@contextmanager
def client_for(directory: Path, lane: bool):
    app = create_app(settings_for(directory))
    if not lane:
        app.user_middleware = [m for m in app.user_middleware if m.cls is not PredictLane]
    with local_client(app) as client:
        train(client, n_estimators=FAST_TREES)
        yield client


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    with (
        client_for(tmp_path_factory.mktemp("lane"), lane=True) as with_lane,
        client_for(tmp_path_factory.mktemp("route"), lane=False) as without_lane,
    ):
        yield with_lane, without_lane


REQUESTS = {
    "json": dict(json=SETOSA),
    "json-charset": dict(
        content=b'{"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.8, "petal_width": 2.3}',
        headers={"content-type": "application/json; charset=utf-8"},
    ),
    "json-sklearn-names": dict(
        json={"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4, "petal width (cm)": 0.2}
    ),
    "form": dict(data={k: str(v) for k, v in VIRGINICA.items()}),
    "multipart": dict(files={k: (None, str(v)) for k, v in SETOSA.items()}),
    "out-of-range": dict(json={**SETOSA, "petal_length": 1e308}),
    "bad-json": dict(content=b"{not json", headers={"content-type": "application/json"}),
    "json-array": dict(json=[1, 2, 3, 4]),
    "missing": dict(json={"sepal_length": 5.1}),
    "not-a-number": dict(json={**SETOSA, "sepal_width": "wide"}),
    "huge-integer": dict(
        content=b'{"sepal_length": 1' + b"0" * 400 + b', "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}',
        headers={"content-type": "application/json"},
    ),
    "text-plain": dict(content=b"5.1,3.5,1.4,0.2", headers={"content-type": "text/plain"}),
    "no-content-type": dict(content=b"{}"),
}


def comparable(response) -> dict:
    body = response.json()
    for varying in ("prediction_id", "model_path"):  # new per prediction, and per training's time stamp
        body.pop(varying, None)
    headers = {k: response.headers.get(k) for k in ("content-type", "content-security-policy", "x-frame-options")}
    return {"status": response.status_code, "body": body, "headers": headers}


@pytest.mark.parametrize("name", list(REQUESTS))
def test_the_lane_answers_as_fastapis_route_would(both, name):
    with_lane, without_lane = both
    fast, slow = with_lane.post("/predict", **REQUESTS[name]), without_lane.post("/predict", **REQUESTS[name])
    assert comparable(fast) == comparable(slow)
    if fast.status_code == 200:
        assert len(fast.json()["prediction_id"]) == 32
    else:
        assert isinstance(fast.json()["detail"], str) and fast.json()["detail"]


def test_the_route_is_still_documented_and_other_methods_are_refused(both):
    with_lane, _ = both
    operation = with_lane.get("/openapi.json").json()["paths"]["/predict"]["post"]
    assert set(operation["requestBody"]["content"]) == {
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    }
    assert with_lane.get("/predict").status_code == 405


def test_a_full_disk_under_the_journal_is_507_and_nothing_is_acknowledged(both):
    with_lane, _ = both
    wait_for_writer(with_lane)
    journal = with_lane.app.state.service.writer.journal
    # /dev/full: every write fails with ENOSPC, as on a full disk.
    real_fd, journal._fd = journal._fd, os.open("/dev/full", os.O_WRONLY)
    try:
        assert_error(with_lane.post("/predict", json=SETOSA), 507, "disk is full")
    finally:
        os.close(journal._fd)
        journal._fd = real_fd
    assert with_lane.get("/health").json()["pending_inference_records"] == 0
    assert with_lane.post("/predict", json=SETOSA).status_code == 200

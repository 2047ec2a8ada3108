"""POST /predict: the three request encodings, the answer, and its `single_prediction_<timestamp>` run."""

import math
import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers.api import assert_error, predict, wait_for_writer
from tests.helpers.contract import INFERENCE_EXPERIMENT
from tests.helpers.data import IRIS_CLASSES, SETOSA, VIRGINICA
from tests.helpers.mlflow_reads import (
    all_runs,
    assert_no_running_runs,
    check_single_run,
    run_ids,
    the_run_for_prediction,
)


def as_form(features):
    return {k: str(v) for k, v in features.items()}


def post_urlencoded(client, features):
    return client.post("/predict", data=as_form(features))


def post_multipart(client, features):
    # (None, value): a plain multipart field, as a browser's FormData sends it.
    return client.post("/predict", files={k: (None, v) for k, v in as_form(features).items()})


def post_json(client, features):
    return client.post("/predict", json=features)


ENCODINGS = {
    "application/x-www-form-urlencoded": post_urlencoded,
    "multipart/form-data": post_multipart,
    "application/json": post_json,
}


def test_no_model_yet_is_409_for_single_and_batch(fresh_platform):
    client = fresh_platform.client
    health = client.get("/health").json()
    assert health["model_loaded"] is False and health["current_model"] is None
    assert_error(client.post("/predict", json=SETOSA), 409, "no model", "/train")
    batch = client.post("/predict_batch", files={"file": ("b.csv", b"sepal_length\n1\n", "text/csv")})
    assert_error(batch, 409, "no model", "/train")
    assert run_ids(fresh_platform.mlflow) == set()
    assert_no_running_runs(fresh_platform)


@pytest.mark.parametrize("features, expected", [(SETOSA, "setosa"), (VIRGINICA, "virginica")])
def test_three_encodings_give_the_same_answer(trained_platform, features, expected):
    bodies = {}
    for content_type, post in ENCODINGS.items():
        response = post(trained_platform.client, features)
        assert response.request.headers["content-type"].startswith(content_type)
        assert response.status_code == 200, f"{content_type}: {response.text}"
        bodies[content_type] = response.json()
    answers = [{k: v for k, v in b.items() if k != "prediction_id"} for b in bodies.values()]
    assert answers[0] == answers[1] == answers[2]
    assert len({b["prediction_id"] for b in bodies.values()}) == 3  # one id, and one run, per request

    body = bodies["application/json"]
    assert body["status"] == "success"
    assert body["class_name"] == expected
    assert body["prediction"] == IRIS_CLASSES.index(expected)
    assert list(body["probabilities"]) == IRIS_CLASSES
    assert math.fsum(body["probabilities"].values()) == pytest.approx(1.0)
    assert all(0.0 <= p <= 1.0 for p in body["probabilities"].values())
    assert body["confidence"] == max(body["probabilities"].values()) == body["probabilities"][expected]
    assert body["model_path"] == trained_platform.client.get("/health").json()["current_model"]
    assert re.fullmatch(r"[0-9a-f]{32}", body["prediction_id"])


def test_single_prediction_run_matches_the_response(trained_platform):
    features = {"sepal_length": 6.1, "sepal_width": 2.8, "petal_length": 4.7, "petal_width": 1.2}
    before = datetime.now(UTC)
    body = predict(trained_platform.client, features)
    wait_for_writer(trained_platform.client)

    run = the_run_for_prediction(trained_platform.mlflow, body["prediction_id"])
    inference = trained_platform.mlflow.get_experiment_by_name(INFERENCE_EXPERIMENT)
    assert run.info.experiment_id == inference.experiment_id
    assert re.fullmatch(r"single_prediction_\d{8}_\d{6}_\d{6}", run.info.run_name)

    timestamp = datetime.fromisoformat(run.data.params["timestamp"])
    assert timestamp.utcoffset() == timedelta(0)  # ISO 8601, UTC
    assert before - timedelta(seconds=1) <= timestamp <= datetime.now(UTC)
    check_single_run(
        run,
        {
            "prediction_id": body["prediction_id"],
            "model_path": body["model_path"],
            "model_version": body["model_version"],
            "timestamp": run.data.params["timestamp"],
            "features": features,
            "class_name": body["class_name"],
            "class_index": body["prediction"],
            "confidence": body["confidence"],
            "probabilities": body["probabilities"],
        },
    )


def test_many_quick_predictions_each_reach_mlflow_once(trained_platform):
    """Predictions acknowledged in quick succession all reach MLflow, each exactly once."""
    ids = [predict(trained_platform.client, SETOSA)["prediction_id"] for _ in range(10)]
    wait_for_writer(trained_platform.client)
    for prediction_id in ids:
        the_run_for_prediction(trained_platform.mlflow, prediction_id)


# -- the caller's mistakes --------------------------------------------------------------------------


def without(name):
    return {k: v for k, v in SETOSA.items() if k != name}


@pytest.mark.parametrize(
    "send, status, fragments",
    [
        (lambda c: post_json(c, without("petal_length")), 422, ["missing", "petal_length"]),
        (lambda c: post_urlencoded(c, without("sepal_width")), 422, ["missing", "sepal_width"]),
        (lambda c: post_json(c, {**SETOSA, "sepal_length": "long"}), 422, ["sepal_length", "number", "long"]),
        (lambda c: post_multipart(c, {**SETOSA, "petal_width": "abc"}), 422, ["petal_width", "number"]),
        (lambda c: post_json(c, {**SETOSA, "sepal_length": True}), 422, ["sepal_length", "true"]),
        (lambda c: post_json(c, {**SETOSA, "sepal_length": None}), 422, ["sepal_length", "null"]),
        (lambda c: post_urlencoded(c, {**SETOSA, "sepal_length": "nan"}), 422, ["sepal_length", "finite"]),
        (lambda c: post_urlencoded(c, {**SETOSA, "sepal_length": "5_1"}), 422, ["sepal_length", "number", "5_1"]),
        (lambda c: post_json(c, {**SETOSA, "petal_width": "٢"}), 422, ["petal_width", "number"]),
        (lambda c: post_json(c, {**SETOSA, "colour": 3}), 422, ["unknown", "colour"]),
        (lambda c: c.post("/predict", data={**as_form(SETOSA), "Sepal Length (cm)": "5"}), 422, ["twice"]),
        (
            lambda c: c.post(
                "/predict", data=as_form(without("petal_width")), files={"petal_width": ("p.txt", b"0.2", "text/plain")}
            ),
            422,
            ["petal_width", "not a file"],
        ),
        (
            lambda c: c.post("/predict", content=b"{not json", headers={"content-type": "application/json"}),
            400,
            ["not valid JSON"],
        ),
        (lambda c: post_json(c, [5.1, 3.5, 1.4, 0.2]), 400, ["object"]),
        (
            lambda c: c.post("/predict", content=b"5.1,3.5,1.4,0.2", headers={"content-type": "text/plain"}),
            415,
            ["JSON", "form"],
        ),
    ],
    ids=[
        "json-missing",
        "form-missing",
        "json-text",
        "multipart-text",
        "boolean",
        "null",
        "nan",
        "underscore-digits",
        "arabic-digit",
        "unknown-field",
        "duplicate",
        "file-field",
        "bad-json",
        "json-array",
        "text-plain",
    ],
)
def test_bad_prediction_requests_are_refused_clearly(trained_platform, send, status, fragments):
    wait_for_writer(trained_platform.client)
    before = len(all_runs(trained_platform.mlflow, INFERENCE_EXPERIMENT))
    assert_error(send(trained_platform.client), status, *fragments)
    health = trained_platform.client.get("/health").json()
    assert health["pending_inference_records"] == 0  # nothing was queued for a refused request
    assert len(all_runs(trained_platform.mlflow, INFERENCE_EXPERIMENT)) == before
    assert_no_running_runs(trained_platform)

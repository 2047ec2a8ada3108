"""The HTTP edge: the optional API token, the security headers on every answer, and /health's URI.

One app with IRIS_API_TOKEN set, on a real store; the same app is also reached under a proxy's
root path (`--root-path /api`), where a guard that compared raw paths could be sidestepped.
"""

from __future__ import annotations

import pytest

from iris_platform.api.app import create_app
from iris_platform.redaction import redact_uri
from tests.helpers.api import FAST_TREES, assert_error
from tests.helpers.data import SETOSA, samples_csv
from tests.helpers.platform import local_client, settings_for

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    app = create_app(settings_for(tmp_path_factory.mktemp("guarded"), api_token=TOKEN))
    with local_client(app) as client:
        response = client.post("/train", data={"n_estimators": str(FAST_TREES)}, headers=AUTH)
        assert response.status_code == 200, response.text
        yield client, response.json()


def protected_requests(model_path: str):
    return {
        "train": lambda c, h, p="": c.post(f"{p}/train", data={"n_estimators": str(FAST_TREES)}, headers=h),
        "predict": lambda c, h, p="": c.post(f"{p}/predict", json=SETOSA, headers=h),
        "predict-form": lambda c, h, p="": c.post(
            f"{p}/predict", data={k: str(v) for k, v in SETOSA.items()}, headers=h
        ),
        "predict_batch": lambda c, h, p="": c.post(
            f"{p}/predict_batch", headers=h, files={"file": ("b.csv", samples_csv([SETOSA]), "text/csv")}
        ),
        "load_model": lambda c, h, p="": c.post(f"{p}/load_model", data={"model_path": model_path}, headers=h),
    }


@pytest.mark.parametrize("route", ["train", "predict", "predict-form", "predict_batch", "load_model"])
@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}], ids=["none", "wrong", "not-bearer"]
)
def test_protected_routes_refuse_a_missing_or_wrong_token(guarded, route, headers):
    client, trained = guarded
    before = client.get("/health").json()
    response = protected_requests(trained["model_path"])[route](client, headers)
    assert_error(response, 401, "IRIS_API_TOKEN", "Authorization: Bearer")
    assert response.headers["www-authenticate"] == "Bearer"
    assert TOKEN not in response.text
    after = client.get("/health").json()
    assert after["pending_inference_records"] == before["pending_inference_records"]  # nothing was journaled


@pytest.mark.parametrize("route", ["train", "predict", "predict-form", "predict_batch", "load_model"])
def test_protected_routes_answer_with_the_token(guarded, route):
    client, trained = guarded
    response = protected_requests(trained["model_path"])[route](client, AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "success"


@pytest.mark.parametrize("route", ["train", "predict", "predict_batch", "load_model"])
def test_the_token_is_needed_under_a_proxys_root_path_too(guarded, route):
    client, trained = guarded
    behind_proxy = local_client(client.app, root_path="/api")  # as `uvicorn --root-path /api` passes requests on
    send = protected_requests(trained["model_path"])[route]
    assert_error(send(behind_proxy, {}, "/api"), 401, "IRIS_API_TOKEN")
    assert send(behind_proxy, AUTH, "/api").status_code == 200


def test_reading_routes_need_no_token(guarded):
    client, _ = guarded
    for path in ("/", "/health", "/models", "/mlflow/runs", "/mlflow/summary", "/mlflow/experiments", "/docs"):
        assert client.get(path).status_code == 200, path


def test_every_answer_carries_the_security_headers(guarded):
    client, _ = guarded
    answers = {
        "page": client.get("/"),
        "script": client.get("/static/js/main.js"),
        "json": client.get("/health"),
        "prediction": client.post("/predict", json=SETOSA, headers=AUTH),
        "401": client.post("/predict", json=SETOSA),
        "422": client.post("/predict", json={"sepal_length": 1}, headers=AUTH),
        "404": client.get("/mlflow/run/" + "0" * 32),
    }
    assert answers["script"].status_code == 200 and "javascript" in answers["script"].headers["content-type"]
    for name, response in answers.items():
        csp = response.headers.get("content-security-policy", "")
        assert "script-src 'self';" in csp and "'unsafe-inline'" not in csp, (name, csp)
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp, name
        assert response.headers["x-content-type-options"] == "nosniff", name
        assert response.headers["x-frame-options"] == "DENY", name
        assert response.headers["referrer-policy"] == "no-referrer", name
    # Swagger UI starts with an inline script: only /docs gets 'unsafe-inline', and still no other origin.
    docs = client.get("/docs")
    assert "script-src 'self' 'unsafe-inline'" in docs.headers["content-security-policy"]
    assert "http" not in docs.headers["content-security-policy"]
    assert "cdn" not in docs.text.lower()


@pytest.mark.parametrize(
    "uri, shown",
    [
        ("postgresql://iris:hunter2@db.example:5432/mlflow", "postgresql://iris:***@db.example:5432/mlflow"),
        ("https://user:pa%40ss@mlflow.example/", "https://user:***@mlflow.example/"),
        ("sqlite:///mlflow.db", "sqlite:///mlflow.db"),
        ("http://mlflow.example:5000", "http://mlflow.example:5000"),
    ],
)
def test_tracking_uri_passwords_are_never_shown(uri, shown):
    assert redact_uri(uri) == shown

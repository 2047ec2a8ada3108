"""GET /ready for load balancers (200 only while a model serves and the store answers), and log redaction."""

from __future__ import annotations

import logging

from iris_platform.api.app import create_app
from iris_platform.redaction import RedactingFilter, describe, redact_text
from tests.helpers.api import FAST_TREES, train
from tests.helpers.platform import local_client, open_platform, settings_for


def test_ready_only_once_a_model_serves(tmp_path):
    with open_platform(tmp_path) as platform:
        before = platform.client.get("/ready")
        assert before.status_code == 503
        assert before.json() == {
            "ready": False,
            "detail": "No model is loaded yet: train one with POST /train or load one with POST /load_model.",
        }
        trained = train(platform.client, n_estimators=FAST_TREES)
        after = platform.client.get("/ready")
        assert after.status_code == 200
        assert after.json() == {
            "ready": True,
            "detail": f"Serving {trained['model_path']}; the tracking store answers.",
        }


def test_ready_is_503_when_the_store_cannot_be_opened(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    with open_platform(tmp_path) as platform:
        train(platform.client, n_estimators=FAST_TREES)
    # Restart on a store that cannot be made: the model still serves, the store does not answer.
    settings = settings_for(tmp_path, tracking_uri=f"sqlite:///{blocker}/mlflow.db")
    with local_client(create_app(settings)) as client:  # the app alone: the test cannot open that store either
        assert client.get("/health").json()["model_loaded"] is True
        answer = client.get("/ready")
        assert answer.status_code == 503 and answer.json()["ready"] is False
        assert "tracking store" in answer.json()["detail"] and "unreachable" in answer.json()["detail"]


def test_passwords_are_masked_in_texts_and_log_lines(caplog):
    assert redact_text("to postgresql://me:s3cr3t@db:5432/x and http://u:p@h/") == (
        "to postgresql://me:***@db:5432/x and http://u:***@h/"
    )
    assert redact_text("sqlite:///mlflow.db, user@example.com") == "sqlite:///mlflow.db, user@example.com"
    assert describe(RuntimeError("cannot reach mysql://root:hunter2@db/m\nsecond line")) == (
        "RuntimeError: cannot reach mysql://root:***@db/m"
    )
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "store %s is down", ("postgresql://a:b@h/d",), None)
    assert RedactingFilter().filter(record) is True
    assert record.getMessage() == "store postgresql://a:***@h/d is down"

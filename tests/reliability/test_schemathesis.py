"""Schemathesis against the app's own OpenAPI schema, in process, with a trained model loaded.

Every operation of the schema is exercised with generated input, both input that fits the schema
(positive) and input that does not (negative); no answer may be a 5xx (Schemathesis's
`not_a_server_error` check), and every 4xx JSON answer carries a `detail` string. The operations
are listed here by hand and a test checks the list against the schema, so a new route cannot be
left out silently.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from conftest import FAST_TREES, settings_for
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi

from iris_platform.api.app import create_app

EXAMPLES_PER_MODE = 15  # positive and negative: 30 requests per operation
# A generated /train may ask for up to 1,000 trees (each valid one trains a forest): fewer of those.
EXAMPLES_PER_MODE_TRAIN = 10

OPERATIONS = [
    "GET /health",
    "POST /train",
    "POST /predict",
    "POST /predict_batch",
    "GET /predictions/{prediction_id}",
    "GET /models",
    "POST /load_model",
    "GET /mlflow/experiments",
    "GET /mlflow/runs",
    "GET /mlflow/runs/export.csv",
    "GET /mlflow/summary",
    "GET /mlflow/run/{run_id}",
    "GET /mlflow/run/{run_id}/artifacts/{path}",
]


@dataclass
class Target:
    schema: Any
    session: Any  # Schemathesis's in-process ASGI client, never "entered": it does not run the lifespan


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    """The app, started once (its lifespan held by a TestClient), and its schema.

    Schemathesis's pytest plugin ends any ASGI lifespan it started after every test; the app's
    service is not made to be started twice, so the lifespan here is the TestClient's, for the
    whole module, and Schemathesis reaches the app through a client that leaves it alone.
    """
    directory = tmp_path_factory.mktemp("schemathesis")
    previous = os.getcwd()
    os.chdir(directory)
    try:
        app = create_app(settings_for(directory))
        with TestClient(app) as client:
            trained = client.post("/train", data={"n_estimators": str(FAST_TREES)})
            assert trained.status_code == 200, trained.text
            schema = schemathesis.openapi.from_dict(client.get("/openapi.json").json())
            schema.app = app  # in process: Schemathesis's ASGI transport
            yield Target(schema, asgi.ASGIClient(app))
    finally:
        os.chdir(previous)


def test_every_operation_of_the_schema_is_fuzzed(target):
    labels = sorted(result.ok().label for result in target.schema.get_all_operations())
    assert labels == sorted(OPERATIONS)


@pytest.mark.parametrize("label", OPERATIONS)
def test_generated_input_never_gets_a_server_error(target, results, label):
    operation = target.schema.find_operation_by_label(label)
    assert operation is not None, label
    statuses: Counter = Counter()
    bad_details: list[str] = []
    notes: list[str] = []
    examples = EXAMPLES_PER_MODE_TRAIN if label == "POST /train" else EXAMPLES_PER_MODE

    for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def exercise(case):
            response = case.call(session=target.session)
            statuses[response.status_code] += 1
            case.validate_response(response, checks=[not_a_server_error])
            if 400 <= response.status_code < 500 and "json" in response.headers.get("content-type", ""):
                detail = response.json().get("detail")
                if not (isinstance(detail, str) and detail.strip()):
                    bad_details.append(f"{response.status_code}: {response.text[:200]}")

        try:
            exercise()
        except Unsatisfiable:
            # Nothing breaks a schema without parameters or body, or with only unconstrained string
            # path parameters (any string is valid): said in the results, not skipped silently.
            assert mode.is_negative, label
            notes.append("no schema-breaking input exists: positive only")

    assert statuses, "no request was generated"
    results.fuzzed(operation=label, examples=sum(statuses.values()), statuses=statuses, notes="; ".join(notes))
    assert not [s for s in statuses if s >= 500]
    assert not bad_details, bad_details

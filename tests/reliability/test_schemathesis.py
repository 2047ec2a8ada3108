"""Schemathesis against the app's own OpenAPI schema, in process, with a trained model loaded.

Every operation of the schema is exercised with the schema's examples, with generated input that fits
the schema (positive) and with input that does not (negative); no answer may be a 5xx (Schemathesis's
`not_a_server_error` check), every 4xx JSON answer carries a `detail` string, and every operation
answers 2xx at least once, so its handler ran to the end and not only its input checks (the test's
copy of the schema gives a real run id, prediction id, artifact path, model path and batch file as
examples: random ones name nothing and are refused). The operations
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
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi

from iris_platform.api.app import create_app
from tests.helpers.api import FAST_TREES, wait_for_tuning, wait_for_writer
from tests.helpers.platform import settings_for

EXAMPLES_PER_MODE = 15  # positive and negative: 30 requests per operation
# A generated /train may ask for up to 1,000 trees (each valid one trains a forest): fewer of those.
EXAMPLES_PER_MODE_TRAIN = 10

OPERATIONS = [
    "GET /health",
    "GET /ready",
    "POST /train",
    "GET /model_types",
    "POST /predict",
    "POST /predict_batch",
    "GET /predictions/{prediction_id}",
    "GET /models",
    "POST /load_model",
    "POST /models/rollback",
    "GET /mlflow/experiments",
    "GET /mlflow/runs",
    "GET /mlflow/runs/export.csv",
    "GET /mlflow/summary",
    "GET /mlflow/run/{run_id}",
    "GET /mlflow/run/{run_id}/artifacts/{path}",
    "POST /feedback",
    "GET /monitoring",
    "POST /tune",
    "GET /tune/{tuning_id}",
    "DELETE /tune/{tuning_id}",
]
# A finished tuning cannot be cancelled: the handler found it and said so (409), as far as it can go
# without a tuning running at that moment.
ENDED = {"DELETE /tune/{tuning_id}": 409}


# Operations whose handlers no random input reaches (a random id or path names nothing; a random file is
# no CSV of the model's features): the schema the test reads gives each an example of something the
# platform holds, which Schemathesis's examples phase sends, and every operation must get a 2xx answer.
SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
SMALL_TUNING = {"model_type": "knn", "space": {"n_neighbors": [3, 5]}}
BATCH_CSV = "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.7,3.0,5.8,2.3\n"


@dataclass
class Target:
    schema: Any
    session: Any  # Schemathesis's in-process ASGI client, never "entered": it does not run the lifespan
    client: TestClient  # the lifespan's holder, for the test's own requests


def with_examples(
    raw: dict, *, prediction_id: str, run_id: str, artifact: str, model_path: str, tuning_id: str
) -> dict:
    """The app's OpenAPI schema (the test's copy only), with examples the handlers find."""
    paths = raw["paths"]

    def parameter(path: str, name: str, value: str, method: str = "get") -> None:
        (found,) = [p for p in paths[path][method]["parameters"] if p["name"] == name]
        found["example"] = value

    parameter("/predictions/{prediction_id}", "prediction_id", prediction_id)
    parameter("/mlflow/run/{run_id}", "run_id", run_id)
    parameter("/mlflow/run/{run_id}/artifacts/{path}", "run_id", run_id)
    parameter("/mlflow/run/{run_id}/artifacts/{path}", "path", artifact)
    batch = paths["/predict_batch"]["post"]["requestBody"]["content"]["multipart/form-data"]
    batch["example"] = {"file": BATCH_CSV}
    load = paths["/load_model"]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]
    load["example"] = {"model_path": model_path}
    label = paths["/feedback"]["post"]["requestBody"]["content"]["application/json"]
    label["example"] = {"prediction_id": prediction_id, "true_label": "setosa"}
    parameter("/tune/{tuning_id}", "tuning_id", tuning_id)
    parameter("/tune/{tuning_id}", "tuning_id", tuning_id, method="delete")
    tune = paths["/tune"]["post"]["requestBody"]["content"]["application/json"]
    tune["example"] = SMALL_TUNING
    return raw


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
        # Schemathesis sends `Host: testserver`: a name this app answers to only when told, as a user tells it.
        app = create_app(settings_for(directory, allowed_hosts=("testserver",)))
        with TestClient(app) as client:
            trained = client.post("/train", data={"n_estimators": str(FAST_TREES)})
            assert trained.status_code == 200, trained.text
            # A second version, so the champion has a previous one and POST /models/rollback can answer 2xx.
            second = client.post("/train", data={"n_estimators": str(FAST_TREES)})
            assert second.status_code == 200, second.text
            predicted = client.post("/predict", json=SETOSA)
            assert predicted.status_code == 200, predicted.text
            wait_for_writer(client)  # the prediction's run is in MLflow: GET /predictions/{id} finds it
            tuning = client.post("/tune", json=SMALL_TUNING)
            assert tuning.status_code == 202, tuning.text
            tuning_id = tuning.json()["tuning_id"]
            wait_for_tuning(client, tuning_id)  # ended: POST /tune can start another (not a 409)
            run_id = trained.json()["run_id"]
            artifacts = client.get(f"/mlflow/run/{run_id}").json()["artifacts"]
            raw = with_examples(
                client.get("/openapi.json").json(),
                prediction_id=predicted.json()["prediction_id"],
                run_id=run_id,
                artifact=artifacts[0]["path"],  # in a folder (model_files/...): the path has a slash
                model_path=trained.json()["model_path"],
                tuning_id=tuning_id,
            )
            schema = schemathesis.openapi.from_dict(raw)
            schema.app = app  # in process: Schemathesis's ASGI transport
            yield Target(schema, asgi.ASGIClient(app), client)
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
    # The schema's examples first (Schemathesis's examples phase), then generated input that fits the
    # schema, then input that does not.
    from_examples = [("examples", s) for s in operation.get_strategies_from_examples()]
    if from_examples:
        notes.append(f"{len(from_examples)} schema example(s)")
    generated = [
        (mode, operation.as_strategy(generation_mode=mode))
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    ]

    for mode, strategy in from_examples + generated:

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def exercise(case):
            response = case.call(session=target.session)
            statuses[response.status_code] += 1
            if label == "POST /tune" and response.status_code == 202:
                # Cancelled and waited for before the next example: a tuning saving its MLflow model in the
                # background swaps sys.modules["dbutils"] for MLflow's mock, which Hypothesis trips on when
                # it scans the modules for constants while generating the next example.
                tuning_id = response.json()["tuning_id"]
                target.client.delete(f"/tune/{tuning_id}")
                wait_for_tuning(target.client, tuning_id)
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
            assert mode == schemathesis.GenerationMode.NEGATIVE, label
            notes.append("no schema-breaking input exists: positive only")

    assert statuses, "no request was generated"
    results.fuzzed(operation=label, examples=sum(statuses.values()), statuses=statuses, notes="; ".join(notes))
    assert not [s for s in statuses if s >= 500]
    assert not bad_details, bad_details
    # The handler ran to the end at least once: refusals alone (422 on every random id) test only the checks.
    reached = any(200 <= s < 300 for s in statuses) or ENDED.get(label) in statuses
    assert reached, f"{label} never answered 2xx: {dict(statuses)}"

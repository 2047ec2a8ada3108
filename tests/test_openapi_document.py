"""The OpenAPI document says what the server answers: one error model, the media types, the serving
model's features, the constraints the server checks and the links between calls.

tests/reliability/test_openapi_contract.py holds the document to the server's answers (Schemathesis,
a generated client); this file checks the document itself, in process, fast.
"""

from __future__ import annotations

import os
import signal

import pytest

from tests.helpers.api import wait_for_writer
from tests.helpers.contract import MODEL_TYPE_NAMES
from tests.helpers.data import IRIS_FEATURES

ERROR_REF = "#/components/schemas/ErrorResponse"
EVERY_ROUTE = {"400", "408", "500"}
WRITES = {"401", "403", "413", "415", "507"}


def operations(document: dict):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


@pytest.fixture(scope="module")
def document(trained_platform) -> dict:
    response = trained_platform.client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def test_every_error_status_is_the_one_error_model(document):
    assert "HTTPValidationError" not in str(document)  # FastAPI's list-shaped 422 is never answered
    for label, operation in operations(document):
        responses = operation["responses"]
        assert set(responses) >= EVERY_ROUTE, label
        if label.startswith("POST"):
            assert set(responses) >= WRITES, label
        for status, response in responses.items():
            if int(status) < 400 or label == "GET /ready":  # /ready's 503 is its own answer, with a detail
                continue
            assert response["content"] == {"application/json": {"schema": {"$ref": ERROR_REF}}}, (label, status)
    error = document["components"]["schemas"]["ErrorResponse"]
    assert error["required"] == ["detail"] and error["properties"]["detail"]["type"] == "string"


def test_routes_declare_the_statuses_their_refusals_use(document):
    declared = {label: set(op["responses"]) for label, op in operations(document)}
    assert {"409", "422", "503"} <= declared["POST /predict"]
    assert {"404", "409", "422"} <= declared["POST /load_model"]
    assert "409" in declared["POST /models/rollback"]
    assert {"404", "422"} <= declared["GET /predictions/{prediction_id}"]
    assert {"404", "422"} <= declared["GET /mlflow/run/{run_id}"]
    assert {"404", "422"} <= declared["GET /mlflow/runs"]


def test_csv_and_file_routes_declare_their_media_types(document):
    export = document["paths"]["/mlflow/runs/export.csv"]["get"]["responses"]["200"]["content"]
    assert list(export) == ["text/csv"]
    artifact = document["paths"]["/mlflow/run/{run_id}/artifacts/{path}"]["get"]["responses"]["200"]["content"]
    assert artifact == {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}


def test_predict_takes_exactly_the_serving_models_features(document):
    body = document["paths"]["/predict"]["post"]["requestBody"]
    assert body["required"] is True
    assert set(body["content"]) == {"application/json", "application/x-www-form-urlencoded", "multipart/form-data"}
    for media in body["content"].values():
        schema = media["schema"]
        assert list(schema["properties"]) == IRIS_FEATURES
        assert schema["required"] == IRIS_FEATURES and schema["additionalProperties"] is False
        assert all(p["type"] == "number" for p in schema["properties"].values())


def test_without_a_model_predict_takes_any_object_of_numbers(fresh_platform):
    body = fresh_platform.client.get("/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["additionalProperties"] == {"type": "number"}


def test_the_document_follows_the_serving_models_features(fresh_platform):
    csv = "a,b,label\n" + "".join(f"{i % 7 / 2},{i % 3},{'xy'[i % 2]}\n" for i in range(40))
    trained = fresh_platform.client.post("/train", files={"file": ("ab.csv", csv, "text/csv")})
    assert trained.status_code == 200, trained.text
    body = fresh_platform.client.get("/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["required"] == ["a", "b"]


def test_path_and_query_constraints_match_the_servers_checks(document):
    def parameter(path: str, name: str) -> dict:
        (found,) = [p for p in document["paths"][path]["get"]["parameters"] if p["name"] == name]
        return found["schema"]

    assert parameter("/mlflow/run/{run_id}", "run_id")["pattern"] == "^[0-9a-f]{32}$"
    assert parameter("/predictions/{prediction_id}", "prediction_id")["pattern"] == "^[0-9a-f]{32}$"
    assert {k: parameter("/mlflow/runs", "page")[k] for k in ("type", "minimum", "maximum")} == {
        "type": "integer",
        "minimum": 1,
        "maximum": 100_000,
    }
    assert parameter("/mlflow/runs", "max_results")["maximum"] == 1000
    assert parameter("/mlflow/runs", "order_by")["pattern"].startswith("^(start_time|run_name|samples|metrics")


HYPERPARAMETERS = {
    "n_estimators",
    "max_depth",
    "min_samples_leaf",
    "learning_rate",
    "max_iter",
    "max_leaf_nodes",
    "C",
    "kernel",
    "gamma",
    "n_neighbors",
    "weights",
}


def test_bodies_refuse_fields_they_do_not_take(document):
    train = document["paths"]["/train"]["post"]["requestBody"]["content"]
    for media in ("application/json", "application/x-www-form-urlencoded"):
        # No file: no CSV options.
        assert set(train[media]["schema"]["properties"]) == {"model_type", *HYPERPARAMETERS, "test_size", "cv_folds"}
        assert train[media]["schema"]["additionalProperties"] is False
    multipart = train["multipart/form-data"]["schema"]
    assert multipart["dependentRequired"] == {"target_column": ["file"], "keep_columns": ["file"], "impute": ["file"]}
    assert set(multipart["properties"]) == {"file", "model_type", *HYPERPARAMETERS, "test_size", "cv_folds"} | {
        "target_column",
        "keep_columns",
        "impute",
    }


def test_train_documents_the_model_types_and_the_bounds_the_server_checks(document):
    fields = document["paths"]["/train"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert fields["model_type"]["enum"] == MODEL_TYPE_NAMES and fields["model_type"]["default"] == "random_forest"
    assert (fields["n_estimators"]["minimum"], fields["n_estimators"]["maximum"]) == (1, 1000)
    assert {k: fields["cv_folds"][k] for k in ("type", "minimum", "maximum", "default")} == {
        "type": "integer",
        "minimum": 0,
        "maximum": 20,
        "default": 0,
    }
    assert fields["learning_rate"]["exclusiveMinimum"] == 0 and "minimum" not in fields["learning_rate"]
    assert fields["C"]["exclusiveMinimum"] == 0
    assert fields["kernel"]["enum"] == ["rbf", "linear", "poly", "sigmoid"]
    assert fields["weights"]["enum"] == ["uniform", "distance"]
    # A name two model types share documents the bounds that admit both (each type's own are checked):
    # max_iter is up to 1000 boosting iterations, or up to 100000 solver iterations.
    assert (fields["max_iter"]["minimum"], fields["max_iter"]["maximum"]) == (1, 100_000)
    assert "hist_gradient_boosting: an integer between 1 and 1000" in fields["max_iter"]["description"]
    assert "logistic_regression: an integer between 1 and 100000" in fields["max_iter"]["description"]
    # Only what a training measured is answered: the cross-validated and two-class metrics are optional.
    answer = document["components"]["schemas"]["TrainResponse"]
    assert {"model_type", "hyperparameters", "cv_folds", "runtime"} <= set(answer["required"])
    assert {"cv_accuracy_mean", "cv_f1_score_std", "roc_auc", "average_precision"} <= set(answer["properties"])
    assert not {"cv_accuracy_mean", "roc_auc", "average_precision"} & set(answer["required"])


def test_model_types_is_documented(document):
    operation = document["paths"]["/model_types"]["get"]
    assert operation["operationId"] == "model_types"
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/ModelTypesResponse"}
    load = document["paths"]["/load_model"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert [s["required"] for s in load["oneOf"]] == [["version"], ["model_path"]]
    assert all(s["additionalProperties"] is False for s in load["oneOf"])
    batch = document["paths"]["/predict_batch"]["post"]["requestBody"]["content"]
    assert list(batch) == ["multipart/form-data"]
    assert batch["multipart/form-data"]["schema"]["additionalProperties"] is False


def test_links_chain_train_predict_and_the_lookups(document):
    ids = {op["operationId"] for _, op in operations(document)}

    def links(path: str) -> dict:
        return document["paths"][path]["post"]["responses"]["200"]["links"]

    train = links("/train")
    assert train["GetTheTrainingRun"] == {
        "operationId": "get_run",
        "parameters": {"run_id": "$response.body#/run_id"},
        "description": train["GetTheTrainingRun"]["description"],
    }
    assert train["PredictWithTheNewModel"]["operationId"] == "predict"
    assert links("/predict")["FindThePrediction"]["parameters"] == {"prediction_id": "$response.body#/prediction_id"}
    assert links("/predict_batch")["DownloadThePredictions"]["parameters"]["path"] == "predictions.csv"
    for path in ("/train", "/predict", "/predict_batch"):
        assert {link["operationId"] for link in links(path).values()} <= ids


def test_a_prediction_is_found_as_pending_before_its_run_is_written(trained_platform):
    """The /predict -> /predictions/{id} link answers at once: from the journal while the worker has not
    written the run (the worker is paused here), from MLflow after."""
    client = trained_platform.client
    worker = client.app.state.service.writer._process
    os.kill(worker.pid, signal.SIGSTOP)
    try:
        predicted = client.post("/predict", json=dict(zip(IRIS_FEATURES, [5.1, 3.5, 1.4, 0.2], strict=True))).json()
        found = client.get(f"/predictions/{predicted['prediction_id']}")
        assert found.status_code == 200, found.text
        assert found.json()["status"] == "pending" and found.json()["run"] is None
        record = found.json()["record"]
        assert record["prediction_id"] == predicted["prediction_id"]
        assert record["class_name"] == predicted["class_name"] == "setosa"
        assert record["confidence"] == pytest.approx(predicted["confidence"])
    finally:
        os.kill(worker.pid, signal.SIGCONT)
    wait_for_writer(client)
    written = client.get(f"/predictions/{predicted['prediction_id']}").json()
    assert written["status"] == "success" and written["run"]["run_type"] == "inference"

"""Prediction routes: one sample (also served by predict_lane.py), a batch file, and finding a logged prediction."""

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from iris_platform.api.dependencies import ServiceDep
from iris_platform.api.request_body import (
    FORMS,
    JSON,
    MULTIPART,
    URLENCODED,
    form_fields,
    json_object,
    media_type,
    unsupported,
)
from iris_platform.api.responses import WRITES, errors
from iris_platform.api.schemas import BatchResponse, PredictionLookup, PredictResponse
from iris_platform.errors import InputError
from iris_platform.service import IrisService
from iris_platform.tracking import names

PREDICTION_ID_PATTERN = "^[0-9a-f]{32}$"
# Without a model the features are unknown; api/openapi.py puts the serving model's in the document.
_FEATURES_SCHEMA = {
    "type": "object",
    "additionalProperties": {"type": "number"},
    "example": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
}


_BATCH_BODY = {
    "required": True,
    "content": {
        MULTIPART: {
            "schema": {
                "type": "object",
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "contentMediaType": "text/csv",
                        "description": "CSV whose columns include the model's features, with a header row",
                    }
                },
                "required": ["file"],
                "additionalProperties": False,
            }
        }
    },
}


async def _feature_values(request: Request) -> dict[str, Any]:
    kind = media_type(request)
    if kind == JSON:
        return await json_object(request, "send an object mapping each feature name to a number")
    if kind in FORMS:
        async with request.form() as form:  # closes an uploaded file part, refused below, on the way out
            return form_fields(form)
    raise unsupported(request, "Send the features as a JSON object, a URL-encoded form or multipart form data")


async def predict(request: Request) -> Response:
    values = await _feature_values(request)
    # The hottest route: no injected dependency (FastAPI's resolution costs more than the model) and
    # inline on the event loop, since the compiled model answers in microseconds and the journal
    # append is one write(2), cheaper than a hop to the thread pool. The response is built directly.
    service: IrisService = request.app.state.service
    return Response(orjson.dumps(service.predict_one(values)), media_type="application/json")


async def predict_batch(request: Request, service: ServiceDep) -> dict[str, Any]:
    if media_type(request) != MULTIPART:
        raise unsupported(request, "Send the CSV as multipart form data, in a file field named 'file'")
    async with request.form() as form:
        upload = form_fields(form, files=["file"], fields=()).get("file")
        if upload is None or not (upload.filename or upload.size):
            raise InputError("No file was sent: send the CSV in a multipart file field named 'file'.")
        # Read straight from the spooled upload: a file of millions of rows is never held in memory.
        return await run_in_threadpool(service.predict_batch, upload.file, upload.filename)


def find_prediction(
    prediction_id: Annotated[
        str,
        Path(
            description="The `prediction_id` POST /predict answered",
            json_schema_extra={"pattern": PREDICTION_ID_PATTERN},  # checked by the service, which says what an id is
        ),
    ],
    service: ServiceDep,
) -> dict[str, Any]:
    return service.find_prediction(prediction_id)


router = APIRouter(tags=["prediction"])
_BODY = {
    "required": True,
    "description": "The serving model's features, each a number, or a text for a text feature (GET /openapi.json "
    "lists the serving model's).",
    "content": {t: {"schema": _FEATURES_SCHEMA} for t in (JSON, URLENCODED, MULTIPART)},
}
router.add_api_route(
    "/predict",
    predict,
    methods=["POST"],
    summary="Predict one sample from its features",
    response_model=PredictResponse,
    responses={
        200: {
            "links": {
                "FindThePrediction": {
                    "operationId": "find_prediction",
                    "parameters": {"prediction_id": "$response.body#/prediction_id"},
                    "description": "The prediction's record and MLflow run (or its journal record, before the run)",
                }
            }
        },
        **errors(409, 422, 503, *WRITES, s409="No model is loaded yet: train one or load one"),
    },
    openapi_extra={"requestBody": _BODY},
)
router.add_api_route(
    "/predict_batch",
    predict_batch,
    methods=["POST"],
    response_model=BatchResponse,
    summary="Predict every row of an uploaded CSV and log one batch run",
    responses={
        200: {
            "links": {
                "GetTheBatchRun": {
                    "operationId": "get_run",
                    "parameters": {"run_id": "$response.body#/run_id"},
                    "description": "The batch's MLflow run",
                },
                "DownloadThePredictions": {
                    "operationId": "download_artifact",
                    "parameters": {"run_id": "$response.body#/run_id", "path": names.PREDICTIONS_ARTIFACT},
                    "description": "Every row's prediction, as predictions.csv",
                },
            }
        },
        **errors(409, 422, 503, *WRITES, s409="No model is loaded yet: train one or load one"),
    },
    openapi_extra={"requestBody": _BATCH_BODY},
)
router.add_api_route(
    "/predictions/{prediction_id}",
    find_prediction,
    methods=["GET"],
    response_model=PredictionLookup,
    summary="Find the MLflow run that holds a single prediction",
    responses=errors(404, 422, 503, s404="No run and no journal holds a prediction of this id"),
)

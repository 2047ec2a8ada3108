"""Prediction routes: one sample (also served by predict_lane.py), a batch file, and finding a logged prediction."""

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from iris_platform.api.dependencies import ServiceDep
from iris_platform.api.request_body import FORMS, JSON, MULTIPART, form_fields, json_object, media_type, unsupported
from iris_platform.api.schemas import BatchResponse, PredictionLookup, PredictResponse
from iris_platform.errors import InputError
from iris_platform.service import IrisService

_FEATURES_SCHEMA = {
    "type": "object",
    "additionalProperties": {"type": "number"},
    "example": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
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


def find_prediction(prediction_id: str, service: ServiceDep) -> dict[str, Any]:
    return service.find_prediction(prediction_id)


router = APIRouter(tags=["prediction"])
_BODY = {
    "required": True,
    "content": {
        t: {"schema": _FEATURES_SCHEMA}
        for t in ("application/json", "application/x-www-form-urlencoded", "multipart/form-data")
    },
}
router.add_api_route(
    "/predict",
    predict,
    methods=["POST"],
    summary="Predict one sample from its features",
    response_model=PredictResponse,
    openapi_extra={"requestBody": _BODY},
)
router.add_api_route(
    "/predict_batch",
    predict_batch,
    methods=["POST"],
    response_model=BatchResponse,
    summary="Predict every row of an uploaded CSV and log one batch run",
)
router.add_api_route(
    "/predictions/{prediction_id}",
    find_prediction,
    methods=["GET"],
    response_model=PredictionLookup,
    summary="Find the MLflow run that holds a single prediction",
)

"""Prediction routes: one sample (also served by predict_lane.py), a batch file, and finding a logged prediction."""

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import Response

from iris_platform.api.dependencies import ServiceDep
from iris_platform.api.schemas import BatchResponse, PredictionLookup, PredictResponse
from iris_platform.errors import InputError
from iris_platform.service import IrisService

_FEATURES_SCHEMA = {
    "type": "object",
    "additionalProperties": {"type": "number"},
    "example": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
}


async def _feature_values(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested thousands deep
            raise InputError("The request body is not valid JSON: send an object of feature values.", 400) from None
        if not isinstance(body, dict):
            raise InputError("The JSON body must be an object mapping each feature name to a number.", 400)
        return body
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        values: dict[str, Any] = {}
        async with request.form() as form:  # closes an uploaded file part, refused below, on the way out
            for key, value in form.multi_items():
                if not isinstance(value, str):
                    raise InputError(f"Field '{key}' is a file; send feature values as plain form fields.", 400)
                if key in values:
                    raise InputError(f"Feature '{key}' is given twice: send each feature once.")
                values[key] = value
        return values
    raise InputError(
        "Send the features as a JSON object, a URL-encoded form or multipart form data "
        f"(got content type '{content_type or 'none'}').",
        415,
    )


async def predict(request: Request) -> Response:
    values = await _feature_values(request)
    # The hottest route: no injected dependency (FastAPI's resolution costs more than the model) and
    # inline on the event loop, since the compiled model answers in microseconds and the journal
    # append is one write(2), cheaper than a hop to the thread pool. The response is built directly.
    service: IrisService = request.app.state.service
    return Response(orjson.dumps(service.predict_one(values)), media_type="application/json")


def predict_batch(
    file: Annotated[UploadFile, File(description="CSV whose columns include the model's features")],
    service: ServiceDep,
) -> dict[str, Any]:
    # Read straight from the spooled upload: a file of millions of rows is never held in memory.
    return service.predict_batch(file.file, file.filename)


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

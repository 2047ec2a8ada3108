
from fastapi import APIRouter, Depends, File, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from ..dependencies import get_service
from ..errors import InputError
from ..service import IrisService
from .training import upload_content

router = APIRouter(tags=["prediction"])

_FEATURES_SCHEMA = {
    "type": "object",
    "additionalProperties": {"type": "number"},
    "example": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
}


async def _feature_values(request: Request) -> dict:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise InputError("The request body is not valid JSON: send an object of feature values.", 400)
        if not isinstance(body, dict):
            raise InputError("The JSON body must be an object mapping each feature name to a number.", 400)
        return body
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        values = {}
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


@router.post(
    "/predict",
    summary="Predict one sample from its features",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _FEATURES_SCHEMA},
                "application/x-www-form-urlencoded": {"schema": _FEATURES_SCHEMA},
                "multipart/form-data": {"schema": _FEATURES_SCHEMA},
            },
        }
    },
)
async def predict(request: Request, service: IrisService = Depends(get_service)) -> dict:
    values = await _feature_values(request)
    return await run_in_threadpool(service.predict_one, values)


@router.post("/predict_batch", summary="Predict every row of an uploaded CSV and log one batch run")
def predict_batch(
    file: UploadFile = File(..., description="CSV whose columns include the model's features"),
    service: IrisService = Depends(get_service),
) -> dict:
    content, filename = upload_content(file)
    if content is None:
        raise InputError("No file was uploaded: choose a CSV file for the `file` field.", 400)
    return service.predict_batch(content, filename)

from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
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
from iris_platform.api.schemas import TrainParameters, TrainResponse

router = APIRouter(tags=["training"])
CSV_OPTIONS = ("target_column", "keep_columns")  # only with an uploaded CSV

_SEND = (
    "Send the training parameters as a JSON object or as form fields, with a CSV file as multipart form data "
    f"(fields: {', '.join(TrainParameters.model_fields)}, file)"
)


def _parameters(given: dict[str, Any], *, strict: bool) -> TrainParameters:
    """The same checks for JSON (strict types: 5, not "5") and for form fields (text by nature)."""
    try:
        return TrainParameters.model_validate(given, strict=strict)
    except ValidationError as exc:  # answered as every other invalid request (app.validation_detail)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


def _body_schema() -> dict[str, Any]:
    fields = TrainParameters.model_json_schema()["properties"]
    # Without a file (JSON, URL-encoded) the CSV's options cannot apply and are refused.
    plain = {k: v for k, v in fields.items() if k not in CSV_OPTIONS}
    upload = {
        "type": "string",
        "format": "binary",
        "contentMediaType": "text/csv",
        "description": "CSV with a header row; default: scikit-learn's Iris data",
    }
    multipart = {
        "type": "object",
        "properties": {"file": upload, **fields},
        "dependentRequired": {option: ["file"] for option in CSV_OPTIONS},
        "additionalProperties": False,
    }
    form = {"type": "object", "properties": plain, "additionalProperties": False}
    return {
        "required": False,
        "description": "No body trains 100 trees on the bundled Iris data; JSON or a URL-encoded form sets its "
        "parameters; multipart form data can also carry a CSV to train on.",
        "content": {
            JSON: {"schema": form, "example": {"n_estimators": 50, "test_size": 0.2}},
            MULTIPART: {"schema": multipart},
            URLENCODED: {"schema": form},
        },
    }


@router.post(
    "/train",
    response_model=TrainResponse,
    summary="Train a classifier on the Iris data or an uploaded CSV",
    responses={
        200: {
            "links": {
                "GetTheTrainingRun": {
                    "operationId": "get_run",
                    "parameters": {"run_id": "$response.body#/run_id"},
                    "description": "The training's MLflow run: params, metrics and artifacts",
                },
                "PredictWithTheNewModel": {
                    "operationId": "predict",
                    "description": "The new version is the champion: /predict answers with it at once",
                },
                "ListTheVersions": {"operationId": "list_models", "description": "The new version among the others"},
            }
        },
        **errors(422, 503, *WRITES),
    },
    openapi_extra={"requestBody": _body_schema()},
)
async def train(request: Request, service: ServiceDep) -> dict[str, Any]:
    kind = media_type(request)
    content: bytes | None = None
    filename: str | None = None
    if kind == JSON:
        parameters = _parameters(await json_object(request, _SEND), strict=True)
    elif kind in FORMS:
        async with request.form() as form:
            given = form_fields(form, files=["file"], fields=TrainParameters.model_fields)
            upload = given.pop("file", None)
            if upload is not None:
                content, filename = await upload.read(), upload.filename
                if not filename and not content:  # a browser form's empty file input: no file
                    content, filename = None, None
        parameters = _parameters(given, strict=False)
    elif not kind and not await request.body():
        parameters = TrainParameters()  # `curl -X POST /train`: the defaults
    else:
        raise unsupported(request, _SEND)
    # Training is CPU-bound: off the event loop, in the thread pool.
    return await run_in_threadpool(
        service.train, content=content, filename=filename, **parameters.model_dump(exclude_unset=False)
    )

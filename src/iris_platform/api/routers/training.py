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
from iris_platform.api.schemas import ModelTypesResponse, TrainParameters, TrainResponse
from iris_platform.service import DEFAULT_MODEL_TYPE, HYPERPARAMETERS, MAX_CV_FOLDS, MODEL_TYPES

router = APIRouter(tags=["training"])
CSV_OPTIONS = ("target_column", "keep_columns", "impute")  # only with an uploaded CSV

_SEND = (
    "Send the training parameters as a JSON object or as form fields, with a CSV file as multipart form data "
    f"(fields: {', '.join(TrainParameters.model_fields)}, file)"
)


def training_parameters(given: dict[str, Any], *, strict: bool) -> dict[str, Any]:
    """The same checks for JSON (strict types: 5, not "5") and for form fields (text by nature, as the
    command line's options are)."""
    try:
        # Only what was sent: a hyperparameter left out takes its model type's default.
        return TrainParameters.model_validate(given, strict=strict).model_dump(exclude_unset=True)
    except ValidationError as exc:  # answered as every other invalid request (details.invalid_request)
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"]), "msg": _with_allowed(e, given)} for e in exc.errors()]
        ) from None


def _with_allowed(error: Any, given: dict[str, Any]) -> str:
    """A wrong type's message ("Input should be a valid integer"), with the values the field allows: for a
    hyperparameter, those of the model type sent (the default's if none or an unknown one was)."""
    msg = str(error.get("msg", "invalid"))
    field = str(error["loc"][0]) if error.get("loc") else ""
    if field in HYPERPARAMETERS:
        sent = given.get("model_type", DEFAULT_MODEL_TYPE)
        chosen = MODEL_TYPES.get(sent) if isinstance(sent, str) else None
        own = chosen.hyperparameter(field) if chosen is not None else None
        if chosen is not None and own is not None:
            return f"{msg} ({field} for model_type '{chosen.name}' must be {own.allowed()})"
        takers = [(t.name, h) for t in MODEL_TYPES.values() if (h := t.hyperparameter(field)) is not None]
        return f"{msg} ({field} must be " + "; ".join(f"for model_type '{k}' {h.allowed()}" for k, h in takers) + ")"
    if field == "model_type":
        return f"{msg} (model_type must be one of {', '.join(repr(n) for n in MODEL_TYPES)})"
    if field == "cv_folds":
        return f"{msg} (cv_folds must be 0, no cross-validation, or an integer from 2 to {MAX_CV_FOLDS})"
    return msg


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
        "description": "No body trains a random forest of 100 trees on the bundled Iris data; JSON or a URL-encoded "
        "form sets the model type, its hyperparameters and the split; multipart form data can also carry a CSV "
        "to train on.",
        "content": {
            JSON: {"schema": form, "example": {"n_estimators": 50, "test_size": 0.2}},
            MULTIPART: {"schema": multipart},
            URLENCODED: {"schema": form},
        },
    }


@router.post(
    "/train",
    response_model=TrainResponse,
    response_model_exclude_unset=True,  # cv_* and the two-class curves' areas only when they were measured
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
        parameters = training_parameters(await json_object(request, _SEND), strict=True)
    elif kind in FORMS:
        async with request.form() as form:
            given = form_fields(form, files=["file"], fields=TrainParameters.model_fields)
            upload = given.pop("file", None)
            if upload is not None:
                content, filename = await upload.read(), upload.filename
                if not filename and not content:  # a browser form's empty file input: no file
                    content, filename = None, None
        parameters = training_parameters(given, strict=False)
    elif not kind and not await request.body():
        parameters = {}  # `curl -X POST /train`: the defaults
    else:
        raise unsupported(request, _SEND)
    # Training is CPU-bound: off the event loop, in the thread pool.
    return await run_in_threadpool(service.train, content=content, filename=filename, **parameters)


_KINDS = {int: "integer", float: "number", str: "string"}


@router.get("/model_types", response_model=ModelTypesResponse, summary="The model types POST /train trains")
def model_types() -> dict[str, Any]:
    """Each model type with its hyperparameters: type, default and allowed values."""
    return {
        "default": DEFAULT_MODEL_TYPE,
        "max_cv_folds": MAX_CV_FOLDS,
        "model_types": [
            {
                "name": t.name,
                "estimator_class": t.estimator_class,
                "hyperparameters": [
                    {
                        "name": h.name,
                        "type": _KINDS[h.kind],
                        "default": h.default,
                        "description": h.description,
                        "minimum": h.low,
                        "exclusive_minimum": h.low_open,
                        "maximum": h.high,
                        "choices": list(h.choices) or None,
                        "nullable": h.nullable,
                    }
                    for h in t.hyperparameters
                ],
            }
            for t in MODEL_TYPES.values()
        ],
    }

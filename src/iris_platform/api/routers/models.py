from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from iris_platform.api.dependencies import ServiceDep
from iris_platform.api.request_body import (
    FORMS,
    JSON,
    documented_body,
    form_fields,
    json_object,
    media_type,
    unsupported,
)
from iris_platform.api.responses import WRITES, errors
from iris_platform.api.schemas import LoadModelRequest, LoadModelResponse, ModelsResponse
from iris_platform.errors import InputError

router = APIRouter(tags=["models"])

_SEND = 'send an object with one of "version" (a number GET /models lists) or "model_path"'
_VERSION = {
    "type": "integer",
    "minimum": 1,
    "maximum": 2**31 - 1,
    "description": "A registered `version` GET /models lists",
}
_MODEL_PATH = {
    "type": "string",
    "pattern": "\\S",
    "description": "A `path` (or `filename`) GET /models lists",
}
# One of the two, not both: a model named by its version or by its file.
_LOAD_SCHEMA = {
    "oneOf": [
        {
            "title": "LoadByVersion",
            "type": "object",
            "properties": {"version": _VERSION},
            "required": ["version"],
            "additionalProperties": False,
        },
        {
            "title": "LoadByPath",
            "type": "object",
            "properties": {"model_path": _MODEL_PATH},
            "required": ["model_path"],
            "additionalProperties": False,
        },
    ],
    "example": {"version": 1},
}


async def _load_request(request: Request) -> LoadModelRequest:
    """The version or model path, from a JSON object or a form (the dashboard posts a form)."""
    kind = media_type(request)
    if not (await request.body()).strip():
        body: dict[str, Any] = {}  # nothing sent: answered below with what to send
    elif kind == JSON:
        body = await json_object(request, _SEND)
    elif kind in FORMS:
        async with request.form() as form:
            body = form_fields(form, fields=("version", "model_path"))
    else:
        raise unsupported(request, 'Send {"version": N} or {"model_path": "..."} as JSON or as form fields')
    if any(value is None for value in body.values()):
        raise InputError(f"A field is null: leave it out instead; {_SEND}.")
    if isinstance(body.get("model_path"), str) and not body["model_path"].strip():
        raise InputError('"model_path" is blank: give a path GET /models lists, or send {"version": N}.')
    if set(body) - {"version", "model_path"}:
        raise InputError(f"Unknown field(s) {sorted(set(body) - {'version', 'model_path'})}: {_SEND}.")
    try:
        return LoadModelRequest.model_validate(body)
    except ValidationError:
        raise InputError(
            '"version" must be a whole number of a version GET /models lists, "model_path" a string.'
        ) from None


@router.get(
    "/models",
    response_model=ModelsResponse,
    summary="The registered model versions and which one serves",
    responses=errors(503),
)
def list_models(service: ServiceDep) -> dict[str, Any]:
    return service.list_models()


@router.post(
    "/load_model",
    response_model=LoadModelResponse,
    summary="Make a registered version the champion, served by every replica",
    responses=errors(
        404,
        409,
        422,
        503,
        *WRITES,
        s404="No registered version or model file of this number or path",
        s409="The version cannot serve (its files fail their checks), or the file has no MLflow model to register",
    ),
    openapi_extra=documented_body(_LOAD_SCHEMA),
)
async def load_model(request: Request, service: ServiceDep) -> dict[str, Any]:
    body = await _load_request(request)
    return await run_in_threadpool(service.load_model, model_path=body.model_path, version=body.version)


@router.post(
    "/models/rollback",
    response_model=LoadModelResponse,
    summary="Move the champion back to the version it named before",
    responses=errors(409, 503, *WRITES, s409="The champion has no earlier version to go back to"),
)
def rollback(service: ServiceDep) -> dict[str, Any]:
    return service.rollback()

from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from iris_platform.api.dependencies import ServiceDep
from iris_platform.api.schemas import LoadModelRequest, LoadModelResponse, ModelsResponse
from iris_platform.errors import InputError

router = APIRouter(tags=["models"])

_LOAD_SCHEMA = {
    "type": "object",
    "properties": {
        "version": {"type": "integer", "minimum": 1, "description": "A registered `version` GET /models lists"},
        "model_path": {"type": "string", "description": "A `path` (or `filename`) GET /models lists"},
    },
    "example": {"version": 1},
}


async def _load_request(request: Request) -> LoadModelRequest:
    """The version or model path, from a JSON object or a form (the dashboard posts a form)."""
    content_type = request.headers.get("content-type", "")
    if not (await request.body()).strip():
        body: Any = {}  # nothing sent: answered below with what to send
    elif content_type.startswith("application/json"):
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise InputError('The request body is not valid JSON: send {"version": N}.', 400) from None
    elif content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        async with request.form() as form:
            body = {k: v for k, v in form.items() if isinstance(v, str) and v.strip()}
    else:
        raise InputError(
            'Send {"version": N} or {"model_path": "..."} as JSON or as form fields '
            f"(got content type '{content_type or 'none'}').",
            415,
        )
    if not isinstance(body, dict) or set(body) - {"version", "model_path"}:
        raise InputError('Send an object with one of "version" (a number GET /models lists) or "model_path".')
    try:
        return LoadModelRequest.model_validate(body)
    except ValidationError:
        raise InputError(
            '"version" must be a whole number of a version GET /models lists, "model_path" a string.'
        ) from None


@router.get("/models", response_model=ModelsResponse, summary="The registered model versions and which one serves")
def list_models(service: ServiceDep) -> dict[str, Any]:
    return service.list_models()


@router.post(
    "/load_model",
    response_model=LoadModelResponse,
    summary="Make a registered version the champion, served by every replica",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                t: {"schema": _LOAD_SCHEMA}
                for t in ("application/json", "application/x-www-form-urlencoded", "multipart/form-data")
            },
        }
    },
)
async def load_model(request: Request, service: ServiceDep) -> dict[str, Any]:
    body = await _load_request(request)
    return await run_in_threadpool(service.load_model, model_path=body.model_path, version=body.version)


@router.post(
    "/models/rollback",
    response_model=LoadModelResponse,
    summary="Move the champion back to the version it named before",
)
def rollback(service: ServiceDep) -> dict[str, Any]:
    return service.rollback()

"""Tuning: a search over a model type's hyperparameters, run in the background as nested MLflow runs."""

from typing import Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from iris_platform.api.dependencies import ServiceDep
from iris_platform.api.request_body import JSON, json_object, media_type, unsupported
from iris_platform.api.responses import WRITES, errors
from iris_platform.api.schemas import TuneRequest, TuningProgress
from iris_platform.errors import InputError

router = APIRouter(tags=["tuning"])

_SEND = (
    'send a JSON object such as {"model_type": "random_forest", "space": {"n_estimators": [10, 50]}, '
    '"metric": "accuracy"}'
)
_TUNING_ID = Path(pattern="^[0-9a-f]{32}$", description="The id POST /tune answered (its parent run's id)")


@router.post(
    "/tune",
    response_model=TuningProgress,
    status_code=202,
    summary="Tune a model type's hyperparameters in the background (a parent run, a child run per trial)",
    responses={
        202: {
            "links": {
                "FollowTheTuning": {
                    "operationId": "get_tuning",
                    "parameters": {"tuning_id": "$response.body#/tuning_id"},
                    "description": "Its progress: trials done, the best so far, the registered version",
                },
                "CancelTheTuning": {
                    "operationId": "cancel_tuning",
                    "parameters": {"tuning_id": "$response.body#/tuning_id"},
                    "description": "Stop it after its current trial",
                },
            }
        },
        **errors(409, 422, 503, *WRITES, s409="A tuning is already running in this process"),
    },
    openapi_extra={"requestBody": {"required": True, "content": {JSON: {"schema": TuneRequest.model_json_schema()}}}},
)
async def tune(request: Request, service: ServiceDep) -> JSONResponse:
    if media_type(request) != JSON:
        raise unsupported(request, "Send the tuning as a JSON object")
    body = await json_object(request, _SEND)
    try:
        parameters = TuneRequest.model_validate(body, strict=False)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())
        raise InputError(f"{problems}: {_SEND}.", 422) from None
    progress = await run_in_threadpool(service.tune, **parameters.model_dump())
    return JSONResponse(
        TuningProgress.model_validate(progress).model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/tune/{progress['tuning_id']}"},
    )


@router.get(
    "/tune/{tuning_id}",
    operation_id="get_tuning",
    response_model=TuningProgress,
    summary="A tuning's progress: trials done, the best so far, its registered version",
    responses=errors(404, 422, 503, s404="No tuning of this id"),
)
def get_tuning(service: ServiceDep, tuning_id: str = _TUNING_ID) -> dict[str, Any]:
    return service.tuning(tuning_id)


@router.delete(
    "/tune/{tuning_id}",
    response_model=TuningProgress,
    summary="Cancel a tuning after its current trial; the finished trials stay, nothing is registered",
    responses=errors(404, 409, 422, 503, *WRITES, s404="No tuning of this id", s409="The tuning has already ended"),
)
def cancel_tuning(service: ServiceDep, tuning_id: str = _TUNING_ID) -> dict[str, Any]:
    return service.cancel_tuning(tuning_id)

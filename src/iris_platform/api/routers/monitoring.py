"""Monitoring: feedback labels for predictions, and the dashboard's monitoring view of drift, accuracy and alerts."""

from typing import Any

from fastapi import APIRouter, Query, Request
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
from iris_platform.api.schemas import FeedbackRequest, FeedbackResponse, MonitoringResponse
from iris_platform.errors import InputError

router = APIRouter(tags=["monitoring"])

_FIELDS = ("prediction_id", "run_id", "row", "true_label")
_SEND = (
    'send {"prediction_id": "<id POST /predict answered>", "true_label": "<class>"}, or '
    '{"run_id": "<a batch run id>", "row": N, "true_label": "<class>"} for row N (0 is the first) of a batch'
)
_LABEL = {"type": "string", "minLength": 1, "maxLength": 250, "description": "The class the row truly belongs to"}
_FEEDBACK_SCHEMA = {
    "oneOf": [
        {
            "title": "FeedbackForPrediction",
            "type": "object",
            "properties": {
                "prediction_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                "true_label": _LABEL,
            },
            "required": ["prediction_id", "true_label"],
            "additionalProperties": False,
        },
        {
            "title": "FeedbackForBatchRow",
            "type": "object",
            "properties": {
                "run_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                "row": {"type": "integer", "minimum": 0, "maximum": 10**15},
                "true_label": _LABEL,
            },
            "required": ["run_id", "row", "true_label"],
            "additionalProperties": False,
        },
    ],
    "example": {"prediction_id": "0190f5d2a1c34f3e9b7a6d5c4b3a2918", "true_label": "setosa"},
}


async def _feedback_request(request: Request) -> FeedbackRequest:
    kind = media_type(request)
    if kind == JSON:
        body: dict[str, Any] = await json_object(request, _SEND)
    elif kind in FORMS:
        async with request.form() as form:
            body = form_fields(form, fields=_FIELDS)
    else:
        raise unsupported(request, "Send the label as JSON or as form fields")
    unknown = sorted(set(body) - set(_FIELDS))
    if unknown:
        raise InputError(f"Unknown field(s) {unknown}: {_SEND}.", 422)
    try:
        return FeedbackRequest.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())
        raise InputError(f"{problems}: {_SEND}.", 422) from None


@router.post(
    "/feedback",
    response_model=FeedbackResponse,
    summary="The true label of a prediction, for feedback accuracy per model version",
    responses=errors(
        404,
        422,
        503,
        *WRITES,
        s404="No prediction of this id, or no run of this id",
    ),
    openapi_extra=documented_body(_FEEDBACK_SCHEMA),
)
async def feedback(request: Request, service: ServiceDep) -> dict[str, Any]:
    body = await _feedback_request(request)
    return await run_in_threadpool(
        service.feedback,
        true_label=body.true_label,
        prediction_id=body.prediction_id,
        run_id=body.run_id,
        row=body.row,
    )


@router.get(
    "/monitoring",
    response_model=MonitoringResponse,
    summary="Drift, class proportions, confidence and feedback accuracy over time, and the alerts",
    responses=errors(422, 503),
)
def monitoring(
    service: ServiceDep,
    model_version: str | None = Query(default=None, max_length=20, description="One version's runs only"),
    limit: int = Query(default=200, ge=1, le=2000, description="The newest runs of each kind"),
) -> dict[str, Any]:
    return service.monitoring(model_version=model_version, limit=limit)

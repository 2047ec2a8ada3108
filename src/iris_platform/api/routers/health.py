from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from iris_platform.api.dependencies import ServiceDep
from iris_platform.api.schemas import HealthResponse, ReadyResponse

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthResponse, summary="Liveness, the loaded model and the tracking backlog")
def health(service: ServiceDep) -> dict[str, Any]:
    return service.health()


@router.get(
    "/ready",
    response_model=ReadyResponse,
    responses={503: {"model": ReadyResponse, "description": "No model serves, or the tracking store is unreachable"}},
    summary="Readiness for a load balancer: 200 while a model serves and the tracking store answers",
)
def ready(service: ServiceDep) -> JSONResponse:
    ok, detail = service.ready()
    return JSONResponse({"ready": ok, "detail": detail}, status_code=200 if ok else 503)

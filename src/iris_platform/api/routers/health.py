from typing import Any

from fastapi import APIRouter

from iris_platform.api.dependencies import ServiceDep
from iris_platform.api.schemas import HealthResponse

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthResponse, summary="Liveness, the loaded model and the tracking backlog")
def health(service: ServiceDep) -> dict[str, Any]:
    return service.health()

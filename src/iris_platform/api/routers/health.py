from fastapi import APIRouter, Depends

from iris_platform.api.dependencies import get_service
from iris_platform.service import IrisService

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness, the loaded model and the tracking writer's backlog")
def health(service: IrisService = Depends(get_service)) -> dict:
    return service.health()

from fastapi import APIRouter, Depends

from ..dependencies import get_service
from ..service import IrisService

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness, the loaded model and the tracking writer's backlog")
def health(service: IrisService = Depends(get_service)) -> dict:
    return service.health()

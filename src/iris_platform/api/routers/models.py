from fastapi import APIRouter, Depends, Form

from iris_platform.api.dependencies import get_service
from iris_platform.service import IrisService

router = APIRouter(tags=["models"])


@router.get("/models", summary="The saved models and which one is serving")
def list_models(service: IrisService = Depends(get_service)) -> dict:
    return service.list_models()


@router.post("/load_model", summary="Serve a saved model listed by GET /models")
def load_model(
    model_path: str = Form(..., description="A `path` (or `filename`) listed by GET /models"),
    service: IrisService = Depends(get_service),
) -> dict:
    return service.load_model(model_path)

from typing import Annotated, Any

from fastapi import APIRouter, Form

from iris_platform.api.dependencies import ServiceDep
from iris_platform.api.schemas import LoadModelResponse, ModelsResponse

router = APIRouter(tags=["models"])


@router.get("/models", response_model=ModelsResponse, summary="The saved models and which one is serving")
def list_models(service: ServiceDep) -> dict[str, Any]:
    return service.list_models()


@router.post("/load_model", response_model=LoadModelResponse, summary="Serve a saved model listed by GET /models")
def load_model(
    model_path: Annotated[str, Form(description="A `path` (or `filename`) listed by GET /models")],
    service: ServiceDep,
) -> dict[str, Any]:
    return service.load_model(model_path)

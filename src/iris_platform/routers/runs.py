from typing import Optional

from fastapi import APIRouter, Depends, Query

from ..dependencies import get_service
from ..service import IrisService

router = APIRouter(prefix="/mlflow", tags=["mlflow"])


@router.get("/experiments", summary="The MLflow experiments in the tracking store")
def experiments(service: IrisService = Depends(get_service)) -> dict:
    return {"status": "success", "experiments": service.tracker.experiments()}


@router.get("/runs", summary="The newest runs, of one experiment or of both")
def runs(
    experiment_name: Optional[str] = Query(None, max_length=256, description="Default: both experiments"),
    max_results: int = Query(100, ge=1, le=1000),
    service: IrisService = Depends(get_service),
) -> dict:
    return {
        "status": "success",
        "runs": service.tracker.search_runs(experiment_name, max_results),
        "total": service.tracker.count_runs(experiment_name),
    }


@router.get("/summary", summary="Run counts and the average accuracy, over every run in the store")
def summary(service: IrisService = Depends(get_service)) -> dict:
    return {"status": "success", **service.tracker.summary()}


@router.get("/run/{run_id}", summary="One run with its params, metrics, tags and artifacts")
def run(run_id: str, service: IrisService = Depends(get_service)) -> dict:
    return service.tracker.get_run(run_id)

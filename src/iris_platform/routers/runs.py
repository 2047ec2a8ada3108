from typing import Optional

import shutil
import tempfile

from fastapi import APIRouter, BackgroundTasks, Depends, Query
from fastapi.responses import FileResponse

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


@router.get("/run/{run_id}/artifacts/{path:path}", summary="Download one of a run's artifacts")
def artifact(run_id: str, path: str, background: BackgroundTasks,
             service: IrisService = Depends(get_service)) -> FileResponse:
    tmp = tempfile.mkdtemp(prefix="iris-artifact-")
    background.add_task(shutil.rmtree, tmp, ignore_errors=True)
    try:
        local = service.tracker.download_artifact(run_id, path, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return FileResponse(local, filename=path.rsplit("/", 1)[-1])

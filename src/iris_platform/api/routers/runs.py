import csv
import io
import shutil
import tempfile
from dataclasses import dataclass
from typing import Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Query
from fastapi.responses import FileResponse, StreamingResponse

from iris_platform.api.dependencies import get_service
from iris_platform.service import IrisService
from iris_platform.tracking import names

router = APIRouter(prefix="/mlflow", tags=["mlflow"])


@router.get("/experiments", summary="The MLflow experiments in the tracking store")
def experiments(service: IrisService = Depends(get_service)) -> dict:
    return {"status": "success", "experiments": service.tracker.experiments()}


RUN_TYPES = {"training": names.TRAINING_EXPERIMENT, "inference": names.INFERENCE_EXPERIMENT}


@dataclass
class RunFilter:
    """The listing's filter, sort and page, shared by the JSON listing and the CSV export."""

    experiment_name: str | None = Query(None, max_length=256, description="Default: both experiments")
    run_type: Literal["training", "inference"] | None = Query(None, description="Instead of experiment_name")
    search: str | None = Query(None, max_length=200, description="Text in the run name or any param")
    order_by: str = Query("start_time", max_length=260, description="start_time, run_name, samples or metrics.<name>")
    order: Literal["asc", "desc"] = Query("desc")

    @property
    def experiment(self) -> str | None:
        return RUN_TYPES[self.run_type] if self.run_type else self.experiment_name


@router.get("/runs", summary="Runs of one experiment or both: filtered, sorted and paged")
def runs(
    where: RunFilter = Depends(),
    max_results: int = Query(100, ge=1, le=1000, description="Runs per page"),
    page: int = Query(1, ge=1, le=100_000),
    service: IrisService = Depends(get_service),
) -> dict:
    result = service.tracker.query_runs(
        where.experiment, max_results, where.search, where.order_by, where.order == "desc", page
    )
    return {"status": "success", **result}


@router.get("/runs/export.csv", summary="The filtered runs as CSV: one row per run, a column per param and metric")
def export_runs(
    where: RunFilter = Depends(),
    limit: int = Query(50_000, ge=1, le=50_000),
    service: IrisService = Depends(get_service),
) -> StreamingResponse:
    runs = list(
        service.tracker.export_runs(where.experiment, where.search, where.order_by, where.order == "desc", limit)
    )
    params = sorted({k for r in runs for k in r["params"]})
    metrics = sorted({k for r in runs for k in r["metrics"]})
    columns = ["run_id", "experiment_name", "run_name", "status", "start_time", "end_time"]

    def rows():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns + [f"params.{p}" for p in params] + [f"metrics.{m}" for m in metrics])
        for run in runs:
            writer.writerow(
                [run[c] for c in columns]
                + [run["params"].get(p, "") for p in params]
                + [run["metrics"].get(m, "") for m in metrics]
            )
            if buffer.tell() > 64_000:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return StreamingResponse(
        rows(), media_type="text/csv", headers={"Content-Disposition": 'attachment; filename="runs.csv"'}
    )


@router.get("/summary", summary="Run counts and the average accuracy, over every run in the store")
def summary(service: IrisService = Depends(get_service)) -> dict:
    return {"status": "success", **service.tracker.summary()}


@router.get("/run/{run_id}", summary="One run with its params, metrics, tags and artifacts")
def run(run_id: str, service: IrisService = Depends(get_service)) -> dict:
    return service.tracker.get_run(run_id)


@router.get("/run/{run_id}/artifacts/{path:path}", summary="Download one of a run's artifacts")
def artifact(
    run_id: str, path: str, background: BackgroundTasks, service: IrisService = Depends(get_service)
) -> FileResponse:
    tmp = tempfile.mkdtemp(prefix="iris-artifact-")
    background.add_task(shutil.rmtree, tmp, ignore_errors=True)
    try:
        local = service.tracker.download_artifact(run_id, path, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return FileResponse(local, filename=path.rsplit("/", 1)[-1])

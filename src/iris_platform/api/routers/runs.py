import csv
import io
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query
from fastapi.responses import FileResponse, StreamingResponse

from iris_platform.api.dependencies import ServiceDep
from iris_platform.api.responses import errors
from iris_platform.api.schemas import ExperimentsResponse, RunDetail, RunsPage, Summary

router = APIRouter(prefix="/mlflow", tags=["mlflow"])
RUN_ID_PATTERN = "^[0-9a-f]{32}$"
ORDER_BY_PATTERN = r"^(start_time|run_name|samples|metrics\.[0-9A-Za-z_\-. /:]{1,250})$"


@router.get(
    "/experiments",
    response_model=ExperimentsResponse,
    summary="The MLflow experiments in the tracking store",
    responses=errors(503),
)
def list_experiments(service: ServiceDep) -> dict[str, Any]:
    return {"status": "success", "experiments": service.experiments()}


@dataclass
class RunFilter:
    """The listing's filter and sort, shared by the JSON listing and the CSV export."""

    experiment_name: Annotated[str | None, Query(max_length=256, description="Default: both experiments")] = None
    run_type: Annotated[Literal["training", "inference"] | None, Query(description="Instead of experiment_name")] = None
    search: Annotated[str | None, Query(max_length=200, description="Text in the run name or any param")] = None
    order_by: Annotated[
        str,
        Query(
            max_length=260,
            description="start_time, run_name, samples or metrics.<name>",
            json_schema_extra={"pattern": ORDER_BY_PATTERN},  # checked by the run index, which says what to use
        ),
    ] = "start_time"
    order: Annotated[Literal["asc", "desc"], Query()] = "desc"


RunFilterDep = Annotated[RunFilter, Depends()]
LISTING_ERRORS = errors(404, 422, 503, s404="No experiment of this name")
RUN_ID = Path(
    description="An MLflow run id, as the listings and the training and batch answers give it",
    json_schema_extra={"pattern": RUN_ID_PATTERN},  # checked by the run reader, which says what a run id is
)


class CSVResponse(StreamingResponse):
    media_type = "text/csv"


@router.get(
    "/runs",
    response_model=RunsPage,
    summary="Runs of one experiment or both: filtered, sorted and paged",
    responses=LISTING_ERRORS,
)
def list_runs(
    where: RunFilterDep,
    service: ServiceDep,
    max_results: Annotated[int, Query(ge=1, le=1000, description="Runs per page")] = 100,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> dict[str, Any]:
    result = service.query_runs(
        experiment_name=where.experiment_name,
        run_type=where.run_type,
        search=where.search,
        order_by=where.order_by,
        descending=where.order == "desc",
        page_size=max_results,
        page=page,
    )
    return {"status": "success", **result}


@router.get(
    "/runs/export.csv",
    response_class=CSVResponse,
    summary="The filtered runs as CSV: one row per run, a column per param and metric",
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}, **LISTING_ERRORS},
)
def export_runs(
    where: RunFilterDep,
    service: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=50_000)] = 50_000,
) -> StreamingResponse:
    runs = list(
        service.export_runs(
            experiment_name=where.experiment_name,
            run_type=where.run_type,
            search=where.search,
            order_by=where.order_by,
            descending=where.order == "desc",
            limit=limit,
        )
    )
    params = sorted({k for r in runs for k in r["params"]})
    metrics = sorted({k for r in runs for k in r["metrics"]})
    columns = ["run_id", "experiment_name", "run_name", "status", "start_time", "end_time"]

    def rows() -> Iterator[str]:
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

    return CSVResponse(rows(), headers={"Content-Disposition": 'attachment; filename="runs.csv"'})


@router.get(
    "/summary",
    response_model=Summary,
    summary="Run counts and the average accuracy over every run",
    responses=errors(503),
)
def summary(service: ServiceDep) -> dict[str, Any]:
    return {"status": "success", **service.summary()}


@router.get(
    "/run/{run_id}",
    response_model=RunDetail,
    summary="One run with its params, metrics, tags and artifacts",
    responses=errors(404, 422, 503, s404="No run of this id"),
)
def get_run(run_id: Annotated[str, RUN_ID], service: ServiceDep) -> dict[str, Any]:
    return service.get_run(run_id)


@router.get(
    "/run/{run_id}/artifacts/{path:path}",
    response_class=FileResponse,
    summary="Download one of a run's artifacts",
    responses={
        200: {
            "description": "The file, as a download (whatever its kind)",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        },
        **errors(404, 422, 503, s404="No run of this id, or the run has no artifact at this path"),
    },
)
def download_artifact(
    run_id: Annotated[str, RUN_ID],
    path: Annotated[str, Path(description="An artifact's `path`, as GET /mlflow/run/{run_id} lists it")],
    background: BackgroundTasks,
    service: ServiceDep,
) -> FileResponse:
    tmp = tempfile.mkdtemp(prefix="iris-artifact-")
    background.add_task(shutil.rmtree, tmp, ignore_errors=True)
    try:
        local = service.download_artifact(run_id, path, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return FileResponse(local, media_type="application/octet-stream", filename=path.rsplit("/", 1)[-1])

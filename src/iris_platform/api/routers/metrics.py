"""GET /metrics: the platform's Prometheus metrics in the text format, for a Prometheus server to scrape.

Left out of the OpenAPI document: it is an operator's endpoint in Prometheus's own format, not part of
the API a client is generated from.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from iris_platform import metrics
from iris_platform.api.dependencies import ServiceDep

router = APIRouter(tags=["health"])

METRICS_OFF = (
    "Metrics are off on this server (IRIS_METRICS=0): start it with IRIS_METRICS=1, the default, "
    "to count requests and predictions and serve them here."
)


# A plain `def`: the scrape reads the journals and, with several processes, their metric files; FastAPI
# runs it in the thread pool, off the event loop.
@router.get("/metrics", name="metrics", include_in_schema=False)
def scrape(service: ServiceDep) -> Response:
    if not service.settings.metrics:
        return JSONResponse({"detail": METRICS_OFF}, status_code=404)
    # The gauges only a serving process knows, as of now: the backlog of the whole journal folder (every
    # process's journal and any a stopped one left, as /health counts it) and the model served here.
    metrics.set_journal_backlog(sum(journal["pending"] for journal in service.writer.journals()))
    predictor = service.predictor
    if predictor is None:
        metrics.set_serving_model(None, None, None)
    else:
        metrics.set_serving_model(predictor.version, predictor.model_path, predictor.runtime)
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)

"""The FastAPI application: routers, the static dashboard, error answers and the service's life cycle."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from mlflow.exceptions import MlflowException
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import ClientDisconnect

from iris_platform import __version__
from iris_platform.api import details, method_not_allowed, openapi
from iris_platform.api.middleware.complete_uploads import CompleteUploads
from iris_platform.api.middleware.cross_site import CrossSiteGuard
from iris_platform.api.middleware.predict_lane import PredictLane
from iris_platform.api.middleware.request_metrics import RequestMetrics
from iris_platform.api.middleware.security import BodyLimitMiddleware, SecurityHeadersMiddleware, TokenMiddleware
from iris_platform.api.responses import EVERY_ROUTE, errors
from iris_platform.api.routers import health, metrics, models, monitoring, prediction, runs, training, tuning
from iris_platform.config import Settings, megabytes
from iris_platform.errors import InputError, StartupRefused
from iris_platform.metrics import configure as configure_metrics
from iris_platform.metrics import forget_this_process, set_serving_model
from iris_platform.redaction import describe
from iris_platform.service import IrisService
from iris_platform.training_process import TrainingProcess
from iris_platform.web_origins import AllowedHosts, AllowedOrigins

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"  # the dashboard, shipped in the package
log = logging.getLogger(__name__)


def _warm_up(service: IrisService) -> None:
    try:
        service.warm_up()
    except Exception:  # only a head start: the first training then pays its own way
        log.warning("warming up the training path failed", exc_info=True)
    finally:
        gc.freeze()  # scikit-learn's objects too
        gc.enable()  # server.main turned it off for the start-up's imports


def prepare_tracking(settings: Settings) -> None:
    """Open the tracking store once before several worker processes start (see IrisService.prepare_tracking)."""
    IrisService.prepare_tracking(settings)


def create_app(settings: Settings | None = None, trainer: TrainingProcess | None = None) -> FastAPI:
    """The application; `trainer`: a training process started already (server.py spawns it first),
    else one is started here if settings.training_process (each of --workers has its own)."""
    settings = settings or Settings.from_env()
    configure_metrics(settings.metrics)  # before the service: what it records obeys IRIS_METRICS too
    if trainer is None and settings.training_process:
        trainer = TrainingProcess(settings)
    service = IrisService(settings, trainer)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            service.start()
        except StartupRefused as exc:
            log.error("refusing to start: %s", exc)  # one line that says what to change, before uvicorn exits
            raise
        predictor = service.predictor  # the model this process serves from its start, before any scrape
        if predictor is not None:
            set_serving_model(predictor.version, predictor.model_path, predictor.runtime)
        # Everything imported so far (MLflow, pandas: ~10^6 objects) lives as long as the process;
        # freezing it keeps the garbage collector's full passes from stalling requests.
        gc.freeze()
        IrisService.warming_up()
        threading.Thread(target=_warm_up, args=(service,), name="iris-warm-up", daemon=True).start()
        try:
            yield
        finally:
            service.stop()  # lets the tracking worker write what is journaled
            forget_this_process()  # a stopped process serves no model: its live gauges leave /metrics

    # FastAPIOffline serves /docs from files shipped in the package, not from a CDN.
    app = FastAPIOffline(
        title="Iris ML platform",
        version=__version__,
        description="Train scikit-learn classifiers, serve predictions, and record every action in MLflow.",
        lifespan=lifespan,
        responses=errors(*EVERY_ROUTE),
        generate_unique_id_function=lambda route: route.name,  # operation ids: `train`, `get_run`, ...
    )
    app.state.service = service
    openapi.install(app, service)

    @app.exception_handler(InputError)
    async def input_error(request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer is a list of objects; every other mistake gets one sentence to read.
        return JSONResponse({"detail": details.invalid_request(exc)}, status_code=422)

    def tracking_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("tracking store error on %s: %s", request.url.path, describe(exc))
        service.reset_tracking_connections()
        return JSONResponse({"detail": details.tracking_unavailable(settings.tracking_uri, exc)}, status_code=503)

    app.add_exception_handler(MlflowException, tracking_unavailable)
    app.add_exception_handler(SQLAlchemyError, tracking_unavailable)

    @app.exception_handler(OSError)
    async def os_error(request: Request, exc: OSError) -> JSONResponse:
        if exc.errno in details.DISK_FULL_ERRNOS:
            return JSONResponse({"detail": details.DISK_FULL}, status_code=507)
        if exc.errno in details.CANNOT_WRITE_ERRNOS:
            log.warning("cannot write on %s: %s", request.url.path, exc)
            return JSONResponse({"detail": details.cannot_write(exc)}, status_code=503)
        return await unexpected(request, exc)

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
        # The client hung up while sending its body: no one to answer, nothing to log as our error.
        return JSONResponse({"detail": "The client disconnected before its request body arrived."}, status_code=400)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse(
            {"detail": details.internal_error(exc)},
            status_code=500,
        )

    routers = (
        health.router,
        training.router,
        prediction.router,
        models.router,
        monitoring.router,
        tuning.router,
        runs.router,
        metrics.router,
    )
    for router in routers:
        app.include_router(router)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    # FastAPI keeps an included router as one entry of app.router.routes: its routes are listed here.
    every_route = [*app.router.routes, *(route for router in routers for route in router.routes)]
    method_not_allowed.install(app, every_route)

    # Added innermost first: /predict skips FastAPI's routing, a multipart body cut off before its
    # closing boundary is refused before any route acts on its parts, the token is checked before the body
    # is counted, a foreign Host or a cross-site write is refused before anything else, and every
    # answer, a 400, 401, 403 or 413 included, gets the security headers. Outermost, the request metrics
    # count and time every answer, /predict's and the guards' refusals included.
    app.add_middleware(PredictLane, handlers=app.exception_handlers)
    app.add_middleware(CompleteUploads)
    app.add_middleware(
        BodyLimitMiddleware,
        default_limit=megabytes(settings.max_upload_mb),
        limits={"/predict_batch": megabytes(settings.max_batch_upload_mb)},  # batches stream to disk
    )
    if settings.api_token:
        app.add_middleware(TokenMiddleware, token=settings.api_token)
    origins = AllowedOrigins(settings.cors_allowed_origins)
    if origins.patterns:  # the guard has refused every other origin's preflight
        app.add_middleware(
            CORSMiddleware,
            allow_origins=["*"] if origins.any_origin else [],
            allow_origin_regex=origins.regex,
            allow_methods=["GET", "HEAD", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    hosts = AllowedHosts.from_setting(settings.allowed_hosts, bind_host=settings.host)
    app.add_middleware(CrossSiteGuard, hosts=hosts, origins=origins)
    app.add_middleware(SecurityHeadersMiddleware)
    if settings.metrics:  # off, nothing is counted: not even a middleware's call
        app.add_middleware(RequestMetrics, routes=every_route)
    return app

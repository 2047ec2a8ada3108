"""The FastAPI application: routers, the static dashboard and the service's life cycle."""

from __future__ import annotations

import gc
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from . import __version__
from .config import Settings
from .errors import InputError
from .routers import health, models, prediction, runs, training
from .service import IrisService

STATIC_DIR = Path(__file__).parent / "static"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    service = IrisService(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.start()
        # Everything imported so far (MLflow, scikit-learn, pandas: ~10^6 objects) lives as long as
        # the process; freezing it keeps the garbage collector's full passes from stalling requests.
        gc.freeze()
        try:
            yield
        finally:
            service.stop()  # flushes the tracking writer's queue

    app = FastAPI(
        title="Iris ML platform",
        version=__version__,
        description="Train scikit-learn classifiers, serve predictions, and record every action in MLflow.",
        lifespan=lifespan,
    )
    app.state.service = service

    @app.exception_handler(InputError)
    async def input_error(request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    for module in (health, training, prediction, models, runs):
        app.include_router(module.router)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    return app

"""POST /predict as a bare ASGI handler, ahead of FastAPI's routing.

/predict is the platform's hottest route, and FastAPI's per-request machinery (routing, dependency
resolution, the exception and exit-stack middleware) costs several times what the compiled model
and the journal append do: without it the server answers about 40% more predictions a second
(bench/README.md). The lane runs the very endpoint that `routers/prediction.py` registers (and
documents in the OpenAPI schema) and answers its errors with the app's own exception handlers, so
the answers are the same. It sits inside the token, body-limit and security-header middleware.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from iris_platform.api.middleware.security import route_path
from iris_platform.api.routers.prediction import predict


class PredictLane:
    def __init__(self, app: ASGIApp, handlers: dict[Any, Callable]):
        self.app = app
        # Exception and 500 stay with Starlette's outermost middleware, as they do for every route.
        self.handlers = {k: v for k, v in handlers.items() if isinstance(k, type) and k is not Exception}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or route_path(scope) != "/predict":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await predict(request)
        except Exception as exc:
            response = await self._handle(request, exc)
        await response(scope, receive, send)

    async def _handle(self, request: Request, exc: Exception) -> Response:
        for cls in type(exc).__mro__:  # the most specific handler, as Starlette looks it up
            handler = self.handlers.get(cls)
            if handler is not None:
                if inspect.iscoroutinefunction(handler):
                    return await handler(request, exc)
                return await run_in_threadpool(handler, request, exc)
        raise exc

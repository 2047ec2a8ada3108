"""405 answers that name every method the path takes.

Starlette's router tries routes in order and the first one whose path matches raises the 405 with its
own methods only: /tune/{id} has a GET and a DELETE route, and a PATCH was told `Allow: GET`.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import Scope


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """The methods of every route whose path matches the request's (whatever its method)."""
    methods: set[str] = set()
    for route in app.router.routes:
        route_methods = getattr(route, "methods", None)
        if route_methods and route.matches(scope)[0] is not Match.NONE:
            methods |= route_methods
    return sorted(methods)


def install(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 405:
            allowed = allowed_methods(app, request.scope)
            if allowed:
                return JSONResponse(
                    {"detail": f"{request.method} is not allowed on {request.url.path}: use {', '.join(allowed)}."},
                    status_code=405,
                    headers={"Allow": ", ".join(allowed)},
                )
        return await http_exception_handler(request, exc)

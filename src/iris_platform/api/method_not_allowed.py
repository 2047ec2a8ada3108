"""405 answers that say which methods the path takes, in the detail and in `Allow`.

Starlette's own answer is "Method Not Allowed" with the methods of the first route whose path matches;
with two routes on one path (a GET and a DELETE, say) `Allow` would name only the first one's.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Scope


def allowed_methods(routes: Sequence[BaseRoute], scope: Scope) -> list[str]:
    """The methods of every route whose path matches the request's (whatever its method)."""
    methods: set[str] = set()
    for route in routes:
        route_methods = getattr(route, "methods", None)
        if route_methods and route.matches(scope)[0] is not Match.NONE:
            methods |= route_methods
    return sorted(methods)


def install(app: FastAPI, routes: Sequence[BaseRoute]) -> None:
    """`routes`: the app's own and its routers' (FastAPI keeps an included router as one entry)."""

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 405:
            allowed = allowed_methods(routes, request.scope)
            if allowed:
                return JSONResponse(
                    {"detail": f"{request.method} is not allowed on {request.url.path}: use {', '.join(allowed)}."},
                    status_code=405,
                    headers={"Allow": ", ".join(allowed)},
                )
        return await http_exception_handler(request, exc)

"""Every HTTP answer counted and timed, by method, route and status code, for GET /metrics.

It is the outermost middleware (inside only Starlette's own error middleware), so it sees every answer:
the guards' refusals, `POST /predict`, which PredictLane answers before FastAPI's routing, and every
routed request; the time is the whole answer's, body included. An exception that escapes (Starlette's
error middleware then answers 500) is counted as a 500.

The route is the path template (`/mlflow/run/{run_id}`), never the raw path, so the label's values stay
few. It costs no second routing: PredictLane's path is a constant; a routed request carries its route in
`scope["route"]` once the router has matched it; only a request answered before routing (a guard's
refusal), by a mount (the static files) or by no route (404) is matched here, against the routes the app
hands over, once per method and path, in a bounded cache.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from iris_platform.api.middleware.security import route_path
from iris_platform.metrics import record_request

PREDICT = "/predict"
UNMATCHED = "unmatched"  # a path no route takes: one label value, whatever the path
CACHE_SIZE = 1024  # (method, path) pairs seen outside routing; past it, each is matched again


def template(route: object) -> str | None:
    """A route's path template with its parameters' names (`/static/{path}` for a mount)."""
    found = getattr(route, "path_format", None) or getattr(route, "path", None)
    return found if isinstance(found, str) else None


class RequestMetrics:
    def __init__(self, app: ASGIApp, routes: Iterable[BaseRoute] = ()) -> None:
        """`routes`: every route of the app in the router's order, flat (FastAPI keeps an included router's
        routes inside an object of its own, which has no template)."""
        self.app = app
        self._routes = [(route, path) for route in routes if (path := template(route)) is not None]
        self._unrouted: dict[tuple[str, str, str], str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # no answer started: the exception below is answered 500 outside this middleware

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        # As they arrive: a mount moves the root path of the scope it is handed.
        path, root = scope["path"], scope.get("root_path", "")
        start = time.perf_counter()
        try:
            await self.app(scope, receive, watching_send)
        finally:
            record_request(scope["method"], self._route(scope, path, root), status, time.perf_counter() - start)

    def _route(self, scope: Scope, path: str, root: str) -> str:
        routed = scope.get("route")  # set with the route's own child scope when a FastAPI route matched
        if routed is not None and (found := template(routed)) is not None:
            return found
        method = scope["method"]
        if path == PREDICT and method == "POST" and not root:  # PredictLane's: it never reaches the router
            return PREDICT
        key = (method, path, root)
        found = self._unrouted.get(key)
        if found is None:
            found = self._match({**scope, "path": path, "root_path": root})
            if len(self._unrouted) < CACHE_SIZE:
                self._unrouted[key] = found
        return found

    def _match(self, scope: Scope) -> str:
        """The template of the route the router would take (the first full match, else the first partial
        one: a 405), for a request answered without it."""
        if route_path(scope) == PREDICT and scope["method"] == "POST":  # behind a proxy's root path
            return PREDICT
        partial = None
        for route, path in self._routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return path
            if match is Match.PARTIAL and partial is None:
                partial = path
        return partial or UNMATCHED

"""What guards the HTTP edge: the API token, request body limits and the security headers.

All are plain ASGI middleware: the token and a declared body size are checked before a body is
read (a refused upload costs nothing), and neither adds more than a header check to a request.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Routes that change state (train, load a model, label a prediction) or use the model (predict) need the token.
PROTECTED = {
    ("POST", "/train"),
    ("POST", "/load_model"),
    ("POST", "/models/rollback"),
    ("POST", "/predict"),
    ("POST", "/predict_batch"),
    ("POST", "/feedback"),
}

# The page's own files only: no inline script, no other origin, no framing.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# FastAPI's documentation pages start Swagger UI / ReDoc with an inline script.
DOCS_CSP = (
    PAGE_CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'")
    .replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
    .replace("img-src 'self' data:", "img-src 'self' data: blob:")
)
DOCS_PATHS = ("/docs", "/redoc")


async def send_json(send: Send, status: int, detail: str, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


def route_path(scope: Scope) -> str:
    """The path the router matches: behind a proxy's root path (`--root-path /api`), scope["path"] is
    "/api/predict" while the route is "/predict". Starlette's own rule, so no guard can be sidestepped."""
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root):
        if path == root:
            return ""
        if path[len(root)] == "/":
            return path[len(root) :]
    return path


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return None


class TokenMiddleware:
    """With IRIS_API_TOKEN set, PROTECTED routes need `Authorization: Bearer <token>`."""

    def __init__(self, app: ASGIApp, token: str):
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (scope["method"], route_path(scope)) in PROTECTED:
            given = _header(scope, b"authorization") or b""
            if not hmac.compare_digest(given, self._expected):  # constant time; the token is never logged
                await send_json(
                    send,
                    401,
                    "This server requires an API token: send the header `Authorization: Bearer <token>` "
                    "with the token set in IRIS_API_TOKEN.",
                    [(b"www-authenticate", b"Bearer")],
                )
                return
        await self.app(scope, receive, send)


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(
            413,
            f"The request body is over this route's limit of {limit / 1024 / 1024:g} MB: send a smaller file, "
            "or raise IRIS_MAX_UPLOAD_MB (IRIS_MAX_BATCH_UPLOAD_MB for batch files).",
        )


class BodyLimitMiddleware:
    """413 for a body over its route's limit: at once for a declared length, else while it arrives.

    (Starlette's own limiter answers in plain text without the limit; this one says what to fix.)
    """

    def __init__(self, app: ASGIApp, default_limit: int, limits: dict[str, int]):
        self.app = app
        self.default_limit = default_limit
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(route_path(scope), self.default_limit)
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await send_json(send, 413, BodyTooLarge(limit).detail)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)  # FastAPI answers it through its HTTPException handler
            return message

        await self.app(scope, counting_receive, send)


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = (DOCS_CSP if route_path(scope).startswith(DOCS_PATHS) else PAGE_CSP).encode()

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + [
                    (b"content-security-policy", csp),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                ]
            await send(message)

        await self.app(scope, receive, with_headers)

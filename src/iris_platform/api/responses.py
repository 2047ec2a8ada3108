"""What the OpenAPI document says each route answers besides its success: one error model for all.

Every 4xx and 5xx the platform sends is `{"detail": "<what was wrong and what to do>"}` (schemas.ErrorResponse),
whether a route, a middleware or the HTTP protocol sends it. A route declares the statuses it can
answer with `errors(...)`; the app adds those every route can answer (EVERY_ROUTE) and those every
write can answer (WRITES), so a generated client parses each one as the error model.
"""

from __future__ import annotations

from typing import Any

from iris_platform.api.schemas import ErrorResponse

DESCRIPTIONS: dict[int, str] = {
    400: "The request cannot be read: malformed JSON, a multipart upload cut off before its closing boundary, "
    "a file that is not a usable CSV, or a Host name the server does not answer to (IRIS_ALLOWED_HOSTS)",
    401: "IRIS_API_TOKEN is set and the request lacks `Authorization: Bearer <token>`",
    403: "A state-changing request from another site's page (allow its origin with IRIS_CORS_ALLOWED_ORIGINS)",
    404: "What the request names does not exist",
    408: "The request's headers did not arrive within IRIS_HEADER_TIMEOUT_S; the connection is closed",
    409: "The request conflicts with the platform's state",
    413: "The body is over the route's limit (IRIS_MAX_UPLOAD_MB, IRIS_MAX_BATCH_UPLOAD_MB for batch files)",
    415: "The body's content type is not one this route takes",
    422: "A value is invalid: `detail` names the field and what it must be",
    500: "The server's bug, never the request's",
    503: "The MLflow tracking store is unavailable, or a folder the server writes to is not writable",
    507: "The server's disk is full",
}

EVERY_ROUTE = (400, 408, 500)  # the Host check, the header timeout, a bug
WRITES = (401, 403, 413, 415, 507)  # the token, the cross-site guard, the body limit, the body's type, the disk


def errors(*statuses: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status with the error model; `described` overrides a description
    by status (`s404="No such run"`)."""
    found: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description = described.get(f"s{status}", DESCRIPTIONS[status])
        found[status] = {"model": ErrorResponse, "description": description}
    return found

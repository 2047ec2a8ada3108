"""Reading a request body the routes accept in more than one form (JSON, URL-encoded or multipart).

Media types are compared as RFC 9110 says: the type and subtype without parameters, case-insensitively,
and exactly (`application/jsonx` is not JSON). A form field given twice or a field the route does not
take is refused, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from python_multipart.multipart import parse_options_header
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from iris_platform.errors import InputError

JSON = "application/json"
URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
FORMS = (URLENCODED, MULTIPART)


def documented_body(schema: dict[str, Any]) -> dict[str, Any]:
    """`openapi_extra=` for a route that reads one object as JSON or as form fields: the same schema for each."""
    return {"requestBody": {"required": True, "content": {t: {"schema": schema} for t in (JSON, *FORMS)}}}


def media_type(request: Request) -> str:
    """The Content-Type's type/subtype, lower-cased; "" when the header is missing."""
    return parse_options_header(request.headers.get("content-type"))[0].decode("latin-1")


def unsupported(request: Request, send: str) -> InputError:
    given = request.headers.get("content-type") or "none"
    return InputError(f"{send} (got content type '{given[:100]}').", 415)


async def json_object(request: Request, send: str) -> dict[str, Any]:
    """The body as a JSON object; `send` says what the route expects, for the refusal."""
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested thousands deep
        raise InputError(f"The request body is not valid JSON: {send}.", 400) from None
    if not isinstance(body, dict):
        raise InputError(f"The JSON body must be an object: {send}.", 400)
    return body


def form_fields(form: FormData, *, files: Iterable[str] = (), fields: Iterable[str] | None = None) -> dict[str, Any]:
    """A form's fields (text) and file parts by name. Only `files` may be files; with `fields` given,
    no other name is taken. A blank field is kept, and refused by the route's checks like any bad value."""
    file_names, allowed = set(files), None if fields is None else set(fields) | set(files)
    found: dict[str, Any] = {}
    for key, value in form.multi_items():
        if allowed is not None and key not in allowed:
            raise InputError(f"Unknown form field '{key[:100]}': this route takes {sorted(allowed)}.")
        if key in found:
            raise InputError(f"Field '{key[:100]}' is given twice: send each field once.")
        if isinstance(value, UploadFile) != (key in file_names):
            kind = "a file" if key in file_names else "plain text, not a file"
            raise InputError(f"Field '{key[:100]}' must be {kind}.")
        found[key] = value
    return found

"""A multipart body must end with its closing delimiter (RFC 2046 5.1.1: CRLF "--" boundary "--").

python-multipart stops wherever the bytes stop and Starlette keeps the parts it finished, so an
upload cut off mid-file (a proxy that gave up, a client that died after its length was sent) would
reach a route as a form without its file: /train would then train on the bundled Iris data. This
guard watches the stream for the closing delimiter and, when the body ends without it, raises a
400 that says the upload was cut off, before the route can act on the parts it got.
"""

from __future__ import annotations

from python_multipart.multipart import parse_options_header
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class UploadCutOff(HTTPException):
    def __init__(self) -> None:
        super().__init__(
            400,
            "The multipart upload was cut off: the body ended before its closing boundary, so a part (a file) "
            "may be incomplete. Nothing was done with it; send the whole request again.",
        )


def closing_delimiter(scope: Scope) -> bytes | None:
    """`--boundary--` for a multipart request; None for any other body (or a missing boundary, which
    the form parser refuses itself)."""
    for key, value in scope.get("headers", ()):
        if key == b"content-type":
            media_type, params = parse_options_header(value)
            boundary = params.get(b"boundary")
            if media_type == b"multipart/form-data" and boundary:
                return b"--" + boundary + b"--"
            return None
    return None


class CompleteUploads:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        delimiter = closing_delimiter(scope) if scope["type"] == "http" else None
        if delimiter is None:
            await self.app(scope, receive, send)
            return
        ended = False
        tail = b"\r\n"  # the body's start counts as a line start: an empty form is just "--boundary--"
        keep = len(delimiter) + 1  # enough of the last chunk to find a delimiter split across chunks

        async def watching_receive() -> Message:
            nonlocal ended, tail
            message = await receive()
            if message["type"] != "http.request" or ended:
                return message
            window = tail + message.get("body", b"")
            if b"\r\n" + delimiter in window:
                ended = True
            elif not message.get("more_body", False):
                raise UploadCutOff()  # FastAPI answers it through its HTTPException handler
            else:
                tail = window[-keep:]
            return message

        await self.app(scope, watching_receive, send)

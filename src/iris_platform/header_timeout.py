"""Slow clients: a connection whose request headers are not complete within a bound is answered 408 and closed.

uvicorn has no such bound. Its keep-alive timeout closes a connection that is idle *between* requests, but a
client that sends half a request line or half its headers and then waits keeps its socket open for ever, and a
few hundred of them exhaust the process's file descriptors (Slowloris). The protocol classes here are
uvicorn's own (httptools, or h11 where uvicorn's `auto` would take it) with one timer more: it starts when the
connection opens, and again at the first byte of each next request on a keep-alive connection; it stops
when that request's headers are complete (a slow body is the application's business, not this timer's). On
expiry the client gets `408 Request Timeout` with a JSON `detail` naming IRIS_HEADER_TIMEOUT_S, and the
connection is closed.

`header_timeout_protocol(seconds)` makes the class uvicorn is given (`http=`). uvicorn pickles its Config into
each `--workers` process; a class made here travels as the call that makes it, so every worker gets the bound
the server read.
"""

from __future__ import annotations

import asyncio
import copyreg
import functools
import json
from collections.abc import Callable
from typing import Any, ClassVar, Literal, cast

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.auto import AutoHTTPProtocol
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

VARIABLE = "IRIS_HEADER_TIMEOUT_S"
Http = Literal["auto", "httptools", "h11"]


def timeout_detail(seconds: float) -> str:
    """The `detail` of the 408 answer."""
    return f"The request headers did not arrive within {seconds:g} s ({VARIABLE}); the connection is closed."


def header_timeout_protocol(seconds: float, http: Http = "auto") -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol `http` (`auto`: the one uvicorn's `auto` picks) bounding each request's headers."""
    if http == "auto":
        http = "h11" if AutoHTTPProtocol is H11Protocol else "httptools"
    return cast(type[asyncio.Protocol], _made_protocol(seconds, http))


@functools.cache  # one class per bound and protocol, also when a worker unpickles it again
def _made_protocol(seconds: float, http: Http) -> _MadeProtocol:
    base = H11HeaderTimeout if http == "h11" else HttpToolsHeaderTimeout
    return _MadeProtocol(base.__name__, (base,), {"header_timeout_s": seconds, "http": http})


class _MadeProtocol(type):
    """The type of a class `_made_protocol` made: pickled as that call (see `_remade`)."""

    header_timeout_s: float
    http: Http


def _remade(cls: _MadeProtocol) -> tuple[Callable[[float, Http], _MadeProtocol], tuple[float, Http]]:
    return _made_protocol, (cls.header_timeout_s, cls.http)


# pickle finds a class by module and name, and a made class's name is its base's: it is made again instead.
copyreg.pickle(_MadeProtocol, _remade)


class _HeaderDeadline:
    """The timer of one connection: running from the start of a request until its headers are complete."""

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float, on_expiry: Callable[[], None]) -> None:
        self._loop = loop
        self._seconds = seconds
        self._on_expiry = on_expiry
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Start the timer unless it runs (the connection's first request runs on the connection's timer)."""
        if self._timer is None:
            self._timer = self._loop.call_later(self._seconds, self._expire)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        self._on_expiry()


def _close_slow_connection(protocol: HttpToolsProtocol | H11Protocol, seconds: float) -> None:
    transport = protocol.transport
    if transport.is_closing():
        return
    cycle = protocol.cycle
    if cycle is not None and not cycle.response_complete:
        # A pipelined request stalled behind an answer still going out: the connection ends with that answer.
        cycle.keep_alive = False
        return
    client = "{}:{}".format(*protocol.client) if protocol.client else "a client"
    protocol.logger.info("%s: request headers not complete within %g s, connection closed (408)", client, seconds)
    body = json.dumps({"detail": timeout_detail(seconds)}).encode()
    head = [b"HTTP/1.1 408 Request Timeout\r\n"]
    head += [name + b": " + value + b"\r\n" for name, value in protocol.server_state.default_headers]
    head += [b"content-type: application/json\r\n", b"content-length: %d\r\n" % len(body), b"connection: close\r\n"]
    transport.write(b"".join(head) + b"\r\n" + body)
    transport.close()


class HttpToolsHeaderTimeout(HttpToolsProtocol):
    """httptools: the parser calls `on_message_begin` at a request's first byte, `on_headers_complete` at its end."""

    header_timeout_s: ClassVar[float]
    http: ClassVar[Http] = "httptools"

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._header_deadline = _HeaderDeadline(self.loop, self.header_timeout_s, self._headers_timed_out)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline.start()

    def connection_lost(self, exc: Exception | None) -> None:
        self._header_deadline.stop()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        self._header_deadline.start()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._header_deadline.stop()
        super().on_headers_complete()

    def _headers_timed_out(self) -> None:
        _close_slow_connection(self, self.header_timeout_s)


class H11HeaderTimeout(H11Protocol):
    """h11: the peer's state is IDLE until a request's headers are parsed; unparsed bytes are a request begun."""

    header_timeout_s: ClassVar[float]
    http: ClassVar[Http] = "h11"

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._header_deadline = _HeaderDeadline(self.loop, self.header_timeout_s, self._headers_timed_out)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline.start()

    def connection_lost(self, exc: Exception | None) -> None:
        self._header_deadline.stop()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        # Runs on every byte received and after each answer (which releases pipelined requests).
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:
            self._header_deadline.stop()
        elif self.conn.trailing_data[0]:
            self._header_deadline.start()

    def _headers_timed_out(self) -> None:
        _close_slow_connection(self, self.header_timeout_s)

"""Slow clients: a connection whose request headers are not complete within IRIS_HEADER_TIMEOUT_S gets 408, closed.

The protocol itself (`iris_platform.header_timeout`) is driven in this process on a tiny ASGI app, with
httptools and with h11 and a bound of 1 s; the real server (`python main.py`, one process and `--workers 2`)
with IRIS_HEADER_TIMEOUT_S=2 shows it is wired in: half-sent headers are closed while other requests are served.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import pickle
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from multiprocessing.reduction import ForkingPickler
from typing import Any

import httpx2
import pytest
import uvicorn

from iris_platform.header_timeout import (
    H11HeaderTimeout,
    Http,
    HttpToolsHeaderTimeout,
    header_timeout_protocol,
    timeout_detail,
)
from tests.helpers.raw_http import read_answer, status_and_detail
from tests.helpers.server_process import MAIN, ServerProcess, server_environment

HALF_SENT = b"POST /predict HTTP/1.1\r\nHost: localhost\r\nContent-Le"
HEALTH = b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n"
LOCAL_BOUND_S = 1.0  # the in-process server's
SERVER_BOUND_S = 2.0  # the real server's
LATE_S = 6.0  # how late past its bound a 408 may come on a busy 2-core machine


# -- helpers -----------------------------------------------------------------------------------------


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def unanswered(sock: socket.socket) -> bool:
    """No byte and no close has arrived on `sock` (it is still waiting)."""
    readable, _, _ = select.select([sock], [], [], 0)
    return not readable


def assert_timed_out(sock: socket.socket, bound_s: float) -> None:
    """The next answer on `sock` is the 408 naming the bound, and then the server closes the connection."""
    try:
        answer = read_answer(sock, timeout=bound_s + LATE_S)
    except TimeoutError:
        pytest.fail(f"no answer and no close {bound_s + LATE_S:g} s after the headers stalled (bound {bound_s:g} s)")
    assert answer, "the server closed the connection without an answer"
    head = answer.partition(b"\r\n\r\n")[0].lower()
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
    assert b"connection: close" in head and b"content-type: application/json" in head, answer
    status, detail = status_and_detail(answer)
    assert status == 408 and detail == timeout_detail(bound_s), detail
    assert "IRIS_HEADER_TIMEOUT_S" in detail and f"within {bound_s:g} s" in detail, detail
    assert sock.recv(1) == b"", "the connection stayed open after the 408"


def trickle(sock: socket.socket, data: bytes, pause_s: float) -> None:
    for i in range(len(data)):
        sock.sendall(data[i : i + 1])
        time.sleep(pause_s)


# -- the protocol, in this process -------------------------------------------------------------------


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the whole body, then answers its size; /slow answers after a second."""
    assert scope["type"] == "http"
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    if scope["path"] == "/slow":
        await asyncio.sleep(1.0)
    body = json.dumps({"path": scope["path"], "body_bytes": size}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextlib.contextmanager
def local_server(http: Http) -> Iterator[int]:
    """uvicorn serving `echo_app` in a thread with the bounded protocol; yields its port."""
    config = uvicorn.Config(
        echo_app,
        http=header_timeout_protocol(LOCAL_BOUND_S, http),
        lifespan="off",
        ws="none",
        log_config=None,
        log_level="warning",
        timeout_keep_alive=30,  # uvicorn's own idle bound stays out of the way
    )
    server = uvicorn.Server(config)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the in-process server did not start"
            time.sleep(0.01)
        yield listener.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        listener.close()


@pytest.fixture(params=["httptools", "h11"])
def local_port(request) -> Iterator[int]:
    with local_server(request.param) as port:
        yield port


def test_auto_is_uvicorns_choice_and_the_class_reaches_spawned_workers():
    # uvicorn's `auto` takes httptools when it is installed (uvicorn[standard] installs it).
    made = header_timeout_protocol(SERVER_BOUND_S)
    assert issubclass(made, HttpToolsHeaderTimeout) and made.header_timeout_s == SERVER_BOUND_S
    assert issubclass(header_timeout_protocol(3.0, "h11"), H11HeaderTimeout)
    # uvicorn pickles its Config (and with it the class) into each --workers process.
    buffer = io.BytesIO()
    ForkingPickler(buffer).dump(made)
    assert pickle.loads(buffer.getvalue()) is made
    code = f"import pickle, sys; made = pickle.loads({buffer.getvalue()!r}); print(made.header_timeout_s, made.http)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["2.0", "httptools"], done.stderr


def test_half_sent_headers_get_408_at_the_bound_and_are_closed(local_port):
    start = time.monotonic()
    with connect(local_port) as sock:
        sock.sendall(HALF_SENT)
        time.sleep(LOCAL_BOUND_S / 2)
        assert unanswered(sock), "closed well before the bound"
        assert_timed_out(sock, LOCAL_BOUND_S)
    assert time.monotonic() - start >= LOCAL_BOUND_S * 0.9


def test_a_connection_that_sends_nothing_is_closed_too(local_port):
    with connect(local_port) as sock:
        assert_timed_out(sock, LOCAL_BOUND_S)


def test_the_first_request_runs_on_the_connections_bound(local_port):
    with connect(local_port) as sock:
        time.sleep(LOCAL_BOUND_S * 0.6)
        sent = time.monotonic()
        sock.sendall(HALF_SENT)
        assert_timed_out(sock, LOCAL_BOUND_S)
        assert time.monotonic() - sent < LOCAL_BOUND_S * 0.8, "the bound started again at the first byte"


def test_headers_trickling_past_the_bound_are_closed_at_the_bound(local_port):
    # The bound is on the whole headers, not on the pause between two bytes: a byte every 0.1 s does not extend it.
    with connect(local_port) as sock:
        trickle(sock, HALF_SENT[:8], pause_s=0.1)
        last_byte = time.monotonic() - 0.1  # at ~0.7 s; the bound ends at 1 s
        assert_timed_out(sock, LOCAL_BOUND_S)
        assert time.monotonic() - last_byte < LOCAL_BOUND_S * 0.8, "the bound restarted at a byte"


def test_headers_trickling_in_time_and_a_slow_body_are_served(local_port):
    request = b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 6\r\n\r\n"
    with connect(local_port) as sock:
        trickle(sock, request, pause_s=LOCAL_BOUND_S / 2 / len(request))  # the headers in half the bound
        trickle(sock, b"abcdef", pause_s=LOCAL_BOUND_S / 3)  # the body takes twice the bound: not this timer's
        answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert json.loads(answer.partition(b"\r\n\r\n")[2]) == {"path": "/echo", "body_bytes": 6}


def test_the_next_request_on_a_keep_alive_connection_has_its_own_bound(local_port):
    with connect(local_port) as sock:
        for _ in range(2):  # answered requests do not use up the bound
            sock.sendall(b"GET /first HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert read_answer(sock).startswith(b"HTTP/1.1 200 ")
            time.sleep(LOCAL_BOUND_S * 0.7)
        sent = time.monotonic()
        sock.sendall(b"GET /second HTTP/1.1\r\nHo")
        assert_timed_out(sock, LOCAL_BOUND_S)
        # The bound started at the request's first byte, not at the connection's start or the last answer.
        assert time.monotonic() - sent >= LOCAL_BOUND_S * 0.9


def test_an_answer_going_out_is_not_cut_by_a_stalled_pipelined_request(local_port):
    with connect(local_port) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\nGET /next HTTP/1.1\r\nHo")
        answer = read_answer(sock)
        assert answer.startswith(b"HTTP/1.1 200 ") and b'"path": "/slow"' in answer, answer
        # Then the stalled request ends the connection: at once (httptools, whose bound ran out meanwhile) or
        # with a 408 at its own bound (h11 reads a pipelined request only once the answer before it is out).
        rest = read_answer(sock, timeout=LOCAL_BOUND_S + LATE_S)
        assert rest == b"" or rest.startswith(b"HTTP/1.1 408 "), rest
        assert sock.recv(1) == b""


# -- the real server ---------------------------------------------------------------------------------


def test_the_server_refuses_a_bound_that_is_no_bound(tmp_path):
    env = server_environment(IRIS_HEADER_TIMEOUT_S="0")
    done = subprocess.run(
        [sys.executable, str(MAIN), "--port", "1"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert "IRIS_HEADER_TIMEOUT_S: 0.0 is no bound" in done.stderr and "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("slow-clients"), IRIS_HEADER_TIMEOUT_S=str(SERVER_BOUND_S))
    try:
        process.wait_healthy(90)
        yield process
    finally:
        process.stop(grace_s=30)


def hold_half_sent_headers(server: ServerProcess, count: int) -> None:
    """`count` connections send half their headers; other requests are served meanwhile; then each gets 408."""
    sent = time.monotonic()
    sockets = [connect(server.port) for _ in range(count)]
    try:
        for sock in sockets:
            sock.sendall(HALF_SENT)
        with httpx2.Client(base_url=server.url, timeout=5) as http:
            for _ in range(4):
                assert http.get("/health").status_code == 200
        time.sleep(max(0.0, sent + SERVER_BOUND_S / 2 - time.monotonic()))
        assert all(unanswered(sock) for sock in sockets), "connections were closed well before the bound"
        for sock in sockets:
            assert_timed_out(sock, SERVER_BOUND_S)
        assert time.monotonic() - sent < SERVER_BOUND_S + LATE_S
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.slow
def test_the_server_closes_half_sent_headers_while_serving_others(server):
    hold_half_sent_headers(server, 20)
    assert "request headers not complete within 2 s" in server.output(20_000)


@pytest.mark.slow
def test_the_server_serves_headers_that_trickle_in_in_time(server):
    with connect(server.port) as sock:
        trickle(sock, HEALTH, pause_s=SERVER_BOUND_S / 3 / len(HEALTH))
        answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 200 "), answer


@pytest.mark.slow
def test_the_server_closes_a_keep_alive_connection_whose_next_request_stalls(server):
    with connect(server.port) as sock:
        sock.sendall(HEALTH)
        assert read_answer(sock).startswith(b"HTTP/1.1 200 ")
        sock.sendall(HALF_SENT)
        assert_timed_out(sock, SERVER_BOUND_S)


@pytest.mark.slow
def test_the_bound_holds_with_several_workers(tmp_path):
    server = ServerProcess(
        tmp_path, argv=[sys.executable, str(MAIN), "--workers", "2"], IRIS_HEADER_TIMEOUT_S=str(SERVER_BOUND_S)
    )
    try:
        server.wait_healthy(90)
        # The workers are spawned: each 408 naming 2 s (not the default 10 s) is the bound reaching the worker.
        hold_half_sent_headers(server, 20)
    finally:
        server.stop(grace_s=30)

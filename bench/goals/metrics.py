"""Issue 14 (part 4): what the Prometheus metrics cost /predict: at most 10% of its throughput.

Two servers of their own, each in an empty directory with the default settings but one: IRIS_METRICS=1
(the default: the request-metrics middleware, the prediction counters, prometheus-client's multiprocess
files) and IRIS_METRICS=0 (nothing counted, no middleware). Each trains the default Iris model (100
trees); then wrk loads /predict at 16 connections, as goal 1 does, alternating between the two servers
(and which goes first), both servers' tracking backlogs cleared before every run. The figure is the ratio
of the medians: PASS when metrics on keeps at least 90% of the throughput with metrics off.

Then GET /metrics on the first must count the /predict answers wrk received (plus at most one request
in flight per connection when a run stopped), and answer 404 on the second.

On a shared 2-core machine two wrk runs of the same server can differ by more than the cost sought, so
an informational row measures that cost where it runs, as the edge-guard goal does: in a fresh process
in multiprocess mode, the request-metrics middleware in front of an ASGI app that does nothing, against
that app alone, plus one `count_predictions` call, and compares it with the time one serving process
spends on a /predict at the metrics-off server's median throughput.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from bench.config import MAIN, OUR_BODY, PYTHON, ROOT
from bench.console import log
from bench.context import Context
from bench.report import Row, fmt_ms, fmt_rps, median, throughput, verdict
from bench.servers import Server, base_env, free_port, http, wait_drained
from bench.wrk import WrkResult, run_wrk, write_lua

MAX_COST = 0.10  # of /predict's throughput
CONNECTIONS = 16
THREADS = 2
EXTRA_REPS = 2  # over the load goal's: two servers alternate, and the difference sought is small

# Run by the venv's python in a fresh process whose PROMETHEUS_MULTIPROC_DIR is set, as a server's is:
# microseconds a request the metrics add (middleware and counters), median of alternated repeats.
_IN_PROCESS_CODE = """
import asyncio, json, statistics, time
from iris_platform import metrics
from iris_platform.api.middleware.request_metrics import RequestMetrics

assert metrics.MULTIPROCESS
CALLS, REPEATS = 20_000, 7
START = {"type": "http.response.start", "status": 200, "headers": []}
BODY = {"type": "http.response.body", "body": b""}
SCOPE = {"type": "http", "method": "POST", "path": "/predict", "root_path": "", "headers": []}

async def bare(scope, receive, send):
    await send(START)
    await send(BODY)

async def counting(scope, receive, send):  # what the service adds to a single prediction
    metrics.count_predictions("1", {"setosa": 1})
    await bare(scope, receive, send)

async def send(message):
    pass

async def receive():
    return {"type": "http.request", "body": b""}

async def timed(app):
    start = time.perf_counter()
    for _ in range(CALLS):
        await app(SCOPE, receive, send)
    return (time.perf_counter() - start) / CALLS * 1e6

async def main():
    wrapped = RequestMetrics(counting)
    differences = []
    for _ in range(REPEATS):
        differences.append(await timed(wrapped) - await timed(bare))
    print(json.dumps({"us": statistics.median(differences)}))

asyncio.run(main())
"""


def metrics_server(workdir: Path, on: bool) -> Server:
    port = free_port()
    env = {**base_env(), "IRIS_METRICS": "1" if on else "0"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # each server makes a private folder of its own
    name = f"ours metrics {'on' if on else 'off'}"
    return Server(name, [str(PYTHON), str(MAIN), "--port", str(port)], workdir, env, port, "/health")


def _train(server: Server) -> None:
    status, body = http(
        "POST", server.url + "/train", b"n_estimators=100", {"content-type": "application/x-www-form-urlencoded"}
    )
    if status != 200:
        raise RuntimeError(f"training on {server.name} answered HTTP {status}: {body[:200]!r}")


def run(ctx: Context) -> None:
    cfg = ctx.cfg
    servers: dict[str, Server] = {}
    for key, on in (("on", True), ("off", False)):
        workdir = ctx.mkdtemp(f"bench-metrics-{key}-")
        servers[key] = ctx.launch(metrics_server(workdir, on))
    try:
        for server in servers.values():
            log(f"metrics: {server.name} in {server.cwd}: answered /health {server.wait_ready(180):.1f} s after spawn")
            _train(server)
        lua = write_lua(servers["on"].cwd / "ours.lua", OUR_BODY)
        runs: dict[str, list[WrkResult]] = {"on": [], "off": []}
        for i in range(cfg.our_reps + EXTRA_REPS):
            order = ("on", "off") if i % 2 == 0 else ("off", "on")  # neither always runs on a warmer machine
            for key in order:
                server = servers[key]
                for other in servers.values():  # both: the other's tracking worker would share the CPU
                    if wait_drained(other, ctx.health_warnings, cfg.settle_max) is None:
                        ctx.note(f"{other.name}: backlog not cleared before load run {i + 1}")
                r = run_wrk(
                    f"metrics {key} c={CONNECTIONS} #{i + 1}",
                    server.url + "/predict",
                    lua,
                    THREADS,
                    CONNECTIONS,
                    cfg.wrk_seconds,
                )
                log("  " + r.brief())
                runs[key].append(r)
                ctx.details.append(r.brief())
                if not server.alive():
                    raise RuntimeError(f"{server.name} exited during the load: {server.log_tail()}")
        _add_rows(ctx, runs)
        _check_scrapes(ctx, servers, runs["on"])
        _in_process_row(ctx, _agg(runs["off"], "rps"))
    finally:
        for server in servers.values():
            ctx.check_server_log(server)
            ctx.stop_server(server)


def _agg(runs: list[WrkResult], attr: str) -> float | None:
    return median(getattr(r, attr) for r in runs if not r.error)


def _add_rows(ctx: Context, runs: dict[str, list[WrkResult]]) -> None:
    on, off = _agg(runs["on"], "rps"), _agg(runs["off"], "rps")
    n = min(len([r for r in runs[key] if not r.error]) for key in runs)
    cost = None if not on or not off else 1 - on / off
    shown = "n/a" if cost is None else f"{fmt_rps(on)} ({cost:+.1%} cost)"
    ctx.add(
        Row(
            "14",
            f"/predict throughput with metrics on (IRIS_METRICS=1) vs off, {CONNECTIONS} connections "
            f"(median of {n}×{ctx.cfg.wrk_seconds} s each, interleaved)",
            shown,
            fmt_rps(off),
            throughput(on, off),
            f"cost ≤ {MAX_COST:.0%}",
            verdict(None if cost is None else cost <= MAX_COST),
        )
    )
    ctx.add(
        Row(
            "14",
            f"/predict p99 with metrics on vs off, {CONNECTIONS} connections",
            fmt_ms(_agg(runs["on"], "p99_ms")),
            fmt_ms(_agg(runs["off"], "p99_ms")),
        )
    )


def _check_scrapes(ctx: Context, servers: dict[str, Server], on_runs: list[WrkResult]) -> None:
    """The scrape counts every /predict answer wrk received; the server with metrics off answers 404."""
    from prometheus_client.parser import text_string_to_metric_families

    status, body = http("GET", servers["on"].url + "/metrics")
    wanted = {"method": "POST", "route": "/predict", "status": "200"}
    counted = 0.0
    if status == 200:
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if sample.name == "iris_http_requests_total" and sample.labels == wanted:
                    counted += sample.value
    off_status, _ = http("GET", servers["off"].url + "/metrics")
    answered = sum(r.ok for r in on_runs if not r.error)
    in_flight = sum(r.connections for r in on_runs if not r.error)
    ok = status == 200 and off_status == 404 and answered <= counted <= answered + in_flight
    ctx.add(
        Row(
            "14",
            "GET /metrics: /predict 200s counted vs wrk's 2xx answers (≤ one in flight per connection when "
            "a run stopped); metrics off: GET /metrics status",
            f"{counted:,.0f} vs {answered:,}; off: HTTP {off_status}",
            target="all counted; off: 404",
            result="PASS" if ok else "FAIL",
        )
    )


def in_process_cost_us() -> float:
    """Microseconds a request the metrics add, measured in a fresh process in multiprocess mode."""
    with tempfile.TemporaryDirectory(prefix="bench-metrics-files-") as folder:
        env = {**base_env(), "PROMETHEUS_MULTIPROC_DIR": folder, "IRIS_METRICS": "1"}
        done = subprocess.run(
            [str(PYTHON), "-c", _IN_PROCESS_CODE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
    if done.returncode != 0:
        raise RuntimeError(f"measuring the metrics in process failed: {done.stderr.strip()[-300:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["us"])


def _in_process_row(ctx: Context, off_rps: float | None) -> None:
    us = in_process_cost_us()
    # One serving process answers on one core: at the median throughput, a /predict takes 1 / req/s of it.
    predict_us = 1e6 / off_rps if off_rps else None
    ctx.add(
        Row(
            "14",
            "the metrics in process, per /predict (the middleware and one prediction count, multiprocess files), "
            "against 1 / the metrics-off throughput (one serving process)",
            f"{us:.1f} µs",
            "n/a" if predict_us is None else f"{predict_us:.0f} µs",
            "n/a" if predict_us is None else f"{us / predict_us:.1%} of a /predict",
        )
    )

"""Issue 10: `--workers 2` against one process and against `mlflow models serve`, every prediction recorded.

A second server (`IRIS_WORKERS=2`) in its own empty directory trains its own model; then wrk loads
/predict at 16 connections on it and on the one-process server of goal 1, interleaved, with each
server's tracking backlog cleared before every run. The anchor is goal 1's `mlflow models serve`
figure at 16 connections, measured in the same run. At the end the two-process server's inference
records in MLflow are counted against its 2xx answers.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.config import INFERENCE_EXPERIMENT, MAIN, PYTHON
from bench.console import log
from bench.context import Context
from bench.goals.drain import read_records
from bench.report import Row, fmt_ms, fmt_rps, median, throughput, verdict
from bench.servers import Server, base_env, free_port, http, http_json, wait_drained
from bench.wrk import WrkResult, run_wrk

WORKERS = 2
TARGET = 100  # times the anchor's throughput at 16 connections


def two_process_server(workdir: Path) -> Server:
    port = free_port()
    env = {**base_env(), "IRIS_WORKERS": str(WORKERS)}
    return Server(
        f"ours --workers {WORKERS}", [str(PYTHON), str(MAIN), "--port", str(port)], workdir, env, port, "/health"
    )


def _both_serve(server: Server, limit: float = 60) -> None:
    """Until every process answers with a model (the one that did not train follows the registry)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        answers = [http_json("GET", server.url + "/health")[1] for _ in range(8)]
        if all(isinstance(a, dict) and a.get("model_version") for a in answers):
            return
        time.sleep(0.5)
    raise RuntimeError(f"not every process of {server.name} served a model within {limit:.0f} s")


def run(ctx: Context) -> None:
    cfg, one = ctx.cfg, ctx.our_server()
    workdir = ctx.mkdtemp("bench-workers-")
    log(f"workers: python main.py with IRIS_WORKERS={WORKERS} in {workdir}")
    two = ctx.launch(two_process_server(workdir))
    start_s = two.wait_ready(180)
    log(f"  answered /health {start_s:.1f} s after spawn")
    status, body = http(
        "POST", two.url + "/train", b"n_estimators=100", {"content-type": "application/x-www-form-urlencoded"}
    )
    if status != 200:
        raise RuntimeError(f"training on the two-process server answered HTTP {status}: {body[:200]!r}")
    _both_serve(two)

    lua = ctx.work() / "ours.lua"  # written by the load goal
    runs: dict[str, list[WrkResult]] = {"one": [], "two": []}
    for i in range(cfg.our_reps):
        for key, server in (("one", one), ("two", two)):
            waited = wait_drained(server, ctx.health_warnings, cfg.settle_max)
            if waited is None:
                ctx.note(f"{server.name}: backlog not cleared before load run {i + 1}")
            r = run_wrk(f"{server.name} c=16 #{i + 1}", server.url + "/predict", lua, 2, 16, cfg.wrk_seconds)
            log("  " + r.brief())
            runs[key].append(r)
            ctx.details.append(r.brief())
            if key == "one":
                ctx.our_predict_runs.append(r)  # goal 2 counts every answer of that server
    drain_s = wait_drained(two, ctx.health_warnings, cfg.drain_wait_max)
    _add_rows(ctx, runs)
    _count(ctx, two, workdir, runs["two"], drained=drain_s is not None)
    ctx.check_server_log(two)
    ctx.stop_server(two)


def _agg(runs: list[WrkResult], attr: str) -> float | None:
    return median(getattr(r, attr) for r in runs if not r.error)


def _add_rows(ctx: Context, runs: dict[str, list[WrkResult]]) -> None:
    two, one, anchor = _agg(runs["two"], "rps"), _agg(runs["one"], "rps"), ctx.anchor_rps16
    n = len([r for r in runs["two"] if not r.error])
    ctx.add(
        Row(
            "10",
            f"throughput, --workers {WORKERS}, 16 connections (median of {n}×{ctx.cfg.wrk_seconds} s; "
            "anchor: mlflow models serve, goal 1)",
            fmt_rps(two),
            fmt_rps(anchor),
            throughput(two, anchor),
            f"≥ {TARGET}× the anchor",
            verdict(None if not two or not anchor else two >= TARGET * anchor),
        )
    )
    ctx.add(
        Row(
            "10",
            f"throughput, --workers {WORKERS} against one process (interleaved, same load)",
            fmt_rps(two),
            fmt_rps(one),
            throughput(two, one),
        )
    )
    ctx.add(
        Row(
            "10",
            f"p99, --workers {WORKERS}, 16 connections",
            fmt_ms(_agg(runs["two"], "p99_ms")),
            fmt_ms(_agg(runs["one"], "p99_ms")),
        )
    )


def _count(ctx: Context, server: Server, workdir: Path, runs: list[WrkResult], drained: bool) -> None:
    """Records in the two-process server's MLflow against its 2xx answers."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir}/mlflow.db")
    experiment = client.get_experiment_by_name(INFERENCE_EXPERIMENT)
    found = read_records(client, experiment.experiment_id) if experiment else None
    records = found.singles + found.window_records if found else 0
    ok_2xx = sum(r.ok for r in runs if not r.error)
    in_flight = sum(r.connections for r in runs)
    diff = records - ok_2xx
    shown = f"{records:,} vs {ok_2xx:,}" + (
        "" if diff == 0 else f" ({diff:+d}; ≤ {in_flight} in flight when wrk stopped)"
    )
    ctx.add(
        Row(
            "10",
            f"--workers {WORKERS}: records in MLflow vs 2xx /predict answers"
            + ("" if drained else " (backlog not drained)"),
            shown,
            target="equal, none lost",
            result="PASS" if 0 <= diff <= in_flight and drained else "FAIL",
        )
    )

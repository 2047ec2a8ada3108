"""Goal 2: logging keeps up under load (the writer's backlog drains) and no inference record is lost."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bench.config import INFERENCE_EXPERIMENT
from bench.console import log
from bench.context import Context
from bench.report import Row, fmt_rps, fmt_s, verdict
from bench.wrk import run_wrk

if TYPE_CHECKING:  # mlflow is imported when the goal runs, not when the bench starts
    from mlflow import MlflowClient


@dataclass
class _Polls:
    """What /health said during the load: backlog sizes, null fields, unanswered polls."""

    seen: list[int] = field(default_factory=list)
    nulls: int = 0
    unanswered: int = 0


def run(ctx: Context) -> None:
    cfg, ours = ctx.cfg, ctx.our_server()
    ctx.settle()
    secs = cfg.drain_load_seconds
    log(f"goal 2: {secs} s of wrk -c16 on /predict, /health polled every second")
    polls = _Polls()
    stop = threading.Event()
    poller = threading.Thread(target=_poll, args=(ctx, polls, stop), daemon=True)
    poller.start()
    lua = ctx.work() / "ours.lua"  # written by the load goal
    try:
        r = run_wrk("ours c=16 (goal 2 load)", ours.url + "/predict", lua, 2, 16, secs)
    finally:
        stop.set()
        poller.join(10)
    log("  " + r.brief())
    ctx.our_predict_runs.append(r)
    ctx.details.append(r.brief())
    drain_s = ctx.wait_drained(cfg.drain_wait_max)
    _, last_pending = ctx.pending()
    peak = max(polls.seen) if polls.seen else None
    log(f"  {'drained after ' + fmt_s(drain_s) if drain_s is not None else 'not drained'}; largest backlog seen {peak}")
    ctx.add(
        Row(
            "2",
            f"after {secs} s at 16 connections ({fmt_rps(r.rps)}): seconds until pending_inference_records == 0",
            fmt_s(drain_s)
            if drain_s is not None
            else f"not drained in {cfg.drain_wait_max:.0f} s ({last_pending} pending)",
            target="≤ 10 s",
            result=verdict(drain_s is not None and drain_s <= 10),
        )
    )
    extra = []
    if polls.nulls:
        extra.append(f"{polls.nulls} null")
    if polls.unanswered:
        extra.append(f"{polls.unanswered} unanswered")
    ctx.add(
        Row(
            "2",
            "largest writer backlog seen during that load (polled every second"
            + (f"; {', '.join(extra)} polls" if extra else "")
            + ")",
            "n/a" if peak is None else f"{peak:,} records",
        )
    )
    worker = (ctx.health() or {}).get("tracking_worker")
    if worker is not None:
        ctx.details.append(f"tracking worker after goal 2: {json.dumps(worker)}")
    count_records(ctx, drained=drain_s is not None)


def _poll(ctx: Context, polls: _Polls, stop: threading.Event) -> None:
    while not stop.is_set():
        t = time.perf_counter()
        answered, pending = ctx.pending(timeout=3)
        if not answered:
            polls.unanswered += 1
        elif pending is None:
            polls.nulls += 1
        else:
            polls.seen.append(int(pending))
        stop.wait(max(0.0, 1.0 - (time.perf_counter() - t)))


@dataclass
class _Records:
    singles: int = 0
    windows: int = 0
    window_records: int = 0  # the total_samples of the window runs
    missing_total: int = 0  # window runs without total_samples


def read_records(client: MlflowClient, experiment_id: str) -> _Records:
    """Page through the inference runs of both kinds (bounded to 300 s)."""
    from mlflow.entities import ViewType

    found = _Records()
    start = time.perf_counter()
    for kind in ("single", "single_window"):
        token = None
        while True:
            page = client.search_runs(
                [experiment_id],
                filter_string=f"params.prediction_type = '{kind}'",
                run_view_type=ViewType.ACTIVE_ONLY,
                max_results=50000,
                page_token=token,
            )
            for run in page:
                if kind == "single":
                    found.singles += 1
                    continue
                found.windows += 1
                total = run.data.metrics.get("total_samples")
                if total is None:
                    found.missing_total += 1
                else:
                    found.window_records += int(total)
            token = page.token
            if not token or time.perf_counter() - start > 300:
                break
    return found


def count_records(ctx: Context, drained: bool) -> None:
    """Records in MLflow against every 2xx /predict response of the whole run (see bench/README.md)."""
    from mlflow import MlflowClient

    log("goal 2: counting inference records in MLflow")
    client = MlflowClient(tracking_uri=f"sqlite:///{ctx.work()}/mlflow.db")
    experiment = client.get_experiment_by_name(INFERENCE_EXPERIMENT)
    if experiment is None:
        ctx.add(
            Row(
                "2",
                "records in MLflow == successful /predict responses",
                "no iris_inference experiment",
                target="equal",
                result="FAIL",
            )
        )
        return
    start = time.perf_counter()
    found = read_records(client, experiment.experiment_id)
    count_s = time.perf_counter() - start
    singles, windows, window_records = found.singles, found.windows, found.window_records
    records = singles + window_records
    runs = ctx.our_predict_runs
    ok_2xx = sum(r.ok for r in runs if not r.error) + ctx.extra_predict_ok
    non_2xx = sum(r.non_2xx for r in runs)
    sock = sum(r.socket_error_total for r in runs)
    sock_lost = sum(r.socket_errors.get(k, 0) for r in runs for k in ("connect", "read", "write"))
    # wrk stops with up to one request per connection in flight: the server may answer (and log)
    # it after wrk stopped counting. A read/write socket error can hide a response the same way.
    in_flight = sum(r.connections for r in runs) + sock_lost
    diff = records - ok_2xx
    log(
        f"  {singles} single runs + {windows} window runs holding {window_records} records = {records}; "
        f"2xx responses counted {ok_2xx}; counted in {count_s:.1f} s"
    )
    if diff == 0:
        result, shown = "PASS", f"{records:,} = {ok_2xx:,} (exact)"
    elif 0 < diff <= in_flight:
        result = "PASS"
        shown = f"{records:,} vs {ok_2xx:,} (+{diff}, ≤ {in_flight} in flight when wrk stopped)"
    else:
        result = "FAIL"
        what = f"{-diff:,} missing" if diff < 0 else f"+{diff:,}, more than the {in_flight} in flight"
        shown = f"{records:,} vs {ok_2xx:,} ({what}{'; not drained' if not drained else ''})"
    ctx.add(
        Row(
            "2",
            f"records in MLflow ({singles:,} single runs + {windows:,} window runs) vs 2xx "
            f"/predict responses over the whole run",
            shown,
            target="equal, none lost",
            result=result,
        )
    )
    ctx.add(
        Row(
            "1–2",
            "HTTP errors over every /predict load run: non-2xx responses, socket errors",
            f"{non_2xx} non-2xx, {sock} socket errors",
            result="PASS" if non_2xx == 0 and sock == 0 else "FAIL",
            target="0",
        )
    )
    if found.missing_total:
        ctx.note(f"{found.missing_total} single_window runs have no total_samples metric; counted as 0")
    ctx.details.append(
        f"goal 2 count: {singles} single + {window_records} in {windows} windows = {records}; "
        f"wrk 2xx {ok_2xx} (incl. {ctx.extra_predict_ok} bench requests), non-2xx {non_2xx}, "
        f"socket errors {sock}; diff {diff:+d}; counting took {count_s:.1f} s"
    )

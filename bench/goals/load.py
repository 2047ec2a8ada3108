"""Goal 1, speed: single /predict latency and throughput with wrk, against `mlflow models serve` (the anchor)."""

from __future__ import annotations

import json

from bench.config import ANCHOR_BODY, CLASSES, OUR_BODY
from bench.console import log
from bench.context import Context
from bench.report import Row, faster, fmt_ms, fmt_rps, median, throughput, verdict
from bench.servers import anchor_server, http
from bench.wrk import WrkResult, run_wrk, write_lua


def start_anchor(ctx: Context) -> None:
    """Serve the model just trained with `mlflow models serve`; its start-up time goes in goal 6's row."""
    model_uri = ctx.trained().uri
    if not model_uri:
        raise RuntimeError("the training response has no model_metadata.mlflow_model_uri")
    log(f"anchor: mlflow models serve -m {model_uri} --env-manager local")
    anchor = ctx.anchor = ctx.launch(anchor_server(ctx.work(), model_uri))
    ctx.anchor_startup_s = anchor.wait_ready(120)
    log(f"  anchor answered /ping {ctx.anchor_startup_s:.1f} s after spawn")
    status, body = http("POST", anchor.url + "/invocations", ANCHOR_BODY.encode(), {"content-type": "application/json"})
    log(f"  anchor /invocations: HTTP {status} {body[:100]!r}")
    if status != 200:
        raise RuntimeError(f"the anchor answered HTTP {status}: {body[:200]!r}")
    check_anchor_answer(body)


# The logged MLflow model answers as /predict: per row, the class name, its confidence, every class's probability.
ANCHOR_COLUMNS = {"predicted_class", "confidence", *(f"prob_{c}" for c in CLASSES)}


def check_anchor_answer(body: bytes) -> None:
    """The anchor's answer to ANCHOR_BODY: one row of ANCHOR_COLUMNS naming an Iris class."""
    try:
        rows = json.loads(body)["predictions"]
        ok = len(rows) == 1 and set(rows[0]) == ANCHOR_COLUMNS and rows[0]["predicted_class"] in CLASSES
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise RuntimeError(f"the anchor's answer is not one row of {sorted(ANCHOR_COLUMNS)}: {body[:300]!r}")


def run(ctx: Context) -> None:
    cfg, ours, workdir = ctx.cfg, ctx.our_server(), ctx.work()
    our_lua = write_lua(workdir / "ours.lua", OUR_BODY)  # the drain goal reuses it
    anchor_lua = write_lua(workdir / "anchor.lua", ANCHOR_BODY)
    status, body = http("POST", ours.url + "/predict", OUR_BODY.encode(), {"content-type": "application/json"})
    log(f"  our /predict: HTTP {status} {body[:160]!r}")
    if status < 400:
        ctx.extra_predict_ok += 1
    else:
        raise RuntimeError(f"our /predict answered HTTP {status}: {body[:200]!r}")

    anchor = ctx.anchor if ctx.anchor is not None and ctx.anchor.alive() else None
    anchor_runs: dict[int, list[WrkResult]] = {1: [], 16: []}
    our_runs: dict[int, list[WrkResult]] = {1: [], 16: []}
    # Interleaved, anchor then ours at each repetition, so that a change in the shared machine's
    # load between the two phases does not skew the ratio. Our writer's backlog is cleared
    # before every run, the anchor's included, so it never steals the anchor's CPU.
    for c, t in ((1, 1), (16, 2)):
        for i in range(max(cfg.our_reps, cfg.anchor_reps if anchor is not None else 0)):
            if anchor is not None and i < cfg.anchor_reps:
                ctx.settle()
                r = run_wrk(f"anchor c={c} #{i + 1}", anchor.url + "/invocations", anchor_lua, t, c, cfg.wrk_seconds)
                log("  " + r.brief())
                anchor_runs[c].append(r)
            if i < cfg.our_reps:
                ctx.settle()
                r = run_wrk(f"ours c={c} #{i + 1}", ours.url + "/predict", our_lua, t, c, cfg.wrk_seconds)
                log("  " + r.brief())
                our_runs[c].append(r)
                ctx.our_predict_runs.append(r)
                if not ours.alive():
                    raise RuntimeError(f"our server exited during the load: {ours.log_tail()}")
    if anchor is not None:
        ctx.check_server_log(anchor)
        ctx.stop_server(anchor)
        ctx.anchor = None
    _add_rows(ctx, our_runs, anchor_runs)


def _agg(runs: list[WrkResult], attr: str) -> float | None:
    return median(getattr(r, attr) for r in runs if not r.error)


def _add_rows(ctx: Context, our_runs: dict[int, list[WrkResult]], anchor_runs: dict[int, list[WrkResult]]) -> None:
    o1, a1 = our_runs[1], anchor_runs[1]
    o16, a16 = our_runs[16], anchor_runs[16]

    def n(runs: list[WrkResult]) -> str:
        return f"{len([r for r in runs if not r.error])}×{ctx.cfg.wrk_seconds} s"

    p50 = ctx.our_p50_1 = _agg(o1, "p50_ms")
    ctx.add(
        Row(
            "1",
            f"single /predict p50, 1 connection (median of {n(o1)}; anchor {n(a1)})",
            fmt_ms(p50),
            fmt_ms(_agg(a1, "p50_ms")),
            faster(p50, _agg(a1, "p50_ms")),
            "≤ 1.5 ms",
            verdict(None if p50 is None else p50 <= 1.5),
        )
    )
    ctx.add(
        Row(
            "1",
            "throughput, 1 connection",
            fmt_rps(_agg(o1, "rps")),
            fmt_rps(_agg(a1, "rps")),
            throughput(_agg(o1, "rps"), _agg(a1, "rps")),
        )
    )
    r16, ar16 = _agg(o16, "rps"), _agg(a16, "rps")
    ctx.anchor_rps16 = ar16  # the workers goal's anchor
    ok16 = None if not r16 or not ar16 else r16 >= 40 * ar16
    ctx.add(
        Row(
            "1",
            f"throughput, 16 connections (median of {n(o16)}; anchor {n(a16)})",
            fmt_rps(r16),
            fmt_rps(ar16),
            throughput(r16, ar16),
            "≥ 40× the anchor",
            verdict(ok16),
        )
    )
    p99 = _agg(o16, "p99_ms")
    ctx.add(
        Row(
            "1",
            "p99, 16 connections",
            fmt_ms(p99),
            fmt_ms(_agg(a16, "p99_ms")),
            faster(p99, _agg(a16, "p99_ms")),
            "≤ 30 ms",
            verdict(None if p99 is None else p99 <= 30),
        )
    )
    ctx.add(
        Row(
            "1",
            "p50, 16 connections",
            fmt_ms(_agg(o16, "p50_ms")),
            fmt_ms(_agg(a16, "p50_ms")),
            faster(_agg(o16, "p50_ms"), _agg(a16, "p50_ms")),
        )
    )
    for runs in (a1, a16, o1, o16):
        for r in runs:
            ctx.details.append(r.brief())

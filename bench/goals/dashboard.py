"""Goal 5: the dashboard's runs listing and summary over 20,200 runs, against paging MlflowClient.search_runs."""

from __future__ import annotations

import json
import time
import urllib.error
from pathlib import Path
from typing import Any

from bench.config import INFERENCE_EXPERIMENT, TRAINING_EXPERIMENT, Config
from bench.console import log
from bench.context import Context
from bench.populate import populate
from bench.report import Row, faster, fmt_ms, median, verdict
from bench.servers import Server, http_json, our_server

RUNS_PATH = "/mlflow/runs?max_results=50"
SUMMARY_PATH = "/mlflow/summary"


def _client(workdir: Path) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{workdir}/mlflow.db")


def anchor_count(workdir: Path, exp_ids: dict[str, str]) -> tuple[float, int, int]:
    """The anchor of the summary: (seconds, training runs, inference runs) counted 1,000 a page."""
    from mlflow.entities import ViewType

    client = _client(workdir)
    start = time.perf_counter()
    counts = []
    for name in (TRAINING_EXPERIMENT, INFERENCE_EXPERIMENT):
        token, n = None, 0
        while True:
            page = client.search_runs(
                [exp_ids[name]], run_view_type=ViewType.ACTIVE_ONLY, max_results=1000, page_token=token
            )
            n += len(page)
            token = page.token
            if not token or time.perf_counter() - start > 600:
                break
        counts.append(n)
    return time.perf_counter() - start, counts[0], counts[1]


def anchor_newest(workdir: Path, exp_ids: dict[str, str], reps: int) -> float | None:
    """Median seconds of search_runs for the newest 50 runs, after one warm-up."""
    from mlflow.entities import ViewType

    client = _client(workdir)
    ids = list(exp_ids.values())
    times = []
    for _ in range(reps + 1):
        start = time.perf_counter()
        client.search_runs(
            ids, run_view_type=ViewType.ACTIVE_ONLY, max_results=50, order_by=["attributes.start_time DESC"]
        )
        times.append(time.perf_counter() - start)
    return median(times[1:])


def time_get(cfg: Config, server: Server, path: str, warmups: int, samples: int) -> tuple[list[float], Any, list[str]]:
    """Latency of GET path in seconds: `samples` timings after `warmups`, within the time budget."""
    budget_end = time.perf_counter() + cfg.query_budget
    times: list[float] = []
    errors: list[str] = []
    body: Any = None
    for i in range(warmups + samples):
        if time.perf_counter() > budget_end and (times or i >= warmups + 1):
            break
        start = time.perf_counter()
        try:
            status, body = http_json("GET", server.url + path, timeout=cfg.query_budget + 30)
        except (OSError, urllib.error.URLError) as exc:
            errors.append(str(exc))
            continue
        elapsed = time.perf_counter() - start
        if status != 200:
            errors.append(f"HTTP {status}: {str(body)[:200]}")
            continue
        if i >= warmups:
            times.append(elapsed)
    return times, body, errors


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else 1000 * seconds


def run(ctx: Context) -> Path:
    """The rows of goal 5 on a sqlite store; the populated store's folder, which the next goal reuses."""
    cfg = ctx.cfg
    total = cfg.dash_inference_runs + cfg.dash_training_runs
    workdir = ctx.mkdtemp("iris-bench-dash-")
    log(
        f"goal 5: populating a second store with {cfg.dash_inference_runs:,} inference and "
        f"{cfg.dash_training_runs} training runs"
    )
    start = time.perf_counter()
    exp_ids = populate(cfg, workdir)
    log(f"  populated and verified in {time.perf_counter() - start:.1f} s")
    server = ctx.launch(our_server(workdir, "ours-dashboard"))
    try:
        up = server.wait_ready(60)
        log(f"  server on the populated store answered /health after {up:.1f} s")
        runs_t, runs_body, runs_err = time_get(cfg, server, RUNS_PATH, 2, cfg.runs_samples)
        log(
            f"  GET {RUNS_PATH}: {len(runs_t)} timings, median {fmt_ms(_ms(median(runs_t)))}"
            + (f"; errors {runs_err[:2]}" if runs_err else "")
        )
        sum_t, sum_body, sum_err = time_get(cfg, server, SUMMARY_PATH, 1, cfg.summary_samples)
        log(
            f"  GET /mlflow/summary: {len(sum_t)} timings, median "
            f"{fmt_ms(_ms(median(sum_t)))}" + (f"; errors {sum_err[:2]}" if sum_err else "")
        )
    finally:
        ctx.check_server_log(server)
        ctx.stop_server(server)
    log(f"  anchor: counting runs by paging search_runs (1000 a page) x{cfg.anchor_count_reps}")
    counts = [anchor_count(workdir, exp_ids) for _ in range(cfg.anchor_count_reps)]
    anchor_count_s = median(c[0] for c in counts)
    log(f"  paging count: {', '.join(f'{c[0]:.1f} s ({c[1]}+{c[2]})' for c in counts)}")
    newest_s = anchor_newest(workdir, exp_ids, 5)

    runs_ms = _ms(median(runs_t))
    anchor_runs_ms = None if newest_s is None or anchor_count_s is None else 1000 * (newest_s + anchor_count_s)
    runs_ok = runs_ms is not None and runs_ms <= 150
    total_ok = (
        isinstance(runs_body, dict) and runs_body.get("total") == total and len(runs_body.get("runs") or []) == 50
    )
    problems: list[str] = []
    if not total_ok:
        got_total = runs_body.get("total") if isinstance(runs_body, dict) else runs_body
        got_runs = len(runs_body.get("runs") or []) if isinstance(runs_body, dict) else 0
        problems.append(f"runs response: total {got_total!r}, {got_runs} runs (want total {total}, 50 runs)")
    ctx.add(
        Row(
            "5",
            f"GET /mlflow/runs?max_results=50 over {total:,} runs (median of {len(runs_t)}; "
            "anchor: search_runs newest 50 + total by paging, in process)",
            fmt_ms(runs_ms) + ("" if total_ok else " (wrong total)"),
            fmt_ms(anchor_runs_ms),
            faster(runs_ms, anchor_runs_ms),
            "≤ 150 ms",
            "FAIL" if runs_ms is None else verdict(runs_ok and total_ok),
        )
    )
    sum_ms = _ms(median(sum_t))
    anchor_sum_ms = _ms(anchor_count_s)
    want = {"total_runs": total, "training_runs": cfg.dash_training_runs, "inference_runs": cfg.dash_inference_runs}
    got = {k: sum_body.get(k) for k in want} if isinstance(sum_body, dict) else {}
    counts_ok = got == want
    acc = sum_body.get("avg_accuracy") if isinstance(sum_body, dict) else None
    if not counts_ok:
        problems.append(f"summary counts {got} (want {want})")
    if acc is None:
        problems.append("summary has no avg_accuracy")
    ctx.add(
        Row(
            "5",
            f"GET /mlflow/summary (median of {len(sum_t)}; anchor: counting by paging "
            f"search_runs, median of {len(counts)})",
            fmt_ms(sum_ms) + ("" if counts_ok else " (wrong counts)"),
            fmt_ms(anchor_sum_ms),
            faster(sum_ms, anchor_sum_ms),
            "≤ 300 ms",
            "FAIL" if sum_ms is None else verdict(sum_ms <= 300 and counts_ok),
        )
    )
    ctx.add(
        Row(
            "5",
            "counts correct: runs total, summary total/training/inference runs, avg_accuracy present",
            "ok" if not problems else "; ".join(problems)[:300],
            target="yes",
            result="PASS" if not problems else "FAIL",
        )
    )
    ctx.details.append(f"/mlflow/runs timings (ms): {', '.join(f'{1000 * t:.0f}' for t in runs_t)}")
    ctx.details.append(
        f"/mlflow/summary timings (ms): {', '.join(f'{1000 * t:.0f}' for t in sum_t)}; "
        f"body {json.dumps(sum_body)[:300] if sum_body is not None else None}"
    )
    ctx.details.append(
        f"anchor newest-50 search_runs {fmt_ms(1000 * newest_s) if newest_s else 'n/a'}; "
        f"paging counts {[(round(c[0], 2), c[1], c[2]) for c in counts]}"
    )
    for e in (runs_err + sum_err)[:3]:
        ctx.note(f"dashboard query error: {e}")
    return workdir

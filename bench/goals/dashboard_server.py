"""Goal 5 through a remote `mlflow server`: the same queries, our server on MLFLOW_TRACKING_URI=http://...,
with IRIS_QUERY_DATABASE_URI (SQL over the database behind the server) and, as the anchor, without it
(MLflow's search, paging through every run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.config import MLFLOW, Config
from bench.console import log
from bench.context import Context
from bench.goals.dashboard import RUNS_PATH, SUMMARY_PATH, time_get
from bench.populate import populate
from bench.report import Row, faster, fmt_ms, median, verdict
from bench.servers import Server, base_env, free_port, our_server

RUNS_TARGET_MS = 150
SUMMARY_TARGET_MS = 300
# Requests before the timed ones: for its first seconds our server imports scikit-learn in a warm-up
# thread (on 2 CPUs, every request then waits), and each of the mlflow server's 4 workers answers its
# first search slowly. Both are long-running in a deployment: the steady state is what is measured.
WARMUPS = 10


def mlflow_server(store: Path, workdir: Path) -> Server:
    """`mlflow server` on the populated store (not started), with its default 4 workers."""
    port = free_port()
    env = base_env()
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no job runner: tracking only
    argv = [str(MLFLOW), "server", "--backend-store-uri", f"sqlite:///{store}/mlflow.db"]
    argv += ["--artifacts-destination", str(workdir / "artifacts"), "--host", "127.0.0.1", "--port", str(port)]
    return Server("mlflow-server", argv, workdir, env, port, "/health")


def _ms(times: list[float]) -> float | None:
    m = median(times)
    return None if m is None else 1000 * m


class Measured:
    """Our server on the remote tracking server, with or without the query database: both endpoints timed."""

    def __init__(self, runs: tuple[list[float], Any, list[str]], summary: tuple[list[float], Any, list[str]]):
        self.runs_t, self.runs_body, self.runs_err = runs
        self.sum_t, self.sum_body, self.sum_err = summary

    def problems(self, cfg: Config) -> list[str]:
        total = cfg.dash_inference_runs + cfg.dash_training_runs
        found = []
        body = self.runs_body
        if not (isinstance(body, dict) and body.get("total") == total and len(body.get("runs") or []) == 50):
            got = (body.get("total"), len(body.get("runs") or [])) if isinstance(body, dict) else str(body)[:100]
            found.append(f"runs response {got} (want total {total}, 50 runs)")
        want = {"total_runs": total, "training_runs": cfg.dash_training_runs, "inference_runs": cfg.dash_inference_runs}
        body = self.sum_body
        got_counts = {k: body.get(k) for k in want} if isinstance(body, dict) else {}
        if got_counts != want:
            found.append(f"summary counts {got_counts} (want {want})")
        elif body.get("avg_accuracy") is None:
            found.append("summary has no avg_accuracy")
        return found


def measure(
    ctx: Context, tracking_url: str, query_db: str | None, name: str, samples: tuple[int, int, int]
) -> Measured:
    """Start our server on the tracking server, time the runs page and the summary, stop it."""
    warmups, runs_n, summary_n = samples
    server = our_server(ctx.mkdtemp(f"iris-bench-{name}-"), name)
    server.env["MLFLOW_TRACKING_URI"] = tracking_url
    if query_db:
        server.env["IRIS_QUERY_DATABASE_URI"] = query_db
    ctx.launch(server)
    try:
        up = server.wait_ready(60)
        log(f"  {name} answered /health after {up:.1f} s")
        runs = time_get(ctx.cfg, server, RUNS_PATH, warmups, runs_n)
        log(f"  {name} GET {RUNS_PATH}: {len(runs[0])} timings, median {fmt_ms(_ms(runs[0]))}")
        summary = time_get(ctx.cfg, server, SUMMARY_PATH, min(warmups, 1), summary_n)
        log(f"  {name} GET {SUMMARY_PATH}: {len(summary[0])} timings, median {fmt_ms(_ms(summary[0]))}")
    finally:
        ctx.check_server_log(server)
        ctx.stop_server(server)
    return Measured(runs, summary)


def run(ctx: Context, store: Path | None) -> None:
    """`store`: the dashboard goal's populated store, if it got that far (else a new one is populated)."""
    cfg = ctx.cfg
    total = cfg.dash_inference_runs + cfg.dash_training_runs
    if store is None or not (store / "mlflow.db").exists():
        store = ctx.mkdtemp("iris-bench-dash-")
        log(f"goal 5 (mlflow server): populating a store with {total:,} runs")
        populate(cfg, store)
    tracking = ctx.launch(mlflow_server(store, ctx.mkdtemp("iris-bench-mlflow-server-")))
    try:
        up = tracking.wait_ready(180)
        log(f"goal 5 (mlflow server): mlflow server on the populated store answered /health after {up:.1f} s")
        query_db = f"sqlite:///{store}/mlflow.db"
        sql = measure(ctx, tracking.url, query_db, "ours-query-db", (WARMUPS, cfg.runs_samples, cfg.summary_samples))
        # The anchor: the same server without the query database pages through every run, ~30 s a request.
        reps = cfg.anchor_count_reps
        search = measure(ctx, tracking.url, None, "ours-search", (0, reps, reps))
    finally:
        ctx.stop_server(tracking)

    problems = sql.problems(cfg)
    ok = not problems
    runs_ms, search_runs_ms = _ms(sql.runs_t), _ms(search.runs_t)
    ctx.add(
        Row(
            "5",
            f"through a remote mlflow server, with IRIS_QUERY_DATABASE_URI: GET /mlflow/runs?max_results=50 over "
            f"{total:,} runs (median of {len(sql.runs_t)}; anchor: the same server without it, MLflow's search, "
            f"median of {len(search.runs_t)})",
            fmt_ms(runs_ms),
            fmt_ms(search_runs_ms),
            faster(runs_ms, search_runs_ms),
            f"≤ {RUNS_TARGET_MS} ms",
            "FAIL" if runs_ms is None else verdict(runs_ms <= RUNS_TARGET_MS and ok),
        )
    )
    sum_ms, search_sum_ms = _ms(sql.sum_t), _ms(search.sum_t)
    ctx.add(
        Row(
            "5",
            f"through a remote mlflow server, with IRIS_QUERY_DATABASE_URI: GET /mlflow/summary (median of "
            f"{len(sql.sum_t)}; anchor: without it, median of {len(search.sum_t)})",
            fmt_ms(sum_ms),
            fmt_ms(search_sum_ms),
            faster(sum_ms, search_sum_ms),
            f"≤ {SUMMARY_TARGET_MS} ms",
            "FAIL" if sum_ms is None else verdict(sum_ms <= SUMMARY_TARGET_MS and ok),
        )
    )
    search_problems = search.problems(cfg)
    ctx.add(
        Row(
            "5",
            "through a remote mlflow server: runs total and summary counts correct, with the query database "
            "(without it, for information)",
            ("ok" if ok else "; ".join(problems)[:300])
            + (" (without: ok)" if not search_problems else f" (without: {'; '.join(search_problems)[:200]})"),
            target="yes",
            result=verdict(ok),
        )
    )
    for label, measured in (("with", sql), ("without", search)):
        ctx.details.append(
            f"through the mlflow server, {label} IRIS_QUERY_DATABASE_URI: /mlflow/runs timings (ms) "
            f"{', '.join(f'{1000 * t:.0f}' for t in measured.runs_t)}; /mlflow/summary timings (ms) "
            f"{', '.join(f'{1000 * t:.0f}' for t in measured.sum_t)}"
        )
        for e in (measured.runs_err + measured.sum_err)[:3]:
            ctx.note(f"dashboard query error through the mlflow server ({label} the query database): {e}")

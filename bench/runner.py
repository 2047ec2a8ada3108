"""The order of the goals, what happens when one fails, and the command line."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import bench
from bench.config import PYTHON, RESULTS, Config
from bench.console import log
from bench.context import Context
from bench.goals import (
    batch,
    dashboard,
    dashboard_server,
    drain,
    edge_guard,
    load,
    memory,
    metrics,
    parity,
    spark,
    startup,
    train,
    workers,
)
from bench.report import publish, render

Step = tuple[str, Callable[[Context], None], bool]  # name, step, whether the later steps need it


def steps(cfg: Config) -> list[Step]:
    found: list[Step] = [
        ("start-up", startup.run, True),
        ("training", train.run, True),
        ("parity", parity.run, False),
        ("anchor start", load.start_anchor, False),
        ("load", load.run, True),
        ("edge guard", edge_guard.run, False),
        ("workers", workers.run, False),
        ("goal 2", drain.run, False),
        ("batch", batch.run, False),
    ]
    if cfg.big:
        found.append(("10M batch", batch.run_big, False))
    found.append(("metrics", metrics.run, False))  # two servers of their own
    found.append(("memory", memory.run, False))  # a server of its own; minutes of one-core training
    found.append(("spark", spark.run, False))  # no server: the command line, on a store of its own
    return found


# The goals that start and stop their own servers, which `--only` runs alone.
ALONE: dict[str, Callable[[Context], None]] = {"memory": memory.run, "metrics": metrics.run, "spark": spark.run}


def run(ctx: Context, only: str | None = None) -> None:
    if only in ALONE:
        run_alone(ctx, only)
        return
    if only != "dashboard":
        run_server_goals(ctx)
    # The dashboard goal has its own store and servers: it runs even when the others failed.
    store: Path | None = None
    try:
        store = dashboard.run(ctx)
    except Exception as exc:
        ctx.note(f"dashboard step failed: {type(exc).__name__}: {exc}")
        log(traceback.format_exc())
    try:
        dashboard_server.run(ctx, store)  # the same store behind a remote mlflow server
    except Exception as exc:
        ctx.note(f"dashboard through an mlflow server failed: {type(exc).__name__}: {exc}")
        log(traceback.format_exc())
    for w in sorted(ctx.health_warnings):
        ctx.note(w)


def run_alone(ctx: Context, name: str) -> None:
    """One goal of ALONE: issue 13's memory, issue 14's metrics cost, issue 16's Spark batch."""
    try:
        ALONE[name](ctx)
    except Exception as exc:
        ctx.note(f"{name} failed: {type(exc).__name__}: {exc}")
        log(traceback.format_exc())


def run_server_goals(ctx: Context) -> None:
    """Goals 1 to 4 and 6, on one server in an empty directory."""
    for name, step, required in steps(ctx.cfg):
        try:
            step(ctx)
        except Exception as exc:
            ctx.note(f"{name} failed: {type(exc).__name__}: {exc}")
            log(traceback.format_exc())
            if required:
                ctx.note("skipping the steps that need it")
                break
        if ctx.ours is not None and not ctx.ours.alive():
            ctx.note(f"our server exited (code {ctx.ours.returncode}): {ctx.ours.log_tail()}")
            break
    startup.add_row(ctx)
    if ctx.ours is not None:
        ctx.check_server_log(ctx.ours)
        ctx.stop_server(ctx.ours)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    if PYTHON.exists() and Path(sys.prefix).resolve() != PYTHON.parent.parent.resolve():
        # The bench imports the venv's mlflow and pandas.
        os.execv(str(PYTHON), [str(PYTHON), "-m", "bench", *sys.argv[1:]])
    parser = argparse.ArgumentParser(prog="python -m bench", description=(bench.__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a ~2-minute smoke run: shorter loads, fewer repetitions")
    parser.add_argument("--big", action="store_true", help="also upload a 10,000,000-row CSV (about 260 MB)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories (logs, databases)")
    parser.add_argument(
        "--only",
        choices=["dashboard", "memory", "metrics", "spark"],
        help="run one goal only (dashboard: goal 5, on sqlite and through an mlflow server, ~3 min; memory: "
        "issue 13's memory after a 1,000-tree training, ~5 min; metrics: issue 14's cost of the Prometheus "
        "metrics on /predict, ~3 min; spark: issue 16's 10,000,000 rows on Spark against one process, ~10 min); "
        "the table is then printed, and written only where --output says",
    )
    parser.add_argument("--output", type=Path, default=None, help=f"where to write the table (default {RESULTS})")
    args = parser.parse_args()
    output: Path | None = args.output or (None if args.only else RESULTS)
    if args.only not in ("memory", "spark") and shutil.which("wrk") is None:  # these goals send no load
        print("wrk is not installed: `apt-get install wrk` (make bench does it)", file=sys.stderr)
        return 2
    if not PYTHON.exists():
        print(f"{PYTHON} is missing: run `make bench` (it creates the venv)", file=sys.stderr)
        return 2
    ctx = Context(Config.make(args.quick, args.big), keep=args.keep)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        run(ctx, only=args.only)
    except KeyboardInterrupt:
        ctx.note("interrupted")
    finally:
        ctx.cleanup()
    text = render(ctx.cfg, ctx.rows, ctx.notes, ctx.details)
    if output is None:  # a partial run does not replace the full table
        print(text)
    else:
        publish(text, output)
        log(f"wrote {output}")
    return 0

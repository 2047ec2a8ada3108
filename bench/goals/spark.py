"""Issue 16 (part 5): a 10,000,000-row batch through Spark `local[2]` against the single-process streaming path.

Both run as a user runs them, on the same CSV file (goal 3's generator: four features and a string
`sample_id`, about 260 MB), in a store of their own where `iris-platform train` made the default model
(100 trees) champion:

- `iris-platform batch FILE`: one process, pyarrow's CSV reader, the compiled model, the predictions
  CSV streamed to disk and logged as the run's artifact;
- `iris-platform batch FILE --engine spark --master local[2]`: Spark's JVM and Python workers, the MLflow
  model through `spark_udf`, a Parquet folder, statistics and drift as Spark jobs, a sample and a
  manifest logged.

The two alternate, `REPS` times each (the single process first); rows a second is rows over the whole
command's wall time, start-up included, medians. Their statistics must agree (class counts equal).

The billion-row estimate: the passes of `local[2]` over the rows (the answer's `seconds`: read, score and
write, then statistics and drift), with the machine's two cores busy, gives a core's share of the rate. One more run on
`local[1]` shows why a single task is no per-core figure: Spark's JVM reads and writes while the task's
Python worker scores, so one task already keeps more than one core busy. The job is map-only (no
shuffle), so a cluster of `CLUSTER_CORES` executor cores at the same per-core rate scores 10^9 rows in
10^9 / (cores × rate) seconds, plus the phases that do not grow with the rows as measured here
(fetching the model, starting Spark, recording the run), an optimistic floor for a cluster's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.config import VENV_BIN
from bench.console import log
from bench.context import Context
from bench.goals.batch import make_csv
from bench.report import Row, fmt_s, median, throughput, verdict

FULL_ROWS = 10_000_000
QUICK_ROWS = 1_000_000
REPS = 3
QUICK_REPS = 1
BILLION = 1_000_000_000
CLUSTER_CORES = 100  # e.g. 25 executors of 4 cores
TIMEOUT_S = 1800.0
# The phases of the Spark answer's `seconds` that pass over the rows (the others do not grow with them).
PASSES = ("score_and_write", "statistics_and_drift")


def _cpu_ticks() -> tuple[int, int]:
    """The machine's busy and total CPU ticks since boot (/proc/stat), every core summed."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


def _command(env: dict[str, str], args: list[str]) -> tuple[float, dict[str, Any]]:
    """Run `iris-platform ARGS --json`; its wall time and its answer, with `cores_busy` added: the
    machine's busy cores, on average, while it ran."""
    busy, total = _cpu_ticks()
    start = time.perf_counter()
    done = subprocess.run(
        [str(VENV_BIN / "iris-platform"), *args, "--json"], env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    wall = time.perf_counter() - start
    busy_after, total_after = _cpu_ticks()
    if done.returncode != 0:
        raise RuntimeError(f"iris-platform {' '.join(args[:1])} exited {done.returncode}: {done.stderr.strip()[-400:]}")
    answer: dict[str, Any] = json.loads(done.stdout)
    answer["cores_busy"] = (os.cpu_count() or 1) * (busy_after - busy) / max(total_after - total, 1)
    return wall, answer


def _spark(env: dict[str, str], table: Path, output: Path, master: str) -> tuple[float, dict[str, Any]]:
    try:
        return _command(env, ["batch", str(table), "--engine", "spark", "--master", master, "--output", str(output)])
    finally:
        shutil.rmtree(output, ignore_errors=True)


def _rate(rows: int, seconds: float | None) -> float | None:
    return rows / seconds if seconds else None


def _rows_per_s(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:,.0f} rows/s"


def run(ctx: Context) -> None:
    rows = QUICK_ROWS if ctx.cfg.quick else FULL_ROWS
    reps = QUICK_REPS if ctx.cfg.quick else REPS
    work = ctx.mkdtemp("bench-spark-")
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{work}/mlflow.db",
        "IRIS_MODELS_DIR": str(work / "models"),
        "IRIS_JOURNAL_DIR": str(work / "journal"),
    }
    log("spark: training the champion with the command line")
    _command(env, ["train"])
    table = work / "rows.csv"
    log(f"spark: writing a {rows:,}-row CSV")
    make_csv(table, rows, seed=16)

    single: list[float] = []
    spark: list[float] = []
    scoring: list[float] = []
    fixed: list[float] = []
    busy: list[float] = []
    same = True
    for rep in range(reps):
        wall, local_answer = _command(env, ["batch", str(table)])
        single.append(wall)
        log(f"spark: single process {wall:.1f} s")
        wall, spark_answer = _spark(env, table, work / "predictions", "local[2]")
        spark.append(wall)
        busy.append(spark_answer["cores_busy"])
        seconds = spark_answer["seconds"]
        scoring.append(sum(seconds[k] for k in PASSES))
        fixed.append(sum(v for k, v in seconds.items() if k not in PASSES))
        log(f"spark: local[2] {wall:.1f} s {seconds}")
        counts = [a["batch_statistics"]["prediction_distribution"] for a in (local_answer, spark_answer)]
        totals = [a["total_samples"] for a in (local_answer, spark_answer)]
        if counts[0] != counts[1] or totals != [rows, rows]:
            same = False
            ctx.note(
                f"spark rep {rep}: statistics differ: single {totals[0]} {counts[0]}, spark {totals[1]} {counts[1]}"
            )
    one_core_wall, one_core = _spark(env, table, work / "predictions", "local[1]")
    log(f"spark: local[1] {one_core_wall:.1f} s {one_core['seconds']}")

    single_rate, spark_rate = _rate(rows, median(single)), _rate(rows, median(spark))
    ctx.add(
        Row(
            "16 Spark batch",
            f"{rows:,}-row CSV, `batch --engine spark --master local[2]`, whole command, median of {reps}",
            f"{_rows_per_s(spark_rate)} ({fmt_s(median(spark))})",
            f"single process `batch`: {_rows_per_s(single_rate)} ({fmt_s(median(single))})",
            throughput(spark_rate, single_rate),
            "same statistics",
            verdict(same),
        )
    )
    two_cores = _rate(rows, median(scoring))
    per_core = two_cores / 2 if two_cores else None
    one_task = _rate(rows, sum(one_core["seconds"][k] for k in PASSES))
    ctx.add(
        Row(
            "16 Spark batch",
            "the passes over the rows (read, score, write; statistics and drift): local[2]; a core's share; "
            "local[1] (one task: the JVM's reading and writing overlap its Python worker's scoring)",
            f"{_rows_per_s(two_cores)} on two cores ({median(busy):.1f} busy); {_rows_per_s(per_core)} a core; "
            f"local[1] {_rows_per_s(one_task)} ({one_core['cores_busy']:.1f} cores busy)",
        )
    )
    if per_core:
        scoring_s = BILLION / (CLUSTER_CORES * per_core)
        total_s = scoring_s + (median(fixed) or 0.0)
        ctx.add(
            Row(
                "16 Spark batch",
                f"estimate: 10^9 rows on {CLUSTER_CORES} executor cores at a core's share above (a map-only job: "
                "no shuffle, so it scales with the cores)",
                f"~{total_s / 60:.0f} min ({scoring_s / 60:.1f} min of passes over the rows + {fmt_s(median(fixed))} "
                "start-up and record)",
            )
        )

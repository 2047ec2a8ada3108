"""Issue 13 (part 5): the server's memory after a large training returns close to its level before it.

A server of its own, in an empty directory, first trains the default Iris model (so the one-time costs
of the first training are paid), and its resident memory is read once it has settled: "before". The
server's memory is its serving process's plus its training process's (training_process.py), where the
trainings run; peaks are the sum of the two processes' peaks, an upper bound. Then
`POST /train` with a generated 17 MB table and 1,000 trees (100 with --quick): the peak is the
process's VmHWM (reset just before through /proc/<pid>/clear_refs; where that is refused, the highest
VmRSS sampled every 0.2 s), "after" is VmRSS once it has settled after the answer.

What the server legitimately keeps is the model it now serves: the forest and its two onnxruntime
sessions (single rows and batches). Its size is measured apart, as the growth of a fresh process that
loads the saved model the way the server serves it. "Close" means the settled memory is within 10% of
before + that model; the ratio after/before is shown too, for information.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.config import PYTHON, ROOT
from bench.console import log
from bench.context import Context
from bench.report import Row, fmt_mb, fmt_s, verdict
from bench.servers import Server, http, our_server, proc_status, reset_peak_rss

ROWS = 16_500  # with FEATURES, a ~16.5 MB CSV: 17 MB as the fuzzing run had it
FEATURES = 200
CLASSES = ["alpha", "beta", "gamma", "delta"]
LABEL_NOISE = 0.02  # so that the trees are not trivial
CLOSE = 1.10  # "close": settled memory ≤ 1.10 × (before + the kept model)
SETTLE_MAX_S = 30.0
MB = 1024  # kB

# Run by the venv's python in a fresh process: the memory the model served from the models folder takes.
_MODEL_SIZE_CODE = """
import json, sys
import onnxruntime, sklearn.ensemble  # the libraries are the server's too: imported before the baseline
from iris_platform.memory import release_memory, resident_bytes
from iris_platform.ml.inference import compiled_predictor, training_bounds
from iris_platform.ml.model_store import ModelStore

store = ModelStore(sys.argv[1])
filename = store.current_filename()
release_memory()
before = resident_bytes()
stored = store.load(filename)
predictor, _ = compiled_predictor(stored, training_bounds(stored))
del stored  # the server keeps the Predictor, not the file's bytes
release_memory()
after = resident_bytes()
files = {name: len(data) for name, data in store.files_of(filename).items()}
print(json.dumps({"bytes": after - before, "runtime": predictor.runtime, "files": files}))
"""


@dataclass
class Measured:
    before_kb: int | None = None
    peak_kb: int | None = None
    exact_peak: bool = False
    right_after_kb: int | None = None
    after_kb: int | None = None
    train_s: float | None = None
    model_kb: int | None = None
    model_runtime: str | None = None
    model_files: dict[str, int] = field(default_factory=dict)
    released_mb: float | None = None  # what the server logged handing back after the training
    problems: list[str] = field(default_factory=list)


def make_table(path: Path, rows: int = ROWS, features: int = FEATURES, seed: int = 13) -> None:
    """Numeric features with two decimals and a class column decided by three of them, some labels flipped."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 10, size=(rows, features)).round(2)
    y = (X[:, 0] > 5).astype(int) * 2 + (X[:, 1] + X[:, 2] > 10)
    flip = rng.random(rows) < LABEL_NOISE
    y[flip] = rng.integers(0, len(CLASSES), int(flip.sum()))
    frame = pd.DataFrame(X, columns=[f"m{i:03d}" for i in range(features)])
    frame["species"] = np.asarray(CLASSES)[y]
    frame.to_csv(path, index=False, float_format="%.2f")


def total(pids: list[int], key: str) -> int | None:
    """A /proc status field (kB) summed over the processes, None if one has gone."""
    values = [proc_status(pid, key) for pid in pids]
    return None if None in values else sum(v for v in values if v is not None)


def training_pids(server: Server) -> list[int]:
    """The server's training process (training_process.py), which it names in its log once ready."""
    found = re.findall(r"training-process\[(\d+)\]: ready", server.log_tail(100_000))
    return [int(found[-1])] if found else []


def settled_rss(pids: list[int], limit: float = SETTLE_MAX_S) -> int | None:
    """VmRSS (kB, summed) once three readings 1 s apart are within 2 MB of each other, or the last one after `limit`."""
    readings: list[int] = []
    deadline = time.monotonic() + limit
    while True:
        rss = total(pids, "VmRSS")
        if rss is None:
            return None
        readings.append(rss)
        if len(readings) >= 3 and max(readings[-3:]) - min(readings[-3:]) <= 2 * MB:
            return rss
        if time.monotonic() > deadline:
            return rss
        time.sleep(1.0)


def model_size(models_dir: Path) -> tuple[int, str, dict[str, int]]:
    """(kB, runtime, file sizes) of the current model loaded in a fresh process as the server serves it."""
    done = subprocess.run(
        [str(PYTHON), "-c", _MODEL_SIZE_CODE, str(models_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"measuring the model failed: {done.stderr.strip()[-300:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return int(found["bytes"]) // 1024, str(found["runtime"]), dict(found["files"])


def released_in_log(server: Server) -> float | None:
    """The MB the server's last training logged handing back to the operating system (memory.py)."""
    found = re.findall(r"released (\d+) MB to the operating system", server.log_tail(20_000))
    return float(found[-1]) if found else None


def _train(server: Server, table: Path, trees: int, timeout: float) -> tuple[int, str]:
    argv = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "--max-time", str(int(timeout))]
    argv += ["-F", f"file=@{table};type=text/csv", "-F", f"n_estimators={trees}", server.url + "/train"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 30)
    body, _, status = done.stdout.rpartition("\n")
    return (int(status) if status.isdigit() else 0), (body or done.stderr)[:300]


def measure(ctx: Context, server: Server, table: Path, trees: int) -> Measured:
    m = Measured()
    status, body = http(
        "POST", server.url + "/train", b"n_estimators=100", {"content-type": "application/x-www-form-urlencoded"}
    )
    if status != 200:
        raise RuntimeError(f"the first (Iris) training answered HTTP {status}: {body[:200]!r}")
    # The serving process and the process its trainings run in: the memory a training costs the server.
    pids = [server.pid, *training_pids(server)]
    m.before_kb = settled_rss(pids)
    m.exact_peak = all([reset_peak_rss(pid) for pid in pids])
    sampled: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            rss = total(pids, "VmRSS")
            if rss is not None:
                sampled.append(rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    log(f"  POST /train, {trees:,} trees on {table.stat().st_size / 1e6:.1f} MB (before: {fmt_mb(m.before_kb)})")
    start = time.perf_counter()
    try:
        status, text = _train(server, table, trees, ctx.cfg.memory_timeout)
    finally:
        stop.set()
        sampler.join()
    m.train_s = time.perf_counter() - start
    m.right_after_kb = total(pids, "VmRSS")
    hwm = total(pids, "VmHWM") if m.exact_peak else None  # at most: the two need not peak together
    m.peak_kb = hwm if hwm is not None else max(sampled, default=None)
    if status != 200:
        m.problems.append(f"the training answered HTTP {status}: {text}")
        return m
    m.after_kb = settled_rss(pids)
    m.released_mb = released_in_log(server)
    log(
        f"  trained in {m.train_s:.0f} s; peak {fmt_mb(m.peak_kb)}, right after {fmt_mb(m.right_after_kb)}, "
        f"settled {fmt_mb(m.after_kb)}; the server logged releasing {m.released_mb} MB"
    )
    m.model_kb, m.model_runtime, m.model_files = model_size(server.cwd / "models")
    log(f"  the model served, loaded in a fresh process: {fmt_mb(m.model_kb)} ({m.model_runtime})")
    return m


def run(ctx: Context) -> None:
    trees = ctx.cfg.memory_trees
    workdir = ctx.mkdtemp("bench-memory-")
    table = workdir / "table.csv"
    make_table(table)
    log(f"goal 13: memory after a {trees:,}-tree training on a {table.stat().st_size / 1e6:.1f} MB table")
    server = ctx.launch(our_server(workdir, "ours (memory)"))
    try:
        server.wait_ready(60)
        m = measure(ctx, server, table, trees)
    finally:
        ctx.check_server_log(server)
        ctx.stop_server(server)
    table_mb = table.stat().st_size / 1e6
    table.unlink(missing_ok=True)
    _add_rows(ctx, m, trees, table_mb)


def _add_rows(ctx: Context, m: Measured, trees: int, table_mb: float) -> None:
    shape = f"{trees:,} trees on a {table_mb:.1f} MB table ({ROWS:,} rows × {FEATURES} features"
    shape += f", {len(CLASSES)} classes)"
    peak = "VmHWM" if m.exact_peak else "highest VmRSS sampled"
    ctx.add(
        Row(
            "13",
            f"server memory around a training of {shape}: before / peak ({peak}) / after, settled",
            f"{fmt_mb(m.before_kb)} / {fmt_mb(m.peak_kb)} / {fmt_mb(m.after_kb)}",
        )
    )
    kinds = {Path(n).suffix.lstrip("."): v for n, v in m.model_files.items() if n.endswith((".pkl", ".onnx"))}
    files = ", ".join(f"{kind} {size / 2**20:,.0f} MB" for kind, size in kinds.items())
    ctx.add(
        Row(
            "13",
            "the model kept: the served forest and its onnxruntime sessions, loaded in a fresh process"
            + (f" (files: {files})" if files else ""),
            fmt_mb(m.model_kb),
        )
    )
    if m.problems or None in (m.before_kb, m.after_kb, m.model_kb):
        ctx.add(
            Row(
                "13",
                "memory after that training vs before + the kept model",
                "; ".join(m.problems) or "not measured",
                target=f"≤ {CLOSE:.2f}×",
                result="n/a" if not m.problems else "FAIL",
            )
        )
        return
    before, after, model = m.before_kb or 0, m.after_kb or 0, m.model_kb or 0
    ratio = after / (before + model)
    left = after - before - model
    ctx.add(
        Row(
            "13",
            f"memory after that training vs before + the kept model ({fmt_mb(before + model)}); "
            f"after / before = {after / before:.1f}×",
            f"{ratio:.2f}× ({'+' if left >= 0 else '−'}{fmt_mb(abs(left))})",
            target=f"≤ {CLOSE:.2f}× (within {round((CLOSE - 1) * 100)}%)",
            result=verdict(ratio <= CLOSE),
        )
    )
    ctx.details.append(
        f"memory goal: training {fmt_s(m.train_s)}; RSS right after the answer {fmt_mb(m.right_after_kb)}, "
        f"settled {fmt_mb(m.after_kb)}; the server logged releasing {m.released_mb} MB after the training; "
        f"the kept model serves with {m.model_runtime}"
    )

"""Goal 3: a 1,000,000-row CSV through POST /predict_batch against the naive pandas pipeline (and --big)."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.config import FEATURES, IRIS_RANGES
from bench.console import log
from bench.context import Context, TrainedModel
from bench.report import Row, faster, fmt_mb, fmt_s, median, verdict
from bench.servers import Server, child_pids, proc_status, reset_peak_rss


@dataclass
class Upload:
    """One POST /predict_batch: its time, the server's memory, and what was wrong with the answer."""

    wall: float | None
    exact_peak: bool  # False: VmHWM could not be reset, so the growth is an upper bound
    rss_before: int | None  # kB
    hwm_after: int | None  # kB
    children_growth_kb: int
    status: int = 0
    problems: list[str] = field(default_factory=list)
    truncated: object = None
    response_bytes: int | None = None
    download_s: float | None = None
    download_bytes: int | None = None
    rows_downloaded: int | None = None
    header: str | None = None

    @property
    def growth_kb(self) -> int | None:
        return (self.hwm_after - self.rss_before) if self.hwm_after and self.rss_before else None


def make_csv(path: Path, rows: int, seed: int) -> None:
    """Four random features and a string sample_id, written a million rows at a time."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    chunk = 1_000_000
    with open(path, "w", newline="") as handle:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            frame = pd.DataFrame({f: rng.uniform(*IRIS_RANGES[f], n).round(1) for f in FEATURES})
            frame["sample_id"] = [f"s{i:08d}" for i in range(start, start + n)]
            frame.to_csv(handle, index=False, header=start == 0, float_format="%.1f")


def naive_pipeline(model: TrainedModel, path: Path, out: Path) -> float:
    """The anchor: read_csv, predict_proba, to_csv of the input plus the prediction columns; seconds."""
    import numpy as np
    import pandas as pd

    estimator = model.load_estimator()
    columns = [int(c) for c in estimator.classes_]
    names = [model.class_names[c] if c < len(model.class_names) else str(c) for c in columns]
    start = time.perf_counter()
    frame = pd.read_csv(path)
    proba = estimator.predict_proba(frame[model.feature_names])
    best = proba.argmax(axis=1)
    table = frame.copy()
    table["predicted_class"] = np.asarray(names, dtype=object)[best]
    table["confidence"] = proba.max(axis=1)
    for j, name in enumerate(names):
        table[f"prob_{name}"] = proba[:, j]
    table.to_csv(out, index=False)
    elapsed = time.perf_counter() - start
    del frame, table, proba
    return elapsed


def _curl(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", *argv], capture_output=True, text=True, timeout=timeout + 30)


def upload(ours: Server, workdir: Path, path: Path, rows: int, timeout: float) -> Upload:
    """POST the file with curl (streamed from disk); time it, check it, measure the server's memory."""
    pid = ours.pid
    children = child_pids(pid)
    exact = reset_peak_rss(pid)
    for child in children:
        reset_peak_rss(child)
    rss_before = proc_status(pid, "VmRSS")
    children_before = {c: proc_status(c, "VmRSS") for c in children}
    out = workdir / "batch_response.json"
    argv = ["-o", str(out), "-w", "%{http_code} %{time_total}", "--max-time", str(int(timeout))]
    argv += ["-F", f"file=@{path};type=text/csv", ours.url + "/predict_batch"]
    start = time.perf_counter()
    done = _curl(argv, timeout)
    wall = time.perf_counter() - start
    hwm_after = proc_status(pid, "VmHWM")
    children_growth = 0
    for child, before in children_before.items():
        after = proc_status(child, "VmHWM")
        if before is not None and after is not None:
            children_growth += max(0, after - before)
    info = Upload(wall, exact, rss_before, hwm_after, children_growth)
    parts = done.stdout.split()
    info.status = int(parts[0]) if parts and parts[0].isdigit() else 0
    if done.returncode != 0 or info.status != 200:
        body = out.read_bytes()[:300].decode("utf-8", "replace") if out.exists() else ""
        info.problems.append(f"HTTP {info.status}, curl exit {done.returncode} {done.stderr.strip()[:200]} {body}")
        info.wall = None
        return info
    url = _check_response(info, out, rows)
    if url is not None:
        full = url if url.startswith("http") else ours.url + ("" if url.startswith("/") else "/") + url
        _check_download(info, full, workdir / "predictions_download.csv", rows, timeout)
    return info


def _check_response(info: Upload, out: Path, rows: int) -> str | None:
    """Problems of the JSON answer go to info; returns its predictions_url, if any."""
    size = out.stat().st_size
    info.response_bytes = size
    if size > 64 * 1024 * 1024:
        info.problems.append(f"the JSON response is {size / 1e6:,.0f} MB: not truncated")
        out.unlink()
        return None
    try:
        body = json.loads(out.read_bytes())
    except ValueError:
        info.problems.append("the response is not JSON")
        return None
    finally:
        out.unlink(missing_ok=True)
    if not body.get("run_id"):
        info.problems.append("no run_id in the response")
    if body.get("total_samples") not in (None, rows):
        info.problems.append(f"total_samples {body.get('total_samples')} != {rows}")
    info.truncated = body.get("truncated")
    if body.get("truncated") is not True:
        info.problems.append(f"`truncated` is {body.get('truncated')!r}, not true")
    url = body.get("predictions_url")
    if not url:
        info.problems.append("no predictions_url")
        return None
    return str(url)


def _check_download(info: Upload, url: str, target: Path, rows: int, timeout: float) -> None:
    """GET the predictions CSV and count its data rows."""
    start = time.perf_counter()
    got = _curl(["-o", str(target), "-w", "%{http_code}", "--max-time", str(int(timeout)), url], timeout)
    info.download_s = time.perf_counter() - start
    if got.stdout.strip() != "200":
        info.problems.append(f"GET predictions_url answered {got.stdout.strip()} {got.stderr.strip()[:200]}")
        target.unlink(missing_ok=True)
        return
    lines = 0
    with open(target, "rb") as handle:
        header = handle.readline()
        while chunk := handle.read(16 * 1024 * 1024):
            lines += chunk.count(b"\n")
    info.download_bytes = target.stat().st_size
    target.unlink()
    info.rows_downloaded = lines
    info.header = header.decode("utf-8", "replace").strip()
    if lines != rows:
        info.problems.append(f"the predictions CSV has {lines:,} data rows, not {rows:,}")


def run(ctx: Context) -> None:
    cfg, ours, workdir, model = ctx.cfg, ctx.our_server(), ctx.work(), ctx.trained()
    rows = cfg.batch_rows
    path = workdir / f"batch_{rows}.csv"
    log(f"goal 3: writing a {rows:,}-row CSV")
    make_csv(path, rows, seed=1)
    size_mb = path.stat().st_size / 1e6
    log(f"  {size_mb:.1f} MB")
    naive = []
    out = workdir / "naive_predictions.csv"
    for i in range(cfg.naive_reps):
        t = naive_pipeline(model, path, out)
        naive.append(t)
        log(f"  naive pandas + predict_proba + to_csv #{i + 1}: {t:.2f} s")
    out.unlink(missing_ok=True)
    ctx.settle()
    results: list[Upload] = []
    budget_end = time.perf_counter() + cfg.batch_timeout * 2
    for i in range(cfg.batch_reps):
        if i and time.perf_counter() > budget_end:
            ctx.note("batch repetitions cut short: over the time budget")
            break
        info = upload(ours, workdir, path, rows, cfg.batch_timeout)
        results.append(info)
        log(
            f"  POST /predict_batch #{i + 1}: {fmt_s(info.wall)}, HTTP {info.status}, peak growth "
            f"{fmt_mb(info.growth_kb)}, download {fmt_s(info.download_s)}"
            + (f"; problems: {info.problems}" if info.problems else "")
        )
        if info.status != 200 and not ours.alive():
            raise RuntimeError(f"our server died during the batch: {ours.log_tail()}")
    path.unlink(missing_ok=True)
    _add_rows(ctx, rows, size_mb, results, naive)


def _add_rows(ctx: Context, rows: int, size_mb: float, results: list[Upload], naive: list[float]) -> None:
    ours = median(r.wall for r in results)
    anchor = median(naive)
    ok = None if ours is None or anchor is None else ours <= 0.5 * anchor
    ctx.add(
        Row(
            "3",
            f"{rows:,}-row CSV ({size_mb:.0f} MB): POST /predict_batch, full response "
            f"(median of {len(results)}) vs naive pandas pipeline in process (median of {len(naive)})",
            fmt_s(ours),
            fmt_s(anchor),
            faster(ours, anchor),
            "≤ 0.5× naive",
            verdict(ok),
        )
    )
    growth = max([g for r in results if (g := r.growth_kb) is not None], default=None)
    exact = all(r.exact_peak for r in results)
    ctx.add(
        Row(
            "3",
            "server peak memory growth during that upload (VmHWM − VmRSS before"
            + ("; peak reset before each upload" if exact else "; upper bound")
            + ")",
            fmt_mb(growth),
            target="≤ 1 GB",
            result=verdict(None if growth is None else growth <= 1024 * 1024),
        )
    )
    ctx.batch_streams = any(r.truncated is True for r in results)
    kids = max([r.children_growth_kb for r in results], default=0)
    if kids > 100 * 1024:
        ctx.note(
            f"the server's child processes grew by up to {fmt_mb(kids)} during the batch upload "
            "(not in the memory row, which is the server process alone)"
        )
    problems = sorted({p for r in results for p in r.problems})
    ctx.add(
        Row(
            "3",
            "response has run_id, truncated = true, predictions_url whose CSV has every row",
            "ok" if not problems else "; ".join(problems)[:300],
            target="yes",
            result="PASS" if results and not problems else "FAIL",
        )
    )
    for r in results:
        ctx.details.append(
            f"batch {rows}: wall {fmt_s(r.wall)}, RSS before {fmt_mb(r.rss_before)}, VmHWM after "
            f"{fmt_mb(r.hwm_after)}, response {r.response_bytes} B, download "
            f"{fmt_s(r.download_s)} ({r.download_bytes} B, {r.rows_downloaded} rows), "
            f"header {r.header!r}"
        )
    ctx.details.append(f"naive pipeline: {', '.join(f'{t:.2f}' for t in naive)} s")


def run_big(ctx: Context) -> None:
    """--big: 10,000,000 rows, only when the server streams (a truncated 1,000,000-row answer)."""
    rows = ctx.cfg.big_rows
    if not ctx.batch_streams:
        ctx.add(Row("3", f"{rows:,}-row CSV: completes, memory bounded", "skipped", target="completes", result="n/a"))
        ctx.note(
            f"the {rows:,}-row batch was skipped: the 1,000,000-row response was not truncated, so the "
            "server does not stream, and holding ten times that in memory could exhaust this machine"
        )
        return
    ours, workdir = ctx.our_server(), ctx.work()
    path = workdir / f"batch_{rows}.csv"
    log(f"goal 3 (--big): writing a {rows:,}-row CSV")
    make_csv(path, rows, seed=2)
    log(f"  {path.stat().st_size / 1e6:.0f} MB")
    ctx.settle()
    try:
        info = upload(ours, workdir, path, rows, max(ctx.cfg.batch_timeout, 1200))
    finally:
        path.unlink(missing_ok=True)
    log(
        f"  POST /predict_batch: {fmt_s(info.wall)}, HTTP {info.status}, growth {fmt_mb(info.growth_kb)}"
        + (f"; problems {info.problems}" if info.problems else "")
    )
    ok = info.wall is not None and not info.problems
    ctx.add(
        Row(
            "3",
            f"{rows:,}-row CSV: completes, every row downloadable"
            + (f" ({'; '.join(info.problems)[:200]})" if info.problems else ""),
            fmt_s(info.wall),
            target="completes",
            result=verdict(ok),
        )
    )
    growth = info.growth_kb
    ctx.add(
        Row(
            "3",
            f"{rows:,}-row CSV: server peak memory growth",
            fmt_mb(growth),
            target="≤ 1 GB (bounded)",
            result=verdict(None if growth is None else growth <= 1024 * 1024),
        )
    )

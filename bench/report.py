"""Numbers to text, the result rows, the machine description and the results table (bench/results.md)."""

from __future__ import annotations

import json
import platform
import re
import statistics
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bench.config import PYTHON, Config


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "n/a"
    if ms < 10:
        return f"{ms:.2f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.2f} s"


def fmt_s(s: float | None) -> str:
    return "n/a" if s is None else (f"{s:.2f} s" if s < 100 else f"{s:.0f} s")


def fmt_rps(r: float | None) -> str:
    return "n/a" if r is None else f"{r:,.0f} req/s"


def fmt_mb(kb: float | None) -> str:
    return "n/a" if kb is None else f"{kb / 1024:,.0f} MB"


def faster(ours: float | None, anchor: float | None) -> str:
    """For times: how many times faster ours is than the anchor."""
    if not ours or not anchor:
        return "n/a"
    ratio = anchor / ours
    return f"{ratio:,.1f}× faster" if ratio >= 1 else f"{1 / ratio:,.1f}× slower"


def throughput(ours: float | None, anchor: float | None) -> str:
    if not ours or not anchor:
        return "n/a"
    return f"{ours / anchor:,.1f}× the throughput"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


@dataclass
class Row:
    goal: str
    what: str
    ours: str
    anchor: str = "—"
    ratio: str = "—"
    target: str = "—"
    result: str = "info"  # PASS, FAIL, n/a or info


def _first_line_of(path: Path, prefix: str) -> str | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(prefix):
                return line
    except OSError:
        pass
    return None


# Run in the venv's python, so the versions are those the servers import.
_VERSIONS_CODE = (
    "import importlib, platform\n"
    "out = {'python': platform.python_version()}\n"
    "for m in ('mlflow', 'sklearn', 'onnxruntime', 'skl2onnx', 'fastapi', 'uvicorn', 'pyarrow', 'pandas'):\n"
    "    try:\n        out[m] = importlib.import_module(m).__version__\n"
    "    except Exception:\n        out[m] = 'not installed'\n"
    "import json; print(json.dumps(out))"
)


def machine(cfg: Config) -> list[str]:
    cpu_line = _first_line_of(Path("/proc/cpuinfo"), "model name")
    cpu = cpu_line.split(":", 1)[1].strip() if cpu_line else "unknown"
    mem_line = _first_line_of(Path("/proc/meminfo"), "MemTotal:")
    mem = f"{int(mem_line.split()[1]) / 1024 / 1024:.1f} GiB" if mem_line else None
    date = subprocess.run(["date", "-u"], capture_output=True, text=True).stdout.strip()
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    try:
        done = subprocess.run([str(PYTHON), "-c", _VERSIONS_CODE], capture_output=True, text=True, timeout=120)
        versions = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        versions = {}
    try:  # absent when only a goal without load ran (--only memory)
        wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.strip().splitlines()
    except OSError:
        wrk_v = []
    mode = "--quick (short smoke run: fewer repetitions, shorter loads)" if cfg.quick else "full"
    return [
        f"- date: {date}",
        f"- machine: {nproc} CPUs ({cpu}), {mem} memory, {platform.platform()}",
        "- versions: "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + (f", {wrk_v[0].split('[')[0].strip()}" if wrk_v else ""),
        f"- mode: {mode}" + (", with the 10,000,000-row batch" if cfg.big else ""),
        f"- load: wrk, {cfg.wrk_seconds} s a run, {cfg.our_reps} runs each for this server, "
        f"{cfg.anchor_reps} for the anchor; goal 2 load {cfg.drain_load_seconds} s",
    ]


def _goal_order(row: Row) -> float:
    # "1–2" sorts after goal 1's rows and before goal 2's; rows of one goal keep their order.
    found = re.match(r"\d+", row.goal)
    number = float(found.group()) if found else float("inf")
    return number + (0.5 if "–" in row.goal else 0)


def render(cfg: Config, rows: list[Row], notes: list[str], details: list[str]) -> str:
    head = ["goal", "what", "ours", "anchor", "ratio", "target", "result"]
    lines = ["# Benchmark results", "", "`make bench` (python -m bench); see bench/README.md.", ""]
    lines += machine(cfg) + [""]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join("---" for _ in head) + "|")
    for r in sorted(rows, key=_goal_order):
        cells = [r.goal, r.what, r.ours, r.anchor, r.ratio, r.target, r.result]
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    passed = sum(r.result == "PASS" for r in rows)
    failed = sum(r.result == "FAIL" for r in rows)
    lines += ["", f"{passed} PASS, {failed} FAIL, {sum(r.result == 'n/a' for r in rows)} n/a."]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    if details:
        lines += ["", "## Details", ""] + [f"- {d}" for d in details]
    return "\n".join(lines) + "\n"


def publish(text: str, output: Path) -> None:
    print()
    print(text)
    output.write_text(text)

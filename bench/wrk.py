"""wrk: the Lua script of a POST, one run, and the parser of its `--latency` output."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench.report import fmt_ms


@dataclass
class WrkResult:
    label: str
    connections: int
    seconds: float
    requests: int = 0
    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    non_2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> int:
        """Completed responses with a status below 400 (wrk counts a response as complete whatever its status)."""
        return max(0, self.requests - self.non_2xx)

    @property
    def socket_error_total(self) -> int:
        return sum(self.socket_errors.values())

    def brief(self) -> str:
        if self.error:
            return f"{self.label}: ERROR {self.error}"
        errs = f", socket errors {self.socket_errors}" if self.socket_error_total else ""
        return (
            f"{self.label}: {self.rps:.0f} req/s, p50 {fmt_ms(self.p50_ms)}, p99 {fmt_ms(self.p99_ms)}, "
            f"{self.requests} requests, non-2xx {self.non_2xx}{errs}"
        )


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _to_ms(value: str, unit: str) -> float:
    return float(value) * _UNITS_MS[unit]


def parse_wrk(text: str, label: str = "wrk", connections: int = 0, seconds: float = 0.0) -> WrkResult:
    """The figures of a `wrk --latency` output; `error` is set when it has no request count."""
    result = WrkResult(label, connections, seconds)
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+),", text)
    if not m:
        result.error = "could not parse wrk output: " + text[-300:].replace("\n", " | ")
        return result
    result.requests = int(m.group(1))
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    result.rps = float(m.group(1)) if m else None
    # The "Latency Distribution" block: "     50%    5.95ms".
    m = re.search(r"^\s*50%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)
    if m:
        result.p50_ms = _to_ms(m.group(1), m.group(2))
    m = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)
    if m:
        result.p99_ms = _to_ms(m.group(1), m.group(2))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        result.socket_errors = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups()), strict=True))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    result.non_2xx = int(m.group(1)) if m else 0
    return result


def write_lua(path: Path, body: str) -> Path:
    path.write_text(
        f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = {json.dumps(body)}\n'
    )
    return path


def run_wrk(label: str, url: str, script: Path, threads: int, connections: int, seconds: int) -> WrkResult:
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "30s",
        "-s",
        str(script),
        url,
    ]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        return WrkResult(label, connections, seconds, error="wrk did not finish in time")
    if done.returncode != 0:
        return WrkResult(
            label, connections, seconds, error=f"wrk exited {done.returncode}: {done.stderr.strip()[:300]}"
        )
    return parse_wrk(done.stdout, label, connections, seconds)

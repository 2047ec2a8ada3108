#!/usr/bin/env python3
"""The performance benchmark of issue 3: this server against its anchors, side by side, in one run.

    .venv/bin/python bench/bench.py            # the full run, about 4 minutes (more against a slow server)
    .venv/bin/python bench/bench.py --quick    # a smoke run, about 2 minutes: shorter loads, fewer repetitions
    .venv/bin/python bench/bench.py --big      # also a 10,000,000-row batch

Prints one table and writes it to bench/results.md. See bench/README.md for what each row means.
Every server is started in a fresh temporary directory and stopped (SIGTERM, then SIGKILL) at the
end, whatever happens; every wait is bounded in time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = VENV_BIN / "python"
MLFLOW = VENV_BIN / "mlflow"
MAIN = ROOT / "main.py"
RESULTS = Path(__file__).resolve().parent / "results.md"

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SAMPLE = [5.1, 3.5, 1.4, 0.2]
OUR_BODY = json.dumps(dict(zip(FEATURES, SAMPLE, strict=False)), separators=(",", ":"))
ANCHOR_BODY = json.dumps({"dataframe_split": {"columns": FEATURES, "data": [SAMPLE]}}, separators=(",", ":"))
INFERENCE_EXPERIMENT = "iris_inference"
TRAINING_EXPERIMENT = "iris_classification"
IRIS_RANGES = {
    "sepal_length": (4.3, 7.9),
    "sepal_width": (2.0, 4.4),
    "petal_length": (1.0, 6.9),
    "petal_width": (0.1, 2.5),
}
CLASSES = ["setosa", "versicolor", "virginica"]

T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - T0:7.1f}s] {message}", flush=True)


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# -- configuration ---------------------------------------------------------------------------------


@dataclass
class Config:
    quick: bool
    big: bool
    train_reps: int
    wrk_seconds: int
    our_reps: int
    anchor_reps: int
    drain_load_seconds: int
    drain_wait_max: float  # how long to keep polling after the goal-2 load before giving up
    settle_max: float  # how long to wait for the backlog to clear between load runs
    batch_rows: int
    naive_reps: int
    batch_reps: int
    batch_timeout: float
    big_rows: int
    dash_inference_runs: int
    dash_training_runs: int
    runs_samples: int
    summary_samples: int
    query_budget: float  # seconds per dashboard endpoint, warm-ups included
    anchor_count_reps: int

    @classmethod
    def make(cls, quick: bool, big: bool) -> Config:
        if quick:
            return cls(
                quick,
                big,
                train_reps=3,
                wrk_seconds=5,
                our_reps=2,
                anchor_reps=1,
                drain_load_seconds=10,
                drain_wait_max=40,
                settle_max=15,
                batch_rows=1_000_000,
                naive_reps=1,
                batch_reps=1,
                batch_timeout=180,
                big_rows=10_000_000,
                dash_inference_runs=20_000,
                dash_training_runs=200,
                runs_samples=5,
                summary_samples=3,
                query_budget=25,
                anchor_count_reps=1,
            )
        return cls(
            quick,
            big,
            train_reps=5,
            wrk_seconds=10,
            our_reps=3,
            anchor_reps=3,
            drain_load_seconds=30,
            drain_wait_max=90,
            settle_max=30,
            batch_rows=1_000_000,
            naive_reps=3,
            batch_reps=3,
            batch_timeout=300,
            big_rows=10_000_000,
            dash_inference_runs=20_000,
            dash_training_runs=200,
            runs_samples=20,
            summary_samples=10,
            query_budget=60,
            anchor_count_reps=2,
        )


# -- processes and HTTP ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 30.0
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def http_json(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 30.0
) -> tuple[int, Any]:
    status, data = http(method, url, body, headers, timeout)
    try:
        return status, json.loads(data)
    except ValueError:
        return status, data[:500].decode("utf-8", "replace")


class Server:
    """A subprocess in its own session, so it and its children stop together."""

    def __init__(self, name: str, argv: list[str], cwd: Path, env: dict[str, str], port: int, ready_path: str):
        self.name = name
        self.argv = argv
        self.cwd = cwd
        self.env = env
        self.port = port
        self.ready_path = ready_path
        self.proc: subprocess.Popen | None = None
        self.log_path = cwd / f"{name}.log"
        self.started_at = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._log_file = open(self.log_path, "ab")
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, limit: float) -> float:
        """Seconds from spawn until GET ready_path answers 200; raises after `limit` seconds."""
        deadline = self.started_at + limit
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.proc.returncode}; log tail: {self.log_tail()}")
            try:
                status, _ = http("GET", self.url + self.ready_path, timeout=1.0)
                if status == 200:
                    return time.perf_counter() - self.started_at
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.05)
        raise RuntimeError(
            f"{self.name} did not answer {self.ready_path} within {limit:.0f} s; log tail: {self.log_tail()}"
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 600) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:].replace("\n", " | ")
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None:
            return
        pgid = self.proc.pid  # the session leader: its process group id is its pid
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"{self.name} still running {timeout:.0f} s after SIGTERM: SIGKILL")
        try:  # whatever is left of the group (the tracking worker, mlflow's uvicorn child)
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._log_file.close()
        self.proc = None


def proc_status(pid: int, key: str) -> int | None:
    """A /proc/<pid>/status field in kB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def child_pids(pid: int) -> list[int]:
    """Every descendant of pid (the tracking worker, for one), from /proc/<pid>/task/*/children."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                found.append(int(child))
                found.extend(child_pids(int(child)))
    except (OSError, ValueError):
        pass
    return found


def reset_peak_rss(pid: int) -> bool:
    """Linux resets VmHWM to the current RSS when 5 is written to clear_refs (needs the owner or root)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# -- wrk -------------------------------------------------------------------------------------------


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


def parse_wrk(text: str, result: WrkResult) -> WrkResult:
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+),", text)
    if not m:
        result.error = "could not parse wrk output: " + text[-300:].replace("\n", " | ")
        return result
    result.requests = int(m.group(1))
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    result.rps = float(m.group(1)) if m else None
    for pct, attr in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)
        if m:
            setattr(result, attr, _to_ms(m.group(1), m.group(2)))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        result.socket_errors = {
            k: int(v) for k, v in zip(("connect", "read", "write", "timeout"), m.groups(), strict=False)
        }
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    result.non_2xx = int(m.group(1)) if m else 0
    return result


def write_lua(path: Path, body: str) -> Path:
    path.write_text(
        f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = {json.dumps(body)}\n'
    )
    return path


def run_wrk(label: str, url: str, script: Path, threads: int, connections: int, seconds: int) -> WrkResult:
    result = WrkResult(label, connections, seconds)
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
        result.error = "wrk did not finish in time"
        return result
    if done.returncode != 0:
        result.error = f"wrk exited {done.returncode}: {done.stderr.strip()[:300]}"
        return result
    return parse_wrk(done.stdout, result)


# -- formatting ------------------------------------------------------------------------------------


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


@dataclass
class Row:
    goal: str
    what: str
    ours: str
    anchor: str = "—"
    ratio: str = "—"
    target: str = "—"
    result: str = "info"  # PASS, FAIL, n/a or info


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


# -- the benchmark ---------------------------------------------------------------------------------


class Bench:
    def __init__(self, cfg: Config, keep: bool = False):
        self.cfg = cfg
        self.keep = keep
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.details: list[str] = []
        self.servers: list[Server] = []
        self.tmpdirs: list[Path] = []
        self.workdir: Path | None = None
        self.ours: Server | None = None
        self.train_response: dict | None = None
        self.our_predict_runs: list[WrkResult] = []  # every wrk run against our /predict
        self.extra_predict_ok = 0  # /predict calls the bench made itself that answered 2xx
        self.health_warnings: set[str] = set()

    # helpers

    def note(self, text: str) -> None:
        log("NOTE: " + text)
        self.notes.append(text)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        log(
            f"  -> [{row.goal}] {row.what}: ours {row.ours} | anchor {row.anchor} | {row.ratio} | "
            f"goal {row.target} | {row.result}"
        )

    def mkdtemp(self, prefix: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=prefix))
        self.tmpdirs.append(path)
        return path

    def base_env(self) -> dict[str, str]:
        # The defaults: no IRIS_* setting (window threshold, journal, ...) and no MLflow URI from outside.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("IRIS_", "MLFLOW_")) and k != "VIRTUAL_ENV"}
        # mlflow models serve runs `uvicorn` by name: the venv's bin must come first on PATH.
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start_ours(self, workdir: Path, name: str = "ours") -> Server:
        port = free_port()
        server = Server(name, [str(PYTHON), str(MAIN), "--port", str(port)], workdir, self.base_env(), port, "/health")
        self.servers.append(server)
        server.start()
        return server

    def stop_server(self, server: Server | None) -> None:
        if server is None:
            return
        log(f"stopping {server.name}")
        server.stop()
        if server in self.servers:
            self.servers.remove(server)

    def health(self, timeout: float = 5.0) -> dict | None:
        try:
            status, body = http_json("GET", self.ours.url + "/health", timeout=timeout)
        except (OSError, urllib.error.URLError):
            return None
        return body if status == 200 and isinstance(body, dict) else None

    def pending(self, timeout: float = 5.0) -> tuple[bool, int | None]:
        """(answered, pending_inference_records); the field may be absent or null."""
        body = self.health(timeout)
        if body is None:
            return False, None
        if "pending_inference_records" not in body:
            self.health_warnings.add("GET /health has no `pending_inference_records` field")
            return True, None
        if body.get("tracking_error"):
            self.health_warnings.add(f"tracking_error: {str(body['tracking_error'])[:200]}")
        return True, body["pending_inference_records"]

    def wait_drained(self, limit: float) -> float | None:
        """Seconds until pending_inference_records == 0 (null counts as not yet), or None after `limit`."""
        start = time.perf_counter()
        while time.perf_counter() - start < limit:
            answered, pending = self.pending()
            if answered and pending == 0:
                return time.perf_counter() - start
            time.sleep(0.2)
        return None

    def settle(self) -> None:
        """Let the tracking backlog of the previous load clear before the next measurement (bounded)."""
        waited = self.wait_drained(self.cfg.settle_max)
        if waited is None:
            answered, pending = self.pending()
            self.note(
                f"backlog not cleared within {self.cfg.settle_max:.0f} s between load runs "
                f"(pending_inference_records = {pending}); the next run shares the CPU with the writer"
            )
        elif waited > 1:
            log(f"  backlog cleared after {waited:.1f} s")

    # step 1: start-up (goal 6)

    def step_startup(self) -> None:
        log("goal 6: starting our server in an empty directory")
        self.workdir = self.mkdtemp("iris-bench-")
        self.ours = self.start_ours(self.workdir)
        try:
            self.startup_s = self.ours.wait_ready(60)
        except RuntimeError as exc:
            self.startup_s = None
            self.add(
                Row(
                    "6",
                    "start-up in an empty directory until GET /health is 200",
                    "did not start",
                    target="≤ 8 s",
                    result="FAIL",
                )
            )
            raise RuntimeError(f"our server did not start: {exc}")
        log(f"  /health answered {self.startup_s:.2f} s after spawn")

    # step 2: training (goal 4)

    def step_train(self) -> None:
        log(f"goal 4: POST /train (default Iris, 100 trees) x{self.cfg.train_reps}")
        times, errors = [], []
        for i in range(self.cfg.train_reps):
            start = time.perf_counter()
            try:
                status, body = http_json(
                    "POST",
                    self.ours.url + "/train",
                    body=b"",
                    timeout=120,
                    headers={"content-type": "application/x-www-form-urlencoded"},
                )
            except (OSError, urllib.error.URLError) as exc:
                errors.append(str(exc))
                continue
            elapsed = time.perf_counter() - start
            if status != 200 or not isinstance(body, dict):
                errors.append(f"HTTP {status}: {str(body)[:200]}")
                continue
            times.append(elapsed)
            self.train_response = body
            log(f"  train {i + 1}: {elapsed:.2f} s, accuracy {body.get('accuracy')}")
        self.train_times = times
        m = median(times)
        if errors:
            self.note(f"POST /train failed {len(errors)} time(s): {errors[0]}")
        self.add(
            Row(
                "4",
                f"POST /train, default Iris, 100 trees, everything logged (median of {len(times)})",
                fmt_s(m),
                target="≤ 2 s",
                result=verdict(None if m is None else m <= 2.0),
            )
        )
        self.details.append(f"training times: {', '.join(f'{t:.2f}' for t in times)} s")
        if times:
            self.add(
                Row("4", "the first POST /train after start-up (cold: imports, first conversion)", fmt_s(times[0]))
            )
        if self.train_response is None:
            raise RuntimeError("no model could be trained; the remaining goals need one")
        meta = self.train_response.get("model_metadata") or {}
        self.model_uri = meta.get("mlflow_model_uri")
        self.class_names = [str(c) for c in meta.get("class_names") or CLASSES]
        self.feature_names = list(meta.get("feature_names") or FEATURES)
        model_path = Path(self.train_response.get("model_path", ""))
        self.model_file = model_path if model_path.is_absolute() else self.workdir / model_path
        health = self.health() or {}
        runtime = health.get("runtime", "not reported")
        self.add(Row("1", "serving runtime of the trained model (GET /health `runtime`)", str(runtime)))

    def load_estimator(self):
        with open(self.model_file, "rb") as handle:
            return pickle.load(handle)  # the model this run just trained, in our own temp dir

    def step_parity(self) -> None:
        """A correctness spot check of goal 1 (the tests own the full check): 20 random rows over HTTP."""
        import numpy as np
        import pandas as pd

        log("goal 1: parity of /predict with scikit-learn on 20 random inputs")
        estimator = self.load_estimator()
        rng = np.random.default_rng(7)
        X = np.column_stack([rng.uniform(*IRIS_RANGES[f], 20) for f in self.feature_names]).round(2)
        expected = estimator.predict_proba(pd.DataFrame(X, columns=self.feature_names))
        columns = [int(c) for c in getattr(estimator, "classes_", range(len(self.class_names)))]
        worst, class_mismatch, failures = 0.0, 0, 0
        for row, probs in zip(X, expected, strict=False):
            body = json.dumps(dict(zip(self.feature_names, map(float, row), strict=False))).encode()
            status, answer = http_json(
                "POST", self.ours.url + "/predict", body, {"content-type": "application/json"}, timeout=30
            )
            if status >= 400 or not isinstance(answer, dict):
                failures += 1
                continue
            self.extra_predict_ok += 1
            got = answer.get("probabilities") or {}
            for j, c in enumerate(columns):
                name = self.class_names[c] if c < len(self.class_names) else str(c)
                if name in got:
                    worst = max(worst, abs(float(got[name]) - float(probs[j])))
            if answer.get("prediction") != int(columns[int(np.argmax(probs))]):
                class_mismatch += 1
        ok = failures == 0 and worst <= 1e-5 and class_mismatch == 0
        self.add(
            Row(
                "1",
                "parity spot check, 20 random rows: largest probability difference from scikit-learn, class mismatches",
                f"{worst:.1e}, {class_mismatch} mismatches" + (f", {failures} failed" if failures else ""),
                target="≤ 1e-5, 0",
                result=verdict(ok),
            )
        )

    # step 3-5: single predictions under load (goal 1)

    def step_anchor_start(self) -> None:
        if not self.model_uri:
            raise RuntimeError("the training response has no model_metadata.mlflow_model_uri")
        log(f"anchor: mlflow models serve -m {self.model_uri} --env-manager local")
        port = free_port()
        env = self.base_env()
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{self.workdir}/mlflow.db"
        argv = [
            str(MLFLOW),
            "models",
            "serve",
            "-m",
            self.model_uri,
            "--env-manager",
            "local",
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
        ]
        self.anchor = Server("anchor", argv, self.workdir, env, port, "/ping")
        self.servers.append(self.anchor)
        self.anchor.start()
        self.anchor_startup_s = self.anchor.wait_ready(120)
        log(f"  anchor answered /ping {self.anchor_startup_s:.1f} s after spawn")
        status, body = http(
            "POST", self.anchor.url + "/invocations", ANCHOR_BODY.encode(), {"content-type": "application/json"}
        )
        log(f"  anchor /invocations: HTTP {status} {body[:100]!r}")
        if status != 200:
            raise RuntimeError(f"the anchor answered HTTP {status}: {body[:200]!r}")

    def step_load(self) -> None:
        cfg = self.cfg
        our_lua = write_lua(self.workdir / "ours.lua", OUR_BODY)
        anchor_lua = write_lua(self.workdir / "anchor.lua", ANCHOR_BODY)
        status, body = http("POST", self.ours.url + "/predict", OUR_BODY.encode(), {"content-type": "application/json"})
        log(f"  our /predict: HTTP {status} {body[:160]!r}")
        if status < 400:
            self.extra_predict_ok += 1
        else:
            raise RuntimeError(f"our /predict answered HTTP {status}: {body[:200]!r}")

        self.anchor_runs: dict[int, list[WrkResult]] = {1: [], 16: []}
        self.our_runs: dict[int, list[WrkResult]] = {1: [], 16: []}
        anchor_ok = getattr(self, "anchor", None) is not None and self.anchor.alive()
        # Interleaved, anchor then ours at each repetition, so that a change in the shared machine's
        # load between the two phases does not skew the ratio. Our writer's backlog is cleared
        # before every run, the anchor's included, so it never steals the anchor's CPU.
        for c, t in ((1, 1), (16, 2)):
            for i in range(max(cfg.our_reps, cfg.anchor_reps if anchor_ok else 0)):
                if anchor_ok and i < cfg.anchor_reps:
                    self.settle()
                    r = run_wrk(
                        f"anchor c={c} #{i + 1}", self.anchor.url + "/invocations", anchor_lua, t, c, cfg.wrk_seconds
                    )
                    log("  " + r.brief())
                    self.anchor_runs[c].append(r)
                if i < cfg.our_reps:
                    self.settle()
                    r = run_wrk(f"ours c={c} #{i + 1}", self.ours.url + "/predict", our_lua, t, c, cfg.wrk_seconds)
                    log("  " + r.brief())
                    self.our_runs[c].append(r)
                    self.our_predict_runs.append(r)
                    if not self.ours.alive():
                        raise RuntimeError(f"our server exited during the load: {self.ours.log_tail()}")
        if anchor_ok:
            self.check_server_log(self.anchor)
            self.stop_server(self.anchor)
            self.anchor = None

        def agg(runs: list[WrkResult], attr: str) -> float | None:
            return median([getattr(r, attr) for r in runs if not r.error])

        o1, a1 = self.our_runs[1], self.anchor_runs[1]
        o16, a16 = self.our_runs[16], self.anchor_runs[16]

        def n(runs):
            return f"{len([r for r in runs if not r.error])}×{cfg.wrk_seconds} s"

        p50 = agg(o1, "p50_ms")
        self.add(
            Row(
                "1",
                f"single /predict p50, 1 connection (median of {n(o1)}; anchor {n(a1)})",
                fmt_ms(p50),
                fmt_ms(agg(a1, "p50_ms")),
                faster(p50, agg(a1, "p50_ms")),
                "≤ 1.5 ms",
                verdict(None if p50 is None else p50 <= 1.5),
            )
        )
        self.add(
            Row(
                "1",
                "throughput, 1 connection",
                fmt_rps(agg(o1, "rps")),
                fmt_rps(agg(a1, "rps")),
                throughput(agg(o1, "rps"), agg(a1, "rps")),
            )
        )
        r16, ar16 = agg(o16, "rps"), agg(a16, "rps")
        ok16 = None if not r16 or not ar16 else r16 >= 40 * ar16
        self.add(
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
        p99 = agg(o16, "p99_ms")
        self.add(
            Row(
                "1",
                "p99, 16 connections",
                fmt_ms(p99),
                fmt_ms(agg(a16, "p99_ms")),
                faster(p99, agg(a16, "p99_ms")),
                "≤ 30 ms",
                verdict(None if p99 is None else p99 <= 30),
            )
        )
        self.add(
            Row(
                "1",
                "p50, 16 connections",
                fmt_ms(agg(o16, "p50_ms")),
                fmt_ms(agg(a16, "p50_ms")),
                faster(agg(o16, "p50_ms"), agg(a16, "p50_ms")),
            )
        )
        for runs in (a1, a16, o1, o16):
            for r in runs:
                self.details.append(r.brief())

    # step 6: logging keeps up (goal 2)

    def step_drain(self) -> None:
        cfg = self.cfg
        self.settle()
        secs = cfg.drain_load_seconds
        log(f"goal 2: {secs} s of wrk -c16 on /predict, /health polled every second")
        seen: list[int] = []
        nulls = [0]
        unanswered = [0]
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                t = time.perf_counter()
                answered, pending = self.pending(timeout=3)
                if not answered:
                    unanswered[0] += 1
                elif pending is None:
                    nulls[0] += 1
                else:
                    seen.append(int(pending))
                stop.wait(max(0.0, 1.0 - (time.perf_counter() - t)))

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        lua = self.workdir / "ours.lua"
        try:
            r = run_wrk("ours c=16 (goal 2 load)", self.ours.url + "/predict", lua, 2, 16, secs)
        finally:
            stop.set()
            poller.join(10)
        log("  " + r.brief())
        self.our_predict_runs.append(r)
        self.details.append(r.brief())
        drain_s = self.wait_drained(cfg.drain_wait_max)
        answered, last_pending = self.pending()
        peak = max(seen) if seen else None
        log(
            f"  {'drained after ' + fmt_s(drain_s) if drain_s is not None else 'not drained'}; "
            f"largest backlog seen {peak}"
        )
        self.add(
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
        if nulls[0]:
            extra.append(f"{nulls[0]} null")
        if unanswered[0]:
            extra.append(f"{unanswered[0]} unanswered")
        self.add(
            Row(
                "2",
                "largest writer backlog seen during that load (polled every second"
                + (f"; {', '.join(extra)} polls" if extra else "")
                + ")",
                "n/a" if peak is None else f"{peak:,} records",
            )
        )
        worker = (self.health() or {}).get("tracking_worker")
        if worker is not None:
            self.details.append(f"tracking worker after goal 2: {json.dumps(worker)}")
        self.step_count_records(drained=drain_s is not None)

    def step_count_records(self, drained: bool) -> None:
        from mlflow import MlflowClient
        from mlflow.entities import ViewType

        log("goal 2: counting inference records in MLflow")
        client = MlflowClient(tracking_uri=f"sqlite:///{self.workdir}/mlflow.db")
        experiment = client.get_experiment_by_name(INFERENCE_EXPERIMENT)
        if experiment is None:
            self.add(
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
        singles = windows = window_records = 0
        missing_total = 0
        for kind in ("single", "single_window"):
            token = None
            while True:
                page = client.search_runs(
                    [experiment.experiment_id],
                    filter_string=f"params.prediction_type = '{kind}'",
                    run_view_type=ViewType.ACTIVE_ONLY,
                    max_results=50000,
                    page_token=token,
                )
                for run in page:
                    if kind == "single":
                        singles += 1
                    else:
                        windows += 1
                        total = run.data.metrics.get("total_samples")
                        if total is None:
                            missing_total += 1
                        else:
                            window_records += int(total)
                token = page.token
                if not token or time.perf_counter() - start > 300:
                    break
        count_s = time.perf_counter() - start
        records = singles + window_records
        runs = self.our_predict_runs
        ok_2xx = sum(r.ok for r in runs if not r.error) + self.extra_predict_ok
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
        self.add(
            Row(
                "2",
                f"records in MLflow ({singles:,} single runs + {windows:,} window runs) vs 2xx "
                f"/predict responses over the whole run",
                shown,
                target="equal, none lost",
                result=result,
            )
        )
        self.add(
            Row(
                "1–2",
                "HTTP errors over every /predict load run: non-2xx responses, socket errors",
                f"{non_2xx} non-2xx, {sock} socket errors",
                result="PASS" if non_2xx == 0 and sock == 0 else "FAIL",
                target="0",
            )
        )
        if missing_total:
            self.note(f"{missing_total} single_window runs have no total_samples metric; counted as 0")
        self.details.append(
            f"goal 2 count: {singles} single + {window_records} in {windows} windows = {records}; "
            f"wrk 2xx {ok_2xx} (incl. {self.extra_predict_ok} bench requests), non-2xx {non_2xx}, "
            f"socket errors {sock}; diff {diff:+d}; counting took {count_s:.1f} s"
        )

    # step 7: batch (goal 3)

    def make_csv(self, path: Path, rows: int, seed: int) -> None:
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

    def naive_pipeline(self, path: Path, out: Path) -> float:
        import numpy as np
        import pandas as pd

        estimator = self.load_estimator()
        columns = [int(c) for c in estimator.classes_]
        names = [self.class_names[c] if c < len(self.class_names) else str(c) for c in columns]
        start = time.perf_counter()
        frame = pd.read_csv(path)
        proba = estimator.predict_proba(frame[self.feature_names])
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

    def upload(self, path: Path, rows: int, label: str) -> dict[str, Any]:
        """POST the file with curl (streamed from disk); time it, check it, measure the server's memory."""
        pid = self.ours.proc.pid
        children = child_pids(pid)
        exact = reset_peak_rss(pid)
        for child in children:
            reset_peak_rss(child)
        rss_before = proc_status(pid, "VmRSS")
        children_before = {c: proc_status(c, "VmRSS") for c in children}
        out = self.workdir / "batch_response.json"
        argv = [
            "curl",
            "-sS",
            "-o",
            str(out),
            "-w",
            "%{http_code} %{time_total}",
            "--max-time",
            str(int(self.cfg.batch_timeout)),
            "-F",
            f"file=@{path};type=text/csv",
            self.ours.url + "/predict_batch",
        ]
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, timeout=self.cfg.batch_timeout + 30)
        wall = time.perf_counter() - start
        hwm_after = proc_status(pid, "VmHWM")
        children_growth = 0
        for child, before in children_before.items():
            after = proc_status(child, "VmHWM")
            if before is not None and after is not None:
                children_growth += max(0, after - before)
        info: dict[str, Any] = {
            "wall": wall,
            "exact_peak": exact,
            "rss_before": rss_before,
            "hwm_after": hwm_after,
            "growth_kb": (hwm_after - rss_before) if hwm_after and rss_before else None,
            "children_growth_kb": children_growth,
            "problems": [],
            "truncated": None,
        }
        parts = done.stdout.split()
        code = int(parts[0]) if parts and parts[0].isdigit() else 0
        info["status"] = code
        if done.returncode != 0 or code != 200:
            body = out.read_bytes()[:300].decode("utf-8", "replace") if out.exists() else ""
            info["problems"].append(f"HTTP {code}, curl exit {done.returncode} {done.stderr.strip()[:200]} {body}")
            info["wall"] = None
            return info
        size = out.stat().st_size
        info["response_bytes"] = size
        if size > 64 * 1024 * 1024:
            info["problems"].append(f"the JSON response is {size / 1e6:,.0f} MB: not truncated")
            out.unlink()
            return info
        try:
            body = json.loads(out.read_bytes())
        except ValueError:
            info["problems"].append("the response is not JSON")
            return info
        finally:
            out.unlink(missing_ok=True)
        if not body.get("run_id"):
            info["problems"].append("no run_id in the response")
        if body.get("total_samples") not in (None, rows):
            info["problems"].append(f"total_samples {body.get('total_samples')} != {rows}")
        info["truncated"] = body.get("truncated")
        if body.get("truncated") is not True:
            info["problems"].append(f"`truncated` is {body.get('truncated')!r}, not true")
        url = body.get("predictions_url")
        if not url:
            info["problems"].append("no predictions_url")
            return info
        target = self.workdir / "predictions_download.csv"
        full = url if url.startswith("http") else self.ours.url + ("" if url.startswith("/") else "/") + url
        start = time.perf_counter()
        got = subprocess.run(
            [
                "curl",
                "-sS",
                "-o",
                str(target),
                "-w",
                "%{http_code}",
                "--max-time",
                str(int(self.cfg.batch_timeout)),
                full,
            ],
            capture_output=True,
            text=True,
            timeout=self.cfg.batch_timeout + 30,
        )
        info["download_s"] = time.perf_counter() - start
        if got.stdout.strip() != "200":
            info["problems"].append(f"GET predictions_url answered {got.stdout.strip()} {got.stderr.strip()[:200]}")
            target.unlink(missing_ok=True)
            return info
        lines = 0
        with open(target, "rb") as handle:
            header = handle.readline()
            while chunk := handle.read(16 * 1024 * 1024):
                lines += chunk.count(b"\n")
        info["download_bytes"] = target.stat().st_size
        target.unlink()
        info["rows_downloaded"] = lines
        info["header"] = header.decode("utf-8", "replace").strip()
        if lines != rows:
            info["problems"].append(f"the predictions CSV has {lines:,} data rows, not {rows:,}")
        return info

    def step_batch(self) -> None:
        cfg = self.cfg
        rows = cfg.batch_rows
        path = self.workdir / f"batch_{rows}.csv"
        log(f"goal 3: writing a {rows:,}-row CSV")
        self.make_csv(path, rows, seed=1)
        size_mb = path.stat().st_size / 1e6
        log(f"  {size_mb:.1f} MB")
        naive = []
        out = self.workdir / "naive_predictions.csv"
        for i in range(cfg.naive_reps):
            t = self.naive_pipeline(path, out)
            naive.append(t)
            log(f"  naive pandas + predict_proba + to_csv #{i + 1}: {t:.2f} s")
        out.unlink(missing_ok=True)
        self.settle()
        results = []
        budget_end = time.perf_counter() + cfg.batch_timeout * 2
        for i in range(cfg.batch_reps):
            if i and time.perf_counter() > budget_end:
                self.note("batch repetitions cut short: over the time budget")
                break
            info = self.upload(path, rows, f"#{i + 1}")
            results.append(info)
            log(
                f"  POST /predict_batch #{i + 1}: {fmt_s(info['wall'])}, HTTP {info['status']}, peak growth "
                f"{fmt_mb(info['growth_kb'])}, download {fmt_s(info.get('download_s'))}"
                + (f"; problems: {info['problems']}" if info["problems"] else "")
            )
            if info["status"] != 200 and not self.ours.alive():
                raise RuntimeError(f"our server died during the batch: {self.ours.log_tail()}")
        path.unlink(missing_ok=True)
        ours = median([r["wall"] for r in results])
        anchor = median(naive)
        ok = None if ours is None or anchor is None else ours <= 0.5 * anchor
        self.add(
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
        growth = max([r["growth_kb"] for r in results if r["growth_kb"] is not None], default=None)
        exact = all(r["exact_peak"] for r in results)
        self.add(
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
        self.batch_streams = any(r["truncated"] is True for r in results)
        kids = max([r["children_growth_kb"] for r in results], default=0)
        if kids > 100 * 1024:
            self.note(
                f"the server's child processes grew by up to {fmt_mb(kids)} during the batch upload "
                "(not in the memory row, which is the server process alone)"
            )
        problems = sorted({p for r in results for p in r["problems"]})
        self.add(
            Row(
                "3",
                "response has run_id, truncated = true, predictions_url whose CSV has every row",
                "ok" if not problems else "; ".join(problems)[:300],
                target="yes",
                result="PASS" if results and not problems else "FAIL",
            )
        )
        for r in results:
            self.details.append(
                f"batch {rows}: wall {fmt_s(r['wall'])}, RSS before {fmt_mb(r['rss_before'])}, VmHWM after "
                f"{fmt_mb(r['hwm_after'])}, response {r.get('response_bytes')} B, download "
                f"{fmt_s(r.get('download_s'))} ({r.get('download_bytes')} B, {r.get('rows_downloaded')} rows), "
                f"header {r.get('header')!r}"
            )
        self.details.append(f"naive pipeline: {', '.join(f'{t:.2f}' for t in naive)} s")

    def step_big(self) -> None:
        rows = self.cfg.big_rows
        if not getattr(self, "batch_streams", False):
            self.add(
                Row("3", f"{rows:,}-row CSV: completes, memory bounded", "skipped", target="completes", result="n/a")
            )
            self.note(
                f"the {rows:,}-row batch was skipped: the 1,000,000-row response was not truncated, so the "
                "server does not stream, and holding ten times that in memory could exhaust this machine"
            )
            return
        path = self.workdir / f"batch_{rows}.csv"
        log(f"goal 3 (--big): writing a {rows:,}-row CSV")
        self.make_csv(path, rows, seed=2)
        log(f"  {path.stat().st_size / 1e6:.0f} MB")
        self.settle()
        saved = self.cfg.batch_timeout
        self.cfg.batch_timeout = max(saved, 1200)
        try:
            info = self.upload(path, rows, "big")
        finally:
            self.cfg.batch_timeout = saved
            path.unlink(missing_ok=True)
        log(
            f"  POST /predict_batch: {fmt_s(info['wall'])}, HTTP {info['status']}, growth {fmt_mb(info['growth_kb'])}"
            + (f"; problems {info['problems']}" if info["problems"] else "")
        )
        ok = info["wall"] is not None and not info["problems"]
        self.add(
            Row(
                "3",
                f"{rows:,}-row CSV: completes, every row downloadable"
                + (f" ({'; '.join(info['problems'])[:200]})" if info["problems"] else ""),
                fmt_s(info["wall"]),
                target="completes",
                result=verdict(ok),
            )
        )
        self.add(
            Row(
                "3",
                f"{rows:,}-row CSV: server peak memory growth",
                fmt_mb(info["growth_kb"]),
                target="≤ 1 GB (bounded)",
                result=verdict(None if info["growth_kb"] is None else info["growth_kb"] <= 1024 * 1024),
            )
        )

    # step 8: dashboard at scale (goal 5)

    def populate(self, workdir: Path) -> None:
        """20,000 inference runs and 200 training runs, inserted with MLflow's own ORM models."""
        import numpy as np
        from mlflow import MlflowClient
        from mlflow.entities import Metric, Param
        from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        cfg = self.cfg
        db_uri = f"sqlite:///{workdir}/mlflow.db"
        artifact_root = (workdir / "mlruns").as_uri()
        client = MlflowClient(tracking_uri=db_uri)
        exp_ids = {}
        for i, name in enumerate((TRAINING_EXPERIMENT, INFERENCE_EXPERIMENT), start=1):
            exp_ids[name] = client.create_experiment(name, artifact_location=f"{artifact_root}/{i}")
        now_ms = int(time.time() * 1000)
        rng = np.random.default_rng(3)

        def training_values(k: int) -> tuple[dict, dict]:
            params = {
                "model_type": "RandomForestClassifier",
                "n_estimators": "100",
                "test_size": "0.2",
                "n_features": "4",
                "n_samples": "150",
                "n_classes": "3",
                "data_source": "sklearn_iris",
            }
            acc = float(0.85 + 0.15 * rng.random())
            metrics = {"accuracy": acc, "precision": acc, "recall": acc, "f1_score": acc}
            return params, metrics

        # One training run through the client: the reference for what a real run looks like.
        params, metrics = training_values(0)
        run = client.create_run(
            exp_ids[TRAINING_EXPERIMENT], start_time=now_ms - 10_000_000, run_name="training_seed_0"
        )
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, v, now_ms, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
        )
        client.set_terminated(run.info.run_id, "FINISHED")

        store = SqlAlchemyStore(db_uri, artifact_root)
        tables = {m: m.__table__ for m in (SqlRun, SqlParam, SqlMetric, SqlLatestMetric, SqlTag)}
        pending: dict[Any, list[dict]] = {m: [] for m in tables}

        def add_run(experiment: str, name: str, start_ms: int, params: dict, metrics: dict, tags: dict) -> None:
            run_id = uuid.uuid4().hex
            pending[SqlRun].append(
                dict(
                    run_uuid=run_id,
                    name=name,
                    source_type="UNKNOWN",
                    source_name="",
                    entry_point_name="",
                    user_id="bench",
                    status="FINISHED",
                    start_time=start_ms,
                    end_time=start_ms + 30,
                    deleted_time=None,
                    source_version="",
                    lifecycle_stage="active",
                    artifact_uri=f"{artifact_root}/{exp_ids[experiment]}/{run_id}/artifacts",
                    experiment_id=int(exp_ids[experiment]),
                )
            )
            for k, v in params.items():
                pending[SqlParam].append(dict(key=k, value=str(v), run_uuid=run_id))
            for k, v in metrics.items():
                row = dict(key=k, value=float(v), timestamp=start_ms, step=0, is_nan=False, run_uuid=run_id)
                pending[SqlMetric].append(row)
                pending[SqlLatestMetric].append(dict(row))
            for k, v in {"mlflow.runName": name, **tags}.items():
                pending[SqlTag].append(dict(key=k, value=v, run_uuid=run_id))

        def flush() -> None:
            with store.ManagedSessionMaker(read_only=False) as session:
                for model in (SqlRun, SqlParam, SqlMetric, SqlLatestMetric, SqlTag):
                    if pending[model]:
                        session.execute(tables[model].insert(), pending[model])
                        pending[model] = []

        for k in range(1, cfg.dash_training_runs):
            params, metrics = training_values(k)
            start = now_ms - 10_000_000 + k * 1000
            add_run(TRAINING_EXPERIMENT, f"training_bench_{k:05d}", start, params, metrics, {})
        flush()
        model_path = "models/iris_model_20260101_000000_000000.pkl"
        for k in range(cfg.dash_inference_runs):
            start = now_ms - 5_000_000 + k * 100
            x = [round(float(rng.uniform(*IRIS_RANGES[f])), 1) for f in FEATURES]
            p = rng.dirichlet([1, 1, 1])
            c = int(p.argmax())
            stamp = datetime.fromtimestamp(start / 1000, UTC)
            params = {
                "prediction_type": "single",
                "model_path": model_path,
                "timestamp": stamp.isoformat(),
                **dict(zip(FEATURES, map(str, x), strict=False)),
                "predicted_class": CLASSES[c],
            }
            metrics = {
                "prediction_confidence": float(p[c]),
                "predicted_class_index": c,
                **{f"probability_{n}": float(v) for n, v in zip(CLASSES, p, strict=False)},
            }
            add_run(
                INFERENCE_EXPERIMENT,
                f"single_prediction_{stamp.strftime('%Y%m%d_%H%M%S_%f')}",
                start,
                params,
                metrics,
                {"prediction_id": uuid.uuid4().hex},
            )
            if len(pending[SqlRun]) >= 5000:
                flush()
        flush()
        store.engine.dispose()

        # Read a sample back through the public API.
        sample = client.search_runs(
            [exp_ids[INFERENCE_EXPERIMENT]], max_results=1, order_by=["attributes.start_time DESC"]
        )
        if not sample:
            raise RuntimeError("no inference run reads back after the bulk insert")
        got = sample[0]
        want_params = {"prediction_type", "model_path", "timestamp", *FEATURES, "predicted_class"}
        want_metrics = {"prediction_confidence", "predicted_class_index", *(f"probability_{n}" for n in CLASSES)}
        if not (
            want_params <= set(got.data.params)
            and want_metrics <= set(got.data.metrics)
            and got.data.tags.get("prediction_id")
            and got.info.status == "FINISHED"
        ):
            raise RuntimeError(f"a bulk-inserted run reads back incomplete: {got.data.params} {got.data.metrics}")
        trained = client.search_runs(
            [exp_ids[TRAINING_EXPERIMENT]], max_results=1, filter_string="attributes.run_name = 'training_bench_00001'"
        )
        if not trained or "accuracy" not in trained[0].data.metrics:
            raise RuntimeError("a bulk-inserted training run reads back incomplete")
        self.dash_exp_ids = exp_ids

    def anchor_count(self, workdir: Path) -> tuple[float, int, int]:
        from mlflow import MlflowClient
        from mlflow.entities import ViewType

        client = MlflowClient(tracking_uri=f"sqlite:///{workdir}/mlflow.db")
        start = time.perf_counter()
        counts = []
        for name in (TRAINING_EXPERIMENT, INFERENCE_EXPERIMENT):
            token, n = None, 0
            while True:
                page = client.search_runs(
                    [self.dash_exp_ids[name]], run_view_type=ViewType.ACTIVE_ONLY, max_results=1000, page_token=token
                )
                n += len(page)
                token = page.token
                if not token or time.perf_counter() - start > 600:
                    break
            counts.append(n)
        return time.perf_counter() - start, counts[0], counts[1]

    def anchor_newest(self, workdir: Path, reps: int) -> float | None:
        from mlflow import MlflowClient
        from mlflow.entities import ViewType

        client = MlflowClient(tracking_uri=f"sqlite:///{workdir}/mlflow.db")
        ids = list(self.dash_exp_ids.values())
        times = []
        for _ in range(reps + 1):
            start = time.perf_counter()
            client.search_runs(
                ids, run_view_type=ViewType.ACTIVE_ONLY, max_results=50, order_by=["attributes.start_time DESC"]
            )
            times.append(time.perf_counter() - start)
        return median(times[1:])

    def time_get(self, server: Server, path: str, warmups: int, samples: int) -> tuple[list[float], Any, list[str]]:
        """Latency of GET path in seconds: `samples` timings after `warmups`, within the time budget."""
        budget_end = time.perf_counter() + self.cfg.query_budget
        times, errors, body = [], [], None
        for i in range(warmups + samples):
            if time.perf_counter() > budget_end and (times or i >= warmups + 1):
                break
            start = time.perf_counter()
            try:
                status, body = http_json("GET", server.url + path, timeout=self.cfg.query_budget + 30)
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

    def step_dashboard(self) -> None:
        cfg = self.cfg
        total = cfg.dash_inference_runs + cfg.dash_training_runs
        workdir = self.mkdtemp("iris-bench-dash-")
        log(
            f"goal 5: populating a second store with {cfg.dash_inference_runs:,} inference and "
            f"{cfg.dash_training_runs} training runs"
        )
        start = time.perf_counter()
        self.populate(workdir)
        log(f"  populated and verified in {time.perf_counter() - start:.1f} s")
        server = self.start_ours(workdir, "ours-dashboard")
        try:
            up = server.wait_ready(60)
            log(f"  server on the populated store answered /health after {up:.1f} s")
            runs_path = "/mlflow/runs?max_results=50"
            runs_t, runs_body, runs_err = self.time_get(server, runs_path, 2, cfg.runs_samples)
            log(
                f"  GET {runs_path}: {len(runs_t)} timings, median {fmt_ms(1000 * median(runs_t)) if runs_t else 'n/a'}"
                + (f"; errors {runs_err[:2]}" if runs_err else "")
            )
            sum_t, sum_body, sum_err = self.time_get(server, "/mlflow/summary", 1, cfg.summary_samples)
            log(
                f"  GET /mlflow/summary: {len(sum_t)} timings, median "
                f"{fmt_ms(1000 * median(sum_t)) if sum_t else 'n/a'}" + (f"; errors {sum_err[:2]}" if sum_err else "")
            )
        finally:
            self.check_server_log(server)
            self.stop_server(server)
        log(f"  anchor: counting runs by paging search_runs (1000 a page) x{cfg.anchor_count_reps}")
        counts = [self.anchor_count(workdir) for _ in range(cfg.anchor_count_reps)]
        anchor_count_s = median([c[0] for c in counts])
        log(f"  paging count: {', '.join(f'{c[0]:.1f} s ({c[1]}+{c[2]})' for c in counts)}")
        newest_s = self.anchor_newest(workdir, 5)
        runs_ms = 1000 * median(runs_t) if runs_t else None
        anchor_runs_ms = None if newest_s is None or anchor_count_s is None else 1000 * (newest_s + anchor_count_s)
        runs_ok = runs_ms is not None and runs_ms <= 150
        total_ok = (
            isinstance(runs_body, dict) and runs_body.get("total") == total and len(runs_body.get("runs") or []) == 50
        )
        problems = (
            []
            if total_ok
            else [
                f"runs response: total {runs_body.get('total') if isinstance(runs_body, dict) else runs_body!r}, "
                f"{len(runs_body.get('runs') or []) if isinstance(runs_body, dict) else 0} runs (want total {total}, 50 runs)"
            ]
        )
        self.add(
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
        sum_ms = 1000 * median(sum_t) if sum_t else None
        want = {"total_runs": total, "training_runs": cfg.dash_training_runs, "inference_runs": cfg.dash_inference_runs}
        got = {k: sum_body.get(k) for k in want} if isinstance(sum_body, dict) else {}
        counts_ok = got == want
        acc = sum_body.get("avg_accuracy") if isinstance(sum_body, dict) else None
        if not counts_ok:
            problems.append(f"summary counts {got} (want {want})")
        if acc is None:
            problems.append("summary has no avg_accuracy")
        self.add(
            Row(
                "5",
                f"GET /mlflow/summary (median of {len(sum_t)}; anchor: counting by paging "
                f"search_runs, median of {len(counts)})",
                fmt_ms(sum_ms) + ("" if counts_ok else " (wrong counts)"),
                fmt_ms(1000 * anchor_count_s),
                faster(sum_ms, 1000 * anchor_count_s),
                "≤ 300 ms",
                "FAIL" if sum_ms is None else verdict(sum_ms <= 300 and counts_ok),
            )
        )
        self.add(
            Row(
                "5",
                "counts correct: runs total, summary total/training/inference runs, avg_accuracy present",
                "ok" if not problems else "; ".join(problems)[:300],
                target="yes",
                result="PASS" if not problems else "FAIL",
            )
        )
        self.details.append(f"/mlflow/runs timings (ms): {', '.join(f'{1000 * t:.0f}' for t in runs_t)}")
        self.details.append(
            f"/mlflow/summary timings (ms): {', '.join(f'{1000 * t:.0f}' for t in sum_t)}; "
            f"body {json.dumps(sum_body)[:300] if sum_body is not None else None}"
        )
        self.details.append(
            f"anchor newest-50 search_runs {fmt_ms(1000 * newest_s) if newest_s else 'n/a'}; "
            f"paging counts {[(round(c[0], 2), c[1], c[2]) for c in counts]}"
        )
        for e in (runs_err + sum_err)[:3]:
            self.note(f"dashboard query error: {e}")

    # the whole run

    def startup_row(self) -> None:
        anchor_up = getattr(self, "anchor_startup_s", None)
        s = getattr(self, "startup_s", None)
        if s is None:
            return
        self.add(
            Row(
                "6",
                "start-up in an empty directory until GET /health is 200 "
                "(anchor: mlflow models serve until /ping is 200)",
                fmt_s(s),
                fmt_s(anchor_up),
                faster(s, anchor_up),
                "≤ 8 s",
                verdict(s <= 8),
            )
        )

    def run(self) -> None:
        steps: list[tuple[str, Callable[[], None], bool]] = [
            ("start-up", self.step_startup, True),
            ("training", self.step_train, True),
            ("parity", self.step_parity, False),
            ("anchor start", self.step_anchor_start, False),
            ("load", self.step_load, True),
            ("goal 2", self.step_drain, False),
            ("batch", self.step_batch, False),
        ]
        if self.cfg.big:
            steps.append(("10M batch", self.step_big, False))
        for name, step, required in steps:
            try:
                step()
            except Exception as exc:
                self.note(f"{name} failed: {type(exc).__name__}: {exc}")
                log(traceback.format_exc())
                if required:
                    self.note("skipping the steps that need it")
                    break
            if self.ours is not None and not self.ours.alive():
                self.note(f"our server exited (code {self.ours.proc.returncode}): {self.ours.log_tail()}")
                break
        self.startup_row()
        if self.ours is not None:
            self.check_server_log(self.ours)
            self.stop_server(self.ours)
        try:
            self.step_dashboard()
        except Exception as exc:
            self.note(f"dashboard step failed: {type(exc).__name__}: {exc}")
            log(traceback.format_exc())
        for w in sorted(self.health_warnings):
            self.note(w)

    def check_server_log(self, server: Server) -> None:
        """Report 5xx responses, tracebacks (with the exception that ended each) and warnings in its log."""
        try:
            lines = server.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return
        status_5xx = [l for l in lines if re.search(r'HTTP/1\.[01]" 5\d\d', l)]
        exceptions: dict[str, int] = {}
        for i, line in enumerate(lines):
            if line.startswith("Traceback"):
                j = i + 1
                while j < len(lines) and (lines[j].startswith((" ", "\t")) or not lines[j].strip()):
                    j += 1
                last = lines[j].strip() if j < len(lines) else "?"
                exceptions[last[:200]] = exceptions.get(last[:200], 0) + 1
        errors = [l for l in lines if re.search(r"\b(ERROR|CRITICAL)\b", l)]
        warnings = [l for l in lines if "WARNING" in l]
        where = f" (log kept at {server.log_path})" if self.keep else ""
        if status_5xx:
            self.note(
                f"{server.name} answered {len(status_5xx)} request(s) with 5xx, e.g. {status_5xx[0][:200]}{where}"
            )
        if exceptions:
            summary = "; ".join(f"{n}× {e}" for e, n in sorted(exceptions.items(), key=lambda kv: -kv[1])[:3])
            self.note(f"{server.name} logged {sum(exceptions.values())} traceback(s): {summary}{where}")
        elif errors:
            self.note(f"{server.name} logged {len(errors)} ERROR line(s), e.g. {errors[0][:300]}{where}")
        if warnings:
            self.note(f"{server.name} logged {len(warnings)} WARNING line(s), e.g. {warnings[0][:300]}{where}")

    def cleanup(self) -> None:
        for server in list(self.servers):
            try:
                self.stop_server(server)
            except Exception as exc:
                log(f"could not stop {server.name}: {exc}")
        for path in self.tmpdirs:
            if self.keep:
                log(f"kept {path}")
            else:
                shutil.rmtree(path, ignore_errors=True)

    # report

    def machine(self) -> list[str]:
        cpu = "unknown"
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        mem = None
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemTotal:"):
                    mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
        except OSError:
            pass
        date = subprocess.run(["date", "-u"], capture_output=True, text=True).stdout.strip()
        nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
        code = (
            "import importlib, platform\n"
            "out = {'python': platform.python_version()}\n"
            "for m in ('mlflow', 'sklearn', 'onnxruntime', 'skl2onnx', 'fastapi', 'uvicorn', 'pyarrow', 'pandas'):\n"
            "    try:\n        out[m] = importlib.import_module(m).__version__\n"
            "    except Exception:\n        out[m] = 'not installed'\n"
            "import json; print(json.dumps(out))"
        )
        try:
            versions = json.loads(
                subprocess.run([str(PYTHON), "-c", code], capture_output=True, text=True, timeout=120).stdout
            )
        except Exception:
            versions = {}
        wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.strip().splitlines()
        mode = "--quick (short smoke run: fewer repetitions, shorter loads)" if self.cfg.quick else "full"
        return [
            f"- date: {date}",
            f"- machine: {nproc} CPUs ({cpu}), {mem} memory, {platform.platform()}",
            "- versions: "
            + ", ".join(f"{k} {v}" for k, v in versions.items())
            + (f", {wrk_v[0].split('[')[0].strip()}" if wrk_v else ""),
            f"- mode: {mode}" + (", with the 10,000,000-row batch" if self.cfg.big else ""),
            f"- load: wrk, {self.cfg.wrk_seconds} s a run, {self.cfg.our_reps} runs each for this server, "
            f"{self.cfg.anchor_reps} for the anchor; goal 2 load {self.cfg.drain_load_seconds} s",
        ]

    def report(self) -> str:
        head = ["goal", "what", "ours", "anchor", "ratio", "target", "result"]
        lines = ["# Benchmark results", "", "`make bench` (bench/bench.py); see bench/README.md.", ""]
        lines += self.machine() + [""]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join("---" for _ in head) + "|")

        def order(r):
            return float(re.match(r"\d+", r.goal).group()) + (0.5 if "–" in r.goal else 0)

        for r in sorted(self.rows, key=order):
            cells = [r.goal, r.what, r.ours, r.anchor, r.ratio, r.target, r.result]
            lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
        passed = sum(r.result == "PASS" for r in self.rows)
        failed = sum(r.result == "FAIL" for r in self.rows)
        lines += ["", f"{passed} PASS, {failed} FAIL, {sum(r.result == 'n/a' for r in self.rows)} n/a."]
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        if self.details:
            lines += ["", "## Details", ""] + [f"- {d}" for d in self.details]
        return "\n".join(lines) + "\n"


def main() -> int:
    if PYTHON.exists() and Path(sys.prefix).resolve() != PYTHON.parent.parent.resolve():
        os.execv(str(PYTHON), [str(PYTHON), *sys.argv])  # the bench imports the venv's mlflow and pandas
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a ~2-minute smoke run: shorter loads, fewer repetitions")
    parser.add_argument("--big", action="store_true", help="also upload a 10,000,000-row CSV (about 260 MB)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories (logs, databases)")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"where to write the table (default {RESULTS})")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: `apt-get install wrk` (make bench does it)", file=sys.stderr)
        return 2
    if not PYTHON.exists():
        print(f"{PYTHON} is missing: run `make bench` (it creates the venv)", file=sys.stderr)
        return 2
    bench = Bench(Config.make(args.quick, args.big), keep=args.keep)

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    try:
        bench.run()
    except KeyboardInterrupt:
        bench.note("interrupted")
    finally:
        bench.cleanup()
    text = bench.report()
    print()
    print(text)
    args.output.write_text(text)
    log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

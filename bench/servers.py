"""HTTP on 127.0.0.1, the server processes (ours and the anchor), their health and their logs."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench.config import MAIN, MLFLOW, PYTHON, VENV_BIN
from bench.console import log


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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
    """The status and the parsed body; a body that is not JSON comes back as (at most 500 chars of) text."""
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
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = cwd / f"{name}.log"
        self.started_at = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} is not running")
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.returncode

    def start(self) -> None:
        # The child writes to its own copy of the descriptor, so ours can close right away.
        with open(self.log_path, "ab") as log_file:
            self.started_at = time.perf_counter()
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, limit: float) -> float:
        """Seconds from spawn until GET ready_path answers 200; raises after `limit` seconds."""
        deadline = self.started_at + limit
        while time.perf_counter() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.returncode}; log tail: {self.log_tail()}")
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
        # whatever is left of the group (the tracking worker, mlflow's uvicorn child)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self.proc = None


def base_env() -> dict[str, str]:
    # The defaults: no IRIS_* setting (window threshold, journal, ...) and no MLflow URI from outside.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IRIS_", "MLFLOW_")) and k != "VIRTUAL_ENV"}
    # mlflow models serve runs `uvicorn` by name: the venv's bin must come first on PATH.
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def our_server(workdir: Path, name: str) -> Server:
    """`python main.py` on a free port in workdir (not started)."""
    port = free_port()
    return Server(name, [str(PYTHON), str(MAIN), "--port", str(port)], workdir, base_env(), port, "/health")


def anchor_server(workdir: Path, model_uri: str) -> Server:
    """`mlflow models serve` of the model, on the store in workdir (not started)."""
    port = free_port()
    env = base_env()
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir}/mlflow.db"
    argv = [str(MLFLOW), "models", "serve", "-m", model_uri, "--env-manager", "local"]
    argv += ["-p", str(port), "-h", "127.0.0.1"]
    return Server("anchor", argv, workdir, env, port, "/ping")


# -- health polling --------------------------------------------------------------------------------


def health(server: Server, timeout: float = 5.0) -> dict[str, Any] | None:
    try:
        status, body = http_json("GET", server.url + "/health", timeout=timeout)
    except (OSError, urllib.error.URLError):
        return None
    return body if status == 200 and isinstance(body, dict) else None


def pending(server: Server, warnings: set[str], timeout: float = 5.0) -> tuple[bool, int | None]:
    """(answered, pending_inference_records); the field may be absent or null. Oddities go to `warnings`."""
    body = health(server, timeout)
    if body is None:
        return False, None
    if "pending_inference_records" not in body:
        warnings.add("GET /health has no `pending_inference_records` field")
        return True, None
    if body.get("tracking_error"):
        warnings.add(f"tracking_error: {str(body['tracking_error'])[:200]}")
    return True, body["pending_inference_records"]


def wait_drained(server: Server, warnings: set[str], limit: float) -> float | None:
    """Seconds until pending_inference_records == 0 (null counts as not yet), or None after `limit`."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        answered, count = pending(server, warnings)
        if answered and count == 0:
            return time.perf_counter() - start
        time.sleep(0.2)
    return None


# -- /proc: the server's memory and children -------------------------------------------------------


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


# -- the server's log ------------------------------------------------------------------------------


def log_findings(server: Server, keep: bool) -> list[str]:
    """Notes on 5xx responses, tracebacks (with the exception that ended each) and warnings in its log."""
    try:
        lines = server.log_path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    status_5xx = [line for line in lines if re.search(r'HTTP/1\.[01]" 5\d\d', line)]
    exceptions: dict[str, int] = {}
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            j = i + 1
            while j < len(lines) and (lines[j].startswith((" ", "\t")) or not lines[j].strip()):
                j += 1
            last = lines[j].strip() if j < len(lines) else "?"
            exceptions[last[:200]] = exceptions.get(last[:200], 0) + 1
    errors = [line for line in lines if re.search(r"\b(ERROR|CRITICAL)\b", line)]
    warnings = [line for line in lines if "WARNING" in line]
    where = f" (log kept at {server.log_path})" if keep else ""
    notes = []
    if status_5xx:
        notes.append(f"{server.name} answered {len(status_5xx)} request(s) with 5xx, e.g. {status_5xx[0][:200]}{where}")
    if exceptions:
        summary = "; ".join(f"{n}× {e}" for e, n in sorted(exceptions.items(), key=lambda kv: -kv[1])[:3])
        notes.append(f"{server.name} logged {sum(exceptions.values())} traceback(s): {summary}{where}")
    elif errors:
        notes.append(f"{server.name} logged {len(errors)} ERROR line(s), e.g. {errors[0][:300]}{where}")
    if warnings:
        notes.append(f"{server.name} logged {len(warnings)} WARNING line(s), e.g. {warnings[0][:300]}{where}")
    return notes

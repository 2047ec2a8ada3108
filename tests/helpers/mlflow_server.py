"""A real `mlflow server` (the `mlflow` executable beside the tests' Python) as a subprocess.

Imported as `tests.helpers.mlflow_server`. The server runs in its own process group (the CLI and its
uvicorn workers), so `stop` ends all of it; its output goes to a log file in its folder, whose tail
failure messages quote. Its environment is the shell's without the platform's settings (see
`tests.helpers.server_process.server_environment`), and without MLflow's job runner, which tracking
does not need and which slows the start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from tests.helpers.server_process import free_port, server_environment

MLFLOW = Path(sys.executable).with_name("mlflow")
START_TIMEOUT_S = 60.0


class MlflowServer:
    """`mlflow server --backend-store-uri <uri> [--artifacts-destination <dir>] --host 127.0.0.1 --port <free>`.

    Started by the constructor; `wait_healthy` waits for GET /health to answer 200. With an
    `artifacts_destination` the server proxies artifacts (clients get `mlflow-artifacts:/` locations
    and never see the folder); without one, MLflow's default (`./mlartifacts` in `directory`).
    """

    def __init__(
        self,
        directory: Path,
        backend_store_uri: str,
        *,
        artifacts_destination: Path | None = None,
        workers: int = 1,
        **env: str | None,
    ):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.backend_store_uri = backend_store_uri
        self.artifacts_destination = Path(artifacts_destination) if artifacts_destination else None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [str(MLFLOW), "server", "--backend-store-uri", backend_store_uri]
        if self.artifacts_destination is not None:
            argv += ["--artifacts-destination", str(self.artifacts_destination)]
        argv += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers)]
        self.log_path = self.directory / f"mlflow-server-{self.port}.log"
        with open(self.log_path, "wb") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                argv,
                cwd=self.directory,
                env=server_environment(**{"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **env}),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # leads its own group: its uvicorn workers stop with it
            )

    def output(self, chars: int = 3000) -> str:
        """The tail of the server's stdout and stderr, for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def wait_healthy(self, timeout: float = START_TIMEOUT_S) -> float:
        """Seconds until GET /health answered 200; fails the test if the server exits or stays silent."""
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"mlflow server exited with {self.process.returncode}: {self.output()}")
            with contextlib.suppress(httpx2.TransportError):
                if httpx2.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return time.monotonic() - started
            time.sleep(0.2)
        pytest.fail(f"mlflow server did not answer /health within {timeout}s: {self.output()}")

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM to the group, up to `grace_s` for the leader to exit, then SIGKILL for anything left."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)  # the group this helper started, by its leader's pid
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(grace_s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # workers the leader left behind, or a hung leader
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)

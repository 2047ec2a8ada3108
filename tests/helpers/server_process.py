"""The real server (`python main.py --port <free port>`) as a subprocess, for the suites that need sockets or signals.

Imported as `tests.helpers.server_process`. The child's environment is the shell's without any IRIS_* or
MLFLOW_TRACKING_URI variable, plus what the test passes: a developer's own settings never reach a test server.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

MAIN = Path(__file__).resolve().parents[2] / "main.py"
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_platform_setting(name: str) -> bool:
    """A variable the server reads its settings from (config.py): IRIS_* and MLflow's tracking URI."""
    return name.startswith("IRIS_") or name == "MLFLOW_TRACKING_URI"


def server_environment(**env: str | None) -> dict[str, str]:
    """os.environ minus every platform setting, plus `env` (a value of None leaves the variable out)."""
    environment = {k: v for k, v in os.environ.items() if not is_platform_setting(k)}
    for name, value in env.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return environment


class ServerProcess:
    """`python main.py --port <port>` in `directory`, in its own process group (with its tracking worker).

    The child inherits the environment without the platform's settings (see `server_environment`), so a
    store or folder set in the developer's shell is never written to: unless the test passes them, the
    server uses its defaults, sqlite:///mlflow.db, models/ and journal/ in `directory`.
    """

    def __init__(
        self, directory: Path, *, python: str | Path = sys.executable, argv: list[str] | None = None, **env: str | None
    ):
        """`argv` starts the server another way (the console script, `-m iris_platform`); `--port` is added."""
        self.directory = Path(directory)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = server_environment(**env)
        # A file, not a pipe: nobody reads a pipe while the tests run, and a full one would block the server.
        # Named by port: a test may start several servers in one directory (a crash, then a restart).
        self.log_path = self.directory / f"server-{self.port}.log"
        with open(self.log_path, "wb") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [*(argv or [str(python), str(MAIN)]), "--port", str(self.port)],
                cwd=self.directory,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the server leads a new process group: its worker can be found after a crash
            )

    @property
    def tracking_uri(self) -> str:
        """The store the server writes to (as config.py resolves it: the variable if set, else its default)."""
        return self.env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.directory}/mlflow.db"

    def output(self, chars: int = 3000) -> str:
        """The tail of the server's stdout and stderr, for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def wait_healthy(self, timeout: float = START_TIMEOUT_S) -> dict:
        """The /health JSON once it answers 200; fails the test if the server exits or stays silent."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"server exited with {self.process.returncode}: {self.output()}")
            try:
                response = httpx2.get(f"{self.url}/health", timeout=2)
                if response.status_code == 200:
                    return response.json()
            except httpx2.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(f"server did not answer /health within {timeout}s: {self.output()}")

    def crash(self) -> None:
        """SIGKILL the server process only: its tracking worker is orphaned, as after a real crash."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self, grace_s: float = 40.0, whole_group: bool = False) -> None:
        """SIGTERM, up to `grace_s` to exit, then `kill()` for anything left.

        By default only the server gets SIGTERM: uvicorn shuts down and the server lets its worker write
        what is journaled. `whole_group` sends it to the worker too, which then exits at once.
        """
        if self.process.poll() is None:
            try:
                if whole_group:
                    os.killpg(self.process.pid, signal.SIGTERM)
                else:
                    self.process.send_signal(signal.SIGTERM)
                self.process.wait(grace_s)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def kill(self) -> None:
        """SIGKILL the whole group at once: the server and anything left in it (an orphaned tracking worker)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # the group this test started, by its leader's pid
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)

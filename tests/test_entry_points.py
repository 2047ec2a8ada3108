"""The three ways to start the server (`iris-platform`, `python -m iris_platform`, `python main.py`) all serve."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest

from tests.helpers.api import wait_until
from tests.helpers.server_process import ServerProcess, free_port, server_environment

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "iris-platform"

pytestmark = pytest.mark.slow


def serve(argv: list[str], directory: Path) -> dict:
    """Start the server with `argv --port <free port>` in `directory`, return its /health, stop it."""
    server = ServerProcess(directory, argv=argv)
    try:
        return server.wait_healthy()
    finally:
        server.stop()


@pytest.mark.parametrize(
    "argv",
    [[str(SCRIPT)], [sys.executable, "-m", "iris_platform"], [sys.executable, str(ROOT / "main.py")]],
    ids=["console-script", "python-m", "main.py"],
)
def test_each_entry_point_serves_on_the_default_store(argv, tmp_path):
    assert Path(argv[0]).exists(), f"{argv[0]} is not installed: `pip install -e .` makes it"
    health = serve(argv, tmp_path)
    assert health["status"] == "healthy"
    assert health["tracking_uri"] == "sqlite:///mlflow.db"  # the embedded default, in the working directory
    assert (tmp_path / "mlflow.db").is_file()


def test_help_names_the_flags_and_their_variables():
    done = subprocess.run([str(SCRIPT), "serve", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--host" in done.stdout and "IRIS_HOST" in done.stdout
    assert "--port" in done.stdout and "IRIS_PORT" in done.stdout


def test_help_lists_the_commands():
    done = subprocess.run([str(SCRIPT), "-h"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for command in ("serve", "train", "predict", "batch", "runs", "models", "promote", "rollback", "tune"):
        assert f" {command} " in done.stdout, command


def test_make_run_passes_its_flags(tmp_path):
    # `make run ARGS="--port N"` as the README gives it; the store and folders are the test's own.
    port = free_port()
    env = server_environment(
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/mlflow.db",
        IRIS_MODELS_DIR=str(tmp_path / "models"),
        IRIS_JOURNAL_DIR=str(tmp_path / "journal"),
    )
    log = tmp_path / "make-run.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            ["make", "-s", "-C", str(ROOT), "run", f"ARGS=--port {port}"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        health = wait_until(lambda: _health(port), 90, f"make run on port {port}: {log.read_text()[-2000:]}")
        assert health["status"] == "healthy"
        assert health["tracking_uri"] == f"sqlite:///{tmp_path}/mlflow.db"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def _health(port: int) -> dict | None:
    try:
        response = httpx2.get(f"http://127.0.0.1:{port}/health", timeout=2)
    except httpx2.TransportError:
        return None
    return response.json() if response.status_code == 200 else None

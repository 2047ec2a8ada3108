"""The three ways to start the server (`iris-platform`, `python -m iris_platform`, `python main.py`) all serve."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from tests.helpers.server_process import free_port, server_environment

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "iris-platform"

pytestmark = pytest.mark.slow


def serve(argv: list[str], directory: Path) -> dict:
    """Start the server with `argv --port <free port>` in `directory`, return its /health, stop it."""
    port = free_port()
    log = directory / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [*argv, "--port", str(port)], cwd=directory, env=server_environment(), stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, f"exited with {process.returncode}: {log.read_text()[-2000:]}"
            try:
                response = httpx2.get(f"http://127.0.0.1:{port}/health", timeout=2)
                if response.status_code == 200:
                    return response.json()
            except httpx2.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(f"no /health within 60 s: {log.read_text()[-2000:]}")
    finally:
        process.terminate()
        process.wait(40)


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
    done = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--host" in done.stdout and "IRIS_HOST" in done.stdout
    assert "--port" in done.stdout and "IRIS_PORT" in done.stdout

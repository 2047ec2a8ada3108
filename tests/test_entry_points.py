"""The three ways to start the server (`iris-platform`, `python -m iris_platform`, `python main.py`) all serve."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.server_process import ServerProcess

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
    done = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--host" in done.stdout and "IRIS_HOST" in done.stdout
    assert "--port" in done.stdout and "IRIS_PORT" in done.stdout

"""Real-browser tests: the real server in a subprocess, driven by Debian's headless Chromium.

Each test module gets its own server (`python main.py --port <free port>`) working in a temporary
directory, so its sqlite MLflow store, models and journal start empty. Each test gets a fresh
browser context whose every request is checked: anything that is not for the server is recorded and
aborted, and the test fails at teardown if the page asked for another host, logged a console error,
threw an uncaught exception or opened a JavaScript dialog (alert/confirm/prompt).

Screenshots of the main states go to test-artifacts/screenshots/<state>.png at the repository root.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.helpers.api import wait_until
from tests.helpers.server_process import ServerProcess

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
TRAIN_CSV = EXAMPLES / "iris_train.csv"
BATCH_CSV = EXAMPLES / "iris_batch.csv"
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
# The project's virtual environment (what `make test` builds), else the interpreter running pytest.
PYTHON = REPO / ".venv" / "bin" / "python" if (REPO / ".venv" / "bin" / "python").exists() else Path(sys.executable)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
FAST_TREES = 20  # small forests keep each training around a second
SERVER_START_TIMEOUT_S = 60
PAGE_SIZE = 25  # the dashboard's runs page (RUNS_PAGE in static/js/runs.js; test_page_modules checks)


# -- the server ----------------------------------------------------------------------------------


class Server(ServerProcess):
    """The server, with a client on its URL whose get/post insist on 200 and return the JSON."""

    def __init__(self, directory: Path):
        super().__init__(directory, python=PYTHON, IRIS_API_TOKEN=None)  # the page under test is the open one
        self.http = httpx2.Client(base_url=self.url, timeout=60)

    def get(self, path: str, **kwargs: Any) -> Any:
        response = self.http.get(path, **kwargs)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text[:500]}"
        return response.json()

    def post(self, path: str, **kwargs: Any) -> Any:
        response = self.http.post(path, **kwargs)
        assert response.status_code == 200, f"POST {path}: {response.status_code} {response.text[:500]}"
        return response.json()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("server"))
    try:
        server.wait_healthy(SERVER_START_TIMEOUT_S)
        yield server
    finally:
        server.http.close()
        # The whole group, worker included: the module's store is thrown away, so nothing need be written first.
        server.stop(grace_s=15, whole_group=True)


# -- the browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (make test does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class PageWatch:
    """What the page did that it must not: requests elsewhere, console errors, script errors, dialogs."""

    outside_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return (
            [f"request to another host: {u}" for u in self.outside_requests]
            + [f"console error: {m}" for m in self.console_errors]
            + [f"uncaught error: {m}" for m in self.page_errors]
            + [f"JavaScript dialog opened: {m}" for m in self.dialogs]
        )


@pytest.fixture
def watch() -> PageWatch:
    return PageWatch()


@pytest.fixture
def page(browser: Browser, server: Server, watch: PageWatch) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=False)
    context.set_default_timeout(15_000)
    own_host = f"127.0.0.1:{server.port}"

    def guard(route, request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme == "http" and parts.netloc == own_host:
            route.continue_()
        else:
            watch.outside_requests.append(request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.on("console", lambda msg: msg.type == "error" and watch.console_errors.append(f"{msg.text} at {msg.location}"))
    page.on("pageerror", lambda error: watch.page_errors.append(str(error)))

    def on_dialog(dialog) -> None:
        watch.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    try:
        yield page
        problems = watch.problems()
        assert not problems, "the page misbehaved:\n" + "\n".join(problems)
    finally:
        context.close()


# -- helpers the tests share ----------------------------------------------------------------------


def screenshot(page: Page, state: str, full_page: bool = True) -> Path:
    """The whole page, or (full_page=False, for an open dialog) what the viewport shows."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{state}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def open_dashboard(page: Page, server: Server, query: str = "") -> None:
    """Open the page and wait until health, models and the runs table have all been rendered.

    Inference records still queued by an earlier test are written first, so the page and the API
    calls the test makes next read the same store.
    """
    wait_tracking_drained(server)
    page.goto(f"{server.url}/{query}")
    wait_ready(page)


def wait_ready(page: Page) -> None:
    page.wait_for_function("""() =>
        !document.getElementById('health').textContent.startsWith('Checking')
        && document.querySelectorAll('#models li').length > 0
        && document.getElementById('page-info').textContent !== ''
        && document.getElementById('last-refresh').textContent.startsWith('Last refreshed')
        && document.querySelectorAll('#feature-inputs input').length > 0""")


def row_ids(page: Page) -> list[str]:
    return page.eval_on_selector_all("#runs tr[data-run-id]", "rows => rows.map(r => r.dataset.runId)")


def wait_rows(page: Page, expected: list[str], timeout: float = 15_000) -> None:
    """Wait until the runs table lists exactly these run ids, in this order."""
    try:
        page.wait_for_function(
            """ids => JSON.stringify([...document.querySelectorAll('#runs tr[data-run-id]')]
                .map(r => r.dataset.runId)) === JSON.stringify(ids)""",
            arg=expected,
            timeout=timeout,
        )
    except PlaywrightTimeoutError:
        raise AssertionError(f"the runs table shows {row_ids(page)}, the API lists {expected}") from None


def api_runs(
    server: Server,
    run_type: str | None = None,
    search: str | None = None,
    order_by: str = "start_time",
    order: str = "desc",
    max_results: int = PAGE_SIZE,
) -> list[dict]:
    """The runs the page's current view asks for, as the API lists them."""
    params = {"order_by": order_by, "order": order, "max_results": max_results, "page": 1}
    if run_type:
        params["run_type"] = run_type
    if search:
        params["search"] = search
    return server.get("/mlflow/runs", params=params)["runs"]


def stats(page: Page, card_selector: str) -> dict[str, str]:
    """A result card's statistics, label to shown value."""
    return dict(
        page.eval_on_selector_all(
            f"{card_selector} .stat",
            "stats => stats.map(s => [s.querySelector('.label').textContent, s.querySelector('.value').textContent])",
        )
    )


def key_value_sections(page: Page, container: str) -> dict[str, dict[str, str]]:
    """The run popup's sections (Params, Metrics, Tags, Artifacts), each as key to shown text."""
    return page.evaluate(
        """container => {
        const sections = {};
        for (const h3 of document.querySelectorAll(`${container} h3`)) {
            const table = h3.nextElementSibling;
            const rows = table && table.tagName === 'TABLE' ? [...table.querySelectorAll('tr')] : [];
            sections[h3.textContent] = Object.fromEntries(
                rows.map(r => [r.querySelector('th').textContent, r.querySelector('td').textContent]));
        }
        return sections;
    }""",
        container,
    )


def poll(condition: Callable[[], Any], timeout: float = 30, message: str = "condition") -> Any:
    """Poll a condition on the server (not the page) until it holds."""
    return wait_until(condition, timeout, f"timed out waiting for {message}", interval=0.2)


def wait_tracking_drained(server: Server) -> None:
    poll(lambda: server.get("/health")["pending_inference_records"] == 0, message="the tracking writer to drain")


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# -- state a test needs when it runs on its own ---------------------------------------------------


def training_runs(server: Server) -> list[dict]:
    return server.get("/mlflow/runs", params={"run_type": "training", "max_results": 1000})["runs"]


def ensure_training_runs(server: Server) -> None:
    """At least one training run on the bundled data and one on an uploaded CSV (so two models)."""
    sources = {r["params"].get("data_source") for r in training_runs(server)}
    if "sklearn_iris" not in sources:
        server.post("/train", data={"n_estimators": FAST_TREES})
    if "uploaded_csv" not in sources:
        with open(TRAIN_CSV, "rb") as f:
            server.post("/train", data={"n_estimators": FAST_TREES}, files={"file": (TRAIN_CSV.name, f, "text/csv")})


def ensure_batch_run(server: Server) -> None:
    ensure_training_runs(server)
    if not server.get("/mlflow/runs", params={"search": "batch_prediction_", "max_results": 1})["runs"]:
        with open(BATCH_CSV, "rb") as f:
            server.post("/predict_batch", files={"file": (BATCH_CSV.name, f, "text/csv")})

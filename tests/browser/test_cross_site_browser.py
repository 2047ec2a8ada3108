"""The cross-site guard in a real browser: other sites' pages cannot drive the server, its own pages can.

A second Chromium resolves made-up names to this machine (`--host-resolver-rules`), so a page of
evil.example or app.example, served by a static server of the test's own on 127.0.0.1, is another
site to the browser: it sends Origin, Sec-Fetch-Site and Host exactly as it would for a real one.
The attacks are the two a browser makes possible: a form another site posts (CSRF, no preflight
needed) and a name that resolves to the server (DNS rebinding, where the browser thinks the page
and the API are one origin). After each, the server's own API shows that nothing was trained,
switched or predicted.
"""

from __future__ import annotations

import functools
import html
import json
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.helpers.server_process import ServerProcess

from .conftest import (
    BATCH_CSV,
    CHROMIUM,
    CHROMIUM_ARGS,
    PYTHON,
    SERVER_START_TIMEOUT_S,
    Server,
    training_runs,
    wait_tracking_drained,
)

FEW_TREES = 5
EVIL = "evil.example"  # another site, whose pages attack
FRIEND = "app.example"  # another site, named in IRIS_CORS_ALLOWED_ORIGINS of the second server
FLOWER = {"sepal_length": 6.0, "sepal_width": 2.7, "petal_length": 5.0, "petal_width": 1.6}


# -- another site: a static server on another port, reached under made-up names ---------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class StaticSite:
    """http.server in a thread on 127.0.0.1, serving the files the test writes; any name mapped to
    127.0.0.1 reaches it, so http://evil.example:<port>/x.html is a page of evil.example."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(directory)))
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="static-site", daemon=True)
        self.thread.start()

    def page(self, site: str, name: str, body: str) -> str:
        """Write an HTML page; returns its address on `site`."""
        (self.directory / name).write_text(f"<!doctype html>\n<title>{name}</title>\n{body}\n", encoding="utf-8")
        return self.url(site, name)

    def url(self, site: str, name: str = "") -> str:
        return f"http://{site}:{self.port}/{name}"

    def origin(self, site: str) -> str:
        return f"http://{site}:{self.port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[StaticSite]:
    site = StaticSite(tmp_path_factory.mktemp("other-site"))
    try:
        site.page(EVIL, "blank.html", "<p>evil</p>")
        yield site
    finally:
        site.close()


@pytest.fixture(scope="module")
def mapped_browser(browser: Browser) -> Iterator[Browser]:
    """A Chromium of its own whose DNS sends evil.example and app.example to 127.0.0.1."""
    rules = f"--host-resolver-rules=MAP {EVIL} 127.0.0.1, MAP {FRIEND} 127.0.0.1"
    mapped = browser.browser_type.launch(executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, rules])
    try:
        yield mapped
    finally:
        mapped.close()


@pytest.fixture
def mapped(mapped_browser: Browser) -> Iterator[BrowserContext]:
    """A fresh context of the mapped browser. Its pages reach other hosts and log errors on purpose
    (refused requests), so unlike the `page` fixture it neither aborts them nor fails on them."""
    context = mapped_browser.new_context()
    context.set_default_timeout(15_000)
    try:
        yield context
    finally:
        context.close()


# -- what the server holds ------------------------------------------------------------------------------


def server_state(server: Server) -> dict[str, Any]:
    """What a forged request would change: training runs, batch runs and the champion."""
    wait_tracking_drained(server)
    models = server.get("/models")
    batches = server.get("/mlflow/runs", params={"search": "batch_prediction_", "max_results": 1000})["runs"]
    return {
        "training runs": len(training_runs(server)),
        "batch runs": len(batches),
        "champion": models["champion"],
        "versions": sorted(m["version"] for m in models["models"] if m["version"]),
    }


def ensure_versions(server: Server, count: int) -> None:
    while len(server_state(server)["versions"]) < count:
        server.post("/train", data={"n_estimators": FEW_TREES})


# -- pages that attack ----------------------------------------------------------------------------------


def hidden_fields(fields: dict[str, str]) -> str:
    return "\n".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in fields.items()
    )


def form_page(action: str, fields: dict[str, str], multipart: bool = False, csv_file: str | None = None) -> str:
    """A form that posts itself to `action` as soon as the page loads; `csv_file` is put in a file input
    (as a page can, through DataTransfer) so the post carries an upload."""
    enctype = "multipart/form-data" if multipart or csv_file is not None else "application/x-www-form-urlencoded"
    attach = ""
    if csv_file is not None:
        attach = f"""
        const files = new DataTransfer();
        files.items.add(new File([{json.dumps(csv_file)}], "batch.csv", {{type: "text/csv"}}));
        document.getElementById("file").files = files.files;"""
    return f"""<form id="attack" method="post" action="{html.escape(action)}" enctype="{enctype}">
{hidden_fields(fields)}
{'<input type="file" name="file" id="file">' if csv_file is not None else ""}
</form>
<script>
    window.addEventListener("load", () => {{{attach}
        document.getElementById("attack").submit();
    }});
</script>"""


def submit_from(page: Page, attack_url: str, action: str) -> tuple[int, dict[str, Any]]:
    """Open the attacking page, let its form post itself, and return the answer the browser got
    (status and JSON) once it shows it as the page."""
    with page.expect_response(lambda r: r.url == action and r.request.method == "POST", timeout=30_000) as answer:
        page.goto(attack_url, wait_until="commit")
    page.wait_for_url(action)
    page.wait_for_load_state()
    response = answer.value
    return response.status, response.json()


def shown_text(page: Page) -> str:
    return page.locator("body").inner_text()


def fetch(page: Page, url: str, init: dict[str, Any] | None = None, form: dict[str, str] | None = None) -> Any:
    """fetch() from the page: {status, body} of the answer, or {error} when the browser refuses it
    (a failed preflight: TypeError: Failed to fetch). `form` is sent as FormData (multipart, no preflight)."""
    return page.evaluate(
        """async ([url, init, form]) => {
            init = init || {};
            if (form) {
                init.body = new FormData();
                for (const [k, v] of Object.entries(form)) init.body.append(k, v);
            }
            try {
                const response = await fetch(url, init);
                if (response.type === "opaque") return {status: 0, body: null, opaque: true};
                const text = await response.text();
                let body = text;
                try { body = JSON.parse(text); } catch (e) {}
                return {status: response.status, body};
            } catch (error) {
                return {error: `${error.name}: ${error.message}`};
            }
        }""",
        [url, init, form],
    )


def json_post(body: dict[str, Any]) -> dict[str, Any]:
    return {"method": "POST", "headers": {"content-type": "application/json"}, "body": json.dumps(body)}


def attack_form(server: Server, attack: str, older_version: str) -> str:
    """The page of evil.example that posts one forged form to the server."""
    if attack == "train":  # urlencoded, as a plain <form> sends
        return form_page(f"{server.url}/train", {"n_estimators": str(FEW_TREES)})
    if attack == "load_model":  # multipart: switch the champion back to an older version
        return form_page(f"{server.url}/load_model", {"version": older_version}, multipart=True)
    assert attack == "predict_batch"  # multipart with a CSV the page made itself
    return form_page(f"{server.url}/predict_batch", {}, csv_file=BATCH_CSV.read_text())


# -- the tests ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("attack", ["train", "load_model", "predict_batch"])
def test_another_sites_form_post_is_refused_and_changes_nothing(
    server: Server, site: StaticSite, mapped: BrowserContext, attack: str
):
    """CSRF: a page of evil.example posts a form to the server (no preflight; the browser sends it as
    it would with the user's cookies). The guard answers 403 naming IRIS_CORS_ALLOWED_ORIGINS, the
    browser shows that answer, and nothing was trained, switched or predicted."""
    ensure_versions(server, 2)  # so switching the champion back to an older version would show
    before = server_state(server)
    older = next(v for v in before["versions"] if v != before["champion"])
    action = f"{server.url}/{attack}"
    attack_url = site.page(EVIL, f"attack-{attack}.html", attack_form(server, attack, older))
    page = mapped.new_page()

    status, answer = submit_from(page, attack_url, action)

    assert status == 403, f"{status} {answer}"
    assert "IRIS_CORS_ALLOWED_ORIGINS" in answer["detail"], answer
    assert site.origin(EVIL) in answer["detail"], answer  # it names the page's site
    assert "IRIS_CORS_ALLOWED_ORIGINS" in shown_text(page), f"the browser shows {shown_text(page)!r}"
    assert server_state(server) == before


def test_a_name_rebound_to_the_server_gets_400(server: Server, mapped: BrowserContext):
    """DNS rebinding: evil.example resolves to the server, so to the browser the server's answers are
    evil.example's own (same origin, readable, Sec-Fetch-Site: same-origin). The Host header still
    says evil.example: the page and every request from it get 400 naming IRIS_ALLOWED_HOSTS."""
    ensure_versions(server, 1)
    before = server_state(server)
    rebound = f"http://{EVIL}:{server.port}"
    page = mapped.new_page()
    response = page.goto(f"{rebound}/")
    assert response is not None
    assert response.status == 400
    assert "IRIS_ALLOWED_HOSTS" in response.json()["detail"]
    assert "IRIS_ALLOWED_HOSTS" in shown_text(page)

    read = fetch(page, "/mlflow/runs")
    assert read["status"] == 400, read
    assert "IRIS_ALLOWED_HOSTS" in read["body"]["detail"]
    assert "runs" not in read["body"]
    # The browser counts these as same-origin writes; only the Host check stands in their way.
    trained = fetch(page, "/train", {"method": "POST"}, form={"n_estimators": str(FEW_TREES)})
    assert trained["status"] == 400, trained
    predicted = fetch(page, "/predict", json_post(FLOWER))
    assert predicted["status"] == 400, predicted
    assert "IRIS_ALLOWED_HOSTS" in predicted["body"]["detail"]
    assert server_state(server)["training runs"] == before["training runs"]


def test_the_servers_own_pages_still_post(server: Server, page: Page, browser: Browser):
    """The dashboard's own requests pass the guard: from the page on 127.0.0.1 (the `page` fixture fails
    the test on any console error) and on localhost, another name the server answers to by default."""
    ensure_versions(server, 1)
    trained_before = server_state(server)["training runs"]
    page.goto(f"{server.url}/")
    assert page.title()  # the dashboard, not a refusal
    trained = fetch(page, "/train", {"method": "POST"}, form={"n_estimators": str(FEW_TREES)})
    assert trained["status"] == 200, trained
    predicted = fetch(page, "/predict", json_post(FLOWER))
    assert predicted["status"] == 200, predicted
    assert predicted["body"]["class_name"]
    loaded = fetch(page, "/load_model", json_post({"version": int(trained["body"]["model_version"])}))
    assert loaded["status"] == 200, loaded

    context = browser.new_context()
    context.set_default_timeout(15_000)
    try:
        local = context.new_page()
        response = local.goto(f"http://localhost:{server.port}/")
        assert response is not None and response.status == 200
        trained_here = fetch(local, "/train", {"method": "POST"}, form={"n_estimators": str(FEW_TREES)})
        assert trained_here["status"] == 200, trained_here
        predicted_here = fetch(local, "/predict", json_post(FLOWER))
        assert predicted_here["status"] == 200, predicted_here
    finally:
        context.close()
    assert server_state(server)["training runs"] == trained_before + 2


class CorsServer(Server):
    """The conftest server, started with IRIS_CORS_ALLOWED_ORIGINS."""

    def __init__(self, directory: Path, allowed_origins: str):
        ServerProcess.__init__(
            self, directory, python=PYTHON, IRIS_API_TOKEN=None, IRIS_CORS_ALLOWED_ORIGINS=allowed_origins
        )
        self.http = httpx2.Client(base_url=self.url, timeout=60)


def test_an_allowed_origin_calls_the_api_and_others_still_cannot(
    tmp_path: Path, site: StaticSite, mapped: BrowserContext
):
    """A server with IRIS_CORS_ALLOWED_ORIGINS=http://app.example:<port>: that site's page reads a
    cross-origin JSON prediction (preflight included); evil.example's page is refused, both the
    preflighted fetch and a no-cors form post, which trains nothing."""
    friend, stranger = site.origin(FRIEND), site.origin(EVIL)
    second = CorsServer(tmp_path, allowed_origins=friend)
    try:
        second.wait_healthy(SERVER_START_TIMEOUT_S)
        second.post("/train", data={"n_estimators": FEW_TREES})  # no browser headers: not the guard's business
        before = server_state(second)

        page = mapped.new_page()
        page.goto(site.page(FRIEND, "friend.html", "<p>a trusted site</p>"))
        allowed = fetch(page, f"{second.url}/predict", json_post(FLOWER))
        assert allowed.get("status") == 200, allowed
        assert allowed["body"]["class_name"] and allowed["body"]["prediction_id"]

        other = mapped.new_page()
        other.goto(site.url(EVIL, "blank.html"))
        refused = fetch(other, f"{second.url}/predict", json_post(FLOWER))
        assert refused.get("error", "").startswith("TypeError"), refused
        # A multipart post needs no preflight: the browser sends it, unreadable to the page.
        blind = fetch(other, f"{second.url}/train", {"method": "POST", "mode": "no-cors"}, {"n_estimators": "5"})
        assert blind.get("opaque"), blind
        after = server_state(second)
        assert after["training runs"] == before["training runs"], f"{stranger} trained a model"
    finally:
        second.http.close()
        second.stop(grace_s=15, whole_group=True)

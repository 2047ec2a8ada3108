"""Requests a browser makes on behalf of another site are refused: a foreign Host (DNS rebinding) on every
route, and a state-changing request from another origin on every route that changes state.

Each refused request is checked to have changed nothing: no run was started or journaled, the serving
model and its versions are the same. Requests without a browser's headers (curl, scripts) and the
server's own pages keep working, with and without the token, behind a proxy's root path, and with
`--workers 2` (tests/browser/test_cross_site_browser.py drives the same rules from a real Chromium).
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest

from iris_platform.api.app import create_app
from iris_platform.config import Settings
from iris_platform.web_origins import AllowedHosts, AllowedOrigins
from tests.helpers.api import FAST_TREES, assert_error, wait_for_writer
from tests.helpers.contract import EXPERIMENTS
from tests.helpers.data import SETOSA, samples_csv
from tests.helpers.platform import LOCAL_URL, Platform, local_client, open_platform, settings_for
from tests.helpers.raw_http import read_answer, status_and_detail
from tests.helpers.server_process import MAIN, ServerProcess, server_environment

EVIL = "http://evil.example"
ALLOWED = "https://app.example.com"
TOKEN = "cross-site-token"

Send = Callable[[Any, dict[str, str]], Any]


def state_changing_requests(model_path: str) -> dict[str, Send]:
    """Every route that changes state, in each form it takes (form, multipart, JSON, no body)."""
    batch = {"file": ("b.csv", samples_csv([SETOSA]), "text/csv")}
    return {
        "train-form": lambda c, h: c.post("/train", data={"n_estimators": str(FAST_TREES)}, headers=h),
        "train-multipart": lambda c, h: c.post(
            "/train", data={"n_estimators": str(FAST_TREES)}, files={"file": ("t.csv", b"", "text/csv")}, headers=h
        ),
        "predict-json": lambda c, h: c.post("/predict", json=SETOSA, headers=h),
        "predict-form": lambda c, h: c.post("/predict", data={k: str(v) for k, v in SETOSA.items()}, headers=h),
        "predict_batch-multipart": lambda c, h: c.post("/predict_batch", files=batch, headers=h),
        "load_model-form": lambda c, h: c.post("/load_model", data={"model_path": model_path}, headers=h),
        "load_model-json": lambda c, h: c.post("/load_model", json={"version": 1}, headers=h),
        "rollback": lambda c, h: c.post("/models/rollback", headers=h),
    }


def snapshot(platform: Platform) -> tuple[Any, ...]:
    """What a request that got through would change: runs (journaled predictions included), the champion."""
    wait_for_writer(platform.client)
    runs = set()
    for name in EXPERIMENTS:
        experiment = platform.mlflow.get_experiment_by_name(name)
        if experiment is not None:
            runs |= {r.info.run_id for r in platform.mlflow.search_runs([experiment.experiment_id], max_results=1000)}
    models = platform.client.get("/models").json()
    return runs, models["current_model"], [(m["version"], m["aliases"]) for m in models["models"]]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple[Platform, dict[str, Any]]]:
    """The app with its default hosts and origins, two versions trained (so a rollback could move the champion)."""
    with open_platform(tmp_path_factory.mktemp("cross-site")) as platform:
        for _ in range(2):
            trained = platform.client.post("/train", data={"n_estimators": str(FAST_TREES)})
            assert trained.status_code == 200, trained.text
        yield platform, trained.json()


# -- cross-site writes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": EVIL},
        {"Origin": "null"},  # a sandboxed frame or a file:// page
        {"Origin": "http://localhost:9999"},  # this machine, but another port: another origin
        {"Referer": f"{EVIL}/page.html"},  # no Origin: the Referer says where the request comes from
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://sub.localhost"},
    ],
    ids=["origin", "null-origin", "other-port", "referer", "fetch-site", "same-site"],
)
def test_cross_site_writes_are_refused_and_change_nothing(site, headers):
    platform, trained = site
    before = snapshot(platform)
    for route, send in state_changing_requests(trained["model_path"]).items():
        response = send(platform.client, headers)
        assert response.status_code == 403, (route, response.text)
        assert_error(response, 403, "cross-site", "IRIS_CORS_ALLOWED_ORIGINS")
        assert "access-control-allow-origin" not in response.headers, route
        assert response.headers["x-frame-options"] == "DENY", route  # the security headers are on refusals too
    assert snapshot(platform) == before


@pytest.mark.parametrize(
    "headers",
    [
        {},  # curl, scripts, the CLI, other services
        {"Origin": LOCAL_URL},  # the server's own page
        {"Origin": LOCAL_URL, "Sec-Fetch-Site": "same-origin"},
        {"Referer": f"{LOCAL_URL}/"},
        {"Sec-Fetch-Site": "none"},  # typed by the user
        # Behind a proxy that rewrites Host, the browser still says the request is its page's own.
        {"Origin": "https://iris.example.com", "Sec-Fetch-Site": "same-origin"},
    ],
    ids=["no-browser", "same-origin", "fetch-site-same-origin", "referer", "fetch-site-none", "proxy-rewrites-host"],
)
def test_same_origin_and_non_browser_writes_are_answered(site, headers):
    platform, _ = site
    answer = platform.client.post("/predict", json=SETOSA, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["class_name"] == "setosa"


def test_a_same_origin_training_trains(tmp_path):
    with open_platform(tmp_path) as platform:
        trained = platform.client.post(
            "/train",
            data={"n_estimators": str(FAST_TREES)},
            headers={"Origin": LOCAL_URL, "Sec-Fetch-Site": "same-origin"},
        )
        assert trained.status_code == 200, trained.text
        assert platform.client.get("/models").json()["current_model"] == trained.json()["model_path"]


def test_the_body_is_not_read_before_a_cross_site_write_is_refused(site):
    platform, _ = site
    read = []

    def body() -> Iterator[bytes]:
        read.append(True)
        yield b"sepal_length=5.1"

    response = platform.client.post(
        "/predict", content=body(), headers={"Origin": EVIL, "Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 403
    assert not read, "the guard read the body of a request it refused"


def test_reads_from_another_site_get_no_cors_headers(site):
    # A browser lets a page of another site send a GET, but not read the answer without CORS headers.
    platform, _ = site
    answer = platform.client.get("/health", headers={"Origin": EVIL})
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers


def test_a_preflight_from_another_site_is_refused(site):
    platform, _ = site
    answer = platform.client.options(
        "/predict",
        headers={
            "Origin": EVIL,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert_error(answer, 403, "IRIS_CORS_ALLOWED_ORIGINS")
    assert "access-control-allow-origin" not in answer.headers


# -- foreign Host names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["evil.example:8761", "evil.example", "8.8.8.8:8000", "localhost.evil.example", "127.0.0.1.nip.io", "a b"]
)
@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/mlflow/runs"),
        ("GET", "/mlflow/summary"),
        ("GET", "/models"),
        ("GET", "/health"),
        ("GET", "/"),
        ("GET", "/docs"),
        ("GET", "/openapi.json"),
        ("GET", "/static/js/main.js"),
        ("POST", "/predict"),
    ],
)
def test_a_foreign_host_is_refused_on_every_route(site, host, method, path):
    platform, _ = site
    answer = platform.client.request(method, path, headers={"Host": host}, json=SETOSA if method == "POST" else None)
    assert_error(answer, 400, "does not answer to the host name", "IRIS_ALLOWED_HOSTS")
    assert "run_id" not in answer.text and "setosa" not in answer.text


def test_writes_under_a_foreign_host_change_nothing(site):
    platform, trained = site
    before = snapshot(platform)
    for route, send in state_changing_requests(trained["model_path"]).items():
        answer = send(platform.client, {"Host": "evil.example:8761"})
        assert answer.status_code == 400, (route, answer.text)
    assert snapshot(platform) == before


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "localhost:8000",
        "LOCALHOST:8000",
        "localhost.",
        "dashboard.localhost:8000",
        "127.0.0.1:8000",
        "127.1.2.3",
        "[::1]:8000",
        "10.1.2.3:8000",
        "172.16.0.9",
        "192.168.1.20:8000",
        "[fd12:3456::1]:8000",
        "169.254.1.1",
        socket.gethostname(),
    ],
)
def test_this_machines_names_and_private_addresses_are_answered_by_default(site, host):
    platform, _ = site
    answer = platform.client.get("/health", headers={"Host": host})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "healthy"


# -- the settings ------------------------------------------------------------------------------------------


def configured_app(tmp_path, **overrides: Any):
    return local_client(create_app(settings_for(tmp_path, **overrides)))


def test_allowed_hosts_replace_the_defaults(tmp_path):
    hosts = ("iris.example.com", "*.corp.example", "10.0.0.0/8", "iris.internal:5000", "localhost")
    with configured_app(tmp_path, allowed_hosts=hosts) as client:
        for host in ("iris.example.com", "a.corp.example:8000", "b.a.corp.example", "10.9.9.9:1", "iris.internal:5000"):
            assert client.get("/health", headers={"Host": host}).status_code == 200, host
        # The defaults are replaced: private addresses not listed, the bare domain of a wildcard, another port.
        for host in ("192.168.1.20", "corp.example", "iris.internal:5001", "127.0.0.1", "evil.example"):
            assert_error(client.get("/health", headers={"Host": host}), 400, "IRIS_ALLOWED_HOSTS")


def test_any_host_when_told(tmp_path):
    with configured_app(tmp_path, allowed_hosts=("*",)) as client:
        assert client.get("/health", headers={"Host": "evil.example"}).status_code == 200


def test_an_allowed_origin_may_write_and_read_with_cors_headers(tmp_path):
    with configured_app(tmp_path, cors_allowed_origins=(ALLOWED, "http://localhost:*")) as client:
        trained = client.post("/train", data={"n_estimators": str(FAST_TREES)}, headers={"Origin": ALLOWED})
        assert trained.status_code == 200, trained.text
        assert trained.headers["access-control-allow-origin"] == ALLOWED
        answer = client.post("/predict", json=SETOSA, headers={"Origin": ALLOWED, "Sec-Fetch-Site": "cross-site"})
        assert answer.status_code == 200 and answer.json()["class_name"] == "setosa"
        assert answer.headers["access-control-allow-origin"] == ALLOWED
        assert "origin" in answer.headers["vary"].lower()
        # A port wildcard: any port of localhost.
        other_port = client.post("/predict", json=SETOSA, headers={"Origin": "http://localhost:5173"})
        assert other_port.headers["access-control-allow-origin"] == "http://localhost:5173"

        preflight = client.options(
            "/predict",
            headers={
                "Origin": ALLOWED,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["access-control-allow-origin"] == ALLOWED
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()

        # Other origins are still refused: a subdomain, another scheme, another site.
        for origin in ("https://evil.app.example.com", "http://app.example.com", EVIL):
            refused = client.post("/predict", json=SETOSA, headers={"Origin": origin})
            assert_error(refused, 403, "IRIS_CORS_ALLOWED_ORIGINS")
            assert "access-control-allow-origin" not in refused.headers


@pytest.mark.parametrize(
    "variable, value, fragment",
    [
        ("IRIS_ALLOWED_HOSTS", "http://iris.example.com", "write only its host name, such as iris.example.com"),
        ("IRIS_ALLOWED_HOSTS", "iris example", "not a host name"),
        ("IRIS_ALLOWED_HOSTS", "ex*ample.com", "*.example.com"),
        ("IRIS_ALLOWED_HOSTS", "iris.example.com:99999", "port '99999'"),
        ("IRIS_ALLOWED_HOSTS", "10.0.0.300/8", "network"),
        ("IRIS_ALLOWED_HOSTS", "[::1", "'['"),
        ("IRIS_CORS_ALLOWED_ORIGINS", "app.example.com", "no scheme"),
        ("IRIS_CORS_ALLOWED_ORIGINS", "https://app.example.com/page", "no path"),
        ("IRIS_CORS_ALLOWED_ORIGINS", "https://user@app.example.com", "user name"),
        ("IRIS_CORS_ALLOWED_ORIGINS", "https://app.example.com:http", "port 'http'"),
        ("IRIS_CORS_ALLOWED_ORIGINS", "https://a*b.example.com", "not a name"),
    ],
)
def test_a_malformed_setting_says_what_to_write(variable, value, fragment):
    with pytest.raises(ValueError) as raised:
        Settings.from_env({variable: f"localhost, {value}" if variable == "IRIS_ALLOWED_HOSTS" else value})
    message = str(raised.value)
    assert message.startswith(f"{variable}: {value!r}"), message
    assert fragment in message, message


def test_the_server_refuses_to_start_on_a_malformed_setting(tmp_path):
    env = server_environment(IRIS_ALLOWED_HOSTS="https://iris.example.com")
    done = subprocess.run(
        [sys.executable, str(MAIN), "--port", "1"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert "IRIS_ALLOWED_HOSTS: 'https://iris.example.com'" in done.stderr
    assert "Traceback" not in done.stderr


def test_undecodable_and_default_port_headers(site):
    platform, _ = site
    odd = platform.client.post("/predict", json=SETOSA, headers={"Sec-Fetch-Site": b"\xff"})
    assert_error(odd, 403, "cross-site")
    # A client that names the default port in Host and leaves it out of Origin is the same origin.
    same = platform.client.post("/predict", json=SETOSA, headers={"Host": "localhost:80", "Origin": "http://localhost"})
    assert same.status_code == 200, same.text


def test_the_matchers_normalise_as_browsers_send():
    origins = AllowedOrigins(["HTTPS://App.Example.com:443/", "http://[::1]:3000"])
    assert origins.allows("https://app.example.com") and origins.allows("http://[::1]:3000")
    assert not origins.allows("https://app.example.com:8443")
    hosts = AllowedHosts(["Iris.Example.com.", "fd00::/8"])
    assert hosts.allows(b"iris.example.com:8000") and hosts.allows(b"IRIS.EXAMPLE.COM.")
    assert hosts.allows(b"[fd00::5]:80") and not hosts.allows(b"[fe00::5]:80")
    assert not hosts.allows(b"iris.example.com:port")


# -- with the token, behind a root path ----------------------------------------------------------------------


def test_the_token_does_not_open_cross_site_writes_and_same_origin_ones_still_need_it(tmp_path):
    with configured_app(tmp_path, api_token=TOKEN) as client:
        behind_proxy = local_client(client.app, root_path="/api")
        auth = {"Authorization": f"Bearer {TOKEN}"}
        for c, prefix in ((client, ""), (behind_proxy, "/api")):
            refused = c.post(f"{prefix}/train", data={"n_estimators": "5"}, headers={**auth, "Origin": EVIL})
            assert_error(refused, 403, "IRIS_CORS_ALLOWED_ORIGINS")
            assert_error(c.post(f"{prefix}/train", data={"n_estimators": "5"}, headers={"Origin": LOCAL_URL}), 401)
            trained = c.post(f"{prefix}/train", data={"n_estimators": "5"}, headers={**auth, "Origin": LOCAL_URL})
            assert trained.status_code == 200, trained.text
            assert_error(c.get(f"{prefix}/health", headers={"Host": "evil.example"}), 400, "IRIS_ALLOWED_HOSTS")


# -- the real server, several workers ------------------------------------------------------------------------


@pytest.mark.slow
def test_the_rules_hold_with_several_workers(tmp_path):
    server = ServerProcess(tmp_path, argv=[sys.executable, str(MAIN), "--workers", "2"])
    try:
        server.wait_healthy(90)
        own = {"Origin": server.url, "Sec-Fetch-Site": "same-origin"}
        with httpx2.Client(base_url=server.url, timeout=60) as http:
            for _ in range(4):  # requests land on both workers
                refused = http.post("/train", data={"n_estimators": "5"}, headers={"Origin": EVIL})
                assert refused.status_code == 403 and "IRIS_CORS_ALLOWED_ORIGINS" in refused.json()["detail"]
                foreign = http.get("/mlflow/runs", headers={"Host": "evil.example:8761"})
                assert foreign.status_code == 400 and "IRIS_ALLOWED_HOSTS" in foreign.json()["detail"]
            assert http.get("/mlflow/runs").json()["runs"] == []
            trained = http.post("/train", data={"n_estimators": "5"}, headers=own)
            assert trained.status_code == 200, trained.text
            assert http.post("/predict", json=SETOSA, headers=own).json()["class_name"] == "setosa"

        # A 50 MB upload is refused from its headers: the answer comes although no byte of the body was sent.
        with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
            sock.sendall(
                b"POST /predict_batch HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://evil.example\r\n"
                b"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 52428800\r\n\r\n"
            )
            status, detail = status_and_detail(read_answer(sock))
        assert status == 403 and "IRIS_CORS_ALLOWED_ORIGINS" in detail, (status, detail)
    finally:
        server.stop(grace_s=30)

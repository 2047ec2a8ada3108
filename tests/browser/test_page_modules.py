"""The page's ES modules: loaded under the Content-Security-Policy, and naming MLflow as the server does.

static/js/contract.js is the page's copy of src/iris_platform/tracking/names.py (same constant names,
functions in camelCase) plus the few names of the runs API built from them; here they are compared in
both directions, so a metric renamed on either side alone fails.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from playwright.sync_api import Page, expect

from iris_platform.tracking import names

from .conftest import PAGE_SIZE, Server, open_dashboard
from .page_modules import CONTRACT, RUNS, call, exported_functions, exports

STATIC = Path(names.__file__).resolve().parents[1] / "static"
MODULES = sorted(p.name for p in (STATIC / "js").glob("*.js"))
# contract.js's names of the runs API, checked against what the server does with them.
API_CONSTANTS = {
    "RUN_TYPE_TRAINING",
    "RUN_TYPE_INFERENCE",
    "ORDER_BY_START_TIME",
    "ORDER_BY_SAMPLES",
    "METRIC_ORDER_PREFIX",
}
API_FUNCTIONS = {"orderByMetric"}
# Class names for the key functions: plain, MLflow-unsafe characters, one outside the BMP, a number.
CLASS_NAMES = ["setosa", "Iris-virginica", "a b/c:d.e", "<img src=x>", "ünï\tcode\n", "emoji 🌸!", 3]


def python_names() -> tuple[dict[str, object], dict[str, object]]:
    """names.py's public constants (tuples as lists) and functions."""
    public = {k: v for k, v in vars(names).items() if not k.startswith("_")}
    constants = {k: list(v) if isinstance(v, tuple) else v for k, v in public.items() if k.isupper()}
    functions = {k: v for k, v in public.items() if callable(v) and getattr(v, "__module__", None) == names.__name__}
    return constants, functions


def camel_case(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.title() for part in rest)


def test_contract_js_names_equal_names_py(page: Page, server: Server):
    open_dashboard(page, server)
    constants, functions = python_names()
    assert constants and functions

    js = exports(page, CONTRACT)
    mlflow_names = {k: v for k, v in js.items() if k not in API_CONSTANTS}
    assert set(mlflow_names) == set(constants), "contract.js and names.py name different constants"
    assert mlflow_names == constants

    js_functions = set(exported_functions(page, CONTRACT)) - API_FUNCTIONS
    assert js_functions == {camel_case(name) for name in functions}
    for name, function in functions.items():
        # One argument (a class or feature name) or more (cv_metric's metric and statistic): each takes the
        # CLASS_NAMES, the next argument the same list rotated by one.
        arity = len(inspect.signature(function).parameters)
        cases = list(zip(*(CLASS_NAMES[i:] + CLASS_NAMES[:i] for i in range(arity)), strict=True))
        shown = [call(page, CONTRACT, camel_case(name), *args) for args in cases]
        assert shown == [function(*args) for args in cases], name
    assert call(page, CONTRACT, "probabilityMetric", "Iris setosa?") == "probability_Iris setosa_"


def test_contract_js_api_names_are_the_servers(page: Page, server: Server):
    """The run types, and the order_by of each sortable column, do what the page means on the real server."""
    from mlflow import MlflowClient

    open_dashboard(page, server)
    js = exports(page, CONTRACT)
    client = MlflowClient(tracking_uri=server.tracking_uri)

    def make_run(experiment: str, params: dict, metrics: dict) -> str:
        run = client.create_run(client.get_experiment_by_name(experiment).experiment_id, run_name="contract")
        for key, value in params.items():
            client.log_param(run.info.run_id, key, value)
        for key, value in metrics.items():
            client.log_metric(run.info.run_id, key, value)
        client.set_terminated(run.info.run_id)
        return run.info.run_id

    low = make_run(names.TRAINING_EXPERIMENT, {names.P_N_SAMPLES: "10"}, {names.M_ACCURACY: 0.25})
    high = make_run(names.TRAINING_EXPERIMENT, {names.P_N_SAMPLES: "30"}, {names.M_ACCURACY: 0.75})
    batch = make_run(names.INFERENCE_EXPERIMENT, {}, {names.M_TOTAL_SAMPLES: 20})

    def listed(**params) -> list[dict]:
        return server.get("/mlflow/runs", params={"max_results": 1000, **params})["runs"]

    for run_type, experiment, ids in [
        (js["RUN_TYPE_TRAINING"], names.TRAINING_EXPERIMENT, {low, high}),
        (js["RUN_TYPE_INFERENCE"], names.INFERENCE_EXPERIMENT, {batch}),
    ]:
        runs = listed(run_type=run_type)
        assert {r["run_id"] for r in runs} >= ids
        assert {(r["experiment_name"], r["run_type"]) for r in runs} == {(experiment, run_type)}

    by_accuracy = call(page, CONTRACT, "orderByMetric", names.M_ACCURACY)
    assert by_accuracy == js["METRIC_ORDER_PREFIX"] + names.M_ACCURACY
    runs = listed(run_type=js["RUN_TYPE_TRAINING"], order_by=by_accuracy, order="desc")
    assert [r["run_id"] for r in runs if r["run_id"] in (low, high)] == [high, low]
    by_samples = [r["run_id"] for r in listed(order_by=js["ORDER_BY_SAMPLES"], order="asc")]
    assert [i for i in by_samples if i in (low, batch, high)] == [low, batch, high]
    by_start = [r["run_id"] for r in listed(order_by=js["ORDER_BY_START_TIME"], order="asc")]
    assert [i for i in by_start if i in (low, high, batch)] == [low, high, batch]

    # The sort headers carry those keys once the page has wired them.
    by_metric = [call(page, CONTRACT, "orderByMetric", m) for m in (names.M_F1, names.M_PREDICTION_CONFIDENCE)]
    expected = [js["ORDER_BY_START_TIME"], by_accuracy, *by_metric, js["ORDER_BY_SAMPLES"]]
    assert page.eval_on_selector_all("button.sort", "bs => bs.map(b => b.dataset.sort)") == expected
    assert exports(page, RUNS)["RUNS_PAGE"] == PAGE_SIZE


def test_the_page_loads_as_modules_under_the_csp(page: Page, server: Server):
    """Only same-origin scripts, every module served as JavaScript, and no CSP violation while it works."""
    loaded: dict[str, tuple[int, str]] = {}

    def record(response) -> None:
        if response.url.startswith(f"{server.url}/static/"):
            loaded[response.url[len(server.url) :]] = (response.status, response.headers.get("content-type", ""))

    page.on("response", record)
    page.add_init_script(
        """window.__cspViolations = [];
        document.addEventListener('securitypolicyviolation',
            e => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`), true);"""
    )
    open_dashboard(page, server)
    csp = server.http.get("/").headers["content-security-policy"]
    assert "script-src 'self';" in csp and "style-src 'self';" in csp

    scripts = page.evaluate("() => [...document.scripts].map(s => [s.getAttribute('src'), s.type])")
    assert scripts == [["/static/vendor/chart.umd.min.js", ""], ["/static/js/main.js", "module"]]
    modules = {path: answer for path, answer in loaded.items() if path.startswith("/static/js/")}
    assert sorted(Path(p).name for p in modules) == MODULES, "every module in static/js is loaded, and only those"
    for path, (status, content_type) in modules.items():
        assert status == 200 and re.match(r"(text|application)/javascript", content_type), (path, status, content_type)
    assert server.http.get("/static/app.js").status_code == 404  # the classic script is gone

    # Chart.js (a classic script) was there for the modules: the trends are drawn (after the table).
    page.wait_for_function("() => ['confidence-chart', 'training-chart'].every(id => Chart.getChart(id))")
    # The page at work (a tab, a sort, a search, each a refresh); no violation was reported.
    page.get_by_role("tab", name="Training Runs").click()
    page.click('button.sort[data-column="accuracy"]')
    page.fill("#run-search", "contract")
    page.wait_for_function(
        "() => new URLSearchParams(location.search).toString() === 'tab=training&q=contract&sort=metrics.accuracy'"
    )
    expect(page.locator("#last-refresh")).to_contain_text("Last refreshed")
    assert page.evaluate("() => window.__cspViolations") == []


def test_a_csp_violation_fails_the_browser_tests(page: Page, server: Server, watch):
    """The `page` fixture's console check catches what the CSP blocks (an inline style attribute or script)."""
    page.add_init_script(
        """window.__cspViolations = [];
        document.addEventListener(
            'securitypolicyviolation', e => window.__cspViolations.push(e.violatedDirective), true);"""
    )
    open_dashboard(page, server)
    page.evaluate("""() => {
        document.body.insertAdjacentHTML('beforeend', '<div id="csp-probe" style="color: red"></div>');
        const script = document.createElement('script');
        script.textContent = 'window.__inlineRan = true';
        document.body.append(script);
    }""")
    page.wait_for_function("() => window.__cspViolations.length >= 2")
    assert page.evaluate("() => window.__inlineRan") is None
    assert page.evaluate("() => getComputedStyle(document.getElementById('csp-probe')).color") != "rgb(255, 0, 0)"
    assert any("Content Security Policy" in m for m in watch.console_errors), watch.console_errors
    watch.console_errors.clear()  # provoked on purpose

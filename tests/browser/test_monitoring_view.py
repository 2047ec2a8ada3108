"""The dashboard's Monitoring section in a real browser, checked against GET /monitoring's own JSON.

The data is made through the API first: a training, a batch of Iris rows, the same rows with petal_length
moved 2 cm (drift detected, so an alert), and a few feedback labels written by the tracking worker. The
charts are then read back from their Chart.js instances (`Chart.getChart`), so a wrong value fails, not
only a missing canvas. The tests run in file order on one server: the first sees it empty. The `page`
fixture fails a test whose page logged a console error, threw, or asked another host for anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, expect

from iris_platform.tracking import names
from tests.helpers.data import SETOSA, VERSICOLOR, VIRGINICA, csv_bytes, iris_frame

from .conftest import (
    FAST_TREES,
    Server,
    key_value_sections,
    open_dashboard,
    poll,
    screenshot,
    stats,
    wait_tracking_drained,
)
from .page_modules import exports, formatted, percent

MONITORING = "/static/js/monitoring.js"
# Each flower with the label a person sends back: the versicolor one is labelled wrong on purpose.
LABELS = [(SETOSA, "setosa"), (VERSICOLOR, "virginica"), (VIRGINICA, "virginica")]
# A chart as data: its labels, each dataset's label and values, its y axis type and the levels plugin's options.
READ_CHART = """id => { const c = Chart.getChart(id); if (!c) return null;
    return { type: c.config.type, labels: c.data.labels,
             datasets: c.data.datasets.map(d => ({ label: d.label, data: d.data })),
             y: c.config.options.scales.y.type ?? 'linear', levels: c.config.options.plugins?.levels ?? null }; }"""


@dataclass
class Monitored:
    """What the module's API calls made, and GET /monitoring's answer once the worker had written it all."""

    batch: dict[str, Any]
    drifted: dict[str, Any]
    view: dict[str, Any]


def ensure_model(server: Server) -> None:
    if not server.get("/health")["model_loaded"]:
        server.post("/train", data={"n_estimators": FAST_TREES})


@pytest.fixture(scope="module")
def monitored(server: Server) -> Monitored:
    ensure_model(server)
    rows = iris_frame().drop(columns=["species"]).sample(120, random_state=3)
    batch = server.post("/predict_batch", files={"file": ("iris_rows.csv", csv_bytes(rows), "text/csv")})
    rows["petal_length"] += 2
    drifted = server.post("/predict_batch", files={"file": ("shifted.csv", csv_bytes(rows), "text/csv")})
    assert batch["drift"]["drift_detected"] is False and drifted["drift"]["drift_detected"] is True
    for flower, label in LABELS:
        answer = server.post("/predict", json=flower)
        server.post("/feedback", json={"prediction_id": answer["prediction_id"], "true_label": label})
    wait_tracking_drained(server)

    def written() -> dict | None:
        view = server.get("/monitoring")
        labelled = sum(p["metrics"][names.M_FEEDBACK_LABELS] for p in view["feedback"])
        return view if labelled == len(LABELS) else None

    view = poll(written, message="the feedback runs in GET /monitoring")
    assert [p["run_id"] for p in view["drift"]] == [batch["run_id"], drifted["run_id"]]
    return Monitored(batch=batch, drifted=drifted, view=view)


# -- helpers -------------------------------------------------------------------------------------


def chart(page: Page, canvas_id: str) -> dict | None:
    return page.evaluate(READ_CHART, canvas_id)


def query_of(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def open_monitoring(page: Page, server: Server) -> None:
    """The dashboard, then its Monitoring tab; returns once the section has drawn GET /monitoring's answer."""
    open_dashboard(page, server)
    with page.expect_response(lambda r: urlsplit(r.url).path == "/monitoring") as answer:
        page.get_by_role("tab", name="Monitoring").click()
    assert answer.value.status == 200
    expect(page.locator("#monitoring-section")).to_be_visible()
    expect(page.locator("#monitoring-refreshed")).to_contain_text("Last refreshed")


def times(page: Page, points: list[dict]) -> list[str]:
    """The time axis as the page writes it (format.js), one label per run."""
    return [formatted(page, "formatTime", p["time"]) for p in points]


def choose_version(page: Page, version: str) -> None:
    with page.expect_response(lambda r: urlsplit(r.url).path == "/monitoring"):
        page.select_option("#monitoring-version", version)


# 1 ---------------------------------------------------------------------------------------------


def test_01_a_fresh_server_says_what_to_do(page: Page, server: Server):
    assert server.get("/health")["model_loaded"] is False
    open_monitoring(page, server)
    assert query_of(page) == {"view": ["monitoring"]}
    expect(page.locator("#dashboard-section")).to_be_hidden()
    empty = page.locator("#monitoring-empty")
    expect(empty).to_be_visible()
    expect(empty.locator("h3")).to_have_text("No model yet.")
    expect(empty.locator("li")).to_have_count(3)
    expect(empty.locator("li").first).to_contain_text("Train a model")
    expect(empty).to_contain_text("Batch prediction")
    expect(empty).to_contain_text("POST /feedback")
    expect(page.locator("#monitoring-content")).to_be_hidden()
    for canvas in ("psi-chart", "class-chart", "confidence-trend-chart", "feedback-chart"):
        assert chart(page, canvas) is None, canvas
    screenshot(page, "10-monitoring-empty")

    # With a model but nothing predicted yet, the first step is gone and the drift window is named.
    ensure_model(server)
    thresholds = server.get("/monitoring")["thresholds"]
    with page.expect_response(lambda r: urlsplit(r.url).path == "/monitoring"):
        page.click("#monitoring-refresh")
    expect(empty.locator("h3")).to_have_text("Nothing recorded yet.")
    expect(empty.locator("li")).to_have_count(2)
    expect(empty).not_to_contain_text("Train a model")
    expect(empty).to_contain_text(f"every {thresholds['drift_window']} single predictions")

    # The tabs: arrow keys move between them, and the URL follows.
    page.focus("#section-tab-monitoring")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#dashboard-section")).to_be_visible()
    expect(page.locator("#monitoring-section")).to_be_hidden()
    expect(page.locator("#section-tab-dashboard")).to_have_attribute("aria-selected", "true")
    assert "view" not in query_of(page)
    assert page.eval_on_selector_all(".section-tab", "ts => ts.map(t => t.tabIndex)") == [0, -1]


# 2 ---------------------------------------------------------------------------------------------


def test_02_the_charts_hold_the_monitoring_values(page: Page, server: Server, monitored: Monitored):
    view = monitored.view
    drift, feedback, thresholds, reference = view["drift"], view["feedback"], view["thresholds"], view["reference"]
    open_monitoring(page, server)
    expect(page.locator("#monitoring-empty")).to_be_hidden()
    expect(page.locator("#monitoring-content")).to_be_visible()
    page.wait_for_function(
        "() => ['psi-chart', 'class-chart', 'confidence-trend-chart', 'feedback-chart'].every(id => Chart.getChart(id))"
    )

    # PSI: one line per feature, named as the model names it, one point per drift report, oldest first.
    psi = chart(page, "psi-chart")
    features = reference["feature_names"]
    assert [d["label"] for d in psi["datasets"]] == features
    assert psi["labels"] == times(page, drift)
    for dataset in psi["datasets"]:
        key = names.psi_metric(dataset["label"])
        assert dataset["data"] == [p["metrics"][key] for p in drift]
    # The last point is the drifted batch's, as its run records it; only petal_length is past the alert level.
    drifted_run = server.get(f"/mlflow/run/{monitored.drifted['run_id']}")
    last = {d["label"]: d["data"][-1] for d in psi["datasets"]}
    assert last == {f: drifted_run["metrics"][names.psi_metric(f)] for f in features}
    assert [f for f, value in last.items() if value >= thresholds["psi_alert"]] == ["petal_length"]
    # The bands and lines are the server's thresholds.
    levels = psi["levels"]
    assert [(b["from"], b["to"]) for b in levels["bands"]] == [
        (thresholds["psi_warn"], thresholds["psi_alert"]),
        (thresholds["psi_alert"], None),
    ]
    assert [line["value"] for line in levels["lines"]] == [thresholds["psi_warn"], thresholds["psi_alert"]]
    assert psi["y"] == "logarithmic"

    # Classes: the latest report's shares beside the training priors, in percent.
    classes = chart(page, "class-chart")
    assert classes["labels"] == reference["class_names"]
    latest = drift[-1]["metrics"]
    assert classes["datasets"][0]["data"] == [latest[names.percentage_metric(c)] for c in reference["class_names"]]
    priors = [100 * reference["class_priors"][c] for c in reference["class_names"]]
    assert classes["datasets"][1]["data"] == pytest.approx(priors)
    # Another report chosen: the chart follows it.
    page.select_option("#monitoring-window", monitored.batch["run_id"])
    page.wait_for_function(
        "name => Chart.getChart('class-chart').data.datasets[0].label.includes(name)", arg=drift[0]["run_name"]
    )
    first = chart(page, "class-chart")["datasets"][0]["data"]
    assert first == [drift[0]["metrics"][names.percentage_metric(c)] for c in reference["class_names"]]

    # Confidence: each report's average, against the training's mean on its test split.
    confidence = chart(page, "confidence-trend-chart")
    assert confidence["labels"] == times(page, drift)
    assert confidence["datasets"][0]["data"] == [p["metrics"][names.M_AVG_CONFIDENCE] for p in drift]
    assert confidence["datasets"][1]["data"] == [reference["confidence_mean"]] * len(drift)

    # Feedback accuracy against the test accuracy and the alert bound below it.
    accuracy = chart(page, "feedback-chart")
    assert accuracy["labels"] == times(page, feedback)
    assert [d["label"] for d in accuracy["datasets"]] == ["feedback accuracy", "test accuracy", "alert bound"]
    shown, test, bound = (d["data"] for d in accuracy["datasets"])
    assert shown == [p["metrics"][names.M_FEEDBACK_ACCURACY] for p in feedback]
    assert test == [p["metrics"][names.M_TEST_ACCURACY] for p in feedback]
    assert set(test) == {reference["test_accuracy"]}  # one version: the serving one
    assert bound == pytest.approx([t - thresholds["feedback_alert_drop"] for t in test])
    # Two of the three labels were right: the window's accuracy after the last one.
    assert shown[-1] == pytest.approx(2 / 3)

    assert stats(page, "#monitoring-summary") == {
        "Drift reports": str(len(drift)),
        "With drift": "1",
        "Latest avg confidence": percent(page, latest[names.M_AVG_CONFIDENCE]),
        "Latest feedback accuracy": percent(page, shown[-1]),
        "Alerts": str(len(view["alerts"])),
    }
    expect(page.locator("#monitoring-reference")).to_contain_text(f"version {reference['model_version']} (serving)")
    expect(page.locator("#psi-caption")).to_contain_text(f"amber from {thresholds['psi_warn']}")
    screenshot(page, "11-monitoring")

    # At phone width the section still fits.
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_function("() => document.documentElement.scrollWidth <= 392")  # once the charts have resized
    screenshot(page, "12-monitoring-phone")


# 3 ---------------------------------------------------------------------------------------------


def test_03_an_alert_opens_its_run(page: Page, server: Server, monitored: Monitored):
    alerts = server.get("/monitoring")["alerts"]
    drift_alerts = [a for a in alerts if a["kind"] == names.ALERT_DRIFT]
    assert [a["run_id"] for a in drift_alerts] == [monitored.drifted["run_id"]]
    alert = drift_alerts[0]
    open_monitoring(page, server)

    rows = page.locator("#alerts tr[data-run-id]")
    expect(rows).to_have_count(len(alerts))
    row = page.locator(f'#alerts tr[data-run-id="{alert["run_id"]}"]')
    kinds = exports(page, MONITORING)["ALERT_KINDS"]
    expect(row.locator("td")).to_have_text(
        [
            formatted(page, "formatDateTime", alert["time"]),
            kinds[names.ALERT_DRIFT],
            alert["message"],
            alert["model_version"],
        ]
    )
    assert "petal_length" in alert["message"]

    row.click()
    page.wait_for_function("() => document.getElementById('run-dialog').open")
    expect(page.locator("#run-dialog-title")).to_have_text(alert["run_name"])
    expect(page.locator("#run-dialog-body .run-meta")).to_contain_text(alert["run_id"])
    tags = key_value_sections(page, "#run-dialog-body")["Tags"]
    assert tags[names.T_ALERT] == names.ALERT_DRIFT
    assert tags[names.T_ALERT_MESSAGE] == alert["message"]
    assert tags[names.T_DRIFTED_FEATURES] == "petal_length"
    screenshot(page, "13-monitoring-alert-run", full_page=False)
    page.keyboard.press("Escape")
    page.wait_for_function("() => !document.getElementById('run-dialog').open")

    # From the keyboard too, as a runs table row.
    row.focus()
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.getElementById('run-dialog').open")
    expect(page.locator("#run-dialog-title")).to_have_text(alert["run_name"])
    page.keyboard.press("Escape")


# 4 ---------------------------------------------------------------------------------------------


def test_04_a_training_runs_popup_summarises_its_reference_profile(page: Page, server: Server):
    ensure_model(server)
    training = server.get("/mlflow/runs", params={"run_type": "training", "max_results": 1})["runs"][0]
    run = server.get(f"/mlflow/run/{training['run_id']}")
    href = f"/mlflow/run/{run['run_id']}/artifacts/{names.REFERENCE_PROFILE_ARTIFACT}"
    profile = server.get(href)
    open_dashboard(page, server)
    page.locator(f'#runs tr[data-run-id="{run["run_id"]}"]').click()
    page.wait_for_function("() => document.getElementById('run-dialog').open")
    expect(page.locator("#run-dialog-title")).to_have_text(run["run_name"])

    link = page.locator(f'#run-dialog-body a[download="{names.REFERENCE_PROFILE_ARTIFACT}"]')
    expect(link).to_have_attribute("href", href)
    expect(page.locator("#run-dialog-body h3").last).to_have_text("Reference profile")
    table = page.locator("#run-dialog-body .profile-table")
    expect(table.locator("tbody tr")).to_have_count(len(profile["features"]))
    for feature, moments in profile["features"].items():
        cells = table.locator(f'tr[data-feature="{feature}"]').locator("th, td")
        expected = [formatted(page, "formatNumber", moments[k]) for k in ("mean", "std", "min", "max")]
        expect(cells).to_have_text([feature, *expected])
    priors = " · ".join(f"{c} {percent(page, share)}" for c, share in profile["class_priors"].items())
    expect(page.locator("#run-dialog-body .priors")).to_have_text(f"Class priors: {priors}")
    expect(page.locator("#run-dialog-body .profile-meta")).to_contain_text(f"{profile['n_rows']} training rows")
    table.scroll_into_view_if_needed()
    screenshot(page, "14-training-reference-profile", full_page=False)
    page.keyboard.press("Escape")


# 5 ---------------------------------------------------------------------------------------------


def psi_points(page: Page, count: int) -> list[float]:
    """Once the PSI chart shows `count` reports: its first feature's values."""
    page.wait_for_function("n => Chart.getChart('psi-chart')?.data.labels.length === n", arg=count)
    return chart(page, "psi-chart")["datasets"][0]["data"]


def test_05_the_model_version_filter(page: Page, server: Server, monitored: Monitored):
    """A second version with a batch of its own: each version shows its own reports, all versions both."""
    version = monitored.drifted["model_version"]
    newer = server.post("/train", data={"n_estimators": FAST_TREES})["model_version"]
    assert newer != version
    rows = iris_frame().drop(columns=["species"]).sample(60, random_state=4)
    server.post("/predict_batch", files={"file": ("newer.csv", csv_bytes(rows), "text/csv")})
    feature = server.get("/monitoring")["reference"]["feature_names"][0]

    def expected(model_version: str | None = None) -> list[float]:
        params = {"model_version": model_version} if model_version else {}
        drift = server.get("/monitoring", params=params)["drift"]
        assert all(p["model_version"] == model_version for p in drift) if model_version else drift
        return [p["metrics"][names.psi_metric(feature)] for p in drift]

    everything, older, newest = expected(), expected(version), expected(newer)
    assert (len(everything), len(older), len(newest)) == (3, 2, 1)
    open_monitoring(page, server)
    assert psi_points(page, 3) == everything
    options = page.eval_on_selector_all("#monitoring-version option", "os => os.map(o => [o.value, o.textContent])")
    assert options[0] == ["", "All versions"]
    assert {value for value, _ in options[1:]} == {version, newer}
    assert [text for value, text in options if value == newer] == [f"version {newer} (serving)"]

    choose_version(page, version)
    assert psi_points(page, 2) == older
    assert query_of(page) == {"view": ["monitoring"], "model_version": [version]}
    choose_version(page, newer)
    assert psi_points(page, 1) == newest
    page.reload()  # the URL keeps the section and the version
    expect(page.locator("#monitoring-version")).to_have_value(newer)
    assert psi_points(page, 1) == newest

    # A version with nothing recorded: the empty state names it.
    page.goto(f"{server.url}/?view=monitoring&model_version=99")
    expect(page.locator("#monitoring-empty h3")).to_have_text("Nothing recorded for version 99 yet.")
    expect(page.locator("#monitoring-content")).to_be_hidden()
    expect(page.locator("#monitoring-version")).to_have_value("99")

    choose_version(page, "")
    expect(page.locator("#monitoring-content")).to_be_visible()
    assert psi_points(page, 3) == everything
    assert query_of(page) == {"view": ["monitoring"]}

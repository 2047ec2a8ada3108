"""The dashboard in a real browser: what a person does, checked against the API's own JSON.

The tests run in file order on one server, so later tests see the runs and models earlier ones
made (the screenshots then show a populated page); a test that needs state it did not make itself
creates it through the API first (`ensure_*`), so each also passes on its own. Every test asserts
its own values; the `page` fixture fails a test whose page asked another host for anything, logged
a console error, threw, or opened an alert.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Page, expect

from .conftest import (
    BATCH_CSV,
    FAST_TREES,
    TRAIN_CSV,
    Server,
    api_runs,
    ensure_batch_run,
    ensure_training_runs,
    key_value_sections,
    open_dashboard,
    parse_csv,
    row_ids,
    screenshot,
    stats,
    training_runs,
    wait_ready,
    wait_rows,
    wait_tracking_drained,
)
from .page_modules import detail, formatted, missing, percent

XSS_NAME = "<img src=x onerror=alert(1)>"
XSS_PARAM = "<script>alert(2)</script>"
METRIC_LABELS = {"Accuracy": "accuracy", "Precision": "precision", "Recall": "recall", "F1 score": "f1_score"}
# Between the versicolor and virginica clusters, so the forest is rarely unanimous.
FLOWER = {"sepal_length": "6.0", "sepal_width": "2.7", "petal_length": "5.0", "petal_width": "1.6"}


def query_of(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def summary_stats(page: Page) -> dict[str, str]:
    return stats(page, "#summary")


def train_from_page(page: Page, file=None) -> dict:
    """Fill the train form as a person would and submit it; returns the /train answer the page got."""
    if file is not None:
        page.set_input_files("#train-file", file)
    page.fill("#n-estimators", str(FAST_TREES))
    with page.expect_response(lambda r: urlsplit(r.url).path == "/train", timeout=60_000) as answer:
        page.click("#train-form button[type=submit]")
    assert answer.value.status == 200, answer.value.text()
    data = answer.value.json()
    # The card is redrawn for this run, and the form is ready again once the page has refreshed.
    expect(page.locator('[data-result="training"] .run-meta')).to_contain_text(data["run_id"])
    expect(page.locator("#train-form button[type=submit]")).to_be_enabled()
    return data


def check_training_card(page: Page, run: dict) -> None:
    """The training card shows the run's four metrics as percentages."""
    shown = stats(page, '[data-result="training"]')
    expected = {label: percent(page, run["metrics"][key]) for label, key in METRIC_LABELS.items()}
    assert shown == expected


def row(page: Page, run_id: str):
    return page.locator(f'#runs tr[data-run-id="{run_id}"]')


def badges(page: Page) -> list[str]:
    return page.eval_on_selector_all("#runs tr[data-run-id] .badge", "bs => bs.map(b => b.textContent)")


def wait_dialog(page: Page, dialog_id: str, is_open: bool) -> None:
    page.wait_for_function("([id, open]) => document.getElementById(id).open === open", arg=[dialog_id, is_open])


def check_popup_lists_run(page: Page, run: dict) -> None:
    """#run-dialog is open and lists exactly the run's params and metrics, formatted as the page does."""
    wait_dialog(page, "run-dialog", True)
    expect(page.locator("#run-dialog-title")).to_have_text(run["run_name"])
    expect(page.locator("#run-dialog-body .run-meta")).to_contain_text(run["run_id"])
    sections = key_value_sections(page, "#run-dialog-body")
    assert sections["Params"] == {k: str(v) for k, v in run["params"].items()}
    assert sections["Metrics"] == {k: detail(page, v) for k, v in run["metrics"].items()}
    assert set(sections["Tags"]) == set(run["tags"])


# 1 ---------------------------------------------------------------------------------------------


def test_01_empty_page_says_there_is_no_model(page: Page, server: Server):
    health = server.get("/health")
    assert health["model_loaded"] is False
    open_dashboard(page, server)
    expect(page.locator("#health")).to_contain_text("no model yet")
    expect(page.locator("#health")).to_contain_text(health["status"])
    expect(page.locator("#models")).to_have_text("No saved models yet.")
    expect(page.locator("#runs")).to_have_text("No runs yet.")
    assert summary_stats(page) == {"Total runs": "0", "Training runs": "0", "Inference runs": "0", "Avg accuracy": "–"}
    assert page.locator("#results > *").count() == 0
    screenshot(page, "01-empty")


# 2 ---------------------------------------------------------------------------------------------


def test_02_train_on_the_default_data(page: Page, server: Server):
    open_dashboard(page, server)
    answer = train_from_page(page)

    latest = api_runs(server, run_type="training")[0]
    assert latest["run_id"] == answer["run_id"]
    assert latest["params"]["data_source"] == "sklearn_iris"
    assert latest["params"]["n_estimators"] == str(FAST_TREES)
    check_training_card(page, latest)
    for key in METRIC_LABELS.values():  # the card's numbers are the run's, not only the answer's
        assert latest["metrics"][key] == answer[key]

    wait_rows(page, [r["run_id"] for r in api_runs(server)])
    training_row = row(page, latest["run_id"])
    expect(training_row.locator(".badge")).to_have_text("training")
    expect(training_row.locator(".badge")).to_have_class("badge training")
    expect(training_row).to_have_class("training")
    expect(training_row.locator("td.run-name")).to_contain_text(latest["run_name"])
    cells = training_row.locator("td")
    expect(cells.nth(3)).to_have_text(formatted(page, "formatDateTime", latest["start_time"]))
    expect(cells.nth(5)).to_have_text(percent(page, latest["metrics"]["accuracy"]))
    expect(cells.nth(6)).to_have_text(percent(page, latest["metrics"]["f1_score"]))
    expect(cells.nth(8)).to_have_text(latest["params"]["n_samples"])  # the data set's rows: 150 for Iris
    assert latest["params"]["n_samples"] == "150"

    summary = server.get("/mlflow/summary")
    assert summary["training_runs"] == 1
    shown = summary_stats(page)
    assert shown["Training runs"] == "1"
    assert shown["Total runs"] == str(summary["total_runs"])
    assert shown["Avg accuracy"] == percent(page, summary["avg_accuracy"])
    expect(page.locator("#health")).to_contain_text(answer["model_path"].split("/")[-1])
    screenshot(page, "02-trained")


# 3 ---------------------------------------------------------------------------------------------


def test_03_train_on_an_uploaded_csv(page: Page, server: Server):
    models_before = server.get("/models")["models"]
    open_dashboard(page, server)
    answer = train_from_page(page, file=str(TRAIN_CSV))

    run = server.get(f"/mlflow/run/{answer['run_id']}")
    assert run["params"]["data_source"] == "uploaded_csv"
    assert run["params"]["input_file"] == TRAIN_CSV.name
    check_training_card(page, run)
    # The confusion matrix is labelled with the CSV's own class names.
    header = page.locator('[data-result="training"] table thead th')
    expect(header).to_have_text(["true \\ predicted", *answer["model_metadata"]["class_names"]])

    models = server.get("/models")
    assert len(models["models"]) == len(models_before) + 1
    if len(models_before) == 1:  # after test 2: the bundled-data model and this one
        assert len(models["models"]) == 2
    current = [m for m in models["models"] if m["is_current"]]
    assert len(current) == 1 and current[0]["path"] == answer["model_path"] == models["current_model"]

    items = page.locator("#models li")
    expect(items).to_have_count(len(models["models"]))
    new_item = items.filter(has_text=current[0]["filename"])
    expect(new_item.locator(".current")).to_have_text(current[0]["filename"])
    expect(new_item.locator("button")).to_have_text("Current")
    expect(new_item.locator("button")).to_be_disabled()
    expect(new_item).to_contain_text("uploaded_csv")
    for other in models["models"]:
        if not other["is_current"]:
            expect(items.filter(has_text=other["filename"]).locator("button")).to_have_text("Load")
    wait_rows(page, [r["run_id"] for r in api_runs(server)])
    expect(row(page, answer["run_id"]).locator("td.run-name .run-meta")).to_have_text(
        f"uploaded_csv · {TRAIN_CSV.name}"
    )
    expect(row(page, answer["run_id"]).locator("td").nth(8)).to_have_text(run["params"]["n_samples"])


# 4 ---------------------------------------------------------------------------------------------


def test_04_predict_one_flower(page: Page, server: Server):
    ensure_training_runs(server)
    open_dashboard(page, server)
    for name, value in FLOWER.items():
        page.fill(f"#feature-{name}", value)
    with page.expect_response(lambda r: urlsplit(r.url).path == "/predict") as response:
        page.click("#predict-form button[type=submit]")
    shown_answer = response.value.json()
    card = page.locator('[data-result="prediction"]')
    expect(card.locator(".run-meta").last).to_have_text(f"prediction id {shown_answer['prediction_id']}")

    # The same flower through the API: the served model is deterministic.
    api = server.post("/predict", json={k: float(v) for k, v in FLOWER.items()})
    expect(card.locator(".big")).to_have_text(api["class_name"])
    assert stats(page, '[data-result="prediction"]') == {
        "Confidence": percent(page, api["confidence"]),
        "Class index": str(api["prediction"]),
    }
    bars = card.locator(".bar")
    expect(bars).to_have_count(len(api["probabilities"]))
    for i, (name, probability) in enumerate(api["probabilities"].items()):
        expect(bars.nth(i).locator(".name")).to_have_text(name)
        expect(bars.nth(i).locator("span").last).to_have_text(percent(page, probability))
    canvas = card.locator("canvas#probability-chart")
    expect(canvas).to_have_count(1)
    drawn = page.evaluate("""() => { const c = Chart.getChart('probability-chart');
        return c ? {labels: c.data.labels, data: c.data.datasets[0].data} : null; }""")
    assert drawn == {"labels": list(api["probabilities"]), "data": list(api["probabilities"].values())}

    # The prediction's run is written by the background worker; then Refresh shows it.
    wait_tracking_drained(server)
    singles = [r for r in api_runs(server, run_type="inference") if r["params"].get("prediction_type") == "single"]
    mine = next(
        r
        for r in singles
        if server.get(f"/mlflow/run/{r['run_id']}")["tags"].get("prediction_id") == shown_answer["prediction_id"]
    )
    assert mine["params"]["predicted_class"] == api["class_name"]
    page.click("#refresh")
    wait_rows(page, [r["run_id"] for r in api_runs(server)])
    prediction_row = row(page, mine["run_id"])
    expect(prediction_row.locator(".badge")).to_have_text("inference")
    expect(prediction_row.locator("td.run-name small")).to_have_text(f"type single · {api['class_name']}")
    expect(prediction_row.locator("td").nth(7)).to_have_text(percent(page, mine["metrics"]["prediction_confidence"]))
    screenshot(page, "03-prediction")


# 5 ---------------------------------------------------------------------------------------------


def test_05_predict_a_batch_csv(page: Page, server: Server):
    ensure_training_runs(server)
    open_dashboard(page, server)
    page.set_input_files("#batch-file", str(BATCH_CSV))
    with page.expect_response(lambda r: urlsplit(r.url).path == "/predict_batch") as response:
        page.click("#batch-form button[type=submit]")
    answer = response.value.json()
    card = page.locator('[data-result="batch"]')
    expect(card.locator(".run-meta")).to_contain_text(answer["run_id"])

    run = server.get(f"/mlflow/run/{answer['run_id']}")
    statistics = answer["batch_statistics"]
    assert stats(page, '[data-result="batch"]') == {
        "Samples": "5",
        "Avg confidence": percent(page, run["metrics"]["avg_confidence"]),
        "Min confidence": percent(page, run["metrics"]["min_confidence"]),
        "Max confidence": percent(page, run["metrics"]["max_confidence"]),
    }
    assert run["metrics"]["total_samples"] == answer["total_samples"] == 5
    shown = dict(
        page.eval_on_selector_all(
            '[data-result="batch"] .bar',
            "bars => bars.map(b => [b.querySelector('.name').textContent, b.lastElementChild.textContent])",
        )
    )
    distribution = statistics["prediction_distribution"]
    assert {name: text.split(" · ")[0] for name, text in shown.items()} == {k: str(v) for k, v in distribution.items()}
    assert {name: int(run["metrics"][f"count_{name}"]) for name in distribution} == distribution
    total = run["metrics"]["total_samples"]
    for name, text in shown.items():
        assert text.split(" · ")[1] == formatted(page, "formatShare", distribution[name], total)
    expect(card.locator("canvas#distribution-chart")).to_have_count(1)

    link = card.get_by_role("link", name="download predictions CSV")
    expect(link).to_have_attribute("download", "predictions.csv")
    href = link.get_attribute("href")
    assert href == answer["predictions_url"]
    download = server.http.get(href)
    assert download.status_code == 200
    rows = parse_csv(download.text)
    assert len(rows) == 5
    assert {"predicted_class", "confidence"} <= set(rows[0])
    assert {c: sum(r["predicted_class"] == c for r in rows) for c in distribution} == distribution
    wait_rows(page, [r["run_id"] for r in api_runs(server)])
    expect(row(page, answer["run_id"]).locator("td.run-name small")).to_have_text(f"type batch · {BATCH_CSV.name}")
    expect(row(page, answer["run_id"]).locator("td").nth(8)).to_have_text("5")
    screenshot(page, "04-batch")


# 6 ---------------------------------------------------------------------------------------------


def check_active_tab(page: Page, name: str) -> None:
    tabs = page.evaluate("""() => [...document.querySelectorAll('.tab')].map(t => ({
        tab: t.dataset.tab, active: t.classList.contains('active'), selected: t.getAttribute('aria-selected'),
        image: getComputedStyle(t).backgroundImage }))""")
    for tab in tabs:
        is_it = tab["tab"] == name
        assert tab["active"] is is_it and tab["selected"] == str(is_it).lower(), tabs
        if is_it:  # the purple gradient of style.css: #667eea to #764ba2
            assert tab["image"].startswith("linear-gradient"), tab
            assert "rgb(102, 126, 234)" in tab["image"] and "rgb(118, 75, 162)" in tab["image"], tab
        else:
            assert tab["image"] == "none", tab


def test_06_tabs_filter_the_runs_and_survive_a_reload(page: Page, server: Server):
    ensure_batch_run(server)
    open_dashboard(page, server)
    check_active_tab(page, "all")
    for name, label in [("training", "Training Runs"), ("inference", "Inference Runs"), ("all", "All Runs")]:
        page.get_by_role("tab", name=label).click()
        expected = api_runs(server, run_type=None if name == "all" else name)
        wait_rows(page, [r["run_id"] for r in expected])
        check_active_tab(page, name)
        shown = badges(page)
        assert shown == [r["run_type"] for r in expected]
        if name != "all":
            assert shown and set(shown) == {name}
            assert query_of(page).get("tab") == [name]
        else:
            assert set(shown) == {"training", "inference"}
            assert "tab" not in query_of(page)

    page.get_by_role("tab", name="Inference Runs").click()
    wait_rows(page, [r["run_id"] for r in api_runs(server, run_type="inference")])
    page.reload()
    wait_ready(page)
    assert query_of(page).get("tab") == ["inference"]
    check_active_tab(page, "inference")
    wait_rows(page, [r["run_id"] for r in api_runs(server, run_type="inference")])
    assert set(badges(page)) == {"inference"}
    screenshot(page, "05-inference-tab")


# 7 ---------------------------------------------------------------------------------------------


def test_07_a_runs_popup_lists_its_params_and_metrics(page: Page, server: Server):
    ensure_batch_run(server)
    open_dashboard(page, server)
    wait_rows(page, [r["run_id"] for r in api_runs(server)])
    training = api_runs(server, run_type="training")[0]
    row(page, training["run_id"]).click()
    run = server.get(f"/mlflow/run/{training['run_id']}")
    check_popup_lists_run(page, run)
    sections = key_value_sections(page, "#run-dialog-body")
    for key in ("model_type", "n_estimators", "data_source", "n_samples"):
        assert sections["Params"][key] == run["params"][key]
    for key in ("accuracy", "precision", "recall", "f1_score"):
        assert sections["Metrics"][key] == detail(page, run["metrics"][key])
    screenshot(page, "06-run-popup", full_page=False)
    page.keyboard.press("Escape")
    wait_dialog(page, "run-dialog", False)

    batch = api_runs(server, search="batch_prediction_")[0]
    row(page, batch["run_id"]).click()
    run = server.get(f"/mlflow/run/{batch['run_id']}")
    check_popup_lists_run(page, run)
    assert sections != key_value_sections(page, "#run-dialog-body")  # redrawn for this run
    link = page.locator('#run-dialog-body a[download="predictions.csv"]')
    expect(link).to_have_count(1)
    href = link.get_attribute("href")
    assert href == f"/mlflow/run/{batch['run_id']}/artifacts/predictions.csv"
    download = server.http.get(href)
    assert download.status_code == 200
    assert len(parse_csv(download.text)) == int(run["metrics"]["total_samples"])
    page.click("#run-dialog-close")
    wait_dialog(page, "run-dialog", False)


# 8 ---------------------------------------------------------------------------------------------


def test_08_load_another_saved_model(page: Page, server: Server):
    ensure_training_runs(server)
    open_dashboard(page, server)
    models = server.get("/models")["models"]
    target = next(m for m in models if not m["is_current"])
    button = page.get_by_role("button", name=f"Load model {target['filename']}")
    expect(button).to_have_text("Load")
    with page.expect_response(lambda r: urlsplit(r.url).path == "/load_model") as response:
        button.click()
    assert response.value.status == 200
    expect(button).to_have_text("Current")
    expect(button).to_be_disabled()
    expect(page.locator("#models .current")).to_have_text(target["filename"])
    expect(page.locator('[data-result="model"]')).to_contain_text(target["path"])

    after = server.get("/models")
    assert after["current_model"] == target["path"]
    assert [m["path"] for m in after["models"] if m["is_current"]] == [target["path"]]
    assert server.get("/health")["current_model"] == target["path"]
    expect(page.locator("#health")).to_contain_text(f"model: {target['filename']}")


# 9 ---------------------------------------------------------------------------------------------


def compare_rows(table) -> dict[str, list[str]]:
    """The comparison table's rows: each row's heading to its cells' text."""
    return dict(
        table.locator("tbody tr").evaluate_all(
            """rows => rows.map(r => [r.querySelector('th').textContent,
                [...r.querySelectorAll('td')].map(td => td.textContent)])"""
        )
    )


def test_09_compare_two_training_runs(page: Page, server: Server):
    ensure_training_runs(server)
    runs = training_runs(server)
    bundled = next(r for r in runs if r["params"]["data_source"] == "sklearn_iris")
    uploaded = next(r for r in runs if r["params"]["data_source"] == "uploaded_csv")
    open_dashboard(page, server, "?tab=training")
    wait_rows(page, [r["run_id"] for r in api_runs(server, run_type="training")])
    compare = page.locator("#compare")
    expect(compare).to_be_disabled()
    for run in (bundled, uploaded):
        row(page, run["run_id"]).locator("input[type=checkbox]").check()
    expect(compare).to_have_text("Compare selected (2)")
    expect(compare).to_be_enabled()
    compare.click()
    wait_dialog(page, "compare-dialog", True)
    wait_dialog(page, "run-dialog", False)  # ticking a box does not open the run

    table = page.locator("#compare-body table")
    expect(table.locator("thead th")).to_have_text(["", bundled["run_name"], uploaded["run_name"]])
    none = missing(page)
    full = {
        f"{label} {key}": [detail(page, r[field][key]) if key in r[field] else none for r in (bundled, uploaded)]
        for field, label in (("params", "param"), ("metrics", "metric"))
        for key in sorted(set(bundled[field]) | set(uploaded[field]))
    }
    shown = compare_rows(table)
    assert shown.pop("model")  # the load-this-model row
    assert shown == full
    assert full["param model_type"][0] == full["param model_type"][1]
    assert full["param data_source"] == ["sklearn_iris", "uploaded_csv"]

    page.check("#only-differences")
    expect(table.locator("tbody th", has_text="param model_type")).to_have_count(0)
    table = page.locator("#compare-body table")
    expect(table.locator("tbody th", has_text="param data_source")).to_have_count(1)
    differing = {k: v for k, v in full.items() if v[0] != v[1]}
    shown = compare_rows(table)
    shown.pop("model")
    assert shown == differing
    assert table.locator("tbody tr.differs").count() == len(differing)
    screenshot(page, "07-compare", full_page=False)
    page.keyboard.press("Escape")
    wait_dialog(page, "compare-dialog", False)


# 10 --------------------------------------------------------------------------------------------


def test_10_search_sort_and_export(page: Page, server: Server):
    ensure_batch_run(server)
    open_dashboard(page, server)
    page.fill("#run-search", "batch")
    page.wait_for_function("() => new URLSearchParams(location.search).get('q') === 'batch'")
    expected = api_runs(server, search="batch")
    assert expected and all(r["run_name"].startswith("batch_prediction_") for r in expected)
    wait_rows(page, [r["run_id"] for r in expected])
    names = page.eval_on_selector_all("#runs tr[data-run-id] td.run-name > div", "ds => ds.map(d => d.textContent)")
    assert names == [r["run_name"] for r in expected]
    assert set(badges(page)) == {"inference"}

    export = page.locator("#export")
    expect(export).to_have_attribute("href", re.compile(r"[?&]search=batch(&|$)"))
    exported = parse_csv(server.http.get(export.get_attribute("href")).text)
    assert [r["run_id"] for r in exported] == [r["run_id"] for r in expected]
    assert all(r["params.prediction_type"] == "batch" for r in exported)

    page.fill("#run-search", "")
    page.wait_for_function("() => !new URLSearchParams(location.search).has('q')")
    page.get_by_role("tab", name="Training Runs").click()
    wait_rows(page, [r["run_id"] for r in api_runs(server, run_type="training")])
    page.click('button.sort[data-sort="metrics.accuracy"]')
    by_accuracy = api_runs(server, run_type="training", order_by="metrics.accuracy", order="desc")
    wait_rows(page, [r["run_id"] for r in by_accuracy])
    accuracies = [r["metrics"]["accuracy"] for r in by_accuracy]
    assert accuracies == sorted(accuracies, reverse=True)
    expect(page.locator('button.sort[data-sort="metrics.accuracy"]')).to_have_attribute("aria-sort", "descending")
    assert query_of(page) == {"tab": ["training"], "sort": ["metrics.accuracy"]}
    href = export.get_attribute("href")
    export_query = parse_qs(urlsplit(href).query)
    assert export_query == {"order_by": ["metrics.accuracy"], "order": ["desc"], "run_type": ["training"]}
    exported = parse_csv(server.http.get(href).text)
    assert [r["run_id"] for r in exported] == [r["run_id"] for r in by_accuracy]
    assert [float(r["metrics.accuracy"]) for r in exported] == accuracies

    page.click('button.sort[data-sort="metrics.accuracy"]')  # again: ascending
    wait_rows(
        page, [r["run_id"] for r in api_runs(server, run_type="training", order_by="metrics.accuracy", order="asc")]
    )
    expect(page.locator('button.sort[data-sort="metrics.accuracy"]')).to_have_attribute("aria-sort", "ascending")
    assert query_of(page)["order"] == ["asc"]

    # Samples, over every run: a training's data set and the rows an inference run predicted, in one order.
    page.get_by_role("tab", name="All Runs").click()
    page.click('button.sort[data-sort="samples"]')
    by_samples = api_runs(server, order_by="samples", order="desc")
    wait_rows(page, [r["run_id"] for r in by_samples])
    shown = page.eval_on_selector_all(
        "#runs tr[data-run-id] td:nth-child(9)", "cells => cells.map(c => Number(c.textContent))"
    )
    assert shown == sorted(shown, reverse=True) and shown[0] == 150, shown


# 11 --------------------------------------------------------------------------------------------


def create_html_named_run(server: Server) -> str:
    """A run straight in the server's MLflow store whose name and params are HTML."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=server.tracking_uri)
    experiment = client.get_experiment_by_name("iris_inference")  # made by the server (ensure_batch_run)
    run = client.create_run(experiment.experiment_id, run_name=XSS_NAME)
    client.log_param(run.info.run_id, "prediction_type", XSS_PARAM)
    client.log_param(run.info.run_id, "input_file", f"{XSS_NAME}.csv")
    client.log_metric(run.info.run_id, "prediction_confidence", 0.5)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def assert_no_injected_markup(page: Page) -> None:
    """No element came from a value: the page itself has no <img>, no inline <script>, no on* handler."""
    injected = page.evaluate("""() => ({
        img_x: document.querySelectorAll('img[src="x"]').length,
        any_img: document.querySelectorAll('img').length,
        inline_scripts: [...document.scripts].filter(s => !s.src).length,
        onerror: document.querySelectorAll('[onerror]').length,
    })""")
    assert injected == {"img_x": 0, "any_img": 0, "inline_scripts": 0, "onerror": 0}


def test_11_html_in_names_params_and_file_names_is_shown_as_text(page: Page, server: Server, watch):
    ensure_batch_run(server)
    open_dashboard(page, server)
    # The `page` fixture records any alert/confirm/prompt in watch.dialogs (and fails the test on one).

    # An upload whose file name is HTML, through the page.
    answer = train_from_page(
        page, file={"name": f"{XSS_NAME}.csv", "mimeType": "text/csv", "buffer": TRAIN_CSV.read_bytes()}
    )
    uploaded = server.get(f"/mlflow/run/{answer['run_id']}")
    assert uploaded["params"]["input_file"] == f"{XSS_NAME}.csv"
    html_run_id = create_html_named_run(server)

    page.click("#refresh")
    wait_rows(page, [r["run_id"] for r in api_runs(server)])
    html_row = row(page, html_run_id)
    name_cell = html_row.locator("td.run-name")
    assert XSS_NAME in name_cell.inner_text()
    expect(name_cell.locator("div")).to_have_text(XSS_NAME)
    expect(name_cell.locator("small")).to_have_text(f"type {XSS_PARAM} · {XSS_NAME}.csv")
    expect(html_row).to_have_attribute("aria-label", f"Open run {XSS_NAME}")

    # Searching for the markup finds both runs: the upload through its input_file param.
    page.fill("#run-search", "onerror")
    expected = api_runs(server, search="onerror")
    assert {r["run_id"] for r in expected} == {html_run_id, answer["run_id"]}
    wait_rows(page, [r["run_id"] for r in expected])
    assert_no_injected_markup(page)

    row(page, answer["run_id"]).click()
    check_popup_lists_run(page, uploaded)
    params = page.locator("#run-dialog-body tr", has=page.locator("th", has_text="input_file"))
    assert f"{XSS_NAME}.csv" in params.locator("td").inner_text()
    page.keyboard.press("Escape")
    wait_dialog(page, "run-dialog", False)

    row(page, html_run_id).click()
    check_popup_lists_run(page, server.get(f"/mlflow/run/{html_run_id}"))
    assert page.locator("#run-dialog-title").inner_text() == XSS_NAME
    body = page.locator("#run-dialog-body").inner_text()
    assert XSS_PARAM in body and f"{XSS_NAME}.csv" in body
    assert_no_injected_markup(page)
    screenshot(page, "08-xss-as-text", full_page=False)
    page.keyboard.press("Escape")
    wait_dialog(page, "run-dialog", False)
    assert watch.dialogs == []


# 12 --------------------------------------------------------------------------------------------


def overflow(page: Page) -> dict:
    return page.evaluate(
        "() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth })"
    )


def test_12_phone_width(page: Page, server: Server):
    ensure_batch_run(server)
    page.set_viewport_size({"width": 390, "height": 844})
    open_dashboard(page, server)
    wait_rows(page, [r["run_id"] for r in api_runs(server)])
    assert overflow(page)["scroll"] <= 392, overflow(page)
    for form in ("#train-form", "#predict-form", "#batch-form"):
        locator = page.locator(form)
        expect(locator).to_be_visible()
        box = locator.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390, (form, box)
        expect(locator.locator("button[type=submit]")).to_be_visible()
    for name in FLOWER:
        expect(page.locator(f"#feature-{name}")).to_be_visible()

    # With a result card and an open popup the page still fits.
    with page.expect_response(lambda r: urlsplit(r.url).path == "/predict"):
        page.click("#predict-form button[type=submit]")
    expect(page.locator('[data-result="prediction"] .big')).not_to_be_empty()
    assert overflow(page)["scroll"] <= 392, overflow(page)
    screenshot(page, "09-phone")
    page.locator("#runs tr[data-run-id]").first.click()
    wait_dialog(page, "run-dialog", True)
    box = page.locator("#run-dialog").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    page.keyboard.press("Escape")
    wait_dialog(page, "run-dialog", False)


# 13 --------------------------------------------------------------------------------------------


def test_13_keyboard_and_labels(page: Page, server: Server):
    ensure_batch_run(server)
    open_dashboard(page, server)
    wait_rows(page, [r["run_id"] for r in api_runs(server)])

    page.focus('.tab[data-tab="all"]')
    for key, name in [("ArrowRight", "training"), ("ArrowRight", "inference"), ("ArrowLeft", "training")]:
        page.keyboard.press(key)
        page.wait_for_function("name => document.activeElement.dataset.tab === name", arg=name)
        wait_rows(page, [r["run_id"] for r in api_runs(server, run_type=name)])
        check_active_tab(page, name)
        assert query_of(page).get("tab") == [name]
    page.focus('.tab[data-tab="all"]')
    page.keyboard.press("Enter")
    wait_rows(page, [r["run_id"] for r in api_runs(server)])
    check_active_tab(page, "all")
    # Only the active tab is in the Tab order, as in any tab list.
    assert page.eval_on_selector_all(".tab", "ts => ts.map(t => t.tabIndex)") == [0, -1, -1]

    first = api_runs(server)[0]
    row(page, first["run_id"]).focus()
    page.keyboard.press("Enter")
    check_popup_lists_run(page, server.get(f"/mlflow/run/{first['run_id']}"))
    page.keyboard.press("Escape")
    wait_dialog(page, "run-dialog", False)
    assert row_ids(page)[0] == first["run_id"]

    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter(e => !(e.labels.length > 0 || (e.getAttribute('aria-label') || '').trim()))
        .map(e => e.outerHTML)""")
    counted = page.evaluate("() => document.querySelectorAll('input, select, textarea').length")
    assert counted >= 10 + len(api_runs(server))  # the forms, the toolbar, the dialogs and a checkbox per row
    assert unlabelled == []

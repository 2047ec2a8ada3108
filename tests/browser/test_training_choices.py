"""The training form's model choice, cross-validation and evaluation, in a real browser.

The form is filled from GET /model_types and sends only the chosen type's fields; the result card shows the
model type, its hyperparameters, the runtime and the cross-validation figures of the /train answer and the
MLflow run; a refused value shows the server's detail; a training run's popup charts its evaluation artifacts
(confusion matrix, per-class scores, and for two classes the ROC and precision-recall curves); the comparison
lists the runs' model types and hyperparameters. The tests run in file order on one server (later ones
reuse earlier runs); a test that needs a run it did not make trains it through the API first.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect

from tests.helpers.data import PENGUIN_BLANKS, csv_bytes, penguins

from .conftest import Server, open_dashboard, screenshot, training_runs, wait_rows
from .page_modules import call, detail, exports, formatted, missing

FORMAT = "/static/js/format.js"
EVALUATION = "/static/js/evaluation.js"
FAST = {"random_forest": {"n_estimators": "5"}}  # few trees keep a forest's training quick
SVC_FIELDS = {"C": "2.5", "kernel": "linear"}
CV_FOLDS = 3
CV_LABELS = {"Accuracy": "accuracy", "Precision": "precision", "Recall": "recall", "F1 score": "f1_score"}
PROVOKED_422 = "the server responded with a status of 422"


# -- helpers ------------------------------------------------------------------------------------


def wait_model_types(page: Page) -> None:
    """The select is filled and the default type's inputs are drawn."""
    page.wait_for_function(
        """() => document.querySelectorAll('#model-type option').length > 0
            && document.querySelectorAll('#hyperparameter-inputs [data-hyperparameter]').length > 0"""
    )


def choose(page: Page, model_type: str) -> None:
    page.select_option("#model-type", model_type)
    page.wait_for_function("type => document.getElementById('model-type').value === type", arg=model_type)


def hyperparameter_fields(page: Page) -> list[dict]:
    """The drawn hyperparameter inputs, as the form holds them."""
    return page.eval_on_selector_all(
        "#hyperparameter-inputs [data-hyperparameter]",
        """boxes => boxes.map(box => {
            const input = box.querySelector('input, select');
            return {name: input.name, tag: input.tagName.toLowerCase(), value: input.value,
                min: input.getAttribute('min'), max: input.getAttribute('max'), step: input.getAttribute('step'),
                placeholder: input.getAttribute('placeholder'), label: input.labels[0]?.textContent,
                choices: input.tagName === 'SELECT' ? [...input.options].map(o => o.value) : null};
        })""",
    )


def submit_training(page: Page, expect_status: int = 200):
    """Submit the form; returns the /train request and its answer's JSON."""
    with page.expect_response(lambda r: urlsplit(r.url).path == "/train", timeout=60_000) as answer:
        page.click("#train-form button[type=submit]")
    response = answer.value
    assert response.status == expect_status, response.text()
    data = response.json()
    if expect_status == 200:
        expect(page.locator('[data-result="training"] .run-meta')).to_contain_text(data["run_id"])
    else:
        expect(page.locator('[data-result="error"]')).to_be_visible()
    expect(page.locator("#train-form button[type=submit]")).to_be_enabled()
    return response.request, data


def submit_prediction(page: Page) -> dict:
    """Submit the prediction form; returns /predict's answer (200) once the page shows its class."""
    with page.expect_response(lambda r: urlsplit(r.url).path == "/predict") as predicted:
        page.click("#predict-form button[type=submit]")
    assert predicted.value.status == 200, predicted.value.text()
    answer = predicted.value.json()
    expect(page.locator('[data-result="prediction"] .big')).to_have_text(answer["class_name"])
    return answer


def sent_fields(request) -> list[str]:
    """The names of a multipart form's fields, in the order sent."""
    return re.findall(r'Content-Disposition: form-data; name="([^"]+)"', request.post_data or "")


def table_rows(page: Page, selector: str) -> dict[str, str]:
    """A key-value table: each row's heading to its cell's text."""
    return dict(
        page.eval_on_selector_all(
            f"{selector} tbody tr",
            "rows => rows.map(r => [r.querySelector('th').textContent, r.querySelector('td').textContent])",
        )
    )


def check_card(page: Page, answer: dict, run: dict) -> None:
    """The card shows the model type, runtime, hyperparameters and any cv figures of the answer and the run."""
    card = '[data-result="training"]'
    expected = {
        "model type": f"{answer['model_type']} ({run['params']['model_type']})",
        "runtime": answer["runtime"],
        **{name: formatted(page, "formatHyperparameter", v) for name, v in answer["hyperparameters"].items()},
        "preprocessing": run["params"]["preprocessing"],  # the Iris data: nothing before the classifier
    }
    assert table_rows(page, f"{card} table.model-summary") == expected
    if answer["cv_folds"]:
        shown = table_rows(page, f"{card} table.cv-scores")
        assert shown == {
            label: formatted(page, "formatMeanStd", run["metrics"][f"cv_{key}_mean"], run["metrics"][f"cv_{key}_std"])
            for label, key in CV_LABELS.items()
        }
        expect(page.locator(f"{card} h3", has_text="Cross-validation")).to_have_text(
            f"Cross-validation ({answer['cv_folds']} folds, mean ± std)"
        )
    else:
        expect(page.locator(f"{card} table.cv-scores")).to_have_count(0)


def run_of(server: Server, run_id: str) -> dict:
    return server.get(f"/mlflow/run/{run_id}")


def latest_run_of(server: Server, estimator_class: str, **fields: str) -> dict:
    """The newest training run of this scikit-learn class, trained through the API if there is none."""
    for run in training_runs(server):
        if run["params"].get("model_type") == estimator_class:
            return run
    model_type = {"SVC": "svc", "LogisticRegression": "logistic_regression", "RandomForestClassifier": "random_forest"}
    answer = server.post("/train", data={"model_type": model_type[estimator_class], **fields})
    return run_of(server, answer["run_id"])


def artifact(server: Server, run_id: str, name: str) -> dict:
    return server.get(f"/mlflow/run/{run_id}/artifacts/evaluation/{name}")


def wait_dialog(page: Page, dialog_id: str, is_open: bool) -> None:
    page.wait_for_function("([id, open]) => document.getElementById(id).open === open", arg=[dialog_id, is_open])


def chart(page: Page, canvas_id: str) -> dict:
    """What Chart.js draws on the canvas: its labels, datasets and title."""
    return page.evaluate(
        """id => { const c = Chart.getChart(id);
            return {type: c.config.type, labels: c.data.labels,
                datasets: c.data.datasets.map(d => ({label: d.label, data: d.data})),
                title: c.options.plugins.title.display ? c.options.plugins.title.text : null}; }""",
        canvas_id,
    )


@pytest.fixture(scope="module")
def breast_cancer_csv(tmp_path_factory) -> Path:
    """scikit-learn's breast cancer data (bundled with it: nothing is downloaded) as a CSV with named classes."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.frame
    frame["target"] = frame["target"].map(dict(enumerate(data.target_names)))
    path = tmp_path_factory.mktemp("data") / "breast_cancer.csv"
    frame.to_csv(path, index=False)
    return path


# -- the form ------------------------------------------------------------------------------------


def test_the_form_offers_every_model_type_with_its_hyperparameters(page: Page, server: Server):
    catalog = server.get("/model_types")
    open_dashboard(page, server)
    wait_model_types(page)
    options = page.eval_on_selector_all("#model-type option", "os => os.map(o => o.value)")
    assert options == [t["name"] for t in catalog["model_types"]]
    assert page.input_value("#model-type") == catalog["default"]
    assert page.get_attribute("#cv-folds", "max") == str(catalog["max_cv_folds"])
    assert page.input_value("#cv-folds") == "0"
    no_limit = exports(page, FORMAT)["NO_LIMIT"]

    def number(value) -> str | None:
        return None if value is None else formatted(page, "formatNumber", value)

    for model_type in catalog["model_types"]:
        choose(page, model_type["name"])
        expect(page.locator("#model-type-class")).to_have_text(model_type["estimator_class"])
        fields = hyperparameter_fields(page)
        assert [f["name"] for f in fields] == [h["name"] for h in model_type["hyperparameters"]]
        for field, h in zip(fields, model_type["hyperparameters"], strict=True):
            assert field["label"] == h["name"]
            if h["choices"]:
                assert (field["tag"], field["choices"], field["value"]) == ("select", h["choices"], h["default"])
                continue
            assert field["tag"] == "input"
            assert field["min"] == number(h["minimum"]) and field["max"] == number(h["maximum"])
            assert field["step"] == ("1" if h["type"] == "integer" else "any")
            if h["default"] is None:  # max_depth: empty means no limit
                assert h["nullable"] and field["value"] == "" and field["placeholder"] == no_limit
            else:
                assert float(field["value"]) == h["default"]
    # Another type's inputs are gone once a type is chosen: only the chosen type's fields exist to be sent.
    choose(page, "knn")
    expect(page.locator("#n-estimators")).to_have_count(0)
    choose(page, catalog["default"])
    expect(page.locator("#n-estimators")).to_have_count(1)


def test_train_an_svc_with_cross_validation(page: Page, server: Server):
    open_dashboard(page, server)
    wait_model_types(page)
    choose(page, "svc")
    page.fill("#C", SVC_FIELDS["C"])
    page.select_option("#kernel", SVC_FIELDS["kernel"])
    page.fill("#cv-folds", str(CV_FOLDS))
    request, answer = submit_training(page)

    # Only the svc's fields were sent (an empty target column is left out, as is the missing file).
    assert sorted(sent_fields(request)) == sorted(["model_type", "C", "kernel", "gamma", "test_size", "cv_folds"])
    assert answer["model_type"] == "svc" and answer["cv_folds"] == CV_FOLDS
    assert answer["hyperparameters"] == {"C": 2.5, "kernel": "linear", "gamma": "scale"}
    assert answer["runtime"] == server.get("/health")["runtime"]

    run = run_of(server, answer["run_id"])
    assert run["params"]["model_type"] == answer["model_metadata"]["model_type"] == "SVC"
    assert {k: run["params"][k] for k in ("C", "kernel", "gamma", "cv_folds")} == {
        "C": "2.5",
        "kernel": "linear",
        "gamma": "scale",
        "cv_folds": str(CV_FOLDS),
    }
    for key in CV_LABELS.values():
        for statistic in ("mean", "std"):
            metric = f"cv_{key}_{statistic}"
            assert run["metrics"][metric] == answer[metric]
    check_card(page, answer, run)
    expect(page.locator('[data-result="training"] tr[data-key="C"] td')).to_have_text("2.5")  # as it was set
    expect(page.locator('[data-result="training"] table.curve-areas')).to_have_count(0)  # three classes: no curves
    screenshot(page, "20-training-svc-cv")


def test_a_forest_without_depth_limit(page: Page, server: Server):
    open_dashboard(page, server)
    wait_model_types(page)
    choose(page, "random_forest")
    page.fill("#n-estimators", FAST["random_forest"]["n_estimators"])
    page.fill("#min-samples-leaf", "2")
    assert page.input_value("#max-depth") == ""  # no limit
    request, answer = submit_training(page)

    assert "max_depth" not in sent_fields(request)  # left out: the type's default, no limit
    assert answer["hyperparameters"] == {"n_estimators": 5, "max_depth": None, "min_samples_leaf": 2}
    assert answer["cv_folds"] == 0 and "cv_accuracy_mean" not in answer
    run = run_of(server, answer["run_id"])
    assert run["params"]["max_depth"] == "None" and "cv_folds" not in run["params"]
    check_card(page, answer, run)
    expect(page.locator('[data-result="training"] tr[data-key="max_depth"] td')).to_have_text(
        exports(page, FORMAT)["NO_LIMIT"]
    )


def test_a_refused_value_shows_the_servers_detail(page: Page, server: Server, watch):
    runs_before = len(training_runs(server))
    open_dashboard(page, server)
    wait_model_types(page)
    choose(page, "logistic_regression")
    page.fill("#C", "0")  # the browser allows the bound, the server refuses it (an exclusive minimum)
    _, refused = submit_training(page, expect_status=422)
    assert refused["detail"].startswith("C for model_type 'logistic_regression'")
    expect(page.locator('[data-result="error"] p')).to_have_text(f"422: {refused['detail']}")
    expect(page.locator("#C")).to_have_attribute("aria-invalid", "true")

    page.fill("#C", "1")
    expect(page.locator("#C")).not_to_have_attribute("aria-invalid", "true")
    page.fill("#cv-folds", "1")
    _, refused = submit_training(page, expect_status=422)
    assert refused["detail"].startswith("cv_folds")
    expect(page.locator('[data-result="error"] p')).to_have_text(f"422: {refused['detail']}")
    expect(page.locator("#cv-folds")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#C")).not_to_have_attribute("aria-invalid", "true")
    assert len(training_runs(server)) == runs_before  # a refused request opens no run

    # The browser's own "Failed to load resource" for each 422, provoked on purpose.
    assert sum(PROVOKED_422 in m for m in watch.console_errors) == 2, watch.console_errors
    watch.console_errors[:] = [m for m in watch.console_errors if PROVOKED_422 not in m]


# -- the popup -----------------------------------------------------------------------------------


def check_heatmap(page: Page, confusion: dict) -> None:
    table = page.locator("#run-dialog-body #confusion-figure table.heatmap")
    expect(table.locator("thead th")).to_have_text(["true \\ predicted", *confusion["labels"]])
    shown = table.locator("tbody tr").evaluate_all(
        """rows => rows.map(r => [r.querySelector('th').textContent,
            [...r.querySelectorAll('td')].map(td => Number(td.textContent))])"""
    )
    assert shown == [[label, row] for label, row in zip(confusion["labels"], confusion["matrix"], strict=True)]


def check_per_class_chart(page: Page, per_class: dict) -> None:
    drawn = chart(page, "per-class-chart")
    classes = list(per_class["classes"])
    assert drawn["type"] == "bar" and drawn["labels"] == classes
    assert [d["data"] for d in drawn["datasets"]] == [
        [per_class["classes"][c][key] for c in classes] for key in ("precision", "recall", "f1-score")
    ]
    expect(page.locator("#per-class-figure figcaption")).to_contain_text(f"({per_class['n_test']} test rows)")


def test_a_two_class_trainings_popup_charts_its_evaluation(page: Page, server: Server, breast_cancer_csv: Path):
    open_dashboard(page, server)
    wait_model_types(page)
    page.set_input_files("#train-file", str(breast_cancer_csv))
    choose(page, "logistic_regression")
    _, answer = submit_training(page)
    assert answer["model_metadata"]["class_names"] == ["benign", "malignant"]
    run = run_of(server, answer["run_id"])
    check_card(page, answer, run)
    # The card shows the two-class curves' areas, as the run logged them.
    assert table_rows(page, '[data-result="training"] table.curve-areas') == {
        "ROC AUC": detail(page, run["metrics"]["roc_auc"]),
        "Average precision": detail(page, run["metrics"]["average_precision"]),
    }

    # The single-prediction form follows the new serving model's features.
    features = answer["model_metadata"]["feature_names"]
    page.wait_for_function("n => document.querySelectorAll('#feature-inputs input').length === n", arg=len(features))
    assert page.eval_on_selector_all("#feature-inputs input", "is => is.map(i => i.name)") == features

    run_id = answer["run_id"]
    wait_rows(page, [r["run_id"] for r in server.get("/mlflow/runs", params={"max_results": 25})["runs"]])
    page.locator(f'#runs tr[data-run-id="{run_id}"]').click()
    wait_dialog(page, "run-dialog", True)
    page.wait_for_function("() => ['per-class-chart', 'roc-chart', 'pr-chart'].every(id => Chart.getChart(id))")
    for canvas in ("per-class-chart", "roc-chart", "pr-chart"):
        expect(page.locator(f"#run-dialog-body canvas#{canvas}")).to_have_count(1)

    check_heatmap(page, artifact(server, run_id, "confusion_matrix.json"))
    assert artifact(server, run_id, "confusion_matrix.json")["matrix"] == answer["confusion_matrix"]
    check_per_class_chart(page, artifact(server, run_id, "per_class_metrics.json"))

    roc = artifact(server, run_id, "roc_curve.json")
    assert roc["auc"] == run["metrics"]["roc_auc"] == answer["roc_auc"]
    drawn = chart(page, "roc-chart")
    assert drawn["title"] == call(page, EVALUATION, "rocTitle", roc)
    assert detail(page, roc["auc"]) in drawn["title"]
    curve = drawn["datasets"][0]["data"]
    assert [p["x"] for p in curve] == roc["false_positive_rate"]
    assert [p["y"] for p in curve] == roc["true_positive_rate"]
    expect(page.locator("#roc-figure figcaption")).to_contain_text(roc["positive_class"])

    pr = artifact(server, run_id, "precision_recall_curve.json")
    assert pr["average_precision"] == run["metrics"]["average_precision"] == answer["average_precision"]
    drawn = chart(page, "pr-chart")
    assert drawn["title"] == call(page, EVALUATION, "prTitle", pr)
    assert detail(page, pr["average_precision"]) in drawn["title"]
    curve = drawn["datasets"][0]["data"]
    assert [p["x"] for p in curve] == pr["recall"]
    assert [p["y"] for p in curve] == pr["precision"]
    screenshot(page, "21-run-popup-evaluation", full_page=False)
    page.keyboard.press("Escape")
    wait_dialog(page, "run-dialog", False)


def test_a_three_class_trainings_popup_has_no_curves(page: Page, server: Server):
    svc = latest_run_of(server, "SVC", **SVC_FIELDS)
    open_dashboard(page, server)
    page.evaluate("id => import('/static/js/run-dialog.js').then(m => m.openRun(id))", svc["run_id"])
    wait_dialog(page, "run-dialog", True)
    page.wait_for_function("() => Chart.getChart('per-class-chart')")
    check_heatmap(page, artifact(server, svc["run_id"], "confusion_matrix.json"))
    check_per_class_chart(page, artifact(server, svc["run_id"], "per_class_metrics.json"))
    expect(page.locator("#run-dialog-body canvas")).to_have_count(1)  # no ROC or precision-recall curve
    assert page.evaluate("() => [Chart.getChart('roc-chart'), Chart.getChart('pr-chart')]") == [None, None]


# -- the comparison ------------------------------------------------------------------------------


def compare_rows(page: Page) -> list[tuple[str, list[str], str]]:
    """The comparison table's rows in order: heading, cells' text, class."""
    return [
        (th, cells, cls)
        for th, cells, cls in page.locator("#compare-body table tbody tr").evaluate_all(
            """rows => rows.map(r => [r.querySelector('th').textContent,
                [...r.querySelectorAll('td')].map(td => td.textContent), r.className])"""
        )
    ]


def test_the_comparison_lists_model_types_and_hyperparameters(page: Page, server: Server):
    runs = [
        latest_run_of(server, "SVC", cv_folds=str(CV_FOLDS), **SVC_FIELDS),
        latest_run_of(server, "RandomForestClassifier", **FAST["random_forest"]),
        latest_run_of(server, "LogisticRegression"),
    ]
    open_dashboard(page, server, "?tab=training")
    wait_rows(
        page,
        [r["run_id"] for r in server.get("/mlflow/runs", params={"run_type": "training", "max_results": 25})["runs"]],
    )
    for run in runs:
        page.locator(f'#runs tr[data-run-id="{run["run_id"]}"] input[type=checkbox]').check()
    page.click("#compare")
    wait_dialog(page, "compare-dialog", True)
    expect(page.locator("#compare-body thead th")).to_have_text(["", *(r["run_name"] for r in runs)])

    none = missing(page)
    rows = compare_rows(page)
    shown = {th: cells for th, cells, _ in rows}
    assert shown["param model_type"] == ["SVC", "RandomForestClassifier", "LogisticRegression"]
    catalog = {t["estimator_class"]: t for t in server.get("/model_types")["model_types"]}
    hyperparameters = list(
        dict.fromkeys(h["name"] for r in runs for h in catalog[r["params"]["model_type"]]["hyperparameters"])
    )
    # The model type first, then every hyperparameter the runs have, marked as the model's.
    model_rows = [th for th, _, cls in rows if "model" in cls.split()]
    assert model_rows == [
        "param model_type",
        *(f"param {h}" for h in hyperparameters if any(h in r["params"] for r in runs)),
    ]
    assert [th for th, _, _ in rows[: len(model_rows)]] == model_rows
    for name in hyperparameters:
        assert shown[f"param {name}"] == [
            detail(page, r["params"][name]) if name in r["params"] else none for r in runs
        ]
    assert shown["param kernel"] == ["linear", none, none]
    assert shown["param max_depth"][1] == "None"
    # The cross-validation figures are among the metrics, for the run that has them.
    for key in CV_LABELS.values():
        for statistic in ("mean", "std"):
            metric = f"cv_{key}_{statistic}"
            expected = [detail(page, r["metrics"][metric]) if metric in r["metrics"] else none for r in runs]
            assert shown[f"metric {metric}"] == expected
    assert shown["metric cv_accuracy_mean"][0] != none
    screenshot(page, "22-compare-model-types", full_page=False)
    page.keyboard.press("Escape")
    wait_dialog(page, "compare-dialog", False)


# -- a run older than the evaluation artifacts ---------------------------------------------------


def test_a_run_without_evaluation_artifacts_shows_none(page: Page, server: Server):
    """A training run logged before the evaluation artifacts existed opens as before: no chart, no error."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=server.tracking_uri)
    experiment = client.get_experiment_by_name("iris_classification").experiment_id
    old = client.create_run(experiment, run_name="training_before_evaluation")
    client.log_param(old.info.run_id, "model_type", "RandomForestClassifier")
    client.log_param(old.info.run_id, "n_estimators", "100")
    client.log_metric(old.info.run_id, "accuracy", 0.9)
    client.set_terminated(old.info.run_id)

    open_dashboard(page, server)
    page.locator(f'#runs tr[data-run-id="{old.info.run_id}"]').click()
    wait_dialog(page, "run-dialog", True)
    expect(page.locator("#run-dialog-title")).to_have_text("training_before_evaluation")
    expect(page.locator("#run-dialog-body h3")).to_have_text(["Params", "Metrics", "Tags", "Artifacts"])
    expect(page.locator("#run-dialog-body canvas")).to_have_count(0)
    expect(page.locator('[data-result="error"]')).to_have_count(0)


def test_a_table_with_blank_cells_trains_with_imputation_or_is_refused(
    page: Page, server: Server, watch, tmp_path: Path
):
    table = tmp_path / "penguins.csv"
    table.write_bytes(csv_bytes(penguins()))
    open_dashboard(page, server)
    wait_model_types(page)
    assert page.input_value("#impute") == ""  # the server's default: the median
    page.set_input_files("#train-file", str(table))
    choose(page, "random_forest")
    page.fill("#n-estimators", FAST["random_forest"]["n_estimators"])
    request, answer = submit_training(page)
    assert "impute" not in sent_fields(request)  # left out: the default
    run = run_of(server, answer["run_id"])
    assert run["params"]["preprocessing"] == "median_imputation" and run["params"]["impute"] == "median"
    card = '[data-result="training"] table.model-summary'
    shown = table_rows(page, card)
    assert shown["preprocessing"] == f"median_imputation (blank cells filled: bill_length: {PENGUIN_BLANKS})"
    assert shown["left out (one value)"] == "year" == run["params"]["constant_columns"]

    # The prediction form follows the new model: its three features, none required (a blank is filled in).
    features = answer["model_metadata"]["feature_names"]
    page.wait_for_function("n => document.querySelectorAll('#feature-inputs input').length === n", arg=len(features))
    inputs = page.eval_on_selector_all("#feature-inputs input", "is => is.map(i => [i.name, i.required])")
    assert inputs == [[f, False] for f in features]
    page.fill("#feature-bill_length", "")
    page.fill("#feature-bill_depth", "15")
    page.fill("#feature-flipper_length", "217")
    submit_prediction(page)

    # Asked to refuse blanks, the server does, naming the column; no run is added.
    runs_before = len(training_runs(server))
    page.select_option("#impute", "none")
    request, refused = submit_training(page, expect_status=422)
    assert "impute" in sent_fields(request)
    assert "'bill_length_mm' has blank" in refused["detail"]
    expect(page.locator('[data-result="error"]')).to_contain_text("bill_length_mm")
    assert len(training_runs(server)) == runs_before
    # The browser logs the refusal it was asked to provoke; nothing else may be logged.
    assert sum(PROVOKED_422 in m for m in watch.console_errors) == 1, watch.console_errors
    watch.console_errors[:] = [m for m in watch.console_errors if PROVOKED_422 not in m]


def test_a_text_column_gets_a_text_input_offering_its_categories(page: Page, server: Server, tmp_path: Path):
    table = tmp_path / "penguins.csv"
    table.write_bytes(csv_bytes(penguins(island=True)))
    open_dashboard(page, server)
    wait_model_types(page)
    page.set_input_files("#train-file", str(table))
    choose(page, "random_forest")
    page.fill("#n-estimators", FAST["random_forest"]["n_estimators"])
    _, answer = submit_training(page)
    islands = answer["text_features"]["island"]
    shown = table_rows(page, '[data-result="training"] table.model-summary')
    assert shown["island (text)"] == ", ".join(islands)
    assert shown["preprocessing"].startswith("median_imputation+one_hot_encoding")

    # The form follows the model: a text input for the island, offering the islands it was trained on.
    page.wait_for_selector("#feature-island")
    assert page.get_attribute("#feature-island", "type") == "text"
    offered = page.eval_on_selector_all("#feature-island-categories option", "os => os.map(o => o.value)")
    assert offered == islands
    page.fill("#feature-island", "Dream")
    page.fill("#feature-bill_length", "48.8")
    page.fill("#feature-bill_depth", "18.4")
    page.fill("#feature-flipper_length", "196")
    assert submit_prediction(page)["class_name"] == "Chinstrap"
    expect(page.locator('[data-result="prediction"] .unseen-categories')).to_have_count(0)

    # A text the model never saw is sent as it is, ignored by the model, and named under the answer.
    page.fill("#feature-island", "Atlantis")
    assert submit_prediction(page)["unseen_categories"] == {"island": "Atlantis"}
    expect(page.locator('[data-result="prediction"] .unseen-categories')).to_contain_text("island = Atlantis")

    # The training run's popup shows the island's training shares where a number's moments go.
    profile = server.get(f"/mlflow/run/{answer['run_id']}/artifacts/reference_profile.json")
    shares = profile["features"]["island"]["proportions"]
    page.locator(f'#runs tr[data-run-id="{answer["run_id"]}"]').click()
    page.wait_for_function("() => document.getElementById('run-dialog').open")
    row = page.locator('#run-dialog-body .profile-table tr[data-feature="island"] td')
    expected = " · ".join(f"{c} {formatted(page, 'formatPercent', p)}" for c, p in zip(islands, shares, strict=False))
    expect(row).to_have_text(f"text: {expected}")
    page.keyboard.press("Escape")

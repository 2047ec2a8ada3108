"""The Tuning card and a tuning's runs, in a real browser.

A tuning started from the form is followed until it ends: its trials' table, chart and outcome are checked
against GET /tune/{id} and against the MLflow child runs (hyperparameters, scores, the best trial, the
registered version); a refused tuning shows the server's detail and opens no run; a cancelled one ends with its
finished trials listed and nothing registered; a finished one opened from the runs list shows its trials, and its
trials link back to it. The tests run in file order on one server (a tuning refuses to start while another runs,
so each waits for its own to end); one that needs a finished tuning it did not make starts it through the API.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from mlflow import MlflowClient
from playwright.sync_api import Page, expect

from iris_platform.tracking import names

from .conftest import Server, open_dashboard, poll, screenshot, stats
from .page_modules import detail, formatted, missing

GRID = {"n_estimators": "3, 5", "max_depth": "1, 2"}  # four small forests: a few seconds in all
GRID_SPACE = {"n_estimators": [3, 5], "max_depth": [1, 2]}
# Many larger forests, so the tuning is still running when the test cancels it.
SLOW_RANGE = {"low": "300", "high": "500"}
SLOW_TRIALS = 50
TUNING_TIMEOUT_MS = 90_000
ENDED = ("finished", "cancelled", "failed")
PROVOKED_422 = "the server responded with a status of 422"
REGISTERED_MODEL = "iris_classifier"


# -- helpers ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mlflow(server: Server) -> MlflowClient:
    return MlflowClient(tracking_uri=server.tracking_uri)


def wait_tuning_form(page: Page) -> None:
    """The model types are read and the default type's value fields are drawn."""
    page.wait_for_function(
        """() => document.querySelectorAll('#tune-model-type option').length > 0
            && document.querySelectorAll('#tune-space-inputs [data-hyperparameter]').length > 0"""
    )


def choose_type(page: Page, model_type: str) -> None:
    page.select_option("#tune-model-type", model_type)
    page.wait_for_function(
        "type => document.querySelector('#tune-space-inputs [data-hyperparameter]') !== null"
        " && document.getElementById('tune-model-type').value === type",
        arg=model_type,
    )


def submit_tuning(page: Page, expect_status: int = 202):
    """Submit the form; returns the POST /tune request's JSON body and the answer's."""
    with page.expect_response(
        lambda r: urlsplit(r.url).path == "/tune" and r.request.method == "POST", timeout=30_000
    ) as answer:
        page.click("#tune-form button[type=submit]")
    response = answer.value
    assert response.status == expect_status, response.text()
    assert response.request.headers["content-type"] == "application/json"
    return json.loads(response.request.post_data or "{}"), response.json()


def wait_state(page: Page, states: tuple[str, ...], timeout: float = TUNING_TIMEOUT_MS) -> str:
    page.wait_for_function(
        "states => states.includes(document.getElementById('tune-state').textContent)",
        arg=list(states),
        timeout=timeout,
    )
    return page.text_content("#tune-state") or ""


def shown_trials(page: Page, table: str) -> list[dict]:
    """A trials table as the page shows it, row by row."""
    return page.eval_on_selector_all(
        f"{table} tbody tr",
        """rows => rows.map(r => ({
            trial: Number(r.dataset.trial), run_id: r.dataset.runId ?? null, best: r.classList.contains('best'),
            hyperparameters: r.querySelector('.trial-hyperparameters').textContent,
            status: r.querySelector('.trial-status span').textContent,
            score: r.querySelector('.trial-score').textContent,
            can_open: r.querySelector('.trial-run button') !== null}))""",
    )


def expected_trials(page: Page, progress: dict) -> list[dict]:
    """The trials of GET /tune/{id}, written by the page's own formatters."""
    best = progress["best"]["trial"] if progress["best"] else None
    rows = []
    for t in progress["trials"]:
        hyperparameters = ", ".join(
            f"{name}={formatted(page, 'formatHyperparameter', value)}" for name, value in t["hyperparameters"].items()
        )
        rows.append(
            {
                "trial": t["trial"],
                "run_id": t["run_id"],
                "best": t["trial"] == best,
                "hyperparameters": hyperparameters or missing(page),
                "status": t["status"],
                "score": detail(page, t["score"]),
                "can_open": t["run_id"] is not None,
            }
        )
    return rows


def chart_data(page: Page, canvas_id: str) -> dict:
    return page.evaluate(
        """id => { const c = Chart.getChart(id);
            return {labels: c.data.labels,
                datasets: Object.fromEntries(c.data.datasets.map(d => [d.label, d.data]))}; }""",
        canvas_id,
    )


def check_chart(page: Page, canvas_id: str, progress: dict) -> None:
    """One point per trial: its score, and the best score of the trials done up to it."""
    best, running = [], None
    for t in progress["trials"]:
        if t["status"] == "finished":
            running = t["score"] if running is None else max(running, t["score"])
        best.append(running if t["status"] in ("finished", "failed") else None)
    assert chart_data(page, canvas_id) == {
        "labels": [str(t["trial"]) for t in progress["trials"]],
        "datasets": {"trial score": [t["score"] for t in progress["trials"]], "best so far": best},
    }


def children(mlflow: MlflowClient, tuning_id: str) -> list:
    """The tuning's trial runs in MLflow (its nested runs), by trial number."""
    experiment = mlflow.get_experiment_by_name(names.TRAINING_EXPERIMENT).experiment_id
    runs = mlflow.search_runs([experiment], filter_string=f"tags.`{names.T_PARENT_RUN_ID}` = '{tuning_id}'")
    return sorted(runs, key=lambda r: int(r.data.params[names.P_TRIAL]))


def check_against_mlflow(mlflow: MlflowClient, progress: dict) -> None:
    """Each finished trial is a child run with the trial's hyperparameters and score; the parent names the best."""
    runs = children(mlflow, progress["tuning_id"])
    done = [t for t in progress["trials"] if t["run_id"] is not None]
    assert [r.info.run_id for r in runs] == [t["run_id"] for t in done]
    for run, trial in zip(runs, done, strict=True):
        assert run.data.tags[names.T_RUN_KIND] == names.RUN_KIND_TRIAL
        assert run.data.params[names.P_TRIAL] == str(trial["trial"])
        assert {k: run.data.params[k] for k in trial["hyperparameters"]} == {
            k: str(v) for k, v in trial["hyperparameters"].items()
        }
        assert run.data.metrics[progress["scored_by"]] == trial["score"]
    parent = mlflow.get_run(progress["tuning_id"])
    assert parent.data.tags[names.T_RUN_KIND] == names.RUN_KIND_TUNING
    assert parent.data.tags[names.T_TUNING_STATUS] == progress["status"]
    scores = [r.data.metrics[progress["scored_by"]] for r in runs]
    best = runs[scores.index(max(scores))]  # the first of the best: a later tie does not replace it
    assert progress["best"]["run_id"] == best.info.run_id == parent.data.tags[names.T_TUNING_BEST_RUN]


def versions(mlflow: MlflowClient) -> dict[str, str]:
    """Each registered version of the model and the run it was logged in."""
    return {str(v.version): v.run_id for v in mlflow.search_model_versions(f"name = '{REGISTERED_MODEL}'")}


def finished_tuning(server: Server) -> dict:
    """The newest finished tuning, started through the API if there is none."""
    for run in server.get("/mlflow/runs", params={"search": "tuning_", "max_results": 100})["runs"]:
        if run["params"].get(names.P_SEARCH_SPACE) is not None:
            progress = server.get(f"/tune/{run['run_id']}")
            if progress["status"] == "finished":
                return progress
    answer = server.http.post("/tune", json={"model_type": "random_forest", "space": GRID_SPACE})
    assert answer.status_code == 202, answer.text
    tuning_id = answer.json()["tuning_id"]
    return poll(
        lambda: (p := server.get(f"/tune/{tuning_id}"))["status"] in ENDED and p, timeout=90, message="the tuning"
    )


def wait_dialog_title(page: Page, title: str) -> None:
    page.wait_for_function(
        """title => document.getElementById('run-dialog').open
            && document.getElementById('run-dialog-title').textContent === title""",
        arg=title,
    )


# -- tests --------------------------------------------------------------------------------------


def test_a_grid_tuning_from_the_form_shows_its_trials_as_mlflow_records_them(
    page: Page, server: Server, mlflow: MlflowClient
):
    polled: list[str] = []  # the page's reads of the tuning's progress
    page.on("request", lambda r: urlsplit(r.url).path.startswith("/tune/") and polled.append(r.method))
    open_dashboard(page, server)
    wait_tuning_form(page)
    choose_type(page, "random_forest")
    expect(page.locator("#tune-n-trials-box")).to_be_hidden()  # a grid tries every combination
    for name, values in GRID.items():
        page.fill(f"#tune-{name.replace('_', '-')}", values)
    sent, started = submit_tuning(page)
    assert sent == {
        "model_type": "random_forest",
        "space": GRID_SPACE,
        "search": "grid",
        "metric": "accuracy",
        "cv_folds": 0,
        "test_size": 0.2,
        "promote": False,
    }
    assert started["status"] == "running" and started["n_trials"] == 4
    tuning_id = started["tuning_id"]
    expect(page.locator("#tune-title")).to_have_text(f"Tuning {tuning_id}")
    expect(page.locator("#tune-form button[type=submit]")).to_be_disabled()  # one tuning at a time

    assert wait_state(page, ENDED) == "finished"
    assert "GET" in polled, "the page read the tuning's progress while it ran"
    progress = server.get(f"/tune/{tuning_id}")
    assert progress["status"] == "finished" and progress["trials_done"] == 4
    assert shown_trials(page, "#tune-trials") == expected_trials(page, progress)
    assert [{k: t["hyperparameters"][k] for k in GRID_SPACE} for t in progress["trials"]] == [
        {"n_estimators": n, "max_depth": d} for n in (3, 5) for d in (1, 2)
    ]
    check_against_mlflow(mlflow, progress)
    check_chart(page, "tuning-chart", progress)
    expect(page.locator("#tune-count")).to_have_text("4 / 4 trials done")
    expect(page.locator("#tune-cancel")).to_be_hidden()
    expect(page.locator("#tune-form button[type=submit]")).to_be_enabled()

    # The version shown is the one registered from the best trial's run; it was not promoted.
    registered = versions(mlflow)
    assert registered[progress["model_version"]] == progress["best"]["run_id"]
    assert mlflow.get_run(tuning_id).data.tags[names.T_TUNING_MODEL_VERSION] == progress["model_version"]
    shown = stats(page, "#tune-outcome")
    assert shown["Registered version"] == progress["model_version"]
    assert shown["Promoted"] == "no" and progress["promoted"] is False
    assert shown["Best trial"] == str(progress["best"]["trial"])
    assert shown[f"Best {progress['scored_by']}"] == detail(page, progress["best"]["score"])
    expect(page.locator("#tune-outcome-text")).to_contain_text(f"version {progress['model_version']}")

    # A trial's button opens its run in the popup.
    best = progress["best"]
    page.click(f'#tune-trials tr[data-run-id="{best["run_id"]}"] .trial-run button')
    wait_dialog_title(page, mlflow.get_run(best["run_id"]).info.run_name)
    screenshot(page, "30-tuning-finished")


def test_a_refused_tuning_shows_the_servers_detail_and_opens_no_run(
    page: Page, server: Server, mlflow: MlflowClient, watch
):
    experiment = mlflow.get_experiment_by_name(names.TRAINING_EXPERIMENT).experiment_id
    runs_before = len(mlflow.search_runs([experiment], max_results=1000))
    versions_before = versions(mlflow)
    open_dashboard(page, server)
    wait_tuning_form(page)
    choose_type(page, "random_forest")

    # 8 x 7 = 56 combinations, more than a tuning may train.
    page.fill("#tune-n-estimators", ", ".join(str(n) for n in range(1, 9)))
    page.fill("#tune-max-depth", ", ".join(str(n) for n in range(1, 8)))
    _, refused = submit_tuning(page, expect_status=422)
    assert "56 combinations" in refused["detail"]
    expect(page.locator("#tune-error")).to_have_text(f"422: {refused['detail']}")

    # Nothing to try at all.
    page.fill("#tune-n-estimators", "")
    page.fill("#tune-max-depth", "")
    sent, refused = submit_tuning(page, expect_status=422)
    assert sent["space"] == {}
    assert refused["detail"].startswith("space is empty")
    expect(page.locator("#tune-error")).to_have_text(f"422: {refused['detail']}")

    # A value the hyperparameter does not take: its field is marked.
    page.fill("#tune-n-estimators", "3, many")
    sent, refused = submit_tuning(page, expect_status=422)
    assert sent["space"] == {"n_estimators": [3, "many"]}
    assert refused["detail"].startswith("n_estimators for model_type 'random_forest'")
    expect(page.locator("#tune-error")).to_have_text(f"422: {refused['detail']}")
    expect(page.locator("#tune-n-estimators")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#tuning-progress")).to_be_hidden()  # nothing started
    expect(page.locator("#tune-form button[type=submit]")).to_be_enabled()

    assert len(mlflow.search_runs([experiment], max_results=1000)) == runs_before
    assert versions(mlflow) == versions_before
    # The browser's own "Failed to load resource" for each 422, provoked on purpose.
    assert sum(PROVOKED_422 in m for m in watch.console_errors) == 3, watch.console_errors
    watch.console_errors[:] = [m for m in watch.console_errors if PROVOKED_422 not in m]


def test_cancelling_a_running_tuning_keeps_its_finished_trials(page: Page, server: Server, mlflow: MlflowClient):
    versions_before = versions(mlflow)
    open_dashboard(page, server)
    wait_tuning_form(page)
    choose_type(page, "random_forest")
    page.select_option("#tune-search", "random")
    expect(page.locator("#tune-n-trials-box")).to_be_visible()
    page.fill("#tune-n-trials", str(SLOW_TRIALS))
    page.fill("#tune-n-estimators-low", SLOW_RANGE["low"])
    page.fill("#tune-n-estimators-high", SLOW_RANGE["high"])
    sent, started = submit_tuning(page)
    assert sent["search"] == "random" and sent["n_trials"] == SLOW_TRIALS
    assert sent["space"] == {"n_estimators": {"low": 300, "high": 500, "log": False}}
    tuning_id = started["tuning_id"]

    # Opened again while it runs, the page follows it (and will not start another meanwhile).
    open_dashboard(page, server)
    expect(page.locator("#tune-title")).to_have_text(f"Tuning {tuning_id}")
    expect(page.locator("#tune-form button[type=submit]")).to_be_disabled()

    # Once a trial is done, cancel: the current trial ends, the others never start.
    page.wait_for_function("() => document.getElementById('tune-bar').value >= 1", timeout=TUNING_TIMEOUT_MS)
    expect(page.locator("#tune-cancel")).to_be_enabled()
    with page.expect_response(lambda r: r.request.method == "DELETE") as answer:
        page.click("#tune-cancel")
    assert answer.value.status == 200, answer.value.text()
    assert answer.value.json()["status"] in ("cancelling", "cancelled")
    assert urlsplit(answer.value.url).path == f"/tune/{tuning_id}"
    assert wait_state(page, ENDED) == "cancelled"

    progress = server.get(f"/tune/{tuning_id}")
    assert progress["status"] == "cancelled" and progress["model_version"] is None
    assert 1 <= progress["trials_done"] < SLOW_TRIALS
    finished = [t for t in progress["trials"] if t["status"] == "finished"]
    assert len(finished) == progress["trials_done"]
    assert shown_trials(page, "#tune-trials") == expected_trials(page, progress)
    check_against_mlflow(mlflow, progress)
    check_chart(page, "tuning-chart", progress)
    shown = stats(page, "#tune-outcome")
    assert "Registered version" not in shown and shown["Trials done"] == f"{len(finished)} / {SLOW_TRIALS}"
    expect(page.locator("#tune-outcome-text")).to_contain_text("Cancelled")
    expect(page.locator("#tune-cancel")).to_be_hidden()

    assert mlflow.get_run(tuning_id).info.status == "KILLED"
    assert all(r.info.status == "FINISHED" for r in children(mlflow, tuning_id))
    assert versions(mlflow) == versions_before  # nothing registered
    screenshot(page, "31-tuning-cancelled")


def test_a_finished_tuning_opened_from_the_runs_list_shows_its_trials(page: Page, server: Server, mlflow: MlflowClient):
    progress = finished_tuning(server)
    tuning_id, best = progress["tuning_id"], progress["best"]
    open_dashboard(page, server)

    parent_row = page.locator(f'#runs tr[data-run-id="{tuning_id}"]')
    expect(parent_row).to_have_attribute("data-run-kind", names.RUN_KIND_TUNING)
    expect(parent_row.locator(".run-meta")).to_contain_text(f"{progress['n_trials']} trials")
    trial_row = page.locator(f'#runs tr[data-run-id="{best["run_id"]}"]')
    expect(trial_row).to_have_attribute("data-run-kind", names.RUN_KIND_TRIAL)

    parent_row.click()
    wait_dialog_title(page, mlflow.get_run(tuning_id).info.run_name)
    page.wait_for_function("() => Chart.getChart('tuning-run-chart') !== undefined")
    assert shown_trials(page, "#run-dialog-body .trials-table") == expected_trials(page, progress)
    check_chart(page, "tuning-run-chart", progress)
    shown = stats(page, "#run-dialog-body .tuning-outcome")
    assert shown["Registered version"] == progress["model_version"]
    assert shown["Best trial"] == str(best["trial"])
    screenshot(page, "32-tuning-run-popup", full_page=False)

    # A trial's run links back to its tuning's.
    page.click(f'#run-dialog-body .trials-table tr[data-run-id="{best["run_id"]}"] .trial-run button')
    wait_dialog_title(page, mlflow.get_run(best["run_id"]).info.run_name)
    link = page.locator("#run-dialog-body .trial-of .parent-run")
    expect(link).to_have_attribute("data-run-id", tuning_id)
    expect(page.locator("#run-dialog-body .trial-of")).to_contain_text(
        f"Trial {best['trial']} of {progress['n_trials']}"
    )
    expect(page.locator("#run-dialog-body .trial-of .badge.best")).to_have_count(1)
    link.click()
    wait_dialog_title(page, mlflow.get_run(tuning_id).info.run_name)

    # Opened from the runs list, a trial that is not the best says so too.
    other = next(t for t in progress["trials"] if t["run_id"] not in (None, best["run_id"]))
    page.click("#run-dialog-close")
    page.locator(f'#runs tr[data-run-id="{other["run_id"]}"]').click()
    wait_dialog_title(page, mlflow.get_run(other["run_id"]).info.run_name)
    expect(page.locator("#run-dialog-body .trial-of .parent-run")).to_have_attribute("data-run-id", tuning_id)
    expect(page.locator("#run-dialog-body .trial-of .badge.best")).to_have_count(0)

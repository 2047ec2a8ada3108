"""POST /tune: a grid or random search run in the background as a parent run with a child run per trial
(MLflow's nested runs), the best trial's model registered and promoted if asked; progress, cancellation,
and refusals that leave nothing behind."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score
from sklearn.model_selection import StratifiedKFold

from tests.helpers.api import assert_error, wait_for_tuning, wait_until
from tests.helpers.contract import TRAINING_EXPERIMENT
from tests.helpers.mlflow_reads import all_runs, assert_no_running_runs
from tests.helpers.platform import open_platform

PARENT_TAG = "mlflow.parentRunId"


def tune(client, **body) -> dict:
    response = client.post("/tune", json=body)
    assert response.status_code == 202, response.text
    progress = response.json()
    assert response.headers["location"] == f"/tune/{progress['tuning_id']}"
    return progress


finished = wait_for_tuning


def children(platform, parent_id: str) -> list:
    runs = all_runs(platform.mlflow, TRAINING_EXPERIMENT, f"tags.`{PARENT_TAG}` = '{parent_id}'")
    return sorted(runs, key=lambda r: int(r.data.params["trial"]))


def registered_versions(platform) -> list[str]:
    return sorted(v.version for v in platform.mlflow.search_model_versions("name = 'iris_classifier'"))


def cv_accuracy(hyperparameters: dict, folds: int, random_state: int) -> float:
    """Independent of the platform: scikit-learn's forest on the same stratified folds."""
    X, y = load_iris(return_X_y=True, as_frame=True)
    splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=random_state).split(X, y)
    scores = []
    for train_rows, test_rows in splits:
        model = RandomForestClassifier(**hyperparameters, random_state=random_state)
        model.fit(X.iloc[train_rows], y.iloc[train_rows])
        scores.append(accuracy_score(y.iloc[test_rows], model.predict(X.iloc[test_rows])))
    return float(np.mean(scores))


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with open_platform(tmp_path_factory.mktemp("tuning")) as platform:
        yield platform


@pytest.fixture(scope="module")
def grid_tuning(platform):
    space = {"n_estimators": [3, 8], "max_depth": [1, None]}
    started = tune(platform.client, model_type="random_forest", space=space, cv_folds=3, promote=True)
    return space, started, finished(platform.client, started["tuning_id"])


def test_a_grid_tuning_tries_every_combination_as_nested_runs(platform, grid_tuning):
    space, started, done = grid_tuning
    assert started["status"] == "running" and started["n_trials"] == 4 and started["trials_done"] == 0
    assert done["status"] == "finished" and done["trials_done"] == 4 and done["error"] is None
    assert done["scored_by"] == "cv_accuracy_mean"

    parent = platform.mlflow.get_run(done["tuning_id"])
    assert parent.info.status == "FINISHED"
    assert parent.info.experiment_id == platform.mlflow.get_experiment_by_name(TRAINING_EXPERIMENT).experiment_id
    assert parent.info.run_name.startswith("tuning_")
    assert parent.data.tags["iris.run_kind"] == "tuning" and parent.data.tags["tuning_status"] == "finished"
    assert parent.data.params["search"] == "grid"
    assert json.loads(parent.data.params["search_space"]) == space
    assert parent.data.params["tuning_metric"] == "cv_accuracy_mean"
    assert parent.data.params["n_trials"] == "4" and parent.data.params["cv_folds"] == "3"

    trials = children(platform, done["tuning_id"])
    combos = [dict(zip(space, c, strict=True)) for c in itertools.product(*space.values())]
    assert len(trials) == 4
    for run, combo, reported in zip(trials, combos, done["trials"], strict=True):
        assert run.info.status == "FINISHED" and run.info.run_name.startswith(f"trial_{reported['trial']}_")
        assert run.data.tags["iris.run_kind"] == "trial"
        assert run.data.params["model_type"] == "RandomForestClassifier"
        assert {k: run.data.params[k] for k in combo} == {k: str(v) for k, v in combo.items()}
        assert reported["run_id"] == run.info.run_id and reported["status"] == "finished"
        assert reported["score"] == pytest.approx(run.data.metrics["cv_accuracy_mean"])
        # The score is scikit-learn's own cross-validated accuracy on the same folds.
        expected = cv_accuracy(combo, 3, platform.settings.random_state)
        assert run.data.metrics["cv_accuracy_mean"] == pytest.approx(expected)

    # The parent's history: each trial's score and the best so far, one step per trial.
    history = platform.mlflow.get_metric_history(done["tuning_id"], "trial_score")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [1, 2, 3, 4]
    scores = [m.value for m in sorted(history, key=lambda m: m.step)]
    assert scores == pytest.approx([t["score"] for t in done["trials"]])
    best_history = sorted(platform.mlflow.get_metric_history(done["tuning_id"], "best_score"), key=lambda m: m.step)
    assert [m.value for m in best_history] == pytest.approx(list(itertools.accumulate(scores, max)))


def test_the_best_trial_is_registered_and_promoted(platform, grid_tuning):
    _, _, done = grid_tuning
    scores = [t["score"] for t in done["trials"]]
    first_best = scores.index(max(scores))  # ties go to the earlier trial
    best = done["best"]
    assert best["trial"] == first_best + 1 and best["score"] == max(scores)
    assert done["model_version"] is not None and done["promoted"] is True
    version = platform.mlflow.get_model_version("iris_classifier", done["model_version"])
    assert version.run_id == best["run_id"]
    assert platform.mlflow.get_run(done["tuning_id"]).data.tags["tuning_best_run_id"] == best["run_id"]
    assert str(platform.mlflow.get_registered_model("iris_classifier").aliases["champion"]) == done["model_version"]
    assert platform.client.get("/health").json()["model_version"] == done["model_version"]
    # The best trial's run holds its model, as a training run does.
    artifacts = {a.path for a in platform.mlflow.list_artifacts(best["run_id"])}
    assert {"model_files", "evaluation"} <= artifacts
    served = platform.client.post(
        "/predict", json={"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
    ).json()
    assert served["model_version"] == done["model_version"]


def test_progress_survives_a_restart(platform, grid_tuning):
    _, _, done = grid_tuning
    with open_platform(platform.directory) as again:  # a new process: nothing of the tuning in memory
        read = again.client.get(f"/tune/{done['tuning_id']}").json()
    assert read["status"] == "finished"
    assert read["model_type"] == "random_forest" and read["search"] == "grid" and read["cv_folds"] == 3
    assert read["trials_done"] == 4 and read["model_version"] == done["model_version"] and read["promoted"]
    assert read["best"]["run_id"] == done["best"]["run_id"]
    assert [t["hyperparameters"] for t in read["trials"]] == [t["hyperparameters"] for t in done["trials"]]
    assert [t["score"] for t in read["trials"]] == pytest.approx([t["score"] for t in done["trials"]])


def test_a_random_search_draws_within_the_space_and_does_not_promote_unless_asked(platform, grid_tuning):
    champion_before = str(platform.mlflow.get_registered_model("iris_classifier").aliases["champion"])
    space = {"C": {"low": 0.01, "high": 100, "log": True}, "max_iter": [200, 500]}
    started = tune(
        platform.client, model_type="logistic_regression", search="random", n_trials=5, space=space, metric="f1_score"
    )
    done = finished(platform.client, started["tuning_id"])
    assert done["status"] == "finished" and done["scored_by"] == "f1_score" and done["trials_done"] == 5
    drawn = [t["hyperparameters"] for t in done["trials"]]
    assert all(0.01 <= h["C"] <= 100 and h["max_iter"] in (200, 500) for h in drawn)
    assert len({h["C"] for h in drawn}) == 5  # drawn, not repeated
    assert max(math.log10(h["C"]) for h in drawn) - min(math.log10(h["C"]) for h in drawn) > 0.5  # spread in log
    for run, trial in zip(children(platform, done["tuning_id"]), done["trials"], strict=True):
        assert run.data.params["model_type"] == "LogisticRegression"
        assert float(run.data.params["C"]) == pytest.approx(trial["hyperparameters"]["C"])
        assert run.data.metrics["f1_score"] == pytest.approx(trial["score"])
    assert done["model_version"] is not None and done["promoted"] is False
    assert platform.mlflow.get_model_version("iris_classifier", done["model_version"]).run_id == done["best"]["run_id"]
    assert str(platform.mlflow.get_registered_model("iris_classifier").aliases["champion"]) == champion_before
    # The same request draws the same trials: the search is seeded.
    again = tune(
        platform.client, model_type="logistic_regression", search="random", n_trials=5, space=space, metric="f1_score"
    )
    assert [t["hyperparameters"] for t in again["trials"]] == drawn
    finished(platform.client, again["tuning_id"])


def test_cancelling_keeps_the_finished_trials_and_registers_nothing(platform, grid_tuning):
    versions_before = registered_versions(platform)
    started = tune(
        platform.client,
        model_type="random_forest",
        search="random",
        n_trials=30,
        space={"n_estimators": {"low": 150, "high": 200}},
    )
    tuning_id = started["tuning_id"]
    second = platform.client.post("/tune", json={"model_type": "knn", "space": {"n_neighbors": [3]}})
    assert_error(second, 409, tuning_id, "DELETE")  # one tuning at a time per process
    wait_until(
        lambda: platform.client.get(f"/tune/{tuning_id}").json()["trials_done"] >= 1, 60, "a first trial to finish"
    )
    cancelled = platform.client.delete(f"/tune/{tuning_id}")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] in ("cancelling", "cancelled")
    done = finished(platform.client, tuning_id)
    assert done["status"] == "cancelled" and 1 <= done["trials_done"] < 30
    assert done["model_version"] is None and not done["promoted"]
    parent = platform.mlflow.get_run(tuning_id)
    assert parent.info.status == "KILLED" and parent.data.tags["tuning_status"] == "cancelled"
    kept = children(platform, tuning_id)
    assert len(kept) == done["trials_done"] and all(r.info.status == "FINISHED" for r in kept)
    assert registered_versions(platform) == versions_before
    assert_no_running_runs(platform)
    assert_error(platform.client.delete(f"/tune/{tuning_id}"), 409, "already ended")


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ({"model_type": "boosted", "space": {"n_estimators": [5]}}, ("model_type", "'random_forest'", "'knn'")),
        ({"model_type": "knn", "space": {}}, ("space is empty", "n_neighbors", "weights")),
        ({"model_type": "knn", "space": {"C": [1.0]}}, ("C", "does not apply", "n_neighbors")),
        ({"model_type": "knn", "space": {"n_neighbors": list(range(1, 52))}}, ("51 combinations", "50")),
        ({"model_type": "svc", "space": {"C": [-1]}}, ("C", "above 0")),
        ({"model_type": "svc", "space": {"kernel": ["cubic"]}}, ("kernel", "'rbf'", "'linear'")),
        ({"model_type": "knn", "space": {"n_neighbors": []}}, ("space.n_neighbors", "non-empty list")),
        ({"model_type": "knn", "search": "random", "space": {"n_neighbors": [3]}}, ("n_trials", "between 1 and 50")),
        ({"model_type": "knn", "n_trials": 3, "space": {"n_neighbors": [3]}}, ("n_trials", "grid")),
        ({"model_type": "knn", "search": "bayes", "space": {"n_neighbors": [3]}}, ("search", "'grid'", "'random'")),
        ({"model_type": "knn", "metric": "auc", "space": {"n_neighbors": [3]}}, ("metric", "'accuracy'", "'f1_score'")),
        ({"model_type": "knn", "cv_folds": 1, "space": {"n_neighbors": [3]}}, ("cv_folds", "from 2 to 20")),
        (
            {"model_type": "knn", "search": "random", "n_trials": 2, "space": {"n_neighbors": {"low": 9, "high": 2}}},
            ("space.n_neighbors", "low <= high"),
        ),
        ({"model_type": "knn", "space": {"n_neighbors": [3]}, "trees": 5}, ("trees", "extra")),
    ],
)
def test_bad_tunings_are_refused_and_leave_no_run(platform, grid_tuning, body, fragments):
    runs_before = {r.info.run_id for r in all_runs(platform.mlflow, TRAINING_EXPERIMENT)}
    versions_before = registered_versions(platform)
    assert_error(platform.client.post("/tune", json=body), 422, *fragments)
    assert {r.info.run_id for r in all_runs(platform.mlflow, TRAINING_EXPERIMENT)} == runs_before
    assert registered_versions(platform) == versions_before


def test_unknown_tunings_and_other_bodies(platform, grid_tuning):
    assert_error(platform.client.get("/tune/" + "0" * 32), 404, "no tuning")
    a_trial = grid_tuning[2]["trials"][0]["run_id"]
    assert_error(platform.client.get(f"/tune/{a_trial}"), 404, "not a tuning")
    assert platform.client.get("/tune/not-an-id").status_code == 422
    form = platform.client.post("/tune", data={"model_type": "knn"})
    assert_error(form, 415, "JSON")


def test_a_method_the_path_does_not_take_is_told_every_method_it_does(platform, grid_tuning):
    tuning_id = grid_tuning[1]["tuning_id"]
    # Two routes share the path (GET and DELETE): the answer names both, not the first route's only.
    refused = platform.client.patch(f"/tune/{tuning_id}")
    assert_error(refused, 405, f"PATCH is not allowed on /tune/{tuning_id}: use DELETE, GET.")
    assert refused.headers["allow"] == "DELETE, GET"

"""Reading MLflow through the API (/mlflow/...), plus /health, the dashboard page and /docs."""

import re
from datetime import datetime
from html.parser import HTMLParser

import pytest

from tests.helpers.api import FAST_TREES, assert_error, predict, predict_batch, train, wait_for_writer
from tests.helpers.contract import (
    EXPERIMENTS,
    INFERENCE_EXPERIMENT,
    PREDICTION_ID_TAG,
    TRAINING_EXPERIMENT,
    TRAINING_METRICS,
)
from tests.helpers.data import SETOSA, VIRGINICA, samples_csv
from tests.helpers.mlflow_reads import all_runs
from tests.helpers.platform import open_platform


@pytest.fixture(scope="module")
def activity(tmp_path_factory):
    """A store with two trainings, one failed training, two single predictions and one batch."""
    with open_platform(tmp_path_factory.mktemp("runs")) as platform:
        client = platform.client
        trainings = [train(client, n_estimators=3), train(client, n_estimators=FAST_TREES)]
        failed = client.post("/train", files={"file": ("tiny.csv", b"x,label\n1,a\n2,b\n", "text/csv")})
        assert failed.status_code == 422
        singles = [predict(client, SETOSA), predict(client, VIRGINICA)]
        batch = predict_batch(client, samples_csv([SETOSA, VIRGINICA, SETOSA]))
        wait_for_writer(client)
        yield platform, {"trainings": trainings, "singles": singles, "batch": batch}


def get_json(platform, url, status=200):
    response = platform.client.get(url)
    assert response.status_code == status, response.text
    return response.json()


def stored_runs(platform):
    """Every run of both experiments, read with MlflowClient: {run_id: Run}."""
    return {r.info.run_id: r for name in EXPERIMENTS for r in all_runs(platform.mlflow, name)}


def test_experiments(activity):
    platform, _ = activity
    body = get_json(platform, "/mlflow/experiments")
    assert body["status"] == "success"
    by_name = {e["name"]: e for e in body["experiments"]}
    for name in EXPERIMENTS:
        assert by_name[name]["experiment_id"] == platform.mlflow.get_experiment_by_name(name).experiment_id
        assert by_name[name]["lifecycle_stage"] == "active"


def test_fresh_store_gets_both_experiments_at_start(fresh_platform):
    assert {e.name for e in fresh_platform.mlflow.search_experiments()} >= set(EXPERIMENTS)
    assert get_json(fresh_platform, "/mlflow/runs") == {
        "status": "success",
        "runs": [],
        "total": 0,
        "page": 1,
        "pages": 1,
    }


def test_runs_of_both_experiments_match_mlflow(activity):
    platform, done = activity
    stored = stored_runs(platform)
    body = get_json(platform, "/mlflow/runs")
    assert body["status"] == "success"
    assert body["total"] == len(stored) == 6
    assert {r["run_id"] for r in body["runs"]} == set(stored)
    starts = [datetime.fromisoformat(r["start_time"]) for r in body["runs"]]
    assert starts == sorted(starts, reverse=True)  # newest first
    for run in body["runs"]:
        mlflow_run = stored[run["run_id"]]
        assert run["experiment_name"] == platform.mlflow.get_experiment(mlflow_run.info.experiment_id).name
        assert run["run_name"] == mlflow_run.info.run_name
        assert run["status"] == mlflow_run.info.status
        assert datetime.fromisoformat(run["start_time"]).timestamp() * 1000 == pytest.approx(
            mlflow_run.info.start_time, abs=1
        )
        assert run["params"] == mlflow_run.data.params
        assert run["metrics"] == mlflow_run.data.metrics
    single_ids = {r["run_id"] for r in body["runs"] if r["run_name"].startswith("single_prediction_")}
    assert len(single_ids) == 2
    assert done["batch"]["run_id"] in {r["run_id"] for r in body["runs"]}


@pytest.mark.parametrize(
    "experiment, total, prefixes",
    [(TRAINING_EXPERIMENT, 3, ("training_",)), (INFERENCE_EXPERIMENT, 3, ("single_prediction_", "batch_prediction_"))],
)
def test_runs_filtered_by_experiment(activity, experiment, total, prefixes):
    platform, _ = activity
    body = get_json(platform, f"/mlflow/runs?experiment_name={experiment}")
    assert body["total"] == total == len(body["runs"])
    assert {r["experiment_name"] for r in body["runs"]} == {experiment}
    assert all(r["run_name"].startswith(prefixes) for r in body["runs"])


def test_max_results_limits_the_page_not_the_total(activity):
    platform, _ = activity
    everything = get_json(platform, "/mlflow/runs")["runs"]
    page = get_json(platform, "/mlflow/runs?max_results=2")
    assert [r["run_id"] for r in page["runs"]] == [r["run_id"] for r in everything[:2]]
    assert page["total"] == 6
    training = get_json(platform, f"/mlflow/runs?experiment_name={TRAINING_EXPERIMENT}&max_results=1")
    assert len(training["runs"]) == 1 and training["total"] == 3


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_runs_sorted_by_samples_mix_training_and_inference_runs(activity, order):
    platform, made = activity

    def samples(run):  # what the Samples column shows: a training's data set, the rows a run predicted
        if "n_samples" in run["params"]:
            return float(run["params"]["n_samples"])
        return run["metrics"].get("total_samples", 1.0)

    runs = get_json(platform, f"/mlflow/runs?order_by=samples&order={order}&max_results=50")["runs"]
    assert {r["run_id"] for r in runs} == set(stored_runs(platform))
    values = [samples(r) for r in runs]
    assert values == sorted(values, reverse=order == "desc")
    assert {150.0, 3.0, 1.0} <= set(values)  # Iris trainings, the 3-row batch, single predictions
    assert runs[0 if order == "desc" else -1]["run_type"] == "training"


def test_sorting_by_samples_survives_a_run_logged_by_hand_with_a_word_for_n_samples(fresh_platform):
    platform = fresh_platform
    trained = train(platform.client, n_estimators=FAST_TREES)
    experiment = platform.mlflow.get_experiment_by_name(TRAINING_EXPERIMENT)
    odd = platform.mlflow.create_run(experiment.experiment_id, run_name="logged from a notebook")
    platform.mlflow.log_param(odd.info.run_id, "n_samples", "all")  # PostgreSQL cannot cast this to a number
    platform.mlflow.set_terminated(odd.info.run_id)
    runs = get_json(platform, "/mlflow/runs?order_by=samples&order=desc")["runs"]
    assert [r["run_id"] for r in runs] == [trained["run_id"], odd.info.run_id]


def test_runs_of_an_unknown_experiment_is_404(activity):
    platform, _ = activity
    response = platform.client.get("/mlflow/runs?experiment_name=no_such_experiment")
    assert_error(response, 404, "no_such_experiment", "does not exist", TRAINING_EXPERIMENT)


@pytest.mark.parametrize("max_results", [0, -1, 100000, "many"])
def test_runs_refuses_a_bad_max_results(activity, max_results):
    platform, _ = activity
    assert platform.client.get(f"/mlflow/runs?max_results={max_results}").status_code == 422


def test_summary_counts_every_run(activity):
    platform, done = activity
    training_runs = all_runs(platform.mlflow, TRAINING_EXPERIMENT)
    accuracies = [r.data.metrics["accuracy"] for r in training_runs if "accuracy" in r.data.metrics]
    assert sorted(accuracies) == sorted(t["accuracy"] for t in done["trainings"])
    body = get_json(platform, "/mlflow/summary")
    assert body == {
        "status": "success",
        "total_runs": 6,
        "training_runs": 3,
        "inference_runs": 3,
        "avg_accuracy": pytest.approx(sum(accuracies) / len(accuracies)),
    }


def test_summary_of_an_empty_store(fresh_platform):
    body = get_json(fresh_platform, "/mlflow/summary")
    assert body == {"status": "success", "total_runs": 0, "training_runs": 0, "inference_runs": 0, "avg_accuracy": None}


def test_one_training_run_in_full(activity):
    platform, done = activity
    training = done["trainings"][1]
    body = get_json(platform, f"/mlflow/run/{training['run_id']}")
    mlflow_run = platform.mlflow.get_run(training["run_id"])
    assert body["run_id"] == training["run_id"]
    assert body["experiment_name"] == TRAINING_EXPERIMENT
    assert body["run_name"] == mlflow_run.info.run_name and body["status"] == "FINISHED"
    assert datetime.fromisoformat(body["start_time"]) <= datetime.fromisoformat(body["end_time"])
    assert body["params"] == mlflow_run.data.params
    assert body["params"]["n_estimators"] == str(FAST_TREES)
    assert body["metrics"] == {m: training[m] for m in TRAINING_METRICS}
    assert body["tags"] == {k: v for k, v in mlflow_run.data.tags.items() if not k.startswith("mlflow.")}
    model_file = training["model_metadata"]["model_file"]
    assert [a["path"] for a in body["artifacts"]] == [
        "evaluation/confusion_matrix.json",  # three classes: no ROC or precision-recall curve
        "evaluation/per_class_metrics.json",
        f"model_files/{model_file.replace('.pkl', '.onnx')}",
        f"model_files/{model_file}",
        f"model_files/{model_file.replace('.pkl', '_metadata.json')}",
        f"model_files/{model_file.replace('.pkl', '_reference_profile.json')}",
        "reference_profile.json",
    ]
    assert all(a["size_bytes"] > 0 for a in body["artifacts"])


def test_one_single_prediction_run_in_full(activity):
    platform, done = activity
    single = done["singles"][0]
    runs = [r for r in get_json(platform, "/mlflow/runs")["runs"] if r["run_name"].startswith("single_")]
    run_id = next(r["run_id"] for r in runs if r["params"]["predicted_class"] == single["class_name"])
    body = get_json(platform, f"/mlflow/run/{run_id}")
    assert body["experiment_name"] == INFERENCE_EXPERIMENT
    assert body["tags"][PREDICTION_ID_TAG] == single["prediction_id"]
    assert body["params"]["prediction_type"] == "single"
    assert body["metrics"]["prediction_confidence"] == pytest.approx(single["confidence"])
    assert body["artifacts"] == []


@pytest.mark.parametrize(
    "run_id, status, fragments",
    [
        ("0" * 32, 404, ["0" * 32, "no run"]),
        ("not-a-run-id", 422, ["not-a-run-id", "32 hexadecimal"]),
        ("A" * 32, 422, ["32 hexadecimal"]),
        ("1234", 422, ["32 hexadecimal"]),
    ],
)
def test_run_lookup_errors(activity, run_id, status, fragments):
    platform, _ = activity
    assert_error(platform.client.get(f"/mlflow/run/{run_id}"), status, *fragments)


# -- /health, the page and the API docs -------------------------------------------------------------


def test_health(activity):
    platform, done = activity
    body = get_json(platform, "/health")
    assert body["status"] == "healthy"
    assert body["model_loaded"] is True
    assert body["current_model"] == done["trainings"][1]["model_path"]
    assert body["tracking_uri"] == platform.settings.tracking_uri
    assert body["pending_inference_records"] == 0
    assert body["tracking_error"] is None


class _Assets(HTMLParser):
    """The scripts and stylesheets a page loads."""

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and attrs.get("src"):
            self.urls.append(attrs["src"])
        if tag == "link" and "stylesheet" in (attrs.get("rel") or "") and attrs.get("href"):
            self.urls.append(attrs["href"])


def test_dashboard_page_and_its_local_assets(activity):
    platform, _ = activity
    response = platform.client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert re.search(r"<html", response.text, re.IGNORECASE)
    parser = _Assets()
    parser.feed(response.text)
    for url in parser.urls:
        assert not re.match(r"(?i)(https?:)?//", url), f"the page loads {url} from another host"
        asset = platform.client.get(url if url.startswith("/") else f"/{url}")
        assert asset.status_code == 200, url


def test_docs_and_openapi_cover_every_route(activity):
    platform, _ = activity
    docs = platform.client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    paths = get_json(platform, "/openapi.json")["paths"]
    expected = {
        "/health": "get",
        "/train": "post",
        "/predict": "post",
        "/predict_batch": "post",
        "/models": "get",
        "/load_model": "post",
        "/mlflow/experiments": "get",
        "/mlflow/runs": "get",
        "/mlflow/summary": "get",
        "/mlflow/run/{run_id}": "get",
    }
    for path, method in expected.items():
        assert method in paths.get(path, {}), f"{method.upper()} {path} missing from /openapi.json"
    predict_body = paths["/predict"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/x-www-form-urlencoded", "multipart/form-data"} <= set(predict_body)

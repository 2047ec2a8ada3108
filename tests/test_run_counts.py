"""/mlflow/summary and /mlflow/runs `total` (one SQL aggregate) against counting by paging MlflowClient."""

import pytest
from mlflow.entities import Metric, ViewType

from tests.helpers.api import predict, predict_batch, train, wait_for_writer
from tests.helpers.contract import INFERENCE_EXPERIMENT, TRAINING_EXPERIMENT
from tests.helpers.data import SETOSA, VIRGINICA, samples_csv
from tests.helpers.mlflow_reads import experiment_id


def paged(mlflow_client, experiment_ids: list[str]) -> list:
    """Every active run, three per page: the slow way the SQL aggregate replaces."""
    runs, token = [], None
    while True:
        page = mlflow_client.search_runs(
            experiment_ids, run_view_type=ViewType.ACTIVE_ONLY, max_results=3, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def expected_counts(mlflow_client) -> dict:
    training = paged(mlflow_client, [experiment_id(mlflow_client, TRAINING_EXPERIMENT)])
    inference = paged(mlflow_client, [experiment_id(mlflow_client, INFERENCE_EXPERIMENT)])
    accuracies = [r.data.metrics["accuracy"] for r in training if "accuracy" in r.data.metrics]
    return {
        "total_runs": len(training) + len(inference),
        "training_runs": len(training),
        "inference_runs": len(inference),
        "avg_accuracy": sum(accuracies) / len(accuracies) if accuracies else None,
    }


def check_counts(platform) -> dict:
    expected = expected_counts(platform.mlflow)
    summary = platform.client.get("/mlflow/summary").json()
    assert summary["status"] == "success"
    assert {k: summary[k] for k in ("total_runs", "training_runs", "inference_runs")} == {
        k: expected[k] for k in ("total_runs", "training_runs", "inference_runs")
    }
    if expected["avg_accuracy"] is None:
        assert summary["avg_accuracy"] is None
    else:
        assert summary["avg_accuracy"] == pytest.approx(expected["avg_accuracy"])
    for name, key in (
        (None, "total_runs"),
        (TRAINING_EXPERIMENT, "training_runs"),
        (INFERENCE_EXPERIMENT, "inference_runs"),
    ):
        params = {"max_results": 2, **({"experiment_name": name} if name else {})}
        listed = platform.client.get("/mlflow/runs", params=params).json()
        assert listed["total"] == expected[key], name
        assert len(listed["runs"]) == min(2, expected[key])  # the page is short, the total is not
    return expected


@pytest.fixture(scope="module")
def platform(trained_platform):
    """The module's trained app, plus a second training, a batch and single predictions."""
    train(trained_platform.client, n_estimators=3, test_size=0.5)
    predict_batch(trained_platform.client, samples_csv([SETOSA, VIRGINICA]))
    for features in (SETOSA, VIRGINICA, SETOSA):
        predict(trained_platform.client, features)
    wait_for_writer(trained_platform.client)
    return trained_platform


def test_counts_agree_with_paging(platform):
    expected = check_counts(platform)
    assert expected["training_runs"] == 2
    assert expected["inference_runs"] == 4
    accuracies = [
        r.data.metrics["accuracy"]
        for r in paged(platform.mlflow, [experiment_id(platform.mlflow, TRAINING_EXPERIMENT)])
    ]
    assert len(accuracies) == 2
    assert expected["avg_accuracy"] == pytest.approx(sum(accuracies) / 2)


def test_a_failed_run_is_counted_and_a_deleted_one_is_not(platform):
    client = platform.mlflow
    training = experiment_id(client, TRAINING_EXPERIMENT)
    before = check_counts(platform)

    failed = client.create_run(training, run_name="training_failed")
    client.log_batch(failed.info.run_id, metrics=[Metric("accuracy", 0.1, 0, 0)])
    client.set_terminated(failed.info.run_id, "FAILED")
    after_failed = check_counts(platform)
    assert after_failed["training_runs"] == before["training_runs"] + 1
    assert after_failed["avg_accuracy"] < before["avg_accuracy"]  # its accuracy counts too

    client.delete_run(failed.info.run_id)
    assert check_counts(platform) == pytest.approx(before)

    inference_run = paged(client, [experiment_id(client, INFERENCE_EXPERIMENT)])[0]
    client.delete_run(inference_run.info.run_id)
    after_delete = check_counts(platform)
    assert after_delete["inference_runs"] == before["inference_runs"] - 1

    client.restore_run(inference_run.info.run_id)
    assert check_counts(platform) == pytest.approx(before)


def test_runs_of_other_experiments_are_not_counted(platform):
    before = check_counts(platform)
    other = platform.mlflow.create_experiment("someone_elses_experiment")
    run = platform.mlflow.create_run(other, run_name="not_ours")
    platform.mlflow.log_batch(run.info.run_id, metrics=[Metric("accuracy", 0.0, 0, 0)])
    assert check_counts(platform) == pytest.approx(before)
    listed = platform.client.get("/mlflow/runs", params={"experiment_name": "someone_elses_experiment"}).json()
    assert listed["total"] == 1
    assert [r["run_id"] for r in listed["runs"]] == [run.info.run_id]

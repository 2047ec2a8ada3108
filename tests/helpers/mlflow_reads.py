"""Reading back what the app wrote to MLflow: experiments, runs, artifacts, and the checks made on them."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType

from tests.helpers.api import wait_for_writer
from tests.helpers.contract import EXPERIMENTS, INFERENCE_EXPERIMENT, PREDICTION_ID_TAG
from tests.helpers.platform import Platform


def experiment_id(mlflow_client: MlflowClient, name: str) -> str:
    experiment = mlflow_client.get_experiment_by_name(name)
    assert experiment is not None, f"experiment {name} missing"
    return experiment.experiment_id


def all_runs(mlflow_client: MlflowClient, experiment_name: str, filter_string: str = "") -> list:
    return mlflow_client.search_runs(
        [experiment_id(mlflow_client, experiment_name)],
        filter_string=filter_string,
        run_view_type=ViewType.ACTIVE_ONLY,
        max_results=1000,
    )


def runs_for_prediction(mlflow_client: MlflowClient, prediction_id: str) -> list:
    return all_runs(mlflow_client, INFERENCE_EXPERIMENT, f"tags.{PREDICTION_ID_TAG} = '{prediction_id}'")


def the_run_for_prediction(mlflow_client: MlflowClient, prediction_id: str):
    runs = runs_for_prediction(mlflow_client, prediction_id)
    assert len(runs) == 1, f"expected one run for prediction {prediction_id}, found {len(runs)}"
    return runs[0]


def run_ids(mlflow_client: MlflowClient) -> set[str]:
    return {r.info.run_id for name in EXPERIMENTS for r in all_runs(mlflow_client, name)}


def assert_no_running_runs(platform: Platform) -> None:
    """Once the writer has drained, no run of either experiment is still RUNNING."""
    wait_for_writer(platform.client)
    for name in EXPERIMENTS:
        running = all_runs(platform.mlflow, name, "attributes.status = 'RUNNING'")
        assert not running, f"runs left RUNNING in {name}: {[r.info.run_name for r in running]}"


def download_artifact(mlflow_client: MlflowClient, run_id: str, path: str, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    return Path(mlflow_client.download_artifacts(run_id, path, str(dst)))


def version_files(mlflow_client: MlflowClient, version: str, dst: Path, name: str = "iris_classifier") -> Path:
    """A registered version's `model_files/` folder, downloaded from the registry (not from our cache)."""
    import mlflow.artifacts

    dst.mkdir(parents=True, exist_ok=True)
    location = mlflow_client.get_model_version_download_uri(name, version)
    return Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"{location}/model_files", dst_path=str(dst), tracking_uri=mlflow_client.tracking_uri
        )
    )


def read_artifact_csv(mlflow_client: MlflowClient, run_id: str, path: str, dst: Path) -> pd.DataFrame:
    return pd.read_csv(download_artifact(mlflow_client, run_id, path, dst))


def logged_prediction_ids(mlflow_client: MlflowClient, dst: Path) -> Counter:
    """How often each prediction_id is in MLflow: single runs' tags plus every window run's CSV rows."""
    found: Counter = Counter()
    for run in all_runs(mlflow_client, INFERENCE_EXPERIMENT):
        if run.data.params.get("prediction_type") == "single_window":
            table = pd.read_csv(
                download_artifact(mlflow_client, run.info.run_id, "window_predictions.csv", dst / run.info.run_id),
                dtype={PREDICTION_ID_TAG: str},
            )
            found.update(table[PREDICTION_ID_TAG])
        elif PREDICTION_ID_TAG in run.data.tags:
            found[run.data.tags[PREDICTION_ID_TAG]] += 1
    return found


def check_single_run(run, record: dict[str, Any]) -> None:
    """A `single_prediction_<timestamp>` run carries exactly what the record says."""
    assert run.info.status == "FINISHED"
    stamp = datetime.fromisoformat(record["timestamp"]).strftime("%Y%m%d_%H%M%S_%f")
    assert run.info.run_name == f"single_prediction_{stamp}"
    assert run.data.tags[PREDICTION_ID_TAG] == record["prediction_id"]
    assert run.data.params == {
        "prediction_type": "single",
        "model_path": record["model_path"],
        **({"model_version": record["model_version"]} if record.get("model_version") else {}),
        "timestamp": record["timestamp"],
        **{k: str(v) for k, v in record["features"].items()},
        "predicted_class": record["class_name"],
    }
    assert run.data.metrics == pytest.approx(
        {
            "predicted_class_index": record["class_index"],
            "prediction_confidence": record["confidence"],
            **{f"probability_{c}": p for c, p in record["probabilities"].items()},
        }
    )


def use_tracking_uri(uri: str) -> None:
    """Point MLflow's fluent API (model loading by `models:/` URI) at a test store."""
    mlflow.set_tracking_uri(uri)

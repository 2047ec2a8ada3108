"""What the stock MLflow UI needs to show the platform's runs as machine-learning runs with their data:
the experiments' kind tag, and each training table and batch file as a dataset input of its run."""

from __future__ import annotations

import hashlib
import json

from mlflow import MlflowClient

from tests.helpers.api import FAST_TREES, predict_batch, train
from tests.helpers.contract import EXPERIMENTS
from tests.helpers.data import SETOSA, VIRGINICA, csv_bytes, iris_frame, samples_csv
from tests.helpers.platform import open_platform, settings_for

KIND = "mlflow.experimentKind"


def inputs_of(mlflow: MlflowClient, run_id: str) -> list[dict]:
    run = mlflow.get_run(run_id)
    return [
        {
            "name": i.dataset.name,
            "digest": i.dataset.digest,
            "source_type": i.dataset.source_type,
            "source": json.loads(i.dataset.source),
            "schema": json.loads(i.dataset.schema) if i.dataset.schema else None,
            "profile": json.loads(i.dataset.profile) if i.dataset.profile else None,
            "context": {t.key: t.value for t in i.tags}.get("mlflow.data.context"),
        }
        for i in run.inputs.dataset_inputs
    ]


def test_both_experiments_are_machine_learning_experiments_even_when_made_before(tmp_path):
    # An experiment an earlier version made, without the tag: the platform adds it at start.
    MlflowClient(settings_for(tmp_path).tracking_uri).create_experiment(EXPERIMENTS[0])
    with open_platform(tmp_path) as platform:
        for name in EXPERIMENTS:
            experiment = platform.mlflow.get_experiment_by_name(name)
            assert experiment.tags.get(KIND) == "custom_model_development", (name, experiment.tags)


def test_a_user_set_kind_is_left_alone(tmp_path):
    MlflowClient(settings_for(tmp_path).tracking_uri).create_experiment(EXPERIMENTS[1], tags={KIND: "finetuning"})
    with open_platform(tmp_path) as platform:
        assert platform.mlflow.get_experiment_by_name(EXPERIMENTS[1]).tags[KIND] == "finetuning"


def test_the_training_table_is_the_runs_dataset_input(tmp_path):
    with open_platform(tmp_path) as platform:
        bundled = train(platform.client, n_estimators=FAST_TREES)
        [dataset] = inputs_of(platform.mlflow, bundled["run_id"])
        assert dataset["name"] == "iris" and dataset["context"] == "training"
        assert dataset["source"] == {"uri": "sklearn_iris"}
        assert dataset["profile"]["num_rows"] == 150
        columns = [c["name"] for c in dataset["schema"]["mlflow_colspec"]]
        assert columns == ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
        # The digest names the data: the same table uploaded as a CSV has the bundled data's digest,
        # and a table with one value changed has another.
        same = train(platform.client, ("iris.csv", csv_bytes(iris_frame())), n_estimators=FAST_TREES)
        assert inputs_of(platform.mlflow, same["run_id"])[0]["digest"] == dataset["digest"]
        changed = iris_frame()
        changed.loc[7, "petal_width"] += 0.1
        other = train(platform.client, ("iris.csv", csv_bytes(changed)), n_estimators=FAST_TREES)
        assert inputs_of(platform.mlflow, other["run_id"])[0]["digest"] != dataset["digest"]

        upload = iris_frame().head(120)
        uploaded = train(platform.client, ("my flowers: v2.csv", csv_bytes(upload)), n_estimators=FAST_TREES)
        [dataset] = inputs_of(platform.mlflow, uploaded["run_id"])
        assert dataset["name"] == "my flowers: v2.csv" and dataset["source"] == {"uri": "my flowers: v2.csv"}
        assert dataset["profile"]["num_rows"] == 120


def test_a_batch_file_is_its_runs_dataset_input(tmp_path):
    with open_platform(tmp_path) as platform:
        train(platform.client, n_estimators=FAST_TREES)
        content = samples_csv([SETOSA, VIRGINICA, SETOSA], sample_id=["a", "b", "c"])
        answer = predict_batch(platform.client, content, "night batch.csv")
        [dataset] = inputs_of(platform.mlflow, answer["run_id"])
        assert dataset["name"] == "night batch.csv" and dataset["context"] == "inference"
        assert dataset["digest"] == hashlib.sha256(content).hexdigest()[:8]
        assert dataset["profile"] == {"num_rows": 3}
        assert dataset["source"] == {"uri": "night batch.csv"}
        # Another file, another digest: the input says which bytes were scored.
        other = predict_batch(platform.client, content + b"5.0,3.0,1.5,0.2,d\n", "night batch.csv")
        assert inputs_of(platform.mlflow, other["run_id"])[0]["digest"] != dataset["digest"]

"""The walk-through a new user follows: train on examples/, predict once, predict the example batch.

Afterwards the store holds one training run and two inference runs, as the dashboard shows them.
Every file of examples/ is one of the files below, each used here as the README says.
"""

from pathlib import Path

import pandas as pd

from tests.helpers.api import FAST_TREES, predict, predict_batch, train, wait_for_writer
from tests.helpers.contract import INFERENCE_EXPERIMENT, TRAINING_EXPERIMENT
from tests.helpers.data import IRIS_FEATURES, SETOSA, VIRGINICA
from tests.helpers.mlflow_reads import all_runs, read_artifact_csv

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TRAIN_CSV = EXAMPLES / "iris_train.csv"
BATCH_CSV = EXAMPLES / "iris_batch.csv"
KAGGLE_CSV = EXAMPLES / "Iris.csv"  # Kaggle's Iris.csv as downloaded: Id first, *Cm columns, sorted by Species
PENGUINS_CSV = EXAMPLES / "penguins.csv"  # a text column, blank cells, a column of one value


def test_examples_folder_holds_exactly_the_files_tested_here():
    assert sorted(p.name for p in EXAMPLES.iterdir()) == sorted(
        p.name for p in (TRAIN_CSV, BATCH_CSV, KAGGLE_CSV, PENGUINS_CSV)
    )


def test_train_predict_and_batch_with_the_example_files(fresh_platform, tmp_path):
    client = fresh_platform.client
    training_rows = pd.read_csv(TRAIN_CSV)
    batch_rows = pd.read_csv(BATCH_CSV)

    trained = train(client, file=(TRAIN_CSV.name, TRAIN_CSV.read_bytes()))
    metadata = trained["model_metadata"]
    assert metadata["feature_names"] == IRIS_FEATURES
    assert metadata["class_names"] == sorted(training_rows[training_rows.columns[-1]].unique())
    assert metadata["input_file"] == TRAIN_CSV.name

    single = predict(client, VIRGINICA)
    assert single["class_name"] in metadata["class_names"]

    batch = predict_batch(client, BATCH_CSV.read_bytes(), BATCH_CSV.name)
    assert batch["total_samples"] == len(batch_rows)
    table = read_artifact_csv(fresh_platform.mlflow, batch["run_id"], "predictions.csv", tmp_path)
    assert list(table.columns[: len(batch_rows.columns)]) == list(batch_rows.columns)
    assert table[batch_rows.columns[0]].tolist() == batch_rows[batch_rows.columns[0]].tolist()

    wait_for_writer(client)
    assert len(all_runs(fresh_platform.mlflow, TRAINING_EXPERIMENT)) == 1
    assert len(all_runs(fresh_platform.mlflow, INFERENCE_EXPERIMENT)) == 2
    summary = client.get("/mlflow/summary").json()
    assert (summary["total_runs"], summary["training_runs"], summary["inference_runs"]) == (3, 1, 2)
    assert summary["avg_accuracy"] == trained["accuracy"]
    run_names = sorted(r["run_name"].rsplit("_", 3)[0] for r in client.get("/mlflow/runs").json()["runs"])
    assert run_names == ["batch_prediction", "single_prediction", "training"]


def test_kaggle_iris_csv_trains_on_the_four_features_and_the_example_batch_predicts(fresh_platform):
    client = fresh_platform.client
    kaggle = pd.read_csv(KAGGLE_CSV)
    assert list(kaggle.columns) == ["Id", "SepalLengthCm", "SepalWidthCm", "PetalLengthCm", "PetalWidthCm", "Species"]
    assert kaggle["Id"].tolist() == list(range(1, 151))
    assert KAGGLE_CSV.read_text().splitlines()[1] == "1,5.1,3.5,1.4,0.2,Iris-setosa"  # printed as Kaggle's

    trained = train(client, file=(KAGGLE_CSV.name, KAGGLE_CSV.read_bytes()), n_estimators=FAST_TREES)
    assert trained["dropped_columns"] == ["Id"]  # the row number: in a file sorted by class, it gives the answer away
    metadata = trained["model_metadata"]
    assert metadata["feature_names"] == IRIS_FEATURES
    assert metadata["class_names"] == ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]
    assert metadata["dropped_columns"] == ["Id"] and metadata["target_column"] == "Species"
    params = fresh_platform.mlflow.get_run(trained["run_id"]).data.params
    assert params["dropped_columns"] == "Id" and params["n_features"] == "4"

    assert predict(client, SETOSA)["class_name"] == "Iris-setosa"
    assert predict(client, VIRGINICA)["class_name"] == "Iris-virginica"
    batch = predict_batch(client, BATCH_CSV.read_bytes(), BATCH_CSV.name)
    assert batch["total_samples"] == len(pd.read_csv(BATCH_CSV))
    assert batch["model_version"] == trained["model_version"]


def test_the_penguins_table_trains_with_its_text_column_and_blank_cells(fresh_platform):
    client = fresh_platform.client
    table = pd.read_csv(PENGUINS_CSV)
    assert int(table["bill_length_mm"].isna().sum()) == 10 and table["year"].nunique() == 1
    trained = train(client, file=(PENGUINS_CSV.name, PENGUINS_CSV.read_bytes()), n_estimators=FAST_TREES)
    assert trained["preprocessing"] == "median_imputation+one_hot_encoding"
    assert trained["text_features"] == {"island": ["Biscoe", "Dream", "Torgersen"]}
    assert trained["constant_columns"] == ["year"] and trained["imputed_cells"] == {"bill_length": 10}
    gentoo = {"island": "Biscoe", "bill_length_mm": None, "bill_depth_mm": 15.0, "flipper_length_mm": 217}
    assert predict(client, gentoo)["class_name"] == "Gentoo"
    batch = predict_batch(client, PENGUINS_CSV.read_bytes(), PENGUINS_CSV.name)
    assert batch["total_samples"] == len(table) and batch["unseen_categories"] == {"island": 0}

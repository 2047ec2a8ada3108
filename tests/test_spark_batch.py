"""`iris-platform batch --engine spark` on a real local Spark (local[2]): a million rows scored as the
single-process batch scores them, the MLflow run's contract, both cores used, and every refusal in one
line on stderr with exit status 1 (a failed job: its run FAILED, no output)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from iris_platform.spark.batch import NO_CHAMPION
from iris_platform.tracking import names
from tests.helpers.api import FAST_TREES
from tests.helpers.data import IRIS_CLASSES, IRIS_FEATURES, SKLEARN_HEADERS, iris_frame
from tests.test_cli import Local

pytestmark = pytest.mark.slow

MASTER = "local[2]"
ROWS = 1_000_000
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ADDED = [names.COL_PREDICTED_CLASS, names.COL_CONFIDENCE, *[f"prob_{c}" for c in IRIS_CLASSES]]


def spark_batch(local: Local, *args: str) -> Any:
    return local.run("batch", *args, "--engine", "spark", "--master", MASTER)


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def run_for(local: Local, output: Path) -> Any:
    """The one run that was to write `output`."""
    experiment = local.mlflow.get_experiment_by_name(names.INFERENCE_EXPERIMENT).experiment_id
    (run,) = local.mlflow.search_runs([experiment], f"params.{names.P_OUTPUT_PATH} = '{output}'")
    return run


def million_rows() -> pd.DataFrame:
    """Iris rows with noise, an id, and the scikit-learn headers (spaces and brackets, as Spark must quote them)."""
    rng = np.random.default_rng(7)
    iris = iris_frame()
    picks = rng.integers(0, len(iris), ROWS)
    values = iris[IRIS_FEATURES].to_numpy()[picks] + rng.normal(0, 0.3, (ROWS, len(IRIS_FEATURES)))
    frame = pd.DataFrame(np.round(values, 2), columns=SKLEARN_HEADERS)
    frame.insert(0, "id", np.arange(ROWS))
    return frame


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> Local:
    local = Local(tmp_path_factory.mktemp("spark"))
    local.json("train", "--param", f"n_estimators={FAST_TREES}")
    return local


@pytest.fixture(scope="module")
def rows(local) -> tuple[Path, Path, pd.DataFrame]:
    """The same million rows as one Parquet file of a single row group, and as a CSV."""
    frame = million_rows()
    parquet = local.directory / "rows.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), parquet, row_group_size=ROWS)
    csv = local.directory / "rows.csv"
    frame.to_csv(csv, index=False)
    return parquet, csv, frame


@pytest.fixture(scope="module")
def scored(local, rows) -> dict[str, Any]:
    result = spark_batch(local, str(rows[0]), "--json")
    assert result.exit_code == 0, result.output
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def test_a_million_rows_on_spark_have_the_single_process_statistics(local, rows, scored, tmp_path):
    single_output = tmp_path / "single.csv"
    single = local.json("batch", str(rows[1]), "--output", str(single_output))
    spark_stats, single_stats = scored["batch_statistics"], single["batch_statistics"]
    assert spark_stats["total_samples"] == single_stats["total_samples"] == ROWS
    assert spark_stats["prediction_distribution"] == single_stats["prediction_distribution"]
    assert spark_stats["unique_classes_predicted"] == single_stats["unique_classes_predicted"]
    for key in ("avg_confidence", "min_confidence", "max_confidence"):
        # Spark runs the MLflow model (scikit-learn, float64), the single process its ONNX form (float32).
        assert spark_stats[key] == pytest.approx(single_stats[key], abs=1e-6)
    # Drift: the same counts, so the same figures (both past the bound where KS p-values are asymptotic).
    assert scored["drift"]["drift_detected"] == single["drift"]["drift_detected"]
    assert scored["drift"]["class_shares"] == pytest.approx(single["drift"]["class_shares"])
    for feature, value in single["drift"]["psi"].items():
        assert scored["drift"]["psi"][feature] == pytest.approx(value, rel=1e-9)
        assert scored["drift"]["ks_pvalue"][feature] == pytest.approx(single["drift"]["ks_pvalue"][feature], abs=1e-9)
    # Row by row, the same class.
    spark_rows = pd.read_parquet(scored["output_path"]).sort_values("id", ignore_index=True)
    single_rows = pd.read_csv(single_output).sort_values("id", ignore_index=True)
    assert (spark_rows[names.COL_PREDICTED_CLASS] == single_rows[names.COL_PREDICTED_CLASS]).all()
    assert np.allclose(spark_rows[names.COL_CONFIDENCE], single_rows[names.COL_CONFIDENCE], atol=1e-6)


def test_the_output_holds_every_row_with_its_input_columns_in_more_than_one_part(rows, scored):
    output = Path(scored["output_path"])
    assert output == rows[0].parent / "rows_predictions"
    parts = sorted(output.glob("part-*.parquet"))
    assert len(parts) >= 2  # a single row group read by both cores: spread before scoring
    assert scored["output_files"] == len(parts)
    table = pq.read_table(output)
    assert table.num_rows == ROWS
    assert table.column_names == ["id", *SKLEARN_HEADERS, *ADDED]
    frame = table.to_pandas().sort_values("id", ignore_index=True)
    pd.testing.assert_frame_equal(frame[["id", *SKLEARN_HEADERS]], rows[2], check_dtype=False)
    probabilities = frame[[f"prob_{c}" for c in IRIS_CLASSES]].to_numpy()
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert (frame[names.COL_CONFIDENCE].to_numpy() == probabilities.max(axis=1)).all()
    assert not list(output.parent.glob("rows_predictions.incomplete-*"))  # the staging folder, renamed


def test_the_run_records_the_spark_batch(local, rows, scored):
    run = local.mlflow.get_run(scored["run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.run_name.startswith(f"{names.BATCH_RUN_PREFIX}_")
    assert run.info.experiment_id == local.mlflow.get_experiment_by_name(names.INFERENCE_EXPERIMENT).experiment_id
    params = run.data.params
    assert params[names.P_ENGINE] == "spark"
    assert params[names.P_SPARK_MASTER] == MASTER
    assert params[names.P_OUTPUT_PATH] == scored["output_path"]
    assert params[names.P_PREDICTION_TYPE] == "batch"
    assert params[names.P_INPUT_FILE] == str(rows[0])
    champion = local.mlflow.get_model_version_by_alias("iris_classifier", "champion")
    assert params[names.P_MODEL_VERSION] == str(champion.version) == scored["model_version"]
    assert params[names.P_MODEL_PATH] == f"models:/iris_classifier/{champion.version}"
    metrics = run.data.metrics
    statistics = scored["batch_statistics"]
    assert metrics[names.M_TOTAL_SAMPLES] == ROWS
    assert metrics[names.M_AVG_CONFIDENCE] == pytest.approx(statistics["avg_confidence"])
    for c in IRIS_CLASSES:
        assert metrics[names.count_metric(c)] == statistics["prediction_distribution"][c]
    assert metrics[names.M_DRIFT_DETECTED] == float(scored["drift"]["drift_detected"])
    assert {names.psi_metric(f) for f in IRIS_FEATURES} <= set(metrics)
    # Artifacts: a sample and a manifest, not the million rows.
    artifacts = {a.path: a.file_size for a in local.mlflow.list_artifacts(run.info.run_id)}
    assert set(artifacts) == {names.PREDICTIONS_SAMPLE_ARTIFACT, names.OUTPUT_MANIFEST_ARTIFACT}
    folder = Path(local.mlflow.download_artifacts(run.info.run_id, "", str(local.directory / "artifacts")))
    sample = pd.read_csv(folder / names.PREDICTIONS_SAMPLE_ARTIFACT)
    assert len(sample) == 1000 and list(sample.columns) == ["id", *SKLEARN_HEADERS, *ADDED]
    manifest = json.loads((folder / names.OUTPUT_MANIFEST_ARTIFACT).read_text())
    output = Path(scored["output_path"])
    assert manifest["rows"] == ROWS and manifest["format"] == "parquet" and manifest["spark_master"] == MASTER
    assert [f["name"] for f in manifest["files"]] == sorted(p.name for p in output.glob("part-*"))
    assert [f["bytes"] for f in manifest["files"]] == [p.stat().st_size for p in sorted(output.glob("part-*"))]
    (dataset,) = run.inputs.dataset_inputs
    assert json.loads(dataset.dataset.profile) == {"num_rows": ROWS}
    # The answer times each phase of the job.
    phases = ["fetch_model", "spark_start", "score_and_write", "statistics_and_drift", "record"]
    assert list(scored["seconds"]) == phases and all(s > 0 for s in scored["seconds"].values())


def test_a_csv_folder_scored_into_a_csv_folder(local, tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    frame = iris_frame(headers=SKLEARN_HEADERS).drop(columns="species")
    # Carried through as written: a comma and a doubled quote (RFC 4180), spaces around a value.
    frame["note"] = [f' row {i}, "quoted" ' for i in range(len(frame))]
    frame["Confidence"] = "an old prediction's"  # named like an added column, in another case: replaced
    frame.iloc[:80].to_csv(folder / "part-a.csv", index=False)
    frame.iloc[80:].to_csv(folder / "part-b.csv", index=False)
    output = tmp_path / "predicted.csv"
    result = spark_batch(local, str(folder), "--output", str(output), "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["output_format"] == "csv" and answer["total_samples"] == 150
    written = pd.concat(pd.read_csv(p) for p in sorted(output.glob("part-*.csv")))
    assert len(written) == 150 and list(written.columns) == [*SKLEARN_HEADERS, "note", *ADDED]
    by_note = written.set_index("note").sort_index()
    expected = frame.drop(columns="Confidence").set_index("note").sort_index()
    pd.testing.assert_frame_equal(by_note[SKLEARN_HEADERS], expected[SKLEARN_HEADERS])
    # The iris data itself: each class predicted for about a third of the rows.
    counts = answer["batch_statistics"]["prediction_distribution"]
    assert all(40 <= counts[c] <= 60 for c in IRIS_CLASSES), counts
    assert written[names.COL_PREDICTED_CLASS].value_counts().to_dict() == {c: n for c, n in counts.items() if n}


def test_a_failed_job_leaves_its_run_failed_and_no_output(local, tmp_path):
    table = tmp_path / "bad.csv"
    frame = iris_frame().drop(columns="species").astype(object)
    frame.loc[17, "petal_width"] = "wide"
    frame.to_csv(table, index=False)
    output = tmp_path / "never"
    result = spark_batch(local, str(table), "--output", str(output))
    assert result.exit_code == 1
    line = one_line(result.stderr)
    assert line.startswith("The Spark job failed: ") and "'wide'" in line, line
    assert not output.exists() and not list(tmp_path.glob("never.incomplete-*"))
    run = run_for(local, output)
    assert run.info.status == "FAILED"
    assert "'wide'" in run.data.tags[names.T_FAILURE_REASON]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: d / "absent.parquet", "'{path}' does not exist: give a Parquet or CSV file, or a folder of them."),
        (
            lambda d: (
                iris_frame().drop(columns=["species", "petal_width"]).to_parquet(d / "t.parquet") or d / "t.parquet"
            ),
            "The file lacks the feature column(s) ['petal_width']",
        ),
        (lambda d: (d / "notes.txt").write_text("x") and d / "notes.txt", "is neither a .parquet nor a .csv file"),
    ],
    ids=["missing file", "missing feature column", "not a table"],
)
def test_bad_input_is_one_line_and_exit_status_1(local, tmp_path, make, expected):
    path = make(tmp_path)
    result = spark_batch(local, str(path))
    assert result.exit_code == 1
    assert expected.format(path=path) in one_line(result.stderr)


def test_an_existing_output_is_never_overwritten(local, tmp_path):
    table = tmp_path / "t.parquet"
    iris_frame().to_parquet(table)
    (tmp_path / "t_predictions").mkdir()
    result = spark_batch(local, str(table))
    assert result.exit_code == 1
    assert "already exists: give another --output, or remove it first" in one_line(result.stderr)


def test_no_champion_yet(tmp_path):
    table = tmp_path / "t.parquet"
    iris_frame().to_parquet(table)
    result = spark_batch(Local(tmp_path), str(table))
    assert result.exit_code == 1
    assert one_line(result.stderr) == NO_CHAMPION


def test_spark_needs_no_url(local, tmp_path):
    result = local.run("batch", str(tmp_path), "--engine", "spark", "--url", "http://127.0.0.1:9")
    assert result.exit_code == 2
    assert "leave out --url" in result.stderr


def _without_java() -> dict[str, str]:
    """This environment, but no folder on PATH holds `java` (/bin as well as /usr/bin) and no JAVA_HOME."""
    path = [p for p in os.environ["PATH"].split(os.pathsep) if not (Path(p) / "java").exists()]
    assert shutil.which("java", path=os.pathsep.join(path)) is None
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    return {**env, "PATH": os.pathsep.join(path)}


@pytest.mark.parametrize(
    ("prefix", "env", "expected"),
    [
        # An interpreter on which `import pyspark` fails, as where the spark extra is not installed.
        (
            ["-c", "import sys; sys.modules['pyspark'] = None; from iris_platform.cli.main import main; main()"],
            None,
            "pyspark is not installed: install the platform's spark extra",
        ),
        (
            ["-c", "from iris_platform.cli.main import main; main()"],
            _without_java,
            "Java is not installed (Spark runs on it)",
        ),
        (
            ["-c", "from iris_platform.cli.main import main; main()"],
            lambda: {**os.environ, "JAVA_HOME": "/opt/no-java-here"},
            "JAVA_HOME is '/opt/no-java-here', which holds no bin/java",
        ),
    ],
    ids=["no pyspark", "no java", "a wrong JAVA_HOME"],
)
def test_missing_parts_say_what_to_install(local, tmp_path, prefix, env, expected):
    table = tmp_path / "t.parquet"
    iris_frame().to_parquet(table)
    args = [*prefix, "batch", str(table), "--engine", "spark"]
    run_env = {**(env() if env else dict(os.environ)), **local.env}
    result = subprocess.run([sys.executable, *args], env=run_env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert expected in one_line(result.stderr)


def test_spark_submit_runs_the_batch_on_the_master_it_was_given(local, tmp_path):
    import iris_platform.cli.spark_submit as application

    table = tmp_path / "t.parquet"
    iris_frame().drop(columns="species").to_parquet(table)
    output = tmp_path / "out"
    submit = Path(sys.executable).parent / "spark-submit"
    env = {**os.environ, **local.env, "PYSPARK_PYTHON": sys.executable}
    args = [str(submit), "--master", "local[1]", application.__file__, str(table), "--output", str(output), "--json"]
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip(), result.stderr[-3000:]
    answer = json.loads(result.stdout)
    assert answer["spark_master"] == "local[1]" and answer["total_samples"] == 150
    assert local.mlflow.get_run(answer["run_id"]).data.params[names.P_SPARK_MASTER] == "local[1]"
    assert pq.read_table(output).num_rows == 150


@pytest.mark.parametrize("blank", [None, "   "], ids=["empty", "spaces"])
def test_a_blank_feature_cell_fails_the_job_in_the_models_words(local, tmp_path, blank):
    # The model imputes no blank; a cell of spaces is a blank too, as in the single-process batch.
    table = tmp_path / "blank.csv"
    frame = iris_frame().drop(columns="species").astype(object)
    frame.loc[40, "sepal_width"] = blank
    frame.to_csv(table, index=False)
    result = spark_batch(local, str(table), "--output", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert one_line(result.stderr) == (
        "The Spark job failed: Features ['sepal_width'] must be finite numbers: some rows hold NaN or infinity; "
        "no predictions were written."
    )


def test_csv_files_with_their_columns_in_another_order_fail_the_job(local, tmp_path):
    # Spark reads a folder's CSV files by one schema: a file of another column order is refused, not misread.
    folder = tmp_path / "parts"
    folder.mkdir()
    frame = iris_frame().drop(columns="species")
    frame.iloc[:80].to_csv(folder / "part-a.csv", index=False)
    frame.iloc[80:, ::-1].to_csv(folder / "part-b.csv", index=False)
    result = spark_batch(local, str(folder), "--output", str(tmp_path / "out"))
    assert result.exit_code == 1
    line = one_line(result.stderr)
    assert line.startswith("The Spark job failed: ") and "part-b.csv" in line, line
    assert "CSV header does not conform to the schema" in line, line


def test_a_row_with_too_few_fields_fails_the_job(local, tmp_path):
    table = tmp_path / "short.csv"
    table.write_text(",".join(IRIS_FEATURES) + "\n5.1,3.5,1.4,0.2\n4.9,3.0\n")
    output = tmp_path / "out"
    result = spark_batch(local, str(table), "--output", str(output))
    assert result.exit_code == 1
    assert one_line(result.stderr) == (
        f"The Spark job failed: Encountered error while reading file {table.as_uri()}: "
        "Malformed CSV record: 4.9,3.0; no predictions were written."
    )
    assert not output.exists()


@pytest.fixture(scope="module")
def penguins(tmp_path_factory) -> Local:
    """A model with a text feature (island), trained on examples/penguins.csv."""
    local = Local(tmp_path_factory.mktemp("spark-penguins"))
    local.json(
        "train", str(EXAMPLES / "penguins.csv"), "--target-column", "species", "--param", f"n_estimators={FAST_TREES}"
    )
    return local


def test_a_text_feature_on_spark_has_the_single_process_figures(penguins, tmp_path):
    rng = np.random.default_rng(3)
    rows = pd.read_csv(EXAMPLES / "penguins.csv").drop(columns="species").sample(50_000, replace=True, random_state=3)
    rows["island"] = np.where(rng.random(len(rows)) < 0.05, "Atlantis", rows["island"])  # never seen in training
    table = tmp_path / "penguins.csv"
    rows.to_csv(table, index=False)
    spark = penguins.json("batch", str(table), "--engine", "spark", "--master", MASTER)
    single = penguins.json("batch", str(table))
    assert spark["batch_statistics"]["prediction_distribution"] == single["batch_statistics"]["prediction_distribution"]
    assert (
        spark["unseen_categories"]
        == single["unseen_categories"]
        == {"island": int((rows["island"] == "Atlantis").sum())}
    )
    assert spark["drift"]["chi2_pvalue"] == pytest.approx(single["drift"]["chi2_pvalue"])
    assert spark["drift"]["psi"] == pytest.approx(single["drift"]["psi"], rel=1e-9)
    run = penguins.mlflow.get_run(spark["run_id"])
    assert run.data.metrics[names.unseen_metric("island")] == spark["unseen_categories"]["island"]


def test_a_table_without_rows_fails_its_run(local, tmp_path):
    table = tmp_path / "empty.csv"
    table.write_text(",".join(IRIS_FEATURES) + "\n")
    output = tmp_path / "out"
    result = spark_batch(local, str(table), "--output", str(output))
    assert result.exit_code == 1
    assert one_line(result.stderr) == f"'{table}' has no rows: add at least one row."
    assert not output.exists() and not list(tmp_path.glob("out.incomplete-*"))
    assert run_for(local, output).info.status == "FAILED"


def test_drift_sends_the_alert_a_batch_through_the_api_sends(local, tmp_path):
    from typer.testing import CliRunner

    from iris_platform.cli.main import app
    from tests.test_monitoring import Receiver

    table = tmp_path / "shifted.parquet"
    (iris_frame().drop(columns="species") + 3.0).to_parquet(table)  # every feature far from the training's
    with Receiver() as receiver:
        env = {**local.env, "IRIS_ALERT_WEBHOOK": receiver.url}
        args = ["batch", str(table), "--engine", "spark", "--master", MASTER, "--json"]
        result = CliRunner().invoke(app, args, env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["drift"]["drift_detected"] is True
    (alert,) = receiver.alerts  # delivered before the command ended
    assert alert["kind"] == names.ALERT_DRIFT and alert["run_id"] == answer["run_id"]
    assert alert["model_version"] == answer["model_version"]
    assert local.mlflow.get_run(answer["run_id"]).data.tags[names.T_DRIFTED_FEATURES]


def test_a_refusal_once_spark_runs_is_one_line_on_the_commands_stderr(local, tmp_path):
    # A process of its own, whose JVM shares its stderr: the JVM's own notes go to SPARK_LOG instead.
    from iris_platform.spark.session import SPARK_LOG
    from tests.test_cli import SCRIPT

    table = tmp_path / "t.parquet"
    iris_frame().drop(columns=["species", "petal_width"]).to_parquet(table)
    logged = SPARK_LOG.stat().st_size if SPARK_LOG.exists() else 0
    args = [str(SCRIPT), "batch", str(table), "--engine", "spark", "--master", MASTER]
    result = subprocess.run(args, env={**os.environ, **local.env}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.startswith("The file lacks the feature column(s) ['petal_width']; the model needs ")
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n"), result.stderr
    assert b"Using incubator modules" in SPARK_LOG.read_bytes()[logged:]  # this command's JVM, not an earlier one

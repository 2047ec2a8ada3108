"""A batch scored by Spark: a Parquet or CSV file, or a folder of them, of any size.

The champion is scored on the executors through `mlflow.pyfunc.spark_udf`: the registered MLflow
model (tracking/mlflow_pyfunc.py) is standalone, so executors need MLflow and scikit-learn but not
the platform, and any Spark master works unchanged. The predictions (the input's columns, then
`predicted_class`, `confidence` and `prob_<class>`) are written to a staging folder beside the
output (`<output>.incomplete-<run id>`) and renamed to it only once the run has every record: a
failed job leaves its run FAILED and no output. The statistics are Spark aggregations over the
written predictions, the drift counts one pass of `partition_counts` over them; MLflow gets one
`batch_prediction_<timestamp>` run with the single-process batch's params and metrics, the Spark
ones, a sample of the predictions and a manifest of the output, never the rows themselves.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from iris_platform.alerts import AlertSender
from iris_platform.batch_statistics import BatchStatistics, StatisticsAccumulator
from iris_platform.champion import fetch_version
from iris_platform.config import Settings
from iris_platform.drift import DriftAccumulator, DriftReport, DriftThresholds
from iris_platform.errors import InputError
from iris_platform.ml.batch_stream import output_columns
from iris_platform.ml.features import feature_columns
from iris_platform.ml.inference import Predictor
from iris_platform.ml.model_store import ModelStore
from iris_platform.spark import partition_counts
from iris_platform.spark.session import check_installed, spark_session
from iris_platform.timestamps import utc_now
from iris_platform.tracking import names
from iris_platform.tracking.datasets import batch_input
from iris_platform.tracking.monitoring import drift_alert, drift_metrics, drift_tags
from iris_platform.tracking.registry import ModelRegistry
from iris_platform.tracking.run_writer import RunWriter, run_name, statistics_metrics
from iris_platform.tracking.store import TrackingStore

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

# The run's sample of the predictions: their first rows.
SAMPLE_ROWS = 1000
FORMATS = ("parquet", "csv")
NO_CHAMPION = (
    "No model is registered as champion yet: train one with `iris-platform train` (or POST /train), "
    "or promote a version with `iris-platform promote VERSION`."
)
_PREDICTION = "__iris_prediction"
_PARQUET = (".parquet", ".pq")
_CSV = (".csv",)
_SUFFIXES = _PARQUET + _CSV
_CAST_ERROR = re.compile(r"\[CAST_INVALID_INPUT\] The value ('.*?') of the type")
_BATCH_ROWS = re.compile(r"row\(s\) \[[^\]]*\]")
_JAVA_ERROR = re.compile(r"^:?\s*(?:[\w$]+\.)+[\w$]*(?:Exception|Error): (.+)$")
_JAVA_CAUSE = re.compile(r"^Caused by: (?:[\w$]+\.)+[\w$]*(?:Exception|Error): (.+)$")
_SQLSTATE = re.compile(r"\s*SQLSTATE: \w+\.?")
_ERROR_CLASS = re.compile(r"^\[[A-Z_.]+\]\s*")
_ERROR_LINE = re.compile(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception)): (.+)$")

Step = Callable[[str], None]
log = logging.getLogger(__name__)


class SparkJobFailed(InputError):
    """A Spark job failed; `detail` is its cause in one line."""


def default_output(source: str) -> str:
    """Beside the input: `rows.parquet` -> `rows_predictions`, `data/rows/` -> `data/rows_predictions`."""
    local = _local(source)
    if local is not None:
        path = local.resolve()
        stem = path.stem if path.suffix.lower() in _SUFFIXES else path.name
        return str(path.with_name(f"{stem}_predictions"))
    parts = urlsplit(source)
    head, _, name = parts.path.rstrip("/").rpartition("/")
    if not name:  # a bucket or a store's root: no folder beside it to write to
        raise InputError(f"'{source}' is a store's root: give --output, a folder for the predictions.", 400)
    stem = name.rsplit(".", 1)[0] if "." in name.strip(".") else name
    return urlunsplit(parts._replace(path=f"{head}/{stem}_predictions", query="", fragment=""))


def _local(path: str) -> Path | None:
    """The path on this machine's file system (a path without a scheme, or a file: URI), or None for a
    URI of another store (hdfs://, s3a://)."""
    if path.startswith("file:"):
        rest = path.removeprefix("file:")
        return Path(rest[2:] if rest.startswith("///") else rest)
    return None if "://" in path else Path(path)


def _skipped(parts: tuple[str, ...] | list[str]) -> bool:
    """A path Spark's readers skip: one under a hidden or `_` name (`_SUCCESS`, `_temporary`, `.crc` files)."""
    return any(n[0] in "._" for n in parts)


def _data_files(folder: Path) -> list[Path]:
    """A local folder's files as Spark reads them."""
    return [p for p in sorted(folder.rglob("*")) if p.is_file() and not _skipped(p.relative_to(folder).parts)]


def input_format(source: str) -> str:
    """parquet or csv, from the file's suffix or, for a folder, its data files' suffix."""
    for fmt, suffixes in (("csv", _CSV), ("parquet", _PARQUET)):
        if source.rstrip("/").lower().endswith(suffixes):
            return fmt
    local = _local(source)
    if local is not None and local.is_dir():
        found = {p.suffix.lower() for p in _data_files(local)}
        if found & set(_CSV) and not found & set(_PARQUET):
            return "csv"
        if found & set(_PARQUET) and not found & set(_CSV):
            return "parquet"
    if local is None:
        return "parquet"  # a folder on a cluster's store: Spark's own format, unless it is named .csv
    raise InputError(
        f"'{source}' is neither a .parquet nor a .csv file, nor a folder of only one of them: "
        "give a Parquet or CSV table (one file, or a folder of its parts).",
        400,
    )


def output_format(output: str) -> str:
    return "csv" if output.rstrip("/").lower().endswith(".csv") else "parquet"


def _check_paths(source: str, output: str) -> None:
    local = _local(source)
    if local is not None and not local.exists():
        raise InputError(f"'{source}' does not exist: give a Parquet or CSV file, or a folder of them.", 404)
    out = _local(output)
    if out is not None and out.exists():
        raise _output_exists(output)


def _output_exists(output: str) -> InputError:
    return InputError(
        f"The output '{output}' already exists: give another --output, or remove it first "
        "(a batch never overwrites predictions).",
        409,
    )


def one_line(exc: BaseException) -> str:
    """A Spark error's cause, in one line: the Python worker's own error, or Spark's first line."""
    text = str(getattr(exc, "desc", None) or exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if "Traceback (most recent call last)" in text:
        for line in reversed(lines):
            match = _ERROR_LINE.match(line)
            if match:
                # The model's row numbers count from its Arrow batch, not from the table: left out.
                message = _BATCH_ROWS.sub("some rows", match.group(2))
                return message if match.group(1) == "MlflowException" else f"{match.group(1)}: {message}"
    cast = _CAST_ERROR.search(text)
    if cast:  # Spark's words are for SQL ("use try_cast"); the platform's say what to fix in the table
        return f"a feature column holds {cast.group(1)}, which is not a number: fix or remove those cells"

    # A Java error: "An error occurred while calling o193.save." then ": <class>: <message>", its stack,
    # and "Caused by: <class>: <message>" lines; its own message, and the deepest cause's if another.
    def plain(message: str) -> str:  # without Spark's error class and SQL state
        return _SQLSTATE.sub("", _ERROR_CLASS.sub("", message)).strip().rstrip(".")

    messages = [plain(m.group(1)) for m in map(_JAVA_ERROR.match, lines) if m]
    causes = [plain(m.group(1)) for m in map(_JAVA_CAUSE.match, lines) if m]
    first = messages[0] if messages else plain(lines[0] if lines else type(exc).__name__)
    if causes and causes[-1] not in first:
        first = f"{first}: {causes[-1]}"
    return first if len(first) <= 500 else first[:500] + "..."


@contextmanager
def _spark_errors() -> Iterator[None]:
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    try:
        yield
    except (PySparkException, Py4JError) as exc:  # Py4JError: also the JVM gone (Py4JJavaError is one)
        reason = one_line(exc).rstrip(".")
        raise SparkJobFailed(f"The Spark job failed: {reason}; no predictions were written.") from exc


@contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    """MLflow's notes on making the UDF (its environment, its backend) kept off the command's stderr."""
    levels = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _q(column: str) -> str:
    """A column name for Spark's expressions: backticks, so spaces and dots are part of the name."""
    return "`" + column.replace("`", "``") + "`"


class _Files:
    """Hadoop's file system of a path: what the output's staging, renaming and manifest need on any store."""

    def __init__(self, spark: SparkSession, path: str):
        jvm = spark.sparkContext._jvm
        assert jvm is not None
        self._jvm = jvm
        self.fs = jvm.org.apache.hadoop.fs.Path(path).getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())

    def path(self, path: str) -> Any:
        return self._jvm.org.apache.hadoop.fs.Path(path)

    def exists(self, path: str) -> bool:
        return bool(self.fs.exists(self.path(path)))

    def delete(self, path: str) -> None:
        self.fs.delete(self.path(path), True)

    def rename(self, source: str, destination: str) -> None:
        if not self.fs.rename(self.path(source), self.path(destination)):
            raise SparkJobFailed(f"Could not rename the finished predictions to '{destination}': check its folder.")

    def files(self, path: str) -> list[tuple[str, int, int]]:
        """Data files under `path` (relative name, bytes, modification time), Spark's markers left out."""
        root = self.fs.makeQualified(self.path(path)).toString().rstrip("/") + "/"
        found = []
        listing = self.fs.listFiles(self.path(path), True)
        while listing.hasNext():
            status = listing.next()
            name = status.getPath().toString().removeprefix(root)
            if not _skipped(name.split("/")):
                found.append((name, int(status.getLen()), int(status.getModificationTime())))
        return sorted(found)


def _remove(files: _Files, staging: str) -> None:
    """The staging folder removed, if still there; a failure to is logged, not raised over the job's own error."""
    try:
        if files.exists(staging):
            files.delete(staging)
    except Exception as exc:  # the JVM gone, the store refusing: the folder's name says it is incomplete
        log.warning("could not remove %s: %s", staging, exc)


def _staging(output: str, run_id: str) -> str:
    head, _, name = output.rstrip("/").rpartition("/")
    # Not a hidden name: Spark's readers skip those, the staging folder's own too.
    staging = f"{name}.incomplete-{run_id}"
    return f"{head}/{staging}" if head else staging


# CSV as RFC 4180 writes it (a quote inside a value doubled), every file's own header matched by name,
# a malformed row refused: Spark's defaults (backslash escapes, the first file's header by position,
# short rows padded with nulls) would score some rows on the wrong cells.
# An input holds one row per line, as a batch file must (which also keeps a file splittable across cores).
_CSV_OPTIONS = {"header": "true", "escape": '"'}
_CSV_READ = {**_CSV_OPTIONS, "inferSchema": "false", "enforceSchema": "false", "mode": "FAILFAST"}
# Cells written as they are (Spark trims them by default when it writes CSV), read back whole even where a
# text from a Parquet input holds a line break.
_CSV_WRITE = {**_CSV_OPTIONS, "ignoreLeadingWhiteSpace": "false", "ignoreTrailingWhiteSpace": "false"}
_CSV_READ_BACK = {**_CSV_WRITE, "multiLine": "true"}


def _read(spark: SparkSession, source: str, fmt: str) -> DataFrame:
    if fmt == "csv":
        # Every column as text: the output keeps the input's cells as they were written.
        return spark.read.options(**_CSV_READ).csv(source)
    return spark.read.parquet(source)


def _spread(spark: SparkSession, table: DataFrame, source: str, fmt: str) -> DataFrame:
    """At least one partition per core: a Parquet file written as one row group is read as one partition
    (its row groups are counted in the files' footers, on this machine's files only)."""
    cores = spark.sparkContext.defaultParallelism
    local = _local(source)
    if fmt != "parquet" or local is None:
        return table
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = [local] if local.is_file() else [p for p in _data_files(local) if p.suffix.lower() in _PARQUET]
    row_groups = 0
    for path in files:
        try:
            row_groups += pq.ParquetFile(path).num_row_groups
        except (OSError, pa.ArrowException):  # not readable here: Spark says what is wrong when it reads it
            return table
        if row_groups >= cores:
            return table
    return table.repartition(cores)


def _features(predictor: Predictor, table: DataFrame, columns: list[str]) -> list[Column]:
    """The model's features from the table's columns, named and typed as the MLflow model takes them. A
    number's cell of spaces is blank (null), as in the single-process batch, not a malformed number."""
    from pyspark.sql import functions as F

    text = set(predictor.layout.text_positions.values())
    types = dict(table.dtypes)
    features = []
    for feature, column in zip(predictor.feature_names, columns, strict=True):
        cell = F.col(_q(column))
        if feature in text:
            features.append(cell.cast("string").alias(feature))
            continue
        if types[column] == "string":
            cell = F.when(F.trim(cell) == "", F.lit(None)).otherwise(cell)
        features.append(cell.cast("double").alias(feature))
    return features


def _statistics(written: DataFrame, classes: list[str]) -> tuple[BatchStatistics, float]:
    """The batch statistics, by one Spark aggregation over the written predictions (per class, then summed),
    and the confidences' sum."""
    from pyspark.sql import functions as F

    confidence = F.col(names.COL_CONFIDENCE).cast("double")
    per_class = written.groupBy(names.COL_PREDICTED_CLASS).agg(
        F.count(F.lit(1)), F.sum(confidence), F.min(confidence), F.max(confidence)
    )
    rows = per_class.collect()
    by_class = {str(r[0]): int(r[1]) for r in rows}
    totals = StatisticsAccumulator(classes)
    totals.add_totals(
        [by_class.get(c, 0) for c in classes],
        sum(float(r[2] or 0.0) for r in rows),
        min((float(r[3]) for r in rows), default=float("inf")),
        max((float(r[4]) for r in rows), default=float("-inf")),
    )
    return totals.result(), totals.confidence_sum


def _drift(
    written: DataFrame, predictor: Predictor, columns: list[str], counts: dict[str, int], confidence_sum: float
) -> tuple[DriftAccumulator | None, dict[str, int]]:
    """The drift counts (one pass over the features, as the model took them) and each text feature's unseen texts."""
    if not predictor.profile:
        return None, {}
    from pyspark import cloudpickle

    drift = DriftAccumulator(predictor.profile, predictor.feature_names)
    spec = drift.partition_spec()  # counted on the projection below, which names the features as the model does
    # The counting code travels with the job: executors need not have the platform installed.
    cloudpickle.register_pickle_by_value(sys.modules[partition_counts.__name__])
    parts = written.select(*_features(predictor, written, columns)).mapInPandas(
        partition_counts.partition_counter(spec), partition_counts.COUNTS_SCHEMA
    )
    total = partition_counts.sum_counts(spec, [r[0] for r in parts.collect()])
    drift.add_counts(total, [counts.get(c, 0) for c in drift.class_names], confidence_sum)
    unseen = {f: int(total["texts"][f]["unseen"]) for f in predictor.layout.text_positions.values()}
    return drift, unseen


class _Phases:
    """The job's phases: each told to the progress display as it starts, and timed (the answer's `seconds`)."""

    def __init__(self, step: Step | None):
        self.step = step
        self.seconds: dict[str, float] = {}
        self._current: tuple[str, float] | None = None

    def __call__(self, name: str, label: str) -> None:
        self.end()
        self._current = (name, time.perf_counter())
        if self.step is not None:
            self.step(label)

    def end(self) -> None:
        if self._current is not None:
            name, started = self._current
            self.seconds[name] = round(time.perf_counter() - started, 3)
            self._current = None


def _listing_digest(files: list[tuple[str, int, int]]) -> str:
    """The input's digest, from its files' names, sizes and times: hashing terabytes is not done to name them."""
    return hashlib.sha256(json.dumps(files).encode()).hexdigest()


def _scored(
    spark: SparkSession, table: DataFrame, predictor: Predictor, columns: list[str], model_uri: str
) -> DataFrame:
    """The table's columns (but those named like a prediction column, which the new ones replace), then the
    champion's predictions, made on the executors by the registered MLflow model."""
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    added = output_columns(predictor.class_names)
    taken = {c.lower() for c in added}  # Spark's names are case-insensitive: `Confidence` clashes too
    kept = [c for c in table.columns if c.lower() not in taken]
    result_type = ", ".join(f"{_q(c)} {'string' if c == names.COL_PREDICTED_CLASS else 'double'}" for c in added)
    with _quiet("mlflow.pyfunc", "mlflow.models.flavor_backend_registry"):
        # env_manager="local": the executors' own packages (MLflow warns that they may differ from the
        # training's; the model's requirements are the platform's, pinned).
        udf = mlflow.pyfunc.spark_udf(spark, model_uri, result_type=result_type, env_manager="local")
    prediction = udf(F.struct(*_features(predictor, table, columns)))
    return table.select(*[_q(c) for c in kept], prediction.alias(_PREDICTION)).select(
        *[_q(c) for c in kept], *[F.col(_PREDICTION).getField(c).alias(c) for c in added]
    )


def _written(spark: SparkSession, scored: DataFrame, path: str, fmt: str) -> DataFrame:
    """Write the predictions to `path`; the rows as written, read back for the statistics."""
    writer = scored.write.mode("errorifexists").format(fmt)
    if fmt == "csv":
        writer = writer.options(**_CSV_WRITE)
    writer.save(path)
    reader = spark.read.schema(scored.schema)
    return (reader.options(**_CSV_READ_BACK) if fmt == "csv" else reader).format(fmt).load(path)


def _log_artifacts(tracking: TrackingStore, run_id: str, sample: Any, manifest: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sample.to_csv(Path(tmp) / names.PREDICTIONS_SAMPLE_ARTIFACT, index=False)
        (Path(tmp) / names.OUTPUT_MANIFEST_ARTIFACT).write_text(json.dumps(manifest, indent=2))
        for artifact in (names.PREDICTIONS_SAMPLE_ARTIFACT, names.OUTPUT_MANIFEST_ARTIFACT):
            tracking.client.log_artifact(run_id, str(Path(tmp) / artifact))


def _alert(settings: Settings, report: DriftReport, run_id: str, name: str, version: str) -> None:
    """A drift alert to IRIS_ALERT_WEBHOOK, as a batch through the API sends one; delivered before the command ends."""
    sender = AlertSender(settings.alert_webhook)
    sender.send(drift_alert(report, run_id=run_id, run_name=name, model_version=version))
    # Long enough for every try and back-off (4 × 3 s + 3.5 s): the command exits right after.
    sender.close(timeout=20.0)


def predict_with_spark(
    settings: Settings, source: str, output: str | None = None, master: str = "local[*]", step: Step | None = None
) -> dict[str, Any]:
    """Score `source` with the champion on Spark into `output`, as one MLflow batch run; the API's batch answer."""
    phase = _Phases(step)
    output = output or default_output(source)
    local_output = _local(output)
    if local_output is not None:
        output = str(local_output.resolve())
    _check_paths(source, output)
    fmt, out_format = input_format(source), output_format(output)
    check_installed()
    tracking = TrackingStore(settings.tracking_uri)
    registry = ModelRegistry(tracking, settings.registered_model)
    version = registry.champion()
    if version is None:
        raise InputError(NO_CHAMPION, 409)
    phase("fetch_model", f"fetching model version {version}")
    predictor = fetch_version(registry, ModelStore(settings.models_dir), version)
    model_uri = f"models:/{settings.registered_model}/{version}"

    phase("spark_start", f"starting Spark on {master}")
    with _spark_errors():
        spark = spark_session(master)
        table = _read(spark, source, fmt)
        columns = feature_columns(table.columns, predictor.feature_names)
        table = _spread(spark, table, source, fmt)
        files = _Files(spark, output)
        if files.exists(output):  # on any store (the check above sees only this machine's)
            raise _output_exists(output)
        input_files = _Files(spark, source).files(source)
    runs = RunWriter(tracking)
    moment = utc_now()
    name = run_name(names.BATCH_RUN_PREFIX, moment)
    params = {
        names.P_PREDICTION_TYPE: names.PREDICTION_TYPE_BATCH,
        names.P_MODEL_PATH: model_uri,
        names.P_MODEL_VERSION: version,
        names.P_INPUT_FILE: source,
        names.P_TIMESTAMP: moment.isoformat(),
        names.P_ENGINE: names.ENGINE_SPARK,
        names.P_SPARK_MASTER: master,
        names.P_OUTPUT_PATH: output,
    }
    with runs.run(names.INFERENCE_EXPERIMENT, name) as run_id:
        runs.log(run_id, params)
        staging = _staging(output, run_id)
        try:
            with _spark_errors():
                scored = _scored(spark, table, predictor, columns, model_uri)
                phase("score_and_write", f"scoring {source}")
                written = _written(spark, scored, staging, out_format)
                phase("statistics_and_drift", "summing the predictions")
                statistics, confidence_sum = _statistics(written, predictor.class_names)
                if statistics.total_samples == 0:
                    raise InputError(f"'{source}' has no rows: add at least one row.", 400)
                drift, unseen = _drift(written, predictor, columns, statistics.prediction_distribution, confidence_sum)
                # Through Arrow: pyspark 4.3's toPandas passes pandas 3 a keyword it deprecates.
                sample = written.limit(SAMPLE_ROWS).toArrow().to_pandas()
                output_files = files.files(staging)
            thresholds = DriftThresholds(settings.drift_psi_warn, settings.drift_psi_alert, settings.drift_p_value)
            report = drift.report(thresholds) if drift is not None else None
            phase("record", "recording the run")
            metrics = {**statistics_metrics(statistics), **{names.unseen_metric(f): n for f, n in unseen.items()}}
            runs.log(run_id, metrics={**metrics, **(drift_metrics(report) if report else {})})
            if report is not None:
                runs.set_tags(run_id, drift_tags(report, thresholds))
            digest = _listing_digest(input_files)
            runs.log_inputs(run_id, [batch_input(name=source, sha256=digest, rows=statistics.total_samples)])
            manifest = {
                "output_path": output,
                "format": out_format,
                "rows": statistics.total_samples,
                "columns": list(written.columns),
                "files": [{"name": n, "bytes": b} for n, b, _ in output_files],
                "input_path": source,
                "input_format": fmt,
                "model_uri": model_uri,
                "spark_master": master,
                "spark_version": spark.version,
            }
            _log_artifacts(tracking, run_id, sample, manifest)
            with _spark_errors():
                if files.exists(output):  # made while the job ran: renamed onto, the output would go inside it
                    raise _output_exists(output)
                files.rename(staging, output)  # last: the output appears only with its complete run
        finally:
            _remove(files, staging)
    if report is not None and report.drift_detected and settings.alert_webhook:
        _alert(settings, report, run_id, name, version)
    phase.end()
    return {
        "status": "success",
        "run_id": run_id,
        "engine": names.ENGINE_SPARK,
        "spark_master": master,
        "model_path": model_uri,
        "model_version": version,
        "total_samples": statistics.total_samples,
        "output_path": output,
        "output_format": out_format,
        "output_files": len(output_files),
        "batch_statistics": statistics.as_dict(),
        "unseen_categories": unseen,
        "drift": report.as_dict() if report else None,
        "seconds": phase.seconds,
    }

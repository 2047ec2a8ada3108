"""The Spark session of a batch: pyspark and Java checked first, Python workers on this interpreter."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from iris_platform.errors import InputError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DEFAULT_MASTER = "local[*]"
# pyspark 4.3 warns on every pandas function that it "does not yet fully support pandas >= 3.0.0";
# the few it uses here (Arrow batches in and out) are tested with pandas 3 in this project's suite.
PANDAS_WARNING = "PySpark does not yet fully support pandas"
# Spark's own log for a local master: fatal errors only (a failed job reaches the command as an exception).
_LOG4J = Path(__file__).with_name("log4j2.properties")
# Where the JVM this process starts writes its stderr: its own notes, and anything Spark logs at fatal.
SPARK_LOG = Path(tempfile.gettempdir()) / f"iris-platform-spark-{os.getuid()}.log"


class SparkUnavailable(InputError):
    """pyspark or Java is missing: the message says what to install."""

    def __init__(self, detail: str):
        super().__init__(detail, status_code=503)


def check_installed() -> None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise SparkUnavailable(
            "pyspark is not installed: install the platform's spark extra (pip install 'iris-platform[spark]'), "
            "or run the batch with --engine local."
        ) from None
    java_home = os.environ.get("JAVA_HOME")
    if java_home and not (Path(java_home) / "bin" / "java").exists():
        raise SparkUnavailable(
            f"JAVA_HOME is '{java_home}', which holds no bin/java: point it at Java 17 or later, or unset it."
        )
    if not java_home and shutil.which("java") is None:
        raise SparkUnavailable(
            "Java is not installed (Spark runs on it): install Java 17 or later (apt-get install "
            "openjdk-17-jre-headless) or set JAVA_HOME, or run the batch with --engine local."
        )


def is_local(master: str) -> bool:
    """Spark in this process's JVM: local, local[N], local[*], local[N,F]."""
    return master == "local" or master.startswith("local[")


def submitted_master() -> str | None:
    """The master `spark-submit` was given, when this process runs under it (else None)."""
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # set by spark-submit for the Python driver it starts
        return None
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()  # joins spark-submit's JVM, whose properties hold spark.master
    return SparkConf().get("spark.master", None)


def spark_session(master: str = DEFAULT_MASTER, app_name: str = "iris-platform batch") -> SparkSession:
    """A session on `master` (any Spark master URL); its Python workers run this interpreter."""
    check_installed()
    if is_local(master):
        # Without these, Spark's Python workers run the system's `python3`, which lacks the platform's
        # packages. A cluster's executors have their own Python (spark.pyspark.python, PYSPARK_PYTHON).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    warnings.filterwarnings("ignore", message=PANDAS_WARNING, category=FutureWarning)
    # A failed job is answered in one line; pyspark would also log it whole, as JSON, on stderr.
    logging.getLogger("DataFrameQueryContextLogger").setLevel(logging.CRITICAL)
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.executorEnv.PYTHONWARNINGS", f"ignore:{PANDAS_WARNING}:FutureWarning")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        # A cell that is not a number fails the job, as the single-process batch refuses it, even on a
        # cluster whose defaults turn ANSI off (then it would be read as a blank and imputed).
        .config("spark.sql.ansi.enabled", "true")
    )
    if is_local(master):  # a cluster's own Java options (and its log settings) are left as they are
        builder = builder.config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={_LOG4J.as_uri()}")
    from pyspark import SparkContext

    if SparkContext._gateway is not None:  # a JVM already runs (spark-submit's, or an earlier batch's)
        return builder.getOrCreate()
    with _stderr_to(SPARK_LOG):  # the JVM this starts, and its Python workers, write their stderr there
        return builder.getOrCreate()


@contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """This process's stderr (file descriptor 2) sent to `path` (appended) while the block runs, so the
    processes it starts keep writing there: the JVM prints notes of its own when it starts ("Using
    incubator modules", Spark's default log level) that would make a refusal more than one line."""
    sys.stderr.flush()
    saved = os.dup(2)
    log_file = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.dup2(log_file, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(log_file)

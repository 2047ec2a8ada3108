"""`spark-submit .../iris_platform/cli/spark_submit.py INPUT [--output PATH]`: `iris-platform batch --engine
spark` as a Spark application, on the master (and the cluster's settings) spark-submit was given."""

from __future__ import annotations

import sys
import warnings

from iris_platform.spark.session import DEFAULT_MASTER, PANDAS_WARNING, submitted_master

# spark-submit sends the driver's stderr to stdout, where `--json` answers: pyspark's warning stays out.
warnings.filterwarnings("ignore", message=PANDAS_WARNING, category=FutureWarning)
from iris_platform.cli.main import main  # noqa: E402

if __name__ == "__main__":
    master = submitted_master() or DEFAULT_MASTER
    main(["batch", *sys.argv[1:], "--engine", "spark", "--master", master])

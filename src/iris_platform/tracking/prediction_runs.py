"""The tracking worker's job: journaled prediction records written as runs, each exactly once.

One `single_prediction_<timestamp>` run per record while the worker keeps up; one `single_window`
run for many records of one model when it falls behind, with the window's statistics and every
record in a CSV artifact.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
from mlflow.entities import ViewType

from iris_platform.batch_statistics import BatchResult, StatisticsAccumulator
from iris_platform.tracking import names
from iris_platform.tracking.records import InferenceRecord
from iris_platform.tracking.run_writer import RunWriter, run_name, statistics_metrics
from iris_platform.tracking.store import TrackingStore


def _name(prefix: str, record: InferenceRecord) -> str:
    return run_name(prefix, datetime.fromisoformat(record["timestamp"]))


def _version_param(record: InferenceRecord) -> dict[str, str]:
    version = record.get("model_version")
    return {names.P_MODEL_VERSION: version} if version else {}


class PredictionRunWriter:
    def __init__(self, store: TrackingStore):
        self.store = store
        self.runs = RunWriter(store)

    def write_single(self, record: InferenceRecord) -> str:
        """One `single_prediction_<timestamp>` run for one prediction record."""
        params = {
            names.P_PREDICTION_TYPE: names.PREDICTION_TYPE_SINGLE,
            names.P_MODEL_PATH: record["model_path"],
            **_version_param(record),
            names.P_TIMESTAMP: record["timestamp"],
            **record["features"],
            names.P_PREDICTED_CLASS: record["class_name"],
        }
        metrics = {
            names.M_PREDICTED_CLASS_INDEX: record["class_index"],
            names.M_PREDICTION_CONFIDENCE: record["confidence"],
            **{names.probability_metric(c): p for c, p in record["probabilities"].items()},
        }
        tags = {names.T_PREDICTION_ID: record["prediction_id"]}
        name = _name(names.SINGLE_RUN_PREFIX, record)
        with self.runs.run(names.INFERENCE_EXPERIMENT, name, tags, start_ms=record["time_ms"]) as run_id:
            self.runs.log(run_id, params, metrics, timestamp_ms=record["time_ms"])
        return run_id

    def write_window(self, records: list[InferenceRecord]) -> str:
        """One `single_window` run for many prediction records of one model, with all of them as a CSV."""
        import pandas as pd

        first, last = records[0], records[-1]
        classes = list(first["probabilities"])
        probabilities = np.array([[r["probabilities"].get(c, 0.0) for c in classes] for r in records])
        result = BatchResult(
            indexes=np.array([r["class_index"] for r in records]),
            confidences=np.array([r["confidence"] for r in records]),
            probabilities=probabilities,
        )
        totals = StatisticsAccumulator(classes)
        totals.add(result)
        table = pd.DataFrame(
            {
                names.T_PREDICTION_ID: [r["prediction_id"] for r in records],
                names.P_TIMESTAMP: [r["timestamp"] for r in records],
                **{f: [r["features"].get(f) for r in records] for f in first["features"]},
                names.COL_PREDICTED_CLASS: [r["class_name"] for r in records],
                names.COL_CONFIDENCE: result.confidences,
                **{names.probability_column(c): probabilities[:, i] for i, c in enumerate(classes)},
            }
        )
        params = {
            names.P_PREDICTION_TYPE: names.PREDICTION_TYPE_WINDOW,
            names.P_MODEL_PATH: first["model_path"],
            **_version_param(first),
            names.P_TIMESTAMP: first["timestamp"],
            names.P_WINDOW_END: last["timestamp"],
        }
        metrics = {
            **statistics_metrics(totals.result()),
            names.M_WINDOW_START_MS: first["time_ms"],
            names.M_WINDOW_END_MS: last["time_ms"],
        }
        tags = {names.T_WINDOW_FIRST_ID: first["prediction_id"], names.T_WINDOW_RECORDS: str(len(records))}
        name = _name(names.WINDOW_RUN_PREFIX, first)
        with self.runs.run(names.INFERENCE_EXPERIMENT, name, tags, start_ms=first["time_ms"]) as run_id:
            self.runs.log(run_id, params, metrics, timestamp_ms=last["time_ms"])
            self.runs.log_files(run_id, {names.WINDOW_ARTIFACT: table.to_csv(index=False).encode()})
        return run_id

    def written_unit_size(self, record: InferenceRecord) -> int:
        """How many records starting at `record` MLflow already holds as one finished run (0 if none).

        Only the first unit after a restart or a failure can be in doubt; a run left unfinished by
        the interruption is removed so the unit is written again whole.
        """
        prediction_id = record["prediction_id"]
        client = self.store.client
        experiment = [self.store.experiment_id(names.INFERENCE_EXPERIMENT)]
        for tag, size in ((names.T_PREDICTION_ID, None), (names.T_WINDOW_FIRST_ID, names.T_WINDOW_RECORDS)):
            for run in client.search_runs(
                experiment, filter_string=f"tags.{tag} = '{prediction_id}'", run_view_type=ViewType.ACTIVE_ONLY
            ):
                if run.info.status == "FINISHED":
                    return int(run.data.tags[size]) if size else 1
                client.delete_run(run.info.run_id)
        return 0

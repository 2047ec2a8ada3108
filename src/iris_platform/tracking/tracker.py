"""The MLflow tracking layer: every run this platform writes or reads goes through here.

Experiments are looked up by id, never through a process-global "current experiment", so
concurrent requests cannot race on it.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, ViewType
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST, ErrorCode

from iris_platform.errors import InputError
from iris_platform.tracking import names
from iris_platform.tracking.run_index import RunQuery, page_run_ids

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
# mlflow.sklearn.log_model reads the process-global tracking URI; this lock keeps two Trackers in one
# process (two apps, as in the tests) from pointing it elsewhere between setting it and logging.
_FLUENT_LOCK = threading.Lock()
_PAGE = 10_000
MAX_PARAM_LENGTH = 6000


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def _run_name(prefix: str, iso_timestamp: str) -> str:
    from iris_platform.ml.inference import run_stamp

    return f"{prefix}_{run_stamp(datetime.fromisoformat(iso_timestamp))}"


def _param(key: str, value: Any) -> Param:
    return Param(key, str(value)[:MAX_PARAM_LENGTH])


def statistics_metrics(stats: dict[str, Any]) -> dict[str, float]:
    """The metrics of a batch or window run, from inference.StatisticsAccumulator's result."""
    return {
        names.M_TOTAL_SAMPLES: stats["total_samples"],
        names.M_AVG_CONFIDENCE: stats["avg_confidence"],
        names.M_MIN_CONFIDENCE: stats["min_confidence"],
        names.M_MAX_CONFIDENCE: stats["max_confidence"],
        names.M_UNIQUE_CLASSES: stats["unique_classes_predicted"],
        **{names.count_metric(c): n for c, n in stats["prediction_distribution"].items()},
        **{names.percentage_metric(c): p for c, p in stats["prediction_percentages"].items()},
    }


# MLflow's HTTP client retries a remote tracking server 7 times with exponential backoff (about
# 4 minutes) and waits 120 s for an answer: a request that must write its run would hang that long
# when the server is down. The platform answers 503 after about 3 s instead (the tracking worker
# retries on its own); the environment variables still win when set.
MLFLOW_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def bound_http_retries(tracking_uri: str) -> None:
    if tracking_uri.lower().startswith(("http://", "https://")):
        for key, value in MLFLOW_HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)


def _is_not_found(exc: MlflowException) -> bool:
    return exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST)


class Tracker:
    def __init__(self, tracking_uri: str):
        self.tracking_uri = tracking_uri
        bound_http_retries(tracking_uri)  # before the tracking worker is spawned: it inherits them
        self._client: MlflowClient | None = None
        # mlflow.sklearn.log_model only speaks through the fluent API, which reads this global.
        mlflow.set_tracking_uri(tracking_uri)
        self._ids: dict[str, str] = {}
        self._names: dict[str, str] = {}
        self._lock = threading.Lock()
        self._client_lock = threading.Lock()

    @property
    def client(self) -> MlflowClient:
        """Made on first use, so a tracking store that is down at start-up does not stop the server."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    try:
                        client = MlflowClient(tracking_uri=self.tracking_uri)
                        client.search_experiments(max_results=1)  # connect now; raise while still None
                    except MlflowException:
                        raise
                    except Exception as exc:  # e.g. a sqlite store whose folder cannot be made: unavailable
                        raise MlflowException(f"cannot open the tracking store: {type(exc).__name__}: {exc}") from exc
                    self._client = client
        return self._client

    def reset_connections(self) -> None:
        """Drop the database connections kept in the pool, after a tracking error.

        A connection SQLite opened while the database refused writes stays read-only, and one a
        database server closed stays closed: without this, the store would keep failing after it
        is back. The next use opens fresh connections.
        """
        try:
            store = self._sql_store() if self._client is not None else None
            if store is not None:
                store.engine.dispose()
        except Exception:
            pass  # the error that led here is the one to report

    # -- experiments -------------------------------------------------------------------------

    def experiment_id(self, name: str) -> str:
        cached = self._ids.get(name)
        if cached is not None:
            return cached
        with self._lock:
            if name not in self._ids:
                experiment = self.client.get_experiment_by_name(name)
                if experiment is None:
                    try:
                        experiment_id = self.client.create_experiment(name)
                    except MlflowException as exc:  # another process created it first
                        if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                            raise
                        experiment_id = self.client.get_experiment_by_name(name).experiment_id
                else:
                    experiment_id = experiment.experiment_id
                self._ids[name] = experiment_id
                self._names[experiment_id] = name
            return self._ids[name]

    def ensure_experiments(self) -> None:
        for name in names.EXPERIMENTS:
            self.experiment_id(name)

    def experiment_name(self, experiment_id: str) -> str:
        if experiment_id not in self._names:
            self._names[experiment_id] = self.client.get_experiment(experiment_id).name
        return self._names[experiment_id]

    def experiments(self) -> list[dict[str, Any]]:
        self.ensure_experiments()
        return [
            {
                "experiment_id": e.experiment_id,
                "name": e.name,
                "artifact_location": e.artifact_location,
                "lifecycle_stage": e.lifecycle_stage,
                "creation_time": iso(e.creation_time),
            }
            for e in self.client.search_experiments(view_type=ViewType.ACTIVE_ONLY)
        ]

    # -- writing runs ------------------------------------------------------------------------

    @contextmanager
    def run(
        self, experiment: str, run_name: str, tags: dict[str, str] | None = None, start_ms: int | None = None
    ) -> Iterator[str]:
        """A run that ends FINISHED, or FAILED with the reason as a tag; never left RUNNING."""
        run = self.client.create_run(
            self.experiment_id(experiment), start_time=start_ms, tags=tags or {}, run_name=run_name
        )
        run_id = run.info.run_id
        try:
            yield run_id
        except BaseException as exc:
            try:
                self.client.set_tag(run_id, names.T_FAILURE_REASON, f"{type(exc).__name__}: {exc}"[:5000])
                self.client.set_terminated(run_id, "FAILED")
            except Exception:
                pass  # the original error matters more than this one
            raise
        self.client.set_terminated(run_id, "FINISHED")

    def log(
        self,
        run_id: str,
        params: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        ts = timestamp_ms or int(time.time() * 1000)
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), ts, 0) for k, v in (metrics or {}).items()],
            params=[_param(k, v) for k, v in (params or {}).items()],
        )

    def log_files(self, run_id: str, files: dict[str, bytes], artifact_path: str | None = None) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            for filename, data in files.items():
                local = Path(tmp) / filename
                local.write_bytes(data)
                self.client.log_artifact(run_id, str(local), artifact_path)

    def log_sklearn_model(
        self, run_id: str, estimator: Any, example, pip_requirements: list[str], trusted_types: list[str]
    ) -> str:
        """Log the MLflow model so `mlflow models serve -m models:/<model_id>` serves it; returns its URI."""
        from mlflow.models import infer_signature

        signature = infer_signature(example, estimator.predict(example))
        # Create the logged model in the run's own experiment: left to itself, log_model files it
        # under the process's "current" experiment (Default), not the run's.
        run = self.client.get_run(run_id)
        logged = self.client.create_logged_model(
            experiment_id=run.info.experiment_id,
            name=names.MLFLOW_MODEL_NAME,
            source_run_id=run_id,
            params=dict(run.data.params),
        )
        with _FLUENT_LOCK:
            mlflow.set_tracking_uri(self.tracking_uri)
            info = mlflow.sklearn.log_model(
                estimator,
                name=names.MLFLOW_MODEL_NAME,
                run_id=run_id,
                model_id=logged.model_id,
                signature=signature,
                input_example=example.head(5),
                pip_requirements=pip_requirements,
                skops_trusted_types=trusted_types,
            )
        return info.model_uri

    def write_single_prediction(self, record: dict[str, Any]) -> str:
        """One `single_prediction_<timestamp>` run for one prediction record."""
        run_name = _run_name(names.SINGLE_RUN_PREFIX, record["timestamp"])
        params = {
            names.P_PREDICTION_TYPE: names.PREDICTION_TYPE_SINGLE,
            names.P_MODEL_PATH: record["model_path"],
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
        with self.run(names.INFERENCE_EXPERIMENT, run_name, tags, start_ms=record["time_ms"]) as run_id:
            self.log(run_id, params, metrics, timestamp_ms=record["time_ms"])
        return run_id

    def find_prediction_runs(self, prediction_id: str) -> list:
        return self.client.search_runs(
            [self.experiment_id(names.INFERENCE_EXPERIMENT)],
            filter_string=f"tags.{names.T_PREDICTION_ID} = '{prediction_id}'",
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=10,
        )

    def delete_run(self, run_id: str) -> None:
        self.client.delete_run(run_id)

    def write_window(self, records: list[dict[str, Any]]) -> str:
        """One `single_window` run for many prediction records of one model, with all of them as a CSV."""
        import numpy as np
        import pandas as pd

        from iris_platform.ml.inference import BatchResult, StatisticsAccumulator

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
        stats = totals.result()
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
            names.P_TIMESTAMP: first["timestamp"],
            names.P_WINDOW_END: last["timestamp"],
        }
        metrics = {
            **statistics_metrics(stats),
            names.M_WINDOW_START_MS: first["time_ms"],
            names.M_WINDOW_END_MS: last["time_ms"],
        }
        tags = {names.T_WINDOW_FIRST_ID: first["prediction_id"], names.T_WINDOW_RECORDS: str(len(records))}
        run_name = _run_name(names.WINDOW_RUN_PREFIX, first["timestamp"])
        with self.run(names.INFERENCE_EXPERIMENT, run_name, tags, start_ms=first["time_ms"]) as run_id:
            self.log(run_id, params, metrics, timestamp_ms=last["time_ms"])
            self.log_files(run_id, {names.WINDOW_ARTIFACT: table.to_csv(index=False).encode()})
        return run_id

    def written_unit_size(self, record: dict[str, Any]) -> int:
        """How many records starting at `record` MLflow already holds as one finished run (0 if none).

        Only the first unit after a restart or a failure can be in doubt; a run left unfinished by
        the interruption is removed so the unit is written again whole.
        """
        prediction_id = record["prediction_id"]
        experiment = [self.experiment_id(names.INFERENCE_EXPERIMENT)]
        for tag, size in ((names.T_PREDICTION_ID, None), (names.T_WINDOW_FIRST_ID, names.T_WINDOW_RECORDS)):
            for run in self.client.search_runs(
                experiment, filter_string=f"tags.{tag} = '{prediction_id}'", run_view_type=ViewType.ACTIVE_ONLY
            ):
                if run.info.status == "FINISHED":
                    return int(run.data.tags[size]) if size else 1
                self.client.delete_run(run.info.run_id)
        return 0

    # -- reading runs ------------------------------------------------------------------------

    def _experiment_ids(self, experiment_name: str | None) -> list[str]:
        if experiment_name is None:
            self.ensure_experiments()
            return [self._ids[n] for n in names.EXPERIMENTS]
        if experiment_name in names.EXPERIMENTS:
            return [self.experiment_id(experiment_name)]
        experiment = self.client.get_experiment_by_name(experiment_name)
        if experiment is None:
            raise InputError(
                f"Experiment '{experiment_name[:200]}' does not exist; this platform writes {list(names.EXPERIMENTS)}.",
                status_code=404,
            )
        return [experiment.experiment_id]

    def run_dict(self, run, full: bool = False) -> dict[str, Any]:
        experiment_name = self.experiment_name(run.info.experiment_id)
        out = {
            "run_id": run.info.run_id,
            "experiment_name": experiment_name,
            "run_name": run.info.run_name,
            "run_type": "training" if experiment_name == names.TRAINING_EXPERIMENT else "inference",
            "status": run.info.status,
            "start_time": iso(run.info.start_time),
            "end_time": iso(run.info.end_time),
            "params": dict(run.data.params),
            "metrics": dict(run.data.metrics),
        }
        if full:
            out["tags"] = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
            out["artifacts"] = self.list_artifacts(run.info.run_id)
        return out

    def list_artifacts(self, run_id: str, limit: int = 200) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        pending = [None]
        while pending and len(found) < limit:
            for item in self.client.list_artifacts(run_id, pending.pop()):
                if item.is_dir:
                    pending.append(item.path)
                else:
                    found.append({"path": item.path, "size_bytes": item.file_size})
        return sorted(found, key=lambda a: a["path"])[:limit]

    def query_runs(
        self,
        experiment_name: str | None,
        max_results: int,
        search: str | None = None,
        order_by: str = "start_time",
        descending: bool = True,
        page: int = 1,
    ) -> dict[str, Any]:
        """One page of runs matching the filter, sorted, with how many match in all."""
        experiment_ids = self._experiment_ids(experiment_name)
        query = RunQuery(tuple(experiment_ids), (search or "").strip() or None, order_by, descending, page, max_results)
        store = self._sql_store()
        if store is not None:
            run_ids, total = page_run_ids(store, query)
            runs = self._runs_by_id(experiment_ids, run_ids)
        else:
            runs, total = self._query_through_search(query)
        return {
            "runs": [self.run_dict(r) for r in runs],
            "total": total,
            "page": page,
            "pages": max(1, -(-total // max_results)),
        }

    def _runs_by_id(self, experiment_ids: list[str], run_ids: list[str]) -> list:
        if not run_ids:
            return []
        quoted = ", ".join(f"'{i}'" for i in run_ids)
        found = self.client.search_runs(
            experiment_ids,
            filter_string=f"attributes.run_id IN ({quoted})",
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=len(run_ids),
        )
        by_id = {r.info.run_id: r for r in found}
        return [by_id[i] for i in run_ids if i in by_id]

    def _query_through_search(self, query: RunQuery) -> tuple[list, int]:
        """Without a database store (a remote `mlflow server`): MLflow's own search, names only."""
        text = (query.search or "").replace("'", "")
        filter_string = f"attributes.run_name ILIKE '%{text}%'" if text else ""
        direction = "DESC" if query.descending else "ASC"
        order = f"metrics.`{query.metric}` {direction}" if query.metric else f"attributes.{query.order_by} {direction}"
        matching, token = [], None
        while True:
            page = self.client.search_runs(
                list(query.experiment_ids),
                filter_string,
                ViewType.ACTIVE_ONLY,
                max_results=_PAGE,
                order_by=[order],
                page_token=token,
            )
            matching.extend(page)
            token = page.token
            if not token:
                break
        start = (query.page - 1) * query.page_size
        return matching[start : start + query.page_size], len(matching)

    def export_runs(
        self, experiment_name: str | None, search: str | None, order_by: str, descending: bool, limit: int
    ) -> Iterator[dict[str, Any]]:
        """Every run matching the filter (up to `limit`), page by page, in the listing's order."""
        page, size, sent = 1, 1000, 0
        while sent < limit:
            batch = self.query_runs(experiment_name, size, search, order_by, descending, page)
            for run in batch["runs"][: limit - sent]:
                yield run
                sent += 1
            if page >= batch["pages"]:
                return
            page += 1

    def get_run(self, run_id: str) -> dict[str, Any]:
        if not _RUN_ID.match(run_id):
            raise InputError(f"'{run_id[:100]}' is not an MLflow run id: a run id is 32 hexadecimal characters.")
        try:
            run = self.client.get_run(run_id)
        except MlflowException as exc:
            if _is_not_found(exc):
                raise InputError(f"No run with id '{run_id}' exists.", status_code=404)
            raise
        return self.run_dict(run, full=True)

    def _all_runs(self, experiment_id: str) -> Iterator:
        token = None
        while True:
            page = self.client.search_runs(
                [experiment_id], run_view_type=ViewType.ACTIVE_ONLY, max_results=_PAGE, page_token=token
            )
            yield from page
            token = page.token
            if not token:
                return

    def _sql_store(self):
        """MLflow's SQL store behind the client (sqlite, PostgreSQL, MySQL), or None for a remote server.

        MLflow has no count API, and paging through 20,000 runs to count them takes seconds, so
        against a database the counts are one SQL aggregate over MLflow's own tables instead.
        """
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        store = getattr(getattr(self.client, "_tracking_client", None), "store", None)
        return store if isinstance(store, SqlAlchemyStore) else None

    def _aggregate(self, experiment_ids: list[str], metric: str | None = None) -> tuple[int, float | None]:
        """(active runs, average of `metric` over them) in the given experiments."""
        store = self._sql_store()
        if store is None:
            runs = [r for i in experiment_ids for r in self._all_runs(i)]
            values = [r.data.metrics[metric] for r in runs if metric in r.data.metrics] if metric else []
            return len(runs), (sum(values) / len(values) if values else None)

        from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlRun
        from sqlalchemy import func

        active = (SqlRun.experiment_id.in_([int(i) for i in experiment_ids]), SqlRun.lifecycle_stage == "active")
        with store.ManagedSessionMaker() as session:
            count = session.query(func.count(SqlRun.run_uuid)).filter(*active).scalar()
            average = None
            if metric:
                average = (
                    session.query(func.avg(SqlLatestMetric.value))
                    .join(SqlRun, SqlRun.run_uuid == SqlLatestMetric.run_uuid)
                    .filter(*active, SqlLatestMetric.key == metric)
                    .scalar()
                )
        return int(count), (float(average) if average is not None else None)

    def count_runs(self, experiment_name: str | None) -> int:
        return self._aggregate(self._experiment_ids(experiment_name))[0]

    def summary(self) -> dict[str, Any]:
        """Counts over every run in the store, not just the first page the dashboard shows."""
        training, accuracy = self._aggregate([self.experiment_id(names.TRAINING_EXPERIMENT)], names.M_ACCURACY)
        inference = self.count_runs(names.INFERENCE_EXPERIMENT)
        return {
            "total_runs": training + inference,
            "training_runs": training,
            "inference_runs": inference,
            "avg_accuracy": accuracy,
        }

    def download_artifact(self, run_id: str, path: str, destination: str) -> str:
        """A file of the run's artifacts, by a path that `list_artifacts` lists; anything else is refused."""
        self.get_run(run_id)  # 422 or 404 for a bad or unknown run
        listed = {a["path"] for a in self.list_artifacts(run_id, limit=10_000)}
        if path not in listed:
            raise InputError(f"Run '{run_id}' has no artifact '{path[:200]}'; it has {sorted(listed)[:20]}.", 404)
        return self.client.download_artifacts(run_id, path, destination)

    def find_prediction(self, prediction_id: str, time_ms: int | None) -> dict[str, Any] | None:
        """The run holding a prediction: its own single run, or the window run whose CSV lists it."""
        runs = self.find_prediction_runs(prediction_id)
        if runs:
            return {"run": self.run_dict(runs[0]), "record": None}
        if time_ms is None:
            return None
        windows = self.client.search_runs(
            [self.experiment_id(names.INFERENCE_EXPERIMENT)],
            filter_string=(
                f"params.{names.P_PREDICTION_TYPE} = '{names.PREDICTION_TYPE_WINDOW}' "
                f"and metrics.{names.M_WINDOW_START_MS} <= {time_ms} and metrics.{names.M_WINDOW_END_MS} >= {time_ms}"
            ),
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=20,
        )
        import pandas as pd

        for run in windows:
            with tempfile.TemporaryDirectory() as tmp:
                local = self.client.download_artifacts(run.info.run_id, names.WINDOW_ARTIFACT, tmp)
                table = pd.read_csv(local, dtype={names.T_PREDICTION_ID: str})
            match = table[table[names.T_PREDICTION_ID] == prediction_id]
            if len(match):
                return {"run": self.run_dict(run), "record": match.iloc[0].to_dict()}
        return None

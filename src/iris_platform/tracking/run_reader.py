"""Reading runs for the dashboard and the API: listings, counts, one run, its artifacts, a prediction.

Listings and counts go through the run index, chosen once for the store (SQL over MLflow's tables,
those of the tracking database or of the query database behind a remote server, which then also
reads the listed runs, or else MLflow's search); single runs and artifacts through MlflowClient.
"""

from __future__ import annotations

import re
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

from mlflow.entities import Run, ViewType
from mlflow.exceptions import MlflowException

from iris_platform.errors import InputError
from iris_platform.timestamps import iso_from_ms
from iris_platform.tracking import names
from iris_platform.tracking.run_index import RunIndex, RunQuery, run_index_for
from iris_platform.tracking.store import TrackingStore, is_not_found

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
RUN_TYPES = {"training": names.TRAINING_EXPERIMENT, "inference": names.INFERENCE_EXPERIMENT}


class RunReader:
    def __init__(self, store: TrackingStore, query_database_uri: str | None = None):
        """`query_database_uri`: the database behind a remote tracking server, for listings and counts."""
        self.store = store
        self._query_database_uri = query_database_uri
        self._index: RunIndex | None = None
        self._index_lock = threading.Lock()

    @property
    def index(self) -> RunIndex:
        if self._index is None:  # on first use: the store may be down at start-up
            with self._index_lock:  # one index (and one engine for a query database) however many ask
                if self._index is None:
                    self._index = run_index_for(self.store, self._query_database_uri)
        return self._index

    def close(self) -> None:
        """Dispose of the query database's engine, if one was opened (at shutdown). Idempotent; a later
        listing would still work, on fresh connections."""
        with self._index_lock:
            index = self._index
        if index is not None:
            index.close()

    def experiments(self) -> list[dict[str, Any]]:
        self.store.ensure_experiments()
        return [
            {
                "experiment_id": e.experiment_id,
                "name": e.name,
                "artifact_location": e.artifact_location,
                "lifecycle_stage": e.lifecycle_stage,
                "creation_time": iso_from_ms(e.creation_time),
            }
            for e in self.store.client.search_experiments(view_type=ViewType.ACTIVE_ONLY)
        ]

    def _experiment_ids(self, experiment_name: str | None) -> list[str]:
        if experiment_name is None:
            return self.store.platform_experiment_ids()
        if experiment_name in names.EXPERIMENTS:
            return [self.store.experiment_id(experiment_name)]
        experiment = self.store.client.get_experiment_by_name(experiment_name)
        if experiment is None:
            raise InputError(
                f"Experiment '{experiment_name[:200]}' does not exist; this platform writes {list(names.EXPERIMENTS)}.",
                status_code=404,
            )
        return [experiment.experiment_id]

    def monitoring(self, *, model_version: str | None, limit: int) -> dict[str, Any]:
        """The monitoring view's series, oldest first: drift reports (batch, window and drift window runs),
        feedback accuracy, and the alerts, newest first."""
        client = self.store.client
        inference = [self.store.experiment_id(names.INFERENCE_EXPERIMENT)]
        version = f" and params.{names.P_MODEL_VERSION} = '{model_version}'" if model_version else ""

        def search(filter_string: str) -> list[Run]:
            return client.search_runs(
                inference,
                filter_string=filter_string + version,
                run_view_type=ViewType.ACTIVE_ONLY,
                order_by=["attributes.start_time DESC"],
                max_results=limit,
            )

        def point(run: Run) -> dict[str, Any]:
            metrics = run.data.metrics
            return {
                "run_id": run.info.run_id,
                "run_name": run.info.run_name,
                "time": iso_from_ms(run.info.start_time),
                "time_ms": run.info.start_time,
                "prediction_type": run.data.params.get(names.P_PREDICTION_TYPE),
                "model_version": run.data.params.get(names.P_MODEL_VERSION),
                "metrics": dict(metrics),
                "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
            }

        drift = [point(r) for r in search(f"metrics.{names.M_DRIFT_DETECTED} >= 0")]
        feedback = [
            point(r)
            for r in search(f"params.{names.P_PREDICTION_TYPE} = '{names.PREDICTION_TYPE_FEEDBACK}'")
            if r.info.status == "FINISHED"
        ]
        alerts = [
            {
                "run_id": r.info.run_id,
                "run_name": r.info.run_name,
                "time": iso_from_ms(r.info.start_time),
                "kind": r.data.tags.get(names.T_ALERT),
                "message": r.data.tags.get(names.T_ALERT_MESSAGE),
                "model_version": r.data.params.get(names.P_MODEL_VERSION),
            }
            for r in search(f"tags.{names.T_ALERT} LIKE '%'")
        ]
        return {"drift": drift[::-1], "feedback": feedback[::-1], "alerts": alerts}

    def batch_row(self, run_id: str, row: int) -> dict[str, Any]:
        """A batch run's prediction of its data row `row` (0 is the first): the class, the classes, the model."""
        import pandas as pd

        try:
            run = self.store.client.get_run(run_id)
        except MlflowException as exc:
            if is_not_found(exc):
                message = f"No run '{run_id}' exists: send the run_id POST /predict_batch answered."
                raise InputError(message, 404) from None
            raise
        params = run.data.params
        if params.get(names.P_PREDICTION_TYPE) != names.PREDICTION_TYPE_BATCH:
            raise InputError(f"Run '{run_id}' is not a batch prediction run: send a batch's run_id with a row.", 422)
        total = int(run.data.metrics.get(names.M_TOTAL_SAMPLES, 0))
        if not 0 <= row < total:
            raise InputError(f"Run '{run_id}' has rows 0 to {total - 1}; row {row} is not one of them.", 422)
        with tempfile.TemporaryDirectory() as tmp:
            local = self.store.client.download_artifacts(run_id, names.PREDICTIONS_ARTIFACT, tmp)
            table = pd.read_csv(local, skiprows=range(1, row + 1), nrows=1, dtype=str, keep_default_na=False)
        columns = list(table.columns)
        added = columns[columns.index(names.COL_CONFIDENCE) + 1 :]  # the prob_<class> columns come last
        classes = [c[len(names.PROB_COLUMN_PREFIX) :] for c in added]
        return {
            "predicted_class": str(table[names.COL_PREDICTED_CLASS].iloc[0]),
            "classes": classes,
            "model_version": params.get(names.P_MODEL_VERSION),
            "model_path": params.get(names.P_MODEL_PATH),
        }

    def run_dict(self, run: Run, full: bool = False) -> dict[str, Any]:
        experiment_name = self.store.experiment_name(run.info.experiment_id)
        out = {
            "run_id": run.info.run_id,
            "experiment_name": experiment_name,
            "run_name": run.info.run_name,
            "run_type": "training" if experiment_name == names.TRAINING_EXPERIMENT else "inference",
            "status": run.info.status,
            "start_time": iso_from_ms(run.info.start_time),
            "end_time": iso_from_ms(run.info.end_time),
            "params": dict(run.data.params),
            "metrics": dict(run.data.metrics),
        }
        if full:
            out["tags"] = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
            out["artifacts"] = self.list_artifacts(run.info.run_id)
        return out

    def list_artifacts(self, run_id: str, limit: int = 200) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        pending: list[str | None] = [None]
        while pending and len(found) < limit:
            for item in self.store.client.list_artifacts(run_id, pending.pop()):
                if item.is_dir:
                    pending.append(item.path)
                else:
                    found.append({"path": item.path, "size_bytes": item.file_size})
        return sorted(found, key=lambda a: a["path"])[:limit]

    def query_runs(
        self,
        *,
        experiment_name: str | None,
        page_size: int,
        search: str | None = None,
        order_by: str = "start_time",
        descending: bool = True,
        page: int = 1,
    ) -> dict[str, Any]:
        """One page of runs matching the filter, sorted, with how many match in all."""
        experiment_ids = tuple(self._experiment_ids(experiment_name))
        query = RunQuery(
            experiment_ids=experiment_ids,
            search=(search or "").strip() or None,
            order_by=order_by,
            descending=descending,
            page=page,
            page_size=page_size,
        )
        runs, total = self.index.page(query)
        return {
            "runs": [self.run_dict(r) for r in runs],
            "total": total,
            "page": page,
            "pages": max(1, -(-total // page_size)),
        }

    def export_runs(
        self, *, experiment_name: str | None, search: str | None, order_by: str, descending: bool, limit: int
    ) -> Iterator[dict[str, Any]]:
        """Every run matching the filter (up to `limit`), page by page, in the listing's order."""
        page, size, sent = 1, 1000, 0
        while sent < limit:
            batch = self.query_runs(
                experiment_name=experiment_name,
                page_size=size,
                search=search,
                order_by=order_by,
                descending=descending,
                page=page,
            )
            for run in batch["runs"][: limit - sent]:
                yield run
                sent += 1
            if page >= batch["pages"]:
                return
            page += 1

    def _existing_run(self, run_id: str, what: str, id_rule: str) -> Run:
        """The run of this id, else a 422 (not an id: `id_rule` says what one is) or a 404 naming `what`."""
        if not _RUN_ID.match(run_id):
            raise InputError(f"'{run_id[:100]}' is not {id_rule}.")
        try:
            return self.store.client.get_run(run_id)
        except MlflowException as exc:
            if is_not_found(exc):
                raise InputError(f"No {what} with id '{run_id}' exists.", status_code=404) from None
            raise

    def get_run(self, run_id: str) -> dict[str, Any]:
        return self.run_dict(
            self._existing_run(run_id, "run", "an MLflow run id: a run id is 32 hexadecimal characters"), full=True
        )

    def tuning_runs(self, tuning_id: str) -> tuple[Run, list[Run]]:
        """A tuning's parent run and its trials' child runs (by the tag mlflow.parentRunId)."""
        parent = self._existing_run(
            tuning_id, "tuning", "a tuning id: a tuning id is its run's id, 32 hexadecimal characters"
        )
        if parent.data.tags.get(names.T_RUN_KIND) != names.RUN_KIND_TUNING:
            raise InputError(f"Run '{tuning_id}' is not a tuning: POST /tune answers a tuning's id.", status_code=404)
        children = self.store.client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.`{names.T_PARENT_RUN_ID}` = '{tuning_id}'",
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=1000,
        )
        return parent, children

    def count_runs(self, experiment_name: str | None) -> int:
        return self.index.aggregate(self._experiment_ids(experiment_name))[0]

    def summary(self) -> dict[str, Any]:
        """Counts over every run in the store, not just the first page the dashboard shows."""
        training_id = self.store.experiment_id(names.TRAINING_EXPERIMENT)
        training, accuracy = self.index.aggregate([training_id], names.M_ACCURACY)
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
        return self.store.client.download_artifacts(run_id, path, destination)

    def find_prediction(self, prediction_id: str, time_ms: int | None) -> dict[str, Any] | None:
        """The run holding a prediction: its own single run, or the window run whose CSV lists it."""
        client = self.store.client
        inference = [self.store.experiment_id(names.INFERENCE_EXPERIMENT)]
        runs = client.search_runs(
            inference,
            filter_string=f"tags.{names.T_PREDICTION_ID} = '{prediction_id}'",
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=10,
        )
        if runs:
            return {"run": self.run_dict(runs[0]), "record": None}
        if time_ms is None:
            return None
        windows = client.search_runs(
            inference,
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
                local = client.download_artifacts(run.info.run_id, names.WINDOW_ARTIFACT, tmp)
                table = pd.read_csv(local, dtype={names.T_PREDICTION_ID: str})
            match = table[table[names.T_PREDICTION_ID] == prediction_id]
            if len(match):
                return {"run": self.run_dict(run), "record": match.iloc[0].to_dict()}
        return None

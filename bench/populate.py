"""A store for the dashboard goal: 20,000 inference and 200 training runs, bulk-inserted with MLflow's own ORM."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.config import CLASSES, FEATURES, INFERENCE_EXPERIMENT, IRIS_RANGES, TRAINING_EXPERIMENT, Config

_MODEL_PATH = "models/iris_model_20260101_000000_000000.pkl"
_TRAINING_PARAMS = {
    "model_type": "RandomForestClassifier",
    "n_estimators": "100",
    "test_size": "0.2",
    "n_features": "4",
    "n_samples": "150",
    "n_classes": "3",
    "data_source": "sklearn_iris",
}


def populate(cfg: Config, workdir: Path) -> dict[str, str]:
    """Fill workdir/mlflow.db, read a sample back through MlflowClient; the experiment ids by name."""
    import numpy as np
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    db_uri = f"sqlite:///{workdir}/mlflow.db"
    artifact_root = (workdir / "mlruns").as_uri()
    client = MlflowClient(tracking_uri=db_uri)
    exp_ids = {}
    for i, name in enumerate((TRAINING_EXPERIMENT, INFERENCE_EXPERIMENT), start=1):
        exp_ids[name] = client.create_experiment(name, artifact_location=f"{artifact_root}/{i}")
    now_ms = int(time.time() * 1000)
    rng = np.random.default_rng(3)

    def training_metrics() -> dict[str, float]:
        acc = float(0.85 + 0.15 * rng.random())
        return {"accuracy": acc, "precision": acc, "recall": acc, "f1_score": acc}

    # One training run through the client: the reference for what a real run looks like.
    metrics = training_metrics()
    run = client.create_run(exp_ids[TRAINING_EXPERIMENT], start_time=now_ms - 10_000_000, run_name="training_seed_0")
    client.log_batch(
        run.info.run_id,
        metrics=[Metric(k, v, now_ms, 0) for k, v in metrics.items()],
        params=[Param(k, v) for k, v in _TRAINING_PARAMS.items()],
    )
    client.set_terminated(run.info.run_id, "FINISHED")

    inserter = _BulkInserter(db_uri, artifact_root, exp_ids)
    for k in range(1, cfg.dash_training_runs):
        start = now_ms - 10_000_000 + k * 1000
        inserter.add_run(
            TRAINING_EXPERIMENT, f"training_bench_{k:05d}", start, _TRAINING_PARAMS, training_metrics(), {}
        )
    inserter.flush()
    for k in range(cfg.dash_inference_runs):
        start = now_ms - 5_000_000 + k * 100
        x = [round(float(rng.uniform(*IRIS_RANGES[f])), 1) for f in FEATURES]
        p = rng.dirichlet([1, 1, 1])
        c = int(p.argmax())
        stamp = datetime.fromtimestamp(start / 1000, UTC)
        params = {
            "prediction_type": "single",
            "model_path": _MODEL_PATH,
            "timestamp": stamp.isoformat(),
            **dict(zip(FEATURES, map(str, x), strict=False)),
            "predicted_class": CLASSES[c],
        }
        metrics = {
            "prediction_confidence": float(p[c]),
            "predicted_class_index": c,
            **{f"probability_{n}": float(v) for n, v in zip(CLASSES, p, strict=False)},
        }
        inserter.add_run(
            INFERENCE_EXPERIMENT,
            f"single_prediction_{stamp.strftime('%Y%m%d_%H%M%S_%f')}",
            start,
            params,
            metrics,
            {"prediction_id": uuid.uuid4().hex},
        )
        if inserter.pending_runs >= 5000:
            inserter.flush()
    inserter.flush()
    inserter.close()
    _verify(client, exp_ids)
    return exp_ids


class _BulkInserter:
    """Rows for MLflow's run tables, inserted a batch at a time (the client would take minutes)."""

    def __init__(self, db_uri: str, artifact_root: str, exp_ids: dict[str, str]):
        from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        self.store = SqlAlchemyStore(db_uri, artifact_root)
        self.artifact_root = artifact_root
        self.exp_ids = exp_ids
        # In insertion order: runs first, as params, metrics and tags refer to them.
        models: dict[str, Any] = {
            "runs": SqlRun,
            "params": SqlParam,
            "metrics": SqlMetric,
            "latest": SqlLatestMetric,
            "tags": SqlTag,
        }
        self.tables: dict[str, Any] = {key: model.__table__ for key, model in models.items()}
        self.pending: dict[str, list[dict[str, Any]]] = {key: [] for key in models}

    @property
    def pending_runs(self) -> int:
        return len(self.pending["runs"])

    def add_run(
        self, experiment: str, name: str, start_ms: int, params: dict[str, Any], metrics: dict[str, Any], tags: dict
    ) -> None:
        run_id = uuid.uuid4().hex
        self.pending["runs"].append(
            dict(
                run_uuid=run_id,
                name=name,
                source_type="UNKNOWN",
                source_name="",
                entry_point_name="",
                user_id="bench",
                status="FINISHED",
                start_time=start_ms,
                end_time=start_ms + 30,
                deleted_time=None,
                source_version="",
                lifecycle_stage="active",
                artifact_uri=f"{self.artifact_root}/{self.exp_ids[experiment]}/{run_id}/artifacts",
                experiment_id=int(self.exp_ids[experiment]),
            )
        )
        for k, v in params.items():
            self.pending["params"].append(dict(key=k, value=str(v), run_uuid=run_id))
        for k, v in metrics.items():
            row = dict(key=k, value=float(v), timestamp=start_ms, step=0, is_nan=False, run_uuid=run_id)
            self.pending["metrics"].append(row)
            self.pending["latest"].append(dict(row))
        for k, v in {"mlflow.runName": name, **tags}.items():
            self.pending["tags"].append(dict(key=k, value=v, run_uuid=run_id))

    def flush(self) -> None:
        with self.store.ManagedSessionMaker(read_only=False) as session:
            for key, table in self.tables.items():
                if self.pending[key]:
                    session.execute(table.insert(), self.pending[key])
                    self.pending[key] = []

    def close(self) -> None:
        self.store.engine.dispose()


def _verify(client: Any, exp_ids: dict[str, str]) -> None:
    """Read a sample back through the public API: a bulk insert that MLflow cannot read would prove nothing."""
    sample = client.search_runs([exp_ids[INFERENCE_EXPERIMENT]], max_results=1, order_by=["attributes.start_time DESC"])
    if not sample:
        raise RuntimeError("no inference run reads back after the bulk insert")
    got = sample[0]
    want_params = {"prediction_type", "model_path", "timestamp", *FEATURES, "predicted_class"}
    want_metrics = {"prediction_confidence", "predicted_class_index", *(f"probability_{n}" for n in CLASSES)}
    if not (
        want_params <= set(got.data.params)
        and want_metrics <= set(got.data.metrics)
        and got.data.tags.get("prediction_id")
        and got.info.status == "FINISHED"
    ):
        raise RuntimeError(f"a bulk-inserted run reads back incomplete: {got.data.params} {got.data.metrics}")
    trained = client.search_runs(
        [exp_ids[TRAINING_EXPERIMENT]], max_results=1, filter_string="attributes.run_name = 'training_bench_00001'"
    )
    if not trained or "accuracy" not in trained[0].data.metrics:
        raise RuntimeError("a bulk-inserted training run reads back incomplete")

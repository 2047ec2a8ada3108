"""Filtered, sorted, paged run listings for the dashboard, as one SQL query over MLflow's tables.

MLflow's search API has no OR, so "run name or any param contains this text" cannot be one
MLflow filter, and it pages by opaque tokens rather than page numbers. Against a database store
(sqlite, PostgreSQL, MySQL) this module selects the page's run ids with SQLAlchemy over MLflow's
own ORM models; the runs themselves are then read through MlflowClient.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from iris_platform.errors import InputError
from iris_platform.tracking import names

_METRIC_KEY = re.compile(r"^[0-9A-Za-z_\-. /:]{1,250}$")
# "samples": the rows an inference run predicted (its total_samples metric; a single prediction is
# one) or a training run's data set (its n_samples param), as the dashboard's Samples column shows.
SORT_FIELDS = ("start_time", "run_name", "samples")


@dataclass(frozen=True)
class RunQuery:
    experiment_ids: tuple[str, ...]
    search: str | None = None
    order_by: str = "start_time"  # "start_time", "run_name", "samples" or "metrics.<key>"
    descending: bool = True
    page: int = 1
    page_size: int = 50

    def __post_init__(self) -> None:
        if self.order_by not in SORT_FIELDS and not (
            self.order_by.startswith("metrics.") and _METRIC_KEY.match(self.order_by[len("metrics.") :])
        ):
            raise InputError(
                f"order_by '{self.order_by[:100]}' is not sortable: use start_time, run_name, samples or metrics.<name>."
            )

    @property
    def metric(self) -> str | None:
        if self.order_by == "samples":
            return names.M_TOTAL_SAMPLES  # what a store without SQL (MLflow's search) can sort by
        return self.order_by[len("metrics.") :] if self.order_by.startswith("metrics.") else None


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def page_run_ids(store, query: RunQuery) -> tuple[list[str], int]:
    """(run ids of the requested page in order, number of runs matching the filter)."""
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlParam, SqlRun
    from sqlalchemy import BigInteger, and_, case, cast, func, or_, select
    from sqlalchemy.orm import aliased

    conditions = [
        SqlRun.experiment_id.in_([int(i) for i in query.experiment_ids]),
        SqlRun.lifecycle_stage == "active",
    ]
    if query.search:
        pattern = _like(query.search.lower())
        matching_params = select(SqlParam.run_uuid).where(
            or_(
                func.lower(SqlParam.value).like(pattern, escape="\\"),
                func.lower(SqlParam.key).like(pattern, escape="\\"),
            )
        )
        conditions.append(or_(func.lower(SqlRun.name).like(pattern, escape="\\"), SqlRun.run_uuid.in_(matching_params)))

    with store.ManagedSessionMaker() as session:
        total = session.query(func.count(SqlRun.run_uuid)).filter(*conditions).scalar()
        ids = session.query(SqlRun.run_uuid).filter(*conditions)
        if query.metric:
            metric = SqlLatestMetric
            ids = ids.outerjoin(metric, and_(metric.run_uuid == SqlRun.run_uuid, metric.key == query.metric))
            value = metric.value
            if query.order_by == "samples":
                param = aliased(SqlParam)
                ids = ids.outerjoin(param, and_(param.run_uuid == SqlRun.run_uuid, param.key == names.P_N_SAMPLES))
                # Only a count is cast: PostgreSQL refuses to cast "all", and MySQL casts to integers only.
                count = case((param.value.regexp_match(r"^[0-9]{1,15}$"), cast(param.value, BigInteger)), else_=None)
                value = func.coalesce(metric.value, count, 1.0)
            # Runs without the metric go last either way.
            ids = ids.order_by(
                value.is_(None), value.desc() if query.descending else value.asc(), SqlRun.start_time.desc()
            )
        else:
            column = SqlRun.start_time if query.order_by == "start_time" else SqlRun.name
            ids = ids.order_by(column.desc() if query.descending else column.asc(), SqlRun.run_uuid)
        rows = ids.offset((query.page - 1) * query.page_size).limit(query.page_size).all()
    return [r[0] for r in rows], int(total)

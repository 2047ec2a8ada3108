"""The run index: filtered, sorted, paged run listings and run counts, behind one small interface.

MLflow's search API has no OR, so "run name or any param contains this text" cannot be one MLflow
filter; it pages by opaque tokens rather than page numbers, and it has no count: paging through
20,000 runs to count them takes seconds. Against a database store (sqlite, PostgreSQL, MySQL),
`SqlRunIndex` selects a page's run ids and counts with SQLAlchemy over MLflow's own ORM models (the
runs themselves are then read through MlflowClient); against a remote `mlflow server`,
`SearchRunIndex` falls back to MLflow's search, run names only. `run_index_for` picks one, once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mlflow.entities import Run, ViewType

from iris_platform.errors import InputError
from iris_platform.tracking import names
from iris_platform.tracking.store import TrackingStore

_PAGE = 10_000

_METRIC_KEY = re.compile(r"^[0-9A-Za-z_\-. /:]{1,250}$")
# "samples": the rows an inference run predicted (its total_samples metric; a single prediction is
# one) or a training run's data set (its n_samples param), as the dashboard's Samples column shows.
SORT_FIELDS = ("start_time", "run_name", "samples")


@dataclass(frozen=True, kw_only=True)
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
                f"order_by '{self.order_by[:100]}' is not sortable: "
                "use start_time, run_name, samples or metrics.<name>."
            )

    @property
    def metric(self) -> str | None:
        if self.order_by == "samples":
            return names.M_TOTAL_SAMPLES  # what a store without SQL (MLflow's search) can sort by
        return self.order_by[len("metrics.") :] if self.order_by.startswith("metrics.") else None


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class RunIndex(Protocol):
    def page(self, query: RunQuery) -> tuple[list[Run], int]:
        """The runs of the requested page, in order, and how many runs match the filter."""
        ...

    def aggregate(self, experiment_ids: Sequence[str], metric: str | None = None) -> tuple[int, float | None]:
        """(active runs, average of `metric` over them) in the given experiments."""
        ...


def run_index_for(store: TrackingStore) -> RunIndex:
    sql = store.sql_store
    return SqlRunIndex(store, sql) if sql is not None else SearchRunIndex(store)


def _runs_by_id(store: TrackingStore, experiment_ids: Sequence[str], run_ids: list[str]) -> list[Run]:
    if not run_ids:
        return []
    quoted = ", ".join(f"'{i}'" for i in run_ids)
    found = store.client.search_runs(
        list(experiment_ids),
        filter_string=f"attributes.run_id IN ({quoted})",
        run_view_type=ViewType.ACTIVE_ONLY,
        max_results=len(run_ids),
    )
    by_id = {r.info.run_id: r for r in found}
    return [by_id[i] for i in run_ids if i in by_id]


class SqlRunIndex:
    """One SQL query over MLflow's own tables for a page or a count."""

    def __init__(self, store: TrackingStore, sql_store: Any):
        self._store = store
        self._sql = sql_store

    def page(self, query: RunQuery) -> tuple[list[Run], int]:
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
            conditions.append(
                or_(func.lower(SqlRun.name).like(pattern, escape="\\"), SqlRun.run_uuid.in_(matching_params))
            )

        with self._sql.ManagedSessionMaker() as session:
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
                    count = case(
                        (param.value.regexp_match(r"^[0-9]{1,15}$"), cast(param.value, BigInteger)), else_=None
                    )
                    value = func.coalesce(metric.value, count, 1.0)
                # Runs without the metric go last either way.
                ids = ids.order_by(
                    value.is_(None), value.desc() if query.descending else value.asc(), SqlRun.start_time.desc()
                )
            else:
                column = SqlRun.start_time if query.order_by == "start_time" else SqlRun.name
                ids = ids.order_by(column.desc() if query.descending else column.asc(), SqlRun.run_uuid)
            rows = ids.offset((query.page - 1) * query.page_size).limit(query.page_size).all()
        return _runs_by_id(self._store, query.experiment_ids, [r[0] for r in rows]), int(total)

    def aggregate(self, experiment_ids: Sequence[str], metric: str | None = None) -> tuple[int, float | None]:
        from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlRun
        from sqlalchemy import func

        active = (SqlRun.experiment_id.in_([int(i) for i in experiment_ids]), SqlRun.lifecycle_stage == "active")
        with self._sql.ManagedSessionMaker() as session:
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


class SearchRunIndex:
    """Without a database store (a remote `mlflow server`): MLflow's own search, run names only."""

    def __init__(self, store: TrackingStore):
        self._store = store

    def _search(
        self, experiment_ids: Sequence[str], filter_string: str = "", order: str | None = None
    ) -> Iterator[Run]:
        token = None
        while True:
            page = self._store.client.search_runs(
                list(experiment_ids),
                filter_string,
                ViewType.ACTIVE_ONLY,
                max_results=_PAGE,
                order_by=[order] if order else None,
                page_token=token,
            )
            yield from page
            token = page.token
            if not token:
                return

    def page(self, query: RunQuery) -> tuple[list[Run], int]:
        text = (query.search or "").replace("'", "")
        filter_string = f"attributes.run_name ILIKE '%{text}%'" if text else ""
        direction = "DESC" if query.descending else "ASC"
        order = f"metrics.`{query.metric}` {direction}" if query.metric else f"attributes.{query.order_by} {direction}"
        matching = list(self._search(query.experiment_ids, filter_string, order))
        start = (query.page - 1) * query.page_size
        return matching[start : start + query.page_size], len(matching)

    def aggregate(self, experiment_ids: Sequence[str], metric: str | None = None) -> tuple[int, float | None]:
        runs = list(self._search(experiment_ids))
        values = [r.data.metrics[metric] for r in runs if metric in r.data.metrics] if metric else []
        return len(runs), (sum(values) / len(values) if values else None)

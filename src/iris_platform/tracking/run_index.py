"""The run index: filtered, sorted, paged run listings and run counts, behind one small interface.

MLflow's search API has no OR, so "run name or any param contains this text" cannot be one MLflow
filter; it pages by opaque tokens rather than page numbers, and it has no count: paging through
20,000 runs to count them takes seconds. Against a database store (sqlite, PostgreSQL, MySQL),
`SqlRunIndex` selects a page's runs and counts with SQLAlchemy over MLflow's own ORM models, and
builds the page's Run entities from those rows as MLflow's SQL store does (`SqlRun.to_mlflow_entity`
with MLflow's eager loading of latest metrics, params and tags). Against a remote `mlflow server`, the
same `SqlRunIndex` runs on the database behind that server when its URI is given
(IRIS_QUERY_DATABASE_URI: a `QueryDatabase`, a read-only engine of our own, never MLflow's store, which
would migrate or create tables), so a page costs no request to the server; without it,
`SearchRunIndex` falls back to MLflow's search, run names only. `run_index_for` picks one, once.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from mlflow.entities import Run, ViewType
from mlflow.exceptions import MlflowException

from iris_platform.errors import InputError
from iris_platform.redaction import describe, redact_uri
from iris_platform.tracking import names
from iris_platform.tracking.store import DB_CONNECT_TIMEOUT_S, TrackingStore, is_remote_server

log = logging.getLogger(__name__)

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

    def close(self) -> None:
        """Release what the index holds of its own (a query database's connections); MLflow's store is not its."""
        ...

    def aggregate(self, experiment_ids: Sequence[str], metric: str | None = None) -> tuple[int, float | None]:
        """(active runs, average of `metric` over them) in the given experiments."""
        ...


def run_index_for(store: TrackingStore, query_database_uri: str | None = None) -> RunIndex:
    """SQL over the tracking database; else, for a remote server, SQL over the database behind it when
    `query_database_uri` names it; else MLflow's search."""
    sql = store.sql_store
    if sql is not None:
        if query_database_uri:
            log.info("IRIS_QUERY_DATABASE_URI is ignored: the tracking store is itself a database")
        return SqlRunIndex(sql.ManagedSessionMaker)
    if query_database_uri and is_remote_server(store.tracking_uri):
        database = QueryDatabase(query_database_uri)
        try:
            database.check_experiments(
                {store.experiment_id(name): name for name in names.EXPERIMENTS}, store.tracking_uri
            )
        except BaseException:
            database.close()
            raise
        log.info("run listings and counts: SQL over the query database %s", redact_uri(query_database_uri))
        return SqlRunIndex(database.session, database)
    if query_database_uri:
        log.info("IRIS_QUERY_DATABASE_URI is ignored: the tracking store is not a remote server")
    return SearchRunIndex(store)


def _read_only_engine(uri: str) -> Any:
    """An engine that cannot write where the driver allows it: sqlite opens the file read-only (a missing
    file is an error, not a new empty database); PostgreSQL's transactions default to read-only. A
    server that does not answer fails after DB_CONNECT_TIMEOUT_S, not after the driver's own minutes."""
    import sqlalchemy
    from sqlalchemy.engine import make_url

    url = make_url(uri)
    backend = url.get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and not url.query.get("uri"):
            url = url.set(database=f"file:{quote(database)}", query={**url.query, "mode": "ro", "uri": "true"})
    elif backend in ("postgresql", "mysql", "mariadb"):
        connect_args["connect_timeout"] = DB_CONNECT_TIMEOUT_S
        if backend == "postgresql" and url.get_driver_name() in ("psycopg", "psycopg2") and "options" not in url.query:
            connect_args["options"] = "-c default_transaction_read_only=on"
    # pool_pre_ping: a connection the database server closed (a restart) is replaced, not reported.
    return sqlalchemy.create_engine(url, connect_args=connect_args, pool_pre_ping=True)


class QueryDatabase:
    """The database behind a remote `mlflow server`, read directly with MLflow's ORM models: one
    read-only engine (made once), sessions that never commit, errors that name the setting."""

    def __init__(self, uri: str):
        # Importing MLflow's SQL store configures the ORM models' mappers, as MLflow does it itself
        # (its warnings are attributed to MLflow, not to the first query here).
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401

        self._shown = redact_uri(uri)
        try:
            self.engine = _read_only_engine(uri)
        except Exception as exc:  # a malformed URI or a missing driver
            raise self._error(exc) from exc

    def _error(self, exc: BaseException) -> MlflowException:
        return MlflowException(
            f"the query database {self._shown} (IRIS_QUERY_DATABASE_URI) cannot be read: {describe(exc)}"
        )

    @contextmanager
    def session(self) -> Iterator[Any]:
        from sqlalchemy.exc import SQLAlchemyError
        from sqlalchemy.orm import Session

        try:
            with Session(self.engine) as session:  # closed without a commit: nothing is ever written
                yield session
        except SQLAlchemyError as exc:
            raise self._error(exc) from exc

    def check_experiments(self, experiments: Mapping[str, str], tracking_uri: str) -> None:
        """The tracking server's experiments (id: name) have those ids and names here too, so this is
        the database behind that server: another one would list runs the server does not have."""
        from mlflow.store.tracking.dbmodels.models import SqlExperiment

        with self.session() as session:
            rows = (
                session.query(SqlExperiment.experiment_id, SqlExperiment.name)
                .filter(SqlExperiment.experiment_id.in_([int(i) for i in experiments]))
                .all()
            )
        found = {str(i): name for i, name in rows}
        wrong = [
            f"{i} is '{n}' on the server, {found.get(i)!r} there" for i, n in experiments.items() if found.get(i) != n
        ]
        if wrong:
            raise MlflowException(
                f"the query database {self._shown} (IRIS_QUERY_DATABASE_URI) is not the database behind the "
                f"tracking server {redact_uri(tracking_uri)}: experiment {'; '.join(wrong)}"
            )

    def close(self) -> None:
        self.engine.dispose()


def _runs_by_id(session: Any, run_ids: list[str]) -> list[Run]:
    """The active runs with these ids, in this order, built as MLflow's SQL store builds them for get_run
    and search_runs: their rows with MLflow's eager loading of latest metrics, params and tags (one
    SELECT ... IN of the ids each), then `SqlRun.to_mlflow_entity`. The page is first sorted on ids alone:
    sorting whole rows takes sqlite about twice as long (runs has no index on start_time). A run deleted
    since its id was read is left out."""
    from mlflow.store.tracking.dbmodels.models import SqlRun
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    if not run_ids:
        return []
    found = (
        session.query(SqlRun)
        .options(*SqlAlchemyStore._get_eager_run_query_options())
        .filter(SqlRun.run_uuid.in_(run_ids), SqlRun.lifecycle_stage == "active")
        .all()
    )
    by_id = {run.run_uuid: run for run in found}
    return [by_id[i].to_mlflow_entity() for i in run_ids if i in by_id]


Sessions = Callable[[], AbstractContextManager[Any]]


class SqlRunIndex:
    """SQL over MLflow's own tables for a page (its count, its runs) or a count: the tracking database's
    (through MLflow's own sessions) or the query database behind a remote server (`database`)."""

    def __init__(self, sessions: Sessions, database: QueryDatabase | None = None):
        self._sessions = sessions
        self.database = database

    def close(self) -> None:
        """Dispose of the query database's engine (its pooled connections); MLflow's own store stays open."""
        if self.database is not None:
            self.database.close()

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

        with self._sessions() as session:
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
            return _runs_by_id(session, [r[0] for r in rows]), int(total)

    def aggregate(self, experiment_ids: Sequence[str], metric: str | None = None) -> tuple[int, float | None]:
        from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlRun
        from sqlalchemy import func

        active = (SqlRun.experiment_id.in_([int(i) for i in experiment_ids]), SqlRun.lifecycle_stage == "active")
        with self._sessions() as session:
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

    def close(self) -> None:
        pass  # nothing of its own: the client is the store's

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

"""The connection to the MLflow tracking store, and the experiments this platform writes in.

The kind of store (a database MLflow reaches with SQLAlchemy, or a remote `mlflow server`) is
found once, when the store is first reached; the readers take their backend from it. Experiments
are looked up by id, never through a process-global "current experiment", so concurrent requests
cannot race on it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST, ErrorCode

from iris_platform.redaction import describe
from iris_platform.tracking import names

# MLflow's HTTP client retries a remote tracking server 7 times with exponential backoff (about
# 4 minutes) and waits 120 s for an answer: a request that must write its run would hang that long
# when the server is down. The platform answers 503 after about 3 s instead (the tracking worker
# retries on its own); the environment variables still win when set.
MLFLOW_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def is_remote_server(tracking_uri: str) -> bool:
    """An `mlflow server` reached over HTTP(S), rather than a database or files MLflow opens itself."""
    return tracking_uri.lower().startswith(("http://", "https://"))


def bound_http_retries(tracking_uri: str) -> None:
    if tracking_uri.lower().startswith(("http://", "https://")):
        for key, value in MLFLOW_HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)


# A database that does not answer within this is reported at once, instead of through MLflow's own
# engine retries (ten attempts over about 100 s, during which a request or a shutdown waits).
DB_CONNECT_TIMEOUT_S = 5


def probe_database(uri: str) -> None:
    """Connect once to a database tracking URI, so a missing driver, a missing database or a server that
    does not answer raises at once with its real cause. Other URIs (files, remote servers) pass through."""
    from mlflow.utils.uri import extract_db_type_from_uri

    try:
        db_type = extract_db_type_from_uri(uri)
    except MlflowException:
        return  # not a database: MLflow reaches it another way
    if db_type == "sqlite":
        return  # a local file, which MLflow creates
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    connect_args = {"connect_timeout": DB_CONNECT_TIMEOUT_S} if db_type in ("postgresql", "mysql") else {}
    engine = sqlalchemy.create_engine(uri, connect_args=connect_args, poolclass=NullPool)
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


@contextlib.contextmanager
def schema_lock(uri: str) -> Iterator[None]:
    """Held while MLflow opens a sqlite store: the first open creates its tables, and two processes doing
    that at once (two workers, two servers in one folder) collide (`_alembic_tmp_... already exists`)."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    if not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).with_name(Path(database).name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def is_not_found(exc: MlflowException) -> bool:
    return exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST)


def _sql_store_of(client: MlflowClient) -> Any | None:
    """MLflow's SQLAlchemy store behind `client` (sqlite, PostgreSQL, MySQL), or None for a remote server.

    MLflow has no public accessor for it; this is the one place that reaches for it.
    """
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    return store if isinstance(store, SqlAlchemyStore) else None


def _registry_sql_store_of(client: MlflowClient) -> Any | None:
    """MLflow's SQLAlchemy model registry store behind `client`: its engine is not the tracking store's."""
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

    store = getattr(client._get_registry_client(), "store", None)
    return store if isinstance(store, SqlAlchemyStore) else None


def _sqlite_file(engine: Any) -> str | None:
    database = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
    return database if database and database != ":memory:" else None


def _can_write(path: str) -> bool:
    """What SQLite finds when it opens the file: read-write, or (when refused) read-only for good.

    Asked with access(2), never by opening the file: closing any descriptor of a database file drops
    every POSIX lock this process holds on it, the SQLite connections' included (other processes then
    write under them: "database is locked" for 20 s, "disk I/O error"). access(2) answers EPERM for an
    immutable file and EROFS on a read-only mount, as an open would."""
    if not os.path.exists(path):
        return True  # SQLite creates it
    return os.access(path, os.R_OK | os.W_OK)


def drop_read_only_sqlite_connections(engine: Any) -> None:
    """A SQLite connection opened while its file refused writes (permissions, chattr +i, a read-only
    mount) stays read-only after the file is writable again. Such a connection is left out of the pool
    at checkout once the file is writable, so a write after an outage does not fail on a connection a
    read opened during it."""
    from sqlalchemy import event
    from sqlalchemy.exc import DisconnectionError

    path = _sqlite_file(engine)
    if path is None or getattr(engine, "_iris_read_only_check", False):
        return  # not a sqlite file, or MLflow's cached engine already has the check
    engine._iris_read_only_check = True

    @event.listens_for(engine, "connect")
    def _opened(dbapi_connection: Any, record: Any) -> None:
        record.info["opened_read_only"] = not _can_write(path)

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if record.info.get("opened_read_only") and _can_write(path):
            raise DisconnectionError("SQLite connection opened read-only; the file is writable again")


class TrackingStore:
    """One MLflow tracking store: its client, made on first use, and the platform's experiments in it."""

    def __init__(self, tracking_uri: str):
        self.tracking_uri = tracking_uri
        bound_http_retries(tracking_uri)  # before the tracking worker is spawned: it inherits them
        self._client: MlflowClient | None = None
        self._sql_store: Any | None = None
        self._engines: list[Any] = []  # the tracking and registry stores' SQLAlchemy engines, if any
        self._ids: dict[str, str] = {}
        self._names: dict[str, str] = {}
        self._lock = threading.Lock()
        self._client_lock = threading.Lock()
        # Why the store could not be reached, until it can: /health shows it.
        self.last_error: str | None = None
        self._last_attempt = 0.0

    @property
    def client(self) -> MlflowClient:
        """Made on first use, so a tracking store that is down at start-up does not stop the server."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._last_attempt = time.monotonic()
                    try:
                        probe_database(self.tracking_uri)
                        with schema_lock(self.tracking_uri):
                            client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
                            client.search_experiments(max_results=1)  # connect now; raise while still None
                    except Exception as exc:  # a missing driver or database, a store down: unavailable
                        self.last_error = describe(exc)
                        if isinstance(exc, MlflowException):
                            raise
                        raise MlflowException(f"cannot open the tracking store: {self.last_error}") from exc
                    self._sql_store = _sql_store_of(client)
                    self._engines = [s.engine for s in (self._sql_store, _registry_sql_store_of(client)) if s]
                    for engine in self._engines:
                        drop_read_only_sqlite_connections(engine)
                    self._client = client
                    self.last_error = None
        return self._client

    @property
    def sql_store(self) -> Any | None:
        """MLflow's own SQLAlchemy store when the tracking store is a database, else None."""
        _ = self.client
        return self._sql_store

    def recheck(self, min_interval_s: float = 5.0) -> None:
        """While the store has never been reached, try again now and then, so `last_error` does not
        outlive an outage nobody else's request would notice the end of."""
        if self._client is None and self.last_error and time.monotonic() - self._last_attempt >= min_interval_s:
            with contextlib.suppress(Exception):
                _ = self.client

    def ping(self) -> None:
        """Raise unless the store answers now."""
        self.client.search_experiments(max_results=1)

    def reset_connections(self) -> None:
        """Drop the database connections kept in the pool, after a tracking error.

        A connection SQLite opened while the database refused writes stays read-only, and one a
        database server closed stays closed: without this, the store would keep failing after it
        is back. The next use opens fresh connections.
        """
        for engine in self._engines:  # the registry's too: a training writes both
            with contextlib.suppress(Exception):  # the error that led here is the one to report
                engine.dispose()

    # -- experiments -------------------------------------------------------------------------

    def experiment_id(self, name: str) -> str:
        cached = self._ids.get(name)
        if cached is not None:
            return cached
        with self._lock:
            if name not in self._ids:
                experiment = self.client.get_experiment_by_name(name)
                kind = {names.T_EXPERIMENT_KIND: names.EXPERIMENT_KIND}
                if experiment is None:
                    try:
                        experiment_id = self.client.create_experiment(name, tags=kind)
                    except MlflowException as exc:  # another process created it first
                        if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                            raise
                        created = self.client.get_experiment_by_name(name)
                        if created is None:
                            raise
                        experiment_id = created.experiment_id
                else:
                    experiment_id = experiment.experiment_id
                    if experiment.tags.get(names.T_EXPERIMENT_KIND) is None:  # made by an earlier version
                        self.client.set_experiment_tag(experiment_id, names.T_EXPERIMENT_KIND, names.EXPERIMENT_KIND)
                self._ids[name] = experiment_id
                self._names[experiment_id] = name
            return self._ids[name]

    def ensure_experiments(self) -> None:
        for name in names.EXPERIMENTS:
            self.experiment_id(name)

    def platform_experiment_ids(self) -> list[str]:
        self.ensure_experiments()
        return [self._ids[n] for n in names.EXPERIMENTS]

    def experiment_name(self, experiment_id: str) -> str:
        if experiment_id not in self._names:
            self._names[experiment_id] = self.client.get_experiment(experiment_id).name
        return self._names[experiment_id]

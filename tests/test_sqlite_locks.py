"""The platform's checks on a SQLite tracking file leave SQLite's own locks alone.

Closing any descriptor of a database file drops every POSIX lock the process holds on it: a check that
opened and closed the file while a connection was writing let another process write under it (seen as
"database is locked" for 20 s, then "disk I/O error", with a tuning, a training and the tracking worker
writing at once).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import sqlalchemy

from iris_platform.tracking.store import drop_read_only_sqlite_connections

OTHER_PROCESS_WRITES = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)
try:
    connection.execute("BEGIN IMMEDIATE")
except sqlite3.OperationalError as exc:
    print(exc)
else:
    print("got the write lock")
"""


def other_process_tries_to_write(database) -> str:
    done = subprocess.run(
        [sys.executable, "-c", OTHER_PROCESS_WRITES, str(database)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_opening_a_connection_keeps_the_write_lock_another_connection_holds(tmp_path):
    database = tmp_path / "mlflow.db"
    with sqlite3.connect(database) as setup:
        setup.execute("CREATE TABLE runs (id TEXT)")
    setup.close()
    engine = sqlalchemy.create_engine(f"sqlite:///{database}")
    drop_read_only_sqlite_connections(engine)  # as the platform sets up MLflow's engines
    writer = engine.raw_connection()
    try:
        writer.driver_connection.isolation_level = None
        writer.driver_connection.execute("BEGIN IMMEDIATE")  # this process holds the write lock
        writer.driver_connection.execute("INSERT INTO runs VALUES ('a')")
        assert other_process_tries_to_write(database) == "database is locked"
        with engine.connect() as reader:  # a new pooled connection: the platform's checks run
            assert reader.exec_driver_sql("SELECT count(*) FROM runs").scalar() == 0
        assert other_process_tries_to_write(database) == "database is locked"  # still held
        writer.driver_connection.execute("COMMIT")
    finally:
        writer.close()
        engine.dispose()
    assert other_process_tries_to_write(database) == "got the write lock"

"""Engines: SQLite (WAL, BEGIN IMMEDIATE) or PostgreSQL, configured the same way everywhere.

A PostgreSQL schema can be chosen in the URL itself (`?options=-csearch_path%3Dname`), which
is how tests give every run its own schema.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

# How long an SQLite statement waits for another connection's write lock before failing.
BUSY_TIMEOUT_MS = 10_000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own BEGIN handling defers locks until the first write, which makes a
    # read-then-write transaction fail with SQLITE_BUSY under several processes; we emit
    # BEGIN IMMEDIATE ourselves instead (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    _use_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.close()


def _use_wal(cursor: Any) -> None:
    # Turning a new database file to WAL takes an exclusive lock, and SQLite answers a
    # connection that races another's conversion with SQLITE_BUSY at once, without calling
    # its busy handler (seen with processes starting together): retry as long as a busy
    # statement would wait.
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_database_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def create_reading_engine(url: str) -> Engine:
    """An engine for long reports that must not hold up the server's writers.

    The adapter's SQLite engine begins every transaction with BEGIN IMMEDIATE, the database's
    write lock: walking millions of rows under it would stall every request. Plain pysqlite
    reads without that lock (WAL), each query seeing a consistent snapshot.
    """
    if is_sqlite(url):
        return create_engine(url, connect_args={"timeout": 10})
    return create_database_engine(url)

"""The database handle: one engine per process, SQLite (WAL) or PostgreSQL.

A PostgreSQL schema can be chosen in the URL itself (`?options=-csearch_path%3Dname`), which
is how tests give every run its own schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from adapter.store import migrate


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own BEGIN handling defers locks until the first write, which makes a
    # read-then-write transaction fail with SQLITE_BUSY under several processes; we emit
    # BEGIN IMMEDIATE ourselves instead (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


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


class Database:
    """Engine plus session factory; `transaction()` commits or rolls back as one unit."""

    def __init__(self, url: str) -> None:
        self.engine = create_database_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def create_schema(self) -> None:
        """Migrate the database to the newest Alembic revision (see adapter.store.migrate).

        Creates the schema in an empty database, does nothing at head, adopts a database made
        by `create_all` before migrations existed, and is safe to call from several processes
        at once (the migration holds a lock).
        """
        migrate.upgrade(self.engine)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def reading_session(url: str) -> Iterator[Session]:
    """A session for long reports that must not hold up the server's writers.

    The adapter's SQLite engine begins every transaction with BEGIN IMMEDIATE, the database's
    write lock: walking millions of rows under it would stall every request. Plain pysqlite
    reads without that lock (WAL), each query seeing a consistent snapshot.
    """
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 10})
    else:
        engine = create_database_engine(url)
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()

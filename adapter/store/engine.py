"""Engines: SQLite (WAL, BEGIN IMMEDIATE) or PostgreSQL, configured the same way everywhere.

A PostgreSQL schema can be chosen in the URL itself (`?options=-csearch_path%3Dname`), which
is how tests give every run its own schema.

SQLite has one writer at a time. A connection that finds the write lock taken is left to
SQLite's busy handler, which polls it with sleeps of up to 100 ms: under load most of a
request's time, and the whole of its tail latency, went to those sleeps. So the adapter's
writers queue for the database in the kernel instead: each takes `WriteLock` (a thread lock,
then an `flock` on a file beside the database, shared by every process of the machine) before
BEGIN IMMEDIATE and lets go after COMMIT or ROLLBACK, and the next in line wakes at once.
SQLite's own lock and busy handler stay underneath, for anything that writes without it.

The few statements every request runs (the accounts lookup, a receipt and its audit entry) are
`DriverStatement`s: compiled by SQLAlchemy once, run on the DBAPI cursor in the connection's
transaction, with SQLAlchemy's type conversions and errors. They do not pass SQLAlchemy's
statement events (`before_cursor_execute`, echo); BEGIN IMMEDIATE does, on purpose.
"""

from __future__ import annotations

import fcntl
import os
import select
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Dialect, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, OperationalError, PendingRollbackError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

# How long an SQLite statement waits for another connection's write lock before failing.
BUSY_TIMEOUT_MS = 10_000

# SQLite copies the WAL back into the database file (a checkpoint) in the commit that finds
# the WAL longer than this many pages: a commit under the write lock, so every writer waits.
# At SQLite's default of 1,000 pages nearly every commit of a 1000-Bericht batch checkpointed:
# its random BerichtIDs dirty a page of their index each, some 4 MB of WAL. The scheduler
# checkpoints every second outside the lock (`Database.checkpoint`); this is the backstop for
# a WAL that nothing else checkpoints: 10,000 pages of 4 KiB, 40 MB.
WAL_AUTOCHECKPOINT_PAGES = 10_000

# A pooled PostgreSQL connection older than this is replaced: it bounds how long one that a
# firewall dropped without telling either side can stay in the pool.
POOL_RECYCLE_SECONDS = 1800


class WriteLock:
    """The right to write to one SQLite database file, for one process at a time and within
    it one thread at a time; waiters sleep in the kernel and wake when it is released."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._threads = threading.Lock()
        self._descriptor: int | None = None

    def acquire(self) -> bool:
        """Wait for the lock; False when another thread of this process held it too long.

        Within the process the wait is bounded like SQLite's busy timeout, so a transaction
        waiting for another of its own thread fails instead of hanging. Across processes a
        holder ends its transaction or dies, and the kernel then drops its flock.
        """
        if not self._threads.acquire(timeout=BUSY_TIMEOUT_MS / 1000):
            return False
        try:
            if self._descriptor is None:
                self._descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._descriptor, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise
        return True

    def release(self) -> None:
        if self._descriptor is not None:
            fcntl.flock(self._descriptor, fcntl.LOCK_UN)
        self._threads.release()


_write_locks: dict[tuple[int, str], WriteLock] = {}
_write_locks_guard = threading.Lock()


def write_lock(database: str) -> WriteLock:
    """The write lock of an SQLite database file, one per file and process.

    Keyed by process as well: a forked worker must not share its parent's open lock file,
    whose flock the two would then hold together.
    """
    path = Path(database).resolve()
    key = (os.getpid(), str(path))
    with _write_locks_guard:
        lock = _write_locks.get(key)
        if lock is None:
            lock = _write_locks[key] = WriteLock(path.with_name(path.name + ".write.lock"))
        return lock


class WriteLockedConnection(sqlite3.Connection):
    """A pysqlite connection that holds its database's `WriteLock` during a transaction:
    taken before BEGIN IMMEDIATE (see `_sqlite_begin`), given up by commit, rollback, close."""

    write_lock: WriteLock | None = None  # set on connect; None for an in-memory database
    _holding = False

    def take_write_lock(self) -> bool:
        if self.write_lock is None or self._holding:
            return True
        self._holding = self.write_lock.acquire()
        return self._holding

    def give_up_write_lock(self) -> None:
        if self._holding and self.write_lock is not None:
            self._holding = False
            self.write_lock.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.give_up_write_lock()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.give_up_write_lock()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.give_up_write_lock()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own BEGIN handling defers locks until the first write, which makes a
    # read-then-write transaction fail with SQLITE_BUSY under several processes; we emit
    # BEGIN IMMEDIATE ourselves instead (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    _use_wal(cursor)
    # FULL: each commit reaches the disk before it returns, so a receipt or Acknowledgment
    # that has left the server survives a power loss too (NORMAL in WAL mode survives a
    # crash of the process only).
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
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
    driver: WriteLockedConnection = connection.connection.driver_connection
    if not driver.take_write_lock():
        # Raised as SQLAlchemy would raise SQLite's own error, so it reaches callers the same
        # way (StoreUnavailable).
        locked = sqlite3.OperationalError("database is locked (waited for the write lock)")
        raise OperationalError("BEGIN IMMEDIATE", None, locked)
    try:
        # Through SQLAlchemy, not on the driver (DriverStatement): tests watch for it in the
        # engine's statement events to tell which work takes the write lock.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        driver.give_up_write_lock()
        raise


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _database_file(url: str) -> str | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return parsed.database


def is_database_file(url: str) -> bool:
    """An SQLite database in a file (which another connection can open), not in memory."""
    return _database_file(url) is not None


def create_database_engine(url: str) -> Engine:
    if is_sqlite(url):
        database = _database_file(url)
        if database:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"timeout": BUSY_TIMEOUT_MS / 1000, "factory": WriteLockedConnection}
        engine = create_engine(url, connect_args=connect_args)

        def on_connect(dbapi_connection: Any, record: Any) -> None:
            # Looked up per connection, so that it is the lock of the connecting process.
            dbapi_connection.write_lock = write_lock(database) if database else None
            _sqlite_pragmas(dbapi_connection, record)

        event.listen(engine, "connect", on_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    engine = create_engine(url, pool_size=5, max_overflow=5, pool_recycle=POOL_RECYCLE_SECONDS)
    event.listen(engine, "checkout", _drop_if_closed_by_server)
    return engine


def _drop_if_closed_by_server(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Refuse a pooled connection the server has closed, so the pool takes another.

    A server that restarts or ends a backend sends its last message and closes the socket,
    which makes an idle connection's socket readable. Asking the kernel costs no round trip,
    where `pool_pre_ping` sent a query on every checkout, once per transaction. A connection
    that dies anyway fails its statement, and SQLAlchemy then replaces the pool's connections.
    """
    if dbapi_connection.closed:
        raise DisconnectionError("the connection is closed")
    poller = select.poll()  # not select.select, which fails on descriptors above 1023
    poller.register(dbapi_connection.fileno(), select.POLLIN)
    if poller.poll(0):
        raise DisconnectionError("the server closed the connection (or sent to an idle one)")


def create_reading_engine(url: str) -> Engine:
    """An engine for long reports that must not hold up the server's writers.

    The adapter's SQLite engine begins every transaction with BEGIN IMMEDIATE, the database's
    write lock: walking millions of rows under it would stall every request. Plain pysqlite
    reads without that lock (WAL), each query seeing a consistent snapshot.
    """
    if is_sqlite(url):
        return create_engine(url, connect_args={"timeout": 10})
    return create_database_engine(url)


# --- statements run on the driver -----------------------------------------------------------


@contextmanager
def driver_errors(
    connection: Connection, sql: str, parameters: Any = None, cursor: Any = None
) -> Iterator[None]:
    """Handle a DBAPI error raised in the block as SQLAlchemy's own execution does.

    That is: raised as SQLAlchemy's exception (`IntegrityError`, `OperationalError`, …, so
    `store_errors` sees what it always saw), and on a lost connection the connection and the
    pool's older ones invalidated. SQLAlchemy's method for it is private but has kept its
    signature through 2.x; tests/unit/test_store_driver.py fails should that change.
    """
    try:
        yield
    except connection.dialect.loaded_dbapi.Error as exc:
        connection._handle_dbapi_exception(exc, sql, parameters, cursor, None)


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...] | None  # positional parameters in order; None: by name
    defaults: Mapping[str, Any]  # bound values the statement carries itself (LIMIT 1 …)
    binds: tuple[tuple[str, Callable[[Any], Any]], ...]  # parameter → type conversion
    results: tuple[Callable[[Any], Any] | None, ...]  # result column → conversion; () none


class DriverStatement:
    """A Core statement compiled once per dialect and run on the DBAPI cursor itself.

    For the few statements every request runs (the accounts lookup, the receipt and its audit
    entry): SQLAlchemy's path from `Connection.execute` to the cursor (cache key, parameter
    construction, execution context, result set-up) cost more CPU than the driver's work.
    What reaches the driver is what SQLAlchemy would send: its compiled SQL and its types'
    bind and result conversions; errors are SQLAlchemy's (`driver_errors`). The statement
    runs in the connection's transaction, begun first as `Connection.execute` would (on
    SQLite: the write lock and BEGIN IMMEDIATE). Only statements without Python-side column
    defaults, expanding parameters or RETURNING qualify; compiling refuses the others.
    """

    def __init__(self, statement: ClauseElement, parameters: Sequence[str] | None = None) -> None:
        self.statement = statement
        self._parameters = list(parameters) if parameters is not None else None  # an INSERT's
        self._compiled: dict[type[Dialect], _Compiled] = {}  # per dialect and driver

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self.statement.compile(dialect=dialect, column_keys=self._parameters)
        if not isinstance(compiled, SQLCompiler):
            raise TypeError("not an SQL statement")
        if (
            compiled.insert_prefetch
            or compiled.update_prefetch
            or compiled.post_compile_params
            or compiled.literal_execute_params
            or compiled.implicit_returning
            or compiled.returning
        ):
            raise ValueError(f"{compiled.string!r} needs SQLAlchemy's own execution")
        binds = []
        defaults = {}
        for bind, name in compiled.bind_names.items():
            convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if convert is not None:
                binds.append((name, convert))
            if not bind.required:
                defaults[name] = bind.effective_value
        results = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in getattr(self.statement, "selected_columns", ())
        )
        if not any(results):
            results = ()
        names = tuple(compiled.positiontup or ()) if dialect.positional else None
        return _Compiled(compiled.string, names, defaults, tuple(binds), results)

    def rows(
        self, connection: Connection, parameters: Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """The statement's result rows (converted as SQLAlchemy converts them)."""
        rows, _ = self._run(connection, parameters, fetch=True)
        return rows

    def read(
        self, connection: Connection, parameters: Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """`rows`, for a read that is to take no write lock: on SQLite, while the connection's
        transaction has not begun, it runs in the driver's autocommit without beginning it
        (its BEGIN IMMEDIATE is the database's one write lock, held until the commit) and sees
        the latest commit; once the transaction has begun, and elsewhere, in the transaction.
        """
        sqlite = connection.dialect.name == "sqlite"
        rows, _ = self._run(connection, parameters, fetch=True, begin=not sqlite)
        return rows

    def execute(self, connection: Connection, parameters: Mapping[str, Any] | None = None) -> int:
        """Run a statement that returns no rows; its row count."""
        return self._run(connection, parameters, fetch=False)[1]

    def _run(
        self,
        connection: Connection,
        parameters: Mapping[str, Any] | None,
        fetch: bool,
        begin: bool = True,
    ) -> tuple[list[tuple[Any, ...]], int]:
        dialect = connection.dialect
        compiled = self._compiled.get(type(dialect))
        if compiled is None:
            compiled = self._compiled[type(dialect)] = self._compile(dialect)
        values = {**compiled.defaults, **parameters} if parameters else dict(compiled.defaults)
        for name, convert in compiled.binds:
            values[name] = convert(values[name])
        bound: Any = values if compiled.names is None else [values[n] for n in compiled.names]
        transaction = connection.get_transaction()
        if transaction is None:
            if begin:
                connection.begin()
        elif not transaction.is_active:  # as Connection.execute refuses it
            raise PendingRollbackError(
                "Can't reconnect until invalid transaction is rolled back.  Please rollback() "
                "fully before proceeding",
                code="8s2b",
            )
        driver = connection.connection.dbapi_connection
        if driver is None:
            raise OperationalError(compiled.sql, None, RuntimeError("connection invalidated"))
        with driver_errors(connection, compiled.sql, bound):
            cursor = driver.cursor()
            try:
                cursor.execute(compiled.sql, bound)
                fetched: list[tuple[Any, ...]] = list(cursor.fetchall()) if fetch else []
                count = cursor.rowcount
            finally:
                cursor.close()
        if fetch and compiled.results:
            converters = compiled.results
            fetched = [
                tuple(v if c is None else c(v) for c, v in zip(converters, row, strict=True))
                for row in fetched
            ]
        return fetched, count

"""The job lock: which scheduler process runs the periodic jobs, one at a time.

Several adapter nodes on one database all deliver the outbox (its rows are claimed one by
one), but retention, notifications and purges run on one node: the one holding this lock.

On PostgreSQL it is a session advisory lock (`pg_try_advisory_lock`) on a connection kept for
the purpose. PostgreSQL releases it when that session ends, also when the holder is killed
(the kernel closes its socket), and another node takes it at its next try. It is keyed by the
schema as well, so adapters sharing a database in separate schemas do not exclude each other.
On SQLite, whose processes share one file on one machine, an exclusive `flock` on a file
beside the database does the same; the kernel releases it when its process dies.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger("adapter.store.locks")

# The first half of the advisory lock's key: "this is the dk-adapter job lock" ("dkjb").
JOB_LOCK_SPACE = 0x646B6A62
_TRY_LOCK = text("SELECT pg_try_advisory_lock(:space, hashtext(current_schema()))")
_UNLOCK = text("SELECT pg_advisory_unlock(:space, hashtext(current_schema()))")
_HOLDER = text(
    "SELECT l.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = :space"
    " AND l.objid = hashtext(current_schema())::oid AND l.objsubid = 2"
)


class JobLock(Protocol):
    def acquire(self) -> bool:
        """True while this process holds the lock; takes it first when it is free."""

    def release(self) -> None:
        """Let another process take it."""


class AdvisoryLock:
    """A PostgreSQL session advisory lock, on a connection of its own."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.name = name  # shown as application_name, so an operator sees who holds it
        self._connection: Connection | None = None
        self._mutex = threading.Lock()  # jobs run in the scheduler's threads

    def acquire(self) -> bool:
        with self._mutex:
            if self._connection is not None:
                try:
                    self._connection.exec_driver_sql("SELECT 1")
                    return True
                except SQLAlchemyError as exc:
                    # The session is gone and the lock with it; another node may hold it now.
                    log.warning("job lock lost with its database connection: %s", exc)
                    self._close()
            try:
                connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            except SQLAlchemyError as exc:
                log.warning("job lock: database unreachable: %s", exc)
                return False
            try:
                connection.execute(
                    text("SELECT set_config('application_name', :n, false)"), {"n": self.name}
                )
                held = bool(connection.execute(_TRY_LOCK, {"space": JOB_LOCK_SPACE}).scalar_one())
            except SQLAlchemyError as exc:
                log.warning("job lock: not taken: %s", exc)
                connection.invalidate()
                connection.close()
                return False
            if not held:
                connection.close()
                return False
            self._connection = connection
            return True

    def _close(self) -> None:
        # Ending the session releases the lock; invalidated, so that the pool never hands
        # that session (and a lock perhaps still held on it) to anyone else.
        if self._connection is not None:
            try:
                self._connection.invalidate()
                self._connection.close()
            except SQLAlchemyError:
                pass
            self._connection = None

    def release(self) -> None:
        with self._mutex:
            if self._connection is not None:
                # Unlocked first: the server ends a closed session a moment after the client
                # closed it, and until then the lock would still be held.
                try:
                    self._connection.execute(_UNLOCK, {"space": JOB_LOCK_SPACE})
                except SQLAlchemyError as exc:
                    log.warning("job lock: not unlocked, its session ends with it: %s", exc)
            self._close()


class FileLock:
    """An exclusive flock on a file: the SQLite nodes' lock (they share one machine)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._descriptor: int | None = None
        self._mutex = threading.Lock()

    def acquire(self) -> bool:
        with self._mutex:
            if self._descriptor is not None:
                return True
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(descriptor)
                return False
            # For an operator wondering who holds it; the lock is the flock, not this text.
            os.ftruncate(descriptor, 0)
            os.write(descriptor, f"{os.getpid()}\n".encode())
            self._descriptor = descriptor
            return True

    def release(self) -> None:
        with self._mutex:
            if self._descriptor is not None:
                os.close(self._descriptor)  # closing the file releases its flock
                self._descriptor = None


class ProcessLock:
    """An in-memory database lives in one process: that process always holds the lock."""

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        pass


def job_lock(engine: Engine, name: str) -> JobLock:
    """The job lock for the database behind `engine`."""
    url = engine.url
    if url.get_backend_name() == "postgresql":
        return AdvisoryLock(engine, name)
    if url.database and url.database != ":memory:":
        return FileLock(Path(url.database + ".jobs.lock"))
    return ProcessLock()


def job_lock_holder(engine: Engine) -> tuple[int, str] | None:
    """PostgreSQL: the backend pid and application name of the job lock's holder, if any."""
    with engine.connect() as connection:
        row = connection.execute(_HOLDER, {"space": JOB_LOCK_SPACE}).one_or_none()
    return None if row is None else (int(row[0]), str(row[1]))

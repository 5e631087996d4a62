"""The database handle: one engine per process, and transactions that fail in our own terms.

Every transaction commits or rolls back as one unit. A database failure leaves it as a
profile-neutral `StoreUnavailable`, a unique-key race as `StoreConflict` (adapter.errors), so
no room above the store needs to know SQLAlchemy's exceptions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from adapter.errors import StoreConflict, StoreUnavailable
from adapter.store import audit
from adapter.store.blobs import BlobStore
from adapter.store.engine import (
    create_database_engine,
    create_reading_engine,
    is_database_file,
)
from adapter.store.repositories import Repositories, Transaction

__all__ = ["Database", "create_database_engine", "reading_session", "store_errors"]


def _first_line(exc: SQLAlchemyError) -> str:
    return str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]


@contextmanager
def store_errors() -> Iterator[None]:
    """Translate SQLAlchemy's failures raised inside the block into the store's own errors."""
    try:
        yield
    except IntegrityError as exc:
        raise StoreConflict(f"{type(exc).__name__}: {_first_line(exc)}") from exc
    except SQLAlchemyError as exc:
        raise StoreUnavailable(f"{type(exc).__name__}: {_first_line(exc)}") from exc


class Database:
    """Engine plus session factory for one process."""

    def __init__(self, url: str, blobs: BlobStore | None = None) -> None:
        self.url = url
        self.blobs = blobs  # attachment contents, for the repositories that store them
        self.engine = create_database_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite file: the pollers' reads outside the write lock (`reading`).
        self._reader = create_reading_engine(url) if is_database_file(url) else None

    def create_schema(self) -> None:
        """Migrate the database to the newest Alembic revision (see adapter.store.migrate).

        Creates the schema in an empty database, does nothing at head, adopts a database made
        by `create_all` before migrations existed, and is safe to call from several processes
        at once (the migration holds a lock).
        """
        # Imported here: Alembic (with Mako) is a fifth of a process's start-up, and only the
        # processes that migrate need it, not the scheduler or the citizen listener.
        from adapter.store import migrate

        with store_errors():
            migrate.upgrade(self.engine)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session for the store's own modules and for tests; commits at the end.

        A transaction that appended to the audit chain on PostgreSQL committed without waiting
        for the disk; it is on disk when this returns (see adapter.store.audit).
        """
        with self._transaction() as transaction:
            yield transaction.session

    @contextmanager
    def repositories(self) -> Iterator[Repositories]:
        """One transaction, seen through the repositories the profiles and business use."""
        with self._transaction() as transaction:
            yield Repositories(transaction, self.blobs)

    @contextmanager
    def _transaction(self) -> Iterator[Transaction]:
        with store_errors(), self.engine.connect() as connection:
            transaction = Transaction(connection, self._sessions)
            try:
                yield transaction
                transaction.commit()
            finally:
                transaction.close()
            if transaction.info.pop(audit.NOT_YET_DURABLE, False):
                audit.wait_until_durable(connection)

    @contextmanager
    def reading(self) -> Iterator[Repositories]:
        """Repositories for reads only: what the block writes is rolled back.

        For reads that mostly find nothing to write: the pollers, the duplicate check of every
        received ebMS message. On an SQLite file they read without the write lock that every
        transaction here takes, each statement seeing the latest commit, so such a read never
        queues a request's write behind it; elsewhere it is a transaction like any other
        (PostgreSQL's reads block no writer).
        """
        engine = self._reader if self._reader is not None else self.engine
        with store_errors(), engine.connect() as connection:  # closing it rolls back
            transaction = Transaction(connection, self._sessions)
            try:
                yield Repositories(transaction, self.blobs)
            finally:
                transaction.close()

    def checkpoint(self) -> tuple[int, int] | None:
        """SQLite file: copy the WAL's committed pages back into the database file, without
        the write lock, so no commit has to (`WAL_AUTOCHECKPOINT_PAGES`); returns the pages
        in the WAL and how many of them are now in the file. None elsewhere, or when another
        connection is checkpointing already.

        PASSIVE: it neither waits for nor blocks a writer or a reader, and stops at the oldest
        page a reader may still need; the next writer starts the WAL over once all of it is
        copied. It does not touch durability: each commit is on disk in the WAL already.
        """
        if self._reader is None:
            return None
        with store_errors(), self._reader.connect() as connection:
            busy, pages, copied = connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        return None if busy else (int(pages), int(copied))

    def ping(self) -> None:
        """Raise `StoreUnavailable` unless the database answers a trivial query."""
        with store_errors(), self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    def dispose(self) -> None:
        self.engine.dispose()
        if self._reader is not None:
            self._reader.dispose()


@contextmanager
def reading_session(url: str) -> Iterator[Session]:
    """A session for long reports that never takes SQLite's write lock (create_reading_engine)."""
    engine = create_reading_engine(url)
    try:
        with store_errors(), Session(engine) as session:
            yield session
    finally:
        engine.dispose()

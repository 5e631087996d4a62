"""SQLite's WAL is copied back into the database file by `Database.checkpoint`, outside the
write lock (every second by the scheduler: tests/test_notifications.py, with the other jobs);
a commit does it only past the backstop."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from adapter.store.db import Database
from adapter.store.engine import WAL_AUTOCHECKPOINT_PAGES
from tests.conftest import postgres_schema


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    return tmp_path / "adapter.db"


@pytest.fixture
def database(sqlite_file: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{sqlite_file}")
    db.create_schema()
    yield db
    db.dispose()


def write_rows(database: Database, n: int, tag: str) -> None:
    """`n` rows of 100 bytes in a table of the test's own, committed."""
    with database.transaction() as session:
        session.execute(text("CREATE TABLE IF NOT EXISTS scratch (x TEXT)"))
        session.execute(
            text("INSERT INTO scratch (x) VALUES (:x)"),
            [{"x": f"{tag}-{i}".ljust(100)} for i in range(n)],
        )


def test_a_checkpoint_copies_every_committed_page_when_nobody_reads(database: Database) -> None:
    write_rows(database, 500, "a")
    done = database.checkpoint()
    assert done is not None
    pages, copied = done
    assert pages > 0 and copied == pages
    # The next writer starts the WAL over: it holds only what came after.
    write_rows(database, 1, "b")
    after = database.checkpoint()
    assert after is not None and 0 < after[0] < pages


def test_a_checkpoint_stops_at_what_a_reader_still_sees_and_waits_for_no_writer(
    database: Database, sqlite_file: Path
) -> None:
    database.checkpoint()
    reader = sqlite3.connect(sqlite_file, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM outbox").fetchone()  # its snapshot
        write_rows(database, 200, "a")
        with database.transaction() as session:
            # A write transaction open, the write lock held, in this very thread.
            session.execute(text("DELETE FROM scratch WHERE x LIKE 'a-1%'"))
            during = database.checkpoint()
        assert during is not None
        pages, copied = during
        assert copied < pages  # what came after the reader's snapshot stays in the WAL
        reader.execute("COMMIT")
        after = database.checkpoint()
        assert after is not None and after[1] == after[0]
    finally:
        reader.close()


def test_a_commit_checkpoints_only_past_the_backstop(database: Database) -> None:
    with database.engine.connect() as connection:
        pages = connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one()
    assert pages == WAL_AUTOCHECKPOINT_PAGES == 10_000


def test_postgresql_has_nothing_to_checkpoint_here() -> None:
    with postgres_schema() as url:
        database = Database(url)
        try:
            assert database.checkpoint() is None
        finally:
            database.dispose()

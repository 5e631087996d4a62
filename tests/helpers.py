"""Helpers shared by test modules, one per concern, so a fix to one reaches every test."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import text

from adapter.store.db import Database


def wait_until(condition: Callable[[], bool], timeout: float = 30, interval: float = 0.1) -> None:
    """Poll `condition` until it holds; fail the test when `timeout` seconds pass first.

    For what a server does in its own time (an outbox delivery, a reload after SIGHUP). The
    deadline is generous because two cores shared by several test runs can be slow; a
    condition that holds returns at once, so a passing test does not pay for it.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"condition not reached in {timeout} s"
        time.sleep(interval)


@contextmanager
def migrated_database(url: str) -> Iterator[Database]:
    """A `Database` on `url` migrated to the newest revision, its engine closed afterwards."""
    database = Database(url)
    try:
        database.create_schema()
        yield database
    finally:
        database.dispose()


@contextmanager
def write_lock_held(database: Database, statement: str) -> Iterator[None]:
    """While the block runs, another thread's transaction has run `statement` and holds the
    write lock (on SQLite, the database's only one) until the block ends."""
    writing, done = threading.Event(), threading.Event()

    def writer() -> None:
        with database.transaction() as session:
            session.execute(text(statement))
            writing.set()
            done.wait(timeout=10)

    holder = threading.Thread(target=writer)
    holder.start()
    try:
        assert writing.wait(timeout=10)
        yield
    finally:
        done.set()
        holder.join(timeout=10)

"""The job lock (adapter.store.locks) on PostgreSQL and SQLite, and the scheduler's use of it:
one holder at a time, released when its process is killed, periodic jobs only where held."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from adapter.jobs.scheduler import JobLeader
from adapter.store.db import Database
from adapter.store.engine import is_sqlite
from adapter.store.locks import AdvisoryLock, FileLock, job_lock, job_lock_holder
from tests.conftest import postgres_schema
from tests.helpers import wait_until

HOLD_AND_WAIT = """
import sys, time
from adapter.store.db import Database
from adapter.store.locks import job_lock
lock = job_lock(Database(sys.argv[1]).engine, "holder in a subprocess")
print("held" if lock.acquire() else "not held", flush=True)
time.sleep(600)
"""


@pytest.fixture
def databases(database_url: str) -> Iterator[tuple[Database, Database]]:
    """Two handles on one database, as two nodes have."""
    first, second = Database(database_url), Database(database_url)
    first.create_schema()
    yield first, second
    first.dispose()
    second.dispose()


def test_the_lock_is_held_by_one_node_at_a_time_until_released(
    databases: tuple[Database, Database],
) -> None:
    first = job_lock(databases[0].engine, "node a")
    second = job_lock(databases[1].engine, "node b")
    assert isinstance(first, AdvisoryLock | FileLock)
    assert first.acquire()
    assert first.acquire()  # kept: asking again is no second lock
    assert not second.acquire()
    first.release()
    assert second.acquire()
    assert not first.acquire()
    second.release()


def test_a_holder_killed_with_sigkill_releases_the_lock(
    databases: tuple[Database, Database],
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_AND_WAIT, databases[0].url],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        other = job_lock(databases[1].engine, "node b")
        assert not other.acquire()
        holder.kill()
        holder.wait(timeout=30)
        wait_until(other.acquire, timeout=60)
        other.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=30)


def test_postgresql_names_the_holder_and_separate_schemas_do_not_exclude_each_other(
    databases: tuple[Database, Database],
) -> None:
    if is_sqlite(databases[0].url):
        # SQLite's lock file is the database's own neighbour: no schemas to tell apart.
        lock = job_lock(databases[0].engine, "x")
        assert lock.acquire()
        lock.release()
        return
    mine = job_lock(databases[0].engine, "dk-adapter jobs node-a:1")
    assert mine.acquire()
    assert job_lock_holder(databases[1].engine) is not None
    assert job_lock_holder(databases[1].engine)[1] == "dk-adapter jobs node-a:1"  # type: ignore[index]
    with postgres_schema() as other_schema:
        elsewhere = Database(other_schema)
        try:
            other = job_lock(elsewhere.engine, "another environment")
            assert other.acquire()
            other.release()
        finally:
            elsewhere.dispose()
    mine.release()
    # At once: unlocked before its session is closed, which the server ends a moment later.
    assert job_lock_holder(databases[1].engine) is None


def test_the_leader_runs_periodic_jobs_only_while_it_holds_the_lock(
    databases: tuple[Database, Database],
) -> None:
    taken: list[str] = []
    ran: list[str] = []
    a = JobLeader(job_lock(databases[0].engine, "node a"), lambda: taken.append("a"))
    b = JobLeader(job_lock(databases[1].engine, "node b"), lambda: taken.append("b"))
    job_a, job_b = (
        a.only_when_held(lambda: ran.append("a")),
        b.only_when_held(lambda: ran.append("b")),
    )
    job_a()
    job_b()
    job_a()
    assert ran == ["a", "a"] and taken == ["a"]  # taking it was reported once
    a.lock.release()
    assert b.check() and taken == ["a", "b"]
    job_a()
    job_b()
    assert ran == ["a", "a", "b"]
    assert not a.check() and not a.held
    b.lock.release()

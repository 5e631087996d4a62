"""SQLite's writers queue on the store's write lock (adapter.store.engine.WriteLock) instead of
polling SQLite's lock with the busy handler's sleeps: no lost write, no 'database is locked',
across threads and processes, and the lock is given up however a transaction ends. Lookups
that write nothing (accounts) do not wait for it."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from adapter.errors import StoreUnavailable
from adapter.store import engine as store_engine
from adapter.store.accounts import AccountRow
from adapter.store.db import Database
from adapter.store.engine import create_database_engine
from tests.helpers import write_lock_held

ROOT = Path(__file__).resolve().parents[2]
GEMEENTE = "00000099000000002000"
INCREMENTS = 300

# One process's share of the race: read the counter, then write it plus one, many times, with
# SQLite's busy handler off, so only the write lock keeps the writers apart.
WRITER = """
import sys
from sqlalchemy import text
from adapter.store.engine import create_database_engine
engine = create_database_engine(sys.argv[1])
with engine.connect() as connection:
    connection.connection.driver_connection.execute("PRAGMA busy_timeout=0")
    print("ready", flush=True)
    sys.stdin.readline()  # both processes start writing at once
    for _ in range(int(sys.argv[2])):
        with connection.begin():
            value = connection.execute(text("SELECT value FROM counter")).scalar_one()
            connection.execute(text("UPDATE counter SET value = :v"), {"v": value + 1})
"""


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = create_database_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE counter (value INTEGER NOT NULL)"))
        connection.execute(text("INSERT INTO counter VALUES (0)"))
    engine.dispose()
    return url


def counter(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT value FROM counter")).scalar_one())


def increment(engine: Engine, times: int) -> None:
    with engine.connect() as connection:
        # On the driver's connection: through SQLAlchemy it would begin a transaction.
        connection.connection.driver_connection.execute("PRAGMA busy_timeout=0")
        for _ in range(times):
            with connection.begin():
                value = connection.execute(text("SELECT value FROM counter")).scalar_one()
                connection.execute(text("UPDATE counter SET value = :v"), {"v": value + 1})


def test_writers_in_two_processes_lose_no_write_and_never_find_the_database_locked(
    url: str,
) -> None:
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, str(INCREMENTS)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for writer in writers:
        assert writer.stdout is not None
        assert writer.stdout.readline() == "ready\n"
    errors = [writer.communicate("go\n", timeout=120)[1] for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0], errors
    assert counter(create_database_engine(url)) == 2 * INCREMENTS


def test_writers_in_threads_of_one_process_lose_no_write(url: str) -> None:
    engine = create_database_engine(url)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            increment(engine, INCREMENTS)
        except BaseException as exc:  # reported below, with the thread's own error
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    assert counter(engine) == 4 * INCREMENTS


def test_a_rolled_back_transaction_gives_the_lock_up(url: str) -> None:
    database = Database(url)
    with pytest.raises(RuntimeError), database.transaction() as session:
        session.execute(text("UPDATE counter SET value = 41"))
        raise RuntimeError("the handler failed")
    with database.transaction() as session:  # would wait for the lock if it were still held
        session.execute(text("UPDATE counter SET value = value + 1"))
    assert counter(database.engine) == 1


def test_a_transaction_waiting_for_one_of_its_own_process_fails_instead_of_hanging(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_engine, "BUSY_TIMEOUT_MS", 200)
    database = Database(url)
    with database.transaction() as holder:
        holder.execute(text("UPDATE counter SET value = 1"))
        with (
            pytest.raises(StoreUnavailable, match="database is locked"),
            database.transaction() as waiter,
        ):
            waiter.execute(text("UPDATE counter SET value = 2"))
    assert counter(database.engine) == 1


def test_each_process_and_database_file_has_a_lock_of_its_own(tmp_path: Path) -> None:
    first = store_engine.write_lock(str(tmp_path / "a.db"))
    assert store_engine.write_lock(str(tmp_path / "a.db")) is first
    assert store_engine.write_lock(str(tmp_path / "b.db")) is not first
    assert first.path == tmp_path / "a.db.write.lock"


def test_an_accounts_lookup_waits_for_no_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_engine, "BUSY_TIMEOUT_MS", 200)
    database = Database(f"sqlite:///{tmp_path / 'adapter.db'}")
    database.create_schema()
    with database.repositories() as repositories:
        repositories.accounts.upsert([AccountRow("999993653", True, None, frozenset({GEMEENTE}))])
    with (
        write_lock_held(database, "UPDATE accounts SET email = 'a@example.org'"),
        database.repositories() as repositories,  # would fail after 200 ms under the lock
    ):
        allowed = repositories.accounts.may_receive(["999993653"], GEMEENTE, by_law=False)
    assert allowed == {"999993653": True}

"""Alembic migrations: an empty database of each kind migrated to head matches the models.

Every test gets a database of its own (a SQLite file, or a fresh PostgreSQL schema), because
each one starts from a particular state: empty, made by `create_all`, or being migrated twice.
"""

from __future__ import annotations

import argparse
import importlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, event, inspect, text

from adapter.cli import db as db_commands
from adapter.store import migrate
from adapter.store.db import Database
from adapter.store.models import Account, Base, Subscription
from tests.conftest import postgres_schema

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LZ4_MIGRATION = importlib.import_module(
    "adapter.store.migrations.versions.f2a3b4c5d6e7_lz4_for_large_values"
)
LARGE_VALUES = LZ4_MIGRATION.LARGE_VALUES
LZ4_REVISION_BEFORE = LZ4_MIGRATION.down_revision


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a new SQLite file, or a new schema in the PostgreSQL test database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'adapter.db'}"
        return
    with postgres_schema() as url:
        yield url


@pytest.fixture
def database(url: str) -> Iterator[Database]:
    database = Database(url)
    yield database
    database.dispose()


def differences(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def statements_during(engine: Engine) -> tuple[list[str], Any]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    return seen, lambda: event.remove(engine, "before_cursor_execute", record)


def add_account_with_subscription(database: Database) -> None:
    with database.transaction() as session:
        session.add(Account(bsn="999993653", active=True, email=None, updated_at=NOW))
        session.flush()
        session.add(Subscription(bsn="999993653", oin="00000099000000002000", created_at=NOW))


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608


def test_an_empty_database_migrated_to_head_matches_the_models(database: Database) -> None:
    database.create_schema()
    assert migrate.current_revision(database.engine) == migrate.head_revision()
    assert differences(database.engine) == []
    assert "alembic_version" in tables(database.engine)


def test_revisions_form_one_line_from_the_initial_one() -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    assert script.get_heads() == [migrate.head_revision()]
    assert script.get_bases() == [migrate.INITIAL_REVISION]


def test_a_second_upgrade_changes_nothing(database: Database) -> None:
    database.create_schema()
    add_account_with_subscription(database)
    seen, stop = statements_during(database.engine)
    try:
        before, after = migrate.upgrade(database.engine)
        database.create_schema()
    finally:
        stop()
    assert before == after == migrate.head_revision()
    ddl = [s for s in seen if s.split(" ", 1)[0].upper() in {"CREATE", "ALTER", "DROP", "INSERT"}]
    assert ddl == []
    assert count(database.engine, "subscriptions") == 1
    assert differences(database.engine) == []


def test_a_database_made_by_create_all_is_stamped_and_keeps_its_rows(database: Database) -> None:
    # What create_schema() did before migrations: the initial revision's tables, no
    # alembic_version.
    migrate.revision_schema(migrate.INITIAL_REVISION).create_all(database.engine)
    add_account_with_subscription(database)
    assert migrate.current_revision(database.engine) is None

    before, after = migrate.upgrade(database.engine)

    assert before == "(schema made by create_all)"
    assert after == migrate.head_revision()
    assert differences(database.engine) == []
    assert count(database.engine, "subscriptions") == 1
    with database.engine.connect() as conn:
        # Stamped at the initial revision, then only the later revisions ran.
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [
            migrate.head_revision()
        ]


def test_an_older_create_all_database_gets_its_missing_tables(database: Database) -> None:
    # Like a developer's var/adapter.db from before the Lopende Zaken and ebMS tables.
    Base.metadata.create_all(
        database.engine,
        tables=[Base.metadata.tables[name] for name in ("accounts", "subscriptions", "receipts")],
    )
    add_account_with_subscription(database)
    database.create_schema()
    assert migrate.current_revision(database.engine) == migrate.head_revision()
    assert differences(database.engine) == []
    assert count(database.engine, "subscriptions") == 1


def test_a_create_all_database_that_differs_is_refused_untouched(database: Database) -> None:
    with database.engine.begin() as conn:
        conn.execute(text("CREATE TABLE accounts (bsn VARCHAR(9) PRIMARY KEY, active BOOLEAN)"))
    with pytest.raises(migrate.SchemaMismatch, match="accounts"):
        database.create_schema()
    assert tables(database.engine) == {"accounts"}


def test_two_processes_creating_the_schema_at_once_both_succeed(url: str) -> None:
    databases = [Database(url) for _ in range(4)]
    start = threading.Barrier(len(databases))
    failures: list[BaseException] = []

    def run(database: Database) -> None:
        try:
            start.wait()
            database.create_schema()
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(d,)) for d in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert failures == []
        assert migrate.current_revision(databases[0].engine) == migrate.head_revision()
        assert differences(databases[0].engine) == []
    finally:
        for database in databases:
            database.dispose()


def test_on_sqlite_the_migration_runs_inside_begin_immediate(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'adapter.db'}")
    seen, stop = statements_during(database.engine)
    try:
        database.create_schema()
    finally:
        stop()
        database.dispose()
    begins = [i for i, s in enumerate(seen) if s.startswith("BEGIN")]
    creates = [i for i, s in enumerate(seen) if s.startswith("CREATE TABLE")]
    assert [seen[i] for i in begins] == ["BEGIN IMMEDIATE"]  # one transaction, write-locked
    assert creates and begins[0] < creates[0]
    assert seen[-1].startswith("PRAGMA foreign_key_check")


def test_on_sqlite_a_batch_migration_keeps_referencing_rows(tmp_path: Path) -> None:
    # Batch mode copies a table and drops the old one; with foreign keys on, that DROP would
    # cascade to subscriptions. The migration connection turns them off for its transaction.
    database = Database(f"sqlite:///{tmp_path / 'adapter.db'}")
    try:
        database.create_schema()
        add_account_with_subscription(database)
        with migrate.locked_connection(database.engine) as conn:
            operations = Operations(MigrationContext.configure(conn))
            with operations.batch_alter_table("accounts", recreate="always") as batch:
                batch.add_column(sa.Column("note", sa.String(10)))
        assert count(database.engine, "subscriptions") == 1
        with database.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
    finally:
        database.dispose()


def test_db_commands(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    db_commands.register(
        parser.add_subparsers(dest="command", required=True),
        lambda _args: SimpleNamespace(database_url=url),  # type: ignore[arg-type,return-value]
    )

    def run(*argv: str) -> tuple[int, str]:
        args = parser.parse_args(argv)
        code = args.func(args)
        return code, capsys.readouterr().out

    head = migrate.head_revision()
    assert run("db", "current") == (
        1,
        f"current revision: none (empty database); head is {head}: run `dk-adapter db upgrade`\n",
    )
    assert run("db", "upgrade") == (0, f"database upgraded from (empty) to {head} (head)\n")
    assert run("db", "upgrade") == (0, f"database already at head {head}\n")
    assert run("db", "current") == (0, f"current revision: {head} (head)\n")


def compressions(engine: Engine) -> dict[tuple[str, str], str]:
    """attcompression of each large value's column: 'l' lz4, '' the server's default."""
    found = {}
    with engine.connect() as conn:
        for table, column in LARGE_VALUES:
            found[(table, column)] = conn.execute(
                text(
                    "SELECT attcompression FROM pg_attribute"
                    " WHERE attrelid = to_regclass(:table) AND attname = :column"
                ),
                {"table": table, "column": column},
            ).scalar_one()
    return found


def test_on_postgresql_the_large_values_are_compressed_with_lz4_until_downgraded() -> None:
    with postgres_schema() as url:
        database = Database(url)
        try:
            database.create_schema()
            assert set(compressions(database.engine).values()) == {"l"}
            with database.engine.begin() as conn:
                command.downgrade(migrate.alembic_config(conn), LZ4_REVISION_BEFORE)
            assert set(compressions(database.engine).values()) == {""}
            database.create_schema()  # and up again
            assert set(compressions(database.engine).values()) == {"l"}
        finally:
            database.dispose()

"""Schema migrations with Alembic: `Database.create_schema()`, and what `dk-adapter db` runs.

The Alembic environment and the revisions live in `adapter/store/migrations/`, inside the
package, so an installed adapter migrates its database without a source checkout. Alembic is
configured here in code; there is no alembic.ini.

Every upgrade runs on one connection in one transaction that first takes the migration lock:
on SQLite the `BEGIN IMMEDIATE` that db.py's `begin` listener emits (the database file's write
lock), on PostgreSQL a transaction-scoped advisory lock. Several processes starting at once
therefore migrate one after the other, and the later ones find the database at head.

A new revision, after changing the models: `python -m adapter.store.migrate revision -m "what"`
(autogenerate against a scratch SQLite database at head; review the result by hand).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.autogenerate.api import AutogenContext
from alembic.config import Config as AlembicConfig
from alembic.ddl.impl import DefaultImpl
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, Index, MetaData, Table, inspect, text

from adapter.errors import AdapterError
from adapter.store.engine import BUSY_TIMEOUT_MS, create_database_engine
from adapter.store.models import UtcDateTime

MIGRATIONS = Path(__file__).resolve().with_name("migrations")
# The revision that creates the schema as `Base.metadata.create_all` made it before migrations.
INITIAL_REVISION = "4315adb302d6"
# How long an SQLite connection waits for the migration lock held by another process.
MIGRATION_WAIT_MS = 300_000
# pg_advisory_xact_lock key ("dk-migra"): one migration at a time per PostgreSQL database.
POSTGRES_LOCK_KEY = int.from_bytes(b"dk-migra", "big")


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    # UtcDateTime only converts values in Python; in the database it is a timezone-aware
    # DateTime, and revisions must not import the models (they change, revisions may not).
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


# For env.py's `context.configure`. render_as_batch: SQLite cannot ALTER most things, so
# autogenerate writes `batch_alter_table` blocks (copy-and-move on SQLite, plain ALTER elsewhere).
CONFIGURE_OPTIONS: dict[str, Any] = {
    "compare_type": True,
    "render_as_batch": True,
    "render_item": _render_item,
}


class SchemaMismatch(AdapterError, RuntimeError):
    """A database without alembic_version whose tables are not what the initial revision makes."""


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no revisions in {MIGRATIONS / 'versions'}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's revision; None when it has no alembic_version (empty, or pre-Alembic)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _driver_execute(connection: Connection, statement: str) -> None:
    # Straight on the sqlite3 connection (isolation_level None: autocommit), outside SQLAlchemy's
    # autobegin, because these PRAGMAs are silently ignored inside a transaction.
    driver: Any = connection.connection.driver_connection
    driver.execute(statement)


@contextmanager
def locked_connection(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that holds the migration lock; commits on success.

    `engine` must come from `create_database_engine`: on SQLite its `begin` listener turns
    `connection.begin()` into BEGIN IMMEDIATE, which is the lock.
    """
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch migrations recreate a table and drop the old one; with foreign keys on,
            # that DROP would run ON DELETE CASCADE and empty the referencing tables
            # (subscriptions of accounts, statuses of zaken). Checked again before commit.
            _driver_execute(connection, "PRAGMA foreign_keys=OFF")
            # Processes that start together wait for the one migrating, however long the
            # migration takes on a busy machine, instead of giving up after the usual 10 s.
            _driver_execute(connection, f"PRAGMA busy_timeout={MIGRATION_WAIT_MS}")
        try:
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": POSTGRES_LOCK_KEY}
                    )
                yield connection
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration left broken foreign keys: {broken[:5]}")
        finally:
            if sqlite:
                _driver_execute(connection, "PRAGMA foreign_keys=ON")
                _driver_execute(connection, f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def upgrade(engine: Engine) -> tuple[str | None, str | None]:
    """Migrate to head; returns (revision before, revision after). At head it changes nothing.

    "Before" is None for an empty database and "(schema made by create_all)" for one adopted
    from before migrations (see `_adopt_create_all_schema`).
    """
    with locked_connection(engine) as connection:
        config = alembic_config(connection)
        context = MigrationContext.configure(connection)
        before = context.get_current_revision()
        if before is None and _adopt_create_all_schema(connection, config):
            before = "(schema made by create_all)"
        command.upgrade(config, "head")
        after = MigrationContext.configure(connection).get_current_revision()
    return before, after


class _SchemaRecorder(DefaultImpl):
    """Stands in for Alembic's DDL implementation: keeps created tables and indexes in a MetaData.

    Anything else a revision might do (ALTER, batch, data) reaches `_exec` and fails, so this
    only serves revisions that purely create, like the initial one.
    """

    def __init__(self, context: MigrationContext) -> None:
        super().__init__(context.dialect, None, True, False, io.StringIO(), {})
        self.metadata = MetaData()

    def create_table(self, table: Table, **kw: Any) -> None:
        table.to_metadata(self.metadata)

    def create_index(self, index: Index, **kw: Any) -> None:
        if index.table is None or index.name is None:
            raise NotImplementedError(f"index without a table or a name: {index}")
        table = self.metadata.tables[index.table.name]
        Index(index.name, *(table.c[c.name] for c in index.columns), unique=index.unique)

    def _exec(self, construct: Any, *args: Any, **kw: Any) -> Any:
        raise NotImplementedError(f"not a create-only revision: {construct}")


def revision_schema(revision: str, dialect_name: str = "sqlite") -> MetaData:
    """The tables and indexes a create-only revision makes, as a MetaData (nothing executed)."""
    script = ScriptDirectory.from_config(alembic_config()).get_revision(revision)
    if script is None:
        raise LookupError(f"no revision {revision} in {MIGRATIONS / 'versions'}")
    context = MigrationContext.configure(
        dialect_name=dialect_name, opts={"as_sql": True, "output_buffer": io.StringIO()}
    )
    recorder = _SchemaRecorder(context)
    context.impl = recorder
    with Operations.context(context):
        script.module.upgrade()
    return recorder.metadata


def _adopt_create_all_schema(connection: Connection, config: AlembicConfig) -> bool:
    """Stamp a database made by `create_all` before Alembic (no alembic_version) as initial.

    Such a database (e.g. a developer's var/adapter.db) has some or all of the initial
    revision's tables. Tables it lacks are created, as `create_all` always did; then its
    tables must match the initial revision exactly (columns, types, nullability, keys,
    indexes), and only then is it stamped with the initial revision, so the upgrade that
    follows runs only the later revisions. A mismatch raises SchemaMismatch and changes nothing.
    """
    present = set(inspect(connection).get_table_names())
    if not present:
        return False
    initial = revision_schema(INITIAL_REVISION, connection.dialect.name)
    if not present & set(initial.tables):
        return False  # empty (or someone else's tables only): a plain upgrade from scratch
    missing = [table for table in initial.sorted_tables if table.name not in present]
    initial.create_all(connection, tables=missing)

    def ours(name: str | None, type_: str, _parent: Any) -> bool:
        return type_ != "table" or name in initial.tables

    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_name": ours}
    )
    differences = compare_metadata(context, initial)
    if differences:
        raise SchemaMismatch(
            "the database has no alembic_version table and its tables differ from the initial "
            f"revision {INITIAL_REVISION}, so it cannot be adopted: {differences}"
        )
    command.stamp(config, INITIAL_REVISION)
    return True


def upgrade_database(url: str) -> tuple[str | None, str | None]:
    """`upgrade` on an engine of its own for `url` (`dk-adapter db upgrade`); disposes of it."""
    engine = create_database_engine(url)
    try:
        return upgrade(engine)
    finally:
        engine.dispose()


def database_revision(url: str) -> tuple[str | None, bool]:
    """The revision of the database at `url` and whether it has any tables (`db current`).

    A database without a revision but with tables was made by `create_all` before migrations.
    """
    engine = create_database_engine(url)
    try:
        current = current_revision(engine)
        has_tables = bool(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    return current, has_tables


def make_revision(message: str) -> None:
    """Autogenerate a revision: the models against a scratch SQLite database at head."""
    with tempfile.TemporaryDirectory() as scratch:
        engine = create_database_engine(f"sqlite:///{Path(scratch) / 'scratch.db'}")
        try:
            upgrade(engine)
            with locked_connection(engine) as connection:
                command.revision(alembic_config(connection), message, autogenerate=True)
        finally:
            engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adapter.store.migrate")
    actions = parser.add_subparsers(dest="action", required=True)
    new = actions.add_parser("revision", help="autogenerate a revision from the models")
    new.add_argument("-m", "--message", required=True)
    args = parser.parse_args(argv)
    make_revision(args.message)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Alembic's environment, executed by Alembic for every command that `adapter.store.migrate` runs.

It never opens a connection of its own: `adapter.store.migrate` passes one in that is already
inside the transaction holding the migration lock (BEGIN IMMEDIATE on SQLite, an advisory lock
on PostgreSQL), so the migrations and the alembic_version update commit together or not at all.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from adapter.store.migrate import CONFIGURE_OPTIONS
from adapter.store.models import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "run migrations with `dk-adapter db upgrade` (adapter.store.migrate), which passes the "
        "locked connection; the plain `alembic` command is not configured for this project"
    )
context.configure(connection=connection, target_metadata=Base.metadata, **CONFIGURE_OPTIONS)
with context.begin_transaction():
    context.run_migrations()

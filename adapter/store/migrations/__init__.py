"""Alembic environment and revisions; run them through `adapter.store.migrate`."""

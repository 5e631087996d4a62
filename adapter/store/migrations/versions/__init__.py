"""Alembic revisions, oldest first by their `down_revision` chain (not by file name)."""

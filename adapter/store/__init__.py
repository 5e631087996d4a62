"""Persistence: SQLAlchemy models, the database handle, and repositories per concern."""

"""Retention: closed zaken disappear once their retention period has passed."""

from __future__ import annotations

from datetime import date, timedelta

from adapter.store.db import Database
from adapter.store.zaken import purge_closed


def purge_expired_zaken(database: Database, retention_days: int, today: date) -> int:
    """Delete zaken closed more than `retention_days` before `today`; returns how many."""
    with database.transaction() as session:
        return purge_closed(session, today - timedelta(days=retention_days))

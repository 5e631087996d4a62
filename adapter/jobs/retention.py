"""Retention: closed zaken disappear once their retention period has passed, ebMS
messages (with their payloads) once their CPA's PersistDuration and a margin have passed, and
WUS MessageIDs with their stored answers once the replay window has passed.
Receipts and the audit chain are never purged: they prove delivery after the messages are gone.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

from adapter.ebms.cpa import Cpa
from adapter.store.db import Database

# Digikoppeling ebMS: when the parties agreed no PersistDuration, 5 days (EB ch05). Used for
# received messages whose CPA is no longer configured.
DEFAULT_PERSIST = timedelta(days=5)


def purge_expired_zaken(database: Database, retention_days: int, today: date) -> int:
    """Delete zaken closed more than `retention_days` before `today`; returns how many."""
    with database.repositories() as repositories:
        return repositories.zaken.purge_closed(today - timedelta(days=retention_days))


def persist_durations(cpas: Iterable[Cpa], receiver_oin: str) -> dict[str, timedelta]:
    """Per CPAId: how long a message received under it is kept, our side's PersistDuration."""
    durations = {}
    for cpa in cpas:
        ours = cpa.party(receiver_oin)
        if ours is not None:
            durations[cpa.cpa_id] = ours.persist_duration
    return durations


def purge_messages(
    database: Database,
    cpas: Iterable[Cpa],
    receiver_oin: str,
    margin_days: int,
    now: datetime,
) -> tuple[int, int]:
    """Remove received and sent messages past PersistDuration + margin: (received, sent)."""
    with database.repositories() as repositories:
        return repositories.messages.purge(
            persist_durations(cpas, receiver_oin),
            DEFAULT_PERSIST,
            timedelta(days=margin_days),
            now,
        )


def purge_wus_messages(database: Database, replay_window_hours: int, now: datetime) -> int:
    """Forget WS-A MessageIDs used before the replay window: past it they count as new anyway."""
    with database.repositories() as repositories:
        return repositories.wus_messages.purge(now - timedelta(hours=replay_window_hours))

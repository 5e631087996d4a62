"""The notification queue: letters and reminders queued once, claimed by one sender at a time.

Queueing is an `INSERT … SELECT` guarded by the unique key (kind, bericht_id), so two
schedulers queueing at once store each notification once. Sending claims rows with a lease
(`status = 'sending'`, `claimed_until`) in a short transaction of its own (with `SKIP LOCKED`
on PostgreSQL), so the slow SMTP conversation never holds a database lock that intake needs,
and a crashed sender's rows become due again when the lease runs out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from adapter.store.models import (
    Account,
    Bericht,
    CitizenSettings,
    Notification,
    UtcDateTime,
    Zaak,
    ZaakStatus,
)

KIND_BERICHT = "bericht"
KIND_REMINDER = "herinnering"
KIND_ZAAK_STATUS = "zaak-status"  # queued by adapter.store.zaken when a status becomes current

PENDING, SENDING, SENT, SKIPPED, FAILED, MISSED = (
    "pending",
    "sending",
    "sent",
    "skipped",
    "failed",
    "missed",
)
# Letters that became visible longer ago than this are not queued any more: the legal norm
# is 48 hours, and the bound keeps the scan on the newest part of the visible_from index.
QUEUE_WINDOW = timedelta(days=7)
# Reminders look this far back beyond their due day, so a scheduler outage is caught up.
REMINDER_WINDOW = timedelta(days=30)
LETTER_FOLDERS = ("postvak", "archief")  # a letter in the bin gets no reminder


@dataclass(frozen=True)
class Claimed:
    """One claimed notification with what the sender needs; no letter content."""

    id: int
    bsn: str
    kind: str
    organisation_oin: str | None
    email: str | None
    active: bool
    reminders: bool
    visible_since: datetime  # the letter's visibility, or the moment the row was queued
    attempts: int
    still_relevant: bool  # a reminder for a letter opened (or binned) since is not


def _not_queued(kind: str) -> ColumnElement[bool]:
    return ~exists().where(Notification.kind == kind, Notification.bericht_id == Bericht.bericht_id)


def queue_new_letters(session: Session, now: datetime) -> int:
    """Queue one notification per letter that became visible and has none yet."""
    source = select(
        Bericht.bsn,
        literal(KIND_BERICHT),
        Bericht.bericht_id,
        literal(now, UtcDateTime()),
        literal(PENDING),
        literal(0),
    ).where(
        Bericht.visible_from <= now,
        Bericht.visible_from > now - QUEUE_WINDOW,
        _not_queued(KIND_BERICHT),
    )
    return _queue(session, source)


def queue_reminders(session: Session, now: datetime, reminder_days: int) -> int:
    """Queue a reminder for each letter unopened `reminder_days` after it became visible.

    Only for citizens with an address and reminders on (the default without a settings row).
    """
    due = now - timedelta(days=reminder_days)
    source = (
        select(
            Bericht.bsn,
            literal(KIND_REMINDER),
            Bericht.bericht_id,
            literal(now, UtcDateTime()),
            literal(PENDING),
            literal(0),
        )
        .join(Account, Account.bsn == Bericht.bsn)
        .outerjoin(CitizenSettings, CitizenSettings.bsn == Bericht.bsn)
        .where(
            Bericht.visible_from <= due,
            Bericht.visible_from > due - REMINDER_WINDOW,
            Bericht.opened_at.is_(None),
            Bericht.folder.in_(LETTER_FOLDERS),
            Account.active.is_(True),
            Account.email.is_not(None),
            or_(CitizenSettings.reminders.is_(None), CitizenSettings.reminders.is_(True)),
            _not_queued(KIND_REMINDER),
        )
    )
    return _queue(session, source)


def _queue(session: Session, source: Select[*tuple[Any, ...]]) -> int:
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(Notification)
        .from_select(
            ["bsn", "kind", "bericht_id", "created_at", "status", "attempts"],
            source,
        )
        .on_conflict_do_nothing()
    )
    result = session.execute(statement)
    return max(int(getattr(result, "rowcount", 0) or 0), 0)


def claim_due(session: Session, now: datetime, lease: timedelta, limit: int) -> list[Claimed]:
    """Lease up to `limit` due notifications to the caller, grouped by citizen (ordered by BSN)."""
    due = or_(
        and_(
            Notification.status == PENDING,
            or_(Notification.next_attempt_at.is_(None), Notification.next_attempt_at <= now),
        ),
        and_(Notification.status == SENDING, Notification.claimed_until < now),
    )
    ids = list(
        session.scalars(
            select(Notification.id)
            .where(due)
            .order_by(Notification.bsn, Notification.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not ids:
        return []
    session.execute(
        update(Notification)
        .where(Notification.id.in_(ids))
        .values(status=SENDING, claimed_until=now + lease)
    )
    rows = session.execute(
        select(
            Notification,
            Account.email,
            Account.active,
            CitizenSettings.reminders,
            Bericht.leverancier_oin,
            Bericht.visible_from,
            Bericht.opened_at,
            Bericht.folder,
            Zaak.oin.label("zaak_oin"),
        )
        .outerjoin(Account, Account.bsn == Notification.bsn)
        .outerjoin(CitizenSettings, CitizenSettings.bsn == Notification.bsn)
        .outerjoin(Bericht, Bericht.bericht_id == Notification.bericht_id)
        .outerjoin(ZaakStatus, ZaakStatus.id == Notification.zaak_status_id)
        .outerjoin(Zaak, Zaak.id == ZaakStatus.zaak_id)
        .where(Notification.id.in_(ids))
        .order_by(Notification.bsn, Notification.id)
    )
    claimed = []
    for row in rows:
        notification: Notification = row[0]
        relevant = True
        if notification.kind == KIND_REMINDER:
            relevant = row.opened_at is None and row.folder in LETTER_FOLDERS
        claimed.append(
            Claimed(
                id=notification.id,
                bsn=notification.bsn,
                kind=notification.kind,
                organisation_oin=row.leverancier_oin or row.zaak_oin,
                email=row.email,
                active=bool(row.active),
                reminders=row.reminders is not False,
                # A reminder's 48 hours start when it became due (it was queued then).
                visible_since=(
                    notification.created_at
                    if notification.kind == KIND_REMINDER
                    else row.visible_from or notification.created_at
                ),
                attempts=notification.attempts,
                still_relevant=relevant,
            )
        )
    return claimed


def mark(
    session: Session,
    ids: Sequence[int],
    status: str,
    *,
    sent_at: datetime | None = None,
    error: str | None = None,
    next_attempt_at: datetime | None = None,
    count_attempt: bool = False,
) -> None:
    """Record the outcome for claimed rows and release their lease."""
    if not ids:
        return
    values: dict[str, object] = {"status": status, "claimed_until": None}
    if sent_at is not None:
        values["sent_at"] = sent_at
    if error is not None:
        values["last_error"] = error[:2000]
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    if count_attempt:
        values["attempts"] = Notification.attempts + 1
    session.execute(update(Notification).where(Notification.id.in_(ids)).values(**values))


def sent_for(session: Session, bsn: str) -> list[Notification]:
    """A citizen's notifications, oldest first (for tests and support)."""
    return list(
        session.scalars(
            select(Notification).where(Notification.bsn == bsn).order_by(Notification.id)
        )
    )

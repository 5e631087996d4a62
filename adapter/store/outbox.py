"""The outbox: outbound ebMS messages, stored before their first attempt, and their states.

A message moves pending → (sent) → delivered, or → failed. `sent` means the peer took the
message but its Acknowledgment is still to come. Rows are claimed with SKIP LOCKED and leased
until their next retry. On PostgreSQL the claiming transaction stays open while the message is
sent (`locks_rows`), so no other node can claim it meanwhile however long the attempt takes,
and a node killed mid-attempt releases it at once (its transaction dies with it). SQLite has
no row locks: there the lease alone keeps a second process away, and a claim that died with
its process is due again when the lease runs out. Either way a message is never lost; after a
crash it may reach the peer twice (its duplicate elimination sees that).

Whether anything is due at all is a plain read (`has_due`), which a poller asks outside any
write transaction first: on SQLite a claim is a write transaction, and a claim every poll round
that finds nothing would still queue every request's write behind it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import bindparam, func, insert, make_url, select, update
from sqlalchemy.orm import Session

from adapter.store.models import OutboxAttempt, OutboxMessage, table_of

GIVEN_UP = " (opgegeven: retries of persistDuration op)"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"  # taken by the peer, its Acknowledgment still to come
    DELIVERED = "delivered"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self in (OutboxStatus.DELIVERED, OutboxStatus.FAILED)


_OUTBOX = table_of(OutboxMessage)
_ATTEMPTS = table_of(OutboxAttempt)
_WAITING = (OutboxStatus.PENDING, OutboxStatus.SENT)
# Due: waiting and its next attempt has come (a message whose chances ran out is found the same
# way, and given up by the claim).
_DUE = (_OUTBOX.c.status.in_(_WAITING), _OUTBOX.c.next_attempt_at <= bindparam("due_at"))
_ANY_DUE = select(_OUTBOX.c.id).where(*_DUE).limit(1)
_CLAIMABLE = (
    select(
        _OUTBOX.c.id,
        _OUTBOX.c.message_id,
        _OUTBOX.c.to_oin,
        _OUTBOX.c.endpoint,
        _OUTBOX.c.content_type,
        _OUTBOX.c.body,
        _OUTBOX.c.needs_ack,
        _OUTBOX.c.attempts,
        _OUTBOX.c.max_attempts,
        _OUTBOX.c.retry_interval_seconds,
        _OUTBOX.c.expires_at,
        _OUTBOX.c.last_error,
    )
    .where(*_DUE)
    .order_by(_OUTBOX.c.next_attempt_at)
    .with_for_update(skip_locked=True)
)
# Both by primary key, for rows the claim holds (row lock or SQLite's write lock).
_LEASE = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("row_id"))
    .values(attempts=_OUTBOX.c.attempts + 1, next_attempt_at=bindparam("leased_until"))
)
_STATUS = select(_OUTBOX.c.status).where(_OUTBOX.c.id == bindparam("row_id"))
_RECORD = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("row_id"))
    .values(status=bindparam("new_status"), last_error=bindparam("new_error"))
)
_GIVE_UP = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("row_id"))
    .values(status=OutboxStatus.FAILED, last_error=bindparam("given_up_because"))
)


def locks_rows(database_url: str) -> bool:
    """Whether a claimed row stays locked until the claiming transaction ends (PostgreSQL's
    FOR UPDATE); SQLite ignores FOR UPDATE and serialises writers instead."""
    return make_url(database_url).get_backend_name() == "postgresql"


@dataclass(frozen=True)
class NewOutboxMessage:
    message_id: str
    ref_to_message_id: str | None
    cpa_id: str
    to_oin: str
    endpoint: str
    action: str
    content_type: str
    body: bytes
    needs_ack: bool  # a business message is done when acknowledged; a signal when taken
    max_attempts: int
    retry_interval_seconds: int
    persist_duration: timedelta


@dataclass(frozen=True)
class DueMessage:
    """A claimed message, as plain values: the attempt runs outside any transaction."""

    id: int
    message_id: str
    to_oin: str
    endpoint: str
    content_type: str
    body: bytes
    needs_ack: bool


@dataclass(frozen=True)
class ExpiredMessage:
    message_id: str
    to_oin: str
    last_error: str


class Outbox:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, message: NewOutboxMessage, now: datetime) -> None:
        self.session.add(
            OutboxMessage(
                message_id=message.message_id,
                ref_to_message_id=message.ref_to_message_id,
                cpa_id=message.cpa_id,
                to_oin=message.to_oin,
                endpoint=message.endpoint,
                action=message.action,
                content_type=message.content_type,
                body=message.body,
                needs_ack=message.needs_ack,
                status=OutboxStatus.PENDING,
                attempts=0,
                max_attempts=message.max_attempts,
                retry_interval_seconds=message.retry_interval_seconds,
                next_attempt_at=now,
                expires_at=now + message.persist_duration,
                created_at=now,
            )
        )

    def acknowledged(self, message_id: str, from_oin: str) -> bool:
        """The peer acknowledged one of our messages: it is delivered."""
        result = self.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.message_id == message_id, OutboxMessage.to_oin == from_oin)
            .values(status=OutboxStatus.DELIVERED, last_error=None)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def refused(self, message_id: str, from_oin: str, reason: str) -> bool:
        """The peer answered one of our messages with a MessageError: it failed."""
        result = self.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.message_id == message_id, OutboxMessage.to_oin == from_oin)
            .values(status=OutboxStatus.FAILED, last_error=reason)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def resend_acknowledgment(self, ref_to: str, to_oin: str, now: datetime) -> None:
        """A duplicate arrived: the Acknowledgment of the original goes out again, unchanged."""
        self.session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.ref_to_message_id == ref_to,
                OutboxMessage.to_oin == to_oin,
                OutboxMessage.action == "Acknowledgment",
            )
            .values(
                status=OutboxStatus.PENDING,
                next_attempt_at=now,
                attempts=0,
                expires_at=now + timedelta(days=1),
            )
        )

    def has_due(self, now: datetime) -> bool:
        """Whether a claim at `now` would find anything: a message to attempt or to give up.
        Writes nothing, so it may run in `Database.reading()`, outside SQLite's write lock."""
        return self.session.execute(_ANY_DUE, {"due_at": now}).first() is not None

    def claim_due(self, now: datetime, limit: int) -> tuple[list[DueMessage], list[ExpiredMessage]]:
        """Due messages, leased until their next retry; and those whose chances ran out."""
        rows = self.session.execute(_CLAIMABLE.limit(limit), {"due_at": now}).all()
        due, expired, leases, given_up = [], [], [], []
        for row in rows:
            if now >= row.expires_at or row.attempts >= row.max_attempts:
                error = (row.last_error or "") + GIVEN_UP
                given_up.append({"row_id": row.id, "given_up_because": error})
                expired.append(ExpiredMessage(row.message_id, row.to_oin, error))
                continue
            leased_until = now + timedelta(seconds=row.retry_interval_seconds)
            leases.append({"row_id": row.id, "leased_until": leased_until})
            due.append(
                DueMessage(
                    row.id,
                    row.message_id,
                    row.to_oin,
                    row.endpoint,
                    row.content_type,
                    row.body,
                    row.needs_ack,
                )
            )
        if leases:
            self.session.execute(_LEASE, leases)
        if given_up:
            self.session.execute(_GIVE_UP, given_up)
        return due, expired

    def record_attempt(
        self, row_id: int, status: OutboxStatus, error: str | None, at: datetime | None = None
    ) -> bool:
        """The outcome of one attempt, kept in its history too; False when the message was
        final already (an asynchronous Acknowledgment was faster)."""
        # The status alone, not the row: its body (a batch's answer: 300 KB) would otherwise be
        # read and decompressed for nothing in a write transaction, on SQLite under the lock.
        current = self.session.execute(_STATUS, {"row_id": row_id}).scalar()
        if current is None:
            return False
        attempted_at = at or datetime.now(UTC)
        self.session.execute(
            insert(_ATTEMPTS).values(
                outbox_id=row_id, attempted_at=attempted_at, status=status, error=error
            )
        )
        if OutboxStatus(current).final:
            return False
        self.session.execute(_RECORD, {"row_id": row_id, "new_status": status, "new_error": error})
        return True

    def counts_by_status(self) -> dict[OutboxStatus, int]:
        """Messages per status, every status present (zero is a value too)."""
        counts = dict.fromkeys(OutboxStatus, 0)
        for status, count in self.session.execute(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        ):
            counts[OutboxStatus(status)] = count
        return counts

    def sent_message(self, message_id: str, to_oin: str) -> tuple[str, bytes] | None:
        """Content-Type and body, as they went over the wire, of the message we sent `to_oin`
        with this MessageId (to check that its Acknowledgment carries our references)."""
        row = self.session.execute(
            select(OutboxMessage.content_type, OutboxMessage.body).where(
                OutboxMessage.message_id == message_id, OutboxMessage.to_oin == to_oin
            )
        ).first()
        return None if row is None else (row.content_type, row.body)

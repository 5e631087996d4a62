"""The outbox: outbound ebMS messages, stored before their first attempt, and their states.

A message moves pending → (sent) → delivered, or → failed. `sent` means the peer took the
message but its Acknowledgment is still to come. Rows are claimed with SKIP LOCKED and leased
until their next retry. On PostgreSQL the claiming transaction stays open while the message is
sent (`locks_rows`), so no other node can claim it meanwhile however long the attempt takes,
and a node killed mid-attempt releases it at once (its transaction dies with it). SQLite has
no row locks: there the lease alone keeps a second process away, and a claim that died with
its process is due again when the lease runs out. Either way a message is never lost; after a
crash it may reach the peer twice (its duplicate elimination sees that).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from adapter.store.models import OutboxAttempt, OutboxMessage

GIVEN_UP = " (opgegeven: retries of persistDuration op)"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"  # taken by the peer, its Acknowledgment still to come
    DELIVERED = "delivered"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self in (OutboxStatus.DELIVERED, OutboxStatus.FAILED)


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

    @property
    def locks_rows(self) -> bool:
        """Whether a claimed row stays locked until the claiming transaction ends (PostgreSQL's
        FOR UPDATE); SQLite ignores FOR UPDATE and serialises writers instead."""
        return self.session.get_bind().dialect.name == "postgresql"

    def claim_due(self, now: datetime, limit: int) -> tuple[list[DueMessage], list[ExpiredMessage]]:
        """Due messages, leased until their next retry; and those whose chances ran out."""
        rows = list(
            self.session.scalars(
                select(OutboxMessage)
                .where(
                    OutboxMessage.status.in_((OutboxStatus.PENDING, OutboxStatus.SENT)),
                    OutboxMessage.next_attempt_at <= now,
                )
                .order_by(OutboxMessage.next_attempt_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        due, expired = [], []
        for row in rows:
            if now >= row.expires_at or row.attempts >= row.max_attempts:
                row.status = OutboxStatus.FAILED
                row.last_error = (row.last_error or "") + GIVEN_UP
                expired.append(ExpiredMessage(row.message_id, row.to_oin, row.last_error))
                continue
            row.attempts += 1
            row.next_attempt_at = now + timedelta(seconds=row.retry_interval_seconds)
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
        self.session.flush()
        return due, expired

    def record_attempt(
        self, row_id: int, status: OutboxStatus, error: str | None, at: datetime | None = None
    ) -> bool:
        """The outcome of one attempt, kept in its history too; False when the message was
        final already (an asynchronous Acknowledgment was faster)."""
        current = self.session.get(OutboxMessage, row_id)
        if current is None:
            return False
        self.session.add(
            OutboxAttempt(
                outbox_id=row_id,
                attempted_at=at or datetime.now(UTC),
                status=status,
                error=error,
            )
        )
        if OutboxStatus(current.status).final:
            return False
        current.status, current.last_error = status, error
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

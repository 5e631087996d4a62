"""Message administration: the ebMS messages received and sent, for `dk-adapter messages`.

Received messages are the rows of `ebms_messages` (what duplicate elimination keeps: header
values, the answer sent on the connection, the receipt's id); sent messages are the outbox,
with the history of their delivery attempts. Both are kept for the CPA's PersistDuration
plus a margin and then purged, with their payloads. Receipts and the audit chain are never
purged here: they prove what was received and answered after the messages themselves are gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from adapter.errors import AdapterError
from adapter.store.models import EbmsMessage, OutboxAttempt, OutboxMessage, StoredReceipt
from adapter.store.outbox import OutboxStatus

INBOUND, OUTBOUND = "in", "out"
# A received message is Processed once its answer and receipt are recorded (ebMS 2.0 §7).
RECEIVED, PROCESSED = "received", "processed"
INBOUND_STATUSES = (RECEIVED, PROCESSED)
STATUSES = (*INBOUND_STATUSES, *(status.value for status in OutboxStatus))
_FINAL = (OutboxStatus.DELIVERED.value, OutboxStatus.FAILED.value)


class MessageNotFound(AdapterError, LookupError):
    """No message with that MessageId (any more: it may have been purged)."""


class NotResendable(AdapterError, ValueError):
    """Only a failed outbound message can be queued again; says what state it is in."""


@dataclass(frozen=True)
class MessageFilter:
    """What `messages list` selects; None means any."""

    oin: str | None = None  # the other party: the sender of a received, receiver of a sent one
    direction: str | None = None  # INBOUND or OUTBOUND
    action: str | None = None
    status: str | None = None  # one of STATUSES
    since: datetime | None = None  # received (in) or queued (out) at or after
    until: datetime | None = None  # ... and before
    limit: int = 100


@dataclass(frozen=True)
class MessageSummary:
    direction: str
    message_id: str
    at: datetime  # received, or queued for sending
    oin: str
    action: str
    status: str
    ref_to_message_id: str | None
    attempts: int  # delivery attempts of a sent message; 0 for a received one


@dataclass(frozen=True)
class Attempt:
    at: datetime
    status: str
    error: str | None


@dataclass(frozen=True)
class Received:
    """A received message as kept, with its receipt and what was sent back for it."""

    summary: MessageSummary
    cpa_id: str
    conversation_id: str
    receipt_xml: str | None
    sync_answer: bytes | None  # the Acknowledgment sent on the connection (mshSignalsOnly)
    answers: list[MessageSummary]  # outbox messages referring to it


@dataclass(frozen=True)
class Sent:
    """A sent (or still queued) message: its whole body and every delivery attempt."""

    summary: MessageSummary
    cpa_id: str
    endpoint: str
    content_type: str
    body: bytes
    max_attempts: int
    next_attempt_at: datetime
    expires_at: datetime
    last_error: str | None
    history: list[Attempt]
    receipt_xml: str | None  # the receipt of the received message it answers, if any


def _received_summary(row: EbmsMessage) -> MessageSummary:
    return MessageSummary(
        INBOUND,
        row.message_id,
        row.received_at,
        row.from_oin,
        row.action,
        PROCESSED if row.receipt_id else RECEIVED,
        None,
        0,
    )


def _sent_summary(row: OutboxMessage) -> MessageSummary:
    return MessageSummary(
        OUTBOUND,
        row.message_id,
        row.created_at,
        row.to_oin,
        row.action,
        row.status,
        row.ref_to_message_id,
        row.attempts,
    )


class Messages:
    """The message administration repository of one transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # --- reading -----------------------------------------------------------------------------

    def listing(self, wanted: MessageFilter) -> list[MessageSummary]:
        """Newest first, at most `wanted.limit`, received and sent together."""
        found: list[MessageSummary] = []
        if wanted.direction in (None, INBOUND) and wanted.status in (None, *INBOUND_STATUSES):
            query = select(EbmsMessage)
            if wanted.oin:
                query = query.where(EbmsMessage.from_oin == wanted.oin)
            if wanted.action:
                query = query.where(EbmsMessage.action == wanted.action)
            if wanted.status == RECEIVED:
                query = query.where(EbmsMessage.receipt_id.is_(None))
            elif wanted.status == PROCESSED:
                query = query.where(EbmsMessage.receipt_id.is_not(None))
            if wanted.since:
                query = query.where(EbmsMessage.received_at >= wanted.since)
            if wanted.until:
                query = query.where(EbmsMessage.received_at < wanted.until)
            query = query.order_by(EbmsMessage.received_at.desc(), EbmsMessage.id.desc())
            found += map(_received_summary, self.session.scalars(query.limit(wanted.limit)))
        if wanted.direction in (None, OUTBOUND) and wanted.status not in INBOUND_STATUSES:
            sent = select(OutboxMessage)
            if wanted.oin:
                sent = sent.where(OutboxMessage.to_oin == wanted.oin)
            if wanted.action:
                sent = sent.where(OutboxMessage.action == wanted.action)
            if wanted.status:
                sent = sent.where(OutboxMessage.status == wanted.status)
            if wanted.since:
                sent = sent.where(OutboxMessage.created_at >= wanted.since)
            if wanted.until:
                sent = sent.where(OutboxMessage.created_at < wanted.until)
            sent = sent.order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
            found += map(_sent_summary, self.session.scalars(sent.limit(wanted.limit)))
        # A sent answer carries the moment of the message it answers; it still came after it.
        found.sort(key=lambda m: (m.at, m.direction == OUTBOUND), reverse=True)
        return found[: wanted.limit]

    def _receipt_xml(self, receipt_id: str | None) -> str | None:
        if receipt_id is None:
            return None
        stored = self.session.get(StoredReceipt, receipt_id)
        return stored.xml if stored is not None else None

    def show(self, message_id: str) -> list[Received | Sent]:
        """Every message with this MessageId: received ones (one per sender) and a sent one."""
        shown: list[Received | Sent] = []
        for row in self.session.scalars(
            select(EbmsMessage).where(EbmsMessage.message_id == message_id)
        ):
            answers = self.session.scalars(
                select(OutboxMessage)
                .where(
                    OutboxMessage.ref_to_message_id == row.message_id,
                    OutboxMessage.to_oin == row.from_oin,
                )
                .order_by(OutboxMessage.created_at, OutboxMessage.id)
            )
            shown.append(
                Received(
                    _received_summary(row),
                    row.cpa_id,
                    row.conversation_id,
                    self._receipt_xml(row.receipt_id),
                    row.answer_body,
                    [_sent_summary(answer) for answer in answers],
                )
            )
        sent = self.session.scalars(
            select(OutboxMessage).where(OutboxMessage.message_id == message_id)
        ).one_or_none()
        if sent is not None:
            history = [
                Attempt(a.attempted_at, a.status, a.error)
                for a in self.session.scalars(
                    select(OutboxAttempt)
                    .where(OutboxAttempt.outbox_id == sent.id)
                    .order_by(OutboxAttempt.attempted_at, OutboxAttempt.id)
                )
            ]
            answered = (
                self.session.scalars(
                    select(EbmsMessage.receipt_id).where(
                        EbmsMessage.from_oin == sent.to_oin,
                        EbmsMessage.message_id == sent.ref_to_message_id,
                    )
                ).one_or_none()
                if sent.ref_to_message_id
                else None
            )
            shown.append(
                Sent(
                    _sent_summary(sent),
                    sent.cpa_id,
                    sent.endpoint,
                    sent.content_type,
                    sent.body,
                    sent.max_attempts,
                    sent.next_attempt_at,
                    sent.expires_at,
                    sent.last_error,
                    history,
                    self._receipt_xml(answered),
                )
            )
        if not shown:
            raise MessageNotFound(f"geen bericht met MessageId {message_id} (of al opgeruimd)")
        return shown

    # --- changing ----------------------------------------------------------------------------

    def resend(self, message_id: str, now: datetime) -> MessageSummary:
        """Queue a failed outbound message again, as it was (same MessageId, so a peer that did
        receive it drops the copy): all its attempts again, for as long a PersistDuration."""
        row = self.session.scalars(
            select(OutboxMessage).where(OutboxMessage.message_id == message_id)
        ).one_or_none()
        if row is None:
            raise MessageNotFound(f"geen verzonden bericht met MessageId {message_id}")
        if row.status != OutboxStatus.FAILED:
            raise NotResendable(
                f"bericht {message_id} is {row.status}: alleen een mislukt (failed) bericht "
                "kan opnieuw worden verzonden"
            )
        window = row.expires_at - row.created_at
        row.status = OutboxStatus.PENDING
        row.attempts = 0
        row.next_attempt_at = now
        row.expires_at = now + window
        row.last_error = None
        self.session.flush()
        return _sent_summary(row)

    def purge(
        self,
        persist: Mapping[str, timedelta],
        fallback: timedelta,
        margin: timedelta,
        now: datetime,
    ) -> tuple[int, int]:
        """Delete what has outlived its PersistDuration plus `margin`; (received, sent) counts.

        A received message is kept for the PersistDuration of its CPA (`persist`, by CPAId;
        `fallback` for a CPA no longer configured), counted from its receipt. A sent message
        is kept until its own expiry (queued + PersistDuration) and only once it is final
        (delivered or failed). Receipts and audit entries stay.
        """
        received = 0
        cpa_ids = list(self.session.scalars(select(EbmsMessage.cpa_id).distinct()))
        for cpa_id in cpa_ids:
            cutoff = now - persist.get(cpa_id, fallback) - margin
            result: Any = self.session.execute(
                delete(EbmsMessage)
                .where(EbmsMessage.cpa_id == cpa_id, EbmsMessage.received_at < cutoff)
                .execution_options(synchronize_session=False)
            )
            received += max(int(result.rowcount or 0), 0)
        done = select(OutboxMessage.id).where(
            OutboxMessage.status.in_(_FINAL), OutboxMessage.expires_at < now - margin
        )
        # The history first, explicitly: SQLite cascades only with foreign keys switched on.
        self.session.execute(
            delete(OutboxAttempt)
            .where(OutboxAttempt.outbox_id.in_(done))
            .execution_options(synchronize_session=False)
        )
        sent: Any = self.session.execute(
            delete(OutboxMessage)
            .where(OutboxMessage.id.in_(done))
            .execution_options(synchronize_session=False)
        )
        return received, max(int(sent.rowcount or 0), 0)

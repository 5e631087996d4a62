"""Received ebMS messages, by sender and MessageId, with the answer each got.

The unique (sender, MessageId) key is what makes duplicate elimination safe under concurrent
copies: the second insert fails (`StoreConflict`) and its request answers with the first's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapter.store.models import EbmsMessage


@dataclass(frozen=True)
class StoredAnswer:
    """What a received message was answered on its own connection (None: asynchronously)."""

    content_type: str | None
    body: bytes | None


class EbmsMessages:
    def __init__(self, session: Session) -> None:
        self.session = session
        # Messages claimed in this transaction, so recording their answer needs no query.
        self._claimed: dict[tuple[str, str], EbmsMessage] = {}

    def _find(self, from_oin: str, message_id: str) -> EbmsMessage | None:
        return self.session.scalars(
            select(EbmsMessage).where(
                EbmsMessage.from_oin == from_oin, EbmsMessage.message_id == message_id
            )
        ).one_or_none()

    def answer_of(self, from_oin: str, message_id: str) -> StoredAnswer | None:
        """The stored answer of a message seen before, or None for a new message."""
        stored = self._find(from_oin, message_id)
        if stored is None:
            return None
        return StoredAnswer(stored.answer_content_type, stored.answer_body)

    def claim(
        self,
        from_oin: str,
        message_id: str,
        cpa_id: str,
        conversation_id: str,
        action: str,
        received_at: datetime,
    ) -> None:
        """Record the message before any work is done; a concurrent copy fails here."""
        claimed = EbmsMessage(
            from_oin=from_oin,
            message_id=message_id,
            cpa_id=cpa_id,
            conversation_id=conversation_id,
            action=action,
            received_at=received_at,
        )
        self.session.add(claimed)
        self.session.flush()
        self._claimed[(from_oin, message_id)] = claimed

    def record_answer(
        self,
        from_oin: str,
        message_id: str,
        receipt_id: str,
        answer: StoredAnswer,
    ) -> None:
        stored = self._claimed.get((from_oin, message_id)) or self._find(from_oin, message_id)
        if stored is None:
            raise LookupError(f"ebMS message {message_id} of {from_oin} was not claimed")
        stored.receipt_id = receipt_id
        stored.answer_content_type, stored.answer_body = answer.content_type, answer.body

    def status_of(self, from_oin: str, message_id: str) -> tuple[str, datetime] | None:
        """ebMS messageStatus (Received or Processed) and time of receipt of a message
        `from_oin` sent us, or None when that party sent no such message (StatusRequest).

        Keyed on the sender: a party asking about another party's MessageId learns nothing.
        Processed once its answer and receipt are recorded; Received while only claimed. The
        claim and the answer commit together today, so others see Processed once it exists.
        """
        stored = self._find(from_oin, message_id)
        if stored is None:
            return None
        return ("Processed" if stored.receipt_id else "Received"), stored.received_at

"""Received ebMS messages, by sender and MessageId, with the answer each got.

The unique (sender, MessageId) key is what makes duplicate elimination safe under concurrent
copies: the second insert fails (`StoreConflict`) and its request answers with the first's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from adapter.store.models import EbmsMessage, table_of

_MESSAGES = table_of(EbmsMessage)


@dataclass(frozen=True)
class StoredAnswer:
    """What a received message was answered on its own connection (None: asynchronously)."""

    content_type: str | None
    body: bytes | None


class EbmsMessages:
    def __init__(self, session: Session) -> None:
        self.session = session

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
        answered: tuple[str, StoredAnswer] | None = None,
    ) -> None:
        """Record the message, and with `answered` its receipt id and answer; a concurrent
        copy fails here. One INSERT, not the ORM's INSERT and then an UPDATE with the answer
        (a batch's Acknowledgment: 130 KB), which on SQLite wrote the row twice under the
        database's write lock."""
        receipt_id, answer = answered or (None, StoredAnswer(None, None))
        self.session.execute(
            insert(_MESSAGES).values(
                from_oin=from_oin,
                message_id=message_id,
                cpa_id=cpa_id,
                conversation_id=conversation_id,
                action=action,
                received_at=received_at,
                receipt_id=receipt_id,
                answer_content_type=answer.content_type,
                answer_body=answer.body,
            )
        )

    def record_answer(
        self,
        from_oin: str,
        message_id: str,
        receipt_id: str,
        answer: StoredAnswer,
    ) -> None:
        """The answer of a message claimed without one."""
        stored = self._find(from_oin, message_id)
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

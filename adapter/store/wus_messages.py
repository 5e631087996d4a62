"""WS-A MessageIDs organisations used on the WUS services, with the answer each request got.

Replay protection (adapter.soap.replay) claims a MessageID before its request is processed, in
the transaction that processes it. The unique (sender, MessageID) key makes that safe under
concurrent copies: the second insert waits for the first transaction and then fails
(`StoreConflict`), and its request, run again, finds the first one's answer. A refused request
rolls its claim back with everything else, so only accepted requests keep one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from adapter.errors import StoreConflict
from adapter.store.models import WusMessage, table_of

# The longest MessageID a claim can hold: the width of wus_messages.message_id.
MESSAGE_ID_LENGTH = 255


@dataclass(frozen=True)
class EarlierRequest:
    """An accepted request that used the MessageID within the window, and its answer."""

    message_id: str
    service: str
    body_hash: str
    received_at: datetime
    receipt_id: str
    answer: bytes


_MESSAGES = table_of(WusMessage)
_FIND = select(
    _MESSAGES.c.id,
    _MESSAGES.c.service,
    _MESSAGES.c.body_hash,
    _MESSAGES.c.received_at,
    _MESSAGES.c.receipt_id,
    _MESSAGES.c.answer,
).where(
    _MESSAGES.c.sender_oin == bindparam("claim_sender"),
    _MESSAGES.c.message_id == bindparam("claim_message_id"),
)
_INSERT = insert(_MESSAGES)
# Conditional: a concurrent take-over holds the row's lock until it commits, and then its
# newer time fails ours.
_TAKE_OVER = (
    update(_MESSAGES)
    .where(
        _MESSAGES.c.id == bindparam("claim_row"),
        _MESSAGES.c.received_at < bindparam("claim_seen_since"),
    )
    .values(
        service=bindparam("claim_service"),
        body_hash=bindparam("claim_body_hash"),
        received_at=bindparam("claim_received_at"),
        receipt_id=None,
        answer=None,
    )
)
_RECORD_ANSWER = (
    update(_MESSAGES)
    .where(
        _MESSAGES.c.sender_oin == bindparam("claim_sender"),
        _MESSAGES.c.message_id == bindparam("claim_message_id"),
    )
    .values(receipt_id=bindparam("answer_receipt"), answer=bindparam("answer_bytes"))
)


class WusMessages:
    """The WUS MessageID repository of one transaction (Core statements: one or two per
    claim, one for the answer)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._claimed: set[tuple[str, str]] = set()  # claimed in this transaction

    def claim(
        self,
        sender_oin: str,
        message_id: str,
        service: str,
        body_hash: str,
        received_at: datetime,
        seen_since: datetime,
    ) -> EarlierRequest | None:
        """Claim the MessageID for this request, or return the earlier request holding it.

        A request that used it before `seen_since` no longer counts: its row is taken over.
        Raises `StoreConflict` when a concurrent request claimed it first (run again).
        """
        key = {"claim_sender": sender_oin, "claim_message_id": message_id}
        stored = self.session.execute(_FIND, key).one_or_none()
        if stored is None:
            # A concurrent copy's insert fails here on the unique key, not at commit.
            self.session.execute(
                _INSERT,
                {
                    "sender_oin": sender_oin,
                    "message_id": message_id,
                    "service": service,
                    "body_hash": body_hash,
                    "received_at": received_at,
                },
            )
        elif stored.received_at >= seen_since and stored.answer is not None:
            return EarlierRequest(
                message_id=message_id,
                service=stored.service,
                body_hash=stored.body_hash,
                received_at=stored.received_at,
                receipt_id=stored.receipt_id or "",
                answer=stored.answer,
            )
        else:
            taken: Any = self.session.execute(
                _TAKE_OVER,
                {
                    "claim_row": stored.id,
                    "claim_seen_since": seen_since,
                    "claim_service": service,
                    "claim_body_hash": body_hash,
                    "claim_received_at": received_at,
                },
            )
            if taken.rowcount != 1:
                raise StoreConflict(f"wsa:MessageID {message_id} is tegelijk opnieuw gebruikt")
        self._claimed.add((sender_oin, message_id))
        return None

    def record_answer(
        self, sender_oin: str, message_id: str, receipt_id: str, answer: bytes
    ) -> None:
        """The answer of the request that claimed the MessageID in this transaction."""
        if (sender_oin, message_id) not in self._claimed:
            raise LookupError(f"WS-A MessageID {message_id} of {sender_oin} was not claimed")
        self.session.execute(
            _RECORD_ANSWER,
            {
                "claim_sender": sender_oin,
                "claim_message_id": message_id,
                "answer_receipt": receipt_id,
                "answer_bytes": answer,
            },
        )

    def purge(self, before: datetime) -> int:
        """Forget MessageIDs last used before `before` (past the window); returns how many."""
        removed: Any = self.session.execute(
            delete(_MESSAGES).where(_MESSAGES.c.received_at < before)
        )
        return max(int(removed.rowcount or 0), 0)

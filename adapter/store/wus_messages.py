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

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from adapter.errors import StoreConflict
from adapter.store.models import WusMessage

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


class WusMessages:
    """The WUS MessageID repository of one transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session
        # Claimed in this transaction, so recording the answer needs no query.
        self._claimed: dict[tuple[str, str], WusMessage] = {}

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
        stored = self.session.scalars(
            select(WusMessage).where(
                WusMessage.sender_oin == sender_oin, WusMessage.message_id == message_id
            )
        ).one_or_none()
        if stored is None:
            claimed = WusMessage(
                sender_oin=sender_oin,
                message_id=message_id,
                service=service,
                body_hash=body_hash,
                received_at=received_at,
            )
            self.session.add(claimed)
            self.session.flush()  # a concurrent copy's insert fails here, not at commit
        elif stored.received_at >= seen_since and stored.answer is not None:
            return EarlierRequest(
                message_id=stored.message_id,
                service=stored.service,
                body_hash=stored.body_hash,
                received_at=stored.received_at,
                receipt_id=stored.receipt_id or "",
                answer=stored.answer,
            )
        else:
            # Past the window: take the row over, unless a concurrent request did so first
            # (it holds the row's lock until it commits, and then its newer time fails ours).
            taken: Any = self.session.execute(
                update(WusMessage)
                .where(WusMessage.id == stored.id, WusMessage.received_at < seen_since)
                .values(
                    service=service,
                    body_hash=body_hash,
                    received_at=received_at,
                    receipt_id=None,
                    answer=None,
                )
                .execution_options(synchronize_session=False)
            )
            if taken.rowcount != 1:
                raise StoreConflict(f"wsa:MessageID {message_id} is tegelijk opnieuw gebruikt")
            self.session.expire(stored)
            claimed = stored
        self._claimed[(sender_oin, message_id)] = claimed
        return None

    def record_answer(
        self, sender_oin: str, message_id: str, receipt_id: str, answer: bytes
    ) -> None:
        """The answer of the request that claimed the MessageID in this transaction."""
        claimed = self._claimed.get((sender_oin, message_id))
        if claimed is None:
            raise LookupError(f"WS-A MessageID {message_id} of {sender_oin} was not claimed")
        claimed.receipt_id = receipt_id
        claimed.answer = answer

    def purge(self, before: datetime) -> int:
        """Forget MessageIDs last used before `before` (past the window); returns how many."""
        removed: Any = self.session.execute(
            delete(WusMessage)
            .where(WusMessage.received_at < before)
            .execution_options(synchronize_session=False)
        )
        return max(int(removed.rowcount or 0), 0)

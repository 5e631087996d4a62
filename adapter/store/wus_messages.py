"""WS-A MessageIDs organisations used on the WUS services, with the answer each request got.

Replay protection (adapter.soap.replay) looks a MessageID up before its request is processed
(`earlier`), and claims it together with the request's answer as the transaction's last write
but the receipt (`record`). The unique (sender, MessageID) key makes that safe under
concurrent copies: both process, the second's insert waits for the first transaction and then
fails (`StoreConflict`), and its request, run again, finds the first one's answer. A refused
request writes no claim, so only accepted requests keep one. Looked up last, the claim would
begin the transaction: on SQLite the database's one write lock would then be held through the
handler, the signing and the answer's writing, while every other writer waited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from adapter.errors import StoreConflict
from adapter.store.engine import DriverStatement
from adapter.store.models import WusMessage, table_of
from adapter.store.transaction import InUnit, Transaction

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


# Core statements on the driver (adapter.store.engine.DriverStatement): one read before the
# request is handled, one write with its answer.
_MESSAGES = table_of(WusMessage)
_FIND = DriverStatement(
    select(
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
)
# `inline`: the id is the database's; nothing is read back (no RETURNING).
_INSERT = DriverStatement(
    insert(_MESSAGES).inline(), [column.key for column in _MESSAGES.c if column.key != "id"]
)
# Conditional: a concurrent take-over holds the row's lock until it commits, and then its
# newer time fails ours.
_TAKE_OVER = DriverStatement(
    update(_MESSAGES)
    .where(
        _MESSAGES.c.id == bindparam("claim_row"),
        _MESSAGES.c.received_at < bindparam("claim_seen_since"),
    )
    .values(
        service=bindparam("claim_service"),
        body_hash=bindparam("claim_body_hash"),
        received_at=bindparam("claim_received_at"),
        receipt_id=bindparam("claim_receipt"),
        answer=bindparam("claim_answer"),
    )
)


class WusMessages(InUnit):
    """The WUS MessageID repository of one transaction."""

    def __init__(self, unit: Session | Transaction) -> None:
        super().__init__(unit)
        # What `earlier` found per (sender, MessageID): the row a claim takes over, or None.
        self._looked_up: dict[tuple[str, str], int | None] = {}

    def earlier(
        self, sender_oin: str, message_id: str, seen_since: datetime
    ) -> EarlierRequest | None:
        """The accepted request that used the MessageID since `seen_since`, whose answer a
        repeat gets; None for a new use (never seen, or last used before the window: `record`
        then takes its row over).

        A read that takes no write lock (`DriverStatement.read`), as the accounts lookup.
        """
        connection = self.connection
        key = {"claim_sender": sender_oin, "claim_message_id": message_id}
        found = _FIND.read(connection, key)
        if not found:
            self._looked_up[(sender_oin, message_id)] = None
            return None
        row, service, body_hash, received_at, receipt_id, answer = found[0]
        self._looked_up[(sender_oin, message_id)] = row
        if received_at >= seen_since and answer is not None:
            return EarlierRequest(
                message_id, service, body_hash, received_at, receipt_id or "", answer
            )
        return None

    def record(
        self,
        sender_oin: str,
        message_id: str,
        service: str,
        body_hash: str,
        received_at: datetime,
        seen_since: datetime,
        receipt_id: str,
        answer: bytes,
    ) -> None:
        """Claim the MessageID for this request, with its answer, after `earlier` found no
        earlier use. Raises `StoreConflict` when a concurrent request claimed it first: run
        the request again, and `earlier` finds that one."""
        key = (sender_oin, message_id)
        if key not in self._looked_up:
            raise LookupError(f"WS-A MessageID {message_id} of {sender_oin} was not looked up")
        row = self._looked_up[key]
        values: dict[str, Any] = {"service": service, "body_hash": body_hash}
        if row is None:
            # A concurrent copy's insert fails here on the unique key, not at commit.
            _INSERT.execute(
                self.connection,
                {
                    **values,
                    "sender_oin": sender_oin,
                    "message_id": message_id,
                    "received_at": received_at,
                    "receipt_id": receipt_id,
                    "answer": answer,
                },
            )
            return
        taken = _TAKE_OVER.execute(
            self.connection,
            {
                "claim_row": row,
                "claim_seen_since": seen_since,
                "claim_service": service,
                "claim_body_hash": body_hash,
                "claim_received_at": received_at,
                "claim_receipt": receipt_id,
                "claim_answer": answer,
            },
        )
        if taken != 1:
            raise StoreConflict(f"wsa:MessageID {message_id} is tegelijk opnieuw gebruikt")

    def purge(self, before: datetime) -> int:
        """Forget MessageIDs last used before `before` (past the window); returns how many."""
        removed: Any = self.session.execute(
            delete(_MESSAGES).where(_MESSAGES.c.received_at < before)
        )
        return max(int(removed.rowcount or 0), 0)

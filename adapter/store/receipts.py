"""Stored receipts: every Afleverbevestiging the adapter has signed."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from adapter.receipts import Receipt
from adapter.store import audit
from adapter.store.models import ReceiptOutcome, StoredReceipt, table_of
from adapter.store.transaction import Transaction, connection_of

# One INSERT per receipt, without the ORM's unit of work, run on the driver (every column is
# given; see adapter.store.engine.DriverStatement), taking the audit chain's lock with it.
_INSERT = audit.InsertTakingChainLock(table_of(StoredReceipt))


def save_receipt(session: Session | Transaction, receipt: Receipt, signed: bytes) -> None:
    """Store the signed receipt (its bytes, as the signer wrote them) and append it to the
    audit chain, in the caller's transaction.

    The chain's lock is taken here and held until the caller commits: call this as the last
    thing before the commit, so nothing else runs while other writers wait.
    """
    outcome = receipt.outcome
    row: dict[str, Any] = {
        "receipt_id": receipt.receipt_id,
        "request_id": receipt.request_id,
        "sender_oin": receipt.sender_oin,
        "receiver_oin": receipt.receiver_oin,
        "received_at": receipt.received_at,
        "message_ref": receipt.message_ref,
        "service": receipt.service,
        "operation": receipt.operation,
        "outcome": ReceiptOutcome.BERICHTEN
        if outcome.berichten
        else (ReceiptOutcome.ACCEPTED if outcome.accepted else ReceiptOutcome.REFUSED),
        "outcome_code": outcome.code,
        "xml": signed.decode("utf-8"),
    }
    record = audit.Record.of(row)  # hashed before the lock is taken
    session.flush()  # the caller's rows are written before the chain's lock, not under it
    connection = connection_of(session)
    _INSERT.execute(connection, session.info, row)
    audit.append_on(connection, session.info, record, locked=True)


class Receipts:
    """The receipts repository of one transaction."""

    def __init__(self, session: Session | Transaction) -> None:
        self.session = session  # a Transaction: no session is made for a receipt

    def save(self, receipt: Receipt, signed: bytes) -> None:
        """See `save_receipt`: the last call before commit."""
        save_receipt(self.session, receipt, signed)

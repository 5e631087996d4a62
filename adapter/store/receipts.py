"""Stored receipts: every Afleverbevestiging the adapter has signed."""

from __future__ import annotations

from typing import Any

from lxml import etree
from sqlalchemy import insert
from sqlalchemy.orm import Session

from adapter.receipts import Receipt
from adapter.store import audit
from adapter.store.models import ReceiptOutcome, StoredReceipt, table_of

# Core: one INSERT per receipt, without the ORM's unit of work.
_INSERT = insert(table_of(StoredReceipt))


def save_receipt(session: Session, receipt: Receipt, signed: etree._Element) -> None:
    """Store the signed receipt and append it to the audit chain, in the caller's transaction.

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
        "xml": etree.tostring(signed, encoding="unicode"),
    }
    record = audit.Record.of(row)  # hashed before the lock is taken
    session.connection().execute(_INSERT, row)
    audit.append(session, record)


class Receipts:
    """The receipts repository of one transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def save(self, receipt: Receipt, signed: etree._Element) -> None:
        """See `save_receipt`: the last call before commit."""
        save_receipt(self.session, receipt, signed)

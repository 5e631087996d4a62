"""Stored receipts: every Afleverbevestiging the adapter has signed."""

from __future__ import annotations

from lxml import etree
from sqlalchemy.orm import Session

from adapter.receipts import Receipt
from adapter.store.models import StoredReceipt


def save_receipt(session: Session, receipt: Receipt, signed: etree._Element) -> None:
    outcome = receipt.outcome
    session.add(
        StoredReceipt(
            receipt_id=receipt.receipt_id,
            request_id=receipt.request_id,
            sender_oin=receipt.sender_oin,
            receiver_oin=receipt.receiver_oin,
            received_at=receipt.received_at,
            message_ref=receipt.message_ref,
            service=receipt.service,
            operation=receipt.operation,
            outcome="Berichten"
            if outcome.berichten
            else ("Geaccepteerd" if outcome.accepted else "Geweigerd"),
            outcome_code=outcome.code,
            xml=etree.tostring(signed, encoding="unicode"),
        )
    )

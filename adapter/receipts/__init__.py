"""Signed delivery receipts (Afleverbevestiging): build, sign, verify."""

from adapter.receipts.model import BerichtUitkomst, Outcome, Receipt, from_element, to_element
from adapter.receipts.signing import (
    ReceiptInvalid,
    ReceiptSigner,
    VerifiedReceipt,
    find_receipt,
    verify,
)

__all__ = [
    "BerichtUitkomst",
    "Outcome",
    "Receipt",
    "ReceiptInvalid",
    "ReceiptSigner",
    "VerifiedReceipt",
    "find_receipt",
    "from_element",
    "to_element",
    "verify",
]

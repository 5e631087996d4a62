"""The Afleverbevestiging as a value, and its XML form (`xsd/afleverbevestiging.xsd`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from lxml import etree

from adapter.xmltime import utc_millis

NS = "urn:mijnoverheid-adapter:afleverbevestiging:1"
_A = f"{{{NS}}}"
ROOT = f"{_A}Afleverbevestiging"


@dataclass(frozen=True)
class BerichtUitkomst:
    """The VerwerkingsCode one Bericht of a batch got."""

    bericht_id: str
    verwerkingscode: str
    reden: str | None = None


@dataclass(frozen=True)
class Outcome:
    """Geaccepteerd, Geweigerd (code + reason), or a code per Bericht of a batch."""

    accepted: bool
    code: str | None = None
    reason: str | None = None
    berichten: tuple[BerichtUitkomst, ...] = ()

    @classmethod
    def accept(cls) -> Outcome:
        return cls(accepted=True)

    @classmethod
    def reject(cls, code: str, reason: str) -> Outcome:
        return cls(accepted=False, code=code, reason=reason)


@dataclass(frozen=True)
class Receipt:
    """Everything an Afleverbevestiging proves about one request."""

    request_id: str
    receiver_oin: str
    sender_oin: str
    received_at: datetime
    message_ref: str | None
    service: str
    operation: str
    body_hash: str
    outcome: Outcome
    part_hashes: tuple[tuple[str, str], ...] = ()
    receipt_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def xml_id(self) -> str:
        # xs:ID may not start with a digit, a UUID may.
        return f"AB-{self.receipt_id}"


def to_element(receipt: Receipt) -> etree._Element:
    """The unsigned Afleverbevestiging element."""
    root = etree.Element(ROOT, nsmap={None: NS})
    root.set("Id", receipt.xml_id)

    def add(parent: etree._Element, name: str, text: str | None) -> etree._Element:
        child = etree.SubElement(parent, f"{_A}{name}")
        if text:  # an empty element stays <X/>, as receipts have always been written
            child.text = text
        return child

    add(root, "BevestigingID", receipt.receipt_id)
    add(root, "RequestID", receipt.request_id)
    add(root, "Ontvanger", receipt.receiver_oin)
    add(root, "Afzender", receipt.sender_oin)
    add(root, "TijdstipOntvangst", utc_millis(receipt.received_at))
    add(root, "BerichtReferentie", receipt.message_ref)
    add(root, "Dienst", receipt.service)
    add(root, "Operatie", receipt.operation)
    add(root, "BodyHash", receipt.body_hash)
    for content_id, part_hash in receipt.part_hashes:
        add(root, "PartHash", part_hash).set("ContentId", content_id)
    outcome = etree.SubElement(root, f"{_A}Uitkomst")
    if receipt.outcome.berichten:
        for uitkomst in receipt.outcome.berichten:
            bericht = etree.SubElement(outcome, f"{_A}Bericht")
            add(bericht, "BerichtID", uitkomst.bericht_id)
            add(bericht, "VerwerkingsCode", uitkomst.verwerkingscode)
            if uitkomst.reden:
                add(bericht, "Reden", uitkomst.reden)
    elif receipt.outcome.accepted:
        etree.SubElement(outcome, f"{_A}Geaccepteerd")
    else:
        refused = etree.SubElement(outcome, f"{_A}Geweigerd")
        add(refused, "Code", receipt.outcome.code)
        add(refused, "Reden", receipt.outcome.reason)
    return root


def from_element(root: etree._Element) -> Receipt:
    """Read a (verified) Afleverbevestiging element back into a `Receipt`."""

    def text(parent: etree._Element, name: str) -> str:
        child = parent.find(f"{_A}{name}")
        return (child.text or "") if child is not None else ""

    outcome_element = root.find(f"{_A}Uitkomst")
    if outcome_element is None:
        raise ValueError("Afleverbevestiging zonder Uitkomst")
    berichten = tuple(
        BerichtUitkomst(text(b, "BerichtID"), text(b, "VerwerkingsCode"), text(b, "Reden") or None)
        for b in outcome_element.findall(f"{_A}Bericht")
    )
    refused = outcome_element.find(f"{_A}Geweigerd")
    if berichten:
        outcome = Outcome(accepted=True, berichten=berichten)
    elif refused is not None:
        outcome = Outcome.reject(text(refused, "Code"), text(refused, "Reden"))
    else:
        outcome = Outcome.accept()
    return Receipt(
        receipt_id=text(root, "BevestigingID"),
        request_id=text(root, "RequestID"),
        receiver_oin=text(root, "Ontvanger"),
        sender_oin=text(root, "Afzender"),
        received_at=datetime.fromisoformat(text(root, "TijdstipOntvangst")),
        message_ref=text(root, "BerichtReferentie") or None,
        service=text(root, "Dienst"),
        operation=text(root, "Operatie"),
        body_hash=text(root, "BodyHash"),
        part_hashes=tuple(
            (p.get("ContentId", ""), p.text or "") for p in root.findall(f"{_A}PartHash")
        ),
        outcome=outcome,
    )

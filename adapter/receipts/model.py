"""The Afleverbevestiging as a value, and its XML form (`xsd/afleverbevestiging.xsd`)."""

from __future__ import annotations

import re
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


def canonical(receipt: Receipt) -> bytes:
    """The unsigned Afleverbevestiging in exclusive XML canonical form, written directly.

    The receipt's digest is taken over these bytes, so they must be exactly what any
    verifier's exclusive c14n makes of the element (tests compare them with lxml's, hostile
    characters included). Writing them costs a fraction of building a tree and serialising it.
    """
    t = _text
    out = [
        f'<Afleverbevestiging xmlns="{NS}" Id="{_attribute(receipt.xml_id)}">'
        f"<BevestigingID>{t(receipt.receipt_id)}</BevestigingID>"
        f"<RequestID>{t(receipt.request_id)}</RequestID>"
        f"<Ontvanger>{t(receipt.receiver_oin)}</Ontvanger>"
        f"<Afzender>{t(receipt.sender_oin)}</Afzender>"
        f"<TijdstipOntvangst>{utc_millis(receipt.received_at)}</TijdstipOntvangst>"
        f"<BerichtReferentie>{t(receipt.message_ref or '')}</BerichtReferentie>"
        f"<Dienst>{t(receipt.service)}</Dienst>"
        f"<Operatie>{t(receipt.operation)}</Operatie>"
        f"<BodyHash>{t(receipt.body_hash)}</BodyHash>"
    ]

    def add(name: str, text: str | None, attribute: str = "") -> None:
        out.append(f"<{name}{attribute}>{t(text or '')}</{name}>")

    for content_id, part_hash in receipt.part_hashes:
        add("PartHash", part_hash, f' ContentId="{_attribute(content_id)}"')
    out.append("<Uitkomst>")
    if receipt.outcome.berichten:
        for uitkomst in receipt.outcome.berichten:
            out.append("<Bericht>")
            add("BerichtID", uitkomst.bericht_id)
            add("VerwerkingsCode", uitkomst.verwerkingscode)
            if uitkomst.reden:
                add("Reden", uitkomst.reden)
            out.append("</Bericht>")
    elif receipt.outcome.accepted:
        out.append("<Geaccepteerd></Geaccepteerd>")
    else:
        out.append("<Geweigerd>")
        add("Code", receipt.outcome.code)
        add("Reden", receipt.outcome.reason)
        out.append("</Geweigerd>")
    out.append("</Uitkomst></Afleverbevestiging>")
    return "".join(out).encode("utf-8")


def to_element(receipt: Receipt) -> etree._Element:
    """The unsigned Afleverbevestiging element."""
    return parse_own(canonical(receipt))


def parse_own(written: bytes) -> etree._Element:
    """A receipt document this package wrote (signed or not), parsed back into its element."""
    return etree.fromstring(written, _OWN_XML)


# Our own bytes, parsed back: nothing to resolve, nothing to fetch.
_OWN_XML = etree.XMLParser(resolve_entities=False, no_network=True)
# Canonical XML's escapes (C14N 1.0, section 2.3): text and attribute values differ.
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#xD;"})
_ATTRIBUTE_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", '"': "&quot;", "\t": "&#x9;", "\n": "&#xA;", "\r": "&#xD;"}
)
# What XML 1.0 cannot carry at all, not even as a character reference.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Most fields (UUIDs, OINs, hashes, moments) hold none of these, and are written as they are.
_SPECIAL = re.compile("[^ !#-%'-;=?-~]")


def _text(value: str) -> str:
    if not _SPECIAL.search(value):
        return value
    _require_xml(value)
    return value.translate(_TEXT_ESCAPES)


def _attribute(value: str) -> str:
    if not _SPECIAL.search(value):
        return value
    _require_xml(value)
    return value.translate(_ATTRIBUTE_ESCAPES)


def _require_xml(value: str) -> None:
    if _NOT_XML.search(value):
        raise ValueError(f"a receipt field holds a character XML cannot carry: {value!r}")


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

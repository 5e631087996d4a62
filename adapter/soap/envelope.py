"""SOAP 1.1 envelopes: reading a request into an `Envelope`, writing responses and faults."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from lxml import etree

from adapter.errors import (
    HeaderNotUnderstood,
    InvalidEnvelope,
    MalformedXml,
    SoapFault,
    WsSecurityFault,
    XmlNotUtf8,
)
from adapter.soap.xml import DEFAULT_LIMITS, XmlLimits, parse_untrusted

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
_ENV = f"{{{SOAP_ENV}}}"


@dataclass(frozen=True)
class Envelope:
    """A parsed SOAP 1.1 request: its header blocks and the single Body child."""

    root: etree._Element
    headers: tuple[etree._Element, ...]
    body: etree._Element
    payload: etree._Element


def _is_element(node: object) -> bool:
    # Comments and processing instructions are nodes too; only elements count as children.
    return isinstance(node, etree._Element) and isinstance(node.tag, str)


def check_content_type(value: str | None) -> None:
    """SOAP 1.1 over HTTP is `text/xml`, and Digikoppeling allows UTF-8 only (WS006)."""
    media, *parameters = (value or "").split(";")
    media = media.strip().lower()
    if not media:
        raise InvalidEnvelope("Content-Type ontbreekt; SOAP 1.1 vraagt text/xml")
    if media == "application/soap+xml":
        raise InvalidEnvelope(
            "SOAP 1.2 (application/soap+xml) wordt niet ondersteund, gebruik SOAP 1.1"
        )
    if media == "multipart/related":
        raise InvalidEnvelope("MTOM (multipart/related) wordt niet ondersteund, stuur text/xml")
    if media != "text/xml":
        raise InvalidEnvelope(f"Content-Type {media} is geen text/xml (SOAP 1.1)")
    for parameter in parameters:
        name, _, charset = parameter.partition("=")
        charset = charset.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            raise XmlNotUtf8(f"charset {charset} is niet toegestaan, alleen UTF-8")


def parse_envelope(data: bytes, limits: XmlLimits = DEFAULT_LIMITS) -> Envelope:
    """Parse and check the SOAP 1.1 structure (WW003: exactly one Body child)."""
    return envelope_of(parse_untrusted(data, limits))


def envelope_of(root: etree._Element) -> Envelope:
    """The `Envelope` of a parsed document, once its SOAP 1.1 structure holds; again after a
    stage changed the tree (a decrypted 2W-be-SE Body)."""
    if root.tag == f"{{{SOAP12_ENV}}}Envelope":
        raise InvalidEnvelope("SOAP 1.2 wordt niet ondersteund, gebruik SOAP 1.1")
    if root.tag != f"{_ENV}Envelope":
        raise InvalidEnvelope("het root-element is geen SOAP 1.1 Envelope")
    children = [child for child in root if _is_element(child)]
    header = None
    if children and children[0].tag == f"{_ENV}Header":
        header = children.pop(0)
    if len(children) != 1 or children[0].tag != f"{_ENV}Body":
        raise InvalidEnvelope("een Envelope bevat een optionele Header en precies één Body")
    body = children[0]
    payload = [child for child in body if _is_element(child)]
    if len(payload) != 1:
        raise InvalidEnvelope(f"de Body bevat {len(payload)} elementen in plaats van één")
    headers = tuple(child for child in header if _is_element(child)) if header is not None else ()
    return Envelope(root=root, headers=headers, body=body, payload=payload[0])


def check_understood(envelope: Envelope, understood_namespaces: frozenset[str]) -> None:
    """Refuse a header block that demands processing we do not do (e.g. WS-Security)."""
    for header in envelope.headers:
        if header.get(f"{_ENV}mustUnderstand") in ("1", "true"):
            namespace = etree.QName(header).namespace
            if namespace not in understood_namespaces:
                raise HeaderNotUnderstood(
                    f"{etree.QName(header).localname} ({namespace}) wordt niet verwerkt"
                )


def body_hash(body: etree._Element) -> str:
    """Base64 SHA-256 of the exclusive canonical form (without comments) of a Body element.

    Raises `MalformedXml` for a Body that has no canonical form: W3C c14n fails on a relative
    namespace URI (`xmlns:t="types/2009"`), which is the sender's XML, not a server fault.
    """
    try:
        canonical = etree.tostring(body, method="c14n", exclusive=True, with_comments=False)
    except etree.C14NError:
        raise MalformedXml(
            "de Body heeft geen canonieke vorm (exclusive c14n); is elke namespace-URI absoluut?"
        ) from None
    return base64.b64encode(hashlib.sha256(canonical).digest()).decode("ascii")


def raw_hash(data: bytes) -> str:
    """Base64 SHA-256 of bytes that could not be parsed as an envelope."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def envelope_tree(
    body_child: etree._Element | None, headers: Sequence[etree._Element] = ()
) -> etree._Element:
    """An answer's Envelope as a tree, for a stage that still signs it (WS-Security); with
    `body_child` None its Body is empty, for `serialise` to write the child's bytes into."""
    envelope = etree.Element(f"{_ENV}Envelope", nsmap={"s": SOAP_ENV})
    if headers:
        header = etree.SubElement(envelope, f"{_ENV}Header")
        header.extend(headers)
    body = etree.SubElement(envelope, f"{_ENV}Body")
    if body_child is not None:
        body.append(body_child)
    return envelope


def header_of(envelope: etree._Element) -> etree._Element:
    """The Envelope's Header, added as its first child when it has none."""
    header = envelope.find(f"{_ENV}Header")
    if header is None:
        header = etree.Element(f"{_ENV}Header")
        envelope.insert(0, header)
    return header


def body_of(envelope: etree._Element) -> etree._Element:
    body = envelope.find(f"{_ENV}Body")
    if body is None:
        raise ValueError("an Envelope without a Body")
    return body


def serialise(
    envelope: etree._Element, last_header: bytes | None = None, body_child: bytes | None = None
) -> bytes:
    """The Envelope's bytes; with `last_header` an element's own bytes (a signed receipt, as
    its signer wrote them) written as the last header block, with `body_child` an element's
    bytes written as the Body's child (`PayloadXml`), without a tree built for either."""
    filled = [
        (etree.SubElement(parent(envelope), _SLOT, nsmap={"slot": _SLOT_NS}), content)
        for parent, content in ((header_of, last_header), (body_of, body_child))
        if content is not None
    ]
    data: bytes = etree.tostring(envelope, xml_declaration=True, encoding="utf-8")
    pieces: list[bytes] = []
    for slot, content in filled:  # in document order: the Header comes before the Body
        parent = slot.getparent()
        if parent is not None:
            parent.remove(slot)
        # The slot's markup can stand nowhere else: text and attribute values would be escaped.
        before, found, data = data.partition(_SLOT_MARKUP)
        if not found:
            raise RuntimeError("a slot was serialised otherwise than expected")
        pieces += (before, content)
    return b"".join([*pieces, data])


_SLOT_NS = "urn:mijnoverheid-adapter:slot"
_SLOT = f"{{{_SLOT_NS}}}slot"
_SLOT_MARKUP = f'<slot:slot xmlns:slot="{_SLOT_NS}"/>'.encode("ascii")


def build_envelope(payload: etree._Element, headers: Sequence[etree._Element] = ()) -> bytes:
    return serialise(envelope_tree(payload, headers))


def fault_tree(
    fault: SoapFault,
    headers: Sequence[etree._Element] = (),
    detail: etree._Element | None = None,
) -> etree._Element:
    """A SOAP 1.1 Fault with the service's own detail element, if it has one for this fault.

    A WS-Security fault's faultcode is a QName in the wsse namespace (wsse:FailedCheck), the
    others are SOAP's own (s:Client)."""
    element = etree.Element(f"{_ENV}Fault")
    if isinstance(fault, WsSecurityFault):
        code = etree.SubElement(element, "faultcode", nsmap={"wsse": fault.faultcode_namespace})
        code.text = f"wsse:{fault.faultcode}"
    else:
        etree.SubElement(element, "faultcode").text = f"s:{fault.faultcode}"
    etree.SubElement(element, "faultstring").text = fault.faultstring
    if detail is not None:
        etree.SubElement(element, "detail").append(detail)
    return envelope_tree(element, headers)


def build_fault(
    fault: SoapFault,
    headers: Sequence[etree._Element] = (),
    detail: etree._Element | None = None,
) -> bytes:
    return serialise(fault_tree(fault, headers, detail))

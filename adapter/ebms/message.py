"""ebMS 2.0 SOAP headers: reading a MessageHeader, writing Acknowledgments, errors and messages.

Only what the Digikoppeling osb profiles use: MessageHeader, AckRequested, SyncReply,
Acknowledgment, ErrorList and Manifest, in the ebMS 2.0 namespace, version 2.0.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote

from lxml import etree

from adapter.errors import EbmsError, Inconsistent, MimeProblem, NotSupported, OtherXml
from adapter.soap.envelope import SOAP_ENV
from adapter.soap.xml import text_of
from adapter.xmltime import utc_millis

EB = "http://www.oasis-open.org/committees/ebxml-msg/schema/msg-header-2_0.xsd"
XLINK = "http://www.w3.org/1999/xlink"
OIN_TYPE = "urn:osb:oin"
MSH_SERVICE = "urn:oasis:names:tc:ebxml-msg:service"
TO_PARTY_MSH = "urn:oasis:names:tc:ebxml-msg:actor:toPartyMSH"
ERROR_CONTEXT = "urn:oasis:names:tc:ebxml-msg:service:errors"
_E = f"{{{EB}}}"
_S = f"{{{SOAP_ENV}}}"
NSMAP = {"SOAP": SOAP_ENV, "eb": EB, "xlink": XLINK}


@dataclass(frozen=True)
class PartyId:
    value: str
    type: str | None


@dataclass(frozen=True)
class MessageHeader:
    """The ebMS MessageHeader of a received message, with its reliability requests."""

    from_party: PartyId
    from_role: str | None
    to_party: PartyId
    to_role: str | None
    cpa_id: str
    conversation_id: str
    service: str
    service_type: str | None
    action: str
    message_id: str
    timestamp: datetime
    ref_to_message_id: str | None
    duplicate_elimination: bool
    ack_requested: bool
    sync_reply: bool
    manifest: tuple[str, ...]  # cid: references, in order


def _one(parent: etree._Element, path: str, location: str) -> etree._Element:
    found = parent.findall(path, NSMAP)
    if len(found) != 1:
        raise OtherXml(f"{location} moet precies één keer voorkomen", location=location)
    return found[0]


def _text(parent: etree._Element, path: str, location: str) -> str:
    # The whole text: a comment inside a value must not cut it short (the receipt hashes all).
    value = (text_of(_one(parent, path, location)) or "").strip()
    if not value:
        raise OtherXml(f"{location} is leeg", location=location)
    return value


def _party(header: etree._Element, side: str) -> tuple[PartyId, str | None]:
    element = _one(header, f"eb:{side}", f"//MessageHeader/{side}")
    ids = element.findall("eb:PartyId", NSMAP)
    if len(ids) != 1:
        # Digikoppeling: one OIN per party; several PartyIds would leave the OIN ambiguous.
        raise Inconsistent(
            f"{side} moet precies één PartyId hebben", location=f"//MessageHeader/{side}/PartyId"
        )
    role = text_of(element.find("eb:Role", NSMAP))
    return PartyId(
        (text_of(ids[0]) or "").strip(), ids[0].get(f"{_E}type")
    ), role.strip() if role else None


def read_header(envelope: etree._Element) -> MessageHeader:
    """Parse the ebMS headers of a SOAP envelope; raise the ebMS error that says what is wrong."""
    header = envelope.find(f"{_S}Header")
    body = envelope.find(f"{_S}Body")
    if header is None or body is None:
        raise OtherXml("SOAP Header en Body zijn verplicht in ebMS", location="/Envelope")
    if len(envelope.findall(f"{_S}Header")) > 1 or len(envelope.findall(f"{_S}Body")) > 1:
        # SOAP 1.1 section 4: one of each; a second Body would be a second, unread message.
        raise OtherXml("een Envelope bevat precies één Header en één Body", location="/Envelope")
    for block in header:
        # SOAP 1.1 section 4.2.3: a block we must understand but do not process is refused.
        if not isinstance(block.tag, str) or block.get(f"{_S}mustUnderstand") not in ("1", "true"):
            continue
        name = etree.QName(block)
        if name.namespace != EB:
            raise NotSupported(
                f"header {name.localname} ({name.namespace}) met mustUnderstand"
                " wordt niet verwerkt",
                location=f"//Header/{name.localname}",
            )
    message_header = _one(header, "eb:MessageHeader", "//Header/MessageHeader")
    if message_header.get(f"{_E}version") != "2.0":
        raise NotSupported("alleen ebMS versie 2.0", location="//Header/MessageHeader/@version")
    from_party, from_role = _party(message_header, "From")
    to_party, to_role = _party(message_header, "To")
    service = _one(message_header, "eb:Service", "//MessageHeader/Service")
    data = _one(message_header, "eb:MessageData", "//MessageHeader/MessageData")
    timestamp_text = _text(data, "eb:Timestamp", "//MessageHeader/MessageData/Timestamp")
    try:
        timestamp = datetime.fromisoformat(timestamp_text)
    except ValueError:
        raise OtherXml(
            f"Timestamp {timestamp_text!r} is geen xs:dateTime", "//MessageData/Timestamp"
        ) from None
    manifest = body.find("eb:Manifest", NSMAP)
    references = []
    for reference in manifest.findall("eb:Reference", NSMAP) if manifest is not None else ():
        href = reference.get(f"{{{XLINK}}}href") or ""
        if not href.startswith("cid:"):
            # Digikoppeling: payloads travel in the message itself, never by external reference.
            raise MimeProblem(
                f"Manifest-referentie {href!r} is geen cid:", location="//Body/Manifest/Reference"
            )
        references.append(unquote(href[4:]))
    return MessageHeader(
        from_party=from_party,
        from_role=from_role,
        to_party=to_party,
        to_role=to_role,
        cpa_id=_text(message_header, "eb:CPAId", "//MessageHeader/CPAId"),
        conversation_id=_text(
            message_header, "eb:ConversationId", "//MessageHeader/ConversationId"
        ),
        service=(text_of(service) or "").strip(),
        service_type=service.get("type"),
        action=_text(message_header, "eb:Action", "//MessageHeader/Action"),
        message_id=_text(data, "eb:MessageId", "//MessageHeader/MessageData/MessageId"),
        timestamp=timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=UTC),
        ref_to_message_id=text_of(data.find("eb:RefToMessageId", NSMAP)),
        duplicate_elimination=message_header.find("eb:DuplicateElimination", NSMAP) is not None,
        ack_requested=header.find("eb:AckRequested", NSMAP) is not None,
        sync_reply=header.find("eb:SyncReply", NSMAP) is not None,
        manifest=tuple(references),
    )


def new_message_id(domain: str = "mijnoverheid-adapter") -> str:
    """A globally unique MessageId in the UUID@URI form Digikoppeling recommends (EB013)."""
    return f"{uuid.uuid4()}@{domain}"


@dataclass(frozen=True)
class Route:
    """Who sends what to whom: the MessageHeader fields of a message we write."""

    cpa_id: str
    conversation_id: str
    from_oin: str
    from_role: str | None
    to_oin: str
    to_role: str | None
    service: str
    service_type: str | None
    action: str


def _message_header(
    route: Route, message_id: str, now: datetime, ref_to: str | None
) -> etree._Element:
    header = etree.Element(f"{_E}MessageHeader", nsmap=NSMAP)
    header.set(f"{_E}version", "2.0")
    header.set(f"{_S}mustUnderstand", "1")
    for side, oin, role in (
        ("From", route.from_oin, route.from_role),
        ("To", route.to_oin, route.to_role),
    ):
        party = etree.SubElement(header, f"{_E}{side}")
        party_id = etree.SubElement(party, f"{_E}PartyId")
        party_id.set(f"{_E}type", OIN_TYPE)
        party_id.text = oin
        if role:
            etree.SubElement(party, f"{_E}Role").text = role
    etree.SubElement(header, f"{_E}CPAId").text = route.cpa_id
    etree.SubElement(header, f"{_E}ConversationId").text = route.conversation_id
    service = etree.SubElement(header, f"{_E}Service")
    service.text = route.service
    if route.service_type:
        service.set("type", route.service_type)
    etree.SubElement(header, f"{_E}Action").text = route.action
    data = etree.SubElement(header, f"{_E}MessageData")
    etree.SubElement(data, f"{_E}MessageId").text = message_id
    etree.SubElement(data, f"{_E}Timestamp").text = utc_millis(now)
    if ref_to:
        etree.SubElement(data, f"{_E}RefToMessageId").text = ref_to
    return header


def _envelope(
    headers: Sequence[etree._Element], body_children: Sequence[etree._Element] = ()
) -> bytes:
    envelope = etree.Element(f"{_S}Envelope", nsmap=NSMAP)
    header = etree.SubElement(envelope, f"{_S}Header")
    header.extend(headers)
    body = etree.SubElement(envelope, f"{_S}Body")
    body.extend(body_children)
    data: bytes = etree.tostring(envelope, xml_declaration=True, encoding="utf-8")
    return data


def reply_route(
    request: MessageHeader, action: str, service: str = MSH_SERVICE, service_type: str | None = None
) -> Route:
    """The route back to the sender of `request`, for MSH signals or business answers."""
    return Route(
        cpa_id=request.cpa_id,
        conversation_id=request.conversation_id,
        from_oin=request.to_party.value,
        from_role=request.to_role if service != MSH_SERVICE else None,
        to_oin=request.from_party.value,
        to_role=request.from_role if service != MSH_SERVICE else None,
        service=service,
        service_type=service_type,
        action=action,
    )


def acknowledgment(
    request: MessageHeader,
    now: datetime,
    extra_headers: Sequence[etree._Element] = (),
    references: Sequence[etree._Element] = (),
) -> tuple[str, bytes]:
    """An Acknowledgment of `request`, returned with its own new MessageId. `references` are
    the ds:Reference elements of the request's signature: a signed Acknowledgment carries
    them (ebMS 2.0 section 6.3.2), so the ack proves what exactly was received."""
    message_id = new_message_id()
    header = _message_header(
        reply_route(request, "Acknowledgment"), message_id, now, request.message_id
    )
    ack = etree.Element(f"{_E}Acknowledgment", nsmap=NSMAP)
    ack.set(f"{_E}version", "2.0")
    ack.set(f"{_S}mustUnderstand", "1")
    ack.set(f"{_S}actor", TO_PARTY_MSH)
    etree.SubElement(ack, f"{_E}Timestamp").text = utc_millis(now)
    etree.SubElement(ack, f"{_E}RefToMessageId").text = request.message_id
    sender = etree.SubElement(ack, f"{_E}From")
    party_id = etree.SubElement(sender, f"{_E}PartyId")
    party_id.set(f"{_E}type", OIN_TYPE)
    party_id.text = request.to_party.value
    ack.extend(references)
    return message_id, _envelope([header, ack, *extra_headers])


def message_error(
    request: MessageHeader | None,
    error: EbmsError,
    now: datetime,
    extra_headers: Sequence[etree._Element] = (),
) -> tuple[str, bytes]:
    """A MessageError carrying one Error; without a readable request it is addressed to no one."""
    message_id = new_message_id()
    headers: list[etree._Element] = []
    if request is not None:
        headers.append(
            _message_header(
                reply_route(request, "MessageError"), message_id, now, request.message_id
            )
        )
    errors = etree.Element(f"{_E}ErrorList", nsmap=NSMAP)
    errors.set(f"{_E}version", "2.0")
    errors.set(f"{_S}mustUnderstand", "1")
    errors.set(f"{_E}highestSeverity", "Error")
    item = etree.SubElement(errors, f"{_E}Error")
    item.set(f"{_E}codeContext", ERROR_CONTEXT)
    item.set(f"{_E}errorCode", error.error_code)
    item.set(f"{_E}severity", "Error")
    if error.location:
        item.set(f"{_E}location", error.location)
    description = etree.SubElement(item, f"{_E}Description")
    description.set("{http://www.w3.org/XML/1998/namespace}lang", "nl")
    description.text = error.description
    headers.append(errors)
    return message_id, _envelope([*headers, *extra_headers])


def business_message(
    route: Route,
    now: datetime,
    ref_to: str | None,
    manifest: Sequence[str],
    extra_headers: Sequence[etree._Element] = (),
    signed_ack: bool = False,
    *,
    ack_requested: bool = True,
    duplicate_elimination: bool = True,
) -> tuple[str, bytes]:
    """A business message asking for a reliable, once-only delivery (osb-rm): with
    DuplicateElimination and AckRequested, `signed_ack` for a signed Acknowledgment (osb-rm-s,
    osb-rm-e). A best-effort channel (osb-be*, whose CPA says ackRequested and
    duplicateElimination never) gets neither element, so no Acknowledgment comes."""
    message_id = new_message_id()
    header = _message_header(route, message_id, now, ref_to)
    if duplicate_elimination:
        etree.SubElement(header, f"{_E}DuplicateElimination")
    blocks = [header]
    if ack_requested:
        requested = etree.Element(f"{_E}AckRequested", nsmap=NSMAP)
        requested.set(f"{_E}version", "2.0")
        requested.set(f"{_S}mustUnderstand", "1")
        requested.set(f"{_S}actor", TO_PARTY_MSH)
        requested.set(f"{_E}signed", "true" if signed_ack else "false")
        blocks.append(requested)
    return message_id, _envelope([*blocks, *extra_headers], [_manifest(manifest)])


def _manifest(manifest: Sequence[str]) -> etree._Element:
    body_manifest = etree.Element(f"{_E}Manifest", nsmap=NSMAP)
    body_manifest.set(f"{_E}version", "2.0")
    for cid in manifest:
        reference = etree.SubElement(body_manifest, f"{_E}Reference")
        reference.set(f"{{{XLINK}}}href", f"cid:{cid}")
        reference.set(f"{{{XLINK}}}type", "simple")
    return body_manifest


def error_of(document: etree._Element) -> tuple[str, str] | None:
    """errorCode and Description of the first Error in a MessageError, if it is one."""
    error = document.find(f"{_S}Header/eb:ErrorList/eb:Error", NSMAP)
    if error is None:
        return None
    return error.get(f"{_E}errorCode") or "", error.findtext(
        "eb:Description", namespaces=NSMAP
    ) or ""


# --- MSH services: Ping (ebMS 2.0 section 8) and message status (section 7) -------------------

MESSAGE_STATUSES = ("UnAuthorized", "NotRecognized", "Received", "Processed", "Forwarded")
# Statuses of a message the MSH knows, which carry the moment it was received.
_KNOWN_STATUSES = ("Received", "Processed", "Forwarded")


def pong(request: MessageHeader, now: datetime) -> tuple[str, bytes]:
    """The Pong answering a Ping (section 8.2): only a MessageHeader, RefToMessageId the Ping."""
    message_id = new_message_id()
    header = _message_header(reply_route(request, "Pong"), message_id, now, request.message_id)
    return message_id, _envelope([header])


def status_request_ref(envelope: etree._Element) -> str:
    """The RefToMessageId a StatusRequest in the SOAP Body asks about (section 7.3.1)."""
    body = envelope.find(f"{_S}Body")
    ref = None if body is None else body.find("eb:StatusRequest/eb:RefToMessageId", NSMAP)
    value = (text_of(ref) or "").strip()
    if not value:
        raise OtherXml(
            "StatusRequest zonder RefToMessageId: noem het MessageId van het bericht",
            location="//Body/StatusRequest/RefToMessageId",
        )
    return value


def status_response(
    request: MessageHeader, ref: str, status: str, received_at: datetime | None, now: datetime
) -> tuple[str, bytes]:
    """The StatusResponse to a StatusRequest (section 7.3.2) in the SOAP Body: messageStatus,
    and for a message the MSH knows the moment it was received."""
    if status not in MESSAGE_STATUSES:
        raise ValueError(f"{status!r} is not an ebMS messageStatus")
    message_id = new_message_id()
    header = _message_header(
        reply_route(request, "StatusResponse"), message_id, now, request.message_id
    )
    response = etree.Element(f"{_E}StatusResponse", nsmap=NSMAP)
    response.set(f"{_E}version", "2.0")
    response.set(f"{_E}messageStatus", status)
    etree.SubElement(response, f"{_E}RefToMessageId").text = ref
    if received_at is not None and status in _KNOWN_STATUSES:
        etree.SubElement(response, f"{_E}Timestamp").text = utc_millis(received_at)
    return message_id, _envelope([header], [response])


def status_of(document: etree._Element) -> tuple[str, str, str | None] | None:
    """messageStatus, RefToMessageId and Timestamp of a StatusResponse, if it is one."""
    response = document.find(f"{_S}Body/eb:StatusResponse", NSMAP)
    if response is None:
        return None
    return (
        response.get(f"{_E}messageStatus") or "",
        (text_of(response.find("eb:RefToMessageId", NSMAP)) or "").strip(),
        text_of(response.find("eb:Timestamp", NSMAP)),
    )


def ping(route: Route, now: datetime) -> tuple[str, bytes]:
    """A Ping (section 8.1) along `route` (Service urn:oasis:names:tc:ebxml-msg:service)."""
    message_id = new_message_id()
    return message_id, _envelope([_message_header(route, message_id, now, None)])


def status_request(route: Route, ref: str, now: datetime) -> tuple[str, bytes]:
    """A StatusRequest (section 7.3.1) asking about the message `ref`."""
    message_id = new_message_id()
    request = etree.Element(f"{_E}StatusRequest", nsmap=NSMAP)
    request.set(f"{_E}version", "2.0")
    etree.SubElement(request, f"{_E}RefToMessageId").text = ref
    return message_id, _envelope([_message_header(route, message_id, now, None)], [request])

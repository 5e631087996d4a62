"""The organisation's side of a BerichtVerwerk delivery, for `dk-adapter send`.

Builds a batch as a Logius client does, packs it into a reliable ebMS message (payload and
general attachments as MIME parts; on a best-effort CPA one that asks no Acknowledgment) and
reads what comes back. On a CPA of profile -s or -e the
message is signed with the organisation's key, and for -e its parts are first encrypted for
MijnOverheid's certificate from the CPA.
"""

from __future__ import annotations

import base64
import queue
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lxml import etree

from adapter.berichtenbox.berichtverwerk import BATCH, EXTENSION, LETTER
from adapter.ebms.cpa import ChannelSecurity, Cpa, CpaParty, load_cpa
from adapter.ebms.message import Route, business_message, error_of
from adapter.ebms.mime import build_package, parse_package
from adapter.ebms.outbound import envelope_of, verify_answer
from adapter.ebms.security import SigningKey, TrustAnchors, VerifiedSignature, seal
from adapter.kit.client import MtlsClient
from adapter.kit.receiver import EbmsReceiver, ReceivedMessage
from adapter.kit.wire import WireMessage
from adapter.soap.xml import parse_untrusted

SERVICE = "urn:osb:services:MIJNOVERHEID.ebMS.BB.2.0"
SERVICE_TYPE = "urn:osb:services"
REQUEST_ACTION = "GLOBE-R-BV-Request"
UNSIGNED = ChannelSecurity()  # osb-rm, osb-be
RESULT_ACTION = "GLOBE-R-BV-Result"


@dataclass(frozen=True)
class SignedChannel:
    """`--cpa FILE` of an -s/-e CPA: its rules, applied with the organisation's TLS key (which
    signs, and opens what is encrypted for it)."""

    cpa: Cpa
    party: CpaParty  # MijnOverheid's side: how to send to it, and how it signs its answers
    key: SigningKey
    trust: TrustAnchors

    @classmethod
    def of_client(cls, path: Path, to_oin: str, client: MtlsClient) -> SignedChannel:
        """The CPA in `path` as `client`'s organisation uses it towards `to_oin`; ValueError
        when `to_oin` is no party to it."""
        cpa = load_cpa(path)
        party = cpa.party(to_oin)
        if party is None:
            raise ValueError(f"{to_oin} is not a party to CPA {cpa.cpa_id}")
        key = SigningKey.from_files(client.key_file, client.certificate_file)
        # The dev PKI's certificate files carry their chain; a CPA made by Logius names the
        # signer's certificate, so the chain matters only for development CPAs without one.
        window = timedelta(minutes=5)
        trust = TrustAnchors(client.trusted_root, client.certificate_file, None, window, window)
        return cls(cpa, party, key, trust)

    def receiver_options(self) -> dict[str, object]:
        """What an EbmsReceiver needs to verify, open and acknowledge messages on it."""
        return {"cpas": [self.cpa], "signing_key": self.key, "signers": self.trust}


@dataclass(frozen=True)
class BerichtSpec:
    bsn: str
    bericht_type: str
    onderwerp: str
    tekst: str | None = None
    bijlagen: Sequence[tuple[str, bytes]] = ()  # omschrijving, PDF content (personal)
    algemene: Sequence[tuple[str, str]] = ()  # omschrijving, content-id of a general part
    bericht_id: str = field(default_factory=lambda: str(uuid.uuid4()))


def _add(parent: etree._Element, tag: str, text: str) -> etree._Element:
    element = etree.SubElement(parent, tag)
    element.text = text
    return element


def build_batch(
    leverancier: str, berichten: Sequence[BerichtSpec], now: datetime | None = None
) -> bytes:
    """A `Berichten` document with one BatchID for all letters."""
    batch_id = str(uuid.uuid4())
    moment = (
        (now or datetime.now(UTC))
        .astimezone(UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
    root = etree.Element(
        f"{{{BATCH}}}Berichten", nsmap={"bvs": BATCH, "b": LETTER, "mo": EXTENSION}
    )
    info = etree.SubElement(root, f"{{{BATCH}}}BatchInformatie")
    _add(info, f"{{{BATCH}}}BatchID", batch_id)
    _add(info, f"{{{BATCH}}}AanmaakDatum", moment)
    _add(info, f"{{{BATCH}}}BerichtLeverancierID", leverancier)
    for spec in berichten:
        bericht = etree.SubElement(root, f"{{{LETTER}}}Bericht")
        letter = etree.SubElement(bericht, f"{{{LETTER}}}BerichtInformatie")
        _add(letter, f"{{{LETTER}}}BatchID", batch_id)
        _add(letter, f"{{{LETTER}}}BerichtID", spec.bericht_id)
        _add(letter, f"{{{LETTER}}}BerichtType", spec.bericht_type)
        _add(letter, f"{{{LETTER}}}Onderwerp", spec.onderwerp)
        if spec.tekst:
            _add(letter, f"{{{LETTER}}}BerichtTekst", spec.tekst)
        _add(letter, f"{{{LETTER}}}GebruikerID", spec.bsn)
        _add(letter, f"{{{LETTER}}}SoortGebruiker", "Burger")
        if spec.bijlagen:
            bijlagen = etree.SubElement(bericht, f"{{{LETTER}}}Bijlagen")
            for volgorde, (omschrijving, content) in enumerate(spec.bijlagen, start=1):
                bijlage = etree.SubElement(bijlagen, f"{{{LETTER}}}Bijlage")
                _add(bijlage, f"{{{LETTER}}}Inhoud", base64.b64encode(content).decode("ascii"))
                _add(bijlage, f"{{{LETTER}}}BijlageType", "Pdf")
                _add(bijlage, f"{{{LETTER}}}Omschrijving", omschrijving)
                _add(bijlage, f"{{{LETTER}}}Volgorde", str(volgorde))
        if spec.algemene:
            algemene = etree.SubElement(bericht, f"{{{EXTENSION}}}AlgemeneBijlagen")
            for volgorde, (omschrijving, cid) in enumerate(spec.algemene, start=1):
                bijlage = etree.SubElement(algemene, f"{{{EXTENSION}}}AlgemeneBijlage")
                _add(bijlage, f"{{{EXTENSION}}}Referentie", f"cid:{cid}")
                _add(bijlage, f"{{{EXTENSION}}}BijlageType", "Pdf")
                _add(bijlage, f"{{{EXTENSION}}}Omschrijving", omschrijving)
                _add(bijlage, f"{{{EXTENSION}}}Volgorde", str(volgorde))
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="utf-8")
    return data


def batch_request(
    from_oin: str,
    to_oin: str,
    cpa_id: str,
    payload_cid: str,
    general_cids: Sequence[str],
    now: datetime,
    signed_ack: bool = False,
    *,
    reliable: bool = True,
) -> tuple[str, bytes]:
    """The SOAP part of a GLOBE-R-BV-Request; returns (MessageId, envelope). Not `reliable`
    (a best-effort CPA, osb-be*): without AckRequested and DuplicateElimination."""
    route = Route(
        cpa_id=cpa_id,
        conversation_id=str(uuid.uuid4()),
        from_oin=from_oin,
        from_role="SR",
        to_oin=to_oin,
        to_role="SP",
        service=SERVICE,
        service_type=SERVICE_TYPE,
        action=REQUEST_ACTION,
    )
    return business_message(
        route,
        now,
        None,
        [payload_cid, *general_cids],
        signed_ack=signed_ack,
        ack_requested=reliable,
        duplicate_elimination=reliable,
    )


@dataclass(frozen=True)
class Delivery:
    """What came back on the HTTP connection for one sent message."""

    message_id: str
    size: int
    http_status: int
    answer: etree._Element | None  # the Acknowledgment or MessageError, if synchronous
    error: tuple[str, str] | None  # errorCode and description of a MessageError
    request: WireMessage | None = None  # what went over the wire, for `send --save`
    response: WireMessage | None = None


def deliver(
    client: MtlsClient,
    endpoint: str,
    to_oin: str,
    cpa_id: str | None,
    payload: bytes,
    general: Sequence[tuple[str, bytes]],
    security: ChannelSecurity = UNSIGNED,
    signing_key: SigningKey | None = None,
    *,
    reliable: bool = True,
) -> Delivery:
    """Send one GLOBE-R-BV-Request with its payload and general PDF parts; `security` is
    MijnOverheid's side of the CPA (signed, encrypted for its certificate, signed ack), and
    `reliable` False for a best-effort CPA (no Acknowledgment is asked for)."""
    from_oin = client.oin()
    payload_cid = f"batch@{from_oin}"
    message_id, soap = batch_request(
        from_oin,
        to_oin,
        cpa_id or f"MIJNOVERHEID-EBMS-BB-2-0_{from_oin}_{to_oin}_1",
        payload_cid,
        [cid for cid, _ in general],
        datetime.now(UTC),
        security.ack_signed,
        reliable=reliable,
    )
    parts = [(payload_cid, "text/xml; charset=UTF-8", payload)]
    parts += [(cid, "application/pdf", content) for cid, content in general]
    soap, parts = seal(soap, parts, security, signing_key)
    content_type, body = build_package(soap, parts)
    response = client.post(endpoint, body, content_type, "ebXML")
    answer = None
    if response.content.strip():
        package = parse_package(response.headers.get("Content-Type", "text/xml"), response.content)
        answer = parse_untrusted(package.soap.body)
    return Delivery(
        message_id,
        len(body),
        response.status_code,
        answer,
        error_of(answer) if answer is not None else None,
        WireMessage(content_type, body),
        WireMessage(response.headers.get("Content-Type", ""), response.content),
    )


def verify_signed_answer(
    delivery: Delivery, mijnoverheid: CpaParty, trust: TrustAnchors
) -> VerifiedSignature | None:
    """The signature over MijnOverheid's synchronous answer, checked as the gemeente's MSH
    must where its side of the CPA (`mijnoverheid`) signs: an Acknowledgment (signed-ack
    channels) carrying the references of our signature, a MessageError (signed channels)
    signed. None when the channel signs no such answer or there is none; raises
    SecurityFailure when it does not hold."""
    if delivery.answer is None or delivery.request is None:
        return None
    security = mijnoverheid.security
    if not (security.sign if delivery.error is not None else security.ack_signed):
        return None
    sent = envelope_of(delivery.request.content_type, delivery.request.body)
    return verify_answer(delivery.answer, sent, mijnoverheid, trust, datetime.now(UTC))


def wait_for_result(
    receiver: EbmsReceiver, message_id: str, timeout: float
) -> ReceivedMessage | None:
    """The BerichtVerwerkResponse answering `message_id`, or None when it did not come in time."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            message = receiver.received.get(timeout=remaining)
        except queue.Empty:
            return None
        if (
            message.header.ref_to_message_id == message_id
            and message.header.action == RESULT_ACTION
        ):
            return message
    return None


def refresh_batch(payload: bytes, now: datetime | None = None) -> bytes:
    """The same batch made new: another BatchID, a new BerichtID per Bericht and AanmaakDatum
    now, so a sample file can be sent again (instead of `BerichtBestaatAl`) and long after it
    was written (instead of `AanmaakDatumLigtTeVerInHetVerleden`). Nothing else changes."""
    root = parse_untrusted(payload)
    batch_id = str(uuid.uuid4())
    moment = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="milliseconds")
    for element in root.iter(f"{{{BATCH}}}BatchID", f"{{{LETTER}}}BatchID"):
        element.text = batch_id
    for element in root.iter(f"{{{BATCH}}}AanmaakDatum"):
        element.text = moment.replace("+00:00", "Z")
    for element in root.iter(f"{{{LETTER}}}BerichtID"):
        element.text = str(uuid.uuid4())
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="utf-8")
    return data

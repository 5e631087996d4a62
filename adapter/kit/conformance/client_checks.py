"""Client mode's rules: what a request from a leverancier's client does wrong, and how to fix it.

`grade_wus` and `grade_ebms` read one request as the wire carried it and return findings,
each naming the SPEC rule it breaks. They judge what the real service would refuse (so the
leverancier learns why before the service says so) and what it accepts but Digikoppeling or
the Logius TAH asks otherwise (warnings: WS-A absent, no PDF/A, a BerichtID seen before).
The service's own answer is graded after it (`grade_answer`), so nothing it refuses is
missed even when no rule here foresaw it. A request of an organisation on 2W-be-S or
2W-be-SE is opened and its signature verified with the service's own WS-Security code
(adapter.soap.wssecurity) before the rest is graded on the decrypted Body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from lxml import etree

from adapter.berichtenbox.abonnement_aanvraag import is_bsn
from adapter.berichtenbox.berichtverwerk import BATCH, EXTENSION, LETTER
from adapter.berichtenbox.pdf import check_pdf
from adapter.config import Organisation, Organisations
from adapter.ebms.cpa import CpaStore
from adapter.ebms.inbound import check_route
from adapter.ebms.message import EB, MSH_SERVICE, TO_PARTY_MSH, MessageHeader, read_header
from adapter.ebms.mime import Package, parse_content_type, parse_package
from adapter.errors import AdapterError, EbmsError, Rejected, SoapFault
from adapter.kit.conformance.model import Finding
from adapter.party import Party
from adapter.receipts import ReceiptInvalid, verify
from adapter.soap.addressing import ANONYMOUS, WSA, read_addressing
from adapter.soap.envelope import SOAP_ENV, Envelope, check_content_type, parse_envelope
from adapter.soap.schema import SchemaSet
from adapter.soap.wssecurity import WSSE, WsSecurity, decrypt_body, verify_request
from adapter.soap.wus import Operation, WusService
from adapter.soap.xml import XmlLimits, parse_untrusted

_E = f"{{{EB}}}"
_W = f"{{{WSA}}}"
_S = f"{{{SOAP_ENV}}}"
CLOCK_SKEW = timedelta(minutes=5)
DATE_WINDOW = timedelta(days=13)

# Rules, as SPEC references, with the fix for each.
R_CONTENT_TYPE = (
    "SPEC-digikoppeling §1.1 (SOAP 1.1, UTF-8 only, WS006)",
    "send Content-Type: text/xml; charset=utf-8",
)
R_ENVELOPE = (
    "SPEC-digikoppeling §1.1 WW003; SPEC Part C (0001)",
    "send a SOAP 1.1 Envelope with one Body child and no DTD",
)
R_OPERATION = (
    "SPEC-digikoppeling §1.1 (document/literal, Body child names the operation)",
    "use the request element of an operation in the published WSDL",
)
R_SOAP_ACTION = (
    "SPEC-digikoppeling §1.1 WS002; SPEC A §2.1 (send it quoted)",
    'send the SOAPAction header as "" or exactly the operation\'s action, quoted',
)
R_WSA = (
    "SPEC-digikoppeling §1.3 WA001 (2W-be)",
    "send wsa:To (absolute URI), wsa:Action (the WSDL's action) and a unique wsa:MessageID",
)
R_HEADERS = (
    "SPEC-digikoppeling §1.1 WS007 (no custom header blocks; 0010)",
    "send only WS-Addressing header blocks (and wsse:Security under 2W-be-S/2W-be-SE)",
)
R_WSS = (
    "SPEC-digikoppeling §1.5 (WB002-WB013: 2W-be-S, 2W-be-SE)",
    "sign soap:Body, a fresh wsu:Timestamp and every WS-Addressing header, each with its own "
    "Reference (exclusive c14n, RSA-SHA256), with your PKIoverheid certificate as a "
    "BinarySecurityToken; under 2W-be-SE encrypt the Body's content for MijnOverheid's "
    "certificate (AES-GCM, RSA-OAEP)",
)
R_IDENTITY = (
    "SPEC Part C (Identity and authorisation)",
    "use the certificate of the organisation the message is from, and its OIN in the message",
)
R_XSD = (
    "SPEC Part C (0004 Niet conform xsd); the published XSD",
    "validate the payload against the XSD of the published WSDL before sending",
)
R_BSN = ("SPEC Part B (BSN elfproef)", "send only BSNs of nine digits that pass the elfproef")
R_KLANTEN = (
    "SPEC Part B (ValidateAbonnementen limits: 1-250 Klant)",
    "ask for 1 to 250 Klanten per request; use AbonnementAanvraag for more",
)
R_BERICHT_TYPE = (
    "SPEC A §1.3 (BerichtType must be configured and active)",
    "use a BerichtType granted to your organisation",
)
R_DUPLICATE = (
    "SPEC-digikoppeling §1.3 (MessageID unique), §2.3-2.4 (MessageId, duplicate elimination)",
    "give every new message a new id; reuse an id only to resend the very same message",
)
R_DATE = (
    "SPEC A §1.3 (AanmaakDatum, PublicatieDatum: 13 days), Part C (date rules)",
    "send AanmaakDatum as the batch's creation time (UTC) and PublicatieDatum at most 13 days "
    "ahead",
)
R_EBMS_SOAP_ACTION = (
    "SPEC-digikoppeling §2.6 (SOAPAction must be ebXML)",
    'send the HTTP header SOAPAction: "ebXML"',
)
R_MIME = (
    "SPEC-digikoppeling §2.6 (multipart/related, SOAP part first, cid: references)",
    'package the message as multipart/related with type="text/xml", the SOAP envelope first '
    "and each payload a part with a Content-ID",
)
R_HEADER = (
    "SPEC-digikoppeling §2.3 (MessageHeader fields); SPEC Part C (ebMS error mapping)",
    "fill the MessageHeader from the CPA: CPAId, PartyIds of type urn:osb:oin, Service, Role and "
    "Action",
)
R_RELIABILITY = (
    "SPEC-digikoppeling §2.2, §2.4 (osb-rm: DuplicateElimination, AckRequested toPartyMSH), §2.5 "
    "SyncReply",
    "follow the CPA's MessagingCharacteristics: DuplicateElimination and AckRequested for "
    "osb-rm, SyncReply only with mshSignalsOnly",
)
R_MANIFEST = (
    "SPEC-digikoppeling §2.6 (Manifest: only cid: references, each resolving)",
    "list every payload part in eb:Manifest by cid: and send no part it does not list",
)
R_ATTACHMENT = (
    "SPEC A §4.1, Part B (at most 2 personal Bijlagen, 500 KiB; general 2 MiB; PDF on content)",
    "send at most 2 personal PDFs of together at most 512,000 bytes, and general PDFs of "
    "together at most 2 MiB",
)
R_PDFA = (
    "SPEC A §4.1 (TAH §5.9: PDF/A-1a or PDF/A-2a)",
    "produce attachments as PDF/A-2a (or 1a) and declare it in the XMP metadata",
)
R_BATCH = (
    "SPEC A §1.3 (BatchID repeated in each Bericht, BerichtLeverancierID = the CPA's OIN)",
    "repeat the batch's BatchID in every BerichtInformatie and send your own OIN as "
    "BerichtLeverancierID",
)
R_TEXT = (
    "SPEC A §1.3 (BerichtTekst: a line break is the literal \\r\\n)",
    "write line breaks in BerichtTekst as the four characters \\r\\n",
)
R_ANSWER = (
    "the real service's answer (SPEC Part C)",
    "see the refusal's reason; it names what to change",
)


def _finding(rule: tuple[str, str], message: str, severity: str = "error") -> Finding:
    return Finding(message, rule[0], rule[1], severity)


@dataclass
class Memory:
    """What this listener has seen, for duplicate checks across requests."""

    wsa_ids: dict[tuple[str, str], str] = field(default_factory=dict)  # (OIN, id) -> body hash
    ebms_ids: dict[tuple[str, str], str] = field(default_factory=dict)
    bericht_ids: set[tuple[str, str]] = field(default_factory=set)
    stuf_refs: dict[tuple[str, str], str] = field(default_factory=dict)


@dataclass(frozen=True)
class Context:
    """What the graders need of the configuration the listener serves."""

    organisations: Organisations
    receiver_oin: str
    schemas: SchemaSet
    wus_services: Mapping[str, WusService]  # by path
    ebms_schemas: Mapping[str, str]  # Action -> XSD file of its payload
    cpas: CpaStore
    personal_limit: int
    general_limit: int
    xml_limits: XmlLimits
    memory: Memory = field(default_factory=Memory)
    wss: WsSecurity | None = None  # the service's WS-Security key and signer trust


def _unquoted(value: str) -> tuple[str, bool]:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1], True
    return value, False


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _repeat(
    seen: dict[tuple[str, str], str], key: tuple[str, str], digest: str, what: str
) -> list[Finding]:
    previous = seen.get(key)
    seen[key] = digest
    if previous is None:
        return []
    if previous == digest:
        return [
            _finding(
                R_DUPLICATE,
                f"{what} {key[1]} was sent before: a resend of the same message",
                "warning",
            )
        ]
    return [_finding(R_DUPLICATE, f"{what} {key[1]} was used before for a different message")]


# --- WUS --------------------------------------------------------------------------------------


def grade_wus(
    context: Context, path: str, headers: Mapping[str, str], body: bytes, oin: str | None
) -> tuple[str, list[Finding]]:
    """The operation's name (or a description) and the findings of one WUS request."""
    findings: list[Finding] = []
    service = context.wus_services[path]
    try:
        check_content_type(headers.get("content-type"))
    except AdapterError as exc:
        findings.append(_finding(R_CONTENT_TYPE, str(exc)))
    organisation = context.organisations.find(oin, None) if oin else None
    if organisation is None:
        findings.append(
            _finding(
                R_IDENTITY, f"the certificate's OIN {oin} is not a configured organisation (0002)"
            )
        )
    elif service.name not in organisation.services:
        findings.append(
            _finding(R_IDENTITY, f"{organisation.name} is not granted {service.name} (0002)")
        )
    try:
        envelope = parse_envelope(body, context.xml_limits)
    except AdapterError as exc:
        findings.append(_finding(R_ENVELOPE, f"the envelope is refused: {exc}"))
        return "unreadable request", findings
    if organisation is not None and organisation.requires_signature:
        opened, refused = _ws_security(context, envelope, organisation)
        findings += refused
        if opened is None:
            return "encrypted request", findings
        envelope = opened
    operation = service.operation_for(envelope.payload)
    if operation is None:
        findings.append(
            _finding(
                R_OPERATION,
                f"{etree.QName(envelope.payload).localname} is no operation of {service.name}",
            )
        )
        return etree.QName(envelope.payload).localname, findings
    findings += _soap_action(headers.get("soapaction"), operation, service)
    findings += _addressing(context, envelope, operation, organisation, oin, body)
    try:
        context.schemas.validate(envelope.payload, operation.schema)
    except Rejected as exc:
        findings.append(
            _finding(R_XSD, f"the payload is not valid against {operation.schema}: {exc}")
        )
    if organisation is not None:
        findings += _payload_rules(context, operation, envelope.payload, organisation, body)
    return operation.name, findings


def _ws_security(
    context: Context, envelope: Envelope, organisation: Organisation
) -> tuple[Envelope | None, list[Finding]]:
    """2W-be-S/SE: the Body decrypted (2W-be-SE) and the signature verified as the service
    does it; the WS-Security fault it answers is the finding. None: the Body stays closed."""
    if context.wss is None:
        raise ValueError("a 2W-be-S organisation, but no WS-Security key in the context")
    try:
        if organisation.requires_encryption:
            envelope = decrypt_body(envelope, context.wss.credentials, context.xml_limits)
    except SoapFault as fault:
        return None, [_finding(R_WSS, f"the Body cannot be decrypted: {_wss_fault(fault)}")]
    try:
        verify_request(envelope, context.wss.trust, organisation.oin, datetime.now(UTC))
    except SoapFault as fault:
        return envelope, [_finding(R_WSS, f"wsse:Security does not hold: {_wss_fault(fault)}")]
    return envelope, []


def _wss_fault(fault: SoapFault) -> str:
    return f"{fault.receipt_code} {fault.message or fault.summary}"


def _soap_action(header: str | None, operation: Operation, service: WusService) -> list[Finding]:
    if header is None:
        return [_finding(R_SOAP_ACTION, "the SOAPAction header is missing (0003)")]
    value, quoted = _unquoted(header)
    findings = []
    if not quoted:
        findings.append(_finding(R_SOAP_ACTION, f"SOAPAction {header!r} is not quoted", "warning"))
    if not service.any_soap_action and value not in ("", operation.action):
        findings.append(
            _finding(
                R_SOAP_ACTION, f"SOAPAction {value!r} is not {operation.action!r} or empty (0003)"
            )
        )
    return findings


def _addressing(
    context: Context,
    envelope: Envelope,
    operation: Operation,
    organisation: Organisation | None,
    oin: str | None,
    body: bytes,
) -> list[Finding]:
    findings = []
    signs = organisation is not None and organisation.requires_signature
    for header in envelope.headers:
        if signs and header.tag == f"{{{WSSE}}}Security":
            continue
        if isinstance(header.tag, str) and not header.tag.startswith(_W):
            findings.append(
                _finding(
                    R_HEADERS,
                    f"header block {etree.QName(header).text} is not WS-Addressing (0010)",
                )
            )
    addressing = read_addressing(envelope.headers)
    if addressing is None:
        if organisation is not None and organisation.requires_addressing:
            findings.append(
                _finding(
                    R_WSA,
                    "no WS-Addressing headers, and this organisation is configured for 2W-be "
                    "(0005)",
                )
            )
        else:
            findings.append(
                _finding(
                    R_WSA,
                    "no WS-Addressing headers: accepted (the Logius form), but Digikoppeling "
                    "2W-be asks for To, Action and MessageID",
                    "warning",
                )
            )
        return findings
    to = addressing.to
    if to is None or not urlsplit(to).scheme:
        findings.append(_finding(R_WSA, "wsa:To is missing or not an absolute URI (0005)"))
    elif (to_oin := parse_qs(urlsplit(to).query).get("OIN")) and to_oin[0] != context.receiver_oin:
        findings.append(
            _finding(
                R_WSA,
                f"wsa:To names OIN {to_oin[0]}, not MijnOverheid's {context.receiver_oin} (0011)",
            )
        )
    if addressing.action is None:
        findings.append(_finding(R_WSA, "wsa:Action is missing (0006)"))
    elif addressing.action != operation.action:
        findings.append(
            _finding(
                R_WSA, f"wsa:Action is {addressing.action}, the WSDL says {operation.action} (0011)"
            )
        )
    if addressing.message_id is None:
        findings.append(_finding(R_WSA, "wsa:MessageID is missing (0007)"))
    elif oin is not None:
        findings += _repeat(
            context.memory.wsa_ids, (oin, addressing.message_id), _digest(body), "wsa:MessageID"
        )
    if addressing.reply_to not in (None, ANONYMOUS):
        findings.append(
            _finding(
                R_WSA,
                f"wsa:ReplyTo is {addressing.reply_to}: synchronous WUS answers go back on the "
                "connection (anonymous) (0011)",
            )
        )
    sender = next((h for h in envelope.headers if h.tag == f"{_W}From"), None)
    address = sender.findtext(f"{_W}Address") if sender is not None else None
    from_oin = parse_qs(urlsplit(address or "").query).get("OIN")
    if from_oin and from_oin[0] != oin:
        findings.append(
            _finding(R_IDENTITY, f"wsa:From names OIN {from_oin[0]}, the certificate {oin}")
        )
    return findings


def _texts(payload: etree._Element, local_name: str) -> list[str]:
    return [(e.text or "").strip() for e in payload.iter(f"{{*}}{local_name}")]


def _payload_rules(
    context: Context,
    operation: Operation,
    payload: etree._Element,
    organisation: Organisation,
    body: bytes,
) -> list[Finding]:
    findings = []
    if operation.name == "ValidateAbonnementen":
        for code in _texts(payload, "berichtleverancierCode"):
            if not organisation.may_deliver_for(code):
                findings.append(
                    _finding(
                        R_IDENTITY,
                        f"berichtleverancierCode {code} is not the certificate's OIN "
                        f"{organisation.oin}",
                    )
                )
        for code in _texts(payload, "berichtTypeCode"):
            if code not in organisation.bericht_types:
                findings.append(
                    _finding(
                        R_BERICHT_TYPE,
                        f"berichtTypeCode {code} is not granted (or not active) for "
                        f"{organisation.name}",
                    )
                )
        keys = _texts(payload, "Key")
        if not 1 <= len(keys) <= 250:
            findings.append(_finding(R_KLANTEN, f"{len(keys)} Klanten in one request"))
        findings += [
            _finding(R_BSN, f"Klant {n}: Key fails the elfproef")
            for n, key in enumerate(keys, 1)
            if not is_bsn(key)
        ]
    elif operation.name == "zakLk01":
        zender = _texts(payload, "organisatie")
        if zender[:1] and not organisation.may_deliver_for(zender[0]):
            findings.append(
                _finding(
                    R_IDENTITY,
                    f"zender/organisatie {zender[0]} is not the certificate's OIN (LZ007)",
                )
            )
        if zender[1:2] and zender[1] != context.receiver_oin:
            findings.append(
                _finding(
                    (
                        "SPEC Part C (StUF zakLk01: ontvanger)",
                        f"send ontvanger/organisatie {context.receiver_oin}",
                    ),
                    f"ontvanger/organisatie {zender[1]} is not MijnOverheid's OIN (LZ007)",
                )
            )
        for reference in _texts(payload, "referentienummer")[:1]:
            findings += _repeat(
                context.memory.stuf_refs,
                (organisation.oin, reference),
                _digest(body),
                "referentienummer",
            )
        findings += [
            _finding(R_BSN, "inp.bsn fails the elfproef (LZ002)")
            for bsn in _texts(payload, "inp.bsn")
            if not is_bsn(bsn)
        ]
    else:  # the Lopende Zaken WUS operations
        findings += [
            _finding(R_BSN, "a BSN fails the elfproef (LZ002)")
            for bsn in _texts(payload, "bsn")
            if not is_bsn(bsn)
        ]
        for moment in _texts(payload, "datumStatusGezet"):
            if moment and not (moment.endswith("Z") or "+" in moment[10:] or "-" in moment[10:]):
                findings.append(
                    _finding(
                        (
                            "SPEC Part C (datumStatusGezet without offset is Europe/Amsterdam)",
                            "send datumStatusGezet with its offset (Z or +01:00)",
                        ),
                        f"datumStatusGezet {moment} has no offset: it is read as Dutch time",
                        "warning",
                    )
                )
    return findings


# --- ebMS -------------------------------------------------------------------------------------


def grade_ebms(
    context: Context, headers: Mapping[str, str], body: bytes, oin: str | None
) -> tuple[str, list[Finding]]:
    """The Action (or a description) and the findings of one ebMS message."""
    findings: list[Finding] = []
    action_header = headers.get("soapaction")
    if action_header is None or _unquoted(action_header)[0] != "ebXML":
        findings.append(
            _finding(R_EBMS_SOAP_ACTION, f'SOAPAction is {action_header!r}, not "ebXML"')
        )
    content_type = headers.get("content-type", "")
    try:
        media, params = parse_content_type(content_type)
        if media != "multipart/related":
            findings.append(
                _finding(R_MIME, f"Content-Type {media}: an ebMS message is multipart/related")
            )
        elif params.get("type", "").lower() != "text/xml":
            findings.append(
                _finding(R_MIME, 'multipart/related without type="text/xml"', "warning")
            )
        package = parse_package(content_type, body)
        envelope = parse_untrusted(package.soap.body, context.xml_limits)
        header = read_header(envelope)
    except (EbmsError, Rejected) as exc:
        findings.append(_finding(R_MIME, f"the message cannot be read: {exc}"))
        return "unreadable message", findings
    for part in package.attachments:
        if part.headers.get("content-transfer-encoding", "binary").lower() not in (
            "binary",
            "8bit",
        ):
            findings.append(
                _finding(
                    R_MIME,
                    f"part <{part.content_id}> uses Content-Transfer-Encoding "
                    f"{part.headers['content-transfer-encoding']}: it should not be used",
                    "warning",
                )
            )
    findings += _message_header(context, envelope, header, oin, body)
    if header.service != MSH_SERVICE:
        findings += _manifest(header, package)
        findings += _ebms_payload(context, header, package, oin)
    return header.action, findings


def _message_header(
    context: Context, envelope: etree._Element, header: MessageHeader, oin: str | None, body: bytes
) -> list[Finding]:
    findings = []
    element = envelope.find(f"{_S}Header/{_E}MessageHeader")
    if element is not None and element.get(f"{_S}mustUnderstand") not in ("1", "true"):
        findings.append(
            _finding(R_HEADER, 'eb:MessageHeader lacks SOAP:mustUnderstand="1"', "warning")
        )
    if "@" not in header.message_id:
        findings.append(
            _finding(
                R_HEADER,
                f"MessageId {header.message_id} is not of the form UUID@URI (EB013)",
                "warning",
            )
        )
    moment = header.timestamp
    now = datetime.now(UTC)
    if not abs(moment - now) < CLOCK_SKEW:
        findings.append(
            _finding(
                R_HEADER,
                f"Timestamp {moment.isoformat()} is more than 5 minutes from now ({now:%H:%M:%S} "
                "UTC): check the clock and send UTC",
                "warning",
            )
        )
    organisation = context.organisations.find(oin, None) if oin else None
    if organisation is None or oin is None:
        findings.append(
            _finding(R_IDENTITY, f"the certificate's OIN {oin} is not a configured organisation")
        )
        return findings
    party = Party(oin=oin, organisation=organisation, fingerprint="", subject="")
    try:
        _cpa, sender = check_route(header, context.cpas, party, context.receiver_oin, now)
    except EbmsError as exc:
        findings.append(_finding(R_HEADER, f"{exc.error_code}: {exc.description}"))
        return findings
    if header.service == MSH_SERVICE:
        return findings
    findings += _repeat(
        context.memory.ebms_ids, (oin, header.message_id), _digest(body), "MessageId"
    )
    if sender.duplicate_elimination == "always" and not header.duplicate_elimination:
        findings.append(
            _finding(R_RELIABILITY, "no eb:DuplicateElimination, which the CPA requires (osb-rm)")
        )
    if sender.ack_requested == "always" and not header.ack_requested:
        findings.append(
            _finding(R_RELIABILITY, "no eb:AckRequested, which the CPA requires (osb-rm)")
        )
    ack = envelope.find(f"{_S}Header/{_E}AckRequested")
    if ack is not None and ack.get(f"{_S}actor", TO_PARTY_MSH) != TO_PARTY_MSH:
        findings.append(
            _finding(
                R_RELIABILITY,
                f"AckRequested for actor {ack.get(f'{_S}actor')}: only toPartyMSH is supported",
            )
        )
    if header.sync_reply and sender.sync_reply_mode != "mshSignalsOnly":
        findings.append(
            _finding(R_RELIABILITY, "eb:SyncReply while the CPA says syncReplyMode none")
        )
    return findings


def _manifest(header: MessageHeader, package: Package) -> list[Finding]:
    findings = []
    if not header.manifest:
        findings.append(
            _finding(R_MANIFEST, "a business message without eb:Manifest reference to its payload")
        )
    for cid in header.manifest:
        try:
            package.attachment(cid)
        except EbmsError as exc:
            findings.append(_finding(R_MANIFEST, f"MimeProblem: {exc.description}"))
    listed = set(header.manifest)
    for part in package.attachments:
        if part.content_id not in listed:
            findings.append(
                _finding(
                    R_MANIFEST, f"part <{part.content_id}> is not listed in the Manifest", "warning"
                )
            )
    return findings


def _moment(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _ebms_payload(
    context: Context, header: MessageHeader, package: Package, oin: str | None
) -> list[Finding]:
    schema = context.ebms_schemas.get(header.action)
    if schema is None or not header.manifest or oin is None:
        return []
    try:
        raw = package.attachment(header.manifest[0]).body
        payload = parse_untrusted(raw, context.xml_limits)
        context.schemas.validate(payload, schema)
    except EbmsError:
        return []  # reported with the Manifest
    except Rejected as exc:
        return [_finding(R_XSD, f"the payload is not valid against {schema}: {exc}")]
    organisation = context.organisations.find(oin, None)
    if organisation is None:
        return []
    if payload.tag == f"{{{BATCH}}}Berichten":
        return _batch(context, payload, package, organisation)
    findings = []
    for leverancier in payload.findall("BerichtLeverancier/OIN"):
        if not organisation.may_deliver_for((leverancier.text or "").strip()):
            findings.append(
                _finding(
                    R_IDENTITY, f"BerichtLeverancier/OIN {leverancier.text} is not the sender's OIN"
                )
            )
    invalid = [b for b in _texts(payload, "BSN") if not is_bsn(b)]
    if invalid:
        findings.append(
            _finding(
                R_BSN,
                f"{len(invalid)} BSN(s) fail the elfproef (answered isBerichtSturen false with "
                "Fout)",
            )
        )
    return findings


def _batch(
    context: Context, batch: etree._Element, package: Package, organisation: Organisation
) -> list[Finding]:
    findings = []
    b, letter, extension = f"{{{BATCH}}}", f"{{{LETTER}}}", f"{{{EXTENSION}}}"
    batch_id = batch.findtext(f"{b}BatchInformatie/{b}BatchID")
    leverancier = batch.findtext(f"{b}BatchInformatie/{b}BerichtLeverancierID") or ""
    if not organisation.may_deliver_for(leverancier):
        findings.append(
            _finding(
                R_BATCH,
                f"BerichtLeverancierID {leverancier} is not the CPA's OIN {organisation.oin} "
                "(OinInCPAKomtNietOvereenMetOinInBericht)",
            )
        )
    now = datetime.now(UTC)
    aanmaak = _moment(batch.findtext(f"{b}BatchInformatie/{b}AanmaakDatum"))
    if aanmaak is not None and now - aanmaak > DATE_WINDOW:
        findings.append(
            _finding(
                R_DATE,
                f"AanmaakDatum {aanmaak:%Y-%m-%d} is more than 13 days ago "
                "(AanmaakDatumLigtTeVerInHetVerleden)",
            )
        )
    if aanmaak is not None and aanmaak - now > CLOCK_SKEW:
        findings.append(
            _finding(R_DATE, f"AanmaakDatum {aanmaak.isoformat()} lies in the future", "warning")
        )
    in_batch: set[str] = set()
    for number, bericht in enumerate(batch.iter(f"{letter}Bericht"), start=1):
        where = f"Bericht {number}"
        info = bericht.find(f"{letter}BerichtInformatie")
        if info is None:
            continue
        bericht_id = info.findtext(f"{letter}BerichtID") or ""
        if info.findtext(f"{letter}BatchID") != batch_id:
            findings.append(
                _finding(R_BATCH, f"{where}: BatchID differs from the batch's {batch_id}")
            )
        if bericht_id in in_batch:
            findings.append(
                _finding(
                    R_DUPLICATE,
                    f"{where}: BerichtID {bericht_id} occurs twice in this batch "
                    "(BerichtBestaatAl)",
                )
            )
        elif (organisation.oin, bericht_id) in context.memory.bericht_ids:
            findings.append(
                _finding(
                    R_DUPLICATE,
                    f"{where}: BerichtID {bericht_id} was sent before: BerichtBestaatAl unless it "
                    "is the resend of a refused letter",
                    "warning",
                )
            )
        in_batch.add(bericht_id)
        context.memory.bericht_ids.add((organisation.oin, bericht_id))
        code = info.findtext(f"{letter}BerichtType") or ""
        if code not in organisation.bericht_types:
            findings.append(
                _finding(
                    R_BERICHT_TYPE,
                    f"{where}: BerichtType {code} is not granted or not active "
                    "(BerichtTypeNietOndersteund)",
                )
            )
        if not is_bsn((info.findtext(f"{letter}GebruikerID") or "").strip()):
            findings.append(
                _finding(
                    R_BSN, f"{where}: GebruikerID fails the elfproef (NietActiefOfGeabonneerd)"
                )
            )
        publicatie = _moment(info.findtext(f"{letter}PublicatieDatum"))
        if publicatie is not None and publicatie - now > DATE_WINDOW:
            findings.append(
                _finding(
                    R_DATE,
                    f"{where}: PublicatieDatum is more than 13 days ahead "
                    "(PublicatieDatumLigtTeVerInDeToekomst)",
                )
            )
        tekst = info.findtext(f"{letter}BerichtTekst") or ""
        if "\n" in tekst or "\r" in tekst:
            findings.append(
                _finding(
                    R_TEXT,
                    f"{where}: BerichtTekst holds a real line break, which is not shown",
                    "warning",
                )
            )
        findings += _attachments(context, bericht, package, organisation, where, letter, extension)
    return findings


def _attachments(
    context: Context,
    bericht: etree._Element,
    package: Package,
    organisation: Organisation,
    where: str,
    letter: str,
    extension: str,
) -> list[Finding]:
    findings = []
    personal: list[tuple[str, bytes]] = []
    for bijlage in bericht.iter(f"{letter}Bijlage"):
        try:
            data = base64.b64decode(bijlage.findtext(f"{letter}Inhoud") or "", validate=False)
        except (binascii.Error, ValueError):
            data = b""
        personal.append((f"Bijlage {bijlage.findtext(f'{letter}Volgorde')}", data))
    general: list[tuple[str, bytes]] = []
    for bijlage in bericht.iter(f"{extension}AlgemeneBijlage"):
        reference = bijlage.findtext(f"{extension}Referentie") or ""
        try:
            general.append((f"AlgemeneBijlage {reference}", package.attachment(reference).body))
        except EbmsError as exc:
            findings.append(_finding(R_MANIFEST, f"{where}: {exc.description}"))
    total = sum(len(d) for _, d in personal)
    if total > context.personal_limit:
        findings.append(
            _finding(
                R_ATTACHMENT,
                f"{where}: personal attachments are {total} bytes, over {context.personal_limit} "
                "(BijlageTeGroot)",
            )
        )
    total_general = sum(len(d) for _, d in general)
    if total_general > context.general_limit:
        findings.append(
            _finding(
                R_ATTACHMENT,
                f"{where}: general attachments are {total_general} bytes, over "
                f"{context.general_limit} (BijlageTeGroot)",
            )
        )
    for name, data in personal + general:
        verdict = check_pdf(data)
        if verdict.problem is not None:
            findings.append(
                _finding(R_ATTACHMENT, f"{where}: {name} {verdict.problem} (TechnischProbleem)")
            )
        elif verdict.pdfa is None:
            severity = "error" if organisation.require_pdfa else "warning"
            findings.append(
                _finding(
                    R_PDFA, f"{where}: {name} declares no PDF/A part in its XMP metadata", severity
                )
            )
        elif not verdict.pdfa.endswith("A"):
            findings.append(
                _finding(
                    R_PDFA,
                    f"{where}: {name} declares PDF/A-{verdict.pdfa}; the TAH asks for conformance "
                    "level a",
                    "warning",
                )
            )
    return findings


# --- the service's answer -------------------------------------------------------------------


def grade_answer(
    status: int, content_type: str, body: bytes, trusted_root: Path | None = None
) -> list[Finding]:
    """What the real service refused in its answer (a SOAP fault or an ebMS MessageError), and
    for a batch each Bericht it did not accept, as its receipt records them."""
    if not body.strip():
        return []
    try:
        soap = body
        if content_type.lower().startswith("multipart/"):
            soap = parse_package(content_type, body).soap.body
        document = parse_untrusted(soap)
    except AdapterError:
        return []
    findings = []
    fault = document.find(f"{_S}Body/{_S}Fault")
    if fault is not None:
        message = next(
            (e.text for e in fault.iter("{*}Message", "{*}omschrijving") if e.text), None
        )
        findings.append(
            _finding(
                R_ANSWER,
                f"the service refused (HTTP {status}): {fault.findtext('faultstring')}"
                + (f": {message}" if message else ""),
            )
        )
    error = document.find(f"{_S}Header/{_E}ErrorList/{_E}Error")
    if error is not None:
        findings.append(
            _finding(
                R_ANSWER,
                f"the service answered MessageError {error.get(f'{_E}errorCode')}: "
                f"{error.findtext(f'{_E}Description')}",
            )
        )
    if trusted_root is not None and document.find(f"{_S}Header/{_E}Acknowledgment") is not None:
        try:
            receipt = verify(document, trusted_root).receipt
        except ReceiptInvalid:
            return findings
        for bericht in receipt.outcome.berichten:
            if bericht.verwerkingscode != "Verwerkt":
                findings.append(
                    _finding(
                        R_ANSWER,
                        f"Bericht {bericht.bericht_id}: {bericht.verwerkingscode}"
                        + (f" ({bericht.reden})" if bericht.reden else ""),
                    )
                )
    return findings

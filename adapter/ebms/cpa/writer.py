"""Writing a CPA for one organisation and MijnOverheid, in one of the six osb profiles.

`dk-adapter cpa generate` uses it so that a leverancier can make a development or test CPA
for the profile it wants to test (osb-rm, osb-rm-s, osb-rm-e, osb-be, osb-be-s, osb-be-e);
in pre-production and production Logius makes the CPA. What is written is what `reader.py`
reads: both parties on one channel each, the CPA Register's defaults for reliability, and
for -s/-e the NonRepudiation and DigitalEnvelope elements with the algorithms
SPEC-digikoppeling §1.5 asks for, naming each party's certificate when one is given.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from adapter.ebms.cpa.reader import NSMAP, OIN_PARTY_TYPE, TP, XLINK
from adapter.soap.xmlenc import AES256_GCM, DSIG, RSA_SHA256, SHA256

PROFILES = ("osb-rm", "osb-rm-s", "osb-rm-e", "osb-be", "osb-be-s", "osb-be-e")
SERVICE = "urn:osb:services:MIJNOVERHEID.ebMS.BB.2.0"
SERVICE_TYPE = "urn:osb:services"
# (request, answer) Actions per business conversation, sent by the organisation (SR).
CONVERSATIONS = (
    ("GLOBE-R-BV-Request", "GLOBE-R-BV-Result"),
    ("GLOBE-R-A-Request", "GLOBE-R-A-Result"),
)
TO_PARTY_MSH = "urn:oasis:names:tc:ebxml-msg:actor:toPartyMSH"
_T = f"{{{TP}}}"


@dataclass(frozen=True)
class CpaPartySpec:
    """One party of a CPA to write."""

    oin: str
    name: str
    role: str  # "SR" (the organisation) or "SP" (MijnOverheid)
    endpoint: str  # https URL where this party receives ebMS messages
    certificate: x509.Certificate | None = None  # signing and encryption; None: by chain+OIN


@dataclass(frozen=True)
class CpaSpec:
    organisation: CpaPartySpec
    mijnoverheid: CpaPartySpec
    profile: str = "osb-rm"
    start: datetime | None = None  # default: now, truncated to the day
    years: int = 3
    sync_reply_mode: str = "none"  # "none" or "mshSignalsOnly" (reliable profiles only)
    retries: int = 8
    retry_interval: str = "PT3H"
    persist_duration: str = "P1D"
    sequence: int = 1  # the last part of the CPAId: a second CPA for the same two parties

    @property
    def cpa_id(self) -> str:
        return (
            f"MIJNOVERHEID-EBMS-BB-2-0_{self.organisation.oin}_{self.mijnoverheid.oin}"
            f"_{self.sequence}"
        )


def _sub(
    parent: etree._Element, tag: str, text: str | None = None, **attributes: str
) -> etree._Element:
    element = etree.SubElement(parent, f"{_T}{tag}")
    for key, value in attributes.items():
        element.set(key if key.startswith("{") else f"{_T}{key}", value)
    if text is not None:
        element.text = text
    return element


def _action_binding(
    parent: etree._Element,
    kind: str,
    prefix: str,
    action: str,
    channel: str,
    other: str,
    secure: str,
) -> None:
    side = "S" if kind == "CanSend" else "R"
    wrapper = _sub(parent, kind)
    this = _sub(
        wrapper,
        "ThisPartyActionBinding",
        id=f"{prefix}_{action}_{side}",
        action=action,
        packageId="BerichtPackage",
    )
    signed = secure != ""
    _sub(
        this,
        "BusinessTransactionCharacteristics",
        isNonRepudiationRequired=str(signed).lower(),
        isNonRepudiationReceiptRequired=str(signed).lower(),
        isConfidential="persistent" if secure == "-e" else "transient",
        isAuthenticated="persistent" if signed else "transient",
        isTamperProof="persistent" if signed else "transient",
        isAuthorizationRequired="true",
        isIntelligibleCheckRequired="false",
        timeToPerform="P2D",
    )
    _sub(this, "ChannelId", channel)
    _sub(wrapper, "OtherPartyActionBinding", f"{other}_{action}_{'R' if side == 'S' else 'S'}")


def _reliability(binding: etree._Element, spec: CpaSpec, reliable: bool) -> None:
    if not reliable:
        return
    rm = _sub(binding, "ReliableMessaging")
    _sub(rm, "Retries", str(spec.retries))
    _sub(rm, "RetryInterval", spec.retry_interval)
    _sub(rm, "MessageOrderSemantics", "NotGuaranteed")
    _sub(binding, "PersistDuration", spec.persist_duration)


def _party_info(
    root: etree._Element, party: CpaPartySpec, other: CpaPartySpec, spec: CpaSpec
) -> None:
    reliable = spec.profile.startswith("osb-rm")
    secure = spec.profile.removeprefix("osb-rm").removeprefix("osb-be")
    prefix, other_prefix = party.role, other.role
    channel, cert_id = f"{prefix}_Channel", f"{prefix}_Cert"
    info = _sub(
        root,
        "PartyInfo",
        partyName=party.name,
        defaultMshChannelId=channel,
        defaultMshPackageId="MshSignalPackage",
    )
    _sub(info, "PartyId", party.oin, type=OIN_PARTY_TYPE)
    _sub(
        info,
        "PartyRef",
        **{f"{{{XLINK}}}type": "simple", f"{{{XLINK}}}href": f"urn:osb:oin:{party.oin}"},
    )
    role = _sub(info, "CollaborationRole")
    _sub(
        role,
        "ProcessSpecification",
        name="MijnOverheid Berichtenbox BerichtVerwerk",
        version="2.0",
        **{f"{{{XLINK}}}type": "simple", f"{{{XLINK}}}href": SERVICE},
    )
    _sub(
        role,
        "Role",
        name=party.role,
        **{f"{{{XLINK}}}type": "simple", f"{{{XLINK}}}href": f"{SERVICE}#{party.role}"},
    )
    binding = _sub(role, "ServiceBinding")
    _sub(binding, "Service", SERVICE, type=SERVICE_TYPE)
    for request, answer in CONVERSATIONS:
        sends, receives = (request, answer) if party.role == "SR" else (answer, request)
        _action_binding(binding, "CanSend", prefix, sends, channel, other_prefix, secure)
        _action_binding(binding, "CanReceive", prefix, receives, channel, other_prefix, secure)
    if secure and party.certificate is not None:
        certificate = _sub(info, "Certificate", certId=cert_id)
        data = etree.SubElement(
            etree.SubElement(certificate, f"{{{DSIG}}}KeyInfo", nsmap={"ds": DSIG}),
            f"{{{DSIG}}}X509Data",
        )
        etree.SubElement(data, f"{{{DSIG}}}X509Certificate").text = base64.b64encode(
            party.certificate.public_bytes(serialization.Encoding.DER)
        ).decode("ascii")
    elif secure:
        _sub(info, "Certificate", certId=cert_id)
    delivery = _sub(
        info,
        "DeliveryChannel",
        channelId=channel,
        transportId=f"{prefix}_Transport",
        docExchangeId=f"{prefix}_DocExchange",
    )
    _sub(
        delivery,
        "MessagingCharacteristics",
        syncReplyMode=spec.sync_reply_mode if reliable else "none",
        ackRequested="always" if reliable else "never",
        actor=TO_PARTY_MSH,
        ackSignatureRequested="always" if secure and reliable else "never",
        duplicateElimination="always" if reliable else "never",
    )
    transport = _sub(info, "Transport", transportId=f"{prefix}_Transport")
    sender = _sub(transport, "TransportSender")
    _sub(sender, "TransportProtocol", "HTTP", version="1.1")
    _sub(_sub(sender, "TransportClientSecurity"), "TransportSecurityProtocol", "TLS", version="1.2")
    receiver = _sub(transport, "TransportReceiver")
    _sub(receiver, "TransportProtocol", "HTTP", version="1.1")
    _sub(receiver, "Endpoint", uri=party.endpoint, type="allPurpose")
    exchange = _sub(info, "DocExchange", docExchangeId=f"{prefix}_DocExchange")
    sender_binding = _sub(exchange, "ebXMLSenderBinding", version="2.0")
    _reliability(sender_binding, spec, reliable)
    if secure:
        non_repudiation = _sub(sender_binding, "SenderNonRepudiation")
        _sub(non_repudiation, "NonRepudiationProtocol", DSIG)
        _sub(non_repudiation, "HashFunction", SHA256)
        _sub(non_repudiation, "SignatureAlgorithm", RSA_SHA256, w3c=RSA_SHA256)
        _sub(non_repudiation, "SigningCertificateRef", certId=cert_id)
    if secure == "-e":
        envelope = _sub(sender_binding, "SenderDigitalEnvelope")
        _sub(envelope, "DigitalEnvelopeProtocol", "XMLENC", version="2.0")
        _sub(envelope, "EncryptionAlgorithm", AES256_GCM, w3c=AES256_GCM)
    receiver_binding = _sub(exchange, "ebXMLReceiverBinding", version="2.0")
    _reliability(receiver_binding, spec, reliable)
    if secure == "-e":
        envelope = _sub(receiver_binding, "ReceiverDigitalEnvelope")
        _sub(envelope, "DigitalEnvelopeProtocol", "XMLENC", version="2.0")
        _sub(envelope, "EncryptionAlgorithm", AES256_GCM, w3c=AES256_GCM)
        _sub(envelope, "EncryptionCertificateRef", certId=cert_id)


def _packaging(root: etree._Element) -> None:
    header = _sub(root, "SimplePart", id="MessageHeader", mimetype="text/xml")
    namespace = "http://www.oasis-open.org/committees/ebxml-msg/schema/msg-header-2_0.xsd"
    _sub(header, "NamespaceSupported", namespace, location=namespace, version="2.0")
    _sub(root, "SimplePart", id="Payload", mimetype="*/*")
    for package_id, composite, constituents in (
        ("MshSignalPackage", "MshSignal", ("MessageHeader",)),
        ("BerichtPackage", "Bericht", ("MessageHeader", "Payload")),
    ):
        packaging = _sub(root, "Packaging", id=package_id)
        _sub(packaging, "ProcessingCapabilities", parse="true", generate="true")
        element = _sub(
            _sub(packaging, "CompositeList"),
            "Composite",
            id=composite,
            mimetype="multipart/related",
            mimeparameters="type=text/xml",
        )
        for constituent in constituents:
            part = _sub(element, "Constituent", idref=constituent)
            if constituent == "Payload":
                part.set(f"{_T}minOccurs", "1")


def write_cpa(spec: CpaSpec, now: datetime) -> bytes:
    """The CPA document for `spec` (ValueError for an unknown profile)."""
    if spec.profile not in PROFILES:
        raise ValueError(f"profile {spec.profile!r}: expected one of {', '.join(PROFILES)}")
    for party in (spec.organisation, spec.mijnoverheid):
        if spec.profile.endswith("-e") and party.certificate is None:
            raise ValueError(
                f"profile {spec.profile} needs the certificate of {party.name} ({party.oin}): "
                "messages to it are encrypted for that certificate"
            )
    start = spec.start or now.replace(hour=0, minute=0, second=0, microsecond=0)
    root = etree.Element(f"{_T}CollaborationProtocolAgreement", nsmap=dict(NSMAP))
    root.set(f"{_T}cpaid", spec.cpa_id)
    root.set(f"{_T}version", "1")
    root.append(etree.Comment(f" profile {spec.profile}, made by dk-adapter cpa generate "))
    _sub(root, "Status", value="agreed")
    _sub(root, "Start", _iso(start))
    _sub(root, "End", _iso(start + timedelta(days=365 * spec.years)))
    for party, other in (
        (spec.organisation, spec.mijnoverheid),
        (spec.mijnoverheid, spec.organisation),
    ):
        _party_info(root, party, other, spec)
    _packaging(root)
    etree.indent(root, space="\t")
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return data


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def load_certificate(pem: bytes) -> x509.Certificate:
    """The first certificate of a PEM text (a file with the chain after it is fine)."""
    certificates: Sequence[x509.Certificate] = x509.load_pem_x509_certificates(pem)
    return certificates[0]

"""Reading a CPA file into the values of `model.py`, checking every rule on the way.

A CPA (Collaboration-Protocol Agreement) fixes who may send which action to whom, where, and
with which reliability. This module is the only code that parses CPA XML. It does not stop at
the first problem: every problem is collected as a `CpaError` naming the file, the place in
the document (an XPath without prefixes) and the reason, like `ConfigError` does for the TOML
configuration, so that `dk-adapter cpa check` can list them all at once.

What is read, per party (PartyInfo):

* identity: `PartyId` (type `urn:osb:oin`, a bare 20-digit OIN), `CollaborationRole/Role/@name`,
  `CollaborationRole/ServiceBinding/Service` (+ `@type`), the actions of `CanSend` and
  `CanReceive`;
* delivery: the party's *receiving* `DeliveryChannel`, the one its `CanReceive` bindings name
  (or its `defaultMshChannelId` when it receives no business action). Its
  `MessagingCharacteristics` give syncReplyMode / ackRequested / duplicateElimination, its
  `Transport/TransportReceiver/Endpoint/@uri` the URL messages to the party are posted to,
  and `DocExchange/ebXMLReceiverBinding` gives `ReliableMessaging/Retries`, `RetryInterval`
  and `PersistDuration`. So a party's values say how to deliver *to* it: the retries we
  make when we send to it, and the window in which it eliminates duplicates. This is how
  ebms-core, the reference MSH for Digikoppeling, reads them as well;
* end-to-end security (osb -s, -e), from the same DocExchange: `ebXMLSenderBinding/
  SenderNonRepudiation` (signed: HashFunction, SignatureAlgorithm, SigningCertificateRef),
  `SenderDigitalEnvelope` / `ReceiverDigitalEnvelope` (encrypted: EncryptionAlgorithm,
  the receiver's EncryptionCertificateRef) and `MessagingCharacteristics/@ackSignatureRequested`,
  into a `ChannelSecurity`. Both parties of one CPA use one profile (the default MSH channel
  supports one), so their flags must agree; weak algorithms are refused here already.

Refused on purpose (SPEC-digikoppeling §2): PartyId types other than `urn:osb:oin`, OINs with
an environment suffix (`_T`, `_OTA` …, because PartyIds are matched against certificate OINs),
syncReplyMode `signalsOnly` / `signalsAndResponse` / `responseOnly`, the nextMSH actor,
endpoints that are not https, more than one role or service per party, a proposed (not agreed)
CPA. This adapter also keeps one endpoint and one profile per party: the channels a party
receives on must agree, and its default MSH channel must post to the same endpoint.
Every DeliveryChannel, Transport and DocExchange is checked, used or not.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from lxml import etree

from adapter.ebms.cpa.duration import parse_duration
from adapter.ebms.cpa.model import ChannelSecurity, Cpa, CpaParty
from adapter.errors import AdapterError
from adapter.soap import xmlenc
from adapter.soap.xml import parse_trusted_file

TP = "http://www.oasis-open.org/committees/ebxml-cppa/schema/cpp-cpa-2_0.xsd"
XLINK = "http://www.w3.org/1999/xlink"
NSMAP = {"tp": TP, "xlink": XLINK}
OIN_PARTY_TYPE = "urn:osb:oin"
SYNC_REPLY_MODES = frozenset({"none", "mshSignalsOnly"})
PER_MESSAGE = frozenset({"always", "never", "perMessage"})
NEXT_MSH = "urn:oasis:names:tc:ebxml-msg:actor:nextMSH"

# Where problems on the document element are reported (an XPath without prefixes).
ROOT = "/CollaborationProtocolAgreement"
_T = f"{{{TP}}}"
_OIN = re.compile(r"\d{20}")
_OIN_WITH_SUFFIX = re.compile(r"(\d{20})(_[OTA]+)")
_INTEGER = re.compile(r"\+?\d+")
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?")
_WHITESPACE = re.compile(r"\s")


class CpaError(AdapterError, ValueError):
    """A CPA is missing, unreadable or breaks a rule; names file, place and reason."""

    def __init__(self, file: Path | str, where: str, reason: str) -> None:
        super().__init__(f"{file}: {where}: {reason}")
        self.file, self.where, self.reason = str(file), where, reason


@dataclass(frozen=True)
class _Channel:
    channel_id: str
    endpoint: str
    sync_reply_mode: str
    ack_requested: str
    duplicate_elimination: str
    retries: int
    retry_interval: timedelta
    persist_duration: timedelta
    security: ChannelSecurity


# SPEC-digikoppeling §1.5: what a CPA may ask for signing and payload encryption.
_HASH_FUNCTIONS = xmlenc.DIGEST_METHODS
_SIGNATURE_ALGORITHMS = xmlenc.SIGNATURE_METHODS
_ENCRYPTION_ALGORITHMS = xmlenc.GCM
_DS = xmlenc.DSIG


class _Reader:
    """Reads one CPA document, collecting every problem instead of stopping at the first."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[CpaError] = []

    def problem(self, where: str, reason: str) -> None:
        if not any(p.where == where and p.reason == reason for p in self.problems):
            self.problems.append(CpaError(self.path, where, reason))

    def attr(self, element: etree._Element, name: str, where: str) -> str | None:
        value = element.get(f"{_T}{name}")
        if value is None and element.get(name) is not None:
            # JAXB-based MSHs (ebms-core) ignore an unqualified attribute and use the default.
            self.problem(f"{where}/@{name}", f"must be namespace-qualified (tp:{name})")
        return value.strip() if value is not None else None

    def required_attr(self, element: etree._Element, name: str, where: str) -> str | None:
        value = self.attr(element, name, where)
        if value == "":
            self.problem(f"{where}/@{name}", "is empty")
        elif value is None and element.get(name) is None:
            self.problem(f"{where}/@{name}", "is required")
        return value or None

    def one(self, parent: etree._Element, name: str, where: str) -> etree._Element | None:
        found = parent.findall(f"tp:{name}", NSMAP)
        if len(found) != 1:
            self.problem(
                f"{where}/{name}",
                "is required" if not found else f"must occur once, not {len(found)} times",
            )
            return None
        return found[0]

    def text(self, parent: etree._Element, name: str, where: str) -> str | None:
        element = self.one(parent, name, where)
        if element is None:
            return None
        value = (element.text or "").strip()
        if not value:
            self.problem(f"{where}/{name}", "is empty")
            return None
        return value

    def moment(self, root: etree._Element, name: str) -> datetime | None:
        value = self.text(root, name, ROOT)
        if value is None:
            return None
        try:
            if not _DATE_TIME.fullmatch(value):
                raise ValueError(value)
            moment = datetime.fromisoformat(value)
        except ValueError:
            self.problem(f"{ROOT}/{name}", f"{value!r} is not an xs:dateTime")
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def duration(self, parent: etree._Element, name: str, where: str) -> timedelta | None:
        value = self.text(parent, name, where)
        if value is None:
            return None
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.problem(f"{where}/{name}", str(exc))
            return None


def _by_id(party: etree._Element, element: str, key: str, value: str) -> etree._Element | None:
    for candidate in party.findall(f"tp:{element}", NSMAP):
        if candidate.get(f"{_T}{key}") == value:
            return candidate
    return None


@dataclass(frozen=True)
class _Reliability:
    retries: int
    retry_interval: timedelta
    persist_duration: timedelta | None  # None: the binding states no PersistDuration


@dataclass
class _PartyElements:
    """Every DeliveryChannel, Transport and DocExchange of one PartyInfo, each checked once,
    whether a party uses it or not, keyed by id. None marks one that is broken (its problem is
    reported) or, for `receiver_bindings`, a DocExchange without ebXMLReceiverBinding.
    """

    where: str
    channels: dict[str, tuple[str, str, str] | None]
    endpoints: dict[str, str | None]
    receiver_bindings: dict[str, etree._Element | None]
    reliability: dict[str, _Reliability | None]


def _characteristics(
    reader: _Reader, channel: etree._Element, where: str
) -> tuple[str, str, str] | None:
    """syncReplyMode, ackRequested and duplicateElimination of a DeliveryChannel."""
    characteristics = channel.find("tp:MessagingCharacteristics", NSMAP)
    where = f"{where}/MessagingCharacteristics"
    values: list[str] = []
    ok = True
    # Absent attributes take the defaults of the CPPA 2.0 schema.
    for name, default, allowed in (
        ("syncReplyMode", "none", SYNC_REPLY_MODES),
        ("ackRequested", "perMessage", PER_MESSAGE),
        ("duplicateElimination", "perMessage", PER_MESSAGE),
    ):
        value = default
        if characteristics is not None:
            value = reader.attr(characteristics, name, where) or default
        if value not in allowed:
            reason = f"must be one of {sorted(allowed)}, not {value!r}"
            if name == "syncReplyMode":
                reason += " (Digikoppeling allows only none and mshSignalsOnly)"
            reader.problem(f"{where}/@{name}", reason)
            ok = False
        values.append(value)
    sync_reply_mode, ack_requested, duplicate_elimination = values
    if characteristics is not None and reader.attr(characteristics, "actor", where) == NEXT_MSH:
        reader.problem(
            f"{where}/@actor", "nextMSH acknowledgements are not supported (Digikoppeling)"
        )
        ok = False
    if sync_reply_mode == "mshSignalsOnly" and ack_requested == "never":
        reader.problem(
            f"{where}/@syncReplyMode",
            "mshSignalsOnly needs reliable messaging (ackRequested always); "
            "best effort never uses SyncReply",
        )
        ok = False
    return (sync_reply_mode, ack_requested, duplicate_elimination) if ok else None


def _endpoint(reader: _Reader, transport: etree._Element, where: str) -> str | None:
    """The https URL of a Transport's receiver; None when it has none or a wrong one."""
    receiver = transport.find("tp:TransportReceiver", NSMAP)
    if receiver is None:
        return None  # reported only when a channel we deliver on uses this transport
    where = f"{where}/TransportReceiver"
    endpoints = receiver.findall("tp:Endpoint", NSMAP)
    if len(endpoints) > 1:
        # One URL for business messages and signals alike; `type` defaults to allPurpose.
        endpoints = [e for e in endpoints if e.get(f"{_T}type", "allPurpose") == "allPurpose"]
        if len(endpoints) != 1:
            reader.problem(f"{where}/Endpoint", "needs exactly one Endpoint of type allPurpose")
            return None
    if not endpoints:
        reader.problem(f"{where}/Endpoint", "is required")
        return None
    uri = reader.required_attr(endpoints[0], "uri", f"{where}/Endpoint")
    if uri is None:
        return None
    try:
        parts = urlsplit(uri)
    except ValueError:  # e.g. an unbalanced "[" in the host: reported like any bad URL
        parts = urlsplit("")
    if parts.scheme != "https" or not parts.netloc:
        reader.problem(
            f"{where}/Endpoint/@uri", f"{uri!r} is not an https:// URL (Digikoppeling: HTTPS only)"
        )
        return None
    return uri


def _reliability(reader: _Reader, binding: etree._Element, where: str) -> _Reliability | None:
    """Retries, RetryInterval and PersistDuration of an ebXML sender or receiver binding."""
    ok = True
    retries, interval = 0, timedelta(0)
    rm = binding.find("tp:ReliableMessaging", NSMAP)
    if rm is not None:
        rm_where = f"{where}/ReliableMessaging"
        count = reader.text(rm, "Retries", rm_where)
        if count is not None and not _INTEGER.fullmatch(count):
            reader.problem(f"{rm_where}/Retries", f"{count!r} is not a whole number")
            count = None
        parsed = reader.duration(rm, "RetryInterval", rm_where)
        if count is None or parsed is None:
            ok = False
        else:
            retries, interval = int(count), parsed
    persist = None
    if binding.find("tp:PersistDuration", NSMAP) is not None:
        persist = reader.duration(binding, "PersistDuration", where)
        ok = ok and persist is not None
    return _Reliability(retries, interval, persist) if ok else None


def _party_elements(reader: _Reader, party: etree._Element, where: str) -> _PartyElements:
    elements = _PartyElements(where, {}, {}, {}, {})
    for channel in party.findall("tp:DeliveryChannel", NSMAP):
        channel_id = channel.get(f"{_T}channelId", "")
        elements.channels[channel_id] = _characteristics(
            reader, channel, f"{where}/DeliveryChannel[@channelId='{channel_id}']"
        )
    for transport in party.findall("tp:Transport", NSMAP):
        transport_id = transport.get(f"{_T}transportId", "")
        elements.endpoints[transport_id] = _endpoint(
            reader, transport, f"{where}/Transport[@transportId='{transport_id}']"
        )
    for exchange in party.findall("tp:DocExchange", NSMAP):
        exchange_id = exchange.get(f"{_T}docExchangeId", "")
        ex_where = f"{where}/DocExchange[@docExchangeId='{exchange_id}']"
        elements.receiver_bindings[exchange_id] = exchange.find("tp:ebXMLReceiverBinding", NSMAP)
        for side in ("ebXMLSenderBinding", "ebXMLReceiverBinding"):
            binding = exchange.find(f"tp:{side}", NSMAP)
            if binding is not None:
                checked = _reliability(reader, binding, f"{ex_where}/{side}")
                if side == "ebXMLReceiverBinding":
                    elements.reliability[exchange_id] = checked
    return elements


def _algorithm(
    reader: _Reader, parent: etree._Element, name: str, where: str, allowed: frozenset[str]
) -> str | None:
    """An algorithm element of a NonRepudiation or DigitalEnvelope: its tp:w3c URI if given
    (CPPA 2.0), else its text; a problem when it is not one Digikoppeling allows."""
    element = reader.one(parent, name, where)
    if element is None:
        return None
    value = (element.get(f"{_T}w3c") or element.text or "").strip()
    if value not in allowed:
        reader.problem(
            f"{where}/{name}",
            f"{value!r} is not allowed (SPEC-digikoppeling §1.5): use one of {sorted(allowed)}",
        )
        return None
    return value


def _certificate(
    reader: _Reader, party: etree._Element, ref: etree._Element | None, where: str
) -> tuple[bool, bytes | None]:
    """(resolved, DER) of the Certificate a *CertificateRef names; DER None when it has none."""
    if ref is None:
        reader.problem(where, "is required")
        return False, None
    cert_id = reader.required_attr(ref, "certId", where)
    if cert_id is None:
        return False, None
    certificate = _by_id(party, "Certificate", "certId", cert_id)
    if certificate is None:
        reader.problem(f"{where}/@certId", f"no Certificate with certId {cert_id!r}")
        return False, None
    value = certificate.findtext(f"{{{_DS}}}KeyInfo/{{{_DS}}}X509Data/{{{_DS}}}X509Certificate")
    if value is None:
        return True, None
    try:
        der = base64.b64decode("".join(value.split()), validate=True)
        x509.load_der_x509_certificate(der)
    except ValueError:
        reader.problem(
            f"{where.rsplit('/DocExchange', 1)[0]}/Certificate[@certId='{cert_id}']",
            "X509Certificate is not a base64 DER certificate",
        )
        return False, None
    return True, der


def _security(
    reader: _Reader,
    party: etree._Element,
    channel: etree._Element,
    exchange: etree._Element,
    where: str,
    ex_where: str,
) -> ChannelSecurity | None:
    """The ChannelSecurity of a DeliveryChannel and its DocExchange; None after a problem."""
    problems = len(reader.problems)
    characteristics = channel.find("tp:MessagingCharacteristics", NSMAP)
    ack_signature = "never"
    if characteristics is not None:
        ack_signature = (
            reader.attr(
                characteristics, "ackSignatureRequested", f"{where}/MessagingCharacteristics"
            )
            or "perMessage"  # the CPPA 2.0 schema's default
        )
    sender = exchange.find("tp:ebXMLSenderBinding", NSMAP)
    receiver = exchange.find("tp:ebXMLReceiverBinding", NSMAP)
    non_repudiation = None if sender is None else sender.find("tp:SenderNonRepudiation", NSMAP)
    envelopes = [
        (side, binding.find(f"tp:{name}", NSMAP))
        for side, binding, name in (
            ("ebXMLSenderBinding", sender, "SenderDigitalEnvelope"),
            ("ebXMLReceiverBinding", receiver, "ReceiverDigitalEnvelope"),
        )
        if binding is not None
    ]
    envelopes = [(side, element) for side, element in envelopes if element is not None]
    security = ChannelSecurity(ack_signed=ack_signature == "always")
    if non_repudiation is not None:
        nr_where = f"{ex_where}/ebXMLSenderBinding/SenderNonRepudiation"
        _, signing = _certificate(
            reader,
            party,
            non_repudiation.find("tp:SigningCertificateRef", NSMAP),
            f"{nr_where}/SigningCertificateRef",
        )
        security = replace(
            security,
            sign=True,
            hash_function=_algorithm(
                reader, non_repudiation, "HashFunction", nr_where, _HASH_FUNCTIONS
            ),
            signature_algorithm=_algorithm(
                reader, non_repudiation, "SignatureAlgorithm", nr_where, _SIGNATURE_ALGORITHMS
            ),
            signing_certificate=signing,
        )
    for side, envelope in envelopes:
        env_where = f"{ex_where}/{side}/{etree.QName(envelope).localname}"
        algorithm = _algorithm(
            reader, envelope, "EncryptionAlgorithm", env_where, _ENCRYPTION_ALGORITHMS
        )
        security = replace(security, encrypt=True, encryption_algorithm=algorithm)
        if side == "ebXMLReceiverBinding":
            resolved, encryption = _certificate(
                reader,
                party,
                envelope.find("tp:EncryptionCertificateRef", NSMAP),
                f"{env_where}/EncryptionCertificateRef",
            )
            if encryption is None and resolved:
                reader.problem(
                    f"{env_where}/EncryptionCertificateRef",
                    "names a Certificate without ds:KeyInfo/X509Data/X509Certificate: "
                    "messages to this party are encrypted for that certificate",
                )
            security = replace(security, encryption_certificate=encryption)
    if security.encrypt and not security.sign:
        reader.problem(
            f"{ex_where}/ebXMLSenderBinding/SenderNonRepudiation",
            "is required: the -e profiles (osb-rm-e, osb-be-e) are signed as well",
        )
    acknowledged = (
        characteristics is not None
        and (characteristics.get(f"{_T}ackRequested") or "perMessage") != "never"
    )
    if security.sign and not security.ack_signed and acknowledged:
        reader.problem(
            f"{where}/MessagingCharacteristics/@ackSignatureRequested",
            f"must be 'always' for a signed profile (Acknowledgments are signed), "
            f"not {ack_signature!r}",
        )
    return security if len(reader.problems) == problems else None


def _channel(
    reader: _Reader, party: etree._Element, elements: _PartyElements, channel_id: str
) -> _Channel | None:
    """The delivery values of one DeliveryChannel: its own, its Transport's and DocExchange's."""
    where = f"{elements.where}/DeliveryChannel[@channelId='{channel_id}']"
    channel = _by_id(party, "DeliveryChannel", "channelId", channel_id)
    if channel is None:
        reader.problem(elements.where, f"has no DeliveryChannel with channelId {channel_id!r}")
        return None
    characteristics = elements.channels.get(channel_id)

    endpoint: str | None = None
    transport_id = reader.required_attr(channel, "transportId", where)
    if transport_id is not None:
        if transport_id not in elements.endpoints:
            reader.problem(
                f"{where}/@transportId", f"no Transport with transportId {transport_id!r}"
            )
        else:
            endpoint = elements.endpoints[transport_id]
            transport = _by_id(party, "Transport", "transportId", transport_id)
            if transport is not None and transport.find("tp:TransportReceiver", NSMAP) is None:
                reader.problem(
                    f"{elements.where}/Transport[@transportId='{transport_id}']/TransportReceiver",
                    "is required: messages to this party are delivered on this transport",
                )

    reliability: _Reliability | None = None
    security: ChannelSecurity | None = None
    exchange_id = reader.required_attr(channel, "docExchangeId", where)
    if exchange_id is not None:
        ex_where = f"{elements.where}/DocExchange[@docExchangeId='{exchange_id}']"
        exchange = _by_id(party, "DocExchange", "docExchangeId", exchange_id)
        if exchange is not None:
            security = _security(reader, party, channel, exchange, where, ex_where)
        binding = elements.receiver_bindings.get(exchange_id)
        if exchange_id not in elements.receiver_bindings:
            reader.problem(
                f"{where}/@docExchangeId", f"no DocExchange with docExchangeId {exchange_id!r}"
            )
        elif binding is None:
            reader.problem(f"{ex_where}/ebXMLReceiverBinding", "is required")
        else:
            reliability = elements.reliability.get(exchange_id)
            reliable = characteristics is not None and "always" in characteristics[1:]
            bind_where = f"{ex_where}/ebXMLReceiverBinding"
            if reliable and reliability is not None:
                # Reliable messaging: acknowledgements, retries and duplicate elimination.
                for name, present in (
                    ("ReliableMessaging", binding.find("tp:ReliableMessaging", NSMAP) is not None),
                    ("PersistDuration", reliability.persist_duration is not None),
                ):
                    if not present:
                        reader.problem(
                            f"{bind_where}/{name}",
                            "is required: the channel asks for acknowledgements or "
                            "duplicate elimination",
                        )
                        reliability = None

    if characteristics is None or endpoint is None or reliability is None or security is None:
        return None
    sync_reply_mode, ack_requested, duplicate_elimination = characteristics
    return _Channel(
        channel_id=channel_id,
        endpoint=endpoint,
        sync_reply_mode=sync_reply_mode,
        ack_requested=ack_requested,
        duplicate_elimination=duplicate_elimination,
        retries=reliability.retries,
        retry_interval=reliability.retry_interval,
        persist_duration=reliability.persist_duration or timedelta(0),
        security=security,
    )


def _actions(
    reader: _Reader, binding: etree._Element, kind: str, where: str, party: etree._Element
) -> tuple[set[str], list[str]]:
    """The actions of CanSend or CanReceive, and the ChannelIds they name (all resolvable)."""
    actions: set[str] = set()
    channel_ids: list[str] = []
    for index, element in enumerate(binding.findall(f"tp:{kind}", NSMAP), start=1):
        this = reader.one(element, "ThisPartyActionBinding", f"{where}/{kind}[{index}]")
        if this is None:
            continue
        this_where = f"{where}/{kind}[{index}]/ThisPartyActionBinding"
        action = reader.required_attr(this, "action", this_where)
        if action is not None:
            if _WHITESPACE.search(action):
                reader.problem(
                    f"{this_where}/@action", f"{action!r} contains whitespace (Digikoppeling)"
                )
            elif action in actions:
                reader.problem(f"{this_where}/@action", f"{action!r} is listed twice")
            actions.add(action)
        ids = [(e.text or "").strip() for e in this.findall("tp:ChannelId", NSMAP)]
        if not ids or not all(ids):
            reader.problem(f"{this_where}/ChannelId", "is required")
        for channel_id in filter(None, ids):
            if _by_id(party, "DeliveryChannel", "channelId", channel_id) is None:
                reader.problem(
                    f"{this_where}/ChannelId", f"no DeliveryChannel with channelId {channel_id!r}"
                )
            elif channel_id not in channel_ids:
                channel_ids.append(channel_id)
    return actions, channel_ids


def _party(reader: _Reader, party: etree._Element, index: int) -> CpaParty | None:
    where = f"{ROOT}/PartyInfo[{index}]"
    ok = True

    oin: str | None = None
    party_type: str | None = None
    ids = party.findall("tp:PartyId", NSMAP)
    if len(ids) != 1:
        reader.problem(
            f"{where}/PartyId",
            "is required"
            if not ids
            else "must occur once: Digikoppeling identifies a party by one OIN",
        )
        ok = False
    else:
        party_type = reader.attr(ids[0], "type", f"{where}/PartyId")
        if party_type != OIN_PARTY_TYPE:
            actual = "is missing" if party_type is None else f"is {party_type!r}"
            reader.problem(
                f"{where}/PartyId/@type",
                f"must be {OIN_PARTY_TYPE} but {actual} "
                "(Digikoppeling: parties are identified by their OIN)",
            )
            ok = False
        value = (ids[0].text or "").strip()
        suffixed = _OIN_WITH_SUFFIX.fullmatch(value)
        if suffixed:
            reader.problem(
                f"{where}/PartyId",
                f"{value!r} carries the environment suffix {suffixed.group(2)!r} (BPEB EB004); "
                "this adapter matches PartyIds against certificate OINs, so use the bare OIN "
                f"{suffixed.group(1)}",
            )
            ok = False
        elif not _OIN.fullmatch(value):
            reader.problem(f"{where}/PartyId", f"{value!r} is not a 20-digit OIN")
            ok = False
        else:
            oin = value

    role: str | None = None
    service: str | None = None
    service_type: str | None = None
    can_send: set[str] = set()
    can_receive: set[str] = set()
    receive_channels: list[str] = []
    roles = party.findall("tp:CollaborationRole", NSMAP)
    if len(roles) != 1:
        reader.problem(
            f"{where}/CollaborationRole",
            "is required"
            if not roles
            else f"must occur once, not {len(roles)} times (Digikoppeling: one role and one "
            "service per party per CPA; put other roles or services in their own CPA)",
        )
        ok = False
    else:
        role_where = f"{where}/CollaborationRole"
        role_element = reader.one(roles[0], "Role", role_where)
        if role_element is not None:
            role = reader.required_attr(role_element, "name", f"{role_where}/Role")
        bindings = roles[0].findall("tp:ServiceBinding", NSMAP)
        if len(bindings) != 1:
            reader.problem(
                f"{role_where}/ServiceBinding",
                "is required"
                if not bindings
                else "must occur once: one service per CPA (BPEB: CPAId is per service)",
            )
            ok = False
        else:
            binding_where = f"{role_where}/ServiceBinding"
            service_element = reader.one(bindings[0], "Service", binding_where)
            if service_element is not None:
                service = (service_element.text or "").strip() or None
                service_type = reader.required_attr(
                    service_element, "type", f"{binding_where}/Service"
                )
                if service is None:
                    reader.problem(f"{binding_where}/Service", "is empty")
                elif _WHITESPACE.search(service):
                    reader.problem(
                        f"{binding_where}/Service",
                        f"{service!r} contains whitespace (Digikoppeling)",
                    )
                    service = None
            can_send, _ = _actions(reader, bindings[0], "CanSend", binding_where, party)
            can_receive, receive_channels = _actions(
                reader, bindings[0], "CanReceive", binding_where, party
            )
            if not can_send and not can_receive:
                reader.problem(binding_where, "has no CanSend or CanReceive action")
                ok = False
    if role is None or service is None or service_type is None:
        ok = False

    # The channel this party receives on: the one its CanReceive bindings name, or the default
    # MSH channel (acknowledgements and errors) when it receives no business action.
    elements = _party_elements(reader, party, where)
    default_msh = reader.required_attr(party, "defaultMshChannelId", where)
    receiving: _Channel | None = None
    channel_ids = receive_channels or ([default_msh] if default_msh else [])
    channels = [_channel(reader, party, elements, channel_id) for channel_id in channel_ids]
    found = [channel for channel in channels if channel is not None]
    if found and len(found) == len(channels):
        first = found[0]
        for other in found[1:]:
            if replace(other, channel_id=first.channel_id) != first:
                reader.problem(
                    f"{where}/DeliveryChannel[@channelId='{other.channel_id}']",
                    f"differs from channel {first.channel_id!r}: this adapter needs the same "
                    "endpoint, profile and retries for every action a party receives",
                )
                ok = False
        receiving = first
    else:
        ok = False
    if receiving is not None and default_msh and default_msh not in channel_ids:
        msh = _channel(reader, party, elements, default_msh)
        if msh is None:
            ok = False
        elif msh.endpoint != receiving.endpoint:
            reader.problem(
                f"{where}/@defaultMshChannelId",
                f"channel {default_msh!r} posts to {msh.endpoint}, but business messages go to "
                f"{receiving.endpoint}; this adapter keeps one endpoint per party",
            )
            ok = False

    if (
        not ok
        or receiving is None
        or oin is None
        or party_type is None
        or role is None
        or service is None
        or service_type is None
    ):
        return None
    return CpaParty(
        oin=oin,
        party_id_type=party_type,
        role=role,
        endpoint=receiving.endpoint,
        can_send=frozenset(can_send),
        can_receive=frozenset(can_receive),
        service=service,
        service_type=service_type,
        sync_reply_mode=receiving.sync_reply_mode,
        ack_requested=receiving.ack_requested,
        duplicate_elimination=receiving.duplicate_elimination,
        retries=receiving.retries,
        retry_interval=receiving.retry_interval,
        persist_duration=receiving.persist_duration,
        security=receiving.security,
    )


def _check_pair(reader: _Reader, first: CpaParty, second: CpaParty) -> None:
    """What one party sends the other must be able to receive, in the same service."""
    if first.oin == second.oin:
        reader.problem(f"{ROOT}/PartyInfo[2]/PartyId", f"both parties have OIN {first.oin}")
    if (first.service, first.service_type) != (second.service, second.service_type):
        reader.problem(
            f"{ROOT}/PartyInfo[2]/CollaborationRole/ServiceBinding/Service",
            f"{second.service_type}:{second.service} differs from the other party's "
            f"{first.service_type}:{first.service}",
        )
    ours, theirs = first.security, second.security
    if (ours.sign, ours.encrypt, ours.ack_signed) != (
        theirs.sign,
        theirs.encrypt,
        theirs.ack_signed,
    ):
        reader.problem(
            f"{ROOT}/PartyInfo[2]/DocExchange",
            f"profile osb-..{theirs.profile_suffix or ' (unsigned)'} differs from the other "
            f"party's osb-..{ours.profile_suffix or ' (unsigned)'}: one CPA has one profile "
            "(signing, encryption and signed acknowledgements alike)",
        )
    pairs = ((1, first, 2, second), (2, second, 1, first))
    for sender_index, sender, receiver_index, receiver in pairs:
        binding = f"{ROOT}/PartyInfo[{{}}]/CollaborationRole/ServiceBinding"
        for action in sorted(sender.can_send - receiver.can_receive):
            reader.problem(
                f"{binding.format(sender_index)}/CanSend",
                f"{sender.oin} sends {action!r}, which {receiver.oin} cannot receive",
            )
        for action in sorted(receiver.can_receive - sender.can_send):
            reader.problem(
                f"{binding.format(receiver_index)}/CanReceive",
                f"{receiver.oin} receives {action!r}, which {sender.oin} never sends",
            )


def _read(path: Path) -> tuple[Cpa | None, list[CpaError]]:
    reader = _Reader(path)
    try:
        document = parse_trusted_file(str(path))
    except OSError as exc:
        return None, [CpaError(path, "-", f"cannot be read: {exc.strerror or exc}")]
    except etree.XMLSyntaxError as exc:
        return None, [CpaError(path, f"line {exc.lineno}", f"not well-formed XML: {exc.msg}")]
    if document.docinfo.internalDTD is not None or document.docinfo.doctype:
        return None, [CpaError(path, "-", "a DOCTYPE is not allowed")]
    root = document.getroot()
    if root.tag != f"{_T}CollaborationProtocolAgreement":
        name = etree.QName(root).localname
        reason = f"is not a CPA: the root element is {root.tag}"
        if name == "CollaborationProtocolProfile":
            reason = "is a CPP (one party's profile), not a CPA"
        elif name == "CollaborationProtocolAgreement":
            reason = f"is not a CPA 2.0: the root element is not in namespace {TP}"
        return None, [CpaError(path, "/", reason)]

    cpa_id = reader.required_attr(root, "cpaid", ROOT)
    if cpa_id is not None and _WHITESPACE.search(cpa_id):
        reader.problem(f"{ROOT}/@cpaid", f"{cpa_id!r} contains whitespace")
        cpa_id = None
    status = root.find("tp:Status", NSMAP)
    if status is not None and reader.attr(status, "value", f"{ROOT}/Status") == "proposed":
        reader.problem(f"{ROOT}/Status/@value", "the CPA is only proposed, not agreed")
    start = reader.moment(root, "Start")
    end = reader.moment(root, "End")
    if start is not None and end is not None and end <= start:
        reader.problem(f"{ROOT}/End", f"{end.isoformat()} is not after Start {start.isoformat()}")
        end = None

    infos = root.findall("tp:PartyInfo", NSMAP)
    parties: list[CpaParty | None] = []
    if len(infos) != 2:
        reader.problem(f"{ROOT}/PartyInfo", f"must occur exactly twice, not {len(infos)} times")
    else:
        parties = [_party(reader, info, index) for index, info in enumerate(infos, start=1)]
        if parties[0] is not None and parties[1] is not None:
            _check_pair(reader, parties[0], parties[1])

    first, second = parties if len(parties) == 2 else (None, None)
    if reader.problems or not cpa_id or not start or not end or not first or not second:
        if not reader.problems:  # every None above comes with a problem; this keeps it so
            reader.problem(ROOT, "could not be read")
        return None, reader.problems
    return Cpa(cpa_id=cpa_id, start=start, end=end, parties=(first, second), source=path), []


def load_cpa(path: Path) -> Cpa:
    """Read one CPA file; raise a CpaError for the first problem (`check_cpa` lists them all)."""
    cpa, problems = _read(Path(path))
    if cpa is None:
        raise problems[0]
    return cpa


def check_cpa(path: Path) -> list[str]:
    """Every problem in a CPA file as "file: where: reason", or [] when it is fine."""
    return [str(problem) for problem in _read(Path(path))[1]]

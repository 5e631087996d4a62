"""The adapter's one error vocabulary: every refusal is an `AdapterError`.

Three families share the root:
- profile-neutral errors raised by the rooms that know no profile (the XML parser, schema
  validation, transport, authorisation, the store); each profile maps them onto its own
  codes in one table (`adapter.soap.endpoint.WUS_FAULTS`, `adapter.ebms.endpoint.EBMS_ERRORS`);
- `SoapFault`s of the WUS profile, each carrying its faultcode, faultstring and detail;
- `EbmsError`s of the ebMS profile, each carrying its ErrorList errorCode.
Configuration, CPA, receipt, import and migration errors subclass the root in their own
modules. An error carries the extra HTTP headers its answer needs (`http_headers`), so the
code that answers never asks what kind of error it holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, TypeVar

_Entry = TypeVar("_Entry")


class AdapterError(Exception):
    """Base class of everything the adapter refuses on purpose."""

    # Extra headers on the HTTP answer (e.g. Connection: close after an unread body).
    http_headers: tuple[tuple[str, str], ...] = ()


# --- profile-neutral errors ----------------------------------------------------------------


class Rejected(AdapterError):
    """A neutral refusal with a plain reason for the peer; profiles translate the class."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class XmlRejected(Rejected):
    """Input the safe XML parser refuses (WUS 0001/0009, ebMS OtherXml)."""


class MalformedXml(XmlRejected):
    """Not well-formed, or empty."""


class ForbiddenMarkup(XmlRejected):
    """Markup a SOAP message must not carry: a DTD, an entity declaration, a processing
    instruction, or an XML version other than 1.0."""


class XmlTooComplex(XmlRejected):
    """Past a parser limit (attributes per element, depth, elements, text length): refused
    while parsing, before a whole tree exists (adapter.soap.xml.XmlLimits)."""


class XmlNotUtf8(XmlRejected):
    """Digikoppeling allows UTF-8 only (WS006)."""


class SchemaViolation(Rejected):
    """A payload that does not conform to its XSD; the reason names line and element."""


class UnknownParty(Rejected):
    """No client certificate, no OIN in it, or an OIN that is not configured."""


class NotGranted(Rejected):
    """A configured organisation calling a service its `services` grant does not list."""


class BodyUnreadable(Rejected):
    """The HTTP body is missing, or its Content-Length is not a number."""


class BodyTooLarge(Rejected):
    """Refused by size before a byte of it is parsed; the rest of the body is not read."""

    http_headers = (("Connection", "close"),)


class StoreUnavailable(Rejected):
    """The database could not be reached or failed; nothing of the request was stored."""


class StoreConflict(Rejected):
    """A concurrent transaction stored the same row first; running again sees it."""


XmlEncryptionKind = Literal["algorithm", "not-for-our-key", "malformed", "tampered"]


class XmlEncryptionRefused(AdapterError):
    """XML Encryption that `adapter.soap.xmlenc` cannot or will not decrypt. `kind` says why:
    an algorithm not allowed, a key not encrypted for ours, markup or base64 that is not
    XML Encryption, or content that does not check out (changed, or the wrong key).

    Not a `Rejected`: it never reaches the profiles' tables. Each profile maps it where it
    decrypts, since what it means there (a WS-Security fault, an ebMS SecurityFailure with
    the part's location) depends on what was being decrypted."""

    def __init__(self, kind: XmlEncryptionKind, reason: str) -> None:
        super().__init__(reason)
        self.kind: XmlEncryptionKind = kind
        self.reason = reason


def translation(table: Mapping[type[Rejected], _Entry], error: Rejected) -> _Entry | None:
    """A profile's entry for a neutral refusal: that of its class or the nearest base listed."""
    return next((table[kind] for kind in type(error).__mro__ if kind in table), None)


# --- the WUS profile -------------------------------------------------------------------------


class SoapFault(AdapterError):
    """A refusal answered with a SOAP 1.1 Fault (HTTP 500, WS-I BP R1126)."""

    faultcode = "Client"
    code = ""  # Digikoppeling WUS best-practice code, leading the faultstring
    text = ""
    detail_element: str | None = None  # ApplicationFault / DependentServiceFault, or none
    receipted = True  # faults to an authenticated party carry a receipt

    def __init__(self, message: str | None = None) -> None:
        self.message = message
        super().__init__(message or self.summary)

    @property
    def summary(self) -> str:
        """The Digikoppeling code and its fixed text, e.g. `0003 Invalide soapaction`."""
        return f"{self.code} {self.text}" if self.code else self.text

    @property
    def faultstring(self) -> str:
        """What the Fault's faultstring says: the summary, followed by the reason when no
        detail element carries it (SPEC Part C gives protocol faults none), so a caller
        reads why in the fault itself and not only in the receipt."""
        if self.message and self.detail_element is None:
            return f"{self.summary}: {self.message}"
        return self.summary

    @property
    def receipt_code(self) -> str:
        """The code a receipt records: the Digikoppeling code, else the detail element."""
        return self.code or self.detail_element or self.faultcode

    @property
    def reason(self) -> str:
        """What the receipt and the log say: the summary plus the reason."""
        return f"{self.summary}: {self.message}" if self.message else self.summary


class InvalidEnvelope(SoapFault):
    code, text = "0001", "Invalide soap envelope"


class NotAuthorised(SoapFault):
    code, text = "0002", "Niet geautoriseerd"
    receipted = False  # an unknown party gets nothing it could use, not even a receipt


class ServiceNotGranted(NotAuthorised):
    """A configured organisation calling a service it is not granted: refused, with receipt."""

    receipted = True


class InvalidSoapAction(SoapFault):
    code, text = "0003", "Invalide soapaction"


class NotConformXsd(SoapFault):
    code, text = "0004", "Niet conform xsd"
    detail_element = "ApplicationFault"


class AddressingToMissing(SoapFault):
    code, text = "0005", "WS-Addressing header To ontbreekt"


class AddressingActionMissing(SoapFault):
    code, text = "0006", "WS-Addressing header Action ontbreekt"


class AddressingMessageIdMissing(SoapFault):
    code, text = "0007", "WS-Addressing header MessageID ontbreekt"


class HeaderNotUnderstood(SoapFault):
    """A header block marked mustUnderstand that we do not process (SOAP 1.1 section 4.2.3)."""

    faultcode = "MustUnderstand"
    code, text = "0010", "Headers anders dan WSA-headers"


class NotUtf8(SoapFault):
    code, text = "0009", "Niet volgens UTF"


class HeaderValueNotAllowed(SoapFault):
    code, text = "0011", "Header andere waarde dan voorgeschreven"


class InvalidRequest(SoapFault):
    """The request is well-formed and valid but asks for something it may not."""

    text = "Aanvraag ongeldig"
    detail_element = "ApplicationFault"


class ServiceUnavailable(SoapFault):
    faultcode = "Server"
    code, text = "0051", "Service niet beschikbaar"
    detail_element = "DependentServiceFault"


class RequestTooLarge(InvalidEnvelope):
    """Refused by size before a byte of it is parsed."""

    http_headers = BodyTooLarge.http_headers


# WS-Security 1.1 fault codes (WSS 1.1 section 12), for Digikoppeling 2W-be-S and 2W-be-SE:
# the faultcode is the QName in the wsse namespace, the faultstring the spec's fault string
# followed by what to fix.
WSSE_NAMESPACE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"


class WsSecurityFault(SoapFault):
    """A request of a 2W-be-S/2W-be-SE organisation whose wsse:Security does not hold (WB013)."""

    faultcode_namespace = WSSE_NAMESPACE

    @property
    def receipt_code(self) -> str:
        return f"wsse:{self.faultcode}"


class WssInvalidSecurity(WsSecurityFault):
    faultcode = "InvalidSecurity"
    text = "An error was discovered processing the <wsse:Security> header"


class WssUnsupportedAlgorithm(WsSecurityFault):
    faultcode = "UnsupportedAlgorithm"
    text = "An unsupported signature or encryption algorithm was used"


class WssInvalidToken(WsSecurityFault):
    faultcode = "InvalidSecurityToken"
    text = "An invalid security token was provided"


class WssFailedAuthentication(WsSecurityFault):
    faultcode = "FailedAuthentication"
    text = "The security token could not be authenticated or authorized"


class WssFailedCheck(WsSecurityFault):
    faultcode = "FailedCheck"
    text = "The signature or decryption was invalid"


class WssTokenUnavailable(WsSecurityFault):
    faultcode = "SecurityTokenUnavailable"
    text = "Referenced security token could not be retrieved"


class WssExpired(WsSecurityFault):
    faultcode = "MessageExpired"
    text = "The message has expired"


# Lopende Zaken refusal codes; the same list documents the ApplicationFault in
# xsd/lopende-zaken.xsd, and StUF Fo01 uses them as its foutcode.
ZAAK_CODES = {
    "LZ001": "Verplicht gegeven ontbreekt of is ongeldig",
    "LZ002": "BSN voldoet niet aan de elfproef",
    "LZ003": "Verwijzing is geen https-URL",
    "LZ004": "Zaak onbekend",
    "LZ005": "Zaak is afgesloten",
    "LZ006": "Einddatum ligt voor de startdatum",
    "LZ007": "Zender of ontvanger onbekend",
    "LZ008": "Datum of tijdstip ongeldig",
    "LZ009": "Initiator wijkt af van de bestaande zaak",
    "LZ010": "StUF-mutatie wordt niet ondersteund",
}


class ZaakRefused(SoapFault):
    """A Lopende Zaken rule refused the request; `code` is one of ZAAK_CODES."""

    detail_element = "ApplicationFault"

    def __init__(self, code: str, message: str) -> None:
        self.code, self.text = code, ZAAK_CODES[code]
        super().__init__(message)


# --- the ebMS profile ------------------------------------------------------------------------


class EbmsError(AdapterError):
    """A refusal at the ebMS layer, answered with an ErrorList (ebMS 2.0 section 4.2.3.4)."""

    error_code = "Unknown"

    def __init__(self, description: str, location: str | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.location = location


class ValueNotRecognized(EbmsError):
    error_code = "ValueNotRecognized"


class NotSupported(EbmsError):
    error_code = "NotSupported"


class Inconsistent(EbmsError):
    error_code = "Inconsistent"


class OtherXml(EbmsError):
    error_code = "OtherXml"


class SecurityFailure(EbmsError):
    error_code = "SecurityFailure"


class MimeProblem(EbmsError):
    error_code = "MimeProblem"


class DeliveryFailure(EbmsError):
    error_code = "DeliveryFailure"

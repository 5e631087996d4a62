"""The WUS half of the corpus: ValidateAbonnementen and Lopende Zaken requests that must be
refused with one exact fault (SPEC Part C), or that look hostile but are served as if the
hostile part were not there.

`code` is what the refusal receipt records (`Afleverbevestiging/Uitkomst/Geweigerd/Code`):
the Digikoppeling code leading the faultstring, or the detail element of a service fault;
None means the request is answered normally.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from adapter.berichtenbox.abonnementen import SVC
from tests.conftest import GEMEENTE
from tests.hostile.shapes import NOT_UTF8, SHAPES, TRIPWIRE, XSI, Carrier, Shape, xinclude
from tests.soap_helpers import SOAP, aanvraag

SUBSCRIBED = "999993653"
LZ = "urn:mijnoverheid-adapter:lopende-zaken:1"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
GOOD = aanvraag([SUBSCRIBED], GEMEENTE)
CARRIER = Carrier(GOOD, b"BESLUIT")
PAYLOAD = GOOD.split(b"<s:Body>", 1)[1].split(b"</s:Body>", 1)[0]
UTF8 = "text/xml; charset=utf-8"


@dataclass(frozen=True)
class WusCase:
    name: str
    body: Callable[[], bytes]  # built when sent: some cases are megabytes
    code: str | None
    faultcode: str = "s:Client"
    content_type: str | None = UTF8
    soap_action: str | None = '""'
    path: str = "/abonnementen"
    unknown_party: bool = False  # sent with a trusted certificate whose OIN is not configured
    answered_keys: tuple[str, ...] | None = None  # for accepted cases: the Keys answered

    @property
    def faultstring(self) -> str:
        """What the faultstring starts with."""
        return "Aanvraag ongeldig" if self.code == "ApplicationFault" else f"{self.code} "


def _shape(shape: Shape) -> Callable[[], bytes]:
    return lambda: shape(CARRIER)


def envelope(body: bytes, header: bytes = b"", namespace: str = SOAP) -> bytes:
    return (
        b'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="%s">'
        b"<s:Header>%s</s:Header><s:Body>%s</s:Body></s:Envelope>"
        % (namespace.encode(), header, body)
    )


def _good_with(old: bytes, new: bytes) -> Callable[[], bytes]:
    if old not in GOOD:
        raise ValueError(old)
    return lambda: GOOD.replace(old, new, 1)


def _padded_to(size: int) -> bytes:
    """The good request with a comment after it that makes it exactly `size` bytes."""
    return GOOD + b"<!--" + b"x" * (size - len(GOOD) - 7) + b"-->"


def _header(name: str, namespace: str, must_understand: str | None) -> bytes:
    attribute = f' s:mustUnderstand="{must_understand}"' if must_understand is not None else ""
    return f'<h:{name} xmlns:h="{namespace}"{attribute}>x</h:{name}>'.encode()


def _zaak(bsn: str) -> bytes:
    return (
        f'<ZaakAanleveren xmlns="{LZ}"><zaak><identificatie>Z-hostile</identificatie>'
        "<omschrijving>Melding openbare ruimte</omschrijving><startdatum>2026-01-10</startdatum>"
        f"<initiator><bsn>{bsn}</bsn></initiator></zaak></ZaakAanleveren>"
    ).encode()


MAX_REQUEST_BYTES = 4 * 1024 * 1024  # conf/adapter.toml [limits] max_request_bytes

CASES: list[WusCase] = [
    # The parser's shapes, in the envelope itself.
    *(
        WusCase(f"envelope-{name}", _shape(shape), "0009" if name in NOT_UTF8 else "0001")
        for name, shape in SHAPES.items()
    ),
    # XInclude and schema hints are kept as markup and never followed.
    WusCase(
        "xinclude-file-in-payload",
        _good_with(b"BESLUIT", xinclude(b"file:///etc/passwd", b"text")),
        "0004",
    ),
    WusCase(
        "xinclude-network-in-payload",
        _good_with(b"BESLUIT", xinclude(TRIPWIRE + b"/include.xml")),
        "0004",
    ),
    WusCase(
        "xsi-schema-location-hint",
        _good_with(
            b"<ValidateAbonnementen ",
            b'<ValidateAbonnementen xmlns:xsi="%s" xsi:schemaLocation="urn:x %s/hint.xsd" '
            % (XSI, TRIPWIRE),
        ),
        None,
        answered_keys=(SUBSCRIBED,),
    ),
    WusCase(
        "xsi-no-namespace-schema-location-hint",
        _good_with(
            b"<ValidateAbonnementen ",
            b'<ValidateAbonnementen xmlns:xsi="%s" xsi:noNamespaceSchemaLocation="%s/hint.xsd" '
            % (XSI, TRIPWIRE),
        ),
        None,
        answered_keys=(SUBSCRIBED,),
    ),
    # Giant values under the size cap: read, then refused by the schema or the service.
    WusCase(
        "giant-attribute-value",
        _good_with(
            b"<ValidateAbonnementen ", b'<ValidateAbonnementen a="%s" ' % (b"x" * 3_000_000)
        ),
        "0004",
    ),
    WusCase(
        "giant-key-text",
        _good_with(b">999993653<", b">" + b"9" * 3_000_000 + b"<"),
        "ApplicationFault",
    ),
    # Size cap, checked on the bytes before parsing.
    WusCase("over-the-size-cap", lambda: _padded_to(MAX_REQUEST_BYTES + 1), "0001"),
    WusCase(
        "exactly-the-size-cap",
        lambda: _padded_to(MAX_REQUEST_BYTES),
        None,
        answered_keys=(SUBSCRIBED,),
    ),
    WusCase("empty-body", lambda: b"", "0001"),
    WusCase("whitespace-body", lambda: b" \r\n\t ", "0001"),
    # Content types: SOAP 1.1 is text/xml, Digikoppeling allows UTF-8 only (WS006).
    *(
        WusCase(f"content-type-{label}", lambda: GOOD, code, content_type=content_type)
        for label, content_type, code in (
            ("application-json", "application/json", "0001"),
            ("text-plain", "text/plain; charset=utf-8", "0001"),
            ("text-html", "text/html", "0001"),
            ("soap-1.2", "application/soap+xml; charset=utf-8", "0001"),
            ("mtom", 'multipart/related; type="application/xop+xml"; boundary=x', "0001"),
            ("missing", None, "0001"),
            ("charset-iso-8859-1", "text/xml; charset=iso-8859-1", "0009"),
            ("charset-utf-16", "text/xml; charset=utf-16", "0009"),
        )
    ),
    # The SOAP 1.1 envelope: one Body with one element, after an optional Header (WW003).
    WusCase(
        "soap-1.2-envelope",
        lambda: envelope(PAYLOAD, namespace="http://www.w3.org/2003/05/soap-envelope"),
        "0001",
    ),
    WusCase("two-bodies", lambda: GOOD.replace(b"</s:Body>", b"</s:Body><s:Body/>"), "0001"),
    WusCase(
        "no-body",
        lambda: (
            b'<?xml version="1.0"?><s:Envelope xmlns:s="%s"><s:Header/></s:Envelope>'
            % SOAP.encode()
        ),
        "0001",
    ),
    WusCase("empty-body-element", lambda: envelope(b""), "0001"),
    WusCase("two-body-children", lambda: envelope(PAYLOAD + PAYLOAD), "0001"),
    WusCase(
        "header-after-body",
        lambda: GOOD.replace(b"<s:Header></s:Header>", b"").replace(
            b"</s:Body>", b"</s:Body><s:Header/>"
        ),
        "0001",
    ),
    WusCase("payload-without-envelope", lambda: PAYLOAD, "0001"),
    # Namespaces: the envelope's, the operation's and the fields' must be the right ones.
    WusCase("envelope-in-another-namespace", lambda: envelope(PAYLOAD, namespace="urn:x"), "0001"),
    WusCase(
        "envelope-without-namespace",
        lambda: b"<Envelope><Header/><Body>" + PAYLOAD + b"</Body></Envelope>",
        "0001",
    ),
    WusCase(
        "operation-in-another-namespace",
        lambda: envelope(PAYLOAD.replace(SVC.encode(), b"urn:x")),
        "0001",
    ),
    WusCase(
        "operation-without-namespace",
        lambda: envelope(PAYLOAD.replace(b' xmlns="%s"' % SVC.encode(), b"")),
        "0001",
    ),
    WusCase(
        "field-in-another-namespace",
        _good_with(b"<t:berichtTypeCode>", b'<t:berichtTypeCode xmlns:t="urn:x">'),
        "0004",
    ),
    # mustUnderstand (SOAP 1.1 section 4.2.3): only WS-Addressing is processed.
    WusCase(
        "must-understand-ws-security",
        _good_with(b"<s:Header>", b"<s:Header>" + _header("Security", WSSE, "1")),
        "0010",
        faultcode="s:MustUnderstand",
    ),
    WusCase(
        "must-understand-true-unknown-header",
        _good_with(b"<s:Header>", b"<s:Header>" + _header("Trace", "urn:x", "true")),
        "0010",
        faultcode="s:MustUnderstand",
    ),
    WusCase(
        "must-understand-0-unknown-header",
        _good_with(b"<s:Header>", b"<s:Header>" + _header("Trace", "urn:x", "0")),
        None,
        answered_keys=(SUBSCRIBED,),
    ),
    # The elfproef, and text read as the whole text content of an element.
    WusCase(
        "key-failing-the-elfproef", _good_with(b">999993653<", b">123456789<"), "ApplicationFault"
    ),
    WusCase(
        "key-failing-the-elfproef-split-by-a-comment",
        _good_with(b">999993653<", b">12345<!---->6789<"),
        "ApplicationFault",
    ),
    WusCase(
        "key-split-by-a-comment",
        _good_with(b">999993653<", b">99999<!---->3653<"),
        None,
        answered_keys=(SUBSCRIBED,),
    ),
    WusCase(
        "key-split-by-cdata",
        _good_with(b">999993653<", b">999<![CDATA[993]]>653<"),
        None,
        answered_keys=(SUBSCRIBED,),
    ),
    # SOAPAction and identity.
    WusCase("wrong-soap-action", lambda: GOOD, "0003", soap_action='"urn:iets-anders"'),
    WusCase("missing-soap-action", lambda: GOOD, "0003", soap_action=None),
    WusCase("unknown-organisation", lambda: GOOD, "0002", unknown_party=True),
    # Lopende Zaken: the same pipeline, its own service codes.
    WusCase(
        "lopende-zaken-xxe",
        lambda: SHAPES["xxe-file-entity"](
            Carrier(envelope(_zaak("999993653")), b"Melding openbare ruimte")
        ),
        "0001",
        path="/lopende-zaken",
    ),
    WusCase(
        "lopende-zaken-must-understand",
        lambda: envelope(_zaak("999993653"), _header("Security", WSSE, "1")),
        "0010",
        faultcode="s:MustUnderstand",
        path="/lopende-zaken",
    ),
    WusCase(
        "lopende-zaken-initiator-failing-the-elfproef",
        lambda: envelope(_zaak("123456789")),
        "LZ002",
        path="/lopende-zaken",
    ),
]

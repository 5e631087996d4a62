"""The ebMS half of the corpus: BerichtVerwerk messages refused at the ebMS layer with one
exact ErrorList errorCode (SPEC Part C "ebMS error mapping"), and batches whose hostile
content refuses only the Berichten that carry it.

An `EbmsCase` is refused with a MessageError (or, with `error` None, acknowledged as usual);
a `BatchCase` passes the ebMS layer and gets a VerwerkingsCode per Bericht, or one nil-GUID
entry (`whole`) when the batch as a whole cannot be read against its schema.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from adapter.ebms.mime import build_package
from adapter.kit.sender import batch_request
from tests import pdf_samples as pdfs
from tests.berichtverwerk_samples import BV, batch_xml, minimal_pdf
from tests.conftest import GEMEENTE
from tests.ebms_helpers import MIJNOVERHEID, NOT_SUBSCRIBED, cpa_id
from tests.hostile.shapes import SHAPES, TRIPWIRE, Carrier, Shape, schema_location, xinclude

PAYLOAD_CID = "batch@test"
EB = b"http://www.oasis-open.org/committees/ebxml-msg/schema/msg-header-2_0.xsd"
SOAP12 = b"http://www.w3.org/2003/05/soap-envelope"
XML_PART = "text/xml; charset=UTF-8"
Edit = Callable[[bytes], bytes]
PackageEdit = Callable[[str, bytes], tuple[str, bytes]]


def message(
    soap_edit: Edit | None = None,
    payload: bytes | None = None,
    general: Sequence[tuple[str, bytes]] = (),
    package_edit: PackageEdit | None = None,
    payload_type: str = XML_PART,
) -> tuple[str, bytes]:
    """Content-Type and body of a GLOBE-R-BV-Request as an organisation's MSH sends it."""
    _, soap = batch_request(
        GEMEENTE,
        MIJNOVERHEID,
        cpa_id(GEMEENTE),
        PAYLOAD_CID,
        [cid for cid, _ in general],
        datetime.now(UTC),
    )
    if soap_edit is not None:
        soap = soap_edit(soap)
    parts = [(PAYLOAD_CID, payload_type, batch_xml([{}]) if payload is None else payload)]
    parts += [(cid, "application/pdf", content) for cid, content in general]
    content_type, body = build_package(soap, parts)
    return (content_type, body) if package_edit is None else package_edit(content_type, body)


@dataclass(frozen=True)
class EbmsCase:
    name: str
    build: Callable[[], tuple[str, bytes]]
    error: str | None  # the ErrorList errorCode; None: acknowledged
    soap_action: str | None = '"ebXML"'
    unknown_party: bool = False


def _soap_shape(shape: Shape) -> Callable[[], tuple[str, bytes]]:
    return lambda: message(lambda soap: shape(Carrier(soap, b"GLOBE-R-BV-Request")))


def _soap(old: bytes, new: bytes) -> Callable[[], tuple[str, bytes]]:
    def edit(soap: bytes) -> bytes:
        if old not in soap:
            raise ValueError(old)
        return soap.replace(old, new, 1)

    return lambda: message(edit)


def _package(edit: PackageEdit, **kwargs: Any) -> Callable[[], tuple[str, bytes]]:
    return lambda: message(package_edit=edit, **kwargs)


def _body(old: bytes, new: bytes) -> PackageEdit:
    def edit(content_type: str, body: bytes) -> tuple[str, bytes]:
        if old not in body:
            raise ValueError(old)
        return content_type, body.replace(old, new, 1)

    return edit


def _content_type(new: Callable[[str], str]) -> PackageEdit:
    return lambda content_type, body: (new(content_type), body)


def _soap_part_type(value: bytes) -> PackageEdit:
    return _body(b"Content-Type: text/xml; charset=UTF-8\r\n", b"Content-Type: " + value + b"\r\n")


def _base64_payload(junk: bytes) -> PackageEdit:
    """The payload part sent base64-encoded, with `junk` spliced into the encoding."""

    def edit(content_type: str, body: bytes) -> tuple[str, bytes]:
        head, rest = body.split(b"Content-ID: <%s>\r\n" % PAYLOAD_CID.encode(), 1)
        headers, rest = rest.split(b"\r\n\r\n", 1)
        content, tail = rest.split(b"\r\n--", 1)
        encoded = base64.encodebytes(content)
        encoded = encoded[:20] + junk + encoded[20:]
        return content_type, (
            head
            + b"Content-ID: <%s>\r\n" % PAYLOAD_CID.encode()
            + headers
            + b"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + encoded
            + b"\r\n--"
            + tail
        )

    return edit


def _without_closing_delimiter(content_type: str, body: bytes) -> tuple[str, bytes]:
    return content_type, body[: body.rindex(b"\r\n--")]


def _many_parts(content_type: str, body: bytes) -> tuple[str, bytes]:
    boundary = content_type.split('boundary="', 1)[1].split('"', 1)[0].encode()
    closing = b"--" + boundary + b"--"
    part = b"--" + boundary + b"\r\nContent-Type: application/pdf\r\n\r\n%PDF\r\n"
    return content_type, body.replace(closing, part * 1003 + closing)


def _single_part(content_type: str, body: bytes) -> tuple[str, bytes]:
    """Only the SOAP part, as a bare text/xml message declaring ISO-8859-1."""
    soap = body.split(b"\r\n\r\n", 1)[1].split(b"\r\n--", 1)[0]
    return "text/xml; charset=iso-8859-1", soap


def _duplicate_content_id(content_type: str, body: bytes) -> tuple[str, bytes]:
    soap_cid = content_type.split('start="<', 1)[1].split(">", 1)[0]
    return content_type, body.replace(
        b"Content-ID: <%s>" % PAYLOAD_CID.encode(), b"Content-ID: <%s>" % soap_cid.encode()
    )


def _foreign_message_header(soap: bytes) -> bytes:
    """The MessageHeader moved to another namespace, without mustUnderstand: no ebMS header."""
    start = b"<eb:MessageHeader "
    end = soap.index(b">", soap.index(start))
    tag = soap[soap.index(start) : end].replace(b' SOAP:mustUnderstand="1"', b"")
    soap = soap.replace(soap[soap.index(start) : end], tag, 1)
    return soap.replace(start, b'<x:MessageHeader xmlns:x="urn:x" ', 1).replace(
        b"</eb:MessageHeader>", b"</x:MessageHeader>", 1
    )


_HEADER = b"</SOAP:Header>"
_XINCLUDE_HEADER = xinclude(TRIPWIRE + b"/header.xml") + _HEADER

EBMS_CASES: list[EbmsCase] = [
    # The parser's shapes, in the SOAP part.
    *(
        EbmsCase(f"soap-part-{name}", _soap_shape(shape), "OtherXml")
        for name, shape in SHAPES.items()
    ),
    EbmsCase(
        "manifest-attributes-40000",
        _soap(
            b"<eb:Manifest ",
            b"<eb:Manifest " + b" ".join(b'a%d="1"' % n for n in range(40_000)) + b" ",
        ),
        "OtherXml",
    ),
    # XInclude and schema hints are never followed; the message is processed as without them.
    EbmsCase("soap-part-xinclude-header-block", _soap(_HEADER, _XINCLUDE_HEADER), None),
    EbmsCase(
        "soap-part-schema-location-hint",
        lambda: message(lambda soap: schema_location(Carrier(soap, b"GLOBE-R-BV-Request"), EB)),
        None,
    ),
    # Content types of the whole message and of its SOAP part.
    *(
        EbmsCase(
            f"content-type-{label}", _package(_content_type(lambda _, v=value: v)), "MimeProblem"
        )
        for label, value in (
            ("application-json", "application/json"),
            ("text-plain", "text/plain; charset=utf-8"),
            ("multipart-mixed", 'multipart/mixed; boundary="x"'),
            ("missing", ""),
        )
    ),
    EbmsCase(
        "content-type-soap-1.2-root",
        _package(
            _content_type(lambda ct: ct.replace('type="text/xml"', 'type="application/soap+xml"'))
        ),
        "MimeProblem",
    ),
    EbmsCase(
        "soap-part-is-application-soap-xml",
        _package(_soap_part_type(b"application/soap+xml; charset=UTF-8")),
        "MimeProblem",
    ),
    EbmsCase(
        "soap-part-charset-iso-8859-1",
        _package(_soap_part_type(b"text/xml; charset=iso-8859-1")),
        "OtherXml",
    ),
    EbmsCase("single-part-charset-iso-8859-1", _package(_single_part), "OtherXml"),
    # MIME breakage.
    EbmsCase(
        "missing-boundary",
        _package(_content_type(lambda ct: ct.split("; boundary=")[0])),
        "MimeProblem",
    ),
    EbmsCase(
        "boundary-not-in-body",
        _package(_content_type(lambda ct: ct.replace('boundary="', 'boundary="other'))),
        "MimeProblem",
    ),
    EbmsCase("duplicate-content-ids", _package(_duplicate_content_id), "MimeProblem"),
    EbmsCase(
        "start-names-a-missing-part",
        _package(_content_type(lambda ct: ct.replace('start="<', 'start="<missing-'))),
        "MimeProblem",
    ),
    EbmsCase(
        "payload-part-missing",
        _package(_body(b"Content-ID: <batch@test>", b"Content-ID: <other@test>")),
        "MimeProblem",
    ),
    EbmsCase("closing-delimiter-missing", _package(_without_closing_delimiter), "MimeProblem"),
    EbmsCase("more-than-1003-parts", _package(_many_parts), "MimeProblem"),
    EbmsCase(
        "part-header-malformed",
        _package(_body(b"Content-ID: <batch@test>", b"Content-ID <batch@test>")),
        "MimeProblem",
    ),
    EbmsCase(
        "unknown-transfer-encoding",
        _package(
            _body(
                b"Content-ID: <batch@test>",
                b"Content-ID: <batch@test>\r\nContent-Transfer-Encoding: x-gzip",
            )
        ),
        "MimeProblem",
    ),
    EbmsCase("base64-with-foreign-characters", _package(_base64_payload(b"!*$")), "MimeProblem"),
    EbmsCase("base64-badly-padded", _package(_base64_payload(b"Q")), "MimeProblem"),
    EbmsCase(
        "manifest-cid-unresolvable", _soap(b"cid:batch@test", b"cid:nergens@test"), "MimeProblem"
    ),
    EbmsCase(
        "manifest-reference-to-the-network",
        _soap(b"cid:batch@test", TRIPWIRE + b"/payload.xml"),
        "MimeProblem",
    ),
    # The SOAP envelope around the ebMS headers.
    EbmsCase(
        "soap-1.2-envelope",
        _soap(
            b'xmlns:SOAP="http://schemas.xmlsoap.org/soap/envelope/"',
            b'xmlns:SOAP="' + SOAP12 + b'"',
        ),
        "OtherXml",
    ),
    EbmsCase(
        "envelope-in-another-namespace",
        _soap(b'xmlns:SOAP="http://schemas.xmlsoap.org/soap/envelope/"', b'xmlns:SOAP="urn:x"'),
        "OtherXml",
    ),
    EbmsCase("two-bodies", _soap(b"</SOAP:Body>", b"</SOAP:Body><SOAP:Body/>"), "OtherXml"),
    EbmsCase(
        "no-body",
        lambda: message(lambda soap: soap.split(b"<SOAP:Body>")[0] + b"</SOAP:Envelope>"),
        "OtherXml",
    ),
    # Its mustUnderstand makes it a block we do not process, which SOAP refuses first.
    EbmsCase(
        "message-header-in-another-namespace",
        _soap(b"<eb:MessageHeader ", b'<eb:MessageHeader xmlns:eb="urn:x" '),
        "NotSupported",
    ),
    EbmsCase("message-header-missing", lambda: message(_foreign_message_header), "OtherXml"),
    EbmsCase(
        "must-understand-unknown-header",
        _soap(_HEADER, b'<h:Trace xmlns:h="urn:x" SOAP:mustUnderstand="1">x</h:Trace>' + _HEADER),
        "NotSupported",
    ),
    EbmsCase(
        "must-understand-0-unknown-header",
        _soap(_HEADER, b'<h:Trace xmlns:h="urn:x" SOAP:mustUnderstand="0">x</h:Trace>' + _HEADER),
        None,
    ),
    # SOAPAction and identity.
    EbmsCase("wrong-soap-action", lambda: message(), "OtherXml", soap_action='"urn:x"'),
    EbmsCase("missing-soap-action", lambda: message(), "OtherXml", soap_action=None),
    EbmsCase("unknown-organisation", lambda: message(), None, unknown_party=True),
]


# --- batch content ------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchCase:
    name: str
    # One Bericht per entry (builder keys of batch_xml but BerichtID) and its expected code.
    berichten: Sequence[tuple[dict[str, Any], str]] = ()
    edit: Edit | None = None  # applied to the payload bytes
    general: Sequence[tuple[str, bytes]] = ()
    whole: str | None = None  # the one nil-GUID code when the batch itself is refused
    stored: dict[str, str] = field(default_factory=dict)  # berichten column -> value, of the first


GOOD: tuple[dict[str, Any], str] = ({}, "Verwerkt")
XML_INVALID = "XmlValidatieTegenXsdValtNegatiefUit"


def _batch_shape(shape: Shape) -> Edit:
    return lambda payload: shape(Carrier(payload, b"Uw aanvraag"))


def _replace(old: bytes, new: bytes) -> Edit:
    def edit(payload: bytes) -> bytes:
        if old not in payload:
            raise ValueError(old)
        return payload.replace(old, new, 1)

    return edit


def _with(pdf: bytes) -> tuple[dict[str, Any], str]:
    return {"bijlagen": [(pdf, "Besluit")]}, "TechnischProbleem"


UNSAFE_PDFS = {
    "javascript-open-action": pdfs.javascript_open_action,
    "javascript-open-action-indirect": pdfs.javascript_open_action_indirect,
    "javascript-name-tree": pdfs.javascript_name_tree,
    "javascript-in-a-link": pdfs.javascript_in_a_link,
    "launch-action": pdfs.launch_action,
    "embedded-file": pdfs.embedded_file,
    "xfa-form": pdfs.xfa_form,
    "encrypted": pdfs.encrypted,
    "truncated": pdfs.truncated,
    "unreadable": pdfs.unreadable,
}
NOT_PDFS = {
    "png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 500,
    "zip-named-pdf": b"PK\x03\x04" + b"\x00" * 500,
    "html": b"<html><script>alert(1)</script></html>",
    "header-only": b"%PDF-1.7\n",
}

BATCH_CASES: list[BatchCase] = [
    # The parser's shapes, in the batch: one nil-GUID entry, nothing of the batch stored.
    *(
        BatchCase(f"batch-{name}", edit=_batch_shape(shape), whole=XML_INVALID)
        for name, shape in SHAPES.items()
    ),
    BatchCase(
        "batch-xinclude",
        edit=_replace(b"Uw aanvraag", xinclude(b"file:///etc/passwd", b"text")),
        whole=XML_INVALID,
    ),
    BatchCase(
        "batch-schema-location-hint",
        [GOOD],
        edit=lambda payload: schema_location(Carrier(payload, b"Uw aanvraag"), BV.encode()),
    ),
    BatchCase(
        "batch-in-another-namespace",
        [GOOD],
        edit=lambda p: p.replace(BV.encode(), b"urn:x"),
        whole=XML_INVALID,
    ),
    BatchCase(
        "batch-without-namespace",
        [GOOD],
        edit=lambda p: p.replace(b'xmlns:bv="%s"' % BV.encode(), b"").replace(b"bv:", b""),
        whole=XML_INVALID,
    ),
    BatchCase(
        "inline-base64-badly-padded",
        [({"bijlagen": [(pdfs.good_pdf(), "Besluit")]}, "")],
        edit=_replace(b"<ber:Inhoud>", b"<ber:Inhoud>Q"),
        whole=XML_INVALID,
    ),
    BatchCase(
        "inline-base64-not-base64",
        [({"bijlagen": [(pdfs.good_pdf(), "Besluit")]}, "")],
        edit=_replace(b"<ber:Inhoud>", b"<ber:Inhoud>!*$"),
        whole=XML_INVALID,
    ),
    # Unsafe PDFs and files that are no PDF: only their own Bericht is refused.
    *(BatchCase(f"pdf-{name}", [GOOD, _with(sample())]) for name, sample in UNSAFE_PDFS.items()),
    *(BatchCase(f"not-a-pdf-{name}", [_with(content), GOOD]) for name, content in NOT_PDFS.items()),
    BatchCase(
        "general-attachment-with-a-launch-action",
        [GOOD, ({"algemene": [("launch@test", "Folder")]}, "TechnischProbleem")],
        general=[("launch@test", pdfs.launch_action())],
    ),
    BatchCase(
        "inline-pdf-of-11-mb",
        [({"bijlagen": [(minimal_pdf(11_000_000), "groot")]}, "BijlageTeGroot"), GOOD],
    ),
    # Text is read as the element's whole text content, as the receipt's hash covers it.
    BatchCase(
        "onderwerp-split-by-a-comment",
        [({"Onderwerp": "UwXbesluit"}, "Verwerkt")],
        edit=_replace(b"UwXbesluit", b"Uw<!---->besluit"),
        stored={"onderwerp": "Uwbesluit"},
    ),
    BatchCase(
        "berichttekst-split-by-comments-and-cdata",
        [({"BerichtTekst": "TEKST"}, "Verwerkt")],
        edit=_replace(b"TEKST", b"Beste<!-- x --> inwoner,<![CDATA[ zie]]> bijlage"),
        stored={"tekst": "Beste inwoner, zie bijlage"},
    ),
    BatchCase(
        "gebruiker-split-by-a-comment",
        [({"GebruikerID": "999990019"}, "Verwerkt")],
        edit=_replace(b">999990019<", b">99999<!---->3653<"),
        stored={"bsn": "999993653"},
    ),
    # The elfproef: a BSN failing it has no account, so nobody can receive the letter.
    BatchCase(
        "gebruiker-failing-the-elfproef",
        [GOOD, ({"GebruikerID": "123456789"}, "NietActiefOfGeabonneerd")],
    ),
    # One batch with several bad Berichten among good ones.
    BatchCase(
        "several-bad-among-good",
        [
            GOOD,
            _with(pdfs.javascript_open_action()),
            ({"GebruikerID": NOT_SUBSCRIBED}, "NietActiefOfGeabonneerd"),
            GOOD,
            _with(NOT_PDFS["png"]),
            ({"BerichtType": "AANSLAG"}, "BerichtTypeNietOndersteund"),
            ({"bijlagen": [(pdfs.pdfa_pdf(), "Besluit")]}, "Verwerkt"),
        ],
    ),
]

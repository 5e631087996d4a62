"""Builders for BerichtVerwerkService request payloads and test PDFs.

`batch_xml` writes a `Berichten` document as a Logius client would (SPEC.md A 1.3, every element
qualified), with our optional `AlgemeneBijlagen` extension (Part C "BerichtVerwerk details").
`minimal_pdf` makes a small but structurally valid PDF of an exact size, for the attachment
size limits (512,000 bytes personal, 2 MiB general; Part B).

Plain functions without pytest fixtures, so contract, service and benchmark code can import them.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from lxml import etree

BV = "http://schemas.rdw.nl/GEB/BerichtVerwerkService/Types/2009/01"
BER = "http://schemas.rdw.nl/GEB/BerichtenProsessor/Bericht/Types/2009/01"
RES = "http://schemas.rdw.nl/GEB/BerichtVerwerkService/BerichtResultaat/Types/2009/01"
BBX = "urn:mijnoverheid-adapter:berichtenbox:1"

NIL_GUID = "00000000-0000-0000-0000-000000000000"

DEFAULT_BERICHTTYPE = "BESLUIT"
DEFAULT_GEBRUIKER = "999993653"
DEFAULT_ONDERWERP = "Uw aanvraag"

# Keys a Bericht dict may carry; anything else is a typo and raises.
_BERICHT_KEYS = frozenset(
    {
        "BatchID",
        "BerichtID",
        "BerichtType",
        "PublicatieDatum",
        "EindDatumHandelingsTermijn",
        "Onderwerp",
        "BerichtTekst",
        "Referentie",
        "GebruikerID",
        "SoortGebruiker",
        "bijlagen",
        "algemene",
    }
)


def _datetime(value: datetime | str) -> str:
    """xs:dateTime text; a naive datetime is taken as UTC, a string is passed on unchanged."""
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    text = value.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def _sub(parent: etree._Element, ns: str, tag: str, text: str | None = None) -> etree._Element:
    node = etree.SubElement(parent, f"{{{ns}}}{tag}")
    if text is not None:
        node.text = text
    return node


def _bericht(parent: etree._Element, spec: Mapping[str, Any], batch_id: str) -> None:
    unknown = set(spec) - _BERICHT_KEYS
    if unknown:
        raise ValueError(f"unknown Bericht keys: {sorted(unknown)}")
    bericht = _sub(parent, BER, "Bericht")
    info = _sub(bericht, BER, "BerichtInformatie")
    _sub(info, BER, "BatchID", str(spec.get("BatchID", batch_id)))
    _sub(info, BER, "BerichtID", str(spec.get("BerichtID") or uuid.uuid4()))
    _sub(info, BER, "BerichtType", spec.get("BerichtType", DEFAULT_BERICHTTYPE))
    for key in ("PublicatieDatum", "EindDatumHandelingsTermijn"):
        if spec.get(key) is not None:
            _sub(info, BER, key, _datetime(spec[key]))
    _sub(info, BER, "Onderwerp", spec.get("Onderwerp", DEFAULT_ONDERWERP))
    for key in ("BerichtTekst", "Referentie"):
        if spec.get(key) is not None:
            _sub(info, BER, key, spec[key])
    _sub(info, BER, "GebruikerID", spec.get("GebruikerID", DEFAULT_GEBRUIKER))
    _sub(info, BER, "SoortGebruiker", spec.get("SoortGebruiker", "Burger"))

    bijlagen: Sequence[tuple[bytes, str]] = spec.get("bijlagen") or ()
    if bijlagen:  # an empty Bijlagen element is invalid, so none means no element
        node = _sub(bericht, BER, "Bijlagen")
        for volgorde, (inhoud, omschrijving) in enumerate(bijlagen, start=1):
            bijlage = _sub(node, BER, "Bijlage")
            _sub(bijlage, BER, "Inhoud", base64.b64encode(inhoud).decode("ascii"))
            _sub(bijlage, BER, "BijlageType", "Pdf")
            _sub(bijlage, BER, "Omschrijving", omschrijving)
            _sub(bijlage, BER, "Volgorde", str(volgorde))

    algemene: Sequence[tuple[str, str]] = spec.get("algemene") or ()
    if algemene:
        node = _sub(bericht, BBX, "AlgemeneBijlagen")
        for volgorde, (cid, omschrijving) in enumerate(algemene, start=1):
            bijlage = _sub(node, BBX, "AlgemeneBijlage")
            _sub(bijlage, BBX, "Referentie", cid if cid.startswith("cid:") else f"cid:{cid}")
            _sub(bijlage, BBX, "BijlageType", "Pdf")
            _sub(bijlage, BBX, "Omschrijving", omschrijving)
            _sub(bijlage, BBX, "Volgorde", str(volgorde))


def batch_xml(
    berichten: list[dict[str, Any]],
    batch_id: str | uuid.UUID | None = None,
    leverancier: str = "00000099000000002000",
    aanmaak: datetime | str | None = None,
) -> bytes:
    """A `Berichten` payload (UTF-8, with XML declaration) holding one Bericht per dict.

    Each dict may give BerichtID (default: a new UUID), BerichtType (default BESLUIT),
    GebruikerID (default 999993653), Onderwerp, PublicatieDatum and EindDatumHandelingsTermijn
    (datetime, naive = UTC, or literal text), BerichtTekst, Referentie, SoortGebruiker (default
    Burger), BatchID (default: the batch's), `bijlagen` as a list of (file bytes, Omschrijving)
    and `algemene` as a list of (content-id, Omschrijving); a content-id without the `cid:`
    prefix gets it. Volgorde is the position in each list, from 1. Empty lists give no element.
    `aanmaak` defaults to now (UTC). The builder does not enforce the schema's limits, so tests
    can build invalid batches with it.
    """
    batch = str(batch_id or uuid.uuid4())
    root = etree.Element(f"{{{BV}}}Berichten", nsmap={"bv": BV, "ber": BER, "bbx": BBX})
    info = _sub(root, BV, "BatchInformatie")
    _sub(info, BV, "BatchID", batch)
    _sub(info, BV, "AanmaakDatum", _datetime(aanmaak or datetime.now(UTC)))
    _sub(info, BV, "BerichtLeverancierID", leverancier)
    for spec in berichten:
        _bericht(root, spec, batch)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


# --- PDF ---------------------------------------------------------------------------------------

_PDF_HEADER = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
_PDF_CATALOG = b"<</Type/Catalog/Pages 2 0 R>>"
_PDF_PAGES = b"<</Type/Pages/Kids[3 0 R]/Count 1>>"
_PDF_PAGE = b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]/Resources<<>>%s>>"


def _pdf(padding: int | None, slack: int) -> bytes:
    """A one-page PDF (written compactly: PDF needs no space around delimiters).

    With `padding` the page has a content stream of that many spaces (still an empty page);
    with None it has no content stream at all (also a blank page), for the smallest sizes.
    `slack` extra spaces go inside the trailer dictionary, after the xref, so no offset moves.
    """
    if padding is None:
        bodies = [_PDF_CATALOG, _PDF_PAGES, _PDF_PAGE % b""]
    else:
        stream = b"<</Length %d>>\nstream\n" % padding + b" " * padding + b"\nendstream"
        bodies = [_PDF_CATALOG, _PDF_PAGES, _PDF_PAGE % b"/Contents 4 0 R", stream]
    out = bytearray(_PDF_HEADER)
    offsets = []
    for number, body in enumerate(bodies, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(bodies) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<</Size %d/Root 1 0 R" % (len(bodies) + 1) + b" " * slack + b">>\n"
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


MINIMAL_PDF_SIZE = len(_pdf(None, 0))
_STREAM_PDF_SIZE = len(_pdf(0, 0))


def minimal_pdf(size: int) -> bytes:
    """A structurally valid one-page PDF of exactly `size` bytes.

    It has the `%PDF-1.7` header, a catalog, a page tree with one (blank) page, a correct xref
    table, trailer, startxref and `%%EOF` followed by a newline. The padding is whitespace in
    the page's content stream. `size` must be at least MINIMAL_PDF_SIZE (330 bytes).
    """
    if size < MINIMAL_PDF_SIZE:
        raise ValueError(f"a minimal PDF needs at least {MINIMAL_PDF_SIZE} bytes, not {size}")
    if size < _STREAM_PDF_SIZE:
        # Too small for a content stream: a page without one, the rest as trailer whitespace.
        return _pdf(None, size - MINIMAL_PDF_SIZE)
    # Padding n costs n bytes plus the digits of /Length and startxref, which grow with n, so
    # take the largest padding that fits and make up the last byte or two in the trailer.
    padding = size - _STREAM_PDF_SIZE
    while len(_pdf(padding, 0)) > size:
        padding -= 1
    pdf = _pdf(padding, size - len(_pdf(padding, 0)))
    if len(pdf) != size:  # pragma: no cover - the arithmetic above guarantees it
        raise AssertionError(f"built {len(pdf)} bytes instead of {size}")
    return pdf

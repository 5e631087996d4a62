"""Is an attachment a PDF a citizen can safely open? Judged on its content, never its name.

Every attachment is parsed with pypdf and refused when it does not parse, is encrypted, or
carries what a viewer could run or unpack: JavaScript (`/JS`, a `/JavaScript` name tree or
action, also as `/OpenAction` or in additional actions), a `/Launch` action, an embedded file,
or an XFA form. PDF/A, which the Berichtenbox requires (TAH 5.9), forbids all of these. Whether
the file *declares* PDF/A (XMP `pdfaid:part`) is recorded; a declaration is not a conformance
check, which would need a validator such as veraPDF.

The whole object graph reachable from the trailer is walked, dictionaries and stream
dictionaries alike, without decoding page content: active content is always reached through a
dictionary key, so it cannot hide in a content stream.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from typing import Any

from pypdf import PdfReader
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, StreamObject

from adapter.errors import XmlRejected
from adapter.soap.xml import parse_untrusted, text_of

PDFAID = "http://www.aiim.org/pdfa/ns/id/"
_TAIL = re.compile(rb"startxref\s+(\d+)\s+%%EOF\s*\Z")
_XPACKET = re.compile(rb"<\?xpacket[^>]*\?>")
# More objects than any attachment within the size limits has (a 2 MiB PDF of tiny objects
# holds some tens of thousands): past it the walk itself would be the cost.
_MAX_OBJECTS = 200_000
_MAX_XMP_BYTES = 1024 * 1024
_CONTAINERS = (DictionaryObject, ArrayObject, IndirectObject)

# pypdf reports every oddity of a hostile file as a warning; the verdict says what matters.
logging.getLogger("pypdf").setLevel(logging.ERROR)


@dataclass(frozen=True)
class PdfVerdict:
    problem: str | None  # why the file is refused, to follow "bijlage 2 ..."; None when safe
    pdfa: str | None = None  # declared PDF/A part and conformance ("2A", "1B"), else None


def _resolved(node: DictionaryObject, key: str) -> Any:
    value = dict.get(node, key)
    return value.get_object() if isinstance(value, IndirectObject) else value


def _active_content(node: DictionaryObject) -> str | None:
    """What a viewer could run or unpack in this one dictionary, named for the sender."""
    keys = set(node.keys())
    action = _resolved(node, "/S")
    if "/JS" in keys or "/JavaScript" in keys or action == "/JavaScript":
        return "bevat JavaScript"
    if action == "/Launch":
        return "bevat een Launch-actie (starten van een programma)"
    if (
        "/EmbeddedFiles" in keys
        or "/EF" in keys
        or _resolved(node, "/Type") == "/EmbeddedFile"
        or _resolved(node, "/Subtype") == "/FileAttachment"
    ):
        return "bevat een ingesloten bestand"
    if "/XFA" in keys:
        return "bevat een XFA-formulier"
    return None


def _walk(reader: PdfReader) -> str | None:
    """The first active content reachable from the trailer, or None."""
    seen: set[tuple[int, int]] = set()
    pending: list[Any] = [v for k, v in dict.items(reader.trailer) if k != "/Encrypt"]
    visited = 0
    while pending:
        node = pending.pop()
        if isinstance(node, IndirectObject):
            reference = (node.idnum, node.generation)
            if reference in seen:
                continue
            seen.add(reference)
            node = node.get_object()
        visited += 1
        if visited > _MAX_OBJECTS:
            return f"bevat meer dan {_MAX_OBJECTS} objecten"
        if isinstance(node, DictionaryObject):  # a stream's dictionary too, not its data
            found = _active_content(node)
            if found is not None:
                return found
            # Raw values, so each reference is resolved (and counted) once, above.
            pending.extend(v for v in dict.values(node) if isinstance(v, _CONTAINERS))
        elif isinstance(node, ArrayObject):
            pending.extend(v for v in list.__iter__(node) if isinstance(v, _CONTAINERS))
    return None


def _declared_pdfa(reader: PdfReader) -> str | None:
    """Part and conformance from the XMP metadata's pdfaid fields, as attributes or elements."""
    catalog = reader.trailer["/Root"]
    metadata = _resolved(catalog, "/Metadata") if isinstance(catalog, DictionaryObject) else None
    if not isinstance(metadata, StreamObject):
        return None
    xmp = metadata.get_data()
    if len(xmp) > _MAX_XMP_BYTES:
        return None
    try:
        # The xpacket wrapper is a processing instruction, which the safe parser refuses.
        root = parse_untrusted(_XPACKET.sub(b"", xmp).strip())
    except XmlRejected:
        return None
    fields: dict[str, str] = {}
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        for name in ("part", "conformance"):
            value = element.get(f"{{{PDFAID}}}{name}")
            if element.tag == f"{{{PDFAID}}}{name}":
                value = text_of(element)
            if value and name not in fields:
                fields[name] = value.strip()
    part = fields.get("part", "")
    conformance = fields.get("conformance", "").upper()
    if not (part.isdigit() and len(part) == 1 and conformance in ("", "A", "B", "U", "E", "F")):
        return None
    return part + conformance


def check_pdf(data: bytes) -> PdfVerdict:
    """Parse one attachment and judge it; never raises for what a sender put in the file."""
    if not data.startswith(b"%PDF-"):
        return PdfVerdict("is geen PDF")
    tail = _TAIL.search(data[-2048:])
    if tail is None or not 0 < int(tail.group(1)) < len(data):
        return PdfVerdict("is geen volledige PDF (startxref en %%EOF aan het eind ontbreken)")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            return PdfVerdict("is versleuteld")
        if len(reader.pages) < 1:
            return PdfVerdict("heeft geen pagina's")
        problem = _walk(reader)
        if problem is not None:
            return PdfVerdict(problem)
        return PdfVerdict(None, _declared_pdfa(reader))
    except Exception:
        # pypdf fails on hostile input in many ways (its own errors, but also KeyError,
        # ValueError, RecursionError...); to the sender each means: this is no readable PDF.
        return PdfVerdict("kan niet als PDF worden gelezen")

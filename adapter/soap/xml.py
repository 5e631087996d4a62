"""The one XML parser configuration for everything that arrives from outside.

No DTDs, no entities, no network, no huge trees; a document that declares a DTD or an entity
is refused on its bytes, before lxml sees it, so an entity bomb never costs memory.
"""

from __future__ import annotations

import re

from lxml import etree

from adapter.errors import InvalidEnvelope, NotUtf8

# Digikoppeling WS006 allows UTF-8 only; UTF-16/32 would also let a DOCTYPE slip past the byte scan.
_OTHER_ENCODING_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00")
_DECLARED_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_FORBIDDEN_MARKUP = (b"<!DOCTYPE", b"<!ENTITY")


def _new_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
        collect_ids=False,
    )


def parse_untrusted(data: bytes) -> etree._Element:
    """Parse bytes from a peer into an element tree, or raise the fault that says why not."""
    if data.startswith(_OTHER_ENCODING_BOMS) or (len(data) > 1 and b"\x00" in data[:4]):
        raise NotUtf8("het bericht is niet in UTF-8")
    declared = _DECLARED_ENCODING.match(data)
    if declared and declared.group(1).lower() not in (b"utf-8", b"utf8"):
        raise NotUtf8(f"encoding {declared.group(1).decode('ascii')} is niet toegestaan")
    for markup in _FORBIDDEN_MARKUP:
        if markup in data:
            raise InvalidEnvelope("DTD's en entiteiten zijn niet toegestaan")
    try:
        # A parser per call: lxml parsers keep error state and are not safe across threads.
        root = etree.fromstring(data, parser=_new_parser())
    except etree.XMLSyntaxError as exc:
        raise InvalidEnvelope(f"geen well-formed XML: {exc.msg}") from None
    if root is None:
        raise InvalidEnvelope("leeg bericht")
    return root


def parse_trusted_file(path: str) -> etree._ElementTree:
    """Parse one of our own files (XSD, WSDL) with the same safe settings."""
    return etree.parse(path, parser=_new_parser())

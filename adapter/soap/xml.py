"""The one XML parser configuration for everything that arrives from outside.

No DTDs, no entities, no network; a document that declares a DTD or an entity (or an XML
version other than 1.0) is refused on its bytes, before lxml sees it, so an entity bomb never
costs memory; a processing instruction anywhere is refused (SOAP 1.1 forbids them).

What a document may cost is bounded while it is parsed (`XmlLimits`: attributes per element,
depth, elements, text length), by one checker (`_Budget`) that says which limit is passed, and
where. A document larger than one 64 KB chunk is fed to libxml2 in chunks by a pull parser that
builds the tree and reports what it parsed; the `_Budget` replays the reports of each chunk
before the next is fed, so a flood of elements stops the parse once the tree holds one chunk
more than the limit allows (`_parse_counting_elements`). Replaying costs more than the parse
itself: a 1000-Bericht batch takes 6 ms in all where a bare parse takes 1.4 ms; the counting
target it replaced, a callback into Python per element followed by a second parse, took 24 ms
where a bare parse took 6 on a slower machine. A document of at most one chunk is parsed once into a
tree without reports, which is then checked: the tree of so few bytes cannot cost much (at most
some 16,000 elements, about 2 MB). The checks on that tree are XPath counts libxml2 runs by
itself and a count of bytes, sufficient for every limit (`_parse_in_one_pass`); only a document
they cannot pass is replayed. A document that libxml2 refuses, or that may hold a text over the
limit, is parsed again in two passes, the `_Budget` the target of a counting parser that builds
nothing and stops at the first limit passed, and then into a tree: they word the syntax error,
the same for a document of any size.
Either way nothing after the parser (XSD validation, the exclusive-c14n body hash of a receipt)
ever sees a document the limits refuse.
Refusals are profile-neutral `XmlRejected` errors: each profile says what they mean to its peer.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from lxml import etree

from adapter.errors import (
    ForbiddenMarkup,
    MalformedXml,
    SchemaViolation,
    XmlNotUtf8,
    XmlTooComplex,
)

XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"

# Digikoppeling WS006 allows UTF-8 only; UTF-16/32 would also let a DOCTYPE slip past the byte scan.
_OTHER_ENCODING_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00")
_DECLARED_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_DECLARED_VERSION = re.compile(rb"""^\s*<\?xml[^>]*version\s*=\s*["']([^"']*)["']""")
_FORBIDDEN_KEYWORDS = (b"DOCTYPE", b"ENTITY")  # refused after `<!`
_FORBIDDEN_MARKUP_PATTERN = re.compile(b"<!(?:" + b"|".join(_FORBIDDEN_KEYWORDS) + b")")
# Exclamation marks looked at one by one before the rest is left to one regex search: a
# document with more of them (many comments, say) pays at most that search on top.
_MARKS_CHECKED_ONE_BY_ONE = 64

# libxml2 refuses a text node above 10,000,000 bytes unless XML_PARSE_HUGE is set; a larger
# text limit of ours has to switch that on (our own limits then bound depth and size).
_LIBXML2_TEXT_LIMIT = 10_000_000
# Fed in chunks, so a limit is checked after at most this many bytes more were parsed.
_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class XmlLimits:
    """What one document may cost; `[limits]` in conf/adapter.toml, docs/configuration.md.

    The defaults pass every legitimate message with room to spare: a 1000-Bericht batch with
    two Bijlagen and three AlgemeneBijlagen per Bericht has about 40,000 elements, nesting
    about 10 deep, and a handful of attributes and namespace declarations per element.
    """

    max_attributes: int = 64  # attributes plus namespace declarations on one element
    max_depth: int = 64  # element nesting, the root at depth 1
    # Elements and comments in the whole document. A million-BSN AbonnementAanvraag is read
    # as a stream (iterparse_untrusted) and never becomes a tree, so it needs no room here.
    max_elements: int = 100_000
    # One text node or attribute value, in characters. As large as the largest ebMS message by
    # default: an inline Bijlage of any size must reach BerichtVerwerk, which refuses that one
    # Bericht with BijlageTeGroot; a parser limit would refuse the whole batch instead.
    max_text_length: int = 100 * 1024 * 1024


# For documents whose limits no configuration sets: our own files, answers of peers to
# our messages, the kit. The endpoints pass the configured ones (`[limits]`).
DEFAULT_LIMITS = XmlLimits()


def _safe_options(huge: bool) -> dict[str, Any]:
    return {
        "resolve_entities": False,
        "no_network": True,
        "load_dtd": False,
        "dtd_validation": False,
        "huge_tree": huge,
        "remove_blank_text": False,
        "collect_ids": False,
    }


class _Budget:
    """Counts what the parser reports, and raises at the first limit: the one place the limits
    are checked and worded, for both ways of parsing.

    It checks what a pull parser reported while building a tree (`replay`), chunk by chunk for
    a large document. For a document libxml2 refuses it is the target of the first of two
    passes instead: it builds nothing, and an exception raised here ends libxml2's parse at
    once, so a limit passed before the syntax error is still the one reported.
    """

    def __init__(self, limits: XmlLimits) -> None:
        self.limits = limits
        self.nodes = 0  # elements and comments
        self.depth = 0
        self.declarations = 0  # namespace declarations of the element about to start

    def start_ns(self, _prefix: str | None, _uri: str) -> None:
        self.declarations += 1

    def start(self, tag: str, attrib: Mapping[str, str]) -> None:
        limits = self.limits
        self.nodes += 1
        self.depth += 1
        attributes = len(attrib) + self.declarations
        self.declarations = 0
        if self.nodes > limits.max_elements:
            raise XmlTooComplex(
                f"het bericht heeft meer dan {limits.max_elements} elementen en commentaren"
            )
        if self.depth > limits.max_depth:
            raise XmlTooComplex(
                f"element {_local(tag)} is dieper genest dan {limits.max_depth} niveaus"
            )
        if attributes > limits.max_attributes:
            raise XmlTooComplex(
                f"element {_local(tag)} heeft {attributes} attributen en"
                f" namespacedeclaraties; maximaal {limits.max_attributes}"
            )

    def end(self, _tag: str) -> None:
        self.depth -= 1

    def comment(self, _text: str) -> None:
        self.nodes += 1  # a comment costs a node like an element does
        if self.nodes > self.limits.max_elements:
            raise XmlTooComplex(
                f"het bericht heeft meer dan {self.limits.max_elements} elementen en commentaren"
            )

    def pi(self, _target: str, _data: str | None = None) -> None:
        # SOAP 1.1 section 3: a SOAP message must not contain processing instructions.
        raise ForbiddenMarkup("processing instructions zijn niet toegestaan")

    def close(self) -> None:
        return None

    def replay(self, events: Iterable[tuple[str, Any]]) -> None:
        """Check what a pull parser (`_EVENTS`) reported, as the calls a target would get.

        Elements are counted here rather than by a call of `start` and `end` each, which cost
        more than the parse of a 1000-Bericht batch's elements itself (9 ms against 4); the
        methods still word the limit that is passed."""
        limits = self.limits
        most_nodes, most_depth = limits.max_elements, limits.max_depth
        most_attributes = limits.max_attributes
        nodes, depth, declarations = self.nodes, self.depth, self.declarations
        for event, node in events:
            if event == "start":
                nodes, depth = nodes + 1, depth + 1
                if (
                    nodes > most_nodes
                    or depth > most_depth
                    or len(node.attrib) + declarations > most_attributes
                ):
                    self.nodes, self.depth, self.declarations = nodes - 1, depth - 1, declarations
                    self.start(node.tag, node.attrib)  # raises, saying which limit
                declarations = 0
            elif event == "end":
                depth -= 1
            elif event == "start-ns":
                declarations += 1
            elif event == "comment":
                self.nodes = nodes
                self.comment(node.text)
                nodes = self.nodes
            else:
                self.pi(node.target, node.text)
        self.nodes, self.depth, self.declarations = nodes, depth, declarations

    def _replay_by_calls(self, events: Iterable[tuple[str, Any]]) -> None:
        """`replay` for a budget whose methods do more than count (`_TextBudget`)."""
        for event, node in events:
            if event == "start":
                self.start(node.tag, node.attrib)
            elif event == "end":
                self.end(node.tag)
            elif event == "start-ns":
                self.start_ns(*node)
            elif event == "comment":
                self.comment(node.text)
            else:
                self.pi(node.target, node.text)


class _TextBudget(_Budget):
    """`_Budget` that also measures text and attribute values: for documents long enough to
    hold one over the limit (a separate class, since lxml reports text only to a target
    that asks for it, and every report costs a call)."""

    def __init__(self, limits: XmlLimits) -> None:
        super().__init__(limits)
        self.text = 0  # characters of the text node being read (reported in pieces)
        self.where = "het bericht"

    def replay(self, events: Iterable[tuple[str, Any]]) -> None:
        self._replay_by_calls(events)

    def start(self, tag: str, attrib: Mapping[str, str]) -> None:
        super().start(tag, attrib)
        for value in attrib.values():
            self._measure(len(value), f"een attribuut van {_local(tag)}")
        self.text, self.where = 0, f"de tekst van {_local(tag)}"

    def end(self, tag: str) -> None:
        super().end(tag)
        self.text, self.where = 0, f"de tekst na {_local(tag)}"

    def comment(self, text: str) -> None:
        super().comment(text)
        self.text = 0

    def data(self, text: str) -> None:
        self.text += len(text)
        self._measure(self.text, self.where)

    def _measure(self, length: int, where: str) -> None:
        if length > self.limits.max_text_length:
            raise XmlTooComplex(f"{where} is langer dan {self.limits.max_text_length} tekens")


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _check_bytes(data: bytes) -> None:
    """What is refused on the bytes alone, before the parser sees them."""
    if data.startswith(_OTHER_ENCODING_BOMS) or (len(data) > 1 and b"\x00" in data[:4]):
        raise XmlNotUtf8("het bericht is niet in UTF-8")
    declared = _DECLARED_ENCODING.match(data)
    if declared and declared.group(1).lower() not in (b"utf-8", b"utf8"):
        raise XmlNotUtf8(f"encoding {declared.group(1).decode('ascii')} is niet toegestaan")
    version = _DECLARED_VERSION.match(data)
    if version and version.group(1) != b"1.0":
        # SOAP 1.1 and WS-I Basic Profile serialise envelopes as XML 1.0; 1.1 reads differently.
        # Shown as a fault and a receipt can carry it: printable ASCII, at most 20 characters
        # (a NUL or other control character in the reason made building the fault fail).
        shown = re.sub(r"[^ -~]", "?", version.group(1)[:20].decode("ascii", "replace"))
        raise ForbiddenMarkup(f"XML-versie {shown} is niet toegestaan, gebruik XML 1.0")
    if _has_forbidden_markup(data):
        raise ForbiddenMarkup("DTD's en entiteiten zijn niet toegestaan")


def _has_forbidden_markup(data: bytes) -> bool:
    """Whether `<!DOCTYPE` or `<!ENTITY` occurs anywhere in `data`.

    By the `!` each must contain: a single byte is found with memchr, some twenty times
    faster than a search for either string (CPython's substring search took 20-25 ms per
    string over a 28 MB batch of base64, which holds no `!` at all). Past a few dozen marks,
    one search for both strings from there on answers for the rest.
    """
    mark = data.find(b"!")
    for _ in range(_MARKS_CHECKED_ONE_BY_ONE):
        if mark < 0:
            return False
        if mark > 0 and data[mark - 1] == 0x3C and data.startswith(_FORBIDDEN_KEYWORDS, mark + 1):
            return True
        mark = data.find(b"!", mark + 1)
    return mark >= 0 and _FORBIDDEN_MARKUP_PATTERN.search(data, mark - 1) is not None


def parse_untrusted(data: bytes, limits: XmlLimits = DEFAULT_LIMITS) -> etree._Element:
    """Parse bytes from a peer into an element tree, or raise the `XmlRejected` that says why.

    A limit passed is `XmlTooComplex`. A document of more than one chunk is refused while it
    is parsed, the rest never parsed; a smaller one is parsed once and checked on its events.
    """
    _check_bytes(data)
    if len(data) <= _CHUNK_BYTES:
        root = _parse_in_one_pass(data, limits)
    else:
        root = _parse_counting_elements(data, limits)
    if root is not None:
        return root
    return _parse_in_two_passes(data, limits)


def _may_hold_too_long_a_text(data: bytes, limits: XmlLimits) -> bool:
    # A document shorter than the text limit cannot hold a text over it: no need to measure.
    return len(data) > limits.max_text_length


def _budget_for(data: bytes, limits: XmlLimits) -> _Budget:
    return _TextBudget(limits) if _may_hold_too_long_a_text(data, limits) else _Budget(limits)


# What the one-pass parser reports; "start-ns" before the "start" of the element declaring it.
_EVENTS = ("start", "end", "start-ns", "comment", "pi")


def _parse_in_one_pass(data: bytes, limits: XmlLimits) -> etree._Element | None:
    """The tree of a document of at most one chunk, checked against the limits; None for a
    document libxml2 refuses.

    A plain parse, then checks on the finished tree that libxml2 runs by itself (XPath
    counts) and a count of bytes: together sufficient for every limit, so a document that
    passes them passes `_Budget`. The replay of every parser event through `_Budget` cost
    five times the parse of a 250-Klant request (0.7 ms against 0.14); it now runs only for
    a document the sufficient checks cannot pass (`_checked_on_events`), and says which
    limit it passes, and where, exactly as the two passes would.
    """
    tools = _one_pass_tools(limits)
    try:
        root = etree.fromstring(data, tools.parser)
    except etree.XMLSyntaxError:
        return None
    if not _may_hold_too_long_a_text(data, limits) and tools.within(data, root):
        return root
    return _checked_on_events(data, limits)


class _OnePassTools:
    """A parser and compiled XPath checks for one set of limits, for one thread (lxml's
    parsers and XPath evaluators are not to be shared between threads)."""

    def __init__(self, limits: XmlLimits) -> None:
        self.limits = limits
        # No XML_PARSE_HUGE: 64 KB holds no text near libxml2's own limit.
        self.parser = etree.XMLParser(**_safe_options(huge=False))
        # Elements and comments, those beside the root element too: what `_Budget` counts.
        self.nodes = etree.XPath("count(//*|//comment())")
        self.instruction = etree.XPath("boolean(//processing-instruction())")
        # An element one level deeper than allowed, the root at depth 1.
        self.too_deep = etree.XPath("boolean(/" + "/".join(["*"] * (limits.max_depth + 1)) + ")")
        self.crowded = etree.XPath("boolean(//*[count(@*) > $most])")

    def within(self, data: bytes, root: etree._Element) -> bool:
        """Whether the document certainly passes every limit of `_Budget` (False: perhaps not).

        Attributes and namespace declarations are bounded by the bytes: each has an `=` of
        its own, and each declaration holds `xmlns` (text may hold either too, which only
        makes the bound looser). No DTD can add default attributes: DTDs are refused.
        """
        limits, document = self.limits, root.getroottree()
        if self.nodes(document) > limits.max_elements or self.instruction(document):
            return False
        if self.too_deep(document):
            return False
        if data.count(b"=") <= limits.max_attributes:
            return True
        declarations = data.count(b"xmlns")
        most = limits.max_attributes - declarations  # attributes beside every declaration
        return most >= 0 and not self.crowded(document, most=most)


_one_pass_local = threading.local()


def _one_pass_tools(limits: XmlLimits) -> _OnePassTools:
    tools: _OnePassTools | None = getattr(_one_pass_local, "tools", None)
    if tools is None or tools.limits != limits:
        tools = _one_pass_local.tools = _OnePassTools(limits)
    return tools


def _checked_on_events(data: bytes, limits: XmlLimits) -> etree._Element | None:
    """The tree of a document of at most one chunk, checked by the `_Budget` on the events a
    pull parser reported while building it; None for a document libxml2 refuses.

    A pull parser with no target: a parser target costs lxml an `inspect` of the target for
    every parser created, and a callback per event while parsing. libxml2 reports the same
    events in the same order to both, so the first limit passed is the one the two-pass path
    finds. A refused document (None) goes through the two passes after all: they say what is
    wrong exactly as for a large one (a limit passed before the error, or the error in the
    counting parser's words; a tree-building feed parser words an undefined entity as "no
    element found"), at the cost of parsing at most 64 KB again.
    """
    budget = _budget_for(data, limits)
    parser = etree.XMLPullParser(events=_EVENTS, **_safe_options(huge=False))
    try:
        parser.feed(data)
        root = parser.close()
    except etree.XMLSyntaxError:
        return None
    events = parser.read_events()
    if isinstance(budget, _TextBudget):
        events = _with_text_measured(events, budget)
    budget.replay(events)
    return root


def _with_text_measured(
    events: Iterable[tuple[str, Any]], budget: _TextBudget
) -> Iterator[tuple[str, Any]]:
    """The events of a finished parse, the text a target is given between two of them
    measured before the next: read whole from the tree (after a start the element's text,
    after an end or a comment its tail)."""
    text: str | None = None
    for event, node in events:
        if text:
            budget.data(text)
        text = node.text if event == "start" else node.tail if event != "start-ns" else None
        yield event, node


def _parse_counting_elements(data: bytes, limits: XmlLimits) -> etree._Element | None:
    """The tree of a document of more than one chunk, checked against the limits, or the
    `XmlTooComplex` of the first limit it passes; None for a document libxml2 refuses (the
    two passes then word what is wrong) or one that may hold a text over the limit.

    Fed in chunks to a pull parser that builds the tree and reports what it parsed; the
    `_Budget` checks the reports of each chunk before the next is fed, so a flood of elements
    never grows a tree past the limit and one chunk.
    """
    if _may_hold_too_long_a_text(data, limits):
        return None
    budget = _Budget(limits)
    parser = etree.XMLPullParser(events=_EVENTS, **_safe_options(_needs_huge(data, limits)))
    try:
        for offset in range(0, len(data), _CHUNK_BYTES):
            parser.feed(data[offset : offset + _CHUNK_BYTES])
            budget.replay(parser.read_events())
        root = parser.close()
    except etree.XMLSyntaxError:
        return None
    budget.replay(parser.read_events())  # what libxml2 kept back until the end
    return root


def _needs_huge(data: bytes, limits: XmlLimits) -> bool:
    # Only a document that can hold a text over libxml2's own limit needs XML_PARSE_HUGE;
    # smaller ones keep libxml2's limits as a second line behind ours.
    return limits.max_text_length > _LIBXML2_TEXT_LIMIT and len(data) > _LIBXML2_TEXT_LIMIT


def _parse_in_two_passes(data: bytes, limits: XmlLimits) -> etree._Element:
    """Count in chunks with the `_Budget` as the parser's target, then parse into a tree."""
    huge = _needs_huge(data, limits)
    # Parsers per call: lxml parsers keep error state and are not safe across threads.
    counting = etree.XMLParser(target=_budget_for(data, limits), **_safe_options(huge))
    try:
        for offset in range(0, len(data), _CHUNK_BYTES):
            counting.feed(data[offset : offset + _CHUNK_BYTES])
        counting.close()
        root = etree.fromstring(data, parser=etree.XMLParser(**_safe_options(huge)))
    except etree.XMLSyntaxError as exc:
        if exc.code == etree.ErrorTypes.ERR_INVALID_ENCODING:
            # Bytes that are no UTF-8 in a document that is UTF-8 by rule: WS006, not syntax.
            raise XmlNotUtf8(f"het bericht is geen geldige UTF-8: {exc.msg}") from None
        raise MalformedXml(f"geen well-formed XML: {exc.msg}") from None
    if root is None:
        raise MalformedXml("leeg bericht")
    return root


def text_of(element: etree._Element | None, *, nillable: bool = False) -> str | None:
    """The whole text content of an element, as the exclusive c14n of a receipt covers it.

    `.text` and `findtext` stop at the first comment or processing instruction
    (`Uw<!---->besluit` would read as `Uw`); this joins every text node. None for a missing
    element, and with `nillable` for one marked xsi:nil; "" for an empty one.
    """
    if element is None:
        return None
    if nillable and element.get(XSI_NIL) in ("true", "1"):
        return None
    if len(element) == 0:  # one text node at most (a comment or PI would be a child)
        return element.text or ""
    return "".join(element.itertext())


def parse_trusted_file(path: str, resolver: etree.Resolver | None = None) -> etree._ElementTree:
    """Parse one of our own files (XSD, WSDL) with the same safe settings; `resolver` is
    asked for the file and, when it is a schema, for those it imports."""
    parser = etree.XMLParser(**_safe_options(huge=False))
    if resolver is not None:
        parser.resolvers.add(resolver)
    return etree.parse(path, parser=parser)


def iterparse_untrusted(
    data: bytes, schema: etree.XMLSchema | None = None
) -> Iterable[etree._Element]:
    """Stream a document from a peer that is too large for a tree: each element at its end.

    For payloads such as an AbonnementAanvraag of a million BSNs. The caller clears what it
    has read (and its finished siblings), so memory stays flat whatever the size. The byte
    checks of `parse_untrusted` apply; a processing instruction is refused; comments are
    dropped while parsing, so an element's `.text` is its whole text. With `schema` the
    document is validated while it is read (`SchemaViolation` at the first breach). The
    `XmlLimits` are not applied: they bound the tree `parse_untrusted` builds, and none is
    kept here; the message size limit bounds the work.
    """
    _check_bytes(data)
    options = {**_safe_options(huge=False), "remove_comments": True, "schema": schema}
    events = etree.iterparse(io.BytesIO(data), events=("end", "pi"), **options)
    closed = False
    try:
        for event, element in events:
            if event == "pi":
                # As parse_untrusted: SOAP 1.1 section 3 forbids processing instructions.
                raise ForbiddenMarkup("processing instructions zijn niet toegestaan")
            closed = element.getparent() is None
            yield element
    except etree.XMLSyntaxError as exc:
        last = exc.error_log.last_error
        line = last.line if last is not None and last.line > 0 else exc.lineno
        where = f"regel {line}: " if line else ""
        if exc.code == etree.ErrorTypes.ERR_INVALID_ENCODING:
            raise XmlNotUtf8(f"het bericht is geen geldige UTF-8: {where}{exc.msg}") from None
        if last is not None and last.domain == etree.ErrorDomains.PARSER:
            raise MalformedXml(f"geen well-formed XML: {where}{exc.msg}") from None
        raise SchemaViolation(f"{where}{exc.msg}") from None
    if not closed:
        # lxml (6.1) with a schema and resolve_entities off reports no error for a document
        # that just stops: the root's end, seen or not, is the check that does not depend on it.
        raise MalformedXml("geen well-formed XML: het document stopt voor het einde van de root")

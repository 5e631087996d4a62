"""The safe XML parser on its own: what it accepts, and each kind of input it refuses with the
profile-neutral error (adapter.errors) that the WUS and ebMS profiles translate."""

from __future__ import annotations

import contextlib

import pytest
from lxml import etree

from adapter.errors import (
    AdapterError,
    ForbiddenMarkup,
    MalformedXml,
    XmlNotUtf8,
    XmlRejected,
    XmlTooComplex,
)
from adapter.soap.xml import (
    DEFAULT_LIMITS,
    XmlLimits,
    _OnePassTools,
    _parse_counting_elements,
    iterparse_untrusted,
    parse_trusted_file,
    parse_untrusted,
)
from tests.berichtverwerk_samples import batch_xml, minimal_pdf
from tests.conftest import ROOT

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><lolz>&lol3;</lolz>"""
EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
)


# --- accepted ----------------------------------------------------------------------------------


def test_a_well_formed_utf8_document_parses_into_its_root_element() -> None:
    root = parse_untrusted('<?xml version="1.0" encoding="UTF-8"?><a xmlns="urn:x">é</a>'.encode())
    assert root.tag == "{urn:x}a"
    assert root.text == "é"


@pytest.mark.parametrize(
    "declaration", [b"", b'<?xml version="1.0"?>', b"<?xml version='1.0' encoding='utf8'?>"]
)
def test_a_document_without_or_with_a_utf8_declaration_is_accepted(declaration: bytes) -> None:
    assert parse_untrusted(declaration + b"<a/>").tag == "a"


def test_an_xinclude_is_kept_as_an_element_and_never_followed() -> None:
    root = parse_untrusted(
        b'<a xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="/etc/passwd"/></a>'
    )
    assert [child.tag for child in root] == ["{http://www.w3.org/2001/XInclude}include"]


def test_our_own_files_parse_with_the_same_settings() -> None:
    tree = parse_trusted_file(str(ROOT / "xsd" / "afleverbevestiging.xsd"))
    assert tree.getroot().tag == "{http://www.w3.org/2001/XMLSchema}schema"


# --- refused -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b'<?xml version="1.0"?><!DOCTYPE a><a/>', id="a DOCTYPE"),
        pytest.param(b'<!DOCTYPE a SYSTEM "http://example.org/a.dtd"><a/>', id="an external DTD"),
        pytest.param(BILLION_LAUGHS, id="an entity bomb"),
        pytest.param(EXTERNAL_ENTITY, id="an external entity"),
        pytest.param(b'<a><!ENTITY e "e"></a>', id="an entity declaration outside a DTD"),
    ],
)
def test_a_dtd_or_entity_is_refused_before_parsing(data: bytes) -> None:
    with pytest.raises(ForbiddenMarkup, match="DTD's en entiteiten"):
        parse_untrusted(data)


@pytest.mark.parametrize("marks", [0, 1, 63, 64, 65, 1000])
@pytest.mark.parametrize("markup", [b"<!DOCTYPE a>", b'<!ENTITY e "e">'])
def test_a_dtd_or_entity_after_any_number_of_exclamation_marks_is_refused(
    marks: int, markup: bytes
) -> None:
    # The byte scan looks at the first marks one by one and leaves the rest to one search.
    comments = b"<!-- Let op! -->" * (marks // 2) + b"!" * (marks % 2)
    with pytest.raises(ForbiddenMarkup, match="DTD's en entiteiten"):
        parse_untrusted(b"<a>" + comments + b"</a>" + markup if marks else markup + b"<a/>")
    with pytest.raises(ForbiddenMarkup, match="DTD's en entiteiten"):
        parse_untrusted(b"<a>" + comments + markup + b"</a>")


@pytest.mark.parametrize("marks", [0, 64, 1000])
def test_exclamation_marks_and_comments_alone_are_no_forbidden_markup(marks: int) -> None:
    text = b"<!-- !DOCTYPE <!DOCTYP <! ENTITY -->" + b"Let op! " * marks
    assert parse_untrusted(b"<a>" + text + b"</a>").tag == "a"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param("<a/>".encode("utf-16"), id="UTF-16 with a byte order mark"),
        pytest.param("<a/>".encode("utf-16-be"), id="UTF-16 without a byte order mark"),
        pytest.param("<a/>".encode("utf-32"), id="UTF-32"),
    ],
)
def test_a_document_in_another_unicode_encoding_is_refused(data: bytes) -> None:
    with pytest.raises(XmlNotUtf8, match="niet in UTF-8"):
        parse_untrusted(data)


def test_a_declared_encoding_other_than_utf8_is_refused_by_name() -> None:
    data = '<?xml version="1.0" encoding="ISO-8859-1"?><a>é</a>'.encode("latin-1")
    with pytest.raises(XmlNotUtf8, match="encoding ISO-8859-1 is niet toegestaan"):
        parse_untrusted(data)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"<a><b></a>", id="crossed tags"),
        pytest.param(b"<a>", id="unclosed"),
        pytest.param(b"not xml at all", id="text"),
        pytest.param(b"<a/><b/>", id="two roots"),
    ],
)
def test_a_document_that_is_not_well_formed_is_refused(data: bytes) -> None:
    with pytest.raises(MalformedXml, match="geen well-formed XML"):
        parse_untrusted(data)


def test_an_empty_body_is_refused_as_malformed() -> None:
    with pytest.raises(MalformedXml):
        parse_untrusted(b"")


def test_a_document_nested_deeper_than_the_parser_allows_is_refused_by_our_limit() -> None:
    # libxml2 stops at 256 levels of its own; what it parsed before shows our limit passed.
    depth = 10_000
    with pytest.raises(XmlTooComplex, match="dieper genest dan 64 niveaus"):
        parse_untrusted(b"<a>" * depth + b"</a>" * depth)


@pytest.mark.parametrize(
    "data", [b"<!DOCTYPE a><a/>", "<a/>".encode("utf-16"), b"<a>"], ids=["markup", "utf", "xml"]
)
def test_every_refusal_is_a_profile_neutral_xml_rejection(data: bytes) -> None:
    with pytest.raises(XmlRejected) as raised:
        parse_untrusted(data)
    assert isinstance(raised.value, AdapterError)
    assert raised.value.reason


# --- what a document may cost, checked while it is parsed ----------------------------------------

SMALL = XmlLimits(max_attributes=3, max_depth=3, max_elements=5, max_text_length=10)


def test_a_text_longer_than_a_chunk_is_measured_whole() -> None:
    # The parser is fed 64 KiB at a time and reports a long text in pieces; they add up.
    limits = XmlLimits(max_text_length=100_000)
    with pytest.raises(XmlTooComplex, match="de tekst van a is langer dan 100000 tekens"):
        parse_untrusted(b"<a>" + b"x" * 200_000 + b"</a>", limits)
    assert len(parse_untrusted(b"<a>" + b"x" * 100_000 + b"</a>" + b" " * 1000, limits).text or "")


def test_a_document_at_every_limit_is_accepted() -> None:
    root = parse_untrusted(b'<a x="1" y="2" z="3"><b><c>0123456789</c></b><b/><!--c--></a>', SMALL)
    assert root.findtext("b/c") == "0123456789"


def test_the_limits_stop_the_parser_before_the_rest_of_the_document_is_read() -> None:
    # Past the element limit early on, then not even well-formed: the limit is what answers,
    # so the parser never got to the end.
    data = b"<a>" + b"<b/>" * 10 + b"<unclosed>" * 100_000
    with pytest.raises(XmlTooComplex, match="meer dan 5 elementen"):
        parse_untrusted(data, SMALL)


def test_a_thousand_bericht_batch_with_two_pdfs_each_passes_the_default_limits() -> None:
    pdf = minimal_pdf(10_000)
    bericht = {"bijlagen": [(pdf, "een"), (pdf, "twee")], "algemene": [("a@x", "folder")] * 3}
    root = parse_untrusted(batch_xml([bericht] * 1000))
    assert len(root) == 1001


def test_an_inline_attachment_past_libxml2s_own_text_limit_passes_the_default_limits() -> None:
    # 11 MB of PDF as base64 is 14.7 MB of text: BerichtVerwerk judges it, not the parser.
    root = parse_untrusted(batch_xml([{"bijlagen": [(minimal_pdf(11_000_000), "groot")]}]))
    assert len(root.findtext(".//{*}Inhoud") or "") > 14_000_000


def test_a_hundred_thousand_attributes_are_refused_by_the_default_limits() -> None:
    attributes = b" ".join(b'a%d="1"' % n for n in range(100_000))
    with pytest.raises(XmlTooComplex, match="100000 attributen"):
        parse_untrusted(b"<e " + attributes + b"/>")


# --- markup SOAP 1.1 does not allow --------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b'<?xml version="1.0"?><?xml-stylesheet href="x"?><a/>', id="before-the-root"),
        pytest.param(b"<a><?php echo 1; ?></a>", id="inside"),
        pytest.param(b"<a/><?after?>", id="after-the-root"),
    ],
)
def test_a_processing_instruction_anywhere_is_refused(data: bytes) -> None:
    with pytest.raises(ForbiddenMarkup, match="processing instructions zijn niet toegestaan"):
        parse_untrusted(data)


def test_an_xml_1_1_declaration_is_refused_by_name() -> None:
    with pytest.raises(ForbiddenMarkup) as raised:
        parse_untrusted(b'<?xml version="1.1" encoding="UTF-8"?><a/>')
    assert raised.value.reason == "XML-versie 1.1 is niet toegestaan, gebruik XML 1.0"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"<a>Uw \xc3( besluit</a>", id="broken-sequence"),
        pytest.param(b"<a>\xff\xfe</a>", id="bytes-that-never-start-utf-8"),
        pytest.param("<a>é</a>".encode("latin-1"), id="latin-1-undeclared"),
    ],
)
def test_bytes_that_are_no_utf8_are_refused_as_not_utf8_rather_than_malformed(
    data: bytes,
) -> None:
    with pytest.raises(XmlNotUtf8, match="geen geldige UTF-8"):
        parse_untrusted(data)
    with pytest.raises(XmlNotUtf8, match="geen geldige UTF-8"):
        list(iterparse_untrusted(data))


# --- one parse for a document of one chunk, two for a larger one: the same answers -------------

# adapter.soap.xml parses a document of at most this many bytes in one piece, a larger one in
# chunks (and a larger one that passes a limit, or is broken, once more in two passes).
CHUNK = 64 * 1024
SIZES = [
    pytest.param(None, id="as-is"),
    pytest.param(CHUNK, id="one-chunk"),
    pytest.param(CHUNK + 1, id="one-byte-over-a-chunk"),
    pytest.param(4 * CHUNK, id="four-chunks"),
]


def padded(data: bytes, size: int | None) -> bytes:
    """`data` followed by whitespace up to `size` bytes: what follows the root or the first
    error changes neither the tree nor what is refused, nor where."""
    if size is None:
        return data
    assert len(data) < size
    return data + b"\n" * (size - len(data))


def outcome(data: bytes, limits: XmlLimits) -> tuple[object, ...]:
    """The class and reason of the refusal, or what a reader of the tree can see: the document
    serialised (with what precedes and follows the root), its declaration, its line numbers."""
    try:
        root = parse_untrusted(data, limits)
    except XmlRejected as exc:
        return type(exc), exc.reason
    tree = root.getroottree()
    declared = (tree.docinfo.xml_version, tree.docinfo.encoding, tree.docinfo.standalone)
    return etree.tostring(tree), declared, [node.sourceline for node in root.iter()]


def test_the_padding_reaches_the_sizes_on_either_side_of_a_chunk() -> None:
    assert [len(padded(b"<a/>", size)) for size in (CHUNK, CHUNK + 1)] == [65_536, 65_537]


TOO_COMPLEX = [
    pytest.param(
        b'<a x="1" y="2" z="3" w="4"/>',
        "element a heeft 4 attributen en namespacedeclaraties; maximaal 3",
        id="attributes",
    ),
    pytest.param(
        b'<a xmlns="urn:a" xmlns:b="urn:b"><b:b xmlns:c="urn:c" c:x="1" y="2" b:z="3"/></a>',
        "element b heeft 4 attributen en namespacedeclaraties; maximaal 3",
        id="namespace-declarations-count-on-their-own-element",
    ),
    pytest.param(
        b'<a xmlns="urn:a" xmlns:b="urn:b" xmlns:c="urn:c" x="1"/>',
        "element a heeft 4 attributen en namespacedeclaraties; maximaal 3",
        id="namespace-declarations-count-as-attributes",
    ),
    pytest.param(
        b"<a><b><c><d/></c></b></a>", "element d is dieper genest dan 3 niveaus", id="depth"
    ),
    pytest.param(
        b"<a><b/><b/><b/><b/><b/></a>",
        "het bericht heeft meer dan 5 elementen en commentaren",
        id="elements",
    ),
    pytest.param(
        b"<!--1--><!--2--><a/><!--3--><!--4--><!--5-->",
        "het bericht heeft meer dan 5 elementen en commentaren",
        id="comments-outside-the-root",
    ),
    pytest.param(b"<a>" + b"x" * 11 + b"</a>", "de tekst van a is langer dan 10 tekens", id="text"),
    pytest.param(
        b"<a>xxxx&amp;&#120;<![CDATA[xxxx]]>x</a>",
        "de tekst van a is langer dan 10 tekens",
        id="text-of-references-and-cdata",
    ),
    pytest.param(
        b"<a><b/>" + b"x" * 11 + b"</a>",
        "de tekst na b is langer dan 10 tekens",
        id="text-after-a-child",
    ),
    pytest.param(
        b"<a><b/><!--c-->xxxxx<!--d-->" + b"x" * 11 + b"</a>",
        "de tekst na b is langer dan 10 tekens",
        id="text-after-comments-named-by-the-element-before-them",
    ),
    pytest.param(
        b"<a><b>xxxxxxxxxx</b>xxxxxxxxxx<c/>" + b"x" * 11 + b"</a>",
        "de tekst na c is langer dan 10 tekens",
        id="texts-at-the-limit-then-one-over-it",
    ),
    pytest.param(
        b'<a b="' + b"x" * 11 + b'"/>',
        "een attribuut van a is langer dan 10 tekens",
        id="attribute-value",
    ),
    pytest.param(
        b"<a><b><c><d/></c></b><b/><b/><b/></a>",
        "element d is dieper genest dan 3 niveaus",
        id="the-first-limit-passed-answers",
    ),
    pytest.param(
        b"<a><b/><b/><b/><b/><b/><b></a>",
        "het bericht heeft meer dan 5 elementen en commentaren",
        id="a-limit-passed-before-the-document-breaks",
    ),
]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("data", "reason"), TOO_COMPLEX)
def test_each_limit_refuses_a_small_and_a_large_document_alike(
    data: bytes, reason: str, size: int | None
) -> None:
    assert outcome(padded(data, size), SMALL) == (XmlTooComplex, reason)


PI_REFUSED = (ForbiddenMarkup, "processing instructions zijn niet toegestaan")


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(b'<?xml-stylesheet href="x"?><a/>', PI_REFUSED, id="pi-before-the-root"),
        pytest.param(b"<a><b/><?p?></a>", PI_REFUSED, id="pi-inside"),
        pytest.param(b"<a/><?after?>", PI_REFUSED, id="pi-after-the-root"),
        pytest.param(b"<a><?p?><b><c><d/></c></b></a>", PI_REFUSED, id="pi-before-a-limit"),
        pytest.param(
            b"<a><b><c><d/></c></b><?p?></a>",
            (XmlTooComplex, "element d is dieper genest dan 3 niveaus"),
            id="a-limit-before-a-pi",
        ),
        pytest.param(b"<a><?p?><b></a>", PI_REFUSED, id="pi-before-the-document-breaks"),
    ],
)
def test_a_processing_instruction_is_refused_in_its_place_among_the_limits_at_any_size(
    data: bytes, expected: tuple[type[Exception], str], size: int | None
) -> None:
    assert outcome(padded(data, size), SMALL) == expected


@pytest.mark.parametrize("size", SIZES[1:])
@pytest.mark.parametrize(
    ("data", "refusal"),
    [
        pytest.param(b"<a><b></a>", MalformedXml, id="crossed-tags"),
        pytest.param(b"<a/><b/>", MalformedXml, id="two-roots"),
        pytest.param(b"<a>&foo;</a>", MalformedXml, id="an-undefined-entity"),
        pytest.param(b'<a b="x&foo;"/>', MalformedXml, id="an-undefined-entity-in-an-attribute"),
        pytest.param(b"<a>&#0;</a>", MalformedXml, id="a-reference-to-no-character"),
        pytest.param(b"<a><q:c/></a>", MalformedXml, id="an-undeclared-prefix"),
        pytest.param(b'<a xmlns:p=""/>', MalformedXml, id="an-empty-namespace"),
        pytest.param(b'<a x="1" x="2"/>', MalformedXml, id="an-attribute-twice"),
        pytest.param(b"<a>\x01</a>", MalformedXml, id="a-control-character"),
        pytest.param(b"<a>Uw \xc3( besluit</a>", XmlNotUtf8, id="broken-utf-8"),
        pytest.param("<a>é</a>".encode("latin-1"), XmlNotUtf8, id="latin-1-undeclared"),
        pytest.param(
            '<?xml version="1.0" encoding="ISO-8859-1"?><a>é</a>'.encode("latin-1"),
            XmlNotUtf8,
            id="latin-1-declared",
        ),
        pytest.param(b"<!DOCTYPE a><a/>", ForbiddenMarkup, id="a-doctype"),
    ],
)
def test_a_broken_document_is_refused_alike_at_any_size(
    data: bytes, refusal: type[XmlRejected], size: int
) -> None:
    # The same words too: an undefined entity, say, is worded by the counting parser, not as
    # "no element found" by the tree-building one.
    small = outcome(data, SMALL)
    assert small[0] is refusal
    assert outcome(padded(data, size), SMALL) == small


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    "data",
    [
        pytest.param(
            b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<!--c-->\n<a xmlns="urn:x"'
            b' xmlns:p="urn:p" p:b="1">\r\n<p:c>x&amp;y<![CDATA[<z>]]></p:c>'
            b"<!--d-->\xc3\xa9\n<e/></a>",
            id="namespaces-comments-references",
        ),
        pytest.param(b'<a x="1" y="2" z="3"><b><c>0123456789</c></b><b/><!--c--></a>', id="limits"),
        pytest.param(b"\xef\xbb\xbf<a>\xe2\x82\xac</a>", id="utf-8-with-a-byte-order-mark"),
    ],
)
def test_a_document_at_or_within_every_limit_gives_the_same_tree_at_any_size(
    data: bytes, size: int | None
) -> None:
    assert outcome(padded(data, size), SMALL) == outcome(data, DEFAULT_LIMITS)


@pytest.mark.parametrize("size", SIZES[1:3])
def test_a_chunk_full_of_elements_is_counted_like_one_byte_more_of_them(size: int) -> None:
    # Some 16,000 elements fit in one chunk: within the default limits, over a smaller one.
    data = padded(b"<a>" + b"<b/>" * 16_000 + b"</a>", size)
    assert len(parse_untrusted(data)) == 16_000
    with pytest.raises(XmlTooComplex) as raised:
        parse_untrusted(data, XmlLimits(max_elements=10_000))
    assert raised.value.reason == "het bericht heeft meer dan 10000 elementen en commentaren"


# --- the one-pass path's sufficient checks ------------------------------------------------------

# SMALL's structure limits with room for text, so no text needs measuring: the documents below
# take the checks on the finished tree, and only those that may pass a limit the exact replay.
STRUCTURE = XmlLimits(max_attributes=3, max_depth=3, max_elements=5)


@pytest.mark.parametrize(
    ("data", "within", "refused"),
    [
        pytest.param(
            b'<a x="1" y="2" z="3"><b><c/></b><b/><!--c--></a>', True, False, id="at-limits"
        ),
        pytest.param(b"<a><b><c><d/></c></b></a>", False, True, id="too-deep"),
        pytest.param(b"<a><b/><b/><b/><b/><b/></a>", False, True, id="too-many-elements"),
        pytest.param(b"<!--1--><!--2--><a/><!--3--><!--4--><!--5-->", False, True, id="comments"),
        pytest.param(b'<a w="1" x="1" y="2" z="3"/>', False, True, id="too-many-attributes"),
        pytest.param(b'<a xmlns="u" xmlns:p="v" x="1" y="2"/>', False, True, id="declarations"),
        pytest.param(b"<a><?p?></a>", False, True, id="instruction"),
        pytest.param(b"<a>====</a>", True, False, id="equals-signs-in-text"),
        pytest.param(b"<a>==== xmlns xmlns xmlns xmlns</a>", False, False, id="bound-gives-up"),
    ],
)
def test_the_checks_on_the_tree_pass_only_documents_within_the_limits(
    data: bytes, within: bool, refused: bool
) -> None:
    tools = _OnePassTools(STRUCTURE)
    assert tools.within(data, etree.fromstring(data, tools.parser)) is within
    with contextlib.nullcontext() if not refused else pytest.raises(XmlRejected):
        parse_untrusted(data, STRUCTURE)


def test_a_document_the_checks_cannot_pass_is_accepted_when_it_is_within_the_limits() -> None:
    # The bound on attributes gives up (more `xmlns` in the text than attributes allowed);
    # the exact check on the parser's events then finds every element within the limits.
    data = b"<a><b>" + b"xmlns=" * 10 + b"</b></a>"
    assert parse_untrusted(data, STRUCTURE).findtext("b") == "xmlns=" * 10


# --- the chunked path's checks on the pull parser's reports ---------------------------------------


@pytest.mark.parametrize(
    ("data", "refusal"),
    [
        pytest.param(b"<a>" + b"<b/>" * 4 + b"</a>", None, id="within"),
        pytest.param(b"<a>" + b"<b/>" * 5 + b"</a>", "meer dan 5 elementen", id="too-many"),
        pytest.param(
            b"<a><!--1--><!--2--><!--3--><!--4--><!--5--></a>",
            "meer dan 5 elementen en commentaren",
            id="comments-count",
        ),
        pytest.param(
            b'<a><b xmlns:p="u" x="1" y="2" z="3"/></a>',
            "element b heeft 4 attributen en namespacedeclaraties",
            id="declarations-count",
        ),
        pytest.param(b"<a><b><c><d/></c></b></a>", "element d is dieper genest", id="too-deep"),
        pytest.param(b"<a/><?after?>", "processing instructions", id="instruction-after-the-root"),
    ],
)
def test_the_chunked_parse_refuses_in_the_words_of_the_limit_passed(
    data: bytes, refusal: str | None
) -> None:
    # The padding goes in front, so the document ends with its own last byte: libxml2 keeps
    # the last reports back until the parser is closed.
    padded = b"\n" * (CHUNK + 1) + data
    if refusal is None:
        root = _parse_counting_elements(padded, STRUCTURE)
        assert root is not None and len(root) == 4
    else:
        with pytest.raises(XmlRejected, match=refusal):
            _parse_counting_elements(padded, STRUCTURE)


def test_the_chunked_parse_leaves_a_syntax_error_to_the_two_passes_to_word() -> None:
    assert _parse_counting_elements(b"\n" * (CHUNK + 1) + b"<a><b></a>", STRUCTURE) is None

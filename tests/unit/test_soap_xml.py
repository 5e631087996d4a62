"""The safe XML parser on its own: what it accepts, and each kind of input it refuses with the
profile-neutral error (adapter.errors) that the WUS and ebMS profiles translate."""

from __future__ import annotations

import pytest

from adapter.errors import (
    AdapterError,
    ForbiddenMarkup,
    MalformedXml,
    XmlNotUtf8,
    XmlRejected,
    XmlTooComplex,
)
from adapter.soap.xml import XmlLimits, iterparse_untrusted, parse_trusted_file, parse_untrusted
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


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(
            b'<a x="1" y="2" z="3" w="4"/>',
            "element a heeft 4 attributen en namespacedeclaraties; maximaal 3",
            id="attributes",
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
            b"<a><!--1--><!--2--><!--3--><!--4--><!--5--></a>",
            "het bericht heeft meer dan 5 elementen en commentaren",
            id="comments",
        ),
        pytest.param(
            b"<a>" + b"x" * 11 + b"</a>", "de tekst van a is langer dan 10 tekens", id="text"
        ),
        pytest.param(
            b"<a><b/>" + b"x" * 11 + b"</a>",
            "de tekst na b is langer dan 10 tekens",
            id="text-after-a-child",
        ),
        pytest.param(
            b'<a b="' + b"x" * 11 + b'"/>',
            "een attribuut van a is langer dan 10 tekens",
            id="attribute-value",
        ),
    ],
)
def test_each_limit_refuses_the_document_and_names_what_to_reduce(data: bytes, reason: str) -> None:
    with pytest.raises(XmlTooComplex) as raised:
        parse_untrusted(data, SMALL)
    assert raised.value.reason == reason


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

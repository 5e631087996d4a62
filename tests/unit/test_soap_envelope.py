"""SOAP 1.1 envelopes on their own: the structure a request must have, the body hash a receipt
records, and the responses and faults we write."""

from __future__ import annotations

import base64
import hashlib

import pytest
from lxml import etree

from adapter.errors import (
    ForbiddenMarkup,
    HeaderNotUnderstood,
    InvalidEnvelope,
    MalformedXml,
    NotConformXsd,
    XmlNotUtf8,
    XmlRejected,
)
from adapter.soap.envelope import (
    SOAP12_ENV,
    SOAP_ENV,
    body_hash,
    build_envelope,
    build_fault,
    check_content_type,
    check_understood,
    envelope_tree,
    parse_envelope,
    raw_hash,
    serialise,
)

S = f"{{{SOAP_ENV}}}"


def envelope(body: str, header: str | None = "", root: str = SOAP_ENV) -> bytes:
    head = f"<s:Header>{header}</s:Header>" if header is not None else ""
    return f'<s:Envelope xmlns:s="{root}">{head}<s:Body>{body}</s:Body></s:Envelope>'.encode()


def refusal(data: bytes) -> str:
    with pytest.raises(InvalidEnvelope) as raised:
        parse_envelope(data)
    assert raised.value.code == "0001"
    return raised.value.reason


# --- reading -----------------------------------------------------------------------------------


def test_an_envelope_reads_into_its_header_blocks_body_and_single_payload() -> None:
    parsed = parse_envelope(
        envelope('<p xmlns="urn:x"/>', '<h1 xmlns="urn:h"/><h2 xmlns="urn:h"/>')
    )
    assert parsed.root.tag == f"{S}Envelope"
    assert [h.tag for h in parsed.headers] == ["{urn:h}h1", "{urn:h}h2"]
    assert parsed.body.tag == f"{S}Body"
    assert parsed.payload.tag == "{urn:x}p"


def test_an_envelope_without_a_header_has_no_header_blocks() -> None:
    assert parse_envelope(envelope("<p/>", header=None)).headers == ()


def test_comments_are_not_counted_as_elements() -> None:
    data = envelope("<!-- before --><p/><!-- after -->", "<!-- no blocks -->")
    parsed = parse_envelope(data)
    assert parsed.payload.tag == "p"
    assert parsed.headers == ()


def test_a_processing_instruction_in_the_body_refuses_the_envelope() -> None:
    # SOAP 1.1 section 3: a SOAP message must not contain processing instructions.
    with pytest.raises(ForbiddenMarkup, match="processing instructions zijn niet toegestaan"):
        parse_envelope(envelope("<p/><?pi after?>"))


def test_a_soap_12_envelope_is_refused_with_advice_to_use_soap_11() -> None:
    assert "SOAP 1.2 wordt niet ondersteund" in refusal(envelope("<p/>", root=SOAP12_ENV))


def test_a_root_element_that_is_not_an_envelope_is_refused() -> None:
    assert "geen SOAP 1.1 Envelope" in refusal(b"<Envelope><Body><p/></Body></Envelope>")


@pytest.mark.parametrize(
    "inside",
    [
        pytest.param("<s:Header/>", id="no Body"),
        pytest.param("<s:Body><p/></s:Body><s:Body><p/></s:Body>", id="two Bodies"),
        pytest.param("<s:Body><p/></s:Body><s:Header/>", id="the Header after the Body"),
        pytest.param("<s:Body><p/></s:Body><extra/>", id="an element after the Body"),
    ],
)
def test_an_envelope_without_exactly_one_body_after_an_optional_header_is_refused(
    inside: str,
) -> None:
    data = f'<s:Envelope xmlns:s="{SOAP_ENV}">{inside}</s:Envelope>'.encode()
    assert "precies één Body" in refusal(data)


@pytest.mark.parametrize(("body", "count"), [("", 0), ("<p/><q/>", 2)])
def test_a_body_without_exactly_one_element_is_refused_with_the_count(
    body: str, count: int
) -> None:
    assert f"de Body bevat {count} elementen" in refusal(envelope(body))


def test_bytes_the_parser_refuses_leave_as_the_parsers_own_error() -> None:
    # The profile, not the envelope reader, decides what a parser refusal means to the peer.
    with pytest.raises(MalformedXml):
        parse_envelope(b"<s:Envelope")
    with pytest.raises(XmlRejected):
        parse_envelope(b"<!DOCTYPE x>" + envelope("<p/>"))


# --- mustUnderstand ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1", "true"])
def test_a_header_block_that_must_be_understood_outside_our_namespaces_is_refused(
    value: str,
) -> None:
    block = f'<sec:Security xmlns:sec="urn:sec" s:mustUnderstand="{value}"/>'
    with pytest.raises(HeaderNotUnderstood, match=r"Security \(urn:sec\) wordt niet verwerkt"):
        check_understood(parse_envelope(envelope("<p/>", block)), frozenset({"urn:ours"}))


def test_a_header_block_in_an_understood_namespace_passes() -> None:
    block = '<o:To xmlns:o="urn:ours" s:mustUnderstand="1"/>'
    parsed = parse_envelope(envelope("<p/>", block))
    assert check_understood(parsed, frozenset({"urn:ours"})) is None


def test_a_header_block_that_need_not_be_understood_passes() -> None:
    block = (
        '<sec:Security xmlns:sec="urn:sec" s:mustUnderstand="0"/><sec:Other xmlns:sec="urn:sec"/>'
    )
    parsed = parse_envelope(envelope("<p/>", block))
    assert check_understood(parsed, frozenset()) is None


# --- hashes ------------------------------------------------------------------------------------


def test_the_body_hash_is_base64_sha256_of_the_bodys_exclusive_canonical_form() -> None:
    body = parse_envelope(envelope('<p xmlns="urn:x">tekst</p>')).body
    canonical = f'<s:Body xmlns:s="{SOAP_ENV}"><p xmlns="urn:x">tekst</p></s:Body>'.encode()
    assert body_hash(body) == base64.b64encode(hashlib.sha256(canonical).digest()).decode()


def test_the_body_hash_ignores_how_the_same_body_is_written() -> None:
    written = parse_envelope(envelope("<p b='1' a=\"2\"></p>")).body
    rewritten = parse_envelope(
        f'<s:Envelope xmlns:s="{SOAP_ENV}" xmlns:unused="urn:u"><s:Body>'
        '<!-- a comment --><p a="2"   b="1"/></s:Body></s:Envelope>'.encode()
    ).body
    assert body_hash(written) == body_hash(rewritten)


def test_the_body_hash_changes_with_the_content() -> None:
    first = parse_envelope(envelope("<p>1</p>")).body
    second = parse_envelope(envelope("<p>2</p>")).body
    assert body_hash(first) != body_hash(second)


def test_the_raw_hash_is_base64_sha256_of_the_bytes() -> None:
    assert raw_hash(b"") == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


# --- writing -----------------------------------------------------------------------------------


def test_a_built_envelope_reads_back_with_its_headers_and_payload() -> None:
    payload = etree.Element("{urn:x}Antwoord")
    payload.text = "ok"
    header = etree.Element("{urn:h}Bevestiging")
    parsed = parse_envelope(build_envelope(payload, [header]))
    assert [h.tag for h in parsed.headers] == ["{urn:h}Bevestiging"]
    assert (parsed.payload.tag, parsed.payload.text) == ("{urn:x}Antwoord", "ok")


ANSWER = (
    b'<a:Antwoord xmlns:a="urn:x" xmlns:t="urn:t"><t:Regel>een &amp; twee</t:Regel></a:Antwoord>'
)
RECEIPT = b'<r:Bevestiging xmlns:r="urn:r"><r:Id>1</r:Id></r:Bevestiging>'


def _canonical(data: bytes) -> bytes:
    return etree.tostring(etree.fromstring(data), method="c14n")


@pytest.mark.parametrize("receipt", [None, RECEIPT])
@pytest.mark.parametrize("headers", [0, 1])
def test_a_body_child_written_as_bytes_is_the_envelope_its_tree_would_have_made(
    receipt: bytes | None, headers: int
) -> None:
    header = [etree.Element("{urn:h}Relatie")][:headers]
    from_tree = serialise(envelope_tree(etree.fromstring(ANSWER), header), receipt)
    written = serialise(envelope_tree(None, header), receipt, ANSWER)
    assert _canonical(written) == _canonical(from_tree)
    parsed = parse_envelope(written)
    assert parsed.payload.findtext("{urn:t}Regel") == "een & twee"
    assert [h.tag for h in parsed.headers] == [h.tag for h in header] + (
        ["{urn:r}Bevestiging"] if receipt else []
    )
    assert b"slot" not in written


def test_a_built_envelope_without_headers_has_no_header_element() -> None:
    parsed = parse_envelope(build_envelope(etree.Element("p")))
    assert parsed.root.find(f"{S}Header") is None


def test_a_fault_carries_a_qualified_faultcode_and_the_digikoppeling_faultstring() -> None:
    fault = parse_envelope(build_fault(InvalidEnvelope("niet leesbaar"))).payload
    assert fault.tag == f"{S}Fault"
    code = fault.findtext("faultcode")
    assert code == "s:Client"
    assert fault.nsmap["s"] == SOAP_ENV
    # Without a detail element, the reason follows the code and text in the faultstring.
    assert fault.findtext("faultstring") == "0001 Invalide soap envelope: niet leesbaar"
    assert fault.find("detail") is None


def test_a_fault_with_a_detail_element_and_headers_carries_both() -> None:
    detail = etree.Element("{urn:x}ApplicationFault")
    header = etree.Element("{urn:h}Afleverbevestiging")
    parsed = parse_envelope(build_fault(NotConformXsd("regel 3"), [header], detail))
    assert [h.tag for h in parsed.headers] == ["{urn:h}Afleverbevestiging"]
    assert parsed.payload.findtext("faultstring") == "0004 Niet conform xsd"
    assert [child.tag for child in parsed.payload.find("detail")] == ["{urn:x}ApplicationFault"]


# --- the HTTP Content-Type of a WUS request ------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["text/xml", "text/xml; charset=utf-8", 'Text/XML; Charset="UTF-8"', "text/xml;charset=utf8"],
)
def test_text_xml_in_utf8_or_without_a_charset_is_accepted(value: str) -> None:
    check_content_type(value)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "Content-Type ontbreekt; SOAP 1.1 vraagt text/xml"),
        ("application/json", "Content-Type application/json is geen text/xml (SOAP 1.1)"),
        ("text/plain; charset=utf-8", "Content-Type text/plain is geen text/xml (SOAP 1.1)"),
        (
            "application/soap+xml; charset=utf-8",
            "SOAP 1.2 (application/soap+xml) wordt niet ondersteund, gebruik SOAP 1.1",
        ),
        (
            'multipart/related; type="application/xop+xml"',
            "MTOM (multipart/related) wordt niet ondersteund, stuur text/xml",
        ),
    ],
)
def test_another_media_type_is_an_invalid_envelope_naming_it(
    value: str | None, reason: str
) -> None:
    with pytest.raises(InvalidEnvelope) as raised:
        check_content_type(value)
    assert raised.value.message == reason
    assert raised.value.code == "0001"


def test_a_charset_other_than_utf8_is_refused_as_not_utf8() -> None:
    with pytest.raises(XmlNotUtf8, match="charset iso-8859-1 is niet toegestaan, alleen UTF-8"):
        check_content_type("text/xml; charset=ISO-8859-1")


def test_bytes_written_as_the_last_header_block_get_a_header_of_their_own_when_needed() -> None:
    block = b'<Blok xmlns="urn:test"><Leeg></Leeg></Blok>'
    answer = serialise(envelope_tree(etree.Element("{urn:test}Antwoord")), block)
    document = etree.fromstring(answer)
    assert [etree.QName(child).localname for child in document] == ["Header", "Body"]
    assert etree.QName(document[0][0]).localname == "Blok"
    assert block in answer
    # Markup like the slot's inside a text is escaped, so only the slot itself is replaced.
    payload = etree.Element("{urn:test}Antwoord")
    payload.text = '<slot:slot xmlns:slot="urn:mijnoverheid-adapter:header-slot"/>'
    document = etree.fromstring(serialise(envelope_tree(payload), block))
    assert document[1][0].text == payload.text

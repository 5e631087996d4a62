"""ebMS MIME packages: what we build reads back unchanged, and every broken package is refused
with a MimeProblem that says what is wrong."""

from __future__ import annotations

import base64

import pytest

from adapter.ebms.mime import Package, build_package, cid_url, parse_package
from adapter.errors import EbmsError, MimeProblem, XmlNotUtf8

SOAP = b'<?xml version="1.0" encoding="UTF-8"?>\r\n<SOAP:Envelope xmlns:SOAP="urn:x"/>'
TRICKY = (
    b"%PDF-1.4\r\n--\r\n--\r\n\r\n\x00\xff\xfe binary\n--MIMEBoundary\r\n--MIMEBoundary_\r\n"
    + bytes(range(256))
    + b"\r\n--\r\n"
)
CT = 'multipart/related; type="text/xml"; boundary="frontier"'


def multipart(*parts: bytes, boundary: bytes = b"frontier", eol: bytes = b"\r\n") -> bytes:
    """A hand-made multipart body: each part is its headers, a blank line and its body."""
    body = b"preamble, ignored" + eol
    for part in parts:
        body += b"--" + boundary + eol + part + eol
    return body + b"--" + boundary + b"--" + eol + b"epilogue, ignored"


def soap_part(cid: str = "soap@x", content_type: str = "text/xml; charset=UTF-8") -> bytes:
    return f"Content-ID: <{cid}>\r\nContent-Type: {content_type}\r\n\r\n".encode() + SOAP


def problem(content_type: str, body: bytes, **kwargs: int) -> MimeProblem:
    with pytest.raises(MimeProblem) as caught:
        parse_package(content_type, body, **kwargs)
    assert isinstance(caught.value, EbmsError)
    assert caught.value.error_code == "MimeProblem"
    return caught.value


@pytest.mark.parametrize("count", [0, 1, 3])
def test_a_built_package_parses_back_to_the_same_parts(count: int) -> None:
    attachments = [
        (f"part{i}@example.org", "application/pdf", TRICKY + str(i).encode()) for i in range(count)
    ]
    content_type, body = build_package(SOAP, attachments)
    assert content_type.startswith('multipart/related; type="text/xml"; boundary="')
    package = parse_package(content_type, body)
    assert package.soap.body == SOAP
    assert package.soap.content_type == "text/xml"
    assert package.soap.params["charset"] == "UTF-8"
    assert [(p.content_id, p.content_type, p.body) for p in package.attachments] == attachments
    for cid, _, content in attachments:
        assert package.attachment(f"cid:{cid}").body == content
        assert package.attachment(cid).body == content


def test_a_built_package_names_its_soap_part_in_start_and_uses_crlf() -> None:
    content_type, body = build_package(SOAP, [("a@b", "text/xml; charset=UTF-8", b"<a/>")])
    package = parse_package(content_type, body)
    assert f'start="<{package.soap.content_id}>"' in content_type
    assert package.soap.headers["content-type"] == "text/xml; charset=UTF-8"
    assert b"Content-Transfer-Encoding" not in body
    assert body.count(b"\n") == body.count(b"\r\n")
    assert package.attachments[0].params == {"charset": "UTF-8"}


def test_a_given_boundary_is_used_even_when_parts_hold_its_prefix() -> None:
    content = b"x\r\n--frontie\r\n--frontie-r\r\n--frontiex--\r\n--\r\n"
    content_type, body = build_package(
        SOAP, [("a@b", "application/pdf", content)], boundary="frontier"
    )
    assert 'boundary="frontier"' in content_type
    assert parse_package(content_type, body).attachment("a@b").body == content


def test_building_refuses_a_boundary_that_occurs_in_a_part() -> None:
    with pytest.raises(ValueError, match="occurs inside a part"):
        build_package(SOAP, [("a@b", "application/pdf", b"--frontier")], boundary="frontier")


def test_a_random_boundary_differs_per_message() -> None:
    first, _ = build_package(SOAP, [])
    second, _ = build_package(SOAP, [])
    assert first != second


def test_single_part_sends_the_bare_envelope_as_text_xml() -> None:
    assert build_package(SOAP, [], single_part=True) == ("text/xml; charset=UTF-8", SOAP)
    with pytest.raises(ValueError, match="attachments"):
        build_package(SOAP, [("a@b", "application/pdf", b"%PDF")], single_part=True)


def test_a_text_xml_message_is_all_soap_part_and_has_no_attachments() -> None:
    package = parse_package("text/xml; charset=utf-8", SOAP)
    assert package == Package(package.soap, ())
    assert package.soap.body == SOAP
    assert package.soap.content_type == "text/xml"
    assert package.soap.content_id is None
    assert package.soap.params == {"charset": "utf-8"}


def test_start_may_name_the_second_part_as_the_soap_part() -> None:
    payload = b"Content-ID: <payload@x>\r\nContent-Type: application/xml\r\n\r\n<a/>"
    body = multipart(payload, soap_part("soap@x"))
    package = parse_package(CT + '; start="<soap@x>"', body)
    assert package.soap.content_id == "soap@x"
    assert package.soap.body == SOAP
    assert [p.content_id for p in package.attachments] == ["payload@x"]
    assert package.attachment("cid:payload@x").body == b"<a/>"


def test_without_start_the_first_part_is_the_soap_part() -> None:
    payload = b"Content-ID: <payload@x>\r\nContent-Type: application/xml\r\n\r\n<a/>"
    package = parse_package(CT, multipart(soap_part(), payload))
    assert package.soap.content_id == "soap@x"
    assert package.attachment("payload@x").content_type == "application/xml"


def test_a_base64_part_is_decoded() -> None:
    content = bytes(range(256)) * 3
    encoded = base64.encodebytes(content)  # lines of 76 characters, LF endings
    payload = (
        b"Content-ID: <b64@x>\r\nContent-Type: application/pdf\r\n"
        b"Content-Transfer-Encoding: BASE64\r\n\r\n" + encoded.replace(b"\n", b"\r\n")
    )
    package = parse_package(CT, multipart(soap_part(), payload))
    assert package.attachment("b64@x").body == content


def test_a_quoted_printable_part_is_decoded() -> None:
    payload = (
        b"Content-ID: <qp@x>\r\nContent-Type: text/plain\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\nna=3Dam soft=\r\nbreak"
    )
    package = parse_package(CT, multipart(soap_part(), payload))
    assert package.attachment("qp@x").body == b"na=am softbreak"


def test_a_message_with_bare_lf_line_endings_is_parsed() -> None:
    soap = b"Content-ID: <soap@x>\nContent-Type: text/xml\n\n<Envelope/>\nline two"
    payload = b"Content-ID: <p@x>\nContent-Type: application/pdf\n\n%PDF\n--\n"
    package = parse_package(CT, multipart(soap, payload, eol=b"\n"))
    assert package.soap.body == b"<Envelope/>\nline two"
    assert package.attachment("p@x").body == b"%PDF\n--\n"


def test_headers_are_unfolded_lower_cased_and_parameters_unquoted() -> None:
    payload = (
        b"content-id:\r\n  <folded@x>\r\nCONTENT-TYPE: Application/PDF;\r\n"
        b'\tname="a \\"quoted\\"; name.pdf"\r\nX-Extra: kept\r\n\r\n%PDF'
    )
    ct = "Multipart/Related; boundary=frontier; type=text/xml; start=<soap@x>"
    package = parse_package(ct, multipart(soap_part(), payload))
    part = package.attachment("folded@x")
    assert part.content_type == "application/pdf"
    assert part.params == {"name": 'a "quoted"; name.pdf'}
    assert part.headers["x-extra"] == "kept"


def test_a_part_without_content_type_is_text_plain() -> None:
    package = parse_package(CT, multipart(soap_part(), b"Content-ID: <p@x>\r\n\r\nhello"))
    assert package.attachment("p@x").content_type == "text/plain"


def test_a_part_with_headers_only_has_an_empty_body() -> None:
    body = multipart(soap_part(), b"Content-ID: <empty@x>\r\nContent-Type: text/plain\r\n")
    assert parse_package(CT, body).attachment("empty@x").body == b""


def test_a_cid_url_is_percent_decoded() -> None:
    payload = b"Content-ID: <foo@bar>\r\nContent-Type: application/pdf\r\n\r\n%PDF"
    package = parse_package(CT, multipart(soap_part(), payload))
    assert package.attachment("cid:foo%40bar").body == b"%PDF"
    assert package.attachment("CID:foo@bar").body == b"%PDF"


def test_an_unknown_cid_cannot_be_resolved() -> None:
    package = parse_package(*build_package(SOAP, [("a@b", "application/pdf", b"%PDF")]))
    with pytest.raises(MimeProblem, match="cid:xyz cannot be resolved") as caught:
        package.attachment("cid:xyz")
    assert caught.value.location == "cid:xyz"
    with pytest.raises(MimeProblem, match="cid:xyz cannot be resolved"):
        package.attachment("xyz")


def test_the_soap_part_is_not_an_attachment() -> None:
    content_type, body = build_package(SOAP, [])
    package = parse_package(content_type, body)
    assert package.soap.content_id is not None
    with pytest.raises(MimeProblem, match="cannot be resolved"):
        package.attachment(package.soap.content_id)


@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        ('multipart/related; type="text/xml"', "without a boundary"),
        ('multipart/related; boundary=""', "invalid boundary"),
        ('multipart/related; boundary="ends with space "', "invalid boundary"),
        ('multipart/related; boundary="semi;colon"', "invalid boundary"),
        ("multipart/related; boundary=" + "x" * 71, "invalid boundary"),
        ('multipart/related; boundary="frontier"; boundary="other"', "occurs twice"),
        ("multipart/related boundary=frontier", "expected ';'"),
        ('multipart/related; boundary="frontier"; type="application/soap+xml"', "not text/xml"),
    ],
)
def test_a_bad_boundary_or_type_parameter_is_a_mime_problem(
    content_type: str, message: str
) -> None:
    assert message in problem(content_type, multipart(soap_part())).description


def test_a_body_without_the_boundary_is_a_mime_problem() -> None:
    body = multipart(soap_part(), boundary=b"other")
    assert "never occurs" in problem(CT, body).description


def test_a_boundary_only_as_a_prefix_of_a_line_is_not_a_delimiter() -> None:
    body = b"--frontierX\r\nContent-Type: text/xml\r\n\r\n<a/>\r\n--frontierX--"
    assert "never occurs" in problem(CT, body).description


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"x" * 100_000, id="no line feed"),
        pytest.param(b"x" * 10_000 + b"\n--frontie\n" * 3 + b"y" * 10_000, id="a few"),
        pytest.param(b"line\n--frontierX\r\n" * 5_000, id="many short lines"),
        pytest.param((b"z" * 5_000 + b"\n") * 200 + b"\n" * 500, id="sparse, then dense"),
    ],
)
def test_a_part_is_split_at_its_delimiter_however_many_line_feeds_it_holds(
    content: bytes,
) -> None:
    # Delimiters are found by their line feed first, by a search for the whole one past a
    # budget of line feeds: either way the same parts.
    first, second = (
        f"Content-ID: <{cid}>\r\nContent-Type: application/pdf\r\n\r\n".encode() + content
        for cid in ("een@x", "twee@x")
    )
    package = parse_package(CT, multipart(soap_part(), first, second))
    assert [part.body for part in package.attachments] == [content, content]


def test_a_missing_final_delimiter_is_a_mime_problem() -> None:
    body = multipart(soap_part()).split(b"--frontier--")[0]
    assert "missing closing delimiter" in problem(CT, body).description
    truncated = b"--frontier\r\n" + soap_part()[:-5]
    assert "missing closing delimiter" in problem(CT, truncated).description


def test_a_body_with_only_the_closing_delimiter_has_no_parts() -> None:
    assert "no parts" in problem(CT, b"--frontier--\r\n").description


def test_a_part_without_a_blank_line_after_its_headers_is_a_mime_problem() -> None:
    body = multipart(b"Content-Type: text/xml\r\n<Envelope/>")
    assert "no blank line" in problem(CT, body).description


def test_a_malformed_header_line_is_a_mime_problem() -> None:
    body = multipart(b"Content-Type text/xml\r\n\r\n<Envelope/>")
    assert "malformed header line" in problem(CT, body).description


def test_a_duplicate_content_id_is_a_mime_problem() -> None:
    payload = b"Content-ID: <dup@x>\r\nContent-Type: application/pdf\r\n\r\n%PDF"
    caught = problem(CT, multipart(soap_part(), payload, payload))
    assert "<dup@x> occurs on more than one MIME part" in caught.description
    assert caught.location == "cid:dup@x"


def test_a_part_with_two_content_types_is_a_mime_problem() -> None:
    payload = b"Content-Type: text/xml\r\nContent-Type: application/pdf\r\n\r\n%PDF"
    assert "more than one content-type" in problem(CT, multipart(payload)).description


def test_a_soap_part_that_is_not_text_xml_is_a_mime_problem() -> None:
    caught = problem(CT, multipart(soap_part(content_type="application/xml")))
    assert "is application/xml, not text/xml" in caught.description
    assert caught.location == "cid:soap@x"


def test_start_naming_a_missing_part_is_a_mime_problem() -> None:
    caught = problem(CT + '; start="<elsewhere@x>"', multipart(soap_part()))
    assert "no MIME part has that Content-ID" in caught.description


def test_an_unknown_transfer_encoding_is_a_mime_problem() -> None:
    payload = b"Content-Type: text/xml\r\nContent-Transfer-Encoding: x-gzip\r\n\r\n<a/>"
    assert "x-gzip" in problem(CT, multipart(payload)).description


def test_invalid_base64_is_a_mime_problem() -> None:
    payload = (
        b"Content-ID: <b@x>\r\nContent-Type: application/pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nQUJDR"
    )
    assert "not valid base64" in problem(CT, multipart(soap_part(), payload)).description


@pytest.mark.parametrize(
    "content_type", ["application/json", "multipart/mixed; boundary=frontier", "", "   "]
)
def test_a_top_level_type_other_than_multipart_related_or_text_xml_is_a_mime_problem(
    content_type: str,
) -> None:
    assert "Content-Type" in problem(content_type, b'{"a": 1}').description


def test_more_parts_than_max_parts_is_a_mime_problem() -> None:
    attachment = b"Content-Type: application/pdf\r\n\r\n%PDF"
    at_limit = multipart(soap_part(), *[attachment] * 1002)
    assert len(parse_package(CT, at_limit).attachments) == 1002
    over = multipart(soap_part(), *[attachment] * 1003)
    assert "more than 1003 MIME parts" in problem(CT, over).description
    assert "more than 2 MIME parts" in problem(CT, at_limit, max_parts=2).description


def test_a_large_attachment_parses_in_one_pass() -> None:
    big = (b"\r\n--MIMEBoundary\r\n" + bytes(range(256)) * 64) * 1280  # about 20 MiB
    content_type, body = build_package(SOAP, [("big@x", "application/pdf", big)])
    package = parse_package(content_type, body)
    assert package.attachment("big@x").body == big


def test_an_empty_content_id_is_a_mime_problem() -> None:
    payload = b"Content-ID: <>\r\nContent-Type: application/pdf\r\n\r\n%PDF"
    assert "empty Content-ID" in problem(CT, multipart(soap_part(), payload)).description


def test_a_part_that_starts_with_a_continuation_line_is_a_mime_problem() -> None:
    body = multipart(b" folded: nothing to fold\r\nContent-Type: text/xml\r\n\r\n<a/>")
    assert "starts with a continuation line" in problem(CT, body).description


def test_a_problem_in_a_named_part_gives_its_cid_as_location() -> None:
    payload = b"Content-ID: <bad@x>\r\nContent-Type: nothing\r\n\r\n%PDF"
    assert problem(CT, multipart(soap_part(), payload)).location == "cid:bad@x"


def test_the_cid_url_of_a_content_id_percent_encodes_what_a_url_may_not_hold() -> None:
    assert cid_url("a b%c@x") == "cid:a%20b%25c@x"


@pytest.mark.parametrize("cid", ["", "with space@x", "<bracketed@x>", "tab\t@x"])
def test_building_refuses_a_content_id_that_cannot_stand_in_a_header(cid: str) -> None:
    with pytest.raises(ValueError, match="Content-ID"):
        build_package(SOAP, [(cid, "application/pdf", b"%PDF")])


def test_building_refuses_a_content_id_used_twice() -> None:
    attachment = ("twice@x", "application/pdf", b"%PDF")
    with pytest.raises(ValueError, match="used twice"):
        build_package(SOAP, [attachment, attachment])


def test_building_refuses_a_boundary_rfc_2046_does_not_allow() -> None:
    with pytest.raises(ValueError, match="invalid MIME boundary"):
        build_package(SOAP, [], boundary="ends with space ")


@pytest.mark.parametrize(
    "junk", [b"!*$", b"\x00", b"%", b"-_"], ids=["punctuation", "nul", "percent", "url-safe"]
)
def test_base64_with_a_character_outside_the_alphabet_is_a_mime_problem(junk: bytes) -> None:
    encoded = base64.encodebytes(b"%PDF-1.7 " * 20)
    payload = (
        b"Content-ID: <b@x>\r\nContent-Type: application/pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded[:12] + junk + encoded[12:]
    )
    assert "not valid base64" in problem(CT, multipart(soap_part(), payload)).description


def test_base64_broken_into_lines_of_any_length_is_decoded() -> None:
    content = bytes(range(256)) * 4
    encoded = base64.b64encode(content)
    lines = b"\r\n".join(encoded[i : i + 57] for i in range(0, len(encoded), 57)) + b" \t\n"
    payload = (
        b"Content-ID: <b@x>\r\nContent-Type: application/pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + lines
    )
    assert parse_package(CT, multipart(soap_part(), payload)).attachment("cid:b@x").body == content


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/xml; charset=iso-8859-1", SOAP),
        (CT, multipart(soap_part(content_type="text/xml; charset=ISO-8859-1"))),
        (CT, multipart(soap_part(content_type='text/xml; charset="utf-16"'))),
    ],
    ids=["single-part", "multipart", "multipart-quoted-utf-16"],
)
def test_a_soap_part_declaring_a_charset_other_than_utf8_is_refused_as_not_utf8(
    content_type: str, body: bytes
) -> None:
    with pytest.raises(XmlNotUtf8, match="alleen UTF-8"):
        parse_package(content_type, body)


@pytest.mark.parametrize("charset", ["UTF-8", "utf-8", '"utf8"'])
def test_a_soap_part_declaring_utf8_in_any_spelling_is_accepted(charset: str) -> None:
    package = parse_package(CT, multipart(soap_part(content_type=f"text/xml; charset={charset}")))
    assert package.soap.body == SOAP

"""Element text is read as its whole text content, in every room that reads a request.

A comment (or CDATA) splits a text into several text nodes; `.text` and `findtext` return only
the first. The receipt's body hash (exclusive c14n without comments) covers the joined text,
so that is what must be read and stored: `Uw<!---->besluit` is `Uwbesluit`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from lxml import etree

from adapter.berichtenbox.abonnementen import read_aanvraag
from adapter.config import load_organisations
from adapter.ebms.message import read_header
from adapter.kit.sender import batch_request
from adapter.lopende_zaken import stuf
from adapter.lopende_zaken.wus import NS as LZ
from adapter.lopende_zaken.wus import read_zaak
from adapter.soap.addressing import read_addressing
from adapter.soap.envelope import parse_envelope
from adapter.soap.xml import parse_untrusted, text_of
from tests.conftest import CONF, GEMEENTE
from tests.soap_helpers import aanvraag

ORGANISATIONS = load_organisations(CONF / "organisations.toml")


# --- the helper ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("xml", "text"),
    [
        (b"<a>Uw<!---->besluit</a>", "Uwbesluit"),
        (b"<a>Uw<!-- x -->be<!-- y -->sluit</a>", "Uwbesluit"),
        (b"<a>Uw<![CDATA[be]]>sluit</a>", "Uwbesluit"),
        (b"<a>Uw besluit</a>", "Uw besluit"),
        (b"<a/>", ""),
    ],
    ids=["comment", "two-comments", "cdata", "plain", "empty"],
)
def test_text_of_joins_every_text_node_as_the_receipt_hash_covers_it(xml: bytes, text: str) -> None:
    element = parse_untrusted(xml)
    assert text_of(element) == text
    canonical = etree.tostring(element, method="c14n", exclusive=True, with_comments=False)
    assert text.encode() in canonical or not text


def test_text_of_a_missing_element_is_none_and_nil_counts_only_when_asked() -> None:
    nil = parse_untrusted(b'<a xmlns:i="http://www.w3.org/2001/XMLSchema-instance" i:nil="true"/>')
    assert text_of(None) is None
    assert text_of(nil) == ""
    assert text_of(nil, nillable=True) is None


# --- each room -------------------------------------------------------------------------------


def test_a_bsn_key_of_validate_abonnementen_split_by_a_comment_is_the_whole_bsn() -> None:
    envelope = parse_envelope(aanvraag(["99999<!---->3653", "9999<!-- -->90019"], GEMEENTE))
    read = read_aanvraag(envelope.payload, ORGANISATIONS.by_oin[GEMEENTE], 250)
    assert read.keys == ("999993653", "999990019")


def test_ws_addressing_headers_split_by_a_comment_are_read_whole() -> None:
    headers = parse_untrusted(
        b'<h xmlns:wsa="http://www.w3.org/2005/08/addressing">'
        b"<wsa:To>https://x<!---->/abonnementen</wsa:To><wsa:MessageID>urn:uuid:1<!---->2"
        b"</wsa:MessageID></h>"
    )
    read = read_addressing(list(headers))
    assert read is not None
    assert (read.to, read.message_id) == ("https://x/abonnementen", "urn:uuid:12")


def test_a_zaak_identificatie_split_by_a_comment_is_the_whole_identificatie() -> None:
    zaak = parse_untrusted(
        f"""<zaak xmlns="{LZ}"><identificatie>HP-x<!---->y</identificatie>
        <omschrijving>Uw<!---->aanvraag</omschrijving><startdatum>2026-01-10</startdatum>
        <initiator><bsn>99999<!---->3653</bsn></initiator></zaak>""".encode()
    )
    melding = read_zaak(zaak)
    assert (melding.identificatie, melding.omschrijving, melding.initiator_bsn) == (
        "HP-xy",
        "Uwaanvraag",
        "999993653",
    )


def test_a_stuf_zaak_identificatie_split_by_a_comment_is_the_whole_identificatie() -> None:
    zaak = parse_untrusted(
        f"""<z:object xmlns:z="{stuf.ZKN}" xmlns:StUF="{stuf.STUF}" xmlns:BG="{stuf.BG}">
        <z:identificatie>HP-x<!---->y</z:identificatie><z:omschrijving>Uw<!---->aanvraag
        </z:omschrijving><z:startdatum>2026<!---->0110</z:startdatum><z:heeftAlsInitiator>
        <z:gerelateerde><z:natuurlijkPersoon><BG:inp.bsn>99999<!---->3653</BG:inp.bsn>
        </z:natuurlijkPersoon></z:gerelateerde></z:heeftAlsInitiator></z:object>""".encode()
    )
    melding = stuf.read_object(zaak)
    assert (melding.identificatie, melding.omschrijving, melding.initiator_bsn) == (
        "HP-xy",
        "Uwaanvraag",
        "999993653",
    )
    assert melding.startdatum.isoformat() == "2026-01-10"


def test_ebms_message_header_fields_split_by_a_comment_are_read_whole() -> None:
    message_id, soap = batch_request(
        GEMEENTE, "00000004003214345001", "CPA-1", "batch@test", [], datetime.now(UTC)
    )
    split = message_id[:8] + "<!---->" + message_id[8:]
    soap = soap.replace(message_id.encode(), split.encode(), 1)
    soap = soap.replace(b">CPA-1<", b">CPA<!---->-1<", 1)
    header = read_header(parse_untrusted(soap))
    assert (header.message_id, header.cpa_id) == (message_id, "CPA-1")

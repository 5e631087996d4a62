"""The fuzz targets of bench/fuzz/ run over their seed corpora, so they cannot rot unnoticed,
and the inputs the fuzzer found stay refused the way the adapter means to refuse them.

No atheris here: each target's `fuzz_one` is a plain function. Every seed must still reach
as far into its parser as it did when the corpus was written (a seed refused earlier would
leave the fuzzer starting from a shallow place), and the findings are kept as regressions:
each is the smallest form of an input that made an adapter module raise something other
than an `AdapterError`, which the endpoints turned into a server fault or an HTTP 500.
"""

from __future__ import annotations

import importlib
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest
from lxml import etree

from adapter.ebms.cpa import CpaError, load_cpa
from adapter.ebms.endpoint import as_ebms_error
from adapter.ebms.message import message_error
from adapter.ebms.mime import parse_package
from adapter.errors import (
    AddressingToMissing,
    ForbiddenMarkup,
    MalformedXml,
    MimeProblem,
    XmlNotUtf8,
)
from adapter.soap.addressing import check_addressing, read_addressing
from adapter.soap.endpoint import as_soap_fault
from adapter.soap.envelope import body_hash, build_fault, parse_envelope
from adapter.soap.xml import parse_untrusted
from bench.fuzz import TARGETS, seeds

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
WSA = "http://www.w3.org/2005/08/addressing"
NOW = datetime(2025, 1, 1, tzinfo=UTC)

# What each seed gets: "accepted" (through every step of the target), or its refusal.
OUTCOMES = {
    ("envelope", "aanvraag-addressing.xml"): "accepted",
    ("envelope", "aanvraag.xml"): "AddressingToMissing",
    ("envelope", "attributes.xml"): "AddressingToMissing",
    ("envelope", "cdata-and-references.xml"): "AddressingToMissing",
    ("envelope", "comment-in-text.xml"): "AddressingToMissing",
    ("envelope", "doctype.xml"): "ForbiddenMarkup",
    ("envelope", "latin1.xml"): "XmlNotUtf8",
    ("envelope", "nested.xml"): "AddressingToMissing",
    ("envelope", "nil.xml"): "AddressingToMissing",
    ("envelope", "processing-instruction.xml"): "ForbiddenMarkup",
    ("envelope", "soap12.xml"): "InvalidEnvelope",
    ("envelope", "two-bodies.xml"): "InvalidEnvelope",
    ("envelope", "unknown-must-understand.xml"): "HeaderNotUnderstood",
    ("envelope", "utf16.xml"): "XmlNotUtf8",
    ("envelope", "xml11.xml"): "ForbiddenMarkup",
    ("mime", "batch-bare-lf.mime"): "accepted",
    ("mime", "batch-base64.mime"): "accepted",
    ("mime", "batch-quoted-printable.mime"): "accepted",
    ("mime", "batch.mime"): "accepted",
    ("mime", "duplicate-content-id.mime"): "MimeProblem",
    ("mime", "no-start.mime"): "accepted",
    ("mime", "single-part.mime"): "MimeProblem",  # its Manifest names a part it lacks
    ("cpa", "gemeente.xml"): "accepted",
    ("cpa", "proposed.xml"): "CpaError",
    ("stuf", "zaklk01-einddatum.xml"): "accepted",
    ("stuf", "zaklk01-wijziging.xml"): "accepted",
    ("stuf", "zaklk01.xml"): "accepted",
    ("pdf", "good.pdf"): "accepted",
    ("pdf", "javascript-indirect.pdf"): "bevat JavaScript",
    ("pdf", "javascript-link.pdf"): "bevat JavaScript",
    ("pdf", "javascript-name-tree.pdf"): "bevat JavaScript",
    ("pdf", "javascript-open-action.pdf"): "bevat JavaScript",
    ("pdf", "launch.pdf"): "bevat een Launch-actie (starten van een programma)",
    ("pdf", "minimal.pdf"): "accepted",
    ("pdf", "pdfa-1b-attributes.pdf"): "accepted PDF/A-1B",
    ("pdf", "pdfa-2a.pdf"): "accepted PDF/A-2A",
    ("pdf", "truncated.pdf"): "is geen volledige PDF (startxref en %%EOF aan het eind ontbreken)",
    ("pdf", "unreadable.pdf"): "kan niet als PDF worden gelezen",
    ("pdf", "xfa.pdf"): "bevat een XFA-formulier",
}


def _target(name: str) -> ModuleType:
    return importlib.import_module(f"bench.fuzz.{name}")


def test_every_seed_file_has_its_expected_outcome_listed() -> None:
    on_disk = {(target, path.name) for target in TARGETS for path in seeds(target)}
    assert on_disk == set(OUTCOMES)


@pytest.mark.parametrize(("target", "seed"), sorted(OUTCOMES))
def test_each_seed_goes_through_its_fuzz_target_to_its_outcome(target: str, seed: str) -> None:
    (path,) = [p for p in seeds(target) if p.name == seed]
    assert _target(target).fuzz_one(path.read_bytes()) == OUTCOMES[target, seed]


@pytest.mark.parametrize("target", TARGETS)
def test_a_target_answers_empty_and_garbage_input_with_a_refusal(target: str) -> None:
    for data in (b"", b"\x00", b"\n", b"<", b"%PDF-", b"\xff" * 64):
        assert _target(target).fuzz_one(data) != "accepted"


# --- findings, kept as regressions ---------------------------------------------------------


def _envelope(body: str, header: str = "") -> bytes:
    return (
        f'<s:Envelope xmlns:s="{SOAP}"><s:Header>{header}</s:Header>'
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def test_an_xml_version_holding_a_nul_is_refused_with_a_reason_a_fault_can_carry() -> None:
    # Found by the envelope target: the reason quoted the version, NUL and all, and building
    # the fault (and the receipt) then failed with lxml's ValueError.
    data = b'<?xml version="1.\x00\xec" encoding="utf-8"?>' + _envelope("<a/>")
    with pytest.raises(ForbiddenMarkup) as refused:
        parse_untrusted(data)
    assert refused.value.reason == "XML-versie 1.?? is niet toegestaan, gebruik XML 1.0"
    fault = etree.fromstring(build_fault(as_soap_fault(refused.value)))
    assert fault.findtext(".//faultstring").startswith("0001 ")


def test_a_body_with_a_relative_namespace_uri_is_refused_as_the_senders_xml() -> None:
    # Found by the envelope target: exclusive c14n fails on a relative namespace URI, and the
    # C14NError reached the endpoints' catch-all: 0051 Service niet beschikbaar for a client.
    envelope = parse_envelope(_envelope('<t:a xmlns:t="types/2009/01"/>'))
    with pytest.raises(MalformedXml) as refused:
        body_hash(envelope.body)
    assert as_soap_fault(refused.value).code == "0001"
    assert as_ebms_error(refused.value).error_code == "OtherXml"


def test_a_wsa_to_that_urlsplit_cannot_read_is_a_missing_to_not_a_crash() -> None:
    # Found by the envelope target: urlsplit raises ValueError on an unbalanced "[" in the host.
    header = (
        f'<wsa:To xmlns:wsa="{WSA}">https://]mijnoverheid.example/abonnementen</wsa:To>'
        f'<wsa:Action xmlns:wsa="{WSA}">urn:a</wsa:Action>'
        f'<wsa:MessageID xmlns:wsa="{WSA}">urn:uuid:1</wsa:MessageID>'
    )
    envelope = parse_envelope(_envelope("<a/>", header))
    with pytest.raises(AddressingToMissing):
        check_addressing(
            read_addressing(envelope.headers),
            required=True,
            expected_action="urn:a",
            receiver_oin="00000004003214345001",
        )


PART = b'Content-ID: <%s>\r\nContent-Type: text/xml; charset="%s"\r\n\r\n<a/>\r\n'


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        # Found by the MIME target: the start parameter quoted raw into the description.
        (
            'multipart/related; boundary=b; start="\x00\x00<soap@test>"',
            b"--b\r\n" + PART % (b"soap@test", b"UTF-8") + b"--b--\r\n",
        ),
        # The same for a Content-ID used twice, and a SOAP part's charset.
        (
            "multipart/related; boundary=b",
            b"--b\r\n"
            + PART % (b"a\x01b", b"UTF-8")
            + b"--b\r\n"
            + PART % (b"a\x01b", b"UTF-8")
            + b"--b--\r\n",
        ),
        (
            "multipart/related; boundary=b",
            b"--b\r\n" + PART % (b"soap@test", b"\x02latin") + b"--b--\r\n",
        ),
    ],
    ids=["start", "duplicate-content-id", "charset"],
)
def test_a_mime_problem_quoting_control_characters_still_builds_its_message_error(
    content_type: str, body: bytes
) -> None:
    with pytest.raises((MimeProblem, XmlNotUtf8)) as refused:
        parse_package(content_type, body)
    error = refused.value
    ebms_error = error if isinstance(error, MimeProblem) else as_ebms_error(error)
    assert "\\x0" in ebms_error.description
    _, answer = message_error(None, ebms_error, NOW)
    assert ebms_error.description in etree.fromstring(answer).findtext(".//{*}Description")


def test_the_manifest_reference_that_percent_decodes_to_a_nul_is_quoted_printably() -> None:
    package = parse_package(
        "multipart/related; boundary=b", b"--b\r\n" + PART % (b"soap@x", b"UTF-8") + b"--b--\r\n"
    )
    with pytest.raises(MimeProblem) as refused:
        package.attachment("cid:a%00b")
    assert "<a\\x00b>" in refused.value.description
    message_error(None, refused.value, NOW)


def test_a_cpa_endpoint_that_urlsplit_cannot_read_is_a_cpa_error(tmp_path: Path) -> None:
    # Found by the CPA target: urlsplit's ValueError escaped the reader, so `cpa check`
    # stopped with a traceback instead of listing the problem.
    (seed,) = [p for p in seeds("cpa") if p.name == "gemeente.xml"]
    cpa = seed.read_bytes()
    assert cpa.count(b'tp:uri="https://') >= 1
    broken = tmp_path / "cpa.xml"
    broken.write_bytes(cpa.replace(b'tp:uri="https://', b'tp:uri="https://[', 1))
    with pytest.raises(CpaError, match="is not an https:// URL"):
        load_cpa(broken)

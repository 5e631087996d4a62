"""Write the seed corpora of the fuzz targets from the test suite's own samples.

Run: `.venv/bin/python -m bench.fuzz.make_corpus` (rewrites `bench/fuzz/corpus/*/`). The seeds
are small valid messages of each kind plus a few of the hostile shapes the tests refuse, so
libFuzzer starts from inputs that reach deep into each parser. UUIDs, timestamps and MIME
boundaries are fixed, so a rerun writes the same files.
"""

from __future__ import annotations

import base64
import binascii
import re
import shutil
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from adapter.berichtenbox.abonnementen import ACTION, SHR, SVC, TYP  # noqa: E402
from adapter.ebms.mime import build_package  # noqa: E402
from adapter.kit.sender import batch_request  # noqa: E402
from bench.fuzz import CORPUS, MAX_LEN  # noqa: E402
from tests import pdf_samples  # noqa: E402
from tests.berichtverwerk_samples import batch_xml, minimal_pdf  # noqa: E402

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
GEMEENTE, MIJNOVERHEID = "00000099000000002000", "00000004003214345001"
CPA_ID = f"MIJNOVERHEID-EBMS-BB-2-0_{GEMEENTE}_{MIJNOVERHEID}_1"
WHEN = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
BOUNDARY = "MIMEBoundary_fuzz"
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _fixed_ids(data: bytes) -> bytes:
    """Every UUID replaced by a counter-numbered one, in order of first appearance."""
    seen: dict[bytes, bytes] = {}

    def fixed(match: re.Match[bytes]) -> bytes:
        return seen.setdefault(match[0], b"00000000-0000-4000-8000-%012d" % (len(seen) + 1))

    return _UUID.sub(fixed, data)


def _envelope(body: str, header: str = "", namespace: str = SOAP) -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<s:Envelope xmlns:s="{namespace}">'
        f"<s:Header>{header}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def _aanvraag(key: str = "999993653", text: str = "BESLUIT") -> str:
    return (
        f'<ValidateAbonnementen xmlns="{SVC}" xmlns:t="{TYP}" xmlns:k="{SHR}">'
        f"<validateAbonnementenAanvraag><t:berichtleverancierCode>{GEMEENTE}"
        f"</t:berichtleverancierCode><t:berichtTypeCode>{text}</t:berichtTypeCode><t:klanten>"
        f"<k:Klant><k:Key>{key}</k:Key><k:Rol>Burger</k:Rol></k:Klant></t:klanten>"
        "</validateAbonnementenAanvraag></ValidateAbonnementen>"
    )


def _addressing(must_understand: bool = False) -> str:
    flag = ' s:mustUnderstand="1"' if must_understand else ""
    return (
        f'<wsa:To xmlns:wsa="{WSA}"{flag}>https://mijnoverheid.example/abonnementen</wsa:To>'
        f'<wsa:Action xmlns:wsa="{WSA}">{ACTION}</wsa:Action>'
        f'<wsa:MessageID xmlns:wsa="{WSA}">urn:uuid:2b1c5a0e-0000-4000-8000-000000000001'
        "</wsa:MessageID>"
    )


def envelope_seeds() -> dict[str, bytes]:
    return {
        "aanvraag.xml": _envelope(_aanvraag()),
        "aanvraag-addressing.xml": _envelope(_aanvraag(), _addressing(must_understand=True)),
        "comment-in-text.xml": _envelope(_aanvraag(text="BES<!---->LUIT")),
        "cdata-and-references.xml": _envelope(_aanvraag(text="<![CDATA[BES]]>&#x4C;&amp;UIT")),
        "unknown-must-understand.xml": _envelope(
            _aanvraag(), '<w:Security xmlns:w="urn:x" s:mustUnderstand="1"/>'
        ),
        "soap12.xml": _envelope(_aanvraag(), namespace=SOAP12),
        "two-bodies.xml": _envelope(_aanvraag() + "</s:Body><s:Body>" + _aanvraag()),
        "nested.xml": _envelope("<a>" * 12 + "x" + "</a>" * 12),
        "attributes.xml": _envelope(
            "<a " + " ".join(f'a{i}="{i}"' for i in range(10)) + ' xmlns:p="urn:p"/>'
        ),
        "nil.xml": _envelope(
            '<a xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:nil="true"/>'
        ),
        "doctype.xml": b'<!DOCTYPE s [<!ENTITY e "x">]>' + _envelope("<a>&e;</a>"),
        "processing-instruction.xml": _envelope("<a><?pi data?></a>"),
        "xml11.xml": _envelope("<a/>").replace(b'version="1.0"', b'version="1.1"'),
        "latin1.xml": _envelope("<a/>").replace(b"utf-8", b"iso-8859-1"),
        "utf16.xml": _envelope("<a/>").decode().encode("utf-16"),
    }


def _mime(content_type: str, body: bytes) -> bytes:
    return content_type.encode("latin-1") + b"\n" + body


def mime_seeds() -> dict[str, bytes]:
    _, soap = batch_request(GEMEENTE, MIJNOVERHEID, CPA_ID, "batch@test", ["pdf@test"], WHEN)
    soap = _fixed_ids(soap)
    batch = _fixed_ids(batch_xml([{}], aanmaak=WHEN))
    pdf = minimal_pdf(400)
    parts = [("batch@test", "text/xml; charset=UTF-8", batch), ("pdf@test", "application/pdf", pdf)]
    content_type, body = build_package(soap, parts, boundary=BOUNDARY)
    content_type, body = content_type.encode(), body  # start names the SOAP part's Content-ID
    soap_cid = re.search(rb'start="<([^>]+)>"', content_type)
    assert soap_cid is not None
    content_type = content_type.replace(soap_cid[1], b"soap@test")
    body = body.replace(soap_cid[1], b"soap@test")
    base64_body = body.replace(
        b"Content-Type: application/pdf\r\n\r\n" + pdf,
        b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(pdf),
    )
    qp_body = body.replace(
        b"Content-Type: text/xml; charset=UTF-8\r\n\r\n" + batch,
        b"Content-Type: text/xml; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable"
        b"\r\n\r\n" + binascii.b2a_qp(batch),
    )
    single_type, single = build_package(soap, [], single_part=True)
    return {
        "batch.mime": _mime(content_type.decode(), body),
        "batch-base64.mime": _mime(content_type.decode(), base64_body),
        "batch-quoted-printable.mime": _mime(content_type.decode(), qp_body),
        "batch-bare-lf.mime": _mime(content_type.decode(), body.replace(b"\r\n", b"\n")),
        "no-start.mime": _mime(f'multipart/related; type="text/xml"; boundary={BOUNDARY}', body),
        "duplicate-content-id.mime": _mime(
            content_type.decode(), body.replace(b"<pdf@test>", b"<batch@test>")
        ),
        "single-part.mime": _mime(single_type, single),
    }


def cpa_seeds() -> dict[str, bytes]:
    cpa = (ROOT / "conf" / "cpa" / f"{CPA_ID}.xml").read_bytes()
    return {
        "gemeente.xml": cpa,
        "proposed.xml": cpa.replace(b'tp:value="agreed"', b'tp:value="proposed"'),
    }


def stuf_seeds() -> dict[str, bytes]:
    sample = (ROOT / "tests" / "data" / "stuf" / "zakLk01.xml").read_text(encoding="utf-8")
    body = re.sub(r"<!--.*?-->", "", sample.partition("?>")[2], flags=re.DOTALL).strip()
    closed = body.replace("<einddatumGepland>", "<einddatum>20260201</einddatum><einddatumGepland>")
    return {
        "zaklk01.xml": _envelope(body),
        "zaklk01-einddatum.xml": _envelope(closed),
        "zaklk01-wijziging.xml": _envelope(
            body.replace("<StUF:mutatiesoort>T", "<StUF:mutatiesoort>W").replace(
                'StUF:verwerkingssoort="T" StUF:sleutelVerzendend',
                'StUF:verwerkingssoort="W" StUF:sleutelVerzendend',
            )
        ),
    }


def pdf_seeds() -> dict[str, bytes]:
    samples: dict[str, Callable[[], bytes]] = {
        "good": pdf_samples.good_pdf,
        "pdfa-2a": pdf_samples.pdfa_pdf,
        "pdfa-1b-attributes": lambda: pdf_samples.pdfa_pdf(pdf_samples.XMP_PDFA_1B_ATTRIBUTES),
        "javascript-open-action": pdf_samples.javascript_open_action,
        "javascript-indirect": pdf_samples.javascript_open_action_indirect,
        "javascript-name-tree": pdf_samples.javascript_name_tree,
        "javascript-link": pdf_samples.javascript_in_a_link,
        "launch": pdf_samples.launch_action,
        "xfa": pdf_samples.xfa_form,
        "truncated": pdf_samples.truncated,
        "unreadable": pdf_samples.unreadable,
        "minimal": lambda: minimal_pdf(330),
    }
    return {f"{name}.pdf": make() for name, make in samples.items()}


SEEDS: dict[str, Callable[[], dict[str, bytes]]] = {
    "envelope": envelope_seeds,
    "mime": mime_seeds,
    "cpa": cpa_seeds,
    "stuf": stuf_seeds,
    "pdf": pdf_seeds,
}


def main() -> None:
    for target, make in SEEDS.items():
        directory = CORPUS / target
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        for name, data in make().items():
            if len(data) > MAX_LEN[target]:
                raise SystemExit(f"{target}/{name}: {len(data)} bytes, over -max_len")
            (directory / name).write_bytes(data)
        print(f"{target}: {len(list(directory.iterdir()))} seeds")


if __name__ == "__main__":
    main()

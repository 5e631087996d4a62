"""What a hostile XML document costs the adapter, and what the largest legitimate ones cost.

Run: `.venv/bin/python bench/hostile_parse.py [--repeat N] [--server] [--json FILE]`.

1. In this process, for each document: the time `adapter.soap.xml.parse_untrusted` takes (the
   best of --repeat runs, default 3) with the default `XmlLimits`, and what it answered:
   the tree, or the refusal with its reason. The hostile shapes are those of issue 14 (one
   element with 100,000 attributes in 1 MB, 40,000 on `eb:Manifest`, as many namespace
   declarations, deep nesting, many elements or comments, a processing instruction); the
   legitimate ones are the largest the adapter must take (a 1000-Bericht batch with two 10 KB
   PDFs per Bericht, one Bericht carrying an 11 MB inline PDF, which BerichtVerwerk and not the
   parser refuses, and an AbonnementAanvraag listing 1,000,000 BSNs, which the limits refuse
   as a tree and its service therefore reads as a stream, timed both ways). For a legitimate
   envelope the exclusive-c14n body hash a receipt carries is timed as well: the limits are
   what keep it cheap, since it is only ever computed over a tree the parser accepted.
2. With --server, the same hostile shapes over the wire: `dk-adapter serve` (SQLite in a
   temporary directory, the dev PKI, as the other benchmarks start it), each request POSTed
   once to /abonnementen (WUS) or /berichtenbox/ebms (ebMS), timed to its answer, with the
   fault or ErrorList code; then a good ValidateAbonnementen request timed alone and while 8
   hostile 100,000-attribute requests run at once.

Nothing here asserts on timings; the figures are for comparing runs on one machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from lxml import etree  # noqa: E402

from adapter.ebms.message import EB  # noqa: E402
from adapter.ebms.mime import build_package  # noqa: E402
from adapter.errors import XmlRejected  # noqa: E402
from adapter.kit.sender import batch_request  # noqa: E402
from adapter.soap.envelope import body_hash  # noqa: E402
from adapter.soap.xml import iterparse_untrusted, parse_untrusted  # noqa: E402
from tests.berichtverwerk_samples import batch_xml, minimal_pdf  # noqa: E402
from tests.soap_helpers import aanvraag  # noqa: E402

GEMEENTE = "00000099000000002000"
MIJNOVERHEID = "00000004003214345001"
CPA_ID = f"MIJNOVERHEID-EBMS-BB-2-0_{GEMEENTE}_{MIJNOVERHEID}_1"
BSN = "999993653"
SOAP = b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'


def _attributes(count: int) -> bytes:
    return b" ".join(b'a%d="1"' % n for n in range(count))


def _in_body(inner: bytes) -> bytes:
    return SOAP + b"<s:Body>" + inner + b"</s:Body></s:Envelope>"


def _ebms_soap(manifest_attributes: int = 0) -> tuple[str, bytes]:
    message_id, soap = batch_request(
        GEMEENTE, MIJNOVERHEID, CPA_ID, "batch@bench", [], datetime.now(UTC)
    )
    if manifest_attributes:
        soap = soap.replace(b"<eb:Manifest", b"<eb:Manifest " + _attributes(manifest_attributes))
    return message_id, soap


def hostile_documents() -> dict[str, bytes]:
    declarations = b" ".join(b'xmlns:p%d="urn:x:%d"' % (n, n) for n in range(50_000))
    return {
        "100,000 attributes on one element, in 1 MB": _in_body(
            b"<x " + _attributes(100_000) + b"/>"
        ),
        "40,000 attributes on eb:Manifest": _ebms_soap(40_000)[1],
        "50,000 namespace declarations on one element": _in_body(b"<x " + declarations + b"/>"),
        "nesting 100,000 deep": b"<a>" * 100_000 + b"</a>" * 100_000,
        "2,000,000 empty elements (8 MB)": b"<a>" + b"<b/>" * 2_000_000 + b"</a>",
        "2,000,000 comments (14 MB)": b"<a>" + b"<!---->" * 2_000_000 + b"</a>",
        "a processing instruction before the root": b"<?xml-stylesheet href='x'?>"
        + SOAP[:-1]
        + b"/>",
    }


def legitimate_documents() -> dict[str, bytes]:
    pdf = minimal_pdf(10_000)
    bericht = {"bijlagen": [(pdf, "een"), (pdf, "twee")], "algemene": [("folder@bench", "f")]}
    return {
        "1000-Bericht batch, two 10 KB PDFs each (27 MB)": batch_xml([bericht] * 1000),
        "one Bericht with an 11 MB inline PDF (14.7 MB base64)": batch_xml(
            [{"bijlagen": [(minimal_pdf(11_000_000), "groot")]}]
        ),
        "ValidateAbonnementen with 250 Klanten": aanvraag([BSN] * 250, GEMEENTE),
        "ebMS SOAP part of a batch": _ebms_soap()[1],
    }


def abonnement_aanvraag() -> bytes:
    """A million-BSN AbonnementAanvraag: too large for a tree, so its service streams it."""
    bsns = b"".join(b"<BSN>%09d</BSN>" % n for n in range(1_000_000))
    return (
        b'<a:AbonnementAanvraag xmlns:a="http://schemas.overheid.nl/GEB/'
        b'AbonnementServiceProcessor/2014/02"><BerichtLeverancier><OIN>'
        + GEMEENTE.encode()
        + b"</OIN></BerichtLeverancier><VerzoekId>1</VerzoekId><BSNLijst>"
        + bsns
        + b"</BSNLijst></a:AbonnementAanvraag>"
    )


def _stream(data: bytes) -> int:
    """Read as the AbonnementAanvraag service does: element by element, clearing as it goes."""
    count = 0
    for element in iterparse_untrusted(data):
        count += 1
        if element.tag == "BSN" and count % 4096 == 0:
            parent = element.getparent()
            if parent is not None:
                del parent[:-1]
    return count


def _best(action: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    timings, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        try:
            result = action()
        except XmlRejected as refused:
            result = refused
        timings.append(time.perf_counter() - started)
    return min(timings), result


def in_process(repeat: int) -> list[dict[str, Any]]:
    rows = []
    for kind, documents in (
        ("hostile", hostile_documents()),
        ("legitimate", legitimate_documents()),
    ):
        for name, data in documents.items():
            seconds, result = _best(lambda data=data: parse_untrusted(data), repeat)
            row: dict[str, Any] = {
                "kind": kind,
                "document": name,
                "bytes": len(data),
                "parse_ms": round(seconds * 1000, 1),
            }
            if isinstance(result, XmlRejected):
                row["answer"] = f"{type(result).__name__}: {result.reason}"
            else:
                row["answer"] = f"parsed, {sum(1 for _ in result.iter())} nodes"
                body = result.find("{http://schemas.xmlsoap.org/soap/envelope/}Body")
                if body is not None:
                    hashed, _ = _best(lambda body=body: body_hash(body), repeat)
                    row["body_hash_ms"] = round(hashed * 1000, 1)
            rows.append(row)
    data = abonnement_aanvraag()
    for name, read in (
        ("AbonnementAanvraag, 1,000,000 BSNs, as a tree", parse_untrusted),
        ("AbonnementAanvraag, 1,000,000 BSNs, as its stream", _stream),
    ):
        seconds, result = _best(lambda read=read: read(data), repeat)
        answer = (
            f"{type(result).__name__}: {result.reason}"
            if isinstance(result, XmlRejected)
            else f"read, {result if isinstance(result, int) else 'a tree'}"
        )
        rows.append(
            {
                "kind": "legitimate",
                "document": name,
                "bytes": len(data),
                "parse_ms": round(seconds * 1000, 1),
                "answer": answer,
            }
        )
    return rows


# --- over the wire -----------------------------------------------------------------------------


def _code(response: requests.Response) -> str:
    try:
        document = etree.fromstring(response.content)
    except etree.XMLSyntaxError:
        return f"HTTP {response.status_code}, no XML"
    faultstring = document.findtext(".//faultstring")
    if faultstring:
        return f"HTTP {response.status_code}, fault {faultstring[:60]}"
    error = document.find(".//{*}ErrorList/{*}Error")
    if error is not None:
        return f"HTTP {response.status_code}, ErrorList {error.get(f'{{{EB}}}errorCode')}"
    return f"HTTP {response.status_code}"


def over_the_wire() -> dict[str, Any]:
    from bench._setup import build_pki, database, running_server

    figures: dict[str, Any] = {"requests": []}
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as temp:
        directory = Path(temp)
        files = build_pki(directory / "pki")
        client = files.clients[GEMEENTE]
        session = requests.Session()
        session.cert = (str(client.certificate), str(client.private_key))
        session.verify = str(files.root_ca)
        session.trust_env = False
        with (
            database("sqlite", directory) as database_url,
            running_server(directory / "server", files, database_url) as server,
        ):
            base = f"https://127.0.0.1:{server.port}"
            wus_headers = {
                "Content-Type": "text/xml; charset=utf-8",
                "SOAPAction": '""',
            }

            def wus(body: bytes) -> requests.Response:
                return session.post(f"{base}/abonnementen", data=body, headers=wus_headers)

            def ebms(soap: bytes) -> requests.Response:
                payload = batch_xml([{}])
                content_type, body = build_package(
                    soap, [("batch@bench", "text/xml; charset=UTF-8", payload)]
                )
                headers = {"Content-Type": content_type, "SOAPAction": '"ebXML"'}
                return session.post(f"{base}/berichtenbox/ebms", data=body, headers=headers)

            good = aanvraag([BSN], GEMEENTE)
            wus(good)  # warm-up: every worker thread's first request compiles the schemas
            hostile_wus = _in_body(b"<x " + _attributes(100_000) + b"/>")
            cases: list[tuple[str, Callable[[], requests.Response]]] = [
                ("WUS: 100,000 attributes in the Body (1 MB)", lambda: wus(hostile_wus)),
                (
                    "WUS: 50,000 namespace declarations",
                    lambda: wus(
                        _in_body(
                            b"<x "
                            + b" ".join(b'xmlns:p%d="urn:%d"' % (n, n) for n in range(50_000))
                            + b"/>"
                        )
                    ),
                ),
                ("WUS: 1,000,000 empty elements (4 MB)", lambda: wus(b"<a>" + b"<b/>" * 1_000_000)),
                ("ebMS: 40,000 attributes on eb:Manifest", lambda: ebms(_ebms_soap(40_000)[1])),
                ("WUS: a good ValidateAbonnementen", lambda: wus(good)),
            ]
            for name, send in cases:
                started = time.perf_counter()
                response = send()
                figures["requests"].append(
                    {
                        "request": name,
                        "ms": round((time.perf_counter() - started) * 1000, 1),
                        "answer": _code(response),
                    }
                )

            alone = []
            for _ in range(5):
                started = time.perf_counter()
                wus(good)
                alone.append(time.perf_counter() - started)
            stop = threading.Event()

            def attack() -> None:
                attacker = requests.Session()
                attacker.cert, attacker.verify, attacker.trust_env = (
                    session.cert,
                    session.verify,
                    False,
                )
                while not stop.is_set():
                    attacker.post(f"{base}/abonnementen", data=hostile_wus, headers=wus_headers)

            attackers = [threading.Thread(target=attack) for _ in range(8)]
            for thread in attackers:
                thread.start()
            time.sleep(1)
            under_attack = []
            for _ in range(5):
                started = time.perf_counter()
                wus(good)
                under_attack.append(time.perf_counter() - started)
            stop.set()
            for thread in attackers:
                thread.join()
            figures["good_request_ms"] = {
                "alone_median": round(statistics.median(alone) * 1000, 1),
                "with_8_hostile_median": round(statistics.median(under_attack) * 1000, 1),
                "with_8_hostile_max": round(max(under_attack) * 1000, 1),
            }
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per document (best counts)")
    parser.add_argument("--server", action="store_true", help="also over the wire (a server)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    figures: dict[str, Any] = {"parse": in_process(max(args.repeat, 1))}
    print(f"{'document':<58} {'bytes':>11} {'parse ms':>9} {'c14n ms':>8}  answer")
    for row in figures["parse"]:
        hashed = row.get("body_hash_ms", "")
        print(
            f"{row['document']:<58} {row['bytes']:>11,} {row['parse_ms']:>9} {hashed!s:>8}"
            f"  {row['answer'][:90]}"
        )
    if args.server:
        figures["server"] = over_the_wire()
        print()
        for row in figures["server"]["requests"]:
            print(f"{row['request']:<58} {row['ms']:>9} ms  {row['answer']}")
        good = figures["server"]["good_request_ms"]
        print(
            f"good request: {good['alone_median']} ms alone (median of 5), "
            f"{good['with_8_hostile_median']} ms median and {good['with_8_hostile_max']} ms max "
            "with 8 hostile requests running at once"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Server mode of the conformance kit against our own adapter, and against a broken stand-in.

The stand-in is a small WSGI app served over mutual TLS in the test: it passes every request
on to the real adapter and spoils some answers the way a leverancier's endpoint might (no
RelatesTo, an unsigned receipt, a wrong fault code), while a relay on the CPA's endpoint
swallows the BerichtVerwerk results the adapter sends, so the result never arrives.
"""

from __future__ import annotations

import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import requests
from lxml import etree

from adapter.kit.client import MtlsClient
from adapter.kit.conformance.model import Report, Status
from adapter.kit.conformance.probe import Inbox, Target
from adapter.kit.conformance.reports import html_report, junit_xml
from adapter.kit.conformance.server_mode import MATRIX, run_matrix, select
from adapter.kit.receiver import ACKNOWLEDGE, EbmsReceiver, ReceivedMessage, Reply, server_context
from adapter.pki.devca import DEV_P12_PASSWORD
from tests.conftest import GEMEENTE, ROOT, Pki, Server, free_port, run_cli

ARTIFACTS = ROOT / "var" / "test-artifacts" / "conformance"
NOT_RUN = 5  # 2W-be-S and the four signed/encrypted ebMS profiles


def test_server_mode_passes_against_our_adapter(server: Server, pki: Pki) -> None:
    """`dk-adapter conformance run`, as a leverancier runs it, with its three reports."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    kind = "postgresql" if server.database_url.startswith("postgresql") else "sqlite"
    junit, page = ARTIFACTS / f"own-{kind}.xml", ARTIFACTS / f"own-{kind}.html"
    done = run_cli(
        "conformance",
        "run",
        "--target",
        server.url,
        "--p12",
        str(pki.files.clients[GEMEENTE].pkcs12),
        "--password",
        DEV_P12_PASSWORD,
        "--ca",
        str(pki.root),
        "--receive-on",
        f"127.0.0.1:{server.peer_port}",
        "--junit",
        str(junit),
        "--html",
        str(page),
        config=server.config,
        database_url=server.database_url,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    passed = len(MATRIX) - NOT_RUN
    assert f"{passed} passed, 0 failed, {NOT_RUN} not run" in done.stdout
    assert "not run is not passed" in done.stdout
    suite = etree.parse(str(junit)).getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == (
        str(len(MATRIX)),
        "0",
        str(NOT_RUN),
    )
    skipped = suite.findall("testcase/skipped")
    assert {s.get("message") for s in skipped} == {
        "not run: WS-Security/ebMS signing not yet supported (not required)"
    }
    assert "CONFORMANT for the cases run" in page.read_text(encoding="utf-8")


def test_a_failing_case_makes_the_exit_status_one(server: Server, pki: Pki) -> None:
    """The wrong subscription data make ValidateAbonnementen's answer differ: exit 1."""
    done = run_cli(
        "conformance",
        "run",
        "--target",
        server.url,
        "--profile",
        "wus",
        "--case",
        "wus.validate-abonnementen.no-wsa",
        "--p12",
        str(pki.files.clients[GEMEENTE].pkcs12),
        "--password",
        DEV_P12_PASSWORD,
        "--ca",
        str(pki.root),
        "--bsn-subscribed",
        "999990019",
        config=server.config,
        database_url=server.database_url,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "0 passed, 1 failed, 0 not run" in done.stdout and "NOT CONFORMANT" in done.stdout


# --- the broken stand-in -------------------------------------------------------------------

WSA_RELATES_TO = re.compile(rb"<wsa:RelatesTo[^>]*>[^<]*</wsa:RelatesTo>")
SIGNATURE = re.compile(rb"<ds:Signature\b.*?</ds:Signature>", re.DOTALL)


def _spoil(path: str, body: bytes) -> bytes:
    if path == "/abonnementen":
        body = WSA_RELATES_TO.sub(b"", body)  # missing RelatesTo
        body = body.replace(b"<faultstring>0003 ", b"<faultstring>0001 ")  # wrong fault code
    if path == "/lopende-zaken":
        body = SIGNATURE.sub(b"", body)  # an unsigned receipt
    return body


class _TlsServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    context: ssl.SSLContext

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        return self.context.wrap_socket(connection, server_side=True), address


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class StandIn:
    """A leverancier's endpoint: our adapter behind a proxy that spoils some answers."""

    def __init__(self, server: Server, pki: Pki) -> None:
        self.adapter_url = server.url
        self.session = requests.Session()
        self.session.cert = pki.clients[GEMEENTE].pair
        self.session.verify = str(pki.root)
        self.session.trust_env = False
        self.httpd = make_server(
            "127.0.0.1", 0, self.app, server_class=_TlsServer, handler_class=_QuietHandler
        )
        self.httpd.context = server_context(
            pki.directory / "server.pem", pki.directory / "server.key", pki.root
        )
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        path = environ.get("PATH_INFO", "")
        headers = {"Content-Type": environ.get("CONTENT_TYPE", "")}
        if "HTTP_SOAPACTION" in environ:
            headers["SOAPAction"] = environ["HTTP_SOAPACTION"]
        answer = self.session.post(self.adapter_url + path, data=body, headers=headers, timeout=60)
        spoiled = _spoil(path, answer.content)
        start_response(
            f"{answer.status_code} {answer.reason}",
            [
                ("Content-Type", answer.headers.get("Content-Type", "text/xml")),
                ("Content-Length", str(len(spoiled))),
            ],
        )
        return [spoiled]

    def __enter__(self) -> StandIn:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.session.close()


def _relay(kit_port: int, pki: Pki) -> Callable[[ReceivedMessage], Reply]:
    """The stand-in's outbound side: acknowledges everything the adapter delivers to the CPA
    endpoint, passes it on to the kit, except the BerichtVerwerk results (never sent)."""
    session = requests.Session()
    session.cert = pki.clients[GEMEENTE].pair
    session.verify = str(pki.root)
    session.trust_env = False

    def reply(message: ReceivedMessage) -> Reply:
        if message.header.action != "GLOBE-R-BV-Result" and message.wire is not None:
            session.post(
                f"https://127.0.0.1:{kit_port}/ebms",
                data=message.wire.body,
                headers={"Content-Type": message.wire.content_type, "SOAPAction": '"ebXML"'},
                timeout=30,
            )
        return ACKNOWLEDGE

    return reply


SPOILED = {
    "wus.validate-abonnementen.2w-be": "wsa:RelatesTo is None",
    "wus.lopende-zaken.zaak-aanleveren": "the receipt does not verify",
    "wus.fault.0003-soapaction": "does not start with '0003'",
    "ebms.berichtverwerk.osb-rm": "no GLOBE-R-BV-Result answering",
}


@pytest.fixture(scope="module")
def broken_report(server: Server, pki: Pki) -> Iterator[Report]:
    client = pki.clients[GEMEENTE]
    kit_port = free_port()
    with (
        StandIn(server, pki) as stand_in,
        EbmsReceiver(
            "127.0.0.1",
            server.peer_port,
            client.certificate,
            client.key,
            pki.root,
            _relay(kit_port, pki),
        ),
        MtlsClient(client.certificate, client.key, pki.root) as mtls,
        EbmsReceiver(
            "127.0.0.1", kit_port, client.certificate, client.key, pki.root
        ) as kit_receiver,
    ):
        cases = select("all", [*SPOILED, "wus.validate-abonnementen.no-wsa", "ebms.ping"])
        target = Target(stand_in.url, mtls, pki.root, Inbox(kit_receiver), result_timeout=5)
        yield run_matrix(cases, target)


@pytest.mark.parametrize("case_id", list(SPOILED))
def test_the_broken_stand_in_fails_with_the_right_finding(
    broken_report: Report, case_id: str
) -> None:
    result = next(r for r in broken_report.results if r.case_id == case_id)
    assert result.status is Status.FAILED
    assert any(SPOILED[case_id] in f.message for f in result.errors), result.findings
    assert result.exchanges, "the report keeps what went over the wire"


def test_what_the_stand_in_leaves_alone_still_passes(broken_report: Report) -> None:
    passing = {r.case_id for r in broken_report.results if r.status is Status.PASSED}
    assert passing == {"wus.validate-abonnementen.no-wsa", "ebms.ping"}
    assert broken_report.exit_status() == 1


def test_the_reports_of_the_broken_run_name_rule_fix_and_exchanges(
    broken_report: Report,
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = html_report(broken_report)
    (ARTIFACTS / "broken-stand-in.html").write_text(page, encoding="utf-8")
    for case_id in SPOILED:
        assert f'<section id="{case_id}">' in page
    assert "Rule: SPEC Part B/C: signed Afleverbevestiging" in page
    assert "Fix: put the signed Afleverbevestiging" in page
    assert "NOT CONFORMANT" in page
    suite = etree.fromstring(junit_xml(broken_report))
    failures = {c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None}
    assert failures == set(SPOILED)
    out = suite.find("testcase[@name='wus.fault.0003-soapaction']/system-out")
    assert out is not None and "<faultstring>0001 " in (out.text or "")

"""Server mode of the conformance kit against our own adapter, and against a broken stand-in.

The adapter has the WS-Security organisations of tests.conftest (2W-be-S and 2W-be-SE, the
signed answer as receipt) and two more on those profiles with the Afleverbevestiging in the
header, so the kit's WS-Security cases run with each one's certificate, and the unsigned
cases with the Gemeente's. The stand-in is a small WSGI app served over mutual TLS in the test: it
passes every request on to the real adapter and spoils some answers the way a leverancier's
endpoint might (no RelatesTo, an unsigned receipt, a wrong fault code, an unsigned ebMS
Acknowledgment on the osb-rm-s CPA the server fixture generates), while a relay on the
CPA's endpoint swallows the BerichtVerwerk results the adapter sends, so the result never
arrives.
"""

from __future__ import annotations

import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import requests
from lxml import etree

from adapter.cli import main
from adapter.ebms.security import DS
from adapter.kit.client import MtlsClient
from adapter.kit.conformance.model import Report, Status
from adapter.kit.conformance.probe import Inbox, Target, WssSide
from adapter.kit.conformance.probe import TestData as KitData
from adapter.kit.conformance.reports import html_report, junit_xml
from adapter.kit.conformance.server_mode import (
    MATRIX,
    SIGNED,
    SIGNED_CPA_HINT,
    SIGNING,
    run_case,
    run_matrix,
    select,
)
from adapter.kit.receiver import ACKNOWLEDGE, EbmsReceiver, ReceivedMessage, Reply, server_context
from adapter.kit.sender import SignedChannel
from adapter.pki.devca import DEV_P12_PASSWORD, OrganisationSubject, issue_client
from adapter.soap.envelope import SOAP_ENV
from tests.conftest import (
    GEMEENTE,
    ROOT,
    SEALED,
    ClientCert,
    Pki,
    Server,
    add_wss_organisations,
    free_port,
    run_cli,
    running_server,
)
from tests.conftest import SIGNED as SIGNED_OIN
from tests.ebms_helpers import MIJNOVERHEID, generate_cpas

ARTIFACTS = ROOT / "var" / "test-artifacts" / "conformance"
WSS_CASES = {c.case_id for c in MATRIX if c.wus_profiles & SIGNED}
EBMS_SIGNED = {c.case_id for c in MATRIX if c.not_run == SIGNING}
# 2W-be-S and 2W-be-SE with the Afleverbevestiging in the header, as by default
HEADER_RECEIPTS = {"00000099000000006000": "2W-be-S", "00000099000000010000": "2W-be-SE"}
SIGNED_HEADER, SEALED_HEADER = HEADER_RECEIPTS
SIGNING_BSN = "999991000"  # subscribed to the four signing organisations


def _add_organisations(directory: Path) -> None:
    add_wss_organisations(directory)
    organisations = directory / "conf" / "organisations.toml"
    entries = "".join(
        f'\n[[organisation]]\noin = "{oin}"\nname = "Gemeente {profile} (header)"\n'
        f'services = ["ValidateAbonnementen"]\nbericht_types = ["BESLUIT"]\n'
        f'wus_profile = "{profile}"\n'
        for oin, profile in HEADER_RECEIPTS.items()
    )
    organisations.write_text(organisations.read_text(encoding="utf-8") + entries, encoding="utf-8")


@pytest.fixture(scope="module")
def server(
    pki: Pki, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """`dk-adapter serve` with the WS-Security organisations added."""

    def prepare(directory: Path) -> None:
        _add_organisations(directory)
        generate_cpas(directory, pki, {2: ("osb-rm-s", "mshSignalsOnly")})  # for --cpa

    directory = tmp_path_factory.mktemp("conformance")
    with running_server(pki, database_url, directory, prepare) as running:
        accounts = directory / "signing-accounts.csv"
        accounts.write_text(
            "bsn,active,email,subscriptions\n"
            f"{SIGNING_BSN},true,,{';'.join([SIGNED_OIN, SEALED, *HEADER_RECEIPTS])}\n",
            encoding="utf-8",
        )
        # In this process: a second interpreter start costs more than the import itself.
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("DATABASE_URL", database_url)  # as run_cli gives it
            command = ["--config", str(running.config), "accounts", "import", "--quiet"]
            assert main([*command, str(accounts)]) == 0
        yield running


@pytest.fixture(scope="module")
def signing_clients(pki: Pki, wss_clients: dict[str, ClientCert]) -> dict[str, ClientCert]:
    clients = dict(wss_clients)
    for oin, profile in HEADER_RECEIPTS.items():
        subject = OrganisationSubject(oin, f"Gemeente {profile} (header)", None)
        files = issue_client(pki.directory, subject, overwrite=True)
        clients[oin] = ClientCert(files.certificate, files.private_key)
    return clients


def test_server_mode_passes_against_our_adapter(server: Server, pki: Pki) -> None:
    """`dk-adapter conformance run`, as a leverancier runs it, with its three reports; with
    `--cpa` of the gemeente's osb-rm-s CPA, so the signed BerichtVerwerk case runs too."""
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
        "--cpa",
        str(signed_cpa(server)),
        "--junit",
        str(junit),
        "--html",
        str(page),
        config=server.config,
        database_url=server.database_url,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    not_run = len(WSS_CASES) + len(EBMS_SIGNED)
    passed = len(MATRIX) - not_run
    assert f"{passed} passed, 0 failed, {not_run} not run" in done.stdout
    assert "not run is not passed" in done.stdout
    suite = etree.parse(str(junit)).getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == (
        str(len(MATRIX)),
        "0",
        str(not_run),
    )
    skipped = _skipped(suite)
    assert set(skipped) == WSS_CASES | EBMS_SIGNED
    for case_id in WSS_CASES:
        assert "pass --wus-profile 2W-be-S" in skipped[case_id], skipped[case_id]
    for case_id in EBMS_SIGNED:
        assert skipped[case_id] == f"{SIGNING} (not required)"
    assert "CONFORMANT for the cases run" in page.read_text(encoding="utf-8")


def signed_cpa(server: Server) -> Path:
    """The osb-rm-s CPA the server fixture generated for the gemeente."""
    return server.config.parent.parent / "cpa" / "osb-rm-s.xml"


def test_the_signed_ebms_case_is_not_run_without_a_signed_cpa(server: Server, pki: Pki) -> None:
    """Without `--cpa` the osb-rm-s case says what to pass, and with an unsigned CPA that it
    is not osb-rm-s; neither is a failure (nothing is sent)."""
    (case,) = select("ebms", ["ebms.berichtverwerk.osb-rm-s"])
    client = pki.clients[GEMEENTE]
    unsigned = next(signed_cpa(server).parent.glob(f"*_{GEMEENTE}_*_1.xml"))
    with MtlsClient(client.certificate, client.key, pki.root) as mtls:
        target = Target(server.url, mtls, pki.root, None)
        results = [run_case(case, target)]
        target.signed_ebms = SignedChannel.of_client(unsigned, MIJNOVERHEID, mtls)
        results.append(run_case(case, target))
    assert [(r.status, r.required) for r in results] == [(Status.NOT_RUN, False)] * 2
    assert results[0].reason == f"not run: {SIGNED_CPA_HINT}"
    assert results[1].reason is not None and "is not osb-rm-s; pass --cpa FILE" in results[1].reason


def _skipped(suite: etree._Element) -> dict[str, str]:
    """Case id → the message of its JUnit `skipped` element, for the cases not run."""
    return {
        str(case.get("name")): str(skipped.get("message"))
        for case in suite.iter("testcase")
        if (skipped := case.find("skipped")) is not None
    }


def test_server_mode_runs_the_ws_security_cases_for_a_2w_be_s_organisation(
    server: Server,
    pki: Pki,
    signing_clients: dict[str, ClientCert],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--wus-profile 2W-be-S`: a signed ValidateAbonnementen is answered signed and confirmed,
    and the unsigned, wrapped and stale requests get their wsse faults; the unsigned cases
    are not run for this organisation, and do not fail the run."""
    client = signing_clients[SIGNED_OIN]
    junit = ARTIFACTS / f"wss-{server.database_url.partition(':')[0]}.xml"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # `dk-adapter conformance run` in this process (the interpreter start is tested above).
    status = main(
        [
            "conformance",
            "run",
            "--target",
            server.url,
            "--profile",
            "wus",
            "--p12",
            str(client.certificate),
            "--key",
            str(client.key),
            "--ca",
            str(pki.root),
            "--wus-profile",
            "2W-be-S",
            "--receipt",
            "wsse",
            "--wss-certificate",
            str(pki.files.server),
            "--bsn-subscribed",
            SIGNING_BSN,
            "--junit",
            str(junit),
        ]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    wus_cases = [c for c in MATRIX if c.group == "wus"]
    ran = {"wus.validate-abonnementen.2w-be-s", *(c for c in WSS_CASES if ".fault." in c)}
    assert f"{len(ran)} passed, 0 failed, {len(wus_cases) - len(ran)} not run" in out
    skipped = _skipped(etree.parse(str(junit)).getroot())
    assert {c.case_id for c in wus_cases} - set(skipped) == ran
    reasons = set(skipped.values())
    assert any("uses 2W-be-S, which refuses this case's unsigned request" in r for r in reasons)


def test_2w_be_se_without_the_targets_certificate_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Requests cannot be encrypted without the target's certificate: exit 2, saying so,
    before any connection is made."""
    argv = ["conformance", "run", "--target", "https://127.0.0.1:9", "--p12", "none.p12"]
    assert main([*argv, "--wus-profile", "2W-be-SE"]) == 2
    assert "--wus-profile 2W-be-SE needs --wss-certificate" in capsys.readouterr().out


def _wss_report(server: Server, pki: Pki, client: ClientCert, profile: str, receipt: str) -> Report:
    side = WssSide.of_client(
        profile, client.certificate, client.key, pki.root, pki.files.server, receipt
    )
    cases = [c for c in select("wus") if profile in c.wus_profiles]
    with MtlsClient(client.certificate, client.key, pki.root) as mtls:
        target = Target(server.url, mtls, pki.root, None, data=KitData(SIGNING_BSN), wss=side)
        return run_matrix(cases, target)


@pytest.mark.parametrize(
    ("oin", "profile", "receipt"),
    [
        (SEALED, "2W-be-SE", "wsse"),
        (SIGNED_HEADER, "2W-be-S", "header"),
        (SEALED_HEADER, "2W-be-SE", "header"),
    ],
)
def test_the_ws_security_cases_pass_encrypted_and_with_the_receipt_in_the_header(
    server: Server,
    pki: Pki,
    signing_clients: dict[str, ClientCert],
    oin: str,
    profile: str,
    receipt: str,
) -> None:
    report = _wss_report(server, pki, signing_clients[oin], profile, receipt)
    assert {r.case_id: r.status for r in report.results} == {
        f"wus.validate-abonnementen.{profile.lower()}": Status.PASSED,
        **{c: Status.PASSED for c in WSS_CASES if ".fault." in c},
    }, [(r.case_id, r.findings) for r in report.results if r.findings]


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
    if path == "/berichtenbox/ebms" and body.lstrip().startswith(b"<"):
        envelope = etree.fromstring(body)  # an unsigned Acknowledgment (or other MSH answer)
        for signature in envelope.findall(f"{{{SOAP_ENV}}}Header/{{{DS}}}Signature"):
            envelope[0].remove(signature)
        body = etree.tostring(envelope)
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
    "ebms.berichtverwerk.osb-rm-s": "the Acknowledgment's signature does not hold: ",
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
        target.signed_ebms = SignedChannel.of_client(signed_cpa(server), MIJNOVERHEID, mtls)
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

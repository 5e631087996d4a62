"""Client mode of the conformance kit: a correct client passes, broken requests get findings.

The listener runs in the test process (`Listener`, as `dk-adapter conformance listen` runs
it) over real mutual TLS with the real adapter app behind the grader, on SQLite and on
PostgreSQL. The correct client is zeep on our WSDLs and the kit's own ebMS sender; the
organisation's CPA endpoint is an EbmsReceiver, which must get the BerichtVerwerk result
from the listener as it would from the real service. The WS-Security organisations of
tests.conftest (2W-be-S, 2W-be-SE) sign with tests.wss_helpers, another implementation than
the one the grader and the service verify with.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from cryptography import x509
from lxml import etree
from zeep import Client
from zeep.transports import Transport

from adapter.config import load_config
from adapter.ebms.message import Route, business_message
from adapter.ebms.mime import build_package
from adapter.kit.client import MtlsClient
from adapter.kit.conformance import client_checks as rules
from adapter.kit.conformance.client_mode import Listener
from adapter.kit.conformance.model import CaseResult, Status
from adapter.kit.receiver import EbmsReceiver
from adapter.kit.sender import BerichtSpec, build_batch, deliver
from adapter.soap.envelope import envelope_of
from adapter.soap.wssecurity import WssCredentials, decrypt_body
from tests.conftest import (
    GEMEENTE,
    SEALED,
    SIGNED,
    ClientCert,
    Pki,
    add_wss_organisations,
    free_port,
    import_example_accounts,
    write_config,
)
from tests.ebms_helpers import MIJNOVERHEID, NOT_SUBSCRIBED, SUBSCRIBED, cpa_id
from tests.helpers import wait_until
from tests.pdf_samples import good_pdf
from tests.soap_helpers import aanvraag, addressing
from tests.wss_helpers import ALL_PARTS, encrypt_body, sign_request, signature_value, verify_answer

SERVICE = "urn:osb:services:MIJNOVERHEID.ebMS.BB.2.0"
ACTION = "http://schemas.rdw.nl/GEB/BerichtenboxValidatieService/2009/01/IBerichtenboxValidatieService/ValidateAbonnementen"


@dataclass
class Graded:
    listener: Listener
    url: str
    pki: Pki
    organisation_endpoint: EbmsReceiver

    def last(self) -> CaseResult:
        return self.listener.report.results[-1]


@pytest.fixture(scope="module")
def graded(
    pki: Pki, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Graded]:
    directory = tmp_path_factory.mktemp("listen")
    port, peer_port = free_port(), free_port()
    config_file = write_config(directory, pki, database_url, port, peer_port)
    add_wss_organisations(directory)
    import_example_accounts(config_file, database_url)
    config = load_config(config_file, {"DATABASE_URL": database_url})
    client = pki.clients[GEMEENTE]
    with (
        EbmsReceiver(
            "127.0.0.1", peer_port, client.certificate, client.key, pki.root
        ) as organisation_endpoint,
        Listener(config, "127.0.0.1", port) as listener,
    ):
        yield Graded(listener, f"https://127.0.0.1:{port}", pki, organisation_endpoint)


def _session(pki: Pki) -> requests.Session:
    session = requests.Session()
    session.cert = pki.clients[GEMEENTE].pair
    session.verify = str(pki.root)
    session.trust_env = False
    return session


def test_zeep_on_our_wsdl_is_graded_as_passing(graded: Graded) -> None:
    client = Client(
        f"{graded.url}/abonnementen?wsdl", transport=Transport(session=_session(graded.pki))
    )
    answer = client.service.ValidateAbonnementen(
        {
            "berichtleverancierCode": GEMEENTE,
            "berichtTypeCode": "BESLUIT",
            "klanten": {"Klant": [{"Key": SUBSCRIBED, "Rol": "Burger"}]},
        }
    )
    assert answer[0]["isBerichtSturen"] is True
    result = graded.last()
    assert result.status is Status.PASSED, result.findings
    assert result.errors == ()


def test_zeep_lopende_zaken_is_graded_as_passing(graded: Graded) -> None:
    client = Client(
        f"{graded.url}/lopende-zaken?wsdl", transport=Transport(session=_session(graded.pki))
    )
    client.service.ZaakAanleveren(
        {
            "identificatie": f"lz-{uuid.uuid4().hex[:8]}",
            "omschrijving": "Vergunning",
            "startdatum": datetime.now(UTC).date(),
            "initiator": {"bsn": SUBSCRIBED},
            "status": {
                "omschrijving": "Ontvangen",
                "datumStatusGezet": datetime.now(UTC).replace(microsecond=0),
            },
        }
    )
    result = graded.last()
    assert result.status is Status.PASSED, result.findings
    assert all(f.severity == "warning" for f in result.findings)


def test_the_kit_sender_is_graded_as_passing_and_gets_its_result(graded: Graded) -> None:
    client = graded.pki.clients[GEMEENTE]
    batch = build_batch(GEMEENTE, [BerichtSpec(SUBSCRIBED, "BESLUIT", "Uw besluit")])
    with MtlsClient(client.certificate, client.key, graded.pki.root) as mtls:
        delivery = deliver(mtls, f"{graded.url}/berichtenbox/ebms", MIJNOVERHEID, None, batch, [])
    assert delivery.error is None and delivery.http_status == 200
    result = graded.last()
    assert result.status is Status.PASSED, result.findings
    assert result.title.startswith("GLOBE-R-BV-Request")
    # The real service behind the grader sends the result to the CPA's endpoint.
    received = []
    wait_until(
        lambda: received.append(graded.organisation_endpoint.received.get(timeout=30)) or True
    )
    assert received[0].header.action == "GLOBE-R-BV-Result"
    assert received[0].header.ref_to_message_id == delivery.message_id


# --- broken requests ---------------------------------------------------------------------


def _wus(graded: Graded, body: bytes, soap_action: str | None = f'"{ACTION}"') -> None:
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    if soap_action is not None:
        headers["SOAPAction"] = soap_action
    _session(graded.pki).post(f"{graded.url}/abonnementen", data=body, headers=headers, timeout=30)


def _ebms(
    graded: Graded,
    payload: bytes,
    *,
    edit: Callable[[bytes], bytes] = lambda soap: soap,
    manifest: str = "batch@test",
    soap_action: str = '"ebXML"',
    parts: list[tuple[str, str, bytes]] | None = None,
) -> None:
    route = Route(
        cpa_id(GEMEENTE),
        str(uuid.uuid4()),
        GEMEENTE,
        "SR",
        MIJNOVERHEID,
        "SP",
        SERVICE,
        "urn:osb:services",
        "GLOBE-R-BV-Request",
    )
    _, soap = business_message(route, datetime.now(UTC), None, [manifest])
    content_type, body = build_package(
        edit(soap), parts or [("batch@test", "text/xml; charset=UTF-8", payload)]
    )
    _session(graded.pki).post(
        f"{graded.url}/berichtenbox/ebms",
        data=body,
        headers={"Content-Type": content_type, "SOAPAction": soap_action},
        timeout=60,
    )


def _letter(**fields: object) -> bytes:
    spec = BerichtSpec(
        str(fields.get("bsn", SUBSCRIBED)),
        "BESLUIT",
        "Onderwerp",
        bijlagen=fields.get("bijlagen", ()),  # type: ignore[arg-type]
    )
    return build_batch(
        str(fields.get("leverancier", GEMEENTE)),
        [spec],
        datetime.now(UTC) - timedelta(days=int(fields.get("age_days", 0))),  # type: ignore[call-overload]
    )


def _strip(*names: str) -> Callable[[bytes], bytes]:
    def edit(soap: bytes) -> bytes:
        envelope = etree.fromstring(soap)
        for element in list(envelope.iter(*(f"{{*}}{n}" for n in names))):
            element.getparent().remove(element)  # type: ignore[union-attr]
        return etree.tostring(envelope)

    return edit


BAD_BSN = SUBSCRIBED[:8] + str((int(SUBSCRIBED[8]) + 1) % 10)
MESSAGE_ID = f"urn:uuid:{uuid.uuid4()}"
BROKEN: dict[str, tuple[Callable[[Graded], None], tuple[str, str], str]] = {
    "wrong SOAPAction": (
        lambda g: _wus(g, aanvraag([SUBSCRIBED], GEMEENTE), '"urn:verkeerd"'),
        rules.R_SOAP_ACTION,
        "(0003)",
    ),
    "no SOAPAction header": (
        lambda g: _wus(g, aanvraag([SUBSCRIBED], GEMEENTE), None),
        rules.R_SOAP_ACTION,
        "SOAPAction header is missing",
    ),
    "WS-A without To": (
        lambda g: _wus(g, aanvraag([SUBSCRIBED], GEMEENTE, headers=addressing(""))),
        rules.R_WSA,
        "wsa:To is missing",
    ),
    "another organisation's OIN in the request": (
        lambda g: _wus(g, aanvraag([SUBSCRIBED], "00000099000000001000")),
        rules.R_IDENTITY,
        "berichtleverancierCode 00000099000000001000",
    ),
    "a BSN failing the elfproef": (
        lambda g: _wus(g, aanvraag([BAD_BSN], GEMEENTE)),
        rules.R_BSN,
        "fails the elfproef",
    ),
    "a payload failing the XSD": (
        lambda g: _wus(g, aanvraag([SUBSCRIBED], GEMEENTE).replace(b">Burger<", b">Bedrijf<")),
        rules.R_XSD,
        "not valid against",
    ),
    "a wsa:MessageID reused for another request": (
        lambda g: (
            [
                _wus(
                    g,
                    aanvraag(
                        [bsn], GEMEENTE, headers=addressing(f"{g.url}/abonnementen", MESSAGE_ID)
                    ),
                )
                for bsn in (SUBSCRIBED, NOT_SUBSCRIBED)
            ]
            and None
        ),
        rules.R_DUPLICATE,
        "used before for a different message",
    ),
    "ebMS with a SOAPAction other than ebXML": (
        lambda g: _ebms(g, _letter(), soap_action='"urn:iets"'),
        rules.R_EBMS_SOAP_ACTION,
        'not "ebXML"',
    ),
    "ebMS osb-rm without AckRequested": (
        lambda g: _ebms(g, _letter(), edit=_strip("AckRequested")),
        rules.R_RELIABILITY,
        "no eb:AckRequested",
    ),
    "ebMS osb-rm without DuplicateElimination": (
        lambda g: _ebms(g, _letter(), edit=_strip("DuplicateElimination")),
        rules.R_RELIABILITY,
        "no eb:DuplicateElimination",
    ),
    "ebMS with an unknown CPAId": (
        lambda g: _ebms(g, _letter(), edit=lambda s: s.replace(cpa_id(GEMEENTE).encode(), b"X")),
        rules.R_HEADER,
        "ValueNotRecognized",
    ),
    "ebMS Manifest naming a part that is not there": (
        lambda g: _ebms(g, _letter(), manifest="weg@test"),
        rules.R_MANIFEST,
        "MimeProblem",
    ),
    "a batch with another BerichtLeverancierID": (
        lambda g: _ebms(g, _letter(leverancier="00000099000000001000")),
        rules.R_BATCH,
        "BerichtLeverancierID 00000099000000001000",
    ),
    "a letter to a BSN failing the elfproef": (
        lambda g: _ebms(g, _letter(bsn=BAD_BSN)),
        rules.R_BSN,
        "GebruikerID fails the elfproef",
    ),
    "a batch created 14 days ago": (
        lambda g: _ebms(g, _letter(age_days=14)),
        rules.R_DATE,
        "more than 13 days ago",
    ),
    "an attachment that is no PDF": (
        lambda g: _ebms(g, _letter(bijlagen=[("brief.pdf", b"geen pdf")])),
        rules.R_ATTACHMENT,
        "is geen PDF",
    ),
    "personal attachments over 500 KiB": (
        lambda g: _ebms(
            g,
            _letter(
                bijlagen=[("a.pdf", good_pdf(b"x" * 300_000)), ("b.pdf", good_pdf(b"y" * 300_000))]
            ),
        ),
        rules.R_ATTACHMENT,
        "over 512000",
    ),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_broken_request_is_graded_with_the_rule_it_breaks(graded: Graded, name: str) -> None:
    send, rule, text = BROKEN[name]
    send(graded)
    result = graded.last()
    assert result.status is Status.FAILED
    matching = [f for f in result.errors if f.rule == rule[0] and text in f.message]
    assert matching, [(f.rule, f.message) for f in result.findings]
    assert matching[0].fix == rule[1]
    # What went over the wire is kept for the report.
    assert result.exchanges[0].request and result.exchanges[0].response


def test_a_refusal_of_the_real_service_is_a_finding_too(graded: Graded) -> None:
    _wus(graded, aanvraag([SUBSCRIBED], GEMEENTE), '"urn:verkeerd"')
    answers = [f for f in graded.last().errors if f.rule == rules.R_ANSWER[0]]
    assert len(answers) == 1 and "0003" in answers[0].message


# --- WS-Security (2W-be-S, 2W-be-SE) ---------------------------------------------------------


def _signed_request(
    graded: Graded, client: ClientCert, oin: str, parts: Sequence[str] = ALL_PARTS
) -> tuple[bytes, requests.Response]:
    """A ValidateAbonnementen with WS-A signed by the organisation's client (tests.wss_helpers,
    another implementation than the service's), encrypted for the service under 2W-be-SE."""
    headers = addressing(f"{graded.url}/abonnementen", message_id=f"urn:uuid:{uuid.uuid4()}")
    certificate = x509.load_pem_x509_certificates(client.certificate.read_bytes())[0]
    signed = sign_request(
        aanvraag([SUBSCRIBED], oin, headers=headers),
        client.key.read_bytes(),
        certificate,
        parts=parts,
    )
    wire = signed
    if oin == SEALED:
        server = x509.load_pem_x509_certificates(graded.pki.files.server.read_bytes())[0]
        wire = encrypt_body(signed, server)
    response = requests.post(
        f"{graded.url}/abonnementen",
        data=wire,
        headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{ACTION}"'},
        cert=client.pair,
        verify=str(graded.pki.root),
        timeout=30,
    )
    return signed, response


@pytest.mark.parametrize("oin", [SIGNED, SEALED])
def test_a_signed_request_is_graded_as_passing_and_answered_signed(
    graded: Graded, wss_clients: dict[str, ClientCert], oin: str
) -> None:
    signed, response = _signed_request(graded, wss_clients[oin], oin)
    assert response.status_code == 200, response.text
    result = graded.last()
    assert result.status is Status.PASSED, result.findings
    document = etree.fromstring(response.content)
    if oin == SEALED:
        client = wss_clients[oin]
        credentials = WssCredentials.from_files(client.key, client.certificate)
        document = decrypt_body(envelope_of(document), credentials).root
    server = x509.load_pem_x509_certificates(graded.pki.files.server.read_bytes())[0]
    assert verify_answer(document, server) == signature_value(signed)


def test_a_signature_leaving_the_body_unsigned_is_graded_with_the_wss_rule(
    graded: Graded, wss_clients: dict[str, ClientCert]
) -> None:
    parts = [p for p in ALL_PARTS if p != "Body"]
    _signed, response = _signed_request(graded, wss_clients[SIGNED], SIGNED, parts)
    assert response.status_code == 500
    result = graded.last()
    assert result.status is Status.FAILED
    wss = [f for f in result.errors if f.rule == rules.R_WSS[0]]
    assert len(wss) == 1 and "wsse:FailedCheck soap:Body is niet ondertekend" in wss[0].message
    assert not [f for f in result.findings if f.rule == rules.R_HEADERS[0]]


def test_a_pdf_without_pdfa_declaration_is_a_warning_not_a_failure(graded: Graded) -> None:
    _ebms(graded, _letter(bijlagen=[("brief.pdf", good_pdf())]))
    result = graded.last()
    assert result.status is Status.PASSED, result.findings
    assert [f.rule for f in result.findings if f.severity == "warning"] == [rules.R_PDFA[0]]


def test_the_html_report_of_the_session_holds_every_request(graded: Graded, tmp_path: Path) -> None:
    from adapter.kit.conformance.reports import html_report, junit_xml

    report = graded.listener.report
    suite = etree.fromstring(junit_xml(report))
    assert int(suite.get("tests") or 0) == len(report.results)
    assert int(suite.get("failures") or 0) == report.count(Status.FAILED) > 0
    assert report.exit_status() == 1
    page = html_report(report)
    assert page.count("<tr><td>request-") == len(report.results)


def test_conformance_listen_grades_and_reports_until_interrupted(
    graded: Graded, database_url: str, tmp_path: Path
) -> None:
    """`dk-adapter conformance listen` as a leverancier runs it: Ctrl-C ends it with a report."""
    port = free_port()
    config = write_config(tmp_path, graded.pki, database_url, port)
    page = tmp_path / "client.html"
    env = {**os.environ, "DATABASE_URL": database_url}
    command = [sys.executable, "-m", "adapter.cli", "--config", str(config)]
    listen = subprocess.Popen(
        [*command, "conformance", "listen", "--port", str(port), "--html", str(page)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: _listening(port), timeout=60)
        body = aanvraag(
            [SUBSCRIBED], GEMEENTE, headers=addressing(f"https://127.0.0.1:{port}/abonnementen")
        )
        answer = _session(graded.pki).post(
            f"https://127.0.0.1:{port}/abonnementen",
            data=body,
            headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{ACTION}"'},
            timeout=30,
        )
        assert answer.status_code == 200
    finally:
        listen.send_signal(signal.SIGINT)
        output, _ = listen.communicate(timeout=60)
    assert listen.returncode == 0, output
    assert "PASSED  ValidateAbonnementen on /abonnementen" in output
    assert "1 passed, 0 failed, 0 not run" in output
    assert "request-001" in page.read_text(encoding="utf-8")


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False

"""A new leverancier's first hour, as README leads them: the kit's commands, the shipped
samples in examples/, and faults that say why, against a real server over mutual TLS.

What a leverancier runs is run here as they would: `dk-adapter` as a subprocess (with the
host's time zone set through TZ), curl with the sample files, xmlsec1 on the saved wire
messages.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
from lxml import etree
from sqlalchemy import text

from adapter.berichtenbox.abonnementen import ACTION as VALIDATE_ACTION
from adapter.soap.schema import SchemaSet
from tests.conftest import BELASTINGDIENST, GEMEENTE, ROOT, STRIKT, Pki, Server
from tests.soap_helpers import aanvraag, addressing, fault_of, post

EXAMPLES = ROOT / "examples"
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
EB = "http://www.oasis-open.org/committees/ebxml-msg/schema/msg-header-2_0.xsd"


def dk_adapter(
    server: Server, *args: str, tz: str = "UTC", cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """The real CLI in a process of its own, on a host whose time zone is `tz`."""
    env = {**os.environ, "DATABASE_URL": server.database_url, "TZ": tz}
    return subprocess.run(
        [sys.executable, "-m", "adapter.cli", "--config", str(server.config), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def as_organisation(server: Server, pki: Pki, oin: str, endpoint: str) -> list[str]:
    return [
        "--endpoint",
        f"{server.url}{endpoint}",
        "--cert",
        str(pki.files.clients[oin].pkcs12),
        "--password",
        "changeit",
        "--ca",
        str(pki.root),
    ]


def xmlsec1_verifies(file: Path, root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *("xmlsec1", "--verify", "--trusted-pem", str(root)),
            *("--id-attr:Id", "Afleverbevestiging", str(file)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def curl(pki: Pki, oin: str, url: str, data: Path, *headers: str) -> bytes:
    client = pki.clients[oin]
    command = ["curl", "-s", "--cacert", str(pki.root), "--cert", str(client.certificate)]
    command += ["--key", str(client.key), "--data-binary", f"@{data}", url]
    for header in headers:
        command += ["-H", header]
    done = subprocess.run(command, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def as_utc(value: object) -> datetime:
    """A timestamp column as read back from SQLite (text) or PostgreSQL (datetime)."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(moment, datetime)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- send-zaak: "now" is now -------------------------------------------------------------------


@pytest.mark.parametrize("tz", ["UTC", "Europe/Amsterdam"])
def test_send_zaak_without_a_moment_stores_the_status_as_set_now_in_any_host_time_zone(
    server: Server, pki: Pki, tz: str
) -> None:
    identificatie = f"Z-TZ-{uuid.uuid4().hex[:8]}"
    started = datetime.now(UTC).replace(microsecond=0)
    done = dk_adapter(
        server,
        "send-zaak",
        *as_organisation(server, pki, GEMEENTE, "/lopende-zaken"),
        "--identificatie",
        identificatie,
        "--omschrijving",
        "Tijdzonetest",
        "--bsn",
        "999993653",
        "--status",
        "Aanvraag ontvangen",
        tz=tz,
    )
    finished = datetime.now(UTC)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"ACCEPTED: zaak {identificatie}")
    with server.engine.connect() as conn:
        stored, startdatum = conn.execute(
            text(
                "SELECT s.datum_status_gezet, z.startdatum FROM zaak_statussen s "
                "JOIN zaken z ON z.id = s.zaak_id WHERE z.identificatie = :identificatie"
            ),
            {"identificatie": identificatie},
        ).one()
    assert started <= as_utc(stored) <= finished
    dutch_days = {started.astimezone(AMSTERDAM).date(), finished.astimezone(AMSTERDAM).date()}
    assert str(startdatum)[:10] in {day.isoformat() for day in dutch_days}


# --- faults that say why ------------------------------------------------------------------------


def test_a_missing_soapaction_is_refused_with_the_values_that_are_accepted(
    server: Server, pki: Pki
) -> None:
    response = post(
        f"{server.url}/abonnementen",
        aanvraag(["999993653"], GEMEENTE),
        pki.clients[GEMEENTE].pair,
        pki.root,
        soap_action=None,
    )
    assert response.status_code == 500
    assert fault_of(response)[1] == (
        "0003 Invalide soapaction: de HTTP-header SOAPAction ontbreekt; "
        f'toegestaan voor ValidateAbonnementen: "" of "{VALIDATE_ACTION}"'
    )
    assert b"None" not in response.content  # neither in the fault nor in the receipt


def test_a_wrong_soapaction_is_refused_naming_it_and_the_values_that_are_accepted(
    server: Server, pki: Pki
) -> None:
    response = post(
        f"{server.url}/abonnementen",
        aanvraag(["999993653"], GEMEENTE),
        pki.clients[GEMEENTE].pair,
        pki.root,
        soap_action='"urn:iets-anders"',
    )
    assert fault_of(response)[1] == (
        '0003 Invalide soapaction: SOAPAction "urn:iets-anders" is onbekend; '
        f'toegestaan voor ValidateAbonnementen: "" of "{VALIDATE_ACTION}"'
    )


@pytest.mark.parametrize(
    ("headers", "faultstring"),
    [
        (
            "",
            "0005 WS-Addressing header To ontbreekt: deze organisatie moet WS-Addressing sturen "
            "(Digikoppeling 2W-be): wsa:To, wsa:Action en wsa:MessageID",
        ),
        (
            addressing(to="https://127.0.0.1/abonnementen", action=""),
            f"0006 WS-Addressing header Action ontbreekt: wsa:Action ontbreekt; verwacht "
            f"{VALIDATE_ACTION}",
        ),
        (
            addressing(to="https://127.0.0.1/abonnementen", message_id=""),
            "0007 WS-Addressing header MessageID ontbreekt: wsa:MessageID ontbreekt; geef elk "
            "verzoek een eigen, bijvoorbeeld urn:uuid:…",
        ),
    ],
    ids=["0005", "0006", "0007"],
)
def test_ws_addressing_faults_say_what_is_missing_and_what_is_expected(
    server: Server, pki: Pki, headers: str, faultstring: str
) -> None:
    response = post(
        f"{server.url}/abonnementen",
        aanvraag(["999993653"], STRIKT, headers=headers),
        pki.clients[STRIKT].pair,
        pki.root,
    )
    assert fault_of(response)[:2] == ("s:Client", faultstring)


def test_send_zaak_prints_why_an_organisation_is_not_authorised(
    server: Server, pki: Pki, tmp_path: Path
) -> None:
    done = dk_adapter(
        server,
        "send-zaak",
        *as_organisation(server, pki, BELASTINGDIENST, "/lopende-zaken"),
        "--identificatie",
        "Z-NIET-AANGESLOTEN",
        "--omschrijving",
        "Geen LopendeZaken",
        "--bsn",
        "999993653",
    )
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == (
        "REFUSED (HTTP 500): 0002 Niet geautoriseerd: "
        "Belastingdienst (test) is niet aangesloten op LopendeZaken"
    )
    assert "receipt " in done.stdout and " verifies (signed by" in done.stdout


def test_a_certificate_whose_oin_is_not_configured_is_told_so_in_the_fault(
    server: Server, pki: Pki
) -> None:
    response = post(
        f"{server.url}/abonnementen",
        aanvraag(["999993653"], GEMEENTE),
        pki.unknown_oin.pair,
        pki.root,
    )
    assert fault_of(response)[1] == (
        "0002 Niet geautoriseerd: OIN 00000099000000009000 is niet aangesloten"
    )


def test_an_ebms_message_without_soapaction_is_refused_saying_ebms_requires_ebxml(
    server: Server, pki: Pki
) -> None:
    content_type = (EXAMPLES / "berichtverwerk-ebms.content-type").read_text().strip()
    body = (EXAMPLES / "berichtverwerk-ebms.mime").read_bytes()
    body = body.replace(b"voorbeeld-bv-0001@", b"voorbeeld-zonder-soapaction@")
    response = requests.post(
        f"{server.url}/berichtenbox/ebms",
        data=body,
        headers={"Content-Type": content_type},
        cert=pki.clients[GEMEENTE].pair,
        verify=str(pki.root),
        timeout=30,
    )
    error = etree.fromstring(response.content).find(f".//{{{EB}}}Error")
    assert error is not None, response.text
    assert error.get(f"{{{EB}}}errorCode") == "OtherXml"
    assert error.findtext(f"{{{EB}}}Description") == (
        'de HTTP-header SOAPAction ontbreekt; ebMS vereist "ebXML"'
    )


# --- the samples in examples/ -------------------------------------------------------------------


def test_the_sample_batch_is_valid_against_the_logius_schema_as_shipped() -> None:
    batch = etree.fromstring((EXAMPLES / "berichten-batch.xml").read_bytes())
    SchemaSet(ROOT / "xsd").validate(batch, "GLOBEBatchRequest.xsd")


def test_the_sample_batch_is_delivered_and_each_refused_letter_says_why(
    server: Server, pki: Pki, tmp_path: Path
) -> None:
    saved = tmp_path / "wire"
    done = dk_adapter(
        server,
        "send",
        *as_organisation(server, pki, GEMEENTE, "/berichtenbox/ebms"),
        "--batch",
        str(EXAMPLES / "berichten-batch.xml"),
        "--fresh",
        "--receive-on",
        f"127.0.0.1:{server.peer_port}",
        "--timeout",
        "60",
        "--save",
        str(saved),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Acknowledgment received" in done.stdout
    assert "AantalBerichtenSuccesvolVerwerkt: 1" in done.stdout
    assert "AantalBerichtenGeenActieveBoxOfGeabonneertOpLeverancier: 2" in done.stdout
    # In the Acknowledgment's receipt and again in the result's.
    not_subscribed = "(de burger heeft geen abonnement op post van deze organisatie)"
    assert done.stdout.count(f"NietActiefOfGeabonneerd  {not_subscribed}") == 2
    assert (
        done.stdout.count(
            "NietActiefOfGeabonneerd  (de Berichtenbox van dit BSN is niet geactiveerd)"
        )
        == 2
    )
    assert {p.name for p in saved.iterdir()} == {
        "request.mime",
        "request.content-type",
        "request.xml",
        "response.xml",
        "result.mime",
        "result.content-type",
        "result.xml",
    }
    for answer in ("response.xml", "result.xml"):
        checked = xmlsec1_verifies(saved / answer, pki.root)
        assert checked.returncode == 0, checked.stderr
        assert "OK" in checked.stdout + checked.stderr


def test_the_raw_ebms_sample_is_acknowledged_with_a_receipt_xmlsec1_verifies(
    server: Server, pki: Pki, tmp_path: Path
) -> None:
    content_type = (EXAMPLES / "berichtverwerk-ebms.content-type").read_text().strip()
    answer = curl(
        pki,
        GEMEENTE,
        f"{server.url}/berichtenbox/ebms",
        EXAMPLES / "berichtverwerk-ebms.mime",
        f"Content-Type: {content_type}",
        'SOAPAction: "ebXML"',
    )
    document = etree.fromstring(answer)
    assert document.find(f".//{{{EB}}}Acknowledgment") is not None, answer
    assert document.find(f".//{{{EB}}}ErrorList") is None
    file = tmp_path / "acknowledgment.xml"
    file.write_bytes(answer)
    checked = xmlsec1_verifies(file, pki.root)
    assert checked.returncode == 0, checked.stderr


def test_the_stuf_sample_envelope_is_answered_with_bv01_and_a_receipt(
    server: Server, pki: Pki, tmp_path: Path
) -> None:
    answer = curl(
        pki,
        GEMEENTE,
        f"{server.url}/lopende-zaken/stuf",
        EXAMPLES / "zakLk01-soap.xml",
        "Content-Type: text/xml; charset=utf-8",
        'SOAPAction: ""',
    )
    document = etree.fromstring(answer)
    assert document.find(".//{http://www.egem.nl/StUF/StUF0301}Bv01Bericht") is not None, answer
    file = tmp_path / "bv01.xml"
    file.write_bytes(answer)
    checked = xmlsec1_verifies(file, pki.root)
    assert checked.returncode == 0, checked.stderr


def test_send_zaak_save_keeps_the_request_and_a_response_whose_receipt_xmlsec1_verifies(
    server: Server, pki: Pki, tmp_path: Path
) -> None:
    done = dk_adapter(
        server,
        "send-zaak",
        *as_organisation(server, pki, GEMEENTE, "/lopende-zaken"),
        "--identificatie",
        f"Z-SAVE-{uuid.uuid4().hex[:8]}",
        "--omschrijving",
        "Bewaren",
        "--bsn",
        "999993653",
        "--save",
        str(tmp_path / "wire"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    request = etree.fromstring((tmp_path / "wire" / "request.xml").read_bytes())
    assert request.find(".//{urn:mijnoverheid-adapter:lopende-zaken:1}ZaakAanleveren") is not None
    checked = xmlsec1_verifies(tmp_path / "wire" / "response.xml", pki.root)
    assert checked.returncode == 0, checked.stderr


# --- logs ----------------------------------------------------------------------------------------


def test_the_scheduler_does_not_log_a_line_per_outbox_run(server: Server) -> None:
    # By now the outbox has run many times (every 0.2 s) and delivered the results above.
    log = server.log.read_text()
    assert "scheduler started" in log
    assert "apscheduler.executors" not in log
    assert "Running job" not in log and "executed successfully" not in log

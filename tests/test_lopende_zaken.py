"""Lopende Zaken over our WUS service: zeep over real mutual TLS, SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from typing import Any

import pytest
from lxml import etree
from zeep import Client
from zeep.exceptions import Fault
from zeep.plugins import HistoryPlugin

from adapter.receipts import verify
from tests.conftest import BELASTINGDIENST, GEMEENTE, STRIKT, ZAAK_TABLES, Pki, Server, run_cli
from tests.soap_helpers import post, verify_with_libxmlsec, zeep_client

BSN = "999993653"


def client_for(server: Server, pki: Pki, oin: str) -> tuple[Client, HistoryPlugin]:
    return zeep_client(f"{server.url}/lopende-zaken?wsdl", pki.clients[oin].pair, pki.root)


@pytest.fixture(scope="module")
def gemeente(server: Server, pki: Pki) -> Client:
    return client_for(server, pki, GEMEENTE)[0]


def zaak(identificatie: str, **extra: Any) -> dict[str, Any]:
    return {
        "identificatie": identificatie,
        "omschrijving": "Aanvraag omgevingsvergunning",
        "toelichting": "Verbouwing Dorpsstraat 1",
        "zaaktype": {"code": "B1210", "omschrijving": "Omgevingsvergunning"},
        "startdatum": date(2026, 1, 10),
        "einddatumGepland": date(2026, 3, 1),
        "verwijzing": f"https://zaken.voorbeeldstad.example/zaak/{identificatie}",
        "initiator": {"bsn": BSN},
        **extra,
    }


def status(omschrijving: str, moment: str) -> dict[str, Any]:
    return {"omschrijving": omschrijving, "datumStatusGezet": datetime.fromisoformat(moment)}


def opgevraagd(client: Client, identificatie: str) -> Any:
    return next(
        z for z in client.service.ZakenOpvragen(bsn=BSN) if z.identificatie == identificatie
    )


def test_a_zaak_is_created_with_its_first_status_and_a_notification(
    gemeente: Client, server: Server
) -> None:
    before = server.count("notifications", f"bsn = '{BSN}'")
    answer = gemeente.service.ZaakAanleveren(
        zaak=zaak("Z-1", status=status("Aanvraag ontvangen", "2026-01-10T09:30:00"))
    )
    assert (answer.identificatie, answer.resultaat) == ("Z-1", "Aangemaakt")
    stored = opgevraagd(gemeente, "Z-1")
    assert stored.status.omschrijving == "Aanvraag ontvangen"
    # No offset means Dutch local time: 09:30 in January is 08:30 UTC.
    assert stored.status.datumStatusGezet == datetime(2026, 1, 10, 8, 30, tzinfo=UTC)
    assert stored.zaaktype.code == "B1210"
    assert server.count("notifications", f"bsn = '{BSN}'") == before + 1


def test_statuses_in_and_out_of_order_keep_history_and_the_latest_current(
    gemeente: Client, server: Server
) -> None:
    gemeente.service.ZaakAanleveren(
        zaak=zaak("Z-2", status=status("Ontvangen", "2026-01-10T09:00:00"))
    )
    newer = gemeente.service.StatusAanleveren(
        identificatie="Z-2", status=status("In behandeling", "2026-01-20T10:00:00")
    )
    assert newer.resultaat == "StatusToegevoegd"
    notifications = server.count("notifications")
    older = gemeente.service.StatusAanleveren(
        identificatie="Z-2", status=status("Aanvullende stukken", "2026-01-15T10:00:00")
    )
    assert older.resultaat == "StatusOuderDanHuidige"
    assert (
        server.count("notifications") == notifications
    )  # a status that is not current is not news
    stored = opgevraagd(gemeente, "Z-2")
    assert stored.status.omschrijving == "In behandeling"
    assert [s.omschrijving for s in stored.statushistorie.status] == [
        "Ontvangen",
        "In behandeling",
        "Aanvullende stukken",
    ]


def test_the_same_status_twice_is_stored_once(gemeente: Client, server: Server) -> None:
    gemeente.service.ZaakAanleveren(zaak=zaak("Z-3"))
    first = gemeente.service.StatusAanleveren(
        identificatie="Z-3", status=status("Besluit genomen", "2026-02-01T12:00:00")
    )
    before = server.counts(*ZAAK_TABLES)
    again = gemeente.service.StatusAanleveren(
        identificatie="Z-3", status=status("Besluit genomen", "2026-02-01T12:00:00")
    )
    assert (first.resultaat, again.resultaat) == ("StatusToegevoegd", "StatusAlBekend")
    assert server.counts(*ZAAK_TABLES) == before


def test_a_closed_zaak_stays_visible_and_takes_no_new_status(
    gemeente: Client, server: Server
) -> None:
    gemeente.service.ZaakAanleveren(
        zaak=zaak("Z-4", status=status("Ontvangen", "2026-01-10T09:00:00"))
    )
    closed = gemeente.service.ZaakAfsluiten(
        identificatie="Z-4", einddatum=date(2026, 2, 10), resultaatOmschrijving="Verleend"
    )
    assert closed.resultaat == "Afgesloten"
    assert (
        gemeente.service.ZaakAfsluiten(identificatie="Z-4", einddatum=date(2026, 2, 10)).resultaat
        == "Afgesloten"
    )
    stored = opgevraagd(gemeente, "Z-4")
    assert (stored.einddatum, stored.resultaat) == (date(2026, 2, 10), "Verleend")
    resent = gemeente.service.StatusAanleveren(
        identificatie="Z-4", status=status("Ontvangen", "2026-01-10T09:00:00")
    )
    assert resent.resultaat == "StatusAlBekend"
    with pytest.raises(Fault) as refused:
        gemeente.service.StatusAanleveren(
            identificatie="Z-4", status=status("Heropend", "2026-03-01T09:00:00")
        )
    assert refused.value.message == "LZ005 Zaak is afgesloten"


def zaak_afsluiten_envelope(identificatie: str, resultaat_elements: str) -> bytes:
    return f"""<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
<ZaakAfsluiten xmlns="urn:mijnoverheid-adapter:lopende-zaken:1">
<identificatie>{identificatie}</identificatie><einddatum>2026-02-10</einddatum>
{resultaat_elements}</ZaakAfsluiten></s:Body></s:Envelope>""".encode()


def test_zaakafsluiten_still_accepts_the_deprecated_name_resultaat(
    gemeente: Client, server: Server, pki: Pki
) -> None:
    """Callers of the first contract keep working while they move to resultaatOmschrijving."""
    gemeente.service.ZaakAanleveren(zaak=zaak("Z-OUD"))
    body = zaak_afsluiten_envelope("Z-OUD", "<resultaat>Verleend</resultaat>")
    response = post(f"{server.url}/lopende-zaken", body, pki.clients[GEMEENTE].pair, pki.root, '""')
    assert response.status_code == 200, response.text
    assert etree.fromstring(response.content).findtext(".//{*}resultaat") == "Afgesloten"
    stored = opgevraagd(gemeente, "Z-OUD")
    assert (stored.einddatum, stored.resultaat) == (date(2026, 2, 10), "Verleend")


def test_zaakafsluiten_with_both_the_new_and_the_deprecated_name_is_refused(
    gemeente: Client, server: Server, pki: Pki
) -> None:
    gemeente.service.ZaakAanleveren(zaak=zaak("Z-BEIDE"))
    before = server.counts(*ZAAK_TABLES)
    body = zaak_afsluiten_envelope(
        "Z-BEIDE",
        "<resultaatOmschrijving>Verleend</resultaatOmschrijving><resultaat>Geweigerd</resultaat>",
    )
    response = post(f"{server.url}/lopende-zaken", body, pki.clients[GEMEENTE].pair, pki.root, '""')
    assert response.status_code == 500
    fault = etree.fromstring(response.content)
    assert fault.findtext(".//{*}ApplicationFault/{*}Code") == "LZ001"
    assert "resultaatOmschrijving" in (fault.findtext(".//{*}ApplicationFault/{*}Message") or "")
    assert server.counts(*ZAAK_TABLES) == before
    assert opgevraagd(gemeente, "Z-BEIDE").einddatum is None


def test_another_organisation_can_neither_see_nor_change_a_zaak(
    gemeente: Client, server: Server, pki: Pki
) -> None:
    gemeente.service.ZaakAanleveren(zaak=zaak("Z-5"))
    other, _ = client_for(server, pki, STRIKT)
    assert other.service.ZakenOpvragen(bsn=BSN) == []
    before = server.counts(*ZAAK_TABLES)
    with pytest.raises(Fault) as refused:
        other.service.StatusAanleveren(
            identificatie="Z-5", status=status("Gekaapt", "2026-01-11T09:00:00")
        )
    assert refused.value.message == "LZ004 Zaak onbekend"
    assert server.counts(*ZAAK_TABLES) == before


def test_a_response_carries_a_receipt_that_verifies(server: Server, pki: Pki) -> None:
    client, history = client_for(server, pki, GEMEENTE)
    client.service.ZaakAanleveren(zaak=zaak("Z-6"))
    response = history.last_received["envelope"]
    verify_with_libxmlsec(response, pki.root)
    receipt = verify(response, pki.root).receipt
    assert (receipt.service, receipt.operation, receipt.outcome.accepted) == (
        "LopendeZaken",
        "ZaakAanleveren",
        True,
    )


@pytest.mark.parametrize(
    ("change", "faultstring", "code"),
    [
        ({"identificatie": ""}, "0004 Niet conform xsd", "LZ001"),
        ({"verwijzing": "http://zaken.example/1"}, "LZ003 Verwijzing is geen https-URL", "LZ003"),
        ({"initiator": {"bsn": "123456789"}}, "LZ002 BSN voldoet niet aan de elfproef", "LZ002"),
        ({"einddatum": date(2025, 12, 31)}, "LZ006 Einddatum ligt voor de startdatum", "LZ006"),
    ],
    ids=["missing-identificatie", "http-verwijzing", "bad-bsn", "einddatum-before-start"],
)
def test_bad_input_gets_its_code_and_nothing_is_stored(
    server: Server, pki: Pki, change: dict[str, Any], faultstring: str, code: str
) -> None:
    client, history = client_for(server, pki, GEMEENTE)
    before, refusals = (
        server.counts(*ZAAK_TABLES),
        server.count("receipts", "outcome = 'Geweigerd'"),
    )
    with pytest.raises(Fault) as refused:
        client.service.ZaakAanleveren(
            zaak={**zaak("Z-BAD", status=status("Ontvangen", "2026-01-10T09:00:00")), **change}
        )
    assert refused.value.message == faultstring
    assert refused.value.detail.find("{*}ApplicationFault/{*}Code").text == code
    verify_with_libxmlsec(history.last_received["envelope"], pki.root)
    assert server.counts(*ZAAK_TABLES) == before
    assert server.count("receipts", "outcome = 'Geweigerd'") == refusals + 1


def test_an_organisation_without_the_lopende_zaken_grant_is_refused(
    server: Server, pki: Pki
) -> None:
    client, _ = client_for(server, pki, BELASTINGDIENST)
    with pytest.raises(Fault) as refused:
        client.service.ZakenOpvragen(bsn=BSN)
    assert refused.value.message == (
        "0002 Niet geautoriseerd: Belastingdienst (test) is niet aangesloten op LopendeZaken"
    )


def raw_status(identificatie: str, omschrijving: str, moment: str) -> bytes:
    return f"""<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
<StatusAanleveren xmlns="urn:mijnoverheid-adapter:lopende-zaken:1">
<identificatie>{identificatie}</identificatie>
<status><omschrijving>{omschrijving}</omschrijving><datumStatusGezet>{moment}</datumStatusGezet></status>
</StatusAanleveren></s:Body></s:Envelope>""".encode()


def raw_zaak(identificatie: str) -> bytes:
    return f"""<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
<ZaakAanleveren xmlns="urn:mijnoverheid-adapter:lopende-zaken:1"><zaak>
<identificatie>{identificatie}</identificatie><omschrijving>Bezwaar</omschrijving>
<startdatum>2026-04-01</startdatum><initiator><bsn>{BSN}</bsn></initiator>
<status><omschrijving>Ontvangen</omschrijving><datumStatusGezet>2026-04-01T10:00:00</datumStatusGezet></status>
</zaak></ZaakAanleveren></s:Body></s:Envelope>""".encode()


def test_a_zaak_identificatie_split_by_a_comment_is_stored_whole(server: Server, pki: Pki) -> None:
    response = post(
        f"{server.url}/lopende-zaken",
        raw_zaak("HP-x<!---->y"),
        pki.clients[GEMEENTE].pair,
        pki.root,
        '""',
    )
    assert response.status_code == 200, response.text
    assert etree.fromstring(response.content).findtext(".//{*}identificatie") == "HP-xy"
    assert server.count("zaken", "identificatie = 'HP-xy'") == 1


def send_concurrently(server: Server, pki: Pki, body: bytes, times: int = 8) -> list[str]:
    barrier = threading.Barrier(times)

    def send(_: int) -> str:
        barrier.wait()
        response = post(
            f"{server.url}/lopende-zaken", body, pki.clients[GEMEENTE].pair, pki.root, '""'
        )
        assert response.status_code == 200, response.text
        return etree.fromstring(response.content).findtext(".//{*}resultaat") or ""

    with ThreadPoolExecutor(times) as pool:
        return sorted(pool.map(send, range(times)))


def statuses_and_notifications(server: Server, identificatie: str) -> tuple[int, int]:
    zaak_ids = f"SELECT id FROM zaken WHERE identificatie = '{identificatie}'"  # noqa: S608
    statuses = f"SELECT id FROM zaak_statussen WHERE zaak_id IN ({zaak_ids})"  # noqa: S608
    return server.count("zaak_statussen", f"id IN ({statuses})"), server.count(
        "notifications", f"zaak_status_id IN ({statuses})"
    )


def test_the_same_new_status_sent_concurrently_is_stored_once(
    gemeente: Client, server: Server, pki: Pki
) -> None:
    gemeente.service.ZaakAanleveren(zaak=zaak("Z-RACE"))
    results = send_concurrently(
        server, pki, raw_status("Z-RACE", "Gelijktijdig", "2026-04-01T10:00:00")
    )
    assert results == ["StatusAlBekend"] * 7 + ["StatusToegevoegd"]
    assert statuses_and_notifications(server, "Z-RACE") == (1, 1)


def test_the_same_new_zaak_sent_concurrently_is_created_once(server: Server, pki: Pki) -> None:
    results = send_concurrently(server, pki, raw_zaak("Z-RACE-NEW"))
    assert results == ["Aangemaakt"] + ["StatusAlBekend"] * 7
    assert server.count("zaken", "identificatie = 'Z-RACE-NEW'") == 1
    assert statuses_and_notifications(server, "Z-RACE-NEW") == (1, 1)


def send_zaak(server: Server, pki: Pki, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "send-zaak",
        "--endpoint",
        f"{server.url}/lopende-zaken",
        "--ca",
        str(pki.root),
        *args,
        config=server.config,
        database_url=server.database_url,
    )


def test_send_zaak_pushes_a_status_with_a_pem_or_pkcs12_certificate(
    gemeente: Client, server: Server, pki: Pki
) -> None:
    client = pki.clients[GEMEENTE]
    pem = send_zaak(
        server,
        pki,
        "--cert",
        str(client.certificate),
        "--key",
        str(client.key),
        "--identificatie",
        "Z-CLI",
        "--omschrijving",
        "Bezwaar WOZ",
        "--bsn",
        BSN,
        "--startdatum",
        "2026-02-01",
        "--status",
        "Ontvangen",
        "--datum-status-gezet",
        "2026-02-01T09:00:00",
    )
    assert pem.returncode == 0, pem.stdout + pem.stderr
    assert pem.stdout.startswith("ACCEPTED: zaak Z-CLI: Aangemaakt")
    assert "verifies" in pem.stdout
    p12 = pki.files.clients[GEMEENTE].pkcs12
    second = send_zaak(
        server,
        pki,
        "--cert",
        str(p12),
        "--password",
        "changeit",
        "--identificatie",
        "Z-CLI",
        "--omschrijving",
        "Bezwaar WOZ",
        "--bsn",
        BSN,
        "--startdatum",
        "2026-02-01",
        "--status",
        "In behandeling",
        "--datum-status-gezet",
        "2026-02-03T09:00:00",
    )
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.startswith("ACCEPTED: zaak Z-CLI: StatusToegevoegd")
    assert opgevraagd(gemeente, "Z-CLI").status.omschrijving == "In behandeling"


def test_send_zaak_shows_a_refusal_and_its_receipt(server: Server, pki: Pki) -> None:
    client = pki.clients[GEMEENTE]
    refused = send_zaak(
        server,
        pki,
        "--cert",
        str(client.certificate),
        "--key",
        str(client.key),
        "--identificatie",
        "Z-CLI-2",
        "--omschrijving",
        "Bezwaar",
        "--bsn",
        BSN,
        "--verwijzing",
        "http://zaken.example/1",
    )
    assert refused.returncode == 1
    assert refused.stdout.startswith("REFUSED (HTTP 500): LZ003 Verwijzing is geen https-URL")
    assert "verifies" in refused.stdout

"""StUF-ZKN zakLk01 posted by a plain HTTP client over real mutual TLS; SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import requests
from lxml import etree

from adapter.receipts import verify
from tests.conftest import GEMEENTE, ROOT, STRIKT, ZAAK_TABLES, Pki, Server
from tests.soap_helpers import SOAP, verify_with_libxmlsec
from tests.test_lopende_zaken import client_for

STUF = "http://www.egem.nl/StUF/StUF0301"
SAMPLE = (ROOT / "tests" / "data" / "stuf" / "zakLk01.xml").read_text(encoding="utf-8")
BODY = SAMPLE[SAMPLE.index("<zakLk01") :]
REFERENTIE = "5b8f2c1e-7d3a-4e9b-a6f0-3c2d1e0f9a8b"


def envelope(body: str) -> bytes:
    prolog = '<?xml version="1.0" encoding="UTF-8"?>'
    return f'{prolog}<s:Envelope xmlns:s="{SOAP}"><s:Body>{body}</s:Body></s:Envelope>'.encode()


def post_stuf(server: Server, pki: Pki, body: str, oin: str = GEMEENTE) -> requests.Response:
    return requests.post(
        f"{server.url}/lopende-zaken/stuf",
        data=envelope(body),
        headers={
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": '"http://www.egem.nl/StUF/sector/zkn/0310/zakLk01"',
        },
        cert=pki.clients[oin].pair,
        verify=str(pki.root),
        timeout=30,
    )


def test_a_zaklk01_gets_bv01_and_is_stored_like_a_wus_zaak(server: Server, pki: Pki) -> None:
    response = post_stuf(server, pki, BODY)
    assert response.status_code == 200, response.text
    document = etree.fromstring(response.content)
    bv01 = document.find(f"{{{SOAP}}}Body/{{{STUF}}}Bv01Bericht")
    assert bv01.findtext(f"{{{STUF}}}stuurgegevens/{{{STUF}}}berichtcode") == "Bv01"
    assert bv01.findtext(f"{{{STUF}}}stuurgegevens/{{{STUF}}}crossRefnummer") == REFERENTIE
    verify_with_libxmlsec(document, pki.root)
    assert verify(document, pki.root).receipt.message_ref == REFERENTIE

    wus, _ = client_for(server, pki, GEMEENTE)
    stored = next(
        z for z in wus.service.ZakenOpvragen(bsn="999993653") if z.identificatie == "190010457"
    )
    assert stored.omschrijving == "Aanvraag omgevingsvergunning Dorpsstraat 1"
    assert (stored.startdatum, stored.einddatumGepland) == (date(2026, 1, 10), date(2026, 3, 1))
    assert stored.verwijzing == "https://zaken.voorbeeldstad.example/zaak/190010457"
    assert (stored.zaaktype.code, stored.zaaktype.omschrijving) == ("B1210", "Omgevingsvergunning")
    assert stored.status.omschrijving == "Aanvraag ontvangen"
    # 20260115093000 Dutch local time (CET) is 08:30 UTC.
    assert stored.status.datumStatusGezet == datetime(2026, 1, 15, 8, 30, tzinfo=UTC)


def test_the_same_kennisgeving_twice_changes_nothing_the_second_time(
    server: Server, pki: Pki
) -> None:
    body = BODY.replace("190010457", "190010458")
    assert post_stuf(server, pki, body).status_code == 200
    before = server.counts(*ZAAK_TABLES)
    assert post_stuf(server, pki, body).status_code == 200
    assert server.counts(*ZAAK_TABLES) == before


def test_a_later_kennisgeving_with_einddatum_closes_the_zaak_after_its_last_status(
    server: Server, pki: Pki
) -> None:
    body = BODY.replace("190010457", "190010459")
    assert post_stuf(server, pki, body).status_code == 200
    closing = (
        body.replace("<einddatumGepland>", "<einddatum>20260201</einddatum><einddatumGepland>")
        .replace("Aanvraag ontvangen", "Besluit verzonden")
        .replace("20260115093000", "20260201120000")
    )
    assert post_stuf(server, pki, closing).status_code == 200
    wus, _ = client_for(server, pki, GEMEENTE)
    stored = next(
        z for z in wus.service.ZakenOpvragen(bsn="999993653") if z.identificatie == "190010459"
    )
    assert stored.einddatum == date(2026, 2, 1)
    assert [s.omschrijving for s in stored.statushistorie.status] == [
        "Aanvraag ontvangen",
        "Besluit verzonden",
    ]


def test_of_a_w_kennisgeving_the_new_state_counts(server: Server, pki: Pki) -> None:
    old = BODY[BODY.index("<object") : BODY.index("</object>") + len("</object>")].replace(
        "190010457", "190010460"
    )
    new = old.replace(
        "Aanvraag omgevingsvergunning Dorpsstraat 1", "Aanvraag omgevingsvergunning Dorpsstraat 3"
    )
    body = BODY.replace("190010457", "190010460").replace(
        "<StUF:mutatiesoort>T</StUF:mutatiesoort>", "<StUF:mutatiesoort>W</StUF:mutatiesoort>"
    )
    body = body[: body.index("<object")] + old + new + "</zakLk01>"
    assert post_stuf(server, pki, body).status_code == 200, post_stuf(server, pki, body).text
    wus, _ = client_for(server, pki, GEMEENTE)
    stored = next(
        z for z in wus.service.ZakenOpvragen(bsn="999993653") if z.identificatie == "190010460"
    )
    assert stored.omschrijving.endswith("Dorpsstraat 3")


@pytest.mark.parametrize(
    ("old", "new", "code"),
    [
        ("<identificatie>190010457</identificatie>", "", "StUF001"),
        (
            "<StUF:berichtcode>Lk01</StUF:berichtcode>",
            "<StUF:berichtcode>Lk02</StUF:berichtcode>",
            "StUF001",
        ),
        ("https://zaken.voorbeeldstad", "http://zaken.voorbeeldstad", "LZ003"),
        ("<BG:inp.bsn>999993653</BG:inp.bsn>", "<BG:inp.bsn>123456789</BG:inp.bsn>", "LZ002"),
        (
            "<StUF:organisatie>00000099000000002000</StUF:organisatie>",
            f"<StUF:organisatie>{STRIKT}</StUF:organisatie>",
            "LZ007",
        ),
        (
            "<StUF:organisatie>00000004003214345001</StUF:organisatie>",
            "<StUF:organisatie>00000099000000001000</StUF:organisatie>",
            "LZ007",
        ),
        (
            "<StUF:mutatiesoort>T</StUF:mutatiesoort>",
            "<StUF:mutatiesoort>V</StUF:mutatiesoort>",
            "LZ010",
        ),
        ("<startdatum>20260110</startdatum>", "<startdatum>20260231</startdatum>", "LZ008"),
        ("<omschrijving>Aanvraag omgevingsvergunning Dorpsstraat 1</omschrijving>", "", "LZ001"),
    ],
    ids=[
        "missing-identificatie",
        "not-lk01",
        "http-verwijzing",
        "bad-bsn",
        "unknown-zender",
        "wrong-ontvanger",
        "verwijderen",
        "impossible-date",
        "missing-omschrijving",
    ],
)
def test_bad_kennisgeving_gets_fo01_with_its_code_and_nothing_is_stored(
    server: Server, pki: Pki, old: str, new: str, code: str
) -> None:
    assert old in BODY
    before, refusals = (
        server.counts(*ZAAK_TABLES),
        server.count("receipts", "outcome = 'Geweigerd'"),
    )
    response = post_stuf(
        server,
        pki,
        BODY.replace(old, new).replace("190010457</identificatie>", "190010499</identificatie>"),
    )
    assert response.status_code == 500
    document = etree.fromstring(response.content)
    fault = document.find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    fo01 = fault.find(f"detail/{{{STUF}}}Fo01Bericht")
    assert fo01.findtext(f"{{{STUF}}}body/{{{STUF}}}code") == code
    assert fo01.findtext(f"{{{STUF}}}body/{{{STUF}}}plek") == "client"
    assert fo01.findtext(f"{{{STUF}}}body/{{{STUF}}}omschrijving")
    verify_with_libxmlsec(document, pki.root)
    assert server.counts(*ZAAK_TABLES) == before
    assert server.count("receipts", "outcome = 'Geweigerd'") == refusals + 1


def test_the_fo01_refers_to_the_request(server: Server, pki: Pki) -> None:
    response = post_stuf(server, pki, BODY.replace("https://", "http://"))
    fo01 = etree.fromstring(response.content).find(f".//{{{STUF}}}Fo01Bericht")
    assert fo01.findtext(f"{{{STUF}}}stuurgegevens/{{{STUF}}}crossRefnummer") == REFERENTIE
    assert (
        fo01.findtext(f"{{{STUF}}}stuurgegevens/{{{STUF}}}ontvanger/{{{STUF}}}organisatie")
        == GEMEENTE
    )

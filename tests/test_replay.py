"""Replay protection on the WUS services, end to end over mutual TLS (SQLite and PostgreSQL).

A WS-A MessageID an organisation already used, within `limits.replay_window_hours`, for an
accepted request: the same request again gets the original answer byte for byte (its receipt
included) and nothing new is stored; another request under it is refused with `0011` and
only the refusal's receipt is stored; past the window the MessageID is new again.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import requests
from lxml import etree
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from adapter.lopende_zaken.wus import NS as ZAKEN
from adapter.receipts.model import NS as RECEIPT_NS
from adapter.soap.addressing import WSA
from adapter.store.models import WusMessage
from tests.conftest import GEMEENTE, STRIKT, ZAAK_TABLES, Pki, Server
from tests.soap_helpers import SOAP, aanvraag, addressing, fault_of, post, receipt_text

SUBSCRIBED = "999993653"
# What a request may leave behind: its receipt with the audit entry, its claim, its business.
STORED = ("receipts", "audit_log", "wus_messages", *ZAAK_TABLES)


def new_message_id() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def validate(server: Server, pki: Pki, message_id: str, keys: list[str]) -> requests.Response:
    body = aanvraag(keys, GEMEENTE, headers=addressing(f"{server.url}/abonnementen", message_id))
    return post(f"{server.url}/abonnementen", body, pki.clients[GEMEENTE].pair, pki.root)


def zaak_request(operation: str, message_id: str | None, server: Server, content: str) -> bytes:
    headers = ""
    if message_id is not None:
        headers = addressing(f"{server.url}/lopende-zaken", message_id, f"{ZAKEN}/{operation}")
    return f"""<s:Envelope xmlns:s="{SOAP}"><s:Header>{headers}</s:Header><s:Body>
<{operation} xmlns="{ZAKEN}">{content}</{operation}></s:Body></s:Envelope>""".encode()


def new_zaak(server: Server, pki: Pki, identificatie: str) -> None:
    content = f"""<zaak><identificatie>{identificatie}</identificatie>
<omschrijving>Bezwaar</omschrijving><startdatum>2026-04-01</startdatum>
<initiator><bsn>{SUBSCRIBED}</bsn></initiator>
<status><omschrijving>Ontvangen</omschrijving>
<datumStatusGezet>2026-04-01T10:00:00</datumStatusGezet></status></zaak>"""
    answer = send_zaak(server, pki, zaak_request("ZaakAanleveren", None, server, content))
    assert answer.status_code == 200, answer.text


def status_update(
    server: Server, identificatie: str, message_id: str, omschrijving: str = "In behandeling"
) -> bytes:
    content = f"""<identificatie>{identificatie}</identificatie><status>
<omschrijving>{omschrijving}</omschrijving>
<datumStatusGezet>2026-04-02T10:00:00</datumStatusGezet></status>"""
    return zaak_request("StatusAanleveren", message_id, server, content)


def send_zaak(server: Server, pki: Pki, body: bytes, oin: str = GEMEENTE) -> requests.Response:
    return post(f"{server.url}/lopende-zaken", body, pki.clients[oin].pair, pki.root, '""')


def receipt_id(response: requests.Response) -> str | None:
    return receipt_text(etree.fromstring(response.content), "a:BevestigingID")


def statuses_of(server: Server, identificatie: str) -> int:
    zaak_ids = f"SELECT id FROM zaken WHERE identificatie = '{identificatie}'"  # noqa: S608
    return server.count("zaak_statussen", f"zaak_id IN ({zaak_ids})")


def make_older(server: Server, message_id: str, hours: int) -> None:
    """Move the stored use of `message_id` back in time, as if it came `hours` earlier."""
    with Session(server.engine) as session, session.begin():
        stored = session.scalars(
            select(WusMessage).where(WusMessage.message_id == message_id)
        ).one()
        stored.received_at -= timedelta(hours=hours)


def test_a_repeated_validate_abonnementen_gets_the_original_answer_and_no_new_receipt(
    server: Server, pki: Pki
) -> None:
    message_id = new_message_id()
    first = validate(server, pki, message_id, [SUBSCRIBED])
    assert first.status_code == 200, first.text
    stored = server.counts(*STORED)
    repeat = validate(server, pki, message_id, [SUBSCRIBED])
    assert repeat.status_code == 200, repeat.text
    assert repeat.content == first.content  # same receipt, same response MessageID
    assert server.counts(*STORED) == stored  # no second receipt, no audit entry
    assert server.count("receipts", f"message_ref = '{message_id}'") == 1
    header = etree.fromstring(repeat.content).find(f"{{{SOAP}}}Header")
    assert header is not None
    assert header.findtext(f"{{{WSA}}}RelatesTo") == message_id


def test_a_repeated_status_update_is_applied_once(server: Server, pki: Pki) -> None:
    new_zaak(server, pki, "R-1")
    message_id = new_message_id()
    first = send_zaak(server, pki, status_update(server, "R-1", message_id))
    assert first.status_code == 200, first.text
    assert statuses_of(server, "R-1") == 2
    stored = server.counts(*STORED)
    repeat = send_zaak(server, pki, status_update(server, "R-1", message_id))
    assert repeat.status_code == 200, repeat.text
    assert repeat.content == first.content
    assert receipt_id(repeat) == receipt_id(first)
    assert server.counts(*STORED) == stored
    assert statuses_of(server, "R-1") == 2


def test_another_body_under_a_used_message_id_is_refused_with_only_its_receipt_stored(
    server: Server, pki: Pki
) -> None:
    new_zaak(server, pki, "R-2")
    message_id = new_message_id()
    first = send_zaak(server, pki, status_update(server, "R-2", message_id))
    assert first.status_code == 200, first.text
    stored = server.counts(*STORED)
    other = send_zaak(server, pki, status_update(server, "R-2", message_id, "Besluit genomen"))
    assert other.status_code == 500
    faultcode, faultstring, _ = fault_of(other)
    assert faultcode.endswith("Client")
    assert faultstring.startswith(
        f"0011 Header andere waarde dan voorgeschreven: wsa:MessageID {message_id} is op "
    )
    assert f"een andere soap:Body (BevestigingID {receipt_id(first)}); geef elk nieuw" in (
        faultstring
    )
    refusal = etree.fromstring(other.content)
    assert receipt_text(refusal, "a:Uitkomst/a:Geweigerd/a:Code") == "0011"
    assert receipt_text(refusal, "a:BerichtReferentie") == message_id
    after = server.counts(*STORED)
    assert after == {
        **stored,
        "receipts": stored["receipts"] + 1,
        "audit_log": stored["audit_log"] + 1,
    }
    assert server.count("receipts", f"message_ref = '{message_id}' AND outcome_code = '0011'") == 1
    assert statuses_of(server, "R-2") == 2  # the other status was not applied
    # The original request, repeated, still gets its own answer.
    repeat = send_zaak(server, pki, status_update(server, "R-2", message_id))
    assert repeat.content == first.content


def test_the_same_message_id_on_another_service_is_refused(server: Server, pki: Pki) -> None:
    message_id = new_message_id()
    assert validate(server, pki, message_id, [SUBSCRIBED]).status_code == 200
    new_zaak(server, pki, "R-3")
    stored = server.counts(*STORED)
    other = send_zaak(server, pki, status_update(server, "R-3", message_id))
    assert other.status_code == 500
    assert "een andere dienst" in fault_of(other)[1]
    assert server.count("zaak_statussen") == stored["zaak_statussen"]


def test_past_the_window_the_message_id_is_accepted_again(server: Server, pki: Pki) -> None:
    new_zaak(server, pki, "R-4")
    message_id = new_message_id()
    first = send_zaak(server, pki, status_update(server, "R-4", message_id))
    assert first.status_code == 200, first.text
    make_older(server, message_id, hours=25)  # the configured window is the default 24 h
    receipts = server.count("receipts")
    again = send_zaak(server, pki, status_update(server, "R-4", message_id, "Besluit genomen"))
    assert again.status_code == 200, again.text
    assert receipt_id(again) != receipt_id(first)
    assert server.count("receipts") == receipts + 1
    assert statuses_of(server, "R-4") == 3
    assert server.count("wus_messages", f"message_id = '{message_id}'") == 1
    # and the new use is what a repeat is now judged against
    repeat = send_zaak(server, pki, status_update(server, "R-4", message_id, "Besluit genomen"))
    assert repeat.content == again.content


def test_a_use_just_inside_the_window_is_still_a_repeat(server: Server, pki: Pki) -> None:
    message_id = new_message_id()
    first = validate(server, pki, message_id, [SUBSCRIBED])
    make_older(server, message_id, hours=23)
    assert validate(server, pki, message_id, [SUBSCRIBED]).content == first.content


def test_concurrent_copies_of_one_request_are_processed_once(server: Server, pki: Pki) -> None:
    new_zaak(server, pki, "R-5")
    message_id = new_message_id()
    body = status_update(server, "R-5", message_id)
    stored = server.counts(*STORED)
    copies = 8
    barrier = threading.Barrier(copies)

    def send(_: int) -> bytes:
        barrier.wait()
        answer = send_zaak(server, pki, body)
        assert answer.status_code == 200, answer.text
        return answer.content

    with ThreadPoolExecutor(copies) as pool:
        answers = set(pool.map(send, range(copies)))
    assert len(answers) == 1  # every copy got the one original answer
    after = server.counts(*STORED)
    assert after["receipts"] == stored["receipts"] + 1
    assert after["audit_log"] == stored["audit_log"] + 1
    assert after["wus_messages"] == stored["wus_messages"] + 1
    assert statuses_of(server, "R-5") == 2


def test_each_organisation_has_its_own_message_ids(server: Server, pki: Pki) -> None:
    message_id = new_message_id()
    first = validate(server, pki, message_id, [SUBSCRIBED])
    body = aanvraag(
        [SUBSCRIBED], STRIKT, headers=addressing(f"{server.url}/abonnementen", message_id)
    )
    strikt = post(f"{server.url}/abonnementen", body, pki.clients[STRIKT].pair, pki.root)
    assert strikt.status_code == 200, strikt.text
    assert receipt_id(strikt) != receipt_id(first)
    assert server.count("wus_messages", f"message_id = '{message_id}'") == 2


def test_a_refused_request_leaves_its_message_id_free_for_the_fixed_one(
    server: Server, pki: Pki
) -> None:
    message_id = new_message_id()
    refused = validate(server, pki, message_id, ["123456789"])  # fails the elfproef
    assert refused.status_code == 500
    assert server.count("wus_messages", f"message_id = '{message_id}'") == 0
    fixed = validate(server, pki, message_id, [SUBSCRIBED])
    assert fixed.status_code == 200, fixed.text


def test_a_message_id_too_long_to_remember_is_refused_and_nothing_is_claimed(
    server: Server, pki: Pki
) -> None:
    message_id = f"urn:uuid:{'a' * 250}"
    stored = server.counts("wus_messages", *ZAAK_TABLES)
    refused = validate(server, pki, message_id, [SUBSCRIBED])
    assert refused.status_code == 500
    assert fault_of(refused)[1] == (
        "0011 Header andere waarde dan voorgeschreven: wsa:MessageID is 259 tekens lang, de "
        "grens is 255; gebruik bijvoorbeeld urn:uuid:<uuid>"
    )
    assert server.counts("wus_messages", *ZAAK_TABLES) == stored


def test_requests_without_ws_addressing_are_not_checked(server: Server, pki: Pki) -> None:
    body = aanvraag([SUBSCRIBED], GEMEENTE)
    receipts, claims = server.count("receipts"), server.count("wus_messages")
    for _ in range(2):
        answer = post(f"{server.url}/abonnementen", body, pki.clients[GEMEENTE].pair, pki.root)
        assert answer.status_code == 200, answer.text
    assert server.count("receipts") == receipts + 2
    assert server.count("wus_messages") == claims


def test_the_receipt_of_a_repeat_is_the_original_signed_one(server: Server, pki: Pki) -> None:
    message_id = new_message_id()
    first = validate(server, pki, message_id, [SUBSCRIBED])
    repeat = validate(server, pki, message_id, [SUBSCRIBED])
    with server.engine.connect() as connection:
        (xml,) = connection.execute(
            text("SELECT xml FROM receipts WHERE message_ref = :m"), {"m": message_id}
        ).one()
    receipt = etree.fromstring(repeat.content).find(f"{{{SOAP}}}Header/{{{RECEIPT_NS}}}*")
    assert receipt is not None
    # The answer carries the stored bytes as they are, so the same signature.
    assert xml.encode() in repeat.content
    canonical = {"method": "c14n", "exclusive": True}
    assert etree.tostring(receipt, **canonical) == etree.tostring(
        etree.fromstring(xml), **canonical
    )
    assert receipt_id(first) == receipt_id(repeat)

"""The MSH services of ebMS 2.0 without a server: Pong and StatusResponse as written, the
StatusRequest as read, and the status the store knows of a received message."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from lxml import etree

from adapter.ebms.message import (
    EB,
    MSH_SERVICE,
    Route,
    pong,
    read_header,
    status_of,
    status_request,
    status_request_ref,
    status_response,
)
from adapter.errors import OtherXml
from adapter.store.db import Database
from adapter.store.ebms_messages import StoredAnswer
from tests.helpers import migrated_database

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
RECEIVED = datetime(2026, 12, 1, 11, 0, 0, 123000, tzinfo=UTC)
ORGANISATION, MIJNOVERHEID = "00000099000000002000", "00000004003214345001"
ROUTE = Route(
    cpa_id="CPA-1",
    conversation_id="c-1",
    from_oin=ORGANISATION,
    from_role=None,
    to_oin=MIJNOVERHEID,
    to_role=None,
    service=MSH_SERVICE,
    service_type=None,
    action="StatusRequest",
)


def request_header(action: str) -> tuple[str, etree._Element]:
    message_id, envelope = status_request(dataclasses.replace(ROUTE, action=action), "asked@x", NOW)
    return message_id, etree.fromstring(envelope)


def test_a_pong_answers_the_ping_it_refers_to_from_the_receiver() -> None:
    ping_id, ping = request_header("Ping")
    pong_id, answer = pong(read_header(ping), NOW)
    header = read_header(etree.fromstring(answer))
    assert (header.service, header.action) == (MSH_SERVICE, "Pong")
    assert header.message_id == pong_id and header.ref_to_message_id == ping_id
    assert (header.from_party.value, header.to_party.value) == (MIJNOVERHEID, ORGANISATION)
    assert header.cpa_id == "CPA-1" and header.conversation_id == "c-1"
    assert header.manifest == ()


def test_a_status_request_is_read_for_the_message_it_asks_about() -> None:
    _, envelope = request_header("StatusRequest")
    assert status_request_ref(envelope) == "asked@x"
    body = envelope.find("{*}Body/{*}StatusRequest/{*}RefToMessageId")
    assert body is not None
    body.text = "  "
    with pytest.raises(OtherXml, match="RefToMessageId") as raised:
        status_request_ref(envelope)
    assert raised.value.location == "//Body/StatusRequest/RefToMessageId"


@pytest.mark.parametrize(
    ("status", "timestamp"),
    [
        ("Processed", "2026-12-01T11:00:00.123Z"),
        ("Received", "2026-12-01T11:00:00.123Z"),
        ("Forwarded", "2026-12-01T11:00:00.123Z"),
        ("NotRecognized", None),
        ("UnAuthorized", None),
    ],
)
def test_a_status_response_carries_the_time_of_receipt_only_for_a_known_message(
    status: str, timestamp: str | None
) -> None:
    request_id, envelope = request_header("StatusRequest")
    known = None if timestamp is None else RECEIVED
    _, answer = status_response(read_header(envelope), "asked@x", status, known, NOW)
    document = etree.fromstring(answer)
    header = read_header(document)
    assert (header.action, header.ref_to_message_id) == ("StatusResponse", request_id)
    assert status_of(document) == (status, "asked@x", timestamp)
    response = document.find(f"{{*}}Body/{{{EB}}}StatusResponse")
    assert response is not None and response.get(f"{{{EB}}}version") == "2.0"


def test_a_status_that_ebms_does_not_know_is_not_written() -> None:
    _, envelope = request_header("StatusRequest")
    with pytest.raises(ValueError, match="messageStatus"):
        status_response(read_header(envelope), "x", "Delivered", None, NOW)


@pytest.fixture(scope="module")
def database(database_url: str) -> Iterator[Database]:
    with migrated_database(database_url) as database:
        yield database


def test_the_store_knows_a_status_only_for_the_party_that_sent_the_message(
    database: Database,
) -> None:
    with database.repositories() as repositories:
        messages = repositories.ebms_messages
        messages.claim(ORGANISATION, "m-1@x", "CPA-1", "c", "GLOBE-R-BV-Request", RECEIVED)
        assert messages.status_of(ORGANISATION, "m-1@x") == ("Received", RECEIVED)
        messages.record_answer(ORGANISATION, "m-1@x", "receipt-1", StoredAnswer(None, None))
        assert messages.status_of(ORGANISATION, "m-1@x") == ("Processed", RECEIVED)
        assert messages.status_of("00000099000000003000", "m-1@x") is None
        assert messages.status_of(ORGANISATION, "m-2@x") is None

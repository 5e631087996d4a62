"""ebMS 2.0 Ping/Pong (section 8) and StatusRequest/StatusResponse (section 7), end to end.

Service urn:oasis:names:tc:ebxml-msg:service. A party with a CPA gets a Pong for its Ping and
the status of a message it sent; synchronously when its CPA says syncReplyMode
mshSignalsOnly (Gemeente Voorbeeldstad), else as a message of its own through the outbox
(Belastingdienst, syncReplyMode none). Another party's MessageId is NotRecognized, exactly
as a MessageId never seen: nobody learns that a message exists that is not theirs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests
from lxml import etree

from adapter.ebms.message import (
    MSH_SERVICE,
    Route,
    error_of,
    ping,
    read_header,
    status_of,
    status_request,
)
from adapter.receipts import verify
from adapter.xmltime import utc_millis
from tests.berichtverwerk_samples import batch_xml
from tests.conftest import BELASTINGDIENST, GEMEENTE, STRIKT, Pki, Server
from tests.ebms_helpers import MIJNOVERHEID, Peer, cpa_id, send
from tests.helpers import wait_until


@pytest.fixture(scope="module")
def peer(server: Server, pki: Pki) -> Iterator[Peer]:
    peer = Peer(server, pki)
    with peer.receiver:
        yield peer


def msh_route(oin: str, action: str, cpa: str | None = None) -> Route:
    return Route(
        cpa_id=cpa or cpa_id(oin),
        conversation_id=str(uuid.uuid4()),
        from_oin=oin,
        from_role=None,
        to_oin=MIJNOVERHEID,
        to_role=None,
        service=MSH_SERVICE,
        service_type=None,
        action=action,
    )


def post(server: Server, pki: Pki, oin: str, envelope: bytes) -> requests.Response:
    return requests.post(
        f"{server.url}/berichtenbox/ebms",
        data=envelope,
        headers={"Content-Type": "text/xml; charset=UTF-8", "SOAPAction": '"ebXML"'},
        cert=pki.clients[oin].pair,
        verify=str(pki.root),
        timeout=30,
    )


def ask_status(server: Server, pki: Pki, oin: str, ref: str) -> tuple[str, requests.Response]:
    message_id, envelope = status_request(msh_route(oin, "StatusRequest"), ref, datetime.now(UTC))
    return message_id, post(server, pki, oin, envelope)


# --- Ping --------------------------------------------------------------------------------------


def test_a_ping_gets_a_pong_on_the_connection_when_the_cpa_says_msh_signals_only(
    server: Server, pki: Pki
) -> None:
    before = server.counts("outbox", "receipts", "ebms_messages")
    ping_id, envelope = ping(msh_route(GEMEENTE, "Ping"), datetime.now(UTC))
    response = post(server, pki, GEMEENTE, envelope)
    assert response.status_code == 200
    pong = read_header(etree.fromstring(response.content))
    assert (pong.service, pong.action, pong.ref_to_message_id) == (MSH_SERVICE, "Pong", ping_id)
    assert (pong.from_party.value, pong.to_party.value) == (MIJNOVERHEID, GEMEENTE)
    assert pong.cpa_id == cpa_id(GEMEENTE)
    assert server.counts("outbox", "receipts", "ebms_messages") == before  # nothing kept


def test_a_ping_gets_a_pong_as_its_own_message_when_the_cpa_says_none(
    server: Server, pki: Pki, peer: Peer
) -> None:
    ping_id, envelope = ping(msh_route(BELASTINGDIENST, "Ping"), datetime.now(UTC))
    response = post(server, pki, BELASTINGDIENST, envelope)
    assert response.status_code == 200 and not response.content.strip()
    pong = peer.wait_for("Pong", ping_id)
    assert pong.header.to_party.value == BELASTINGDIENST
    where = f"ref_to_message_id = '{ping_id}' AND action = 'Pong'"
    wait_until(lambda: server.count("outbox", f"{where} AND status = 'delivered'") == 1)


def test_a_ping_under_an_unknown_cpa_gets_no_pong_but_an_error(server: Server, pki: Pki) -> None:
    _, envelope = ping(msh_route(GEMEENTE, "Ping", cpa="ONBEKEND"), datetime.now(UTC))
    response = post(server, pki, GEMEENTE, envelope)
    error = error_of(etree.fromstring(response.content))
    assert error is not None and error[0] == "ValueNotRecognized"


# --- StatusRequest -----------------------------------------------------------------------------


def test_the_status_of_an_own_processed_message_is_processed_with_its_time(
    server: Server, pki: Pki, peer: Peer
) -> None:
    sent = send(server, pki, batch_xml([{}]))
    status_id, response = ask_status(server, pki, GEMEENTE, sent.message_id)
    assert response.status_code == 200
    document = etree.fromstring(response.content)
    header = read_header(document)
    assert (header.action, header.ref_to_message_id) == ("StatusResponse", status_id)
    status, ref, timestamp = status_of(document) or ("", "", None)
    assert (status, ref) == ("Processed", sent.message_id)
    assert sent.document is not None
    received = verify(sent.document, pki.root).receipt.received_at
    assert timestamp == utc_millis(received)  # when we received it, as its receipt says


def test_an_unknown_message_id_is_not_recognized(server: Server, pki: Pki) -> None:
    _, response = ask_status(server, pki, GEMEENTE, f"{uuid.uuid4()}@nergens")
    status = status_of(etree.fromstring(response.content))
    assert status is not None and status[0] == "NotRecognized" and status[2] is None


def test_another_partys_message_is_not_recognized_exactly_like_an_unknown_one(
    server: Server, pki: Pki, peer: Peer
) -> None:
    theirs = send(server, pki, batch_xml([{}], leverancier=STRIKT), oin=STRIKT)
    assert theirs.document is None or error_of(theirs.document) is None
    _, response = ask_status(server, pki, GEMEENTE, theirs.message_id)
    asked = status_of(etree.fromstring(response.content))
    _, unknown = ask_status(server, pki, GEMEENTE, f"{uuid.uuid4()}@nergens")
    never = status_of(etree.fromstring(unknown.content))
    assert asked is not None and never is not None
    assert (asked[0], asked[2]) == (never[0], never[2]) == ("NotRecognized", None)
    # The owner does get to know; Strikt's CPA says none, so as a message of its own.
    own_id, own = ask_status(server, pki, STRIKT, theirs.message_id)
    assert own.status_code == 200 and not own.content.strip()
    answer = status_of(peer.wait_for("StatusResponse", own_id).envelope)
    assert answer is not None and answer[:2] == ("Processed", theirs.message_id)


def test_a_status_request_without_a_ref_to_message_id_gets_an_error(
    server: Server, pki: Pki
) -> None:
    _, envelope = status_request(msh_route(GEMEENTE, "StatusRequest"), "x", datetime.now(UTC))
    envelope = envelope.replace(b">x<", b"><")
    response = post(server, pki, GEMEENTE, envelope)
    error = error_of(etree.fromstring(response.content))
    assert error is not None and error[0] == "OtherXml"
    assert "RefToMessageId" in error[1]

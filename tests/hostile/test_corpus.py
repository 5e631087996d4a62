"""The hostile-input corpus against one real server per database, over real mutual TLS.

Each case asserts its exact fault or ebMS error code, that the refusal receipt is all it
stored (business, ebMS and outbox rows compared before and after), and that no parser
reached out to the network (a loopback tripwire stands in for the attacker's server). After
the corpus the server must still answer good requests, and none of its processes may stay
above 300 MiB resident.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from lxml import etree

from adapter.ebms.message import EB, error_of
from adapter.receipts import verify
from tests.berichtverwerk_samples import NIL_GUID, batch_xml
from tests.conftest import GEMEENTE, Pki, Server
from tests.ebms_helpers import send
from tests.hostile import wire
from tests.hostile.ebms_cases import (
    BATCH_CASES,
    EBMS_CASES,
    BatchCase,
    EbmsCase,
    message,
)
from tests.hostile.shapes import TRIPWIRE
from tests.hostile.wus_cases import CASES as WUS_CASES
from tests.hostile.wus_cases import GOOD, WusCase
from tests.soap_helpers import fault_of, receipt_element

MAX_RESIDENT_MIB = 300
EBMS_PATH = "/berichtenbox/ebms"
MAX_EBMS_MESSAGE_BYTES = 100 * 1024 * 1024  # conf/adapter.toml [limits] max_ebms_message_bytes


@pytest.fixture(scope="module")
def tripwire() -> Iterator[wire.Tripwire]:
    with wire.Tripwire() as listener:
        yield listener


def _armed(body: bytes, tripwire: wire.Tripwire) -> bytes:
    return body.replace(TRIPWIRE, tripwire.url.encode())


def _assert_no_leak(content: bytes) -> None:
    """Nothing of a local file the hostile document referred to came back."""
    assert b"root:x:0:0" not in content


# --- WUS -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", WUS_CASES, ids=lambda case: case.name)
def test_a_hostile_wus_request_gets_its_exact_fault_and_stores_only_its_refusal(
    server: Server, pki: Pki, tripwire: wire.Tripwire, case: WusCase
) -> None:
    client = pki.unknown_oin if case.unknown_party else pki.clients[GEMEENTE]
    before, fetches = wire.snapshot(server), len(tripwire.connections)
    response = wire.post(
        server,
        pki,
        case.path,
        _armed(case.body(), tripwire),
        case.content_type,
        case.soap_action,
        client,
    )
    after = wire.snapshot(server)
    _assert_no_leak(response.content)
    assert len(tripwire.connections) == fetches
    document = etree.fromstring(response.content)
    if case.code is None:
        assert response.status_code == 200, response.text
        assert verify(document, pki.root).receipt.outcome.accepted
        keys = tuple(key.text for key in document.iter("{*}Key"))
        assert keys == case.answered_keys
        assert response.content.count(b"isBerichtSturen>true<") == len(keys)
        assert wire.changed(before, after) == {wire.ACCEPTED: 1}
        return
    assert response.status_code == 500
    faultcode, faultstring, _ = fault_of(response)
    assert faultcode == case.faultcode
    assert faultstring.startswith(case.faultstring), faultstring
    if case.unknown_party:  # SPEC Part C: an unknown OIN gets a plain fault and no receipt
        assert receipt_element(document) is None
        assert wire.changed(before, after) == {}
        return
    receipt = verify(document, pki.root).receipt
    assert receipt.outcome.code == case.code
    assert wire.receipt_code(server, receipt.receipt_id) == ("Geweigerd", case.code)
    assert wire.changed(before, after) == {wire.REFUSED: 1}


# --- ebMS ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", EBMS_CASES, ids=lambda case: case.name)
def test_a_hostile_ebms_message_gets_its_exact_error_and_stores_only_its_refusal(
    server: Server, pki: Pki, tripwire: wire.Tripwire, case: EbmsCase
) -> None:
    client = pki.unknown_oin if case.unknown_party else pki.clients[GEMEENTE]
    content_type, body = case.build()
    before, fetches = wire.snapshot(server), len(tripwire.connections)
    response = wire.post(
        server,
        pki,
        EBMS_PATH,
        _armed(body, tripwire),
        content_type or None,
        case.soap_action,
        client,
    )
    after = wire.snapshot(server)
    _assert_no_leak(response.content)
    assert len(tripwire.connections) == fetches
    document = etree.fromstring(response.content)
    if case.unknown_party:
        assert response.status_code == 500
        assert fault_of(response)[1].startswith("0002 ")
        assert receipt_element(document) is None
        assert wire.changed(before, after) == {}
        return
    assert response.status_code == 200
    receipt = verify(document, pki.root).receipt
    if case.error is None:
        assert error_of(document) is None
        assert document.find(f".//{{{EB}}}Acknowledgment") is not None
        assert set(receipt.outcome.berichten) and receipt.outcome.accepted
        moved = wire.changed(before, after)
        assert moved.pop("berichten") == 1 and moved.pop(wire.JUDGED) == 1
        assert set(moved) <= {"ebms_messages", "outbox"}
        return
    error = error_of(document)
    assert error is not None and error[0] == case.error, error
    assert receipt.outcome.code == case.error
    assert wire.receipt_code(server, receipt.receipt_id) == ("Geweigerd", case.error)
    assert wire.changed(before, after) == {wire.REFUSED: 1}


def test_an_ebms_message_declared_over_the_size_cap_is_refused_before_its_body_is_read(
    server: Server, pki: Pki
) -> None:
    content_type, body = message()
    before = wire.snapshot(server)
    status, headers, answer = wire.post_declaring(
        server,
        pki,
        pki.clients[GEMEENTE],
        EBMS_PATH,
        {"Content-Type": content_type, "SOAPAction": '"ebXML"'},
        MAX_EBMS_MESSAGE_BYTES + 1,
        body[:1024],  # the rest never comes: the answer must not wait for it
    )
    assert status == 200
    assert headers.get("Connection", "").lower() == "close"
    document = etree.fromstring(answer)
    assert (error_of(document) or ("",))[0] == "OtherXml"
    receipt = verify(document, pki.root).receipt
    assert wire.receipt_code(server, receipt.receipt_id) == ("Geweigerd", "OtherXml")
    assert wire.changed(before, wire.snapshot(server)) == {wire.REFUSED: 1}


# --- batch content -------------------------------------------------------------------------


@pytest.mark.parametrize("case", BATCH_CASES, ids=lambda case: case.name)
def test_hostile_batch_content_refuses_only_what_carries_it(
    server: Server, pki: Pki, tripwire: wire.Tripwire, case: BatchCase
) -> None:
    ids = [str(uuid.uuid4()) for _ in case.berichten]
    payload = batch_xml(
        [
            {**spec, "BerichtID": bericht_id}
            for (spec, _), bericht_id in zip(case.berichten, ids, strict=True)
        ]
        or [{}]
    )
    if case.edit is not None:
        payload = case.edit(payload)
    before, fetches = wire.snapshot(server), len(tripwire.connections)
    sent = send(server, pki, _armed(payload, tripwire), general=list(case.general))
    after = wire.snapshot(server)
    assert len(tripwire.connections) == fetches
    assert sent.response.status_code == 200
    assert sent.document is not None and error_of(sent.document) is None
    moved = wire.changed(before, after)
    assert moved.pop(wire.JUDGED) == 1 and moved.pop("ebms_messages") == 1
    assert moved.pop("outbox") == 1  # the BerichtVerwerkResponse
    if case.whole is not None:
        assert sent.codes == {NIL_GUID: case.whole}
        assert moved == {}
        return
    expected = {bericht_id: code for (_, code), bericht_id in zip(case.berichten, ids, strict=True)}
    assert sent.codes == expected
    accepted = [bericht_id for bericht_id, code in expected.items() if code == "Verwerkt"]
    assert moved.pop("berichten") == len(accepted)
    refused = "', '".join(set(ids) - set(accepted))
    assert server.count("berichten", f"bericht_id IN ('{refused}')") == 0
    assert server.count("bericht_bijlagen", f"bericht_id IN ('{refused}')") == 0
    assert set(moved) <= {"bericht_bijlagen", "bijlagen"}
    for column, value in case.stored.items():
        assert server.count("berichten", f"bericht_id = '{ids[0]}' AND {column} = '{value}'") == 1


# --- after the corpus ----------------------------------------------------------------------


def test_nothing_in_the_corpus_made_the_server_fetch_anything(tripwire: wire.Tripwire) -> None:
    assert tripwire.connections == []


def test_the_server_still_answers_good_requests_after_the_corpus(server: Server, pki: Pki) -> None:
    response = wire.post(
        server, pki, "/abonnementen", GOOD, "text/xml; charset=utf-8", '""', pki.clients[GEMEENTE]
    )
    assert response.status_code == 200
    assert response.content.count(b"isBerichtSturen>true<") == 1
    bericht_id = str(uuid.uuid4())
    sent = send(server, pki, batch_xml([{"BerichtID": bericht_id}]))
    assert sent.codes == {bericht_id: "Verwerkt"}


def test_no_server_process_stays_above_300_mib_after_the_corpus(
    server: Server, record_property: Callable[[str, object], None]
) -> None:
    resident = wire.resident_mib(server.process.pid)
    record_property("resident_mib", {pid: round(mib) for pid, mib in resident.items()})
    assert len(resident) >= 4, resident  # the master, two workers, the scheduler, ...
    assert max(resident.values()) <= MAX_RESIDENT_MIB, resident

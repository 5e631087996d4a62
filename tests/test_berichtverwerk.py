"""BerichtVerwerk over ebMS 2.0 end to end: real mTLS, a real peer for the asynchronous result.

Gemeente Voorbeeldstad's CPA has syncReplyMode mshSignalsOnly (the Acknowledgment comes back
in the HTTP answer); Gemeente Strikt's has none (the Acknowledgment comes as its own message).
"""

from __future__ import annotations

import base64
import hashlib
import threading
import tomllib
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from adapter.ebms.message import EB, acknowledgment, error_of
from adapter.kit.receiver import Reply
from adapter.kit.sender import batch_request
from adapter.receipts import verify
from tests import pdf_samples as pdfs
from tests.berichtverwerk_samples import NIL_GUID, batch_xml, minimal_pdf
from tests.conftest import BELASTINGDIENST, GEMEENTE, STRIKT, Pki, Server
from tests.ebms_helpers import (
    BUSINESS_TABLES,
    MIJNOVERHEID,
    NOT_SUBSCRIBED,
    Peer,
    cpa_id,
    result_codes,
    send,
)
from tests.helpers import wait_until
from tests.soap_helpers import verify_with_libxmlsec


@pytest.fixture(scope="module")
def peer(server: Server, pki: Pki) -> Iterator[Peer]:
    peer = Peer(server, pki)
    with peer.receiver:
        yield peer


def ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


# --- the happy path and per-Bericht codes ------------------------------------------------------


def test_a_mixed_batch_gets_a_code_per_bericht_and_only_the_good_ones_are_stored(
    server: Server, pki: Pki, peer: Peer
) -> None:
    good, unsubscribed, wrong_type, late, not_pdf = ids(5)
    now = datetime.now(UTC)
    payload = batch_xml(
        [
            {"BerichtID": good, "bijlagen": [(minimal_pdf(10_000), "Beschikking")]},
            {"BerichtID": unsubscribed, "GebruikerID": NOT_SUBSCRIBED},
            {"BerichtID": wrong_type, "BerichtType": "AANSLAG"},
            {"BerichtID": late, "PublicatieDatum": now + timedelta(days=13, minutes=5)},
            {"BerichtID": not_pdf, "bijlagen": [(b"PK\x03\x04 not a pdf" * 50, "renamed.pdf")]},
        ]
    )
    before = server.count("berichten")
    sent = send(server, pki, payload)
    assert sent.response.status_code == 200
    assert sent.document is not None and error_of(sent.document) is None
    assert (
        sent.document.find(f".//{{{EB}}}Acknowledgment/{{{EB}}}RefToMessageId").text
        == sent.message_id
    )
    verify_with_libxmlsec(sent.document, pki.root)
    expected = {
        good: "Verwerkt",
        unsubscribed: "NietActiefOfGeabonneerd",
        wrong_type: "BerichtTypeNietOndersteund",
        late: "PublicatieDatumLigtTeVerInDeToekomst",
        not_pdf: "TechnischProbleem",
    }
    assert sent.codes == expected
    assert server.count("berichten") == before + 1
    assert server.count("berichten", f"bericht_id = '{good}'") == 1
    # Every attachment was staged as the batch was read; the refused letter's is removed, and
    # only the accepted one's content stays as a file.
    blobs = Path(tomllib.loads(server.config.read_text())["ebms"]["blob_dir"])
    refused = hashlib.sha256(b"PK\x03\x04 not a pdf" * 50).hexdigest()
    assert not list(blobs.rglob(refused)) and not list(blobs.rglob(".incoming-*"))
    assert list(blobs.rglob(hashlib.sha256(minimal_pdf(10_000)).hexdigest()))

    result = peer.wait_for("GLOBE-R-BV-Result", sent.message_id)
    counters, codes = result_codes(result)
    assert codes == expected
    assert counters["TotaalAantalOntvangenBerichten"] == "5"
    assert counters["AantalBerichtenSuccesvolVerwerkt"] == "1"
    assert counters["AantalBerichtenMetTechnischProbleem"] == "1"
    assert (
        result.header.from_party.value == MIJNOVERHEID and result.header.to_party.value == GEMEENTE
    )
    verify_with_libxmlsec(result.envelope, pki.root)


def test_a_bericht_id_already_stored_gets_bericht_bestaat_al(
    server: Server, pki: Pki, peer: Peer
) -> None:
    (bericht_id,) = ids(1)
    first = send(server, pki, batch_xml([{"BerichtID": bericht_id}]))
    again = send(server, pki, batch_xml([{"BerichtID": bericht_id}]))
    assert first.codes == {bericht_id: "Verwerkt"}
    assert again.codes == {bericht_id: "BerichtBestaatAl"}
    assert server.count("berichten", f"bericht_id = '{bericht_id}'") == 1


def test_an_inactive_berichttype_is_not_supported_and_nothing_of_it_is_stored(
    server: Server, pki: Pki, peer: Peer
) -> None:
    # conf/organisations.toml keeps HERINNER for the Gemeente as a record with active = false.
    good, inactive = ids(2)
    payload = batch_xml(
        [
            {"BerichtID": good},
            {
                "BerichtID": inactive,
                "BerichtType": "HERINNER",
                "bijlagen": [(minimal_pdf(500), "x")],
            },
        ]
    )
    before = server.counts(*BUSINESS_TABLES)
    sent = send(server, pki, payload)
    expected = {good: "Verwerkt", inactive: "BerichtTypeNietOndersteund"}
    assert sent.codes == expected
    assert sent.document is not None
    receipt = verify(sent.document, pki.root).receipt
    reasons = {b.bericht_id: b.reden for b in receipt.outcome.berichten}
    assert reasons[inactive] == "BerichtType HERINNER is niet actief"
    assert server.count("berichten", f"bericht_id = '{inactive}'") == 0
    assert server.count("bericht_bijlagen", f"bericht_id = '{inactive}'") == 0
    after = server.counts(*BUSINESS_TABLES)
    assert after["berichten"] == before["berichten"] + 1  # only the good one
    assert after["bijlagen"] == before["bijlagen"]  # the good one has none
    _, codes = result_codes(peer.wait_for("GLOBE-R-BV-Result", sent.message_id))
    assert codes == expected


def test_a_by_law_organisation_reaches_an_account_without_opt_in(
    server: Server, pki: Pki, peer: Peer
) -> None:
    (bericht_id,) = ids(1)
    payload = batch_xml(
        [{"BerichtID": bericht_id, "GebruikerID": NOT_SUBSCRIBED, "BerichtType": "AANSLAG"}],
        leverancier=BELASTINGDIENST,
    )
    sent = send(server, pki, payload, oin=BELASTINGDIENST)
    # Belastingdienst's CPA has syncReplyMode none: the Acknowledgment comes as its own message.
    assert sent.response.status_code == 200 and sent.document is None
    ack = peer.wait_for("Acknowledgment", sent.message_id)
    assert verify(ack.envelope, pki.root).receipt.outcome.berichten[0].verwerkingscode == "Verwerkt"
    _, codes = result_codes(peer.wait_for("GLOBE-R-BV-Result", sent.message_id))
    assert codes == {bericht_id: "Verwerkt"}


# --- attachment limits ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("personal", "general", "code"),
    [
        ([512_000 - 400, 400], [], "Verwerkt"),
        ([512_001 - 400, 400], [], "BijlageTeGroot"),
        ([], [2_097_152], "Verwerkt"),
        ([], [1_048_576, 1_048_577], "BijlageTeGroot"),
    ],
    ids=["personal-512000", "personal-512001", "general-2097152", "general-2097153"],
)
def test_attachment_sizes_are_judged_per_bericht_at_the_exact_limit(
    server: Server, pki: Pki, peer: Peer, personal: list[int], general: list[int], code: str
) -> None:
    bericht_id, other = ids(2)
    parts = [(f"alg-{n}@test", minimal_pdf(size)) for n, size in enumerate(general)]
    payload = batch_xml(
        [
            {
                "BerichtID": bericht_id,
                "bijlagen": [
                    (minimal_pdf(size), f"bijlage {n}") for n, size in enumerate(personal)
                ],
                "algemene": [(cid, f"folder {n}") for n, (cid, _) in enumerate(parts)],
            },
            {"BerichtID": other},
        ]
    )
    before = server.counts(*BUSINESS_TABLES)
    sent = send(server, pki, payload, general=parts)
    assert sent.codes == {bericht_id: code, other: "Verwerkt"}
    stored = server.count("berichten", f"bericht_id = '{bericht_id}'")
    assert stored == (1 if code == "Verwerkt" else 0)
    if code != "Verwerkt":  # nothing of the refused Bericht, only the other one
        assert server.count("bericht_bijlagen", f"bericht_id = '{bericht_id}'") == 0
        assert server.counts("berichten")["berichten"] == before["berichten"] + 1


def test_general_attachments_shared_by_a_batch_are_stored_once(
    server: Server, pki: Pki, peer: Peer
) -> None:
    folder = minimal_pdf(50_000)
    berichten = [{"BerichtID": i, "algemene": [("folder@test", "Folder")]} for i in ids(3)]
    before = server.count("bijlagen")
    sent = send(server, pki, batch_xml(berichten), general=[("folder@test", folder)])
    assert set(sent.codes.values()) == {"Verwerkt"}
    assert server.count("bijlagen") == before + 1
    assert server.count("bericht_bijlagen", "soort = 'algemeen'") >= 3


# --- hostile content: refused per Bericht, or (past a parser limit) at the ebMS layer ----------


def test_unsafe_pdfs_refuse_their_own_bericht_and_text_is_stored_whole(
    server: Server, pki: Pki, peer: Peer
) -> None:
    good, script, launch = ids(3)
    declared = pdfs.pdfa_pdf()
    payload = batch_xml(
        [
            {"BerichtID": good, "Onderwerp": "UwXbesluit", "bijlagen": [(declared, "Besluit")]},
            {"BerichtID": script, "bijlagen": [(pdfs.javascript_open_action(), "Besluit")]},
            {"BerichtID": launch, "algemene": [("launch@test", "Folder")]},
        ]
    ).replace(b"UwXbesluit", b"Uw<!---->besluit")
    before = server.count("berichten")
    sent = send(server, pki, payload, general=[("launch@test", pdfs.launch_action())])
    expected = {good: "Verwerkt", script: "TechnischProbleem", launch: "TechnischProbleem"}
    assert sent.codes == expected
    assert sent.document is not None
    outcome = verify(sent.document, pki.root).receipt.outcome
    reasons = {b.bericht_id: b.reden for b in outcome.berichten}
    assert reasons == {
        good: None,
        script: "persoonlijke bijlage 1 bevat JavaScript",
        launch: "algemene bijlage 1 bevat een Launch-actie (starten van een programma)",
    }
    assert server.count("berichten") == before + 1
    assert server.count("berichten", f"bericht_id = '{good}' AND onderwerp = 'Uwbesluit'") == 1
    linked = f"SELECT sha256 FROM bericht_bijlagen WHERE bericht_id = '{good}'"  # noqa: S608
    assert server.count("bijlagen", f"sha256 IN ({linked}) AND pdfa = '2A'") == 1
    _, codes = result_codes(peer.wait_for("GLOBE-R-BV-Result", sent.message_id))
    assert codes == expected


def test_one_oversized_inline_pdf_refuses_only_its_own_bericht(
    server: Server, pki: Pki, peer: Peer
) -> None:
    # Issue 14: 11 MB of PDF (14.7 MB of base64) once made the parser refuse the whole batch.
    big, good = ids(2)
    payload = batch_xml(
        [{"BerichtID": big, "bijlagen": [(minimal_pdf(11_000_000), "groot")]}, {"BerichtID": good}]
    )
    sent = send(server, pki, payload)
    assert sent.codes == {big: "BijlageTeGroot", good: "Verwerkt"}
    assert server.count("berichten", f"bericht_id IN ('{big}', '{good}')") == 1


def test_a_manifest_past_the_attribute_limit_is_refused_as_other_xml_before_hashing(
    server: Server, pki: Pki, peer: Peer
) -> None:
    attributes = b" ".join(b'a%d="1"' % n for n in range(40_000))
    before = server.counts(*BUSINESS_TABLES, "ebms_messages")
    sent = send(
        server, pki, batch_xml([{}]), soap_edit=(b"<eb:Manifest", b"<eb:Manifest " + attributes)
    )
    assert sent.response.status_code == 200 and sent.document is not None
    code, description = error_of(sent.document) or ("", "")
    assert code == "OtherXml"
    assert description.startswith("element Manifest heeft 400")
    assert description.endswith("attributen en namespacedeclaraties; maximaal 64")
    assert server.counts(*BUSINESS_TABLES, "ebms_messages") == before
    # The receipt hashes the raw bytes: no c14n was computed over the refused tree.
    receipt = verify(sent.document, pki.root).receipt
    assert receipt.outcome.code == "OtherXml"
    raw = sent.response.request.body
    assert isinstance(raw, bytes)
    assert receipt.body_hash == base64.b64encode(hashlib.sha256(raw).digest()).decode()


@pytest.mark.parametrize(
    "berichten",
    [
        [{"bijlagen": [(minimal_pdf(400), f"b{n}") for n in range(3)]}],
        [{"algemene": [(f"a{n}@test", f"a{n}") for n in range(4)]}],
        [{"SoortGebruiker": "Bedrijf"}],
    ],
    ids=["3-personal", "4-general", "not-schema"],
)
def test_a_batch_failing_the_schema_is_refused_whole(
    server: Server, pki: Pki, peer: Peer, berichten: list[dict[str, Any]]
) -> None:
    parts = [(f"a{n}@test", minimal_pdf(400)) for n in range(4)]
    before = server.counts(*BUSINESS_TABLES)
    sent = send(server, pki, batch_xml([*berichten, {}]), general=parts)
    assert sent.codes == {NIL_GUID: "XmlValidatieTegenXsdValtNegatiefUit"}
    assert server.counts(*BUSINESS_TABLES) == before
    counters, codes = result_codes(peer.wait_for("GLOBE-R-BV-Result", sent.message_id))
    assert codes == {NIL_GUID: "XmlValidatieTegenXsdValtNegatiefUit"}
    assert counters["AantalBerichtenMetTechnischProbleem"] == "1"


def test_an_inhoud_that_is_no_base64_refuses_the_batch_whole_saying_where_and_why(
    server: Server, pki: Pki, peer: Peer
) -> None:
    # libxml2 no longer checks Inhoud's xs:base64Binary (the service does): unused bits that
    # are not zero, which the schema refuses, must still refuse the batch, with nothing kept.
    good, bad = str(uuid.uuid4()), str(uuid.uuid4())
    pdf = minimal_pdf(400)
    payload = batch_xml(
        [
            {"BerichtID": good, "bijlagen": [(pdf, "a")]},
            {"BerichtID": bad, "bijlagen": [(pdf, "b")]},
        ]
    )
    encoded = base64.b64encode(pdf)
    last = payload.rindex(encoded)
    payload = payload[:last] + b"JVBERh==" + payload[last + len(encoded) :]
    before = server.counts(*BUSINESS_TABLES)
    sent = send(server, pki, payload)
    assert sent.codes == {NIL_GUID: "XmlValidatieTegenXsdValtNegatiefUit"}
    assert sent.document is not None
    (refusal,) = verify(sent.document, pki.root).receipt.outcome.berichten
    assert refusal.reden == (
        f"een Inhoud van Bericht 2 (BerichtID {bad}) is geen xs:base64Binary:"
        " het laatste teken voor de '=' (h) laat bits over die niet 0 zijn"
    )
    assert server.counts(*BUSINESS_TABLES) == before
    _, codes = result_codes(peer.wait_for("GLOBE-R-BV-Result", sent.message_id))
    assert codes == {NIL_GUID: "XmlValidatieTegenXsdValtNegatiefUit"}


def test_a_leverancier_that_is_not_the_sender_gets_oin_mismatch(
    server: Server, pki: Pki, peer: Peer
) -> None:
    before = server.counts(*BUSINESS_TABLES)
    sent = send(server, pki, batch_xml([{}], leverancier=BELASTINGDIENST))
    assert sent.codes == {NIL_GUID: "OinInCPAKomtNietOvereenMetOinInBericht"}
    assert server.counts(*BUSINESS_TABLES) == before


# --- the ebMS layer ------------------------------------------------------------------------


def _bad_boundary(content_type: str, body: bytes) -> tuple[str, bytes]:
    return content_type.replace('boundary="', 'boundary="x'), body


def _drop_payload(content_type: str, body: bytes) -> tuple[str, bytes]:
    return content_type, body.replace(b"Content-ID: <batch@test>", b"Content-ID: <other@test>")


@pytest.mark.parametrize(
    ("soap_edit", "package_edit", "code"),
    [
        ((f">{GEMEENTE}<".encode(), f">{STRIKT}<".encode()), None, "SecurityFailure"),
        ((cpa_id(GEMEENTE).encode(), b"ONBEKENDE-CPA"), None, "ValueNotRecognized"),
        (
            (b"urn:osb:services:MIJNOVERHEID.ebMS.BB.2.0<", b"urn:osb:services:IETS.ANDERS<"),
            None,
            "Inconsistent",
        ),
        ((b"GLOBE-R-BV-Request<", b"GLOBE-R-XX-Request<"), None, "ValueNotRecognized"),
        (
            (
                b'eb:type="urn:osb:oin">' + GEMEENTE.encode(),
                b'eb:type="urn:osb:kvk">' + GEMEENTE.encode(),
            ),
            None,
            "Inconsistent",
        ),
        (None, _drop_payload, "MimeProblem"),
        (None, _bad_boundary, "MimeProblem"),
        ((b"cid:batch@test", b"cid:nergens@test"), None, "MimeProblem"),
    ],
    ids=[
        "oin-mismatch",
        "unknown-cpa",
        "wrong-service",
        "wrong-action",
        "partyid-type",
        "missing-part",
        "bad-boundary",
        "wrong-cid",
    ],
)
def test_ebms_layer_problems_get_a_message_error_and_nothing_is_stored(
    server: Server, pki: Pki, soap_edit: tuple[bytes, bytes] | None, package_edit: Any, code: str
) -> None:
    before = server.counts(*BUSINESS_TABLES, "ebms_messages", "outbox")
    refusals = server.count("receipts", "outcome = 'Geweigerd'")
    sent = send(server, pki, batch_xml([{}]), soap_edit=soap_edit, package_edit=package_edit)
    assert sent.response.status_code == 200
    assert sent.document is not None
    error = error_of(sent.document)
    assert error is not None and error[0] == code, error
    verify_with_libxmlsec(sent.document, pki.root)
    assert server.counts(*BUSINESS_TABLES, "ebms_messages", "outbox") == before
    assert server.count("receipts", "outcome = 'Geweigerd'") == refusals + 1


@pytest.mark.parametrize(
    ("soap_edit", "package_edit", "hashed"),
    [
        (None, _bad_boundary, "the-message"),  # refused before its SOAP part is read
        ((cpa_id(GEMEENTE).encode(), b"ONBEKENDE-CPA"), None, "its-body"),
    ],
    ids=["mime-problem", "unknown-cpa"],
)
def test_a_refusal_receipt_hashes_the_whole_message_until_its_body_is_read(
    server: Server, pki: Pki, soap_edit: tuple[bytes, bytes] | None, package_edit: Any, hashed: str
) -> None:
    sent = send(server, pki, batch_xml([{}]), soap_edit=soap_edit, package_edit=package_edit)
    assert sent.document is not None
    receipt = verify(sent.document, pki.root).receipt
    whole = base64.b64encode(hashlib.sha256(sent.request_body).digest()).decode()
    assert (receipt.body_hash == whole) is (hashed == "the-message")


# --- duplicate elimination ----------------------------------------------------------------------


def test_a_replayed_message_id_gets_the_identical_stored_answer(
    server: Server, pki: Pki, peer: Peer
) -> None:
    payload = batch_xml([{}])
    message = batch_request(
        GEMEENTE, MIJNOVERHEID, cpa_id(GEMEENTE), "batch@test", [], datetime.now(UTC)
    )
    first = send(server, pki, payload, message_id=message)
    before = server.counts(*BUSINESS_TABLES, "receipts", "outbox")
    again = send(server, pki, payload, message_id=message)
    assert again.response.content == first.response.content
    assert server.counts(*BUSINESS_TABLES, "receipts", "outbox") == before


def test_the_same_message_id_sent_concurrently_is_processed_once(
    server: Server, pki: Pki, peer: Peer
) -> None:
    payload = batch_xml([{}, {}])
    message = batch_request(
        GEMEENTE, MIJNOVERHEID, cpa_id(GEMEENTE), "batch@test", [], datetime.now(UTC)
    )
    before = server.counts(*BUSINESS_TABLES, "receipts", "outbox")
    barrier = threading.Barrier(6)

    def post(_: int) -> bytes:
        barrier.wait()
        return send(server, pki, payload, message_id=message).response.content

    with ThreadPoolExecutor(6) as pool:
        answers = set(pool.map(post, range(6)))
    assert len(answers) == 1
    after = server.counts(*BUSINESS_TABLES, "receipts", "outbox")
    assert after["berichten"] == before["berichten"] + 2
    assert after["receipts"] == before["receipts"] + 1
    assert after["outbox"] == before["outbox"] + 1  # one result, no second


# --- reliable delivery of the asynchronous result --------------------------------------------


def test_the_result_is_retried_through_503_and_dropped_connections(
    server: Server, pki: Pki, peer: Peer
) -> None:
    message = batch_request(
        GEMEENTE, MIJNOVERHEID, cpa_id(GEMEENTE), "batch@test", [], datetime.now(UTC)
    )
    with peer.lock:
        peer.outages[message[0]] = [Reply(status=503), Reply(drop=True), Reply(status=503)]
    sent = send(server, pki, batch_xml([{}]), message_id=message)
    result = peer.wait_for("GLOBE-R-BV-Result", sent.message_id, timeout=40)
    assert result_codes(result)[1]
    # Three failed attempts, each retried after the CPA's RetryInterval, then delivered.
    where = f"ref_to_message_id = '{sent.message_id}' AND action = 'GLOBE-R-BV-Result'"
    wait_until(lambda: server.count("outbox", f"{where} AND status = 'delivered'") == 1)
    assert server.count("outbox", f"{where} AND attempts = 4") == 1


def test_delivery_continues_after_a_restart_of_the_adapter(
    server: Server, pki: Pki, peer: Peer
) -> None:
    message = batch_request(
        GEMEENTE, MIJNOVERHEID, cpa_id(GEMEENTE), "batch@test", [], datetime.now(UTC)
    )
    with peer.lock:  # down for the whole first life of the adapter
        peer.outages[message[0]] = [Reply(status=503)] * 100
    sent = send(server, pki, batch_xml([{}]), message_id=message)
    where = f"ref_to_message_id = '{sent.message_id}' AND action = 'GLOBE-R-BV-Result'"
    wait_until(lambda: server.count("outbox", f"{where} AND attempts >= 2") == 1)
    server.restart()
    with peer.lock:
        peer.outages.clear()
    peer.wait_for("GLOBE-R-BV-Result", sent.message_id, timeout=40)
    wait_until(lambda: server.count("outbox", f"{where} AND status = 'delivered'") == 1)


def test_a_result_nobody_takes_is_marked_failed_after_the_cpa_retries(
    server: Server, pki: Pki, peer: Peer
) -> None:
    message = batch_request(
        GEMEENTE, MIJNOVERHEID, cpa_id(GEMEENTE), "batch@test", [], datetime.now(UTC)
    )
    with peer.lock:
        peer.outages[message[0]] = [Reply(status=503)] * 100
    send(server, pki, batch_xml([{}]), message_id=message)
    where = f"ref_to_message_id = '{message[0]}' AND action = 'GLOBE-R-BV-Result'"
    # Retries 5 in the test CPAs: the first attempt and five more, then it is given up.
    wait_until(lambda: server.count("outbox", f"{where} AND status = 'failed'") == 1)
    assert server.count("outbox", f"{where} AND attempts = 6") == 1


def test_a_batch_with_a_dtd_is_refused_as_invalid_xml_without_expanding_it(
    server: Server, pki: Pki, peer: Peer
) -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE b [<!ENTITY a "aaaaaaaaaa">]>'
        + batch_xml([{}]).split(b"?>", 1)[1]
    )
    before = server.counts(*BUSINESS_TABLES)
    sent = send(server, pki, bomb)
    assert sent.codes == {NIL_GUID: "XmlValidatieTegenXsdValtNegatiefUit"}
    assert server.counts(*BUSINESS_TABLES) == before


def test_a_result_acknowledged_by_a_separate_message_is_marked_delivered(
    server: Server, pki: Pki, peer: Peer
) -> None:
    message = batch_request(
        GEMEENTE, MIJNOVERHEID, cpa_id(GEMEENTE), "batch@test", [], datetime.now(UTC)
    )
    with peer.lock:  # the peer takes the result but acknowledges it later, as its own message
        peer.outages[message[0]] = [Reply(acknowledge=False)]
    send(server, pki, batch_xml([{}]), message_id=message)
    result = peer.wait_for("GLOBE-R-BV-Result", message[0])
    where = f"message_id = '{result.header.message_id}'"
    wait_until(lambda: server.count("outbox", f"{where} AND status = 'sent'") == 1)
    _, ack = acknowledgment(result.header, datetime.now(UTC))
    response = requests.post(
        f"{server.url}/berichtenbox/ebms",
        data=ack,
        headers={"Content-Type": "text/xml; charset=UTF-8", "SOAPAction": '"ebXML"'},
        cert=pki.clients[GEMEENTE].pair,
        verify=str(pki.root),
        timeout=30,
    )
    assert response.status_code == 200
    wait_until(lambda: server.count("outbox", f"{where} AND status = 'delivered'") == 1)

"""Signed and encrypted ebMS (osb-rm-s, osb-rm-e, osb-be-s) end to end: real mTLS, SQLite and
PostgreSQL.

The server gets three extra CPAs for Gemeente Voorbeeldstad, made by `dk-adapter cpa generate`:
osb-rm-s with syncReplyMode mshSignalsOnly (the signed Acknowledgment comes back in the HTTP
answer), osb-rm-e with none (it comes as its own message) and best-effort osb-be-s (no
Acknowledgments, no retries, no duplicate elimination). They name the gemeente's TLS
certificate and the server's as signing and encryption certificates, as a CPA made by Logius
would. The peer is the kit's receiver, which verifies and decrypts our answers as the
gemeente's MSH must. One server per database serves the whole module.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from cryptography import x509
from lxml import etree
from sqlalchemy import text

from adapter import cli
from adapter.ebms.cpa import Cpa, CpaParty, load_cpa
from adapter.ebms.message import EB, acknowledgment, error_of, message_error, read_header
from adapter.ebms.mime import parse_package
from adapter.ebms.security import (
    DS,
    SigningKey,
    TrustAnchors,
    sign,
    signed_references,
    signer_of,
    verify,
    verify_acknowledgment,
)
from adapter.errors import OtherXml
from adapter.kit.client import MtlsClient
from adapter.kit.receiver import ReceivedMessage, Reply
from adapter.kit.sender import UNSIGNED, batch_request, deliver, verify_signed_answer
from adapter.soap.envelope import SOAP_ENV
from tests.berichtverwerk_samples import batch_xml, minimal_pdf
from tests.conftest import BELASTINGDIENST, GEMEENTE, Pki, Server, running_server
from tests.ebms_helpers import (
    BUSINESS_TABLES,
    MIJNOVERHEID,
    Peer,
    generate_cpas,
    result_codes,
    send,
)
from tests.helpers import wait_until
from tests.hostile import wire

SIGNED, SEALED, BEST_EFFORT = 2, 3, 4  # the CPAIds' sequence numbers: osb-rm-s, -rm-e, -be-s
PROFILES = {SIGNED: "osb-rm-s", SEALED: "osb-rm-e", BEST_EFFORT: "osb-be-s"}
SYNC_REPLY_MODES = {SIGNED: "mshSignalsOnly", SEALED: "none", BEST_EFFORT: "none"}


@dataclass(frozen=True)
class Secured:
    server: Server
    peer: Peer
    cpas: dict[int, Cpa]
    anchors: TrustAnchors
    gemeente: SigningKey
    directory: Path

    def mijnoverheid(self, sequence: int) -> CpaParty:
        party = self.cpas[sequence].party(MIJNOVERHEID)
        assert party is not None
        return party


@pytest.fixture(scope="module")
def secured(
    pki: Pki, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Secured]:
    def prepare(directory: Path) -> None:
        generate_cpas(
            directory,
            pki,
            {sequence: (PROFILES[sequence], SYNC_REPLY_MODES[sequence]) for sequence in PROFILES},
        )

    directory = tmp_path_factory.mktemp("ebms-security")
    with running_server(pki, database_url, directory, prepare) as server:
        cpas = {
            sequence: load_cpa(directory / "cpa" / f"{profile}.xml")
            for sequence, profile in PROFILES.items()
        }
        anchors = TrustAnchors(
            pki.root, pki.files.chain, pki.files.crl, timedelta(minutes=5), timedelta(minutes=5)
        )
        peer = Peer(server, pki, list(cpas.values()), anchors)
        client = pki.clients[GEMEENTE]
        with peer.receiver:
            yield Secured(
                server,
                peer,
                cpas,
                anchors,
                SigningKey.from_files(client.key, client.certificate),
                directory,
            )


def cpa_of(sequence: int) -> str:
    return f"MIJNOVERHEID-EBMS-BB-2-0_{GEMEENTE}_{MIJNOVERHEID}_{sequence}"


def send_secured(secured: Secured, pki: Pki, sequence: int, payload: bytes, **kwargs: object):  # type: ignore[no-untyped-def]
    options: dict[str, object] = {
        "cpa": cpa_of(sequence),
        "security": secured.mijnoverheid(sequence).security,
        "signing_key": secured.gemeente,
    }
    options.update(kwargs)
    return send(secured.server, pki, payload, **options)  # type: ignore[arg-type]


def xmlsec1_verifies(document: etree._Element, pki: Pki, tmp_path: Path) -> None:
    """Debian's xmlsec1 checks the header signature (the envelope reference) on its own."""
    path = tmp_path / "signed.xml"
    path.write_bytes(etree.tostring(document))
    result = subprocess.run(
        [
            "xmlsec1",
            "--verify",
            "--trusted-pem",
            str(pki.root),
            # xmlsec1 reads one certificate per file: the intermediates one by one.
            "--untrusted-pem",
            str(pki.files.tsp_ca),
            "--untrusted-pem",
            str(pki.files.domain_ca),
            "--node-xpath",
            "/*[local-name()='Envelope']/*[local-name()='Header']/*[local-name()='Signature']",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and "OK" in result.stdout + result.stderr, result.stderr


# --- accepted ---------------------------------------------------------------------------------


def test_a_signed_batch_is_accepted_with_a_signed_acknowledgment_and_a_signed_result(
    secured: Secured, pki: Pki, tmp_path: Path
) -> None:
    bericht_id = str(uuid.uuid4())
    payload = batch_xml([{"BerichtID": bericht_id, "bijlagen": [(minimal_pdf(5_000), "Brief")]}])
    before = secured.server.count("berichten")
    sent = send_secured(secured, pki, SIGNED, payload)
    assert sent.response.status_code == 200 and sent.document is not None
    assert error_of(sent.document) is None
    assert sent.codes == {bericht_id: "Verwerkt"}
    assert secured.server.count("berichten") == before + 1

    # The Acknowledgment is signed by MijnOverheid and carries the references it received.
    request = etree.fromstring(
        parse_package(sent.request_content_type, sent.request_body).soap.body
    )
    mijnoverheid = secured.mijnoverheid(SIGNED)
    verify_acknowledgment(
        sent.document,
        signer_of(mijnoverheid.security, MIJNOVERHEID),
        secured.anchors,
        datetime.now(UTC),
        request,
    )
    carried = sent.document.findall(f".//{{{EB}}}Acknowledgment/{{{DS}}}Reference")
    assert [r.get("URI") for r in carried] == ["", "cid:batch@test"]
    xmlsec1_verifies(sent.document, pki, tmp_path)

    # The result is signed, and the gemeente's receiver verified it before taking it.
    result = secured.peer.wait_for("GLOBE-R-BV-Result", sent.message_id)
    assert result.signature is not None
    assert result.signature.certificate == x509.load_pem_x509_certificate(
        pki.files.server.read_bytes()
    )
    assert result_codes(result)[1] == {bericht_id: "Verwerkt"}
    assert b"EncryptedData" not in (result.wire.body if result.wire else b"")
    # Its Acknowledgment came back signed in the HTTP answer; the outbox checked it.
    delivered(secured.server, result.header.message_id)


def test_an_encrypted_batch_is_decrypted_and_the_result_is_encrypted_for_the_gemeente(
    secured: Secured, pki: Pki
) -> None:
    bericht_id = str(uuid.uuid4())
    payload = batch_xml([{"BerichtID": bericht_id, "Onderwerp": "Vertrouwelijk onderwerp"}])
    before = secured.server.count("berichten")
    sent = send_secured(secured, pki, SEALED, payload)
    assert sent.response.status_code == 200
    assert b"Vertrouwelijk" not in sent.request_body  # only ciphertext went over the wire
    assert secured.server.count("berichten") == before + 1

    # syncReplyMode none: the signed Acknowledgment arrives at the gemeente as its own message.
    ack = secured.peer.wait_for("Acknowledgment", sent.message_id)
    request = etree.fromstring(
        parse_package(sent.request_content_type, sent.request_body).soap.body
    )
    verify_acknowledgment(
        ack.envelope,
        signer_of(secured.mijnoverheid(SEALED).security, MIJNOVERHEID),
        secured.anchors,
        datetime.now(UTC),
        request,
    )

    result = secured.peer.wait_for("GLOBE-R-BV-Result", sent.message_id)
    assert result.signature is not None
    assert result.wire is not None and b"EncryptedData" in result.wire.body
    assert b"BatchInformatie" not in result.wire.body
    assert result_codes(result)[1] == {bericht_id: "Verwerkt"}  # decrypted by the receiver
    delivered(secured.server, result.header.message_id)


def test_the_kit_sends_a_sealed_batch_as_a_leverancier_would(secured: Secured, pki: Pki) -> None:
    client = pki.clients[GEMEENTE]
    bericht_id = str(uuid.uuid4())
    with MtlsClient(client.certificate, client.key, pki.root) as mtls:
        delivery = deliver(
            mtls,
            f"{secured.server.url}/berichtenbox/ebms",
            MIJNOVERHEID,
            cpa_of(SEALED),
            batch_xml([{"BerichtID": bericht_id}]),
            [("algemeen-1@test", minimal_pdf(3_000))],
            secured.mijnoverheid(SEALED).security,
            secured.gemeente,
        )
    assert delivery.http_status == 200 and delivery.error is None
    assert delivery.request is not None and b"<ds:Signature" in delivery.request.body
    result = secured.peer.wait_for("GLOBE-R-BV-Result", delivery.message_id)
    assert result_codes(result)[1] == {bericht_id: "Verwerkt"}


def delivered(server: Server, message_id: str) -> None:
    wait_until(
        lambda: server.count("outbox", f"message_id = '{message_id}' AND status = 'delivered'") == 1
    )


# --- refused ----------------------------------------------------------------------------------


def _tamper_payload(content_type: str, body: bytes) -> tuple[str, bytes]:
    assert body.count(b"Onderwerp>") == 2  # one letter: its start and end tag
    return content_type, body.replace(b"Onderwerp>", b"Onderwerp>X", 1)


def _smuggle_part(content_type: str, body: bytes) -> tuple[str, bytes]:
    """A MIME part added after signing: the signature does not cover it."""
    boundary = content_type.split('boundary="')[1].split('"')[0].encode()
    extra = (
        b"--" + boundary + b"\r\nContent-ID: <extra@test>\r\nContent-Type: application/pdf"
        b"\r\n\r\n" + minimal_pdf(2_000) + b"\r\n"
    )
    closing = b"--" + boundary + b"--"
    return content_type, body.replace(closing, extra + closing)


def _options(case: str, pki: Pki) -> dict[str, object]:
    if case == "unsigned":
        return {"security": None}
    if case == "tampered part":
        return {"package_edit": _tamper_payload}
    if case == "unsigned part":
        return {"package_edit": _smuggle_part}
    return {"signing_key": forger(pki)}


def forger(pki: Pki) -> SigningKey:
    """A valid signature, by another organisation."""
    client = pki.clients[BELASTINGDIENST]
    return SigningKey.from_files(client.key, client.certificate)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("unsigned", "niet ondertekend"),
        ("tampered part", "cid:batch@test is gewijzigd"),
        ("unsigned part", "dekt MIME-deel cid:extra@test niet"),
        ("another organisation's key", f"OIN {BELASTINGDIENST}"),
    ],
)
def test_a_message_whose_signature_does_not_hold_is_a_security_failure_and_stores_nothing(
    secured: Secured, pki: Pki, case: str, reason: str
) -> None:
    bericht_id = str(uuid.uuid4())
    payload = batch_xml([{"BerichtID": bericht_id}])
    before = wire.snapshot(secured.server)
    sent = send_secured(secured, pki, SIGNED, payload, **_options(case, pki))
    after = wire.snapshot(secured.server)
    assert sent.response.status_code == 200 and sent.document is not None
    error = error_of(sent.document)
    assert error is not None and error[0] == "SecurityFailure", (case, error)
    assert reason in error[1], (case, error)
    assert wire.changed(before, after) == {wire.REFUSED: 1}
    assert secured.server.count("berichten", f"bericht_id = '{bericht_id}'") == 0
    assert all(after[table] == before[table] for table in BUSINESS_TABLES)


def test_our_message_errors_on_a_signed_channel_are_signed_and_unsigned_without_a_known_cpa(
    secured: Secured, pki: Pki, tmp_path: Path
) -> None:
    mijnoverheid = secured.mijnoverheid(SIGNED)
    # An unsigned message, sent by the kit: the SecurityFailure is signed, the kit checks it.
    client = pki.clients[GEMEENTE]
    with MtlsClient(client.certificate, client.key, pki.root) as mtls:
        delivery = deliver(
            mtls,
            f"{secured.server.url}/berichtenbox/ebms",
            MIJNOVERHEID,
            cpa_of(SIGNED),
            batch_xml([{}]),
            [],
            UNSIGNED,
        )
    assert delivery.error is not None and delivery.error[0] == "SecurityFailure", delivery.error
    verified = verify_signed_answer(delivery, mijnoverheid, secured.anchors)
    assert verified is not None
    assert verified.certificate == x509.load_pem_x509_certificate(pki.files.server.read_bytes())
    assert delivery.answer is not None
    xmlsec1_verifies(delivery.answer, pki, tmp_path)

    # A signed message with an Action the CPA does not know: refused by the route check,
    # after the CPA is known, so signed as well.
    action = (b">GLOBE-R-BV-Request<", b">GLOBE-R-BV-Onbekend<")
    sent = send_secured(secured, pki, SIGNED, batch_xml([{}]), soap_edit=action)
    assert sent.document is not None
    error = error_of(sent.document)
    assert error is not None and error[0] == "ValueNotRecognized", error
    verify(
        sent.document,
        {},
        signer_of(mijnoverheid.security, MIJNOVERHEID),
        secured.anchors,
        datetime.now(UTC),
    )

    # An unknown CPAId: no channel, no certificate of ours the sender could check: unsigned.
    unknown = (cpa_of(SIGNED).encode(), cpa_of(99).encode())
    sent = send_secured(secured, pki, SIGNED, batch_xml([{}]), soap_edit=unknown)
    assert sent.document is not None
    error = error_of(sent.document)
    assert error is not None and error[0] == "ValueNotRecognized" and "CPAId" in error[1]
    # (The receipt it carries is signed, as always; the message itself is not.)
    assert sent.document.find(f"{{{SOAP_ENV}}}Header/{{{DS}}}Signature") is None


def test_an_encrypted_cpa_refuses_a_signed_message_whose_payload_is_not_encrypted(
    secured: Secured, pki: Pki
) -> None:
    signed_only = secured.mijnoverheid(SIGNED).security
    before = wire.snapshot(secured.server)
    sent = send_secured(secured, pki, SEALED, batch_xml([{}]), security=signed_only)
    assert sent.document is not None
    error = error_of(sent.document)
    assert error is not None and error[0] == "SecurityFailure"
    assert "niet versleuteld" in error[1] or "geen xenc:EncryptedData" in error[1]
    assert wire.changed(before, wire.snapshot(secured.server)) == {wire.REFUSED: 1}


# --- duplicates and signals on signed channels -----------------------------------------------


def _post(secured: Secured, pki: Pki, envelope: bytes) -> requests.Response:
    return requests.post(
        f"{secured.server.url}/berichtenbox/ebms",
        data=envelope,
        headers={"Content-Type": "text/xml; charset=UTF-8", "SOAPAction": '"ebXML"'},
        cert=pki.clients[GEMEENTE].pair,
        verify=str(pki.root),
        timeout=30,
    )


def _security_failure(response: requests.Response) -> str:
    assert response.status_code == 200 and response.content.strip()
    error = error_of(etree.fromstring(response.content))
    assert error is not None and error[0] == "SecurityFailure", error
    return error[1]


def test_a_copy_of_a_known_message_id_gets_the_stored_answer_only_when_signed_by_the_sender(
    secured: Secured, pki: Pki
) -> None:
    known = batch_request(
        GEMEENTE, MIJNOVERHEID, cpa_of(SIGNED), "batch@test", [], datetime.now(UTC), True
    )
    payload = batch_xml([{}])
    first = send_secured(secured, pki, SIGNED, payload, message_id=known)
    assert first.document is not None and error_of(first.document) is None
    before = wire.snapshot(secured.server)

    unsigned = send_secured(secured, pki, SIGNED, payload, message_id=known, security=None)
    forged = send_secured(secured, pki, SIGNED, payload, message_id=known, signing_key=forger(pki))
    for copy in (unsigned, forged):
        assert copy.document is not None
        error = error_of(copy.document)
        assert error is not None and error[0] == "SecurityFailure", error
        assert copy.response.content != first.response.content
    assert wire.changed(before, wire.snapshot(secured.server)) == {wire.REFUSED: 2}

    again = send_secured(secured, pki, SIGNED, payload, message_id=known)
    assert again.response.content == first.response.content  # the stored, signed answer


def _waiting_result(secured: Secured, pki: Pki) -> ReceivedMessage:
    """A result of ours on the osb-rm-e channel that the gemeente took but did not yet
    acknowledge: it waits in the outbox (sent) for an asynchronous Acknowledgment."""
    request = batch_request(
        GEMEENTE, MIJNOVERHEID, cpa_of(SEALED), "batch@test", [], datetime.now(UTC), True
    )
    # Every attempt (1 + 5 retries; our Acknowledgment of the request too) goes unacknowledged.
    secured.peer.outages[request[0]] = [Reply(acknowledge=False)] * 8
    send_secured(secured, pki, SEALED, batch_xml([{}]), message_id=request)
    result = secured.peer.wait_for("GLOBE-R-BV-Result", request[0])
    where = f"message_id = '{result.header.message_id}' AND status = 'sent'"
    wait_until(lambda: secured.server.count("outbox", where) == 1)
    return result


def _outbox_state(server: Server, message_id: str) -> tuple[str, str | None]:
    with server.engine.connect() as connection:
        row = connection.execute(
            text("SELECT status, last_error FROM outbox WHERE message_id = :id"),
            {"id": message_id},
        ).one()
    return row.status, row.last_error


def test_an_asynchronous_acknowledgment_must_carry_the_references_of_what_we_signed(
    secured: Secured, pki: Pki
) -> None:
    result = _waiting_result(secured, pki)
    message_id = result.header.message_id
    # Signed by the gemeente, but acknowledging other content than what we signed.
    another = batch_request(GEMEENTE, MIJNOVERHEID, cpa_of(SEALED), "x@test", [], datetime.now(UTC))
    other = signed_references(etree.fromstring(sign(another[1], [], secured.gemeente)))
    _, wrong = acknowledgment(result.header, datetime.now(UTC), references=other)
    reason = _security_failure(_post(secured, pki, sign(wrong, [], secured.gemeente)))
    assert "draagt niet de ds:Reference-elementen" in reason
    _, unsigned = acknowledgment(
        result.header, datetime.now(UTC), references=signed_references(result.envelope)
    )
    assert "niet ondertekend" in _security_failure(_post(secured, pki, unsigned))
    assert _outbox_state(secured.server, message_id)[0] == "sent"

    response = _post(secured, pki, sign(unsigned, [], secured.gemeente))
    assert response.status_code == 200 and not response.content.strip()
    assert _outbox_state(secured.server, message_id) == ("delivered", None)


def test_an_asynchronous_message_error_on_a_signed_channel_must_be_signed_by_the_party(
    secured: Secured, pki: Pki
) -> None:
    result = _waiting_result(secured, pki)
    message_id = result.header.message_id
    _, unsigned = message_error(result.header, OtherXml("niet te verwerken"), datetime.now(UTC))
    assert "niet ondertekend" in _security_failure(_post(secured, pki, unsigned))
    forged = sign(unsigned, [], forger(pki))
    assert f"OIN {BELASTINGDIENST}" in _security_failure(_post(secured, pki, forged))
    assert _outbox_state(secured.server, message_id)[0] == "sent"

    response = _post(secured, pki, sign(unsigned, [], secured.gemeente))
    assert response.status_code == 200 and not response.content.strip()
    assert _outbox_state(secured.server, message_id) == ("failed", "MessageError ontvangen")


# --- best effort (osb-be-s) ------------------------------------------------------------------


def test_a_best_effort_batch_gets_no_acknowledgment_and_its_result_asks_for_none(
    secured: Secured, pki: Pki
) -> None:
    bericht_id = str(uuid.uuid4())
    sent = send_secured(
        secured, pki, BEST_EFFORT, batch_xml([{"BerichtID": bericht_id}]), reliable=False
    )
    assert sent.response.status_code == 200 and sent.document is None  # taken, nothing more
    assert secured.server.count("berichten", f"bericht_id = '{bericht_id}'") == 1

    result = secured.peer.wait_for("GLOBE-R-BV-Result", sent.message_id)
    assert result.signature is not None  # -s: still signed, and verified by the gemeente
    assert not result.header.ack_requested and not result.header.duplicate_elimination
    assert result_codes(result)[1] == {bericht_id: "Verwerkt"}
    delivered(secured.server, result.header.message_id)  # taken (HTTP 200) is done
    acks = f"ref_to_message_id = '{sent.message_id}' AND action = 'Acknowledgment'"
    assert secured.server.count("outbox", acks) == 0


def test_a_best_effort_result_the_gemeente_cannot_take_is_not_retried(
    secured: Secured, pki: Pki
) -> None:
    request = batch_request(
        GEMEENTE,
        MIJNOVERHEID,
        cpa_of(BEST_EFFORT),
        "batch@test",
        [],
        datetime.now(UTC),
        reliable=False,
    )
    secured.peer.outages[request[0]] = [Reply(status=503)]
    send_secured(secured, pki, BEST_EFFORT, batch_xml([{}]), message_id=request, reliable=False)
    where = f"ref_to_message_id = '{request[0]}' AND action = 'GLOBE-R-BV-Result'"
    wait_until(lambda: secured.server.count("outbox", f"{where} AND status = 'failed'") == 1)
    attempts = f"outbox_id IN (SELECT id FROM outbox WHERE {where})"  # noqa: S608 - test literals
    assert secured.server.count("outbox_attempts", attempts) == 1  # retries 0: one attempt


def test_a_repeated_message_id_on_a_best_effort_cpa_is_refused_and_not_processed_again(
    secured: Secured, pki: Pki
) -> None:
    request = batch_request(
        GEMEENTE,
        MIJNOVERHEID,
        cpa_of(BEST_EFFORT),
        "batch@test",
        [],
        datetime.now(UTC),
        reliable=False,
    )
    first = send_secured(
        secured, pki, BEST_EFFORT, batch_xml([{}]), message_id=request, reliable=False
    )
    assert first.document is None
    before = wire.snapshot(secured.server)
    again = send_secured(
        secured, pki, BEST_EFFORT, batch_xml([{}]), message_id=request, reliable=False
    )
    assert again.document is not None
    error = error_of(again.document)
    assert error is not None and error[0] == "Inconsistent"
    assert "geen duplicate elimination" in error[1] and "eigen MessageId" in error[1]
    assert wire.changed(before, wire.snapshot(secured.server)) == {wire.REFUSED: 1}


# --- the kit's command line ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sequence", "answer"),
    [(SIGNED, "Acknowledgment received"), (BEST_EFFORT, "taken (best effort: no Acknowledgment)")],
)
def test_dk_adapter_send_with_a_signed_cpa_delivers_a_signed_batch(
    secured: Secured,
    pki: Pki,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    sequence: int,
    answer: str,
) -> None:
    """The command as a leverancier types it; run by its own `main` in this process (the
    Python start of `dk-adapter` itself is covered by tests/test_send_cli.py)."""
    client = pki.clients[GEMEENTE]
    before = secured.server.count("berichten")
    done = cli.main(
        [
            "send",
            f"--endpoint={secured.server.url}/berichtenbox/ebms",
            f"--cert={client.certificate}",
            f"--key={client.key}",
            f"--ca={pki.root}",
            f"--cpa={secured.directory / 'cpa' / f'{PROFILES[sequence]}.xml'}",
            "--bsn=999993653",
            "--type=BESLUIT",
            "--subject=Ondertekend",
            f"--save={tmp_path}",
        ]
    )
    printed = capsys.readouterr().out
    assert done == 0, printed
    assert answer in printed
    assert (sequence == SIGNED) is ("verifies (signed by" in printed)  # the Ack's receipt
    assert secured.server.count("berichten") == before + 1
    request = etree.fromstring((tmp_path / "request.xml").read_bytes())
    header = read_header(request)
    assert request.find(f".//{{{DS}}}Signature") is not None  # signed with the --cert key
    assert header.ack_requested is (sequence == SIGNED)
    # The server's signed result reached the gemeente, which verified it.
    result = secured.peer.wait_for("GLOBE-R-BV-Result", header.message_id)
    assert result.signature is not None and result_codes(result)[1]

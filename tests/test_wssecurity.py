"""WS-Security (Digikoppeling 2W-be-S and 2W-be-SE) end to end, over real mutual TLS.

Two organisations are added to the server's configuration: one with 2W-be-S, one with
2W-be-SE, both with `receipt = "wsse"` (the signed answer is the receipt). Their requests are
signed (and encrypted) by tests.wss_helpers on python-xmlsec; answers are checked with
python-xmlsec and with the xmlsec1 command line tool, and must confirm the request's
signature. Every refusal gets its WS-Security fault code and stores its refusal receipt only.
Two other stacks sign too: node's `soap` (WSSecurityCert, accepted) and zeep (BinarySignature,
which covers no WS-Addressing header and is refused, saying so; zeep verifies that answer).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree
from zeep import Client
from zeep.exceptions import Fault
from zeep.transports import Transport
from zeep.wsa import WsAddressingPlugin
from zeep.wsse import utils as zeep_wsse
from zeep.wsse.signature import BinarySignature, verify_envelope

from adapter.berichtenbox.abonnementen import ACTION
from adapter.lopende_zaken.wus import NS as LZ
from adapter.pki.devca import DEV_P12_PASSWORD, client_files
from adapter.soap.envelope import envelope_of
from adapter.soap.wssecurity import WSSE, XENC, WssCredentials, decrypt_body
from tests.conftest import (
    GEMEENTE,
    ROOT,
    SEALED,
    SIGNED,
    ClientCert,
    Pki,
    Server,
    add_wss_organisations,
    running_server,
)
from tests.hostile import wire
from tests.soap_helpers import SOAP, aanvraag, addressing, post, receipt_element
from tests.wss_helpers import (
    encrypt_body,
    sign_request,
    signature_value,
    token_certificate,
    verify_answer,
    xmlsec1_verifies,
)

BSN = "999993653"
ZAAK_ACTION = f"{LZ}/ZaakAanleveren"


@pytest.fixture(scope="module")
def server(
    pki: Pki,
    wss_clients: dict[str, ClientCert],
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("wss")
    with running_server(pki, database_url, directory, add_wss_organisations) as running:
        yield running


def _message_id() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def validate_abonnementen(server: Server, oin: str, message_id: str) -> tuple[str, bytes]:
    headers = addressing(f"{server.url}/abonnementen", message_id=message_id)
    return "/abonnementen", aanvraag([BSN], oin, headers=headers)


def zaak_aanleveren(server: Server, _oin: str, message_id: str) -> tuple[str, bytes]:
    headers = addressing(f"{server.url}/lopende-zaken", message_id=message_id, action=ZAAK_ACTION)
    identificatie = f"WSS-{uuid.uuid4().hex[:12]}"
    body = f"""<s:Envelope xmlns:s="{SOAP}"><s:Header>{headers}</s:Header><s:Body>
<ZaakAanleveren xmlns="{LZ}"><zaak>
<identificatie>{identificatie}</identificatie><omschrijving>Bezwaar</omschrijving>
<startdatum>2026-04-01</startdatum><initiator><bsn>{BSN}</bsn></initiator>
<status><omschrijving>Ontvangen</omschrijving><datumStatusGezet>2026-04-01T10:00:00</datumStatusGezet></status>
</zaak></ZaakAanleveren></s:Body></s:Envelope>"""
    return "/lopende-zaken", body.encode()


REQUESTS = {"ValidateAbonnementen": validate_abonnementen, "ZaakAanleveren": zaak_aanleveren}
ACTIONS = {"ValidateAbonnementen": ACTION, "ZaakAanleveren": ZAAK_ACTION}


def _key(client: ClientCert) -> bytes:
    return client.key.read_bytes()


def _certificate(client: ClientCert) -> x509.Certificate:
    return x509.load_pem_x509_certificates(client.certificate.read_bytes())[0]


def _send(
    server: Server, pki: Pki, client: ClientCert, path: str, body: bytes, action: str
) -> requests.Response:
    return post(f"{server.url}{path}", body, client.pair, pki.root, soap_action=f'"{action}"')


def _server_certificate(pki: Pki) -> x509.Certificate:
    return x509.load_pem_x509_certificates(pki.files.server.read_bytes())[0]


def _check_signed_answer(
    document: etree._Element, pki: Pki, request: bytes, directory: Path
) -> None:
    """Signed by our WS-Security certificate, verified by python-xmlsec, xmlsec1 and zeep,
    with the request's SignatureValue confirmed and no Afleverbevestiging header (receipt =
    wsse)."""
    assert token_certificate(document) == _server_certificate(pki)
    assert verify_answer(document, _server_certificate(pki)) == signature_value(request)
    assert receipt_element(document) is None
    answer, certificate = directory / "answer.xml", directory / "wss.pem"
    answer.write_bytes(etree.tostring(document))
    certificate.write_bytes(_server_certificate(pki).public_bytes(serialization.Encoding.PEM))
    checked = xmlsec1_verifies(answer, certificate)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "OK" in checked.stdout + checked.stderr
    verify_envelope(document, str(certificate))  # zeep's WS-Security verifier as well


@pytest.mark.parametrize("operation", sorted(REQUESTS))
def test_a_signed_request_gets_a_signed_answer_confirming_its_signature(
    server: Server,
    pki: Pki,
    wss_clients: dict[str, ClientCert],
    tmp_path: Path,
    operation: str,
) -> None:
    client = wss_clients[SIGNED]
    path, body = REQUESTS[operation](server, SIGNED, _message_id())
    request = sign_request(body, _key(client), _certificate(client))
    before = wire.snapshot(server)
    response = _send(server, pki, client, path, request, ACTIONS[operation])
    assert response.status_code == 200, response.text
    _check_signed_answer(etree.fromstring(response.content), pki, request, tmp_path)
    changes = wire.changed(before, wire.snapshot(server))
    assert changes.pop(wire.ACCEPTED) == 1  # the receipt is stored though not sent
    assert changes == (
        {} if operation == "ValidateAbonnementen" else {"zaken": 1, "zaak_statussen": 1}
    )


@pytest.mark.parametrize("operation", sorted(REQUESTS))
def test_an_encrypted_request_gets_an_encrypted_signed_answer(
    server: Server,
    pki: Pki,
    wss_clients: dict[str, ClientCert],
    tmp_path: Path,
    operation: str,
) -> None:
    client = wss_clients[SEALED]
    path, body = REQUESTS[operation](server, SEALED, _message_id())
    request = encrypt_body(
        sign_request(body, _key(client), _certificate(client)), _server_certificate(pki)
    )
    assert BSN.encode() not in request
    response = _send(server, pki, client, path, request, ACTIONS[operation])
    assert response.status_code == 200, response.text
    body = etree.fromstring(response.content).find(f"{{{SOAP}}}Body")
    assert body is not None and [child.tag for child in body] == [f"{{{XENC}}}EncryptedData"]
    key = serialization.load_pem_private_key(_key(client), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    opened = decrypt_body(
        envelope_of(etree.fromstring(response.content)), WssCredentials(key, _certificate(client))
    )
    assert etree.QName(opened.payload).localname == f"{operation}Response"
    _check_signed_answer(opened.root, pki, request, tmp_path)


def test_a_repeated_signed_request_gets_the_same_signed_answer(
    server: Server, pki: Pki, wss_clients: dict[str, ClientCert]
) -> None:
    client = wss_clients[SIGNED]
    path, body = validate_abonnementen(server, SIGNED, _message_id())
    first = _send(
        server, pki, client, path, sign_request(body, _key(client), _certificate(client)), ACTION
    )
    before = wire.snapshot(server)
    again = _send(
        server, pki, client, path, sign_request(body, _key(client), _certificate(client)), ACTION
    )
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert wire.snapshot(server) == before


def _unsigned(body: bytes, client: ClientCert) -> bytes:
    return body


def _signed(**options: object) -> Callable[[bytes, ClientCert], bytes]:
    def sign(body: bytes, client: ClientCert) -> bytes:
        return sign_request(body, _key(client), _certificate(client), **options)  # type: ignore[arg-type]

    return sign


def _tampered(body: bytes, client: ClientCert) -> bytes:
    return _signed()(body, client).replace(BSN.encode(), b"999990019")


REFUSALS = {
    "unsigned": (_unsigned, "InvalidSecurity", "wsse:Security ontbreekt"),
    "body-not-signed": (
        _signed(parts=("Timestamp", "To", "Action", "MessageID")),
        "FailedCheck",
        "soap:Body is niet ondertekend",
    ),
    "action-not-signed": (
        _signed(parts=("Body", "Timestamp", "To", "MessageID")),
        "FailedCheck",
        "wsa:Action is niet ondertekend",
    ),
    "stale": (
        _signed(created=datetime.now(UTC) - timedelta(hours=2), expires=None),
        "MessageExpired",
        "is ouder dan 300 s",
    ),
    "sha1": (
        _signed(method=xmlsec.constants.TransformRsaSha1),
        "UnsupportedAlgorithm",
        "rsa-sha1 is niet toegestaan",
    ),
    "tampered": (_tampered, "FailedCheck", "de handtekening klopt niet"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_request_whose_security_does_not_hold_gets_its_wss_fault_and_only_a_refusal_receipt(
    server: Server, pki: Pki, wss_clients: dict[str, ClientCert], case: str
) -> None:
    secure, code, reason = REFUSALS[case]
    client = wss_clients[SIGNED]
    path, body = zaak_aanleveren(server, SIGNED, _message_id())
    before = wire.snapshot(server)
    response = _send(server, pki, client, path, secure(body, client), ZAAK_ACTION)
    assert response.status_code == 500, response.text
    document = etree.fromstring(response.content)
    fault = document.find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    assert fault is not None
    faultcode = fault.find("faultcode")
    assert faultcode is not None and faultcode.text == f"wsse:{code}"
    assert faultcode.nsmap["wsse"] == WSSE
    assert reason in (fault.findtext("faultstring") or "")
    assert wire.changed(before, wire.snapshot(server)) == {wire.REFUSED: 1}
    # The refusal too is signed by us (its signature is the receipt), confirming nothing.
    verify_answer(document, _server_certificate(pki), confirmed=False)


def test_a_valid_signature_by_another_organisation_is_refused(
    server: Server, pki: Pki, wss_clients: dict[str, ClientCert]
) -> None:
    client, other = wss_clients[SIGNED], wss_clients[SEALED]
    path, body = validate_abonnementen(server, SIGNED, _message_id())
    request = sign_request(body, _key(other), _certificate(other))
    before = wire.snapshot(server)
    response = _send(server, pki, client, path, request, ACTION)
    assert response.status_code == 500
    fault = etree.fromstring(response.content).find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    assert fault is not None and fault.findtext("faultcode") == "wsse:FailedAuthentication"
    assert f"hoort bij OIN {SEALED}, niet bij {SIGNED}" in (fault.findtext("faultstring") or "")
    assert wire.changed(before, wire.snapshot(server)) == {wire.REFUSED: 1}


def test_node_soap_signing_with_wssecuritycert_is_accepted_and_its_signature_confirmed(
    server: Server, pki: Pki, wss_clients: dict[str, ClientCert], tmp_path: Path
) -> None:
    """Another stack's signature: node's `soap` WSSecurityCert (xml-crypto), as configured
    for Digikoppeling in tests/stacks/node/wss_client.js."""
    client = wss_clients[SIGNED]
    leaf = tmp_path / "leaf.pem"  # WSSecurityCert takes one certificate, not a chain
    leaf.write_bytes(_certificate(client).public_bytes(serialization.Encoding.PEM))
    scenario = {
        "wsdl": f"{server.url}/abonnementen?wsdl",
        "p12": str(client_files(pki.directory, SIGNED).pkcs12),
        "password": DEV_P12_PASSWORD,
        "root": str(pki.root),
        "key": str(client.key),
        "certificate": str(leaf),
        "to": f"{server.url}/abonnementen",
        "action": ACTION,
        "leverancier": SIGNED,
        "bsn": BSN,
    }
    before = wire.snapshot(server)
    done = subprocess.run(
        ["node", "wss_client.js"],
        input=json.dumps(scenario),
        cwd=ROOT / "tests" / "stacks" / "node",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert "fault" not in out, out["fault"]
    assert [key for key, _ in out["abonnementen"]] == [BSN]
    _check_signed_answer(
        etree.fromstring(out["response"].encode()), pki, out["request"].encode(), tmp_path
    )
    assert wire.changed(before, wire.snapshot(server)) == {wire.ACCEPTED: 1}


def test_the_security_header_of_an_organisation_without_a_signing_profile_is_not_verified(
    server: Server, pki: Pki
) -> None:
    """Gemeente Voorbeeldstad (wus_profile "none"): a wsse:Security without mustUnderstand is
    ignored as before, even with a broken signature; the answer is as always."""
    client = pki.clients[GEMEENTE]
    path, body = validate_abonnementen(server, GEMEENTE, _message_id())
    request = sign_request(body, _key(client), _certificate(client), must_understand=False)
    response = _send(server, pki, client, path, request.replace(BSN.encode(), b"999990019"), ACTION)
    assert response.status_code == 200, response.text
    document = etree.fromstring(response.content)
    assert receipt_element(document) is not None
    assert document.find(f"{{{SOAP}}}Header/{{{WSSE}}}Security") is None


class ZeepSignature(BinarySignature):  # type: ignore[misc]
    """zeep's BinarySignature with RSA-SHA256, a Timestamp it signs too, and answers verified
    with the adapter's certificate (zeep would use the client's own)."""

    def __init__(self, key: Path, certificate: Path, server_certificate: Path) -> None:
        super().__init__(
            str(key),
            str(certificate),
            signature_method=xmlsec.constants.TransformRsaSha256,
            digest_method=xmlsec.constants.TransformSha256,
        )
        self.server_certificate = server_certificate

    def apply(self, envelope: etree._Element, headers: dict[str, str]) -> object:
        security = zeep_wsse.get_security_header(envelope)
        stamp = zeep_wsse.WSU.Timestamp(
            zeep_wsse.WSU.Created(zeep_wsse.get_timestamp(zulu_timestamp=True))
        )
        security.append(stamp)
        return super().apply(envelope, headers)

    def verify(self, envelope: etree._Element) -> None:
        verify_envelope(envelope, str(self.server_certificate))


def test_zeep_signing_body_and_timestamp_only_is_told_the_ws_addressing_headers_are_unsigned(
    server: Server, pki: Pki, wss_clients: dict[str, ClientCert], tmp_path: Path
) -> None:
    """zeep's BinarySignature covers Body and Timestamp, and its WS-Addressing plugin adds the
    headers after signing: not 2W-be-S (WB004). zeep verifies our signed fault, which says so."""
    client = wss_clients[SIGNED]
    leaf, ours = tmp_path / "leaf.pem", tmp_path / "wss.pem"
    leaf.write_bytes(_certificate(client).public_bytes(serialization.Encoding.PEM))
    ours.write_bytes(_server_certificate(pki).public_bytes(serialization.Encoding.PEM))
    session = requests.Session()
    session.cert, session.verify, session.trust_env = client.pair, str(pki.root), False
    zeep = Client(
        f"{server.url}/abonnementen?wsdl",
        transport=Transport(session=session),
        wsse=ZeepSignature(client.key, leaf, ours),
        plugins=[WsAddressingPlugin()],
    )
    before = wire.snapshot(server)
    with pytest.raises(Fault) as refused:
        zeep.service.ValidateAbonnementen(
            {
                "berichtleverancierCode": SIGNED,
                "berichtTypeCode": "BESLUIT",
                "klanten": {"Klant": [{"Key": BSN, "Rol": "Burger"}]},
            }
        )
    assert refused.value.code == "wsse:FailedCheck"
    assert "wsa:Action is niet ondertekend" in refused.value.message
    assert wire.changed(before, wire.snapshot(server)) == {wire.REFUSED: 1}

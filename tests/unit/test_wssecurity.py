"""adapter.soap.wssecurity: what a 2W-be-S/SE request must prove, and how answers are signed.

Requests are signed (and encrypted) by tests.wss_helpers, on python-xmlsec directly, as an
organisation's own stack would; answers are checked the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from adapter.errors import (
    WsSecurityFault,
    WssExpired,
    WssFailedAuthentication,
    WssFailedCheck,
    WssInvalidSecurity,
    WssUnsupportedAlgorithm,
)
from adapter.pki.devca import DevHierarchy, IssuedCertificate, new_hierarchy
from adapter.soap.addressing import WSA
from adapter.soap.envelope import Envelope, build_fault, envelope_of, parse_envelope, serialise
from adapter.soap.wssecurity import (
    WSU,
    XENC,
    SignerTrust,
    WssCredentials,
    WsSecurity,
    decrypt_body,
    secure_response,
    verify_request,
)
from tests.wss_helpers import (
    SOAP,
    encrypt_body,
    sign_request,
    signature_value,
    signed_ids,
    verify_answer,
)

GEMEENTE = "00000099000000002000"
OTHER = "00000099000000001000"
RECEIVER = "00000004003214345001"
PAYLOAD = '<v:Vraag xmlns:v="urn:test:vraag"><v:bsn>999993653</v:bsn></v:Vraag>'


def request(payload: str = PAYLOAD) -> bytes:
    headers = (
        f'<wsa:To xmlns:wsa="{WSA}">https://mijnoverheid.example/abonnementen</wsa:To>'
        f'<wsa:Action xmlns:wsa="{WSA}">urn:test:Vraag</wsa:Action>'
        f'<wsa:MessageID xmlns:wsa="{WSA}">urn:uuid:{datetime.now(UTC).timestamp()}</wsa:MessageID>'
    )
    return (
        f'<s:Envelope xmlns:s="{SOAP}"><s:Header>{headers}</s:Header>'
        f"<s:Body>{payload}</s:Body></s:Envelope>"
    ).encode()


@dataclass(frozen=True)
class World:
    hierarchy: DevHierarchy
    trust: SignerTrust
    ours: WssCredentials
    gemeente: IssuedCertificate
    other_organisation: IssuedCertificate
    stranger: IssuedCertificate  # the right OIN, under a root we do not trust
    revoked: IssuedCertificate

    def security(self) -> WsSecurity:
        return WsSecurity(self.ours, self.trust)


def credentials(issued: IssuedCertificate) -> WssCredentials:
    key = issued.private_key
    assert isinstance(key, rsa.RSAPrivateKey)
    return WssCredentials(key, issued.certificate)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    directory = tmp_path_factory.mktemp("wss")
    hierarchy = new_hierarchy("Unit")
    tsp = hierarchy.tsp
    revoked = tsp.issue_tls_certificate("Ingetrokken", oin=GEMEENTE)
    crl = tsp.issue_crl(
        [
            x509.RevokedCertificateBuilder()
            .serial_number(revoked.certificate.serial_number)
            .revocation_date(datetime.now(UTC) - timedelta(hours=1))
            .build()
        ]
    )
    (directory / "root.pem").write_bytes(hierarchy.root_pem())
    (directory / "chain.pem").write_bytes(hierarchy.chain_pem())
    (directory / "crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    trust = SignerTrust(
        directory / "root.pem",
        directory / "chain.pem",
        directory / "crl.pem",
        timedelta(seconds=300),
        timedelta(seconds=300),
    )
    server = tsp.issue_tls_certificate("localhost", oin=RECEIVER)
    return World(
        hierarchy=hierarchy,
        trust=trust,
        ours=credentials(server),
        gemeente=tsp.issue_tls_certificate("Gemeente", oin=GEMEENTE),
        other_organisation=tsp.issue_tls_certificate("Belastingdienst", oin=OTHER),
        stranger=new_hierarchy("Stranger").tsp.issue_tls_certificate("Vreemd", oin=GEMEENTE),
        revoked=revoked,
    )


def signed(issued: IssuedCertificate, data: bytes | None = None, **options: object) -> bytes:
    return sign_request(
        data or request(),
        issued.key_pem(),
        issued.certificate,
        **options,  # type: ignore[arg-type]
    )


def verify(world: World, data: bytes, oin: str = GEMEENTE) -> object:
    return verify_request(parse_envelope(data), world.trust, oin, datetime.now(UTC))


def refusal(world: World, data: bytes, oin: str = GEMEENTE) -> WsSecurityFault:
    with pytest.raises(WsSecurityFault) as caught:
        verify(world, data, oin)
    return caught.value


# --- accepted ------------------------------------------------------------------------------


def test_a_signed_request_verifies_and_its_answer_confirms_its_signature(world: World) -> None:
    data = signed(world.gemeente)
    verified = verify_request(parse_envelope(data), world.trust, GEMEENTE, datetime.now(UTC))
    assert verified.signature_value == signature_value(data)
    assert verified.certificate == world.gemeente.certificate

    answer = etree.fromstring(request('<v:Antwoord xmlns:v="urn:test:vraag"/>'))
    secure_response(
        answer, world.security(), datetime.now(UTC), confirmation=verified.signature_value
    )
    document = etree.fromstring(serialise(answer))
    assert verify_answer(document, world.ours.certificate) == verified.signature_value
    body = document.find(f"{{{SOAP}}}Body")
    ids = signed_ids(document)
    assert body is not None and body.get(f"{{{WSU}}}Id") in ids
    header = document.find(f"{{{SOAP}}}Header")
    assert header is not None
    addressing = [h for h in header if etree.QName(h).namespace == WSA]
    assert len(addressing) == 3
    assert all(h.get(f"{{{WSU}}}Id") in ids for h in addressing)


# --- refused -------------------------------------------------------------------------------


def test_a_request_without_wsse_security_is_refused(world: World) -> None:
    fault = refusal(world, request())
    assert isinstance(fault, WssInvalidSecurity)
    assert "wsse:Security ontbreekt" in fault.reason


def test_a_request_without_timestamp_is_refused(world: World) -> None:
    fault = refusal(world, signed(world.gemeente, timestamp=False, parts=("Body", "To")))
    assert isinstance(fault, WssInvalidSecurity) and "wsu:Timestamp ontbreekt" in fault.reason


@pytest.mark.parametrize(
    ("created", "expires", "says"),
    [
        (timedelta(hours=-1), None, "is ouder dan 300 s"),
        (timedelta(hours=1), timedelta(minutes=5), "in de toekomst"),
        (timedelta(minutes=-20), timedelta(minutes=5), "is verstreken"),
    ],
    ids=["stale", "future", "expired"],
)
def test_a_timestamp_outside_the_clock_skew_is_refused_as_expired(
    world: World, created: timedelta, expires: timedelta | None, says: str
) -> None:
    data = signed(world.gemeente, created=datetime.now(UTC) + created, expires=expires)
    fault = refusal(world, data)
    assert isinstance(fault, WssExpired) and says in fault.reason
    assert fault.receipt_code == "wsse:MessageExpired"


def test_a_timestamp_within_the_clock_skew_is_accepted(world: World) -> None:
    verify(world, signed(world.gemeente, created=datetime.now(UTC) + timedelta(seconds=200)))


@pytest.mark.parametrize(
    ("parts", "missing"),
    [
        (("Timestamp", "To", "Action", "MessageID"), "soap:Body"),
        (("Body", "Timestamp", "Action", "MessageID"), "wsa:To"),
        (("Body", "Timestamp", "To", "Action"), "wsa:MessageID"),
        (("Body", "To", "Action", "MessageID"), "wsu:Timestamp"),
    ],
)
def test_a_part_not_covered_by_the_signature_is_refused(
    world: World, parts: tuple[str, ...], missing: str
) -> None:
    fault = refusal(world, signed(world.gemeente, parts=parts))
    assert isinstance(fault, WssFailedCheck)
    assert fault.message is not None and fault.message.startswith(f"{missing} is niet ondertekend")


def _wrapped(data: bytes, keep_id: bool) -> bytes:
    """The signed Body moved into a header block, another Body in its place."""
    root = etree.fromstring(data)
    body = root.find(f"{{{SOAP}}}Body")
    header = root.find(f"{{{SOAP}}}Header")
    assert body is not None and header is not None
    evil = etree.fromstring(
        f'<s:Body xmlns:s="{SOAP}"><v:Vraag xmlns:v="urn:test:vraag">'
        "<v:bsn>999990019</v:bsn></v:Vraag></s:Body>"
    )
    if keep_id:
        evil.set(f"{{{WSU}}}Id", body.get(f"{{{WSU}}}Id") or "")
    root.replace(body, evil)
    wrapper = etree.SubElement(header, "{urn:test:wrap}Wrapper")
    wrapper.append(body)
    return etree.tostring(root)


def test_a_signature_over_a_wrapped_copy_of_the_body_is_refused(world: World) -> None:
    data = _wrapped(signed(world.gemeente), keep_id=False)
    # libxmlsec alone would accept it: the signed Body is still there, with its Id.
    fault = refusal(world, data)
    assert isinstance(fault, WssFailedCheck) and "soap:Body is niet ondertekend" in fault.reason


def test_a_wrapped_body_under_the_same_id_is_refused(world: World) -> None:
    fault = refusal(world, _wrapped(signed(world.gemeente), keep_id=True))
    assert isinstance(fault, WssInvalidSecurity) and "meer dan eens" in fault.reason


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (
            {"digest": xmlsec.constants.TransformSha1},
            "digest http://www.w3.org/2000/09/xmldsig#sha1",
        ),
        (
            {"method": xmlsec.constants.TransformRsaSha1},
            "handtekeningalgoritme http://www.w3.org/2000/09/xmldsig#rsa-sha1",
        ),
    ],
    ids=["sha1-digest", "rsa-sha1"],
)
def test_sha1_is_refused_as_an_unsupported_algorithm(
    world: World, options: dict[str, object], says: str
) -> None:
    fault = refusal(world, signed(world.gemeente, **options))
    assert isinstance(fault, WssUnsupportedAlgorithm) and says in fault.reason
    assert fault.receipt_code == "wsse:UnsupportedAlgorithm"


def test_a_body_changed_after_signing_is_refused(world: World) -> None:
    data = signed(world.gemeente).replace(b"999993653", b"999990019")
    fault = refusal(world, data)
    assert isinstance(fault, WssFailedCheck) and "klopt niet" in fault.reason


def test_a_valid_signature_of_another_organisation_is_refused(world: World) -> None:
    data = signed(world.other_organisation)
    verify(world, data, oin=OTHER)  # valid for the organisation it belongs to
    fault = refusal(world, data, oin=GEMEENTE)
    assert isinstance(fault, WssFailedAuthentication)
    assert f"hoort bij OIN {OTHER}, niet bij {GEMEENTE}" in fault.reason


def test_a_certificate_under_an_untrusted_root_is_refused(world: World) -> None:
    fault = refusal(world, signed(world.stranger))
    assert isinstance(fault, WssFailedAuthentication) and "vertrouwde" in fault.reason


def test_a_revoked_certificate_is_refused(world: World) -> None:
    fault = refusal(world, signed(world.revoked))
    assert isinstance(fault, WssFailedAuthentication) and "ingetrokken" in fault.reason


def test_a_certificate_whose_issuer_has_no_current_crl_is_refused(
    world: World, tmp_path: Path
) -> None:
    other_crl = tmp_path / "crl.pem"
    other_crl.write_bytes(
        new_hierarchy("Elsewhere").tsp.issue_crl().public_bytes(serialization.Encoding.PEM)
    )
    trust = SignerTrust(
        world.trust.trust_anchors,
        world.trust.intermediates,
        other_crl,
        world.trust.clock_skew,
        world.trust.max_age,
    )
    data = signed(world.gemeente)
    with pytest.raises(WssFailedAuthentication, match="geen geldige CRL van"):
        verify_request(parse_envelope(data), trust, GEMEENTE, datetime.now(UTC))


# --- 2W-be-SE --------------------------------------------------------------------------------


@pytest.mark.parametrize("around", ["", "\n  "], ids=["bare", "whitespace"])
def test_an_encrypted_request_is_decrypted_then_verified(world: World, around: str) -> None:
    data = encrypt_body(
        signed(world.gemeente, request(f"{around}{PAYLOAD}{around}")), world.ours.certificate
    )
    assert b"999993653" not in data
    envelope = parse_envelope(data)
    assert envelope.payload.tag == f"{{{XENC}}}EncryptedData"
    decrypted = decrypt_body(envelope, world.ours)
    assert decrypted.payload.tag == "{urn:test:vraag}Vraag"
    assert decrypted.payload.findtext("{urn:test:vraag}bsn") == "999993653"
    verify_request(decrypted, world.trust, GEMEENTE, datetime.now(UTC))


def test_a_request_encrypted_for_another_key_is_refused(world: World) -> None:
    data = encrypt_body(signed(world.gemeente), world.other_organisation.certificate)
    with pytest.raises(WssFailedCheck, match="kan niet worden ontsleuteld"):
        decrypt_body(parse_envelope(data), world.ours)


def test_an_unencrypted_body_is_refused_for_2w_be_se(world: World) -> None:
    with pytest.raises(WssInvalidSecurity, match="de Body is niet versleuteld"):
        decrypt_body(parse_envelope(signed(world.gemeente)), world.ours)


def test_an_encrypted_answer_decrypts_for_the_requester_and_its_signature_holds(
    world: World,
) -> None:
    answer = etree.fromstring(request('<v:Antwoord xmlns:v="urn:test:vraag">geheim</v:Antwoord>'))
    secure_response(
        answer,
        world.security(),
        datetime.now(UTC),
        confirmation="c2lnbmF0dXJl",
        encrypt_for=world.gemeente.certificate,
    )
    data = serialise(answer)
    assert b"geheim" not in data
    decrypted: Envelope = decrypt_body(
        envelope_of(etree.fromstring(data)), credentials(world.gemeente)
    )
    assert decrypted.payload.text == "geheim"
    assert verify_answer(decrypted.root, world.ours.certificate) == "c2lnbmF0dXJl"


def test_a_wss_fault_code_is_a_qname_in_the_wsse_namespace() -> None:
    fault = etree.fromstring(build_fault(WssFailedCheck("de handtekening klopt niet")))
    code = fault.find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault/faultcode")
    assert code is not None and code.text == "wsse:FailedCheck"
    assert code.nsmap["wsse"].endswith("oasis-200401-wss-wssecurity-secext-1.0.xsd")
    string = fault.findtext(f"{{{SOAP}}}Body/{{{SOAP}}}Fault/faultstring")
    assert string == "The signature or decryption was invalid: de handtekening klopt niet"


def test_our_key_must_be_rsa(tmp_path: Path) -> None:
    issued = new_hierarchy("Key").tsp.issue_receipt_certificate()  # ECDSA P-256
    (tmp_path / "k.pem").write_bytes(issued.key_pem())
    (tmp_path / "c.pem").write_bytes(issued.cert_pem())
    with pytest.raises(ValueError, match="must be RSA"):
        WssCredentials.from_files(tmp_path / "k.pem", tmp_path / "c.pem")

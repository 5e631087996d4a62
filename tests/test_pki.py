"""The development PKI and certificate identity, checked by the tools that rely on them.

Every chain is verified by OpenSSL through Python's ssl module (real mutual TLS on loopback),
by xmlsec1 through python-xmlsec and by cryptography/signxml, because the hierarchy signs with
RSASSA-PSS and each of those has its own idea of which signature variants it accepts.
"""

from __future__ import annotations

import queue
import shutil
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from lxml import etree
from signxml import methods
from signxml.exceptions import InvalidCertificate
from signxml.signer import XMLSigner
from signxml.verifier import XMLVerifier

from adapter.pki import (
    DevHierarchy,
    IssuedCertificate,
    OrganisationSubject,
    PkiFiles,
    init_dev_pki,
    is_valid_oin,
    load_hierarchy,
    new_hierarchy,
    read_identity,
    renew_crl,
    revoke,
)

WITH_KVK = OrganisationSubject("00000099000000001000", "Belastingdienst (test)", "27364551")
WITHOUT_KVK = OrganisationSubject("00000099000000003000", "Gemeente Strikt")
RECEIVER_OIN = "00000004003214345001"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"


# --- fixtures: keys are generated once per session ---------------------------------------


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return init_dev_pki(tmp_path_factory.mktemp("pki"), [WITH_KVK, WITHOUT_KVK])


@pytest.fixture(scope="session")
def hierarchy(pki: PkiFiles) -> DevHierarchy:
    return load_hierarchy(pki.directory)


@pytest.fixture(scope="session")
def other_hierarchy() -> DevHierarchy:
    return new_hierarchy("Other")


@pytest.fixture(scope="session")
def client_key(pki: PkiFiles) -> rsa.RSAPrivateKey:
    """An existing key, reused for extra certificates because RSA-3072 generation is slow."""
    key = serialization.load_pem_private_key(
        pki.clients[WITH_KVK.oin].private_key.read_bytes(), password=None
    )
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def leaf(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


# --- init_dev_pki -------------------------------------------------------------------------


def test_init_dev_pki_writes_every_file_and_keys_only_the_owner_can_read(pki: PkiFiles) -> None:
    names = {p.relative_to(pki.directory).as_posix() for p in pki.directory.rglob("*")}
    assert names == {
        "root-ca.pem",
        "root-ca.key",
        "domain-ca.pem",
        "domain-ca.key",
        "tsp-ca.pem",
        "tsp-ca.key",
        "chain.pem",
        "server.pem",
        "server.key",
        "receipt-signing.pem",
        "receipt-signing.key",
        "crl.pem",
        "clients",
        *(
            f"clients/{org.oin}.{ext}"
            for org in (WITH_KVK, WITHOUT_KVK)
            for ext in ("pem", "key", "p12")
        ),
    }
    private = {p for p in pki.directory.rglob("*") if p.suffix in {".key", ".p12"}}
    assert len(private) == 3 + 2 + 2 * 2
    for path in private:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for path in pki.directory.rglob("*.pem"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_pem_files_hold_leaf_then_tsp_ca_then_domain_ca(pki: PkiFiles) -> None:
    tsp, domain = leaf(pki.tsp_ca), leaf(pki.domain_ca)
    assert x509.load_pem_x509_certificates(pki.chain.read_bytes()) == [tsp, domain]
    for path in (pki.server, *(files.certificate for files in pki.clients.values())):
        assert x509.load_pem_x509_certificates(path.read_bytes())[1:] == [tsp, domain]
    assert len(x509.load_pem_x509_certificates(pki.receipt_signing.read_bytes())) == 1


def test_init_dev_pki_refuses_to_replace_an_existing_hierarchy(pki: PkiFiles) -> None:
    before = pki.root_ca.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        init_dev_pki(pki.directory, [WITH_KVK])
    assert pki.root_ca.read_bytes() == before


@pytest.mark.parametrize(
    "organisation",
    [
        OrganisationSubject("0000009900000000100", "19 digits"),
        OrganisationSubject("00000099000000001000", "KvK with 7 digits", "1234567"),
    ],
)
def test_init_dev_pki_rejects_malformed_oin_or_kvk_before_writing(
    tmp_path: Path, organisation: OrganisationSubject
) -> None:
    with pytest.raises(ValueError, match=organisation.name):
        init_dev_pki(tmp_path / "pki", [organisation])
    assert not (tmp_path / "pki").exists()


def test_client_pkcs12_holds_key_certificate_chain_and_organisation_name(pki: PkiFiles) -> None:
    files = pki.clients[WITH_KVK.oin]
    bundle = pkcs12.load_pkcs12(files.pkcs12.read_bytes(), b"changeit")
    assert bundle.cert is not None and bundle.key is not None
    assert bundle.cert.certificate == leaf(files.certificate)
    assert bundle.cert.friendly_name == WITH_KVK.name.encode()
    assert bundle.key.public_key() == leaf(files.certificate).public_key()
    assert [c.certificate for c in bundle.additional_certs] == [
        leaf(pki.tsp_ca),
        leaf(pki.domain_ca),
    ]


# --- certificate profiles ----------------------------------------------------------------


def test_every_certificate_is_signed_by_its_issuer_up_to_the_self_signed_root(
    pki: PkiFiles,
) -> None:
    root, domain, tsp = leaf(pki.root_ca), leaf(pki.domain_ca), leaf(pki.tsp_ca)
    root.verify_directly_issued_by(root)
    domain.verify_directly_issued_by(root)
    tsp.verify_directly_issued_by(domain)
    end_entities = [pki.server, pki.receipt_signing, *(f.certificate for f in pki.clients.values())]
    for path in end_entities:
        leaf(path).verify_directly_issued_by(tsp)


def test_certificates_are_signed_with_rsassa_pss_sha256(pki: PkiFiles) -> None:
    for path in (pki.root_ca, pki.domain_ca, pki.tsp_ca, pki.server, pki.receipt_signing):
        cert = leaf(path)
        assert cert.signature_algorithm_oid == x509.SignatureAlgorithmOID.RSASSA_PSS, path
        assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)


@pytest.mark.parametrize(("name", "path_length"), [("root_ca", 2), ("domain_ca", 1), ("tsp_ca", 0)])
def test_ca_certificates_are_critical_cas_that_sign_certificates_and_crls(
    pki: PkiFiles, name: str, path_length: int
) -> None:
    cert = leaf(getattr(pki, name))
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    assert constraints.value.path_length == path_length
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size >= 3072
    assert "TEST" in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    validity = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert timedelta(days=3650) <= validity <= timedelta(days=3653)


def test_ca_certificates_link_by_key_identifiers(pki: PkiFiles) -> None:
    root, domain, tsp = leaf(pki.root_ca), leaf(pki.domain_ca), leaf(pki.tsp_ca)
    for issuer, subject in ((root, domain), (domain, tsp), (tsp, leaf(pki.server))):
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        aki = subject.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        assert aki.key_identifier == ski.digest


def test_tls_certificates_allow_signature_and_key_encipherment_for_client_and_server(
    pki: PkiFiles,
) -> None:
    for path in (pki.server, pki.clients[WITH_KVK.oin].certificate):
        cert = leaf(path)
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert usage.critical
        assert usage.value.digital_signature and usage.value.key_encipherment
        assert not (usage.value.content_commitment or usage.value.key_cert_sign)
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert set(eku) == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH}
        key = cert.public_key()
        assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 3072
        assert cert.not_valid_before_utc < datetime.now(UTC) - timedelta(minutes=50)
        validity = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert validity == timedelta(days=397)


def test_server_certificate_names_localhost_by_dns_and_ip(pki: PkiFiles) -> None:
    cert = leaf(pki.server)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "localhost"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def test_receipt_certificate_is_ecdsa_p256_for_non_repudiation_by_the_receiver(
    pki: PkiFiles,
) -> None:
    cert = leaf(pki.receipt_signing)
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.content_commitment
    assert not usage.value.key_encipherment
    identity = read_identity(cert.public_bytes(serialization.Encoding.DER))
    assert identity.oin == RECEIVER_OIN
    assert "O=MijnOverheid (dev)" in identity.subject


def test_a_certificate_cannot_expire_before_it_starts(
    hierarchy: DevHierarchy, client_key: rsa.RSAPrivateKey
) -> None:
    now = datetime.now(UTC)
    with pytest.raises(ValueError, match="not_after"):
        hierarchy.tsp.issue_tls_certificate(
            "backwards", oin=None, not_before=now, not_after=now, key=client_key
        )


def test_receipt_certificate_can_carry_an_rsa_3072_key(hierarchy: DevHierarchy) -> None:
    issued = hierarchy.tsp.issue_receipt_certificate(key_type="rsa-3072")
    key = issued.certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 3072
    with pytest.raises(ValueError, match="ecdsa-p256"):
        hierarchy.tsp.issue_receipt_certificate(key_type="dsa")


# --- read_identity ------------------------------------------------------------------------


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def test_read_identity_returns_oin_and_kvk_of_a_client_certificate(pki: PkiFiles) -> None:
    cert = leaf(pki.clients[WITH_KVK.oin].certificate)
    identity = read_identity(der(cert))
    assert identity.oin == WITH_KVK.oin
    assert identity.kvk == WITH_KVK.kvk
    assert identity.fingerprint_sha256 == cert.fingerprint(hashes.SHA256()).hex()
    assert identity.not_after == cert.not_valid_after_utc
    assert identity.not_after.tzinfo is UTC
    assert identity.subject == (
        f"CN={WITH_KVK.name},serialNumber={WITH_KVK.oin},"
        f"organizationIdentifier=NTRNL-{WITH_KVK.kvk},O={WITH_KVK.name},C=NL"
    )


def test_read_identity_returns_no_kvk_without_organization_identifier(pki: PkiFiles) -> None:
    identity = read_identity(der(leaf(pki.clients[WITHOUT_KVK.oin].certificate)))
    assert identity.oin == WITHOUT_KVK.oin
    assert identity.kvk is None


def test_read_identity_returns_no_oin_for_a_certificate_issued_without_one(
    hierarchy: DevHierarchy, client_key: rsa.RSAPrivateKey
) -> None:
    issued = hierarchy.tsp.issue_tls_certificate(
        "g4-only", oin=None, kvk="12345678", key=client_key
    )
    assert issued.certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER) == []
    identity = read_identity(der(issued.certificate))
    assert identity.oin is None
    assert identity.kvk == "12345678"


@pytest.mark.parametrize(
    ("serial_number", "organization_identifier"),
    [
        ("0000009900000000100", "NTRNL-1234567"),  # one digit short each
        ("000000990000000010000", "NTRNL-123456789"),  # one digit long each
        ("0000009900000000100A", "NTRBE-12345678"),  # a letter; another country
        ("00000099 00000001000", "ntrnl-12345678"),  # a space; lower case
    ],
)
def test_read_identity_ignores_values_that_are_not_an_oin_or_kvk_number(
    client_key: rsa.RSAPrivateKey, serial_number: str, organization_identifier: str
) -> None:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.SERIAL_NUMBER, serial_number),
            x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, organization_identifier),
            x509.NameAttribute(NameOID.COMMON_NAME, "odd"),
        ]
    )
    identity = read_identity(der(self_signed(subject, client_key)))
    assert identity.oin is None
    assert identity.kvk is None


def test_read_identity_refuses_to_choose_between_two_serial_numbers(
    client_key: rsa.RSAPrivateKey,
) -> None:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.SERIAL_NUMBER, WITH_KVK.oin),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, WITHOUT_KVK.oin),
        ]
    )
    assert read_identity(der(self_signed(subject, client_key))).oin is None


def test_read_identity_raises_value_error_for_bytes_that_are_no_certificate() -> None:
    with pytest.raises(ValueError):
        read_identity(b"\x30\x03\x02\x01\x00")


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("00000001002220647000", True),
        ("00000099000000001000", True),
        ("0000000100222064700", False),
        ("000000010022206470000", False),
        ("0000000100222064700O", False),
        ("\u0660" * 20, False),  # Arabic-Indic digits satisfy str.isdigit
        ("00000001002220647000\n", False),
        ("", False),
    ],
)
def test_is_valid_oin_accepts_exactly_twenty_ascii_digits(value: str, valid: bool) -> None:
    assert is_valid_oin(value) is valid


def self_signed(subject: x509.Name, key: rsa.RSAPrivateKey) -> x509.Certificate:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


# --- CRLs ---------------------------------------------------------------------------------


def load_crls(path: Path) -> list[x509.CertificateRevocationList]:
    text = path.read_bytes()
    marker = b"-----BEGIN X509 CRL-----"
    return [x509.load_pem_x509_crl(marker + block) for block in text.split(marker)[1:]]


def test_crl_file_holds_one_crl_per_issuing_ca_valid_for_thirty_days(
    pki: PkiFiles, hierarchy: DevHierarchy
) -> None:
    crls = load_crls(pki.crl)
    cas = [hierarchy.root, hierarchy.domain, hierarchy.tsp]
    assert [crl.issuer for crl in crls] == [ca.certificate.subject for ca in cas]
    for crl, ca in zip(crls, cas, strict=True):
        assert crl.is_signature_valid(ca.private_key.public_key())
        assert crl.next_update_utc is not None
        remaining = crl.next_update_utc - datetime.now(UTC)
        assert timedelta(days=29) < remaining <= timedelta(days=30)


def crl_number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def entries(crl: x509.CertificateRevocationList) -> list[tuple[int, datetime, bytes]]:
    return [
        (
            r.serial_number,
            r.revocation_date_utc,
            b"".join(e.value.public_bytes() for e in r.extensions),
        )
        for r in crl
    ]


def test_revoke_lists_the_serial_on_its_issuers_crl_and_renew_crl_keeps_it(
    pki: PkiFiles, tmp_path: Path
) -> None:
    # A copy, so revoking the server and TSP CA leaves the session's PKI intact.
    directory = tmp_path / "pki"
    shutil.copytree(pki.directory, directory)
    hierarchy = load_hierarchy(directory)
    server_serial = leaf(directory / "server.pem").serial_number
    tsp_serial = hierarchy.tsp.certificate.serial_number
    before = [crl_number(crl) for crl in load_crls(directory / "crl.pem")]

    revoke(directory, server_serial, reason=x509.ReasonFlags.key_compromise)
    revoke(directory, server_serial)  # a second time changes nothing
    revoke(directory, tsp_serial)
    root_crl, domain_crl, tsp_crl = load_crls(directory / "crl.pem")
    assert [r.serial_number for r in tsp_crl].count(server_serial) == 1
    assert [r.serial_number for r in domain_crl] == [tsp_serial]
    assert list(root_crl) == []
    entry = tsp_crl.get_revoked_certificate_by_serial_number(server_serial)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == (
        x509.ReasonFlags.key_compromise
    )

    renew_crl(directory)
    renewed = load_crls(directory / "crl.pem")
    assert [entries(crl) for crl in renewed] == [
        entries(root_crl),
        entries(domain_crl),
        entries(tsp_crl),
    ]
    # Every rewrite reissues all three CRLs: three revokes and one renewal.
    assert [crl_number(crl) for crl in renewed] == [number + 4 for number in before]

    with pytest.raises(ValueError, match="root"):
        revoke(directory, hierarchy.root.certificate.serial_number)


# --- mutual TLS on loopback with Python's ssl module --------------------------------------


def server_context(pki: PkiFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(pki.server, pki.server_key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile=pki.root_ca)
    context.load_verify_locations(cafile=pki.crl)
    context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return context


class LoopbackServer:
    """Accepts one connection at a time; reports the peer certificate or the handshake error."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context  # replaced whole on CRL reload, as the adapter does
        self.results: queue.Queue[bytes | Exception] = queue.Queue()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # listener closed
            conn.settimeout(5)
            try:
                tls = self.context.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                conn.close()
                self.results.put(exc)
                continue
            with tls:
                peer = tls.getpeercert(binary_form=True) or b""
                self.results.put(peer)
                tls.sendall((read_identity(peer).oin or "no OIN").encode())

    def close(self) -> None:
        # close() alone does not wake a thread blocked in accept(); shutdown() does.
        self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=5)


@dataclass
class Outcome:
    server: bytes | Exception
    client: bytes | Exception


@pytest.fixture(scope="module")
def server(pki: PkiFiles) -> Iterator[LoopbackServer]:
    running = LoopbackServer(server_context(pki))
    yield running
    running.close()


def connect(
    server: LoopbackServer,
    pki: PkiFiles,
    certificate: Path | None,
    key: Path | None,
    *,
    hostname: str = "localhost",
    version: ssl.TLSVersion | None = None,
) -> Outcome:
    context = ssl.create_default_context(cafile=pki.root_ca)
    if version is not None:
        context.minimum_version = context.maximum_version = version
    if certificate is not None:
        context.load_cert_chain(certificate, key)
    client: bytes | Exception
    try:
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=hostname) as tls,
        ):
            client = tls.recv(64)
    except (ssl.SSLError, OSError) as exc:
        # With TLS 1.3 the client learns of a refused certificate only when it reads.
        client = exc
    return Outcome(server=server.results.get(timeout=5), client=client)


def write_client(directory: Path, issued: IssuedCertificate, chain: bytes) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    certificate, key = directory / "client.pem", directory / "client.key"
    certificate.write_bytes(issued.cert_pem() + chain)
    key.write_bytes(issued.key_pem())
    return certificate, key


def assert_refused(outcome: Outcome, reason: str) -> None:
    assert isinstance(outcome.server, ssl.SSLCertVerificationError), outcome.server
    assert outcome.server.verify_message == reason
    assert not isinstance(outcome.client, bytes) or not outcome.client


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
@pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1"])
def test_server_sees_the_oin_of_a_client_with_an_organisation_certificate(
    server: LoopbackServer, pki: PkiFiles, version: ssl.TLSVersion, hostname: str
) -> None:
    files = pki.clients[WITH_KVK.oin]
    outcome = connect(
        server, pki, files.certificate, files.private_key, hostname=hostname, version=version
    )
    assert isinstance(outcome.server, bytes)
    assert read_identity(outcome.server).oin == WITH_KVK.oin
    assert outcome.client == WITH_KVK.oin.encode()


def test_client_without_a_certificate_is_refused(server: LoopbackServer, pki: PkiFiles) -> None:
    outcome = connect(server, pki, None, None)
    assert isinstance(outcome.server, ssl.SSLError)
    assert "PEER_DID_NOT_RETURN_A_CERTIFICATE" in str(outcome.server)
    assert not isinstance(outcome.client, bytes)


def test_client_certificate_from_another_hierarchy_is_refused(
    server: LoopbackServer,
    pki: PkiFiles,
    other_hierarchy: DevHierarchy,
    client_key: rsa.RSAPrivateKey,
    tmp_path: Path,
) -> None:
    # Same OIN and organisation name: only the issuing hierarchy differs.
    issued = other_hierarchy.tsp.issue_tls_certificate(
        WITH_KVK.name, oin=WITH_KVK.oin, kvk=WITH_KVK.kvk, key=client_key
    )
    certificate, key = write_client(tmp_path, issued, other_hierarchy.chain_pem())
    assert_refused(connect(server, pki, certificate, key), "unable to get local issuer certificate")


def test_expired_client_certificate_is_refused(
    server: LoopbackServer,
    pki: PkiFiles,
    hierarchy: DevHierarchy,
    client_key: rsa.RSAPrivateKey,
    tmp_path: Path,
) -> None:
    now = datetime.now(UTC)
    issued = hierarchy.tsp.issue_tls_certificate(
        WITH_KVK.name,
        oin=WITH_KVK.oin,
        not_before=now - timedelta(days=30),
        not_after=now - timedelta(minutes=1),
        key=client_key,
    )
    certificate, key = write_client(tmp_path, issued, hierarchy.chain_pem())
    assert_refused(connect(server, pki, certificate, key), "certificate has expired")


def test_revoked_client_certificate_is_refused_once_the_crl_is_reloaded(
    server: LoopbackServer,
    pki: PkiFiles,
    hierarchy: DevHierarchy,
    client_key: rsa.RSAPrivateKey,
    tmp_path: Path,
) -> None:
    issued = hierarchy.tsp.issue_tls_certificate(
        WITH_KVK.name, oin=WITH_KVK.oin, kvk=WITH_KVK.kvk, key=client_key
    )
    certificate, key = write_client(tmp_path, issued, hierarchy.chain_pem())
    assert isinstance(connect(server, pki, certificate, key).server, bytes)

    revoke(pki.directory, issued.certificate.serial_number)
    server.context = server_context(pki)
    assert_refused(connect(server, pki, certificate, key), "certificate revoked")

    # The organisation's own certificate, with the same key, is unaffected.
    files = pki.clients[WITH_KVK.oin]
    assert isinstance(connect(server, pki, files.certificate, files.private_key).server, bytes)


# --- XML signatures over the chain --------------------------------------------------------


def signed_receipt(key_pem: bytes, certificates: list[bytes]) -> bytes:
    document = etree.fromstring(
        b'<Afleverbevestiging xmlns="urn:example:receipt">'
        b"<Ontvanger>00000004003214345001</Ontvanger><Kenmerk>42</Kenmerk>"
        b"</Afleverbevestiging>"
    )
    signer = XMLSigner(
        method=methods.enveloped,
        signature_algorithm="ecdsa-sha256",
        digest_algorithm="sha256",
        c14n_algorithm=EXC_C14N,
    )
    signed = signer.sign(document, key=key_pem, cert=[pem.decode() for pem in certificates])
    serialized: bytes = etree.tostring(signed)
    return serialized


@pytest.fixture(scope="module")
def receipt(pki: PkiFiles) -> bytes:
    return signed_receipt(
        pki.receipt_signing_key.read_bytes(),
        [pki.receipt_signing.read_bytes(), pki.tsp_ca.read_bytes(), pki.domain_ca.read_bytes()],
    )


def xmlsec_verify(document: bytes, trusted_root: Path) -> None:
    manager = xmlsec.KeysManager()
    manager.load_cert(
        str(trusted_root), xmlsec.constants.KeyDataFormatPem, xmlsec.constants.KeyDataTypeTrusted
    )
    tree = etree.fromstring(document)
    signature = xmlsec.tree.find_node(tree, xmlsec.constants.NodeSignature)
    # The bundled stub omits SignatureContext's manager argument.
    xmlsec.SignatureContext(manager).verify(signature)  # type: ignore[call-arg]


def test_receipt_signed_with_its_chain_verifies_with_xmlsec_against_the_root_alone(
    pki: PkiFiles, receipt: bytes
) -> None:
    assert receipt.count(b"<ds:X509Certificate>") == 3
    xmlsec_verify(receipt, pki.root_ca)


def test_receipt_signed_with_its_chain_verifies_with_signxml_against_the_root(
    pki: PkiFiles, receipt: bytes
) -> None:
    result = XMLVerifier().verify(receipt, ca_pem_file=str(pki.root_ca))
    assert not isinstance(result, list)
    assert result.signed_xml is not None
    assert result.signed_xml.findtext("{urn:example:receipt}Kenmerk") == "42"


def test_xmlsec_rejects_a_tampered_receipt(pki: PkiFiles, receipt: bytes) -> None:
    with pytest.raises(xmlsec.Error):
        xmlsec_verify(receipt.replace(b"<Kenmerk>42<", b"<Kenmerk>43<"), pki.root_ca)


def test_receipt_signed_under_another_hierarchy_fails_against_our_root(
    pki: PkiFiles, other_hierarchy: DevHierarchy, tmp_path: Path
) -> None:
    issued = other_hierarchy.tsp.issue_receipt_certificate()
    document = signed_receipt(
        issued.key_pem(),
        [issued.cert_pem(), other_hierarchy.tsp.cert_pem(), other_hierarchy.domain.cert_pem()],
    )
    other_root = tmp_path / "other-root-ca.pem"
    other_root.write_bytes(other_hierarchy.root_pem())
    xmlsec_verify(document, other_root)

    with pytest.raises(xmlsec.Error):
        xmlsec_verify(document, pki.root_ca)
    with pytest.raises(InvalidCertificate):
        XMLVerifier().verify(document, ca_pem_file=str(pki.root_ca))

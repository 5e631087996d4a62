"""A development certificate hierarchy shaped like PKIoverheid Private Services.

Root → domain CA → TSP CA → end entities (TLS client/server and receipt signing), plus one CRL
per issuing CA. Every name says TEST: nothing here may ever be trusted in production.
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from adapter.pki.identity import is_valid_oin

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

DEFAULT_RECEIVER_OIN = "00000004003214345001"
# A well-known development password, like Java's keystore default; never use it for real keys.
DEV_P12_PASSWORD = "changeit"  # noqa: S105
RECEIPT_KEY_TYPES = ("ecdsa-p256", "rsa-3072")

_RSA_BITS = 3072
_CA_VALIDITY = timedelta(days=3652)
# The PKIoverheid G4 TLS profile caps end-entity validity at 397 days.
_END_ENTITY_VALIDITY = timedelta(days=397)
# Certificates and CRLs start this far back, so a peer whose clock runs behind accepts them.
_CLOCK_SKEW = timedelta(hours=1)
_CRL_VALIDITY = timedelta(days=30)

# RSASSA-PSS as PKIoverheid G4 signs certificates and CRLs. The salt must equal the digest
# length: cryptography's path validation (used by signxml's verifier) accepts only that PSS
# variant. OpenSSL (Python ssl) and the xmlsec1 bundled in python-xmlsec verify it too; the
# tests check all three.
_SIGNATURE_HASH = hashes.SHA256()
_SIGNATURE_PADDING = padding.PSS(
    mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH
)

_ROOT, _DOMAIN, _TSP = "root-ca", "domain-ca", "tsp-ca"


@dataclass(frozen=True)
class IssuedCertificate:
    """An end-entity certificate with its private key."""

    certificate: x509.Certificate
    private_key: PrivateKey

    def cert_pem(self) -> bytes:
        """The certificate alone, PEM."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        """The private key, unencrypted PKCS#8 PEM."""
        return _key_pem(self.private_key)


@dataclass(frozen=True)
class CertAuthority:
    """A CA certificate and its key; issues end-entity certificates and CRLs."""

    certificate: x509.Certificate
    private_key: rsa.RSAPrivateKey

    def cert_pem(self) -> bytes:
        """The CA certificate, PEM."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue_tls_certificate(
        self,
        name: str,
        *,
        oin: str | None,
        kvk: str | None = None,
        organisation: str | None = None,
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        key: PrivateKey | None = None,
    ) -> IssuedCertificate:
        """A TLS client+server certificate: CN=name, serialNumber=oin, organizationIdentifier
        NTRNL-<kvk>. oin and kvk are written verbatim (not validated) so tests can mint bad ones.
        """
        key = key or _new_rsa_key()
        subject = _name(common_name=name, organisation=organisation or name, oin=oin, kvk=kvk)
        builder = self._end_entity_builder(subject, key.public_key(), not_before, not_after)
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                # keyEncipherment only means something for RSA key transport.
                key_encipherment=isinstance(key, rsa.RSAPrivateKey),
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        ).add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        alt_names: list[x509.GeneralName] = [x509.DNSName(dns) for dns in dns_names]
        alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        return IssuedCertificate(self._sign(builder), key)

    def issue_receipt_certificate(
        self,
        *,
        receiver_oin: str = DEFAULT_RECEIVER_OIN,
        key_type: str = "ecdsa-p256",
        organisation: str = "MijnOverheid (dev)",
        name: str = "MijnOverheid afleverbevestiging (dev)",
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        key: PrivateKey | None = None,
    ) -> IssuedCertificate:
        """A receipt-signing certificate (digitalSignature + nonRepudiation) for receiver_oin;
        key_type is "ecdsa-p256" or "rsa-3072" and is ignored when a key is given.
        """
        key = key or _new_receipt_key(key_type)
        subject = _name(common_name=name, organisation=organisation, oin=receiver_oin, kvk=None)
        builder = self._end_entity_builder(subject, key.public_key(), not_before, not_after)
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        return IssuedCertificate(self._sign(builder), key)

    def issue_crl(
        self, revoked: Iterable[x509.RevokedCertificate] = (), *, number: int = 1
    ) -> x509.CertificateRevocationList:
        """A CRL listing `revoked`, valid from an hour ago for 30 days."""
        now = _now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(now - _CLOCK_SKEW)
            .next_update(now + _CRL_VALIDITY)
            .add_extension(x509.CRLNumber(number), critical=False)
            .add_extension(self._authority_key_identifier(), critical=False)
        )
        for entry in revoked:
            builder = builder.add_revoked_certificate(entry)
        return builder.sign(self.private_key, _SIGNATURE_HASH, rsa_padding=_SIGNATURE_PADDING)

    def _issue_ca(
        self, subject: x509.Name, key: rsa.RSAPrivateKey, path_length: int
    ) -> CertAuthority:
        builder = _ca_builder(subject, key, path_length).issuer_name(self.certificate.subject)
        builder = builder.add_extension(self._authority_key_identifier(), critical=False)
        return CertAuthority(self._sign(builder), key)

    def _end_entity_builder(
        self,
        subject: x509.Name,
        public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
        not_before: datetime | None,
        not_after: datetime | None,
    ) -> x509.CertificateBuilder:
        start = _as_utc(not_before) if not_before else _now() - _CLOCK_SKEW
        end = _as_utc(not_after) if not_after else start + _END_ENTITY_VALIDITY
        if end <= start:
            raise ValueError(f"not_after ({end}) must lie after not_before ({start})")
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(self._authority_key_identifier(), critical=False)
        )

    def _authority_key_identifier(self) -> x509.AuthorityKeyIdentifier:
        ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)

    def _sign(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        return builder.sign(self.private_key, _SIGNATURE_HASH, rsa_padding=_SIGNATURE_PADDING)


@dataclass(frozen=True)
class DevHierarchy:
    """The three CAs of one development hierarchy."""

    root: CertAuthority
    domain: CertAuthority
    tsp: CertAuthority

    def chain_pem(self) -> bytes:
        """The intermediates an end entity sends: TSP CA, then domain CA."""
        return self.tsp.cert_pem() + self.domain.cert_pem()

    def root_pem(self) -> bytes:
        """The trust anchor."""
        return self.root.cert_pem()


@dataclass(frozen=True)
class OrganisationSubject:
    """An organisation that gets a client certificate from `init_dev_pki`."""

    oin: str
    name: str
    kvk: str | None = None


@dataclass(frozen=True)
class ClientFiles:
    """One organisation's client certificate (leaf + chain), key and PKCS#12 bundle."""

    certificate: Path
    private_key: Path
    pkcs12: Path


@dataclass(frozen=True)
class PkiFiles:
    """Everything `init_dev_pki` wrote; `clients` is keyed by OIN."""

    directory: Path
    root_ca: Path
    root_ca_key: Path
    domain_ca: Path
    domain_ca_key: Path
    tsp_ca: Path
    tsp_ca_key: Path
    chain: Path
    server: Path
    server_key: Path
    receipt_signing: Path
    receipt_signing_key: Path
    crl: Path
    clients: Mapping[str, ClientFiles]


def new_hierarchy(prefix: str = "Dev") -> DevHierarchy:
    """Fresh root, domain and TSP CAs; another prefix gives an unrelated, untrusted hierarchy."""
    organisation = f"{prefix} TEST PKIoverheid (not for production)"

    def subject(common_name: str) -> x509.Name:
        return _name(
            common_name=f"{prefix} TEST {common_name}",
            organisation=organisation,
            oin=None,
            kvk=None,
        )

    root_key = _new_rsa_key()
    root_subject = subject("Staat der Nederlanden Private Root CA - G1")
    # Root pathLen 2: the domain and TSP CAs may follow it, nothing deeper.
    root_builder = _ca_builder(root_subject, root_key, path_length=2).issuer_name(root_subject)
    root_cert = root_builder.sign(root_key, _SIGNATURE_HASH, rsa_padding=_SIGNATURE_PADDING)
    root = CertAuthority(root_cert, root_key)
    domain = root._issue_ca(subject("Domein Private Services CA - G1"), _new_rsa_key(), 1)
    tsp = domain._issue_ca(subject("TSP Private Services CA - G1"), _new_rsa_key(), 0)
    return DevHierarchy(root, domain, tsp)


def load_hierarchy(directory: Path) -> DevHierarchy:
    """The hierarchy `init_dev_pki` wrote into `directory`, keys included."""

    def load(stem: str) -> CertAuthority:
        cert = x509.load_pem_x509_certificate((directory / f"{stem}.pem").read_bytes())
        # The check costs ~0.13 s per RSA-3072 key and guards against keys from untrusted
        # sources; these are the 0600 files init_dev_pki wrote itself.
        key = serialization.load_pem_private_key(
            (directory / f"{stem}.key").read_bytes(),
            password=None,
            unsafe_skip_rsa_key_validation=True,
        )
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{directory / stem}.key: expected an RSA CA key")
        return CertAuthority(cert, key)

    return DevHierarchy(load(_ROOT), load(_DOMAIN), load(_TSP))


def init_dev_pki(
    directory: Path,
    organisations: Sequence[OrganisationSubject],
    *,
    receipt_key: str = "ecdsa-p256",
    receiver_oin: str = DEFAULT_RECEIVER_OIN,
    dns_names: Sequence[str] = ("localhost",),
    ip_addresses: Sequence[str] = ("127.0.0.1",),
    p12_password: str = DEV_P12_PASSWORD,
    overwrite: bool = False,
) -> PkiFiles:
    """Write a new development PKI into `directory` (see `PkiFiles`); keys are unencrypted, 0600.

    The server certificate carries receiver_oin as serialNumber, like MijnOverheid's own. The
    PKCS#12 bundles use `p12_password`, by default the well-known development password
    "changeit". Refuses with FileExistsError when root-ca.pem exists unless `overwrite`; client
    files of organisations not listed are then left as they are.
    """
    _check_organisations(organisations)
    if not is_valid_oin(receiver_oin):
        raise ValueError(f"receiver_oin {receiver_oin!r} is not an OIN (20 digits)")
    if receipt_key not in RECEIPT_KEY_TYPES:
        raise ValueError(f"receipt_key {receipt_key!r}: expected one of {RECEIPT_KEY_TYPES}")
    directory = Path(directory)
    if (directory / f"{_ROOT}.pem").exists() and not overwrite:
        raise PkiExists(
            directory / f"{_ROOT}.pem",
            f"{directory / _ROOT}.pem already exists: refusing to replace the development PKI "
            "(every certificate issued from it would stop working); pass overwrite=True to do so",
        )
    (directory / "clients").mkdir(parents=True, exist_ok=True)

    hierarchy = new_hierarchy("Dev")
    chain = hierarchy.chain_pem()
    for stem, ca in ((_ROOT, hierarchy.root), (_DOMAIN, hierarchy.domain), (_TSP, hierarchy.tsp)):
        _write(directory / f"{stem}.pem", ca.cert_pem())
        _write(directory / f"{stem}.key", _key_pem(ca.private_key), private=True)
    _write(directory / "chain.pem", chain)

    server = hierarchy.tsp.issue_tls_certificate(
        dns_names[0] if dns_names else "localhost",
        oin=receiver_oin,
        organisation="MijnOverheid (dev)",
        dns_names=dns_names,
        ip_addresses=ip_addresses,
    )
    _write(directory / "server.pem", server.cert_pem() + chain)
    _write(directory / "server.key", server.key_pem(), private=True)

    receipt = hierarchy.tsp.issue_receipt_certificate(
        receiver_oin=receiver_oin, key_type=receipt_key
    )
    _write(directory / "receipt-signing.pem", receipt.cert_pem())
    _write(directory / "receipt-signing.key", receipt.key_pem(), private=True)

    clients = {
        org.oin: _issue_client(directory, hierarchy, org, dns_names, ip_addresses, p12_password)
        for org in organisations
    }

    _write_crls(directory / "crl.pem", hierarchy, {}, {})
    return PkiFiles(
        directory=directory,
        root_ca=directory / f"{_ROOT}.pem",
        root_ca_key=directory / f"{_ROOT}.key",
        domain_ca=directory / f"{_DOMAIN}.pem",
        domain_ca_key=directory / f"{_DOMAIN}.key",
        tsp_ca=directory / f"{_TSP}.pem",
        tsp_ca_key=directory / f"{_TSP}.key",
        chain=directory / "chain.pem",
        server=directory / "server.pem",
        server_key=directory / "server.key",
        receipt_signing=directory / "receipt-signing.pem",
        receipt_signing_key=directory / "receipt-signing.key",
        crl=directory / "crl.pem",
        clients=clients,
    )


class PkiExists(FileExistsError):
    """The file that would be replaced exists; `path` names it."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path


def client_files(directory: Path, oin: str) -> ClientFiles:
    """Where the development PKI in `directory` keeps the client files of `oin`."""
    clients = Path(directory) / "clients"
    return ClientFiles(
        certificate=clients / f"{oin}.pem",
        private_key=clients / f"{oin}.key",
        pkcs12=clients / f"{oin}.p12",
    )


def _issue_client(
    directory: Path,
    hierarchy: DevHierarchy,
    org: OrganisationSubject,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str],
    p12_password: str,
) -> ClientFiles:
    # The same names as the server: an organisation's certificate also serves its own
    # ebMS endpoint (serverAuth + clientAuth, as G4 TLS certificates do), e.g. the
    # receiver of `dk-adapter send --receive-on` on this machine.
    issued = hierarchy.tsp.issue_tls_certificate(
        org.name,
        oin=org.oin,
        kvk=org.kvk,
        organisation=org.name,
        dns_names=dns_names,
        ip_addresses=ip_addresses,
    )
    files = client_files(directory, org.oin)
    files.certificate.parent.mkdir(parents=True, exist_ok=True)
    _write(files.certificate, issued.cert_pem() + hierarchy.chain_pem())
    _write(files.private_key, issued.key_pem(), private=True)
    _write(files.pkcs12, _pkcs12(org.name, issued, hierarchy, p12_password), private=True)
    return files


def issue_client(
    directory: Path,
    organisation: OrganisationSubject,
    *,
    dns_names: Sequence[str] = ("localhost",),
    ip_addresses: Sequence[str] = ("127.0.0.1",),
    p12_password: str = DEV_P12_PASSWORD,
    overwrite: bool = False,
) -> ClientFiles:
    """Add a client certificate for one organisation to the development PKI in `directory`.

    Issued by the existing TSP CA, so the root, the server and every other certificate stay
    valid: for an organisation configured after `init_dev_pki`. Refuses with `PkiExists`
    when the organisation has client files already, unless `overwrite`.
    """
    _check_organisations([organisation])
    directory = Path(directory)
    if not (directory / f"{_ROOT}.pem").exists():
        raise FileNotFoundError(f"{directory}: no development PKI here ({_ROOT}.pem is missing)")
    hierarchy = load_hierarchy(directory)
    files = client_files(directory, organisation.oin)
    if files.certificate.exists() and not overwrite:
        raise PkiExists(
            files.certificate,
            f"{files.certificate} already exists; pass overwrite=True to issue a new one",
        )
    return _issue_client(directory, hierarchy, organisation, dns_names, ip_addresses, p12_password)


def revoke(directory: Path, serial: int, *, reason: x509.ReasonFlags | None = None) -> None:
    """Revoke a certificate by serial and rewrite crl.pem.

    The domain and TSP CA certificates go on their issuer's CRL; any other serial is taken to
    be an end entity of the TSP CA. Revoking twice is harmless.
    """
    hierarchy = load_hierarchy(directory)
    if serial == hierarchy.root.certificate.serial_number:
        raise ValueError("a root cannot be revoked; remove it from the trust store instead")
    revoked, numbers = _read_crls(directory / "crl.pem", hierarchy)
    if serial == hierarchy.domain.certificate.serial_number:
        issuer = _ROOT
    elif serial == hierarchy.tsp.certificate.serial_number:
        issuer = _DOMAIN
    else:
        issuer = _TSP
    entries = revoked.setdefault(issuer, [])
    if all(entry.serial_number != serial for entry in entries):
        builder = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(_now())
        if reason is not None:
            builder = builder.add_extension(x509.CRLReason(reason), critical=False)
        entries.append(builder.build())
    _write_crls(directory / "crl.pem", hierarchy, revoked, numbers)


def renew_crl(directory: Path) -> None:
    """Reissue crl.pem with the same revocations and a fresh 30-day validity."""
    hierarchy = load_hierarchy(directory)
    revoked, numbers = _read_crls(directory / "crl.pem", hierarchy)
    _write_crls(directory / "crl.pem", hierarchy, revoked, numbers)


def _ca_builder(
    subject: x509.Name, key: rsa.RSAPrivateKey, path_length: int
) -> x509.CertificateBuilder:
    start = _now() - _CLOCK_SKEW
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + _CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def _name(*, common_name: str, organisation: str, oin: str | None, kvk: str | None) -> x509.Name:
    attributes = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "NL"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
    ]
    if kvk is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, f"NTRNL-{kvk}"))
    if oin is not None:
        attributes.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, oin))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _check_organisations(organisations: Sequence[OrganisationSubject]) -> None:
    seen: set[str] = set()
    for org in organisations:
        if not is_valid_oin(org.oin):
            raise ValueError(f"organisation {org.name!r}: OIN {org.oin!r} is not 20 digits")
        if org.kvk is not None and not (
            len(org.kvk) == 8 and org.kvk.isascii() and org.kvk.isdigit()
        ):
            raise ValueError(f"organisation {org.name!r}: KvK number {org.kvk!r} is not 8 digits")
        if org.oin in seen:
            raise ValueError(f"organisation {org.name!r}: OIN {org.oin} is listed twice")
        seen.add(org.oin)


def _new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS)


def _new_receipt_key(key_type: str) -> PrivateKey:
    if key_type == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa-3072":
        return _new_rsa_key()
    raise ValueError(f"receipt key type {key_type!r}: expected one of {RECEIPT_KEY_TYPES}")


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _as_utc(moment: datetime) -> datetime:
    # cryptography reads naive datetimes as UTC; say so explicitly so they compare with aware ones.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pkcs12(
    friendly_name: str, issued: IssuedCertificate, hierarchy: DevHierarchy, password: str
) -> bytes:
    return pkcs12.serialize_key_and_certificates(
        name=friendly_name.encode(),
        key=issued.private_key,
        cert=issued.certificate,
        cas=[hierarchy.tsp.certificate, hierarchy.domain.certificate],
        encryption_algorithm=serialization.BestAvailableEncryption(password.encode()),
    )


def _read_crls(
    path: Path, hierarchy: DevHierarchy
) -> tuple[dict[str, list[x509.RevokedCertificate]], dict[str, int]]:
    """Revocations and CRL numbers per issuing CA, from the CRLs this hierarchy signed."""
    revoked: dict[str, list[x509.RevokedCertificate]] = {}
    numbers: dict[str, int] = {}
    if not path.exists():
        return revoked, numbers
    issuers = _issuers(hierarchy)
    for block in _pem_blocks(path.read_bytes(), b"X509 CRL"):
        crl = x509.load_pem_x509_crl(block)
        for role, ca in issuers.items():
            if crl.issuer == ca.certificate.subject and crl.is_signature_valid(
                ca.private_key.public_key()
            ):
                revoked[role] = list(crl)
                number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
                numbers[role] = number
    return revoked, numbers


def _write_crls(
    path: Path,
    hierarchy: DevHierarchy,
    revoked: Mapping[str, Sequence[x509.RevokedCertificate]],
    numbers: Mapping[str, int],
) -> None:
    pem = b"".join(
        ca.issue_crl(revoked.get(role, ()), number=numbers.get(role, 0) + 1).public_bytes(
            serialization.Encoding.PEM
        )
        for role, ca in _issuers(hierarchy).items()
    )
    _write(path, pem)


def _issuers(hierarchy: DevHierarchy) -> dict[str, CertAuthority]:
    return {_ROOT: hierarchy.root, _DOMAIN: hierarchy.domain, _TSP: hierarchy.tsp}


def _pem_blocks(data: bytes, label: bytes) -> list[bytes]:
    begin, end = b"-----BEGIN " + label + b"-----", b"-----END " + label + b"-----"
    blocks = []
    for part in data.split(begin)[1:]:
        body, found, _ = part.partition(end)
        if found:
            blocks.append(begin + body + end + b"\n")
    return blocks


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    # Written beside the target and renamed into place, so a server reloading crl.pem (or
    # any other file) never reads half of it; mkstemp creates 0600, so a key is never
    # readable by others, not even for a moment.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600 if private else 0o644)
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

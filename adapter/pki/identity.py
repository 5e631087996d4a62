"""Who a certificate belongs to: OIN, KvK number, subject and fingerprint.

Digikoppeling puts the OIN in subject serialNumber (PKI001); PKIoverheid G4 certificates also
carry organizationIdentifier `NTRNL-<KvK>`, which is not the OIN but can be mapped to one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

# `str.isdigit` accepts non-ASCII digits (e.g. "²", Arabic-Indic); an OIN is ASCII only.
_OIN = re.compile(r"[0-9]{20}")
_KVK_ORGANIZATION_IDENTIFIER = re.compile(r"NTRNL-([0-9]{8})")

# RFC 4514 allows dotted OIDs, but log readers recognise these names; both are registered
# LDAP attribute names.
_RFC4514_NAMES = {
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.ORGANIZATION_IDENTIFIER: "organizationIdentifier",
}


@dataclass(frozen=True)
class CertificateIdentity:
    """What the adapter knows about a peer from its certificate alone."""

    oin: str | None
    kvk: str | None
    subject: str
    fingerprint_sha256: str
    not_after: datetime


def is_valid_oin(value: str) -> bool:
    """True when `value` has the OIN form: exactly 20 ASCII digits."""
    return _OIN.fullmatch(value) is not None


def read_identity(der: bytes) -> CertificateIdentity:
    """Identity of a DER certificate; raises ValueError when it does not parse."""
    cert = x509.load_der_x509_certificate(der)
    oin = _single_attribute(cert.subject, NameOID.SERIAL_NUMBER)
    organization_identifier = _single_attribute(cert.subject, NameOID.ORGANIZATION_IDENTIFIER)
    kvk_match = (
        _KVK_ORGANIZATION_IDENTIFIER.fullmatch(organization_identifier)
        if organization_identifier is not None
        else None
    )
    return CertificateIdentity(
        oin=oin if oin is not None and is_valid_oin(oin) else None,
        kvk=kvk_match.group(1) if kvk_match else None,
        subject=cert.subject.rfc4514_string(_RFC4514_NAMES),
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
        not_after=cert.not_valid_after_utc,
    )


def _single_attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    # Two serialNumbers (or organizationIdentifiers) make it ambiguous which organisation
    # this is; authorisation must not pick one, so neither counts.
    attributes = name.get_attributes_for_oid(oid)
    if len(attributes) != 1:
        return None
    value = attributes[0].value
    return value if isinstance(value, str) else None

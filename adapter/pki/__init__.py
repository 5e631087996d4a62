"""PKI: the identity (OIN, KvK) in a client certificate, and a development PKIoverheid-style CA."""

from adapter.pki.devca import (
    CertAuthority,
    DevHierarchy,
    IssuedCertificate,
    OrganisationSubject,
    PkiExists,
    PkiFiles,
    client_files,
    init_dev_pki,
    issue_client,
    load_hierarchy,
    new_hierarchy,
    renew_crl,
    revoke,
)
from adapter.pki.identity import CertificateIdentity, is_valid_oin, read_identity

__all__ = [
    "CertAuthority",
    "CertificateIdentity",
    "DevHierarchy",
    "IssuedCertificate",
    "OrganisationSubject",
    "PkiExists",
    "PkiFiles",
    "client_files",
    "init_dev_pki",
    "is_valid_oin",
    "issue_client",
    "load_hierarchy",
    "new_hierarchy",
    "read_identity",
    "renew_crl",
    "revoke",
]

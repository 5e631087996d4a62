"""The server's TLS context: mutual TLS as Digikoppeling and NCSC 2025 ask for it."""

from __future__ import annotations

import ssl

from adapter.config import TlsConfig

# TLS 1.2 suites NCSC rates "good" or "sufficient": ECDHE with AEAD only (no CBC, no DHE,
# no static RSA). TLS 1.3 suites are all acceptable and configured separately by OpenSSL.
TLS12_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
    )
)


def server_context(tls: TlsConfig) -> ssl.SSLContext:
    """Client certificate required and checked against trust anchors and CRLs; TLS >= 1.2."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.load_cert_chain(str(tls.certificate), str(tls.private_key))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile=str(tls.trust_anchors))
    # Clients often send their leaf only; the intermediates complete the chain to the root.
    # They are loaded as verify locations, which is safe: a chain must still end in a root.
    context.load_verify_locations(cafile=str(tls.intermediates))
    if tls.crl is not None:
        context.load_verify_locations(cafile=str(tls.crl))
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context

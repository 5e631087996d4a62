"""Who is calling: the verified client certificate, mapped onto a configured organisation."""

from __future__ import annotations

from typing import Any

from adapter.config import Organisations
from adapter.errors import UnknownParty
from adapter.party import Party
from adapter.pki.identity import read_identity

# Set by whatever terminated TLS: the connection front (adapter.transport.front), the kit's
# listener, or a test calling the app without a socket. WSGI keys without an HTTP_ prefix
# cannot be set by a client's headers.
CLIENT_CERT_KEY = "dk_adapter.client_certificate"


def peer_certificate(environ: dict[str, Any]) -> bytes | None:
    """DER of the client's leaf certificate; the TLS handshake already verified its chain."""
    der = environ.get(CLIENT_CERT_KEY)
    return der if isinstance(der, bytes) and der else None


def identify(environ: dict[str, Any], organisations: Organisations) -> Party:
    """The calling `Party`, or `UnknownParty` for no certificate, no OIN, or an unknown OIN."""
    der = peer_certificate(environ)
    if der is None:
        raise UnknownParty("geen clientcertificaat")
    identity = read_identity(der)
    organisation = organisations.find(identity.oin, identity.kvk)
    if organisation is None:
        if identity.oin is None and identity.kvk is None:
            raise UnknownParty("het certificaat bevat geen OIN")
        raise UnknownParty(
            f"OIN {identity.oin or 'NTRNL-' + str(identity.kvk)} is niet aangesloten"
        )
    return Party(
        oin=organisation.oin,
        organisation=organisation,
        fingerprint=identity.fingerprint_sha256,
        subject=identity.subject,
    )

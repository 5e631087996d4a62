"""The authenticated caller, as it travels with a request from transport to service."""

from __future__ import annotations

from dataclasses import dataclass

from adapter.config import Organisation
from adapter.errors import NotGranted


@dataclass(frozen=True)
class Party:
    """An organisation that proved its OIN with a verified client certificate."""

    oin: str
    organisation: Organisation
    fingerprint: str
    subject: str

    def require(self, service: str) -> None:
        """Authorisation, the same for every profile: the organisation must be granted
        `service` in organisations.toml, else `NotGranted` (each profile says it its way)."""
        if service not in self.organisation.services:
            raise NotGranted(f"{self.organisation.name} is niet aangesloten op {service}")

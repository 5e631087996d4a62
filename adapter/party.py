"""The authenticated caller, as it travels with a request from transport to service."""

from __future__ import annotations

from dataclasses import dataclass

from adapter.config import Organisation


@dataclass(frozen=True)
class Party:
    """An organisation that proved its OIN with a verified client certificate."""

    oin: str
    organisation: Organisation
    fingerprint: str
    subject: str

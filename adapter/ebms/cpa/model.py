"""The values a CPA is read into: frozen, checked, and free of XML.

Everything else in the adapter works with these, never with the document: the reader in
`reader.py` is the only code that knows the CPA's XML.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path


@dataclass(frozen=True)
class ChannelSecurity:
    """The end-to-end security a party's channel demands (osb -s, -e; SPEC-digikoppeling §2.7).

    Read from the DocExchange of the channel the party receives on: SenderNonRepudiation
    (the party signs what it sends), SenderDigitalEnvelope or ReceiverDigitalEnvelope
    (payloads are encrypted), and MessagingCharacteristics ackSignatureRequested. The
    certificates are DER, from the party's Certificate elements the Refs name; None when the
    CPA names no certificate content (then the signer's chain and OIN decide, see
    adapter.ebms.security).
    """

    sign: bool = False
    encrypt: bool = False
    ack_signed: bool = False
    signature_algorithm: str | None = None
    hash_function: str | None = None
    signing_certificate: bytes | None = None
    encryption_algorithm: str | None = None
    encryption_certificate: bytes | None = None

    @property
    def profile_suffix(self) -> str:
        """ "-e", "-s" or "": what the osb profile name adds for this channel."""
        return "-e" if self.encrypt else "-s" if self.sign else ""


@dataclass(frozen=True)
class CpaParty:
    """One side of a CPA; delivery values come from the channel this party receives on."""

    oin: str
    party_id_type: str
    role: str
    endpoint: str
    can_send: frozenset[str]
    can_receive: frozenset[str]
    service: str
    service_type: str
    sync_reply_mode: str  # "none" | "mshSignalsOnly"
    ack_requested: str  # "always" | "never" | "perMessage"
    duplicate_elimination: str  # "always" | "never" | "perMessage"
    retries: int  # 0 for a best-effort channel without ReliableMessaging
    retry_interval: timedelta
    persist_duration: timedelta
    security: ChannelSecurity = ChannelSecurity()

    def acknowledges(self, asked: bool = True) -> bool:
        """Whether a message on this channel gets an Acknowledgment: ackRequested always,
        never (best effort), or perMessage: when the message carries AckRequested (`asked`)."""
        return self.ack_requested == "always" or (self.ack_requested == "perMessage" and asked)

    def eliminates_duplicates(self, asked: bool = True) -> bool:
        """Whether a repeated MessageId on this channel is a duplicate answered as the first:
        duplicateElimination always, never (best effort), or perMessage: when the message
        carries DuplicateElimination (`asked`)."""
        return self.duplicate_elimination == "always" or (
            self.duplicate_elimination == "perMessage" and asked
        )


@dataclass(frozen=True)
class Cpa:
    """One agreement: two parties, one service, valid from `start` until just before `end`."""

    cpa_id: str
    start: datetime
    end: datetime
    parties: tuple[CpaParty, CpaParty]
    source: Path

    def party(self, oin: str) -> CpaParty | None:
        """The party with this OIN, or None."""
        for candidate in self.parties:
            if candidate.oin == oin:
                return candidate
        return None

    def other(self, oin: str) -> CpaParty:
        """The party that is not `oin`; KeyError when `oin` is not in this CPA."""
        first, second = self.parties
        if first.oin == oin:
            return second
        if second.oin == oin:
            return first
        raise KeyError(f"{oin} is not a party to CPA {self.cpa_id}")

    def is_active(self, moment: datetime) -> bool:
        """Start <= moment < End; a moment without offset is read as UTC."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return self.start <= moment < self.end

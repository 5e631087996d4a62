"""Checks of a received ebMS message against its CPA and the TLS identity (SPEC Part C)."""

from __future__ import annotations

from datetime import datetime

from adapter.ebms.cpa import Cpa, CpaParty, CpaStore
from adapter.ebms.message import MSH_SERVICE, OIN_TYPE, MessageHeader
from adapter.errors import Inconsistent, SecurityFailure, ValueNotRecognized
from adapter.party import Party

MSH_ACTIONS = frozenset({"Acknowledgment", "MessageError", "Ping", "StatusRequest"})


def check_route(
    header: MessageHeader, cpas: CpaStore, party: Party, receiver_oin: str, now: datetime
) -> tuple[Cpa, CpaParty]:
    """The CPA and the sending party's side of it, or the ebMS error that refuses the message."""
    cpa = cpas.get(header.cpa_id)
    if cpa is None:
        raise ValueNotRecognized(f"CPAId {header.cpa_id} is onbekend", "//MessageHeader/CPAId")
    if not cpa.is_active(now):
        raise Inconsistent(
            f"CPA {cpa.cpa_id} is niet geldig op {now:%Y-%m-%d}", "//MessageHeader/CPAId"
        )
    for side, party_id in (("From", header.from_party), ("To", header.to_party)):
        if party_id.type != OIN_TYPE:
            raise Inconsistent(
                f"{side}/PartyId moet type {OIN_TYPE} hebben",
                f"//MessageHeader/{side}/PartyId/@type",
            )
    if header.from_party.value != party.oin:
        # The TLS certificate proved one OIN; the header may not claim another.
        raise SecurityFailure(
            f"From/PartyId {header.from_party.value} is niet het certificaat-OIN {party.oin}",
            "//MessageHeader/From/PartyId",
        )
    sender = cpa.party(header.from_party.value)
    if sender is None or header.to_party.value != receiver_oin or cpa.party(receiver_oin) is None:
        raise Inconsistent(
            f"de partijen passen niet bij CPA {cpa.cpa_id}", "//MessageHeader/To/PartyId"
        )
    if header.service == MSH_SERVICE:
        if header.action not in MSH_ACTIONS:
            raise ValueNotRecognized(
                f"Action {header.action} is onbekend", "//MessageHeader/Action"
            )
        return cpa, sender
    if (
        header.service != sender.service
        or (header.service_type or sender.service_type) != sender.service_type
    ):
        raise Inconsistent(
            f"Service {header.service} past niet bij CPA {cpa.cpa_id}", "//MessageHeader/Service"
        )
    if header.from_role != sender.role:
        raise Inconsistent(
            f"Role {header.from_role} past niet bij CPA {cpa.cpa_id}", "//MessageHeader/From/Role"
        )
    if header.action not in sender.can_send:
        raise ValueNotRecognized(f"Action {header.action} is onbekend", "//MessageHeader/Action")
    return cpa, sender


def channel_of(header: MessageHeader | None, cpas: CpaStore, oin: str) -> CpaParty | None:
    """The side of the CPA the message names that belongs to `oin` (the OIN its TLS
    certificate proved, never the one the header claims), whatever else is wrong with the
    message; None without a readable header, a known CPAId or `oin` as one of its parties."""
    if header is None:
        return None
    cpa = cpas.get(header.cpa_id)
    return cpa.party(oin) if cpa is not None else None

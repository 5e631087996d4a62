"""Replay protection on the WUS services: a WS-A MessageID is processed once per window.

SPEC states duplicate elimination for ebMS only (a duplicate gets the original answer, never a
second delivery); WUS states no rule, so ours follows the ebMS one. A request whose WS-A
MessageID the same organisation already used, within `limits.replay_window_hours`, for a
request that was accepted is a repeat:
- the same service and the same soap:Body (the receipt's BodyHash; for 2W-be-S/SE without
  the wsu:Id a new signature gives it): the stored original answer goes out again
  unchanged, receipt and WS-Security signature included; nothing is processed or stored anew;
- anything else: refused with `0011`, a client fault that says what to fix, and the
  refusal's own receipt; nothing of the business is stored.
A refused request keeps no claim on its MessageID (the refusal's transaction rolls back), so
after a fix it may come again under the same one. Requests without WS-A have no MessageID and
no replay protection, as on the Logius service.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from adapter.errors import HeaderValueNotAllowed
from adapter.store.wus_messages import MESSAGE_ID_LENGTH, EarlierRequest

DEFAULT_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Claim:
    """What the pipeline claims for a request with WS-A: its MessageID, per sender."""

    sender_oin: str
    message_id: str
    service: str
    body_hash: str
    received_at: datetime

    def seen_since(self, window: timedelta) -> datetime:
        """Earlier uses from this moment on count as the same MessageID seen before."""
        return self.received_at - window


def claim_for(
    sender_oin: str, message_id: str, service: str, body_hash: str, received_at: datetime
) -> Claim:
    """The claim of a request with WS-A; a MessageID too long to remember is refused (0011)."""
    if len(message_id) > MESSAGE_ID_LENGTH:
        raise HeaderValueNotAllowed(
            f"wsa:MessageID is {len(message_id)} tekens lang, de grens is {MESSAGE_ID_LENGTH}; "
            "gebruik bijvoorbeeld urn:uuid:<uuid>"
        )
    return Claim(sender_oin, message_id, service, body_hash, received_at)


def answer_to_repeat(claim: Claim, earlier: EarlierRequest, window: timedelta) -> bytes:
    """The stored answer when `claim` repeats `earlier` unchanged; else refuse it (0011)."""
    if earlier.service == claim.service and earlier.body_hash == claim.body_hash:
        return earlier.answer
    what = "een andere dienst" if earlier.service != claim.service else "een andere soap:Body"
    moment = earlier.received_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    raise HeaderValueNotAllowed(
        f"wsa:MessageID {claim.message_id} is op {moment} al gebruikt voor een verzoek met "
        f"{what} (BevestigingID {earlier.receipt_id}); geef elk nieuw verzoek een eigen "
        f"wsa:MessageID, en herhaal een verzoek onder dezelfde MessageID alleen ongewijzigd: "
        f"dat krijgt binnen {window / timedelta(hours=1):g} uur het oorspronkelijke antwoord"
    )

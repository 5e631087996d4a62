"""WS-Addressing 1.0 as Digikoppeling WUS uses it (WA001, 2W-be).

The Logius ValidateAbonnementen service has no WS-Addressing, so a request without it is
accepted unless the organisation is configured for 2W-be; a request that carries it must
carry it completely and correctly, and then gets MessageID, RelatesTo and Action back.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from lxml import etree

from adapter.errors import (
    AddressingActionMissing,
    AddressingMessageIdMissing,
    AddressingToMissing,
    HeaderValueNotAllowed,
)
from adapter.soap.xml import text_of

WSA = "http://www.w3.org/2005/08/addressing"
ANONYMOUS = f"{WSA}/anonymous"
NONE = f"{WSA}/none"
REPLY = f"{WSA}/reply"
_W = f"{{{WSA}}}"


@dataclass(frozen=True)
class Addressing:
    """The WS-Addressing headers of a request; fields are None when absent."""

    to: str | None
    action: str | None
    message_id: str | None
    reply_to: str | None


def read_addressing(headers: Sequence[etree._Element]) -> Addressing | None:
    """The request's WS-A headers, or None when it carries no WS-A header at all."""
    found = {
        h.tag[len(_W) :]: h for h in headers if isinstance(h.tag, str) and h.tag.startswith(_W)
    }
    if not found:
        return None

    def text(name: str) -> str | None:
        # The whole text: a comment inside a value must not cut it short.
        value = (text_of(found.get(name)) or "").strip()
        return value or None

    reply_to = None
    if (element := found.get("ReplyTo")) is not None:
        address = text_of(element.find(f"{_W}Address"))
        reply_to = address.strip() if address is not None else None
    return Addressing(text("To"), text("Action"), text("MessageID"), reply_to)


def _is_absolute_uri(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. an unbalanced "[" in the host: the sender's error, not ours
        return False
    return bool(parts.scheme) and bool(parts.netloc or parts.path)


def check_addressing(
    addressing: Addressing | None,
    *,
    required: bool,
    expected_action: str,
    receiver_oin: str,
) -> Addressing | None:
    """Raise the Digikoppeling fault (0005-0007, 0011) for missing or wrong WS-A headers."""
    if addressing is None:
        if required:
            raise AddressingToMissing(
                "deze organisatie moet WS-Addressing sturen (Digikoppeling 2W-be): "
                "wsa:To, wsa:Action en wsa:MessageID"
            )
        return None
    if addressing.to is None or not _is_absolute_uri(addressing.to):
        raise AddressingToMissing("wsa:To ontbreekt of is geen absolute URI")
    if addressing.action is None:
        raise AddressingActionMissing(f"wsa:Action ontbreekt; verwacht {expected_action}")
    if addressing.message_id is None:
        # Not checked as a URI: Digikoppeling's best practice itself suggests CUSTOM@UUID@URI.
        raise AddressingMessageIdMissing(
            "wsa:MessageID ontbreekt; geef elk verzoek een eigen, bijvoorbeeld urn:uuid:…"
        )
    if addressing.action != expected_action:
        raise HeaderValueNotAllowed(
            f"wsa:Action is {addressing.action}, verwacht {expected_action}"
        )
    oin = parse_qs(urlsplit(addressing.to).query).get("OIN")
    if oin and oin[0] != receiver_oin:
        raise HeaderValueNotAllowed(f"wsa:To is gericht aan OIN {oin[0]}, niet aan {receiver_oin}")
    if addressing.reply_to not in (None, ANONYMOUS):
        # Synchronous WUS only: the answer goes back on this connection.
        raise HeaderValueNotAllowed("wsa:ReplyTo moet anonymous zijn")
    return addressing


def reply_headers(request: Addressing, action: str) -> list[etree._Element]:
    """MessageID, RelatesTo and Action for the answer to `request` (To anonymous is implied)."""
    message_id = etree.Element(f"{_W}MessageID", nsmap={"wsa": WSA})
    message_id.text = f"urn:uuid:{uuid.uuid4()}"
    relates_to = etree.Element(f"{_W}RelatesTo", nsmap={"wsa": WSA})
    relates_to.text = request.message_id
    action_element = etree.Element(f"{_W}Action", nsmap={"wsa": WSA})
    action_element.text = action
    to = etree.Element(f"{_W}To", nsmap={"wsa": WSA})
    to.text = ANONYMOUS
    return [to, action_element, message_id, relates_to]

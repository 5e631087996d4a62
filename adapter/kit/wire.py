"""Messages exactly as they crossed the wire, kept by `--save DIR` of `send` and `send-zaak`.

A leverancier checks the receipts in them with `xmlsec1` and the root alone, without our
code, and compares what its own stack sends with what the kit sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from adapter.ebms.mime import parse_package


@dataclass(frozen=True)
class WireMessage:
    """One HTTP body and its Content-Type, as sent or received."""

    content_type: str
    body: bytes

    @property
    def is_multipart(self) -> bool:
        return self.content_type.strip().lower().startswith("multipart/")


def save(directory: Path, stem: str, message: WireMessage) -> list[Path]:
    """Write `message` into `directory`; returns the files written.

    A SOAP message becomes `<stem>.xml`. A MIME package (ebMS) is kept byte for byte as
    `<stem>.mime`, with its Content-Type (boundary and start) in `<stem>.content-type`, and
    its SOAP part, where the receipt is, as `<stem>.xml` beside it.
    """
    directory.mkdir(parents=True, exist_ok=True)
    if not message.body.strip():
        return []
    if not message.is_multipart:
        envelope = directory / f"{stem}.xml"
        envelope.write_bytes(message.body)
        return [envelope]
    raw = directory / f"{stem}.mime"
    raw.write_bytes(message.body)
    header = directory / f"{stem}.content-type"
    header.write_text(message.content_type + "\n", encoding="ascii")
    envelope = directory / f"{stem}.xml"
    envelope.write_bytes(parse_package(message.content_type, message.body).soap.body)
    return [raw, header, envelope]

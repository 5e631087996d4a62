"""Sending ebMS messages as an organisation's MSH would, and receiving our results as its peer.

Shared by the end-to-end ebMS tests (BerichtVerwerk, AbonnementAanvraag, signals, grants,
message administration, audit, the browser test).
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from lxml import etree

from adapter.ebms.mime import build_package
from adapter.kit.receiver import ACKNOWLEDGE, EbmsReceiver, ReceivedMessage, Reply
from adapter.kit.sender import batch_request
from adapter.receipts import verify
from tests.conftest import GEMEENTE, Pki, Server

MIJNOVERHEID = "00000004003214345001"
SUBSCRIBED, NOT_SUBSCRIBED = "999993653", "999990019"
BUSINESS_TABLES = ("berichten", "bericht_bijlagen", "bijlagen")


def cpa_id(oin: str) -> str:
    return f"MIJNOVERHEID-EBMS-BB-2-0_{oin}_{MIJNOVERHEID}_1"


@dataclass
class Sent:
    message_id: str
    response: requests.Response
    document: etree._Element | None
    root: Path

    @property
    def codes(self) -> dict[str, str]:
        """BerichtID -> VerwerkingsCode as the (verified) receipt in the answer records them."""
        assert self.document is not None
        receipt = verify(self.document, self.root).receipt
        return {b.bericht_id: b.verwerkingscode for b in receipt.outcome.berichten}


def send(
    server: Server,
    pki: Pki,
    payload: bytes,
    *,
    oin: str = GEMEENTE,
    general: list[tuple[str, bytes]] = (),  # type: ignore[assignment]
    soap_edit: tuple[bytes, bytes] | None = None,
    package_edit: Any = None,
    message_id: tuple[str, bytes] | None = None,
) -> Sent:
    """POST a GLOBE-R-BV-Request as the organisation's MSH would."""
    if message_id is None:
        message_id = batch_request(
            oin, MIJNOVERHEID, cpa_id(oin), "batch@test", [c for c, _ in general], datetime.now(UTC)
        )
    ebms_id, soap = message_id
    if soap_edit is not None:
        assert soap_edit[0] in soap, soap_edit
        soap = soap.replace(*soap_edit)
    parts = [("batch@test", "text/xml; charset=UTF-8", payload)] + [
        (c, "application/pdf", b) for c, b in general
    ]
    content_type, body = build_package(soap, parts)
    if package_edit is not None:
        content_type, body = package_edit(content_type, body)
    response = requests.post(
        f"{server.url}/berichtenbox/ebms",
        data=body,
        headers={"Content-Type": content_type, "SOAPAction": '"ebXML"'},
        cert=pki.clients[oin].pair,
        verify=str(pki.root),
        timeout=60,
    )
    document = etree.fromstring(response.content) if response.content.strip() else None
    return Sent(ebms_id, response, document, pki.root)


class Peer:
    """The organisations' ebMS endpoint (one port for all CPAs), with switchable outages."""

    def __init__(self, server: Server, pki: Pki) -> None:
        client = pki.clients[GEMEENTE]
        self.outages: dict[str, list[Reply]] = {}  # RefToMessageId -> replies before success
        self.seen: list[ReceivedMessage] = []
        self.receiver = EbmsReceiver(
            "127.0.0.1", server.peer_port, client.certificate, client.key, pki.root, self.reply
        )
        self.lock = threading.Lock()

    def reply(self, message: ReceivedMessage) -> Reply:
        with self.lock:
            replies = self.outages.get(message.header.ref_to_message_id or "", [])
            return replies.pop(0) if replies else ACKNOWLEDGE

    def wait_for(self, action: str, ref_to: str, timeout: float = 30) -> ReceivedMessage:
        """The message with this action answering `ref_to`, whenever it arrived."""
        deadline = datetime.now(UTC) + timedelta(seconds=timeout)
        while True:
            for message in self.seen:
                if message.header.action == action and message.header.ref_to_message_id == ref_to:
                    return message
            remaining = (deadline - datetime.now(UTC)).total_seconds()
            try:
                self.seen.append(self.receiver.received.get(timeout=max(remaining, 0.01)))
            except queue.Empty:
                raise AssertionError(f"no {action} for {ref_to} within {timeout}s") from None


def result_codes(message: ReceivedMessage) -> tuple[dict[str, str], dict[str, str]]:
    """Counters and BerichtID -> VerwerkingsCode of a BerichtVerwerkResponse."""
    response = etree.fromstring(message.payload() or b"")
    counters = {c.tag: c.text or "" for c in response.find("BatchInformatie")}
    codes = {
        b.findtext("BerichtID"): b.findtext("VerwerkingsCode") for b in response.iter("{*}Bericht")
    }
    return counters, codes  # type: ignore[return-value]

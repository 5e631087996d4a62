"""Sending ebMS messages as an organisation's MSH would, and receiving our results as its peer.

Shared by the end-to-end ebMS tests (BerichtVerwerk, AbonnementAanvraag, signals, grants,
message administration, audit, the browser test, signed ebMS and the conformance kit).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from lxml import etree

from adapter import cli
from adapter.ebms.cpa import ChannelSecurity, Cpa
from adapter.ebms.mime import build_package
from adapter.ebms.security import SigningKey, TrustAnchors, seal
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
    request_content_type: str = ""  # what went over the wire
    request_body: bytes = b""

    @property
    def codes(self) -> dict[str, str]:
        """BerichtID -> VerwerkingsCode as the (verified) receipt in the answer records them."""
        assert self.document is not None
        receipt = verify(self.document, self.root).receipt
        return {b.bericht_id: b.verwerkingscode for b in receipt.outcome.berichten}


def generate_cpas(directory: Path, pki: Pki, profiles: dict[int, tuple[str, str]]) -> None:
    """`dk-adapter cpa generate` as a leverancier would run it, for the gemeente and the test
    server written in `directory` (as `running_server`'s `prepare`): one CPA per sequence
    number of `profiles` (profile, syncReplyMode), with second-scale retries, written to
    cpa/PROFILE.xml. They name the gemeente's TLS certificate and the server's, as a CPA
    made by Logius would. In this process (the command's own `main`): a Python started per
    CPA would cost seconds for nothing the command does differently."""
    example = next((directory / "cpa").glob(f"*_{GEMEENTE}_*_1.xml")).read_text(encoding="utf-8")
    # The endpoints the example CPA was given for the server and its peer.
    theirs, ours = (uri.split('"')[0] for uri in example.split('tp:uri="')[1:3])
    for sequence, (profile, sync_reply_mode) in profiles.items():
        generated = cli.main(
            [
                "cpa",
                "generate",
                f"--oin={GEMEENTE}",
                "--name=Gemeente Voorbeeldstad",
                f"--endpoint={theirs}",
                f"--profile={profile}",
                f"--certificate={pki.clients[GEMEENTE].certificate}",
                f"--mijnoverheid-endpoint={ours}",
                f"--mijnoverheid-certificate={pki.files.server}",
                f"--sync-reply-mode={sync_reply_mode}",
                "--retries=5",
                "--retry-interval=PT1S",
                "--persist-duration=PT60S",
                f"--sequence={sequence}",
                f"--output={directory / 'cpa' / f'{profile}.xml'}",
            ]
        )
        assert generated == 0, profile


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
    cpa: str | None = None,
    security: ChannelSecurity | None = None,
    signing_key: SigningKey | None = None,
    reliable: bool = True,
) -> Sent:
    """POST a GLOBE-R-BV-Request as the organisation's MSH would; with `security` (MijnOverheid's
    side of an -s/-e CPA) signed with `signing_key`, and encrypted for -e, after `soap_edit`
    and before `package_edit`; not `reliable` for a best-effort CPA (no AckRequested)."""
    if message_id is None:
        message_id = batch_request(
            oin,
            MIJNOVERHEID,
            cpa or cpa_id(oin),
            "batch@test",
            [c for c, _ in general],
            datetime.now(UTC),
            security is not None and security.ack_signed,
            reliable=reliable,
        )
    ebms_id, soap = message_id
    if soap_edit is not None:
        assert soap_edit[0] in soap, soap_edit
        soap = soap.replace(*soap_edit)
    parts = [("batch@test", "text/xml; charset=UTF-8", payload)] + [
        (c, "application/pdf", b) for c, b in general
    ]
    if security is not None:
        soap, parts = seal(soap, parts, security, signing_key)
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
    return Sent(ebms_id, response, document, pki.root, content_type, body)


class Peer:
    """The organisations' ebMS endpoint (one port for all CPAs), with switchable outages."""

    def __init__(
        self,
        server: Server,
        pki: Pki,
        cpas: Sequence[Cpa] = (),
        signers: TrustAnchors | None = None,
    ) -> None:
        client = pki.clients[GEMEENTE]
        self.outages: dict[str, list[Reply]] = {}  # RefToMessageId -> replies before success
        self.seen: list[ReceivedMessage] = []
        self.receiver = EbmsReceiver(
            "127.0.0.1",
            server.peer_port,
            client.certificate,
            client.key,
            pki.root,
            self.reply,
            # -s/-e CPAs: the organisation verifies, decrypts and signs with its TLS key.
            cpas=cpas,
            signing_key=SigningKey.from_files(client.key, client.certificate) if cpas else None,
            signers=signers,
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

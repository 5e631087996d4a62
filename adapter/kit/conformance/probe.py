"""What a server-mode case works with: the target, the exchanges it makes, the findings.

A `Probe` is one case's view of the target: it posts over mutual TLS with the
leverancier's certificate, keeps every request and answer for the report, and collects
findings. `Inbox` is the mTLS ebMS receiver (adapter.kit.receiver) on which asynchronous
answers (Acknowledgments, results) arrive. `check_receipt` is the one receipt check every
case uses: the signature, and that the receipt is about the request that was sent.
`WssSide` is what the kit needs to sign as an organisation on 2W-be-S or 2W-be-SE.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import requests
from cryptography import x509
from lxml import etree

from adapter.ebms.mime import parse_package
from adapter.kit.client import MtlsClient
from adapter.kit.conformance.model import Exchange, Finding
from adapter.kit.receiver import EbmsReceiver, ReceivedMessage
from adapter.kit.sender import SignedChannel
from adapter.receipts import ReceiptInvalid, VerifiedReceipt, verify
from adapter.soap.envelope import SOAP_ENV, body_hash, raw_hash
from adapter.soap.wssecurity import SignerTrust, WssCredentials, WsSecurity
from adapter.soap.xml import parse_untrusted

MIJNOVERHEID = "00000004003214345001"
RECEIPT_RULE = "SPEC Part B/C: signed Afleverbevestiging in every answer to an authenticated party"
RECEIPT_FIX = (
    "put the signed Afleverbevestiging (enveloped XMLDSig, exclusive c14n, signing certificate "
    "and intermediates in KeyInfo) in the SOAP Header, about this very request"
)


class Inbox:
    """The kit's mTLS ebMS endpoint: every message that arrives is kept and acknowledged."""

    def __init__(self, receiver: EbmsReceiver) -> None:
        self.receiver = receiver
        self.seen: list[ReceivedMessage] = []
        self._lock = threading.Lock()

    def wait_for(self, actions: set[str], ref_to: str, timeout: float) -> ReceivedMessage | None:
        """The first message with one of `actions` answering `ref_to`, or None after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                for message in self.seen:
                    header = message.header
                    if header.action in actions and header.ref_to_message_id == ref_to:
                        return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                message = self.receiver.received.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            with self._lock:
                self.seen.append(message)


@dataclass(frozen=True)
class TestData:
    """Accounts and codes the target knows, for cases whose answer depends on them."""

    subscribed_bsn: str = "999993653"  # active and subscribed to the organisation
    not_subscribed_bsn: str = "999990019"  # active, not subscribed
    bericht_type: str = "BESLUIT"  # granted and active for the organisation


@dataclass(frozen=True)
class WssSide:
    """The client's organisation under 2W-be-S or 2W-be-SE: its key and certificate sign the
    kit's requests (and open 2W-be-SE answers); answers must be signed by a certificate that
    chains to `security.trust` and carries the target's OIN. `target_certificate` is the
    target's WS-Security certificate, which 2W-be-SE requests are encrypted for (WB012)."""

    profile: str
    security: WsSecurity
    target_certificate: x509.Certificate | None
    receipt: str = "header"  # "wsse": no Afleverbevestiging, the signed answer is the proof

    @property
    def encrypts(self) -> bool:
        return self.profile == "2W-be-SE"

    @classmethod
    def of_client(
        cls,
        profile: str,
        certificate: Path,
        key: Path,
        root: Path,
        target_certificate: Path | None,
        receipt: str = "header",
    ) -> WssSide:
        """The client's TLS pair signs (as the adapter's `[wss]` defaults to its TLS pair);
        answers must chain to `root`, with the intermediates of `target_certificate` (or
        else of the client certificate's chain)."""
        window = timedelta(seconds=300)  # the adapter's default clock skew and maximum age
        trust = SignerTrust(root, target_certificate or certificate, None, window, window)
        target = (
            x509.load_pem_x509_certificates(target_certificate.read_bytes())[0]
            if target_certificate is not None
            else None
        )
        return cls(
            profile, WsSecurity(WssCredentials.from_files(key, certificate), trust), target, receipt
        )


@dataclass
class Target:
    """The endpoint under test and how the kit reaches it and is reached by it."""

    base_url: str
    client: MtlsClient
    trusted_root: Path
    inbox: Inbox | None
    receiver_oin: str = MIJNOVERHEID
    cpa_id: str | None = None
    data: TestData = field(default_factory=TestData)
    result_timeout: float = 60.0
    wss: WssSide | None = None  # None: the organisation's WUS requests are unsigned (2W-be)
    signed_ebms: SignedChannel | None = None  # `--cpa FILE`: the organisation's osb-rm-s CPA

    @property
    def wus_profile(self) -> str:
        return self.wss.profile if self.wss is not None else "2W-be"

    @property
    def oin(self) -> str:
        return self.client.oin()

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def ebms_cpa_id(self) -> str:
        return self.cpa_id or f"MIJNOVERHEID-EBMS-BB-2-0_{self.oin}_{self.receiver_oin}_1"


@dataclass(frozen=True)
class Answer:
    """An HTTP answer with its SOAP envelope, if it had one that parsed."""

    status: int
    content_type: str
    body: bytes
    envelope: etree._Element | None


class Probe:
    """One case's exchanges and findings."""

    def __init__(self, target: Target, rule: str, fix: str) -> None:
        self.target = target
        self.rule, self.fix = rule, fix
        self.findings: list[Finding] = []
        self.exchanges: list[Exchange] = []

    def expect(
        self, condition: bool, message: str, rule: str | None = None, fix: str | None = None
    ) -> bool:
        """Record a finding unless `condition` holds; returns `condition`."""
        if not condition:
            self.findings.append(Finding(message, rule or self.rule, fix or self.fix))
        return condition

    def post(
        self,
        path: str,
        body: bytes,
        content_type: str,
        soap_action: str | None,
        title: str,
    ) -> Answer:
        """POST `body`; the SOAP envelope of the answer (the first MIME part for ebMS)."""
        headers = {"Content-Type": content_type}
        if soap_action is not None:
            headers["SOAPAction"] = soap_action
        response: requests.Response = self.target.client.session.post(
            self.target.url(path), data=body, headers=headers, timeout=120
        )
        self.exchanges.append(Exchange(title, body, response.content, response.status_code))
        answer_type = response.headers.get("Content-Type", "")
        envelope = None
        if response.content.strip():
            try:
                soap = response.content
                if answer_type.lower().startswith("multipart/"):
                    soap = parse_package(answer_type, response.content).soap.body
                envelope = parse_untrusted(soap)
            except Exception as exc:  # a broken answer is a finding, not a crash of the kit
                self.expect(False, f"the answer is not a readable SOAP message: {exc}")
        return Answer(response.status_code, answer_type, response.content, envelope)

    def record(self, title: str, message: ReceivedMessage) -> None:
        """Keep a message that arrived on the kit's receiver, for the report."""
        self.exchanges.append(
            Exchange(title, b"", etree.tostring(message.envelope, encoding="utf-8"), None)
        )


def request_body_hash(envelope: bytes) -> str:
    """The BodyHash a receipt of this request must carry (SPEC Part C)."""
    try:
        document = parse_untrusted(envelope)
    except Exception:
        return raw_hash(envelope)
    body = document.find(f"{{{SOAP_ENV}}}Body")
    return body_hash(body) if body is not None else raw_hash(envelope)


def check_receipt(
    probe: Probe,
    document: etree._Element | None,
    *,
    operation: str | None,
    body_hash_expected: str | None,
    message_ref: str | None = None,
    refused_code: str | None = None,
    part_hashes: dict[str, str] | None = None,
) -> VerifiedReceipt | None:
    """Verify the receipt in `document` and that it relates to the request that was sent."""
    if document is None:
        probe.expect(False, "no answer to look for a receipt in", RECEIPT_RULE, RECEIPT_FIX)
        return None
    try:
        verified = verify(document, probe.target.trusted_root)
    except ReceiptInvalid as exc:
        probe.expect(False, f"the receipt does not verify: {exc}", RECEIPT_RULE, RECEIPT_FIX)
        return None
    receipt = verified.receipt
    target = probe.target

    def same(actual: object, expected: object, what: str) -> None:
        probe.expect(
            actual == expected,
            f"the receipt's {what} is {actual!r}, expected {expected!r}",
            RECEIPT_RULE,
            "fill the receipt from the request it answers (SPEC Part C, receipt wire format)",
        )

    same(receipt.sender_oin, target.oin, "Afzender")
    same(receipt.receiver_oin, target.receiver_oin, "Ontvanger")
    if operation is not None:
        same(receipt.operation, operation, "Operatie")
    if body_hash_expected is not None:
        same(receipt.body_hash, body_hash_expected, "BodyHash")
    if message_ref is not None:
        same(receipt.message_ref, message_ref, "BerichtReferentie")
    if part_hashes is not None:
        same(dict(receipt.part_hashes), part_hashes, "PartHash set")
    if refused_code is None:
        probe.expect(
            receipt.outcome.accepted,
            f"the receipt says Geweigerd {receipt.outcome.code}: {receipt.outcome.reason}",
            RECEIPT_RULE,
        )
    else:
        same(receipt.outcome.code, refused_code, "Geweigerd/Code")
    return verified

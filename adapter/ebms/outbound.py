"""Outbound ebMS messages: stored in the outbox before the first attempt, retried per the CPA.

A business message (the BerichtVerwerkResponse) is done when the peer acknowledges it, in the
HTTP answer or as its own Acknowledgment message; a signal (our Acknowledgment) when the peer
took it (2xx). 503 and connection failures are retried after the CPA's retryInterval, up to
its retries, within its persistDuration; then the message is marked failed and logged.
Everything is driven from the database, so a restart continues where it stopped.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
import requests.adapters
from lxml import etree

from adapter.ebms.cpa import Cpa, CpaParty, CpaStore
from adapter.ebms.message import EB, Route, business_message, error_of, read_header
from adapter.ebms.mime import build_package, parse_package
from adapter.ebms.security import (
    SigningKey,
    TrustAnchors,
    VerifiedSignature,
    seal,
    signer_of,
    verify,
    verify_acknowledgment,
)
from adapter.errors import AdapterError, SecurityFailure
from adapter.soap.envelope import SOAP_ENV
from adapter.soap.xml import parse_untrusted
from adapter.store.db import Database
from adapter.store.outbox import (
    DueMessage,
    ExpiredMessage,
    NewOutboxMessage,
    Outbox,
    OutboxStatus,
    locks_rows,
)

log = logging.getLogger("adapter.outbox")

PARALLEL_DELIVERIES = 8
PAYLOAD_CID_DOMAIN = "mijnoverheid-adapter"
XML_PAYLOAD = "text/xml; charset=UTF-8"
_ACK_REF = f"{{{EB}}}Acknowledgment/{{{EB}}}RefToMessageId"
_ACK_REQUESTED = f"{{{SOAP_ENV}}}Header/{{{EB}}}AckRequested"
AcknowledgmentCheck = Callable[[etree._Element], None]
# A best-effort channel has no PersistDuration: its one attempt may wait this long for a
# scheduler round (a node down, a busy outbox) before the message counts as failed.
BEST_EFFORT_KEPT = timedelta(days=1)


def _new(
    party: CpaParty,
    cpa: Cpa,
    message_id: str,
    action: str,
    content_type: str,
    body: bytes,
    needs_ack: bool,
    ref_to: str | None,
) -> NewOutboxMessage:
    return NewOutboxMessage(
        message_id=message_id,
        ref_to_message_id=ref_to,
        cpa_id=cpa.cpa_id,
        to_oin=party.oin,
        endpoint=party.endpoint,
        action=action,
        content_type=content_type,
        body=body,
        needs_ack=needs_ack,
        max_attempts=party.retries + 1,  # best effort: retries 0, one attempt
        retry_interval_seconds=max(int(party.retry_interval.total_seconds()), 1),
        persist_duration=party.persist_duration or BEST_EFFORT_KEPT,
    )


def business_message_for(
    cpa: Cpa,
    party: CpaParty,
    route: Route,
    ref_to: str,
    payload: bytes,
    extra_headers: Sequence[etree._Element],
    now: datetime,
    payload_type: str = XML_PAYLOAD,
    key: SigningKey | None = None,
) -> NewOutboxMessage:
    """A business message with one payload part (XML unless `payload_type` says otherwise,
    e.g. application/gzip) for `party`, ready for the outbox. On the party's -s/-e channel it
    is signed with `key` (and its payload encrypted for the party) here, once, so every retry
    sends the same bytes. Reliability follows the party's CPA values: AckRequested and
    DuplicateElimination unless they say never, retries as many as it says (best effort:
    none)."""
    payload_cid = f"{uuid.uuid4()}@{PAYLOAD_CID_DOMAIN}"
    acknowledged = party.acknowledges()
    message_id, soap = business_message(
        route,
        now,
        ref_to,
        [payload_cid],
        extra_headers,
        signed_ack=party.security.ack_signed,
        ack_requested=acknowledged,
        duplicate_elimination=party.eliminates_duplicates(),
    )
    soap, parts = seal(soap, [(payload_cid, payload_type, payload)], party.security, key)
    content_type, body = build_package(soap, parts)
    # Best effort (ackRequested never): done once the party took it, as a signal is.
    return _new(party, cpa, message_id, route.action, content_type, body, acknowledged, ref_to)


def enqueue_signal(
    outbox: Outbox,
    cpa: Cpa,
    party: CpaParty,
    message_id: str,
    action: str,
    envelope: bytes,
    now: datetime,
    ref_to: str,
) -> None:
    """Queue an MSH signal (Acknowledgment) as its own single-part message."""
    outbox.add(signal_message_for(cpa, party, message_id, action, envelope, ref_to), now)


def signal_message_for(
    cpa: Cpa, party: CpaParty, message_id: str, action: str, envelope: bytes, ref_to: str
) -> NewOutboxMessage:
    """An MSH signal (Acknowledgment) as its own single-part message, ready for the outbox."""
    return _new(party, cpa, message_id, action, "text/xml; charset=UTF-8", envelope, False, ref_to)


def envelope_of(content_type: str, body: bytes) -> etree._Element:
    """The SOAP envelope of a message we queued, from its stored wire form."""
    return parse_untrusted(parse_package(content_type, body).soap.body)


def judge_answer(
    message_id: str,
    status_code: int,
    content_type: str,
    content: bytes,
    needs_ack: bool,
    check_acknowledgment: AcknowledgmentCheck | None = None,
) -> tuple[OutboxStatus, str | None]:
    """The state one delivery attempt leaves a message in, from the peer's HTTP answer.

    503 (and any 5xx) is recoverable (Digikoppeling): the message stays pending for a retry.
    Another non-2xx fails it. A signal is done once taken; a business message once the answer
    carries its Acknowledgment, else it waits for one as its own message (`sent`). When the
    message asked for a signed Acknowledgment, `check_acknowledgment` must accept it, and a
    MessageError as well (on a signed channel the party signs that too): one that fails is
    neither a delivery nor a refusal, and the message is sent again.
    """
    if status_code >= 500:
        return OutboxStatus.PENDING, f"HTTP {status_code}"
    if status_code >= 300:
        return OutboxStatus.FAILED, f"HTTP {status_code}"
    if not needs_ack:
        return OutboxStatus.DELIVERED, None
    if not content.strip():
        return OutboxStatus.SENT, "wacht op Acknowledgment"
    try:
        document = parse_untrusted(parse_package(content_type, content).soap.body)
    except Exception as exc:  # whatever the peer sent, the message waits for its Acknowledgment
        return OutboxStatus.SENT, f"antwoord onleesbaar: {type(exc).__name__}"
    error = error_of(document)
    if error is None and document.findtext(f".//{_ACK_REF}") != message_id:
        return OutboxStatus.SENT, "wacht op Acknowledgment"
    if check_acknowledgment is not None:
        try:
            check_acknowledgment(document)
        except SecurityFailure as failure:
            signal = "Acknowledgment" if error is None else "MessageError"
            return OutboxStatus.PENDING, f"{signal} afgewezen: {failure.description}"
    if error is not None:
        return OutboxStatus.FAILED, f"MessageError {error[0]}: {error[1]}"
    return OutboxStatus.DELIVERED, None


class _Budget:
    """How many more attempts one round may start, shared by its delivery threads."""

    def __init__(self, limit: int) -> None:
        self.left = limit
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True


@dataclass(frozen=True)
class OutboundTls:
    """Our client side: the certificate we present and the roots we trust for peers."""

    certificate: Path
    private_key: Path
    trust_anchors: Path


class Deliverer:
    """Sends due outbox messages; one per process, used by the scheduler."""

    def __init__(
        self,
        database: Database,
        tls: OutboundTls,
        timeout: float = 30,
        cpas: CpaStore | None = None,
        signers: TrustAnchors | None = None,
    ) -> None:
        self.database = database
        self.cpas = cpas  # with `signers`: for checking signed Acknowledgments (-s/-e)
        self.signers = signers
        self.session = requests.Session()
        self.session.cert = (str(tls.certificate), str(tls.private_key))
        self.session.verify = str(tls.trust_anchors)
        self.session.trust_env = False  # no proxies or CA bundles from the environment
        # Keep-alive connections per peer, one for each concurrent delivery.
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=16, pool_maxsize=PARALLEL_DELIVERIES
        )
        self.session.mount("https://", adapter)
        self._pool = ThreadPoolExecutor(PARALLEL_DELIVERIES, thread_name_prefix="outbox")
        self.timeout = timeout

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.session.close()

    def deliver_due(self, limit: int = 500) -> int:
        """Attempt due messages once each, several at a time, until none is due or `limit`
        were tried; returns how many were tried.

        Each delivery thread claims one message at a time and records its outcome before it
        claims the next: a claim of many at once would keep the last of them waiting, leased,
        while the first are sent, and a node killed meanwhile would strand them all.
        """
        if not self._anything_due():  # most rounds: no thread woken, no write transaction
            return 0
        budget = _Budget(limit)
        # Each attempt waits on a peer (TLS handshake, its processing): overlap them.
        workers = [
            self._pool.submit(self._deliver_while_due, budget) for _ in range(PARALLEL_DELIVERIES)
        ]
        return sum(worker.result() for worker in workers)

    def _deliver_while_due(self, budget: _Budget) -> int:
        if locks_rows(self.database.url):  # PostgreSQL: see `_deliver_next`
            tried = 0
            while budget.take() and self._deliver_next():
                tried += 1
            return tried
        return self._deliver_in_turn(budget)

    def _deliver_in_turn(self, budget: _Budget) -> int:
        """SQLite: claim, attempt, and record each outcome in the transaction that claims the
        next message. One write transaction per message instead of two: each waits for the
        database's one write lock behind the requests, and with two per message the outbox
        fell behind the batches it answered (666 of 3,688 results still queued 30 s after a
        load of 20 batches of 1,000 a second)."""
        tried = 0
        attempted: tuple[DueMessage, OutboxStatus, str | None] | None = None
        while True:
            claiming = budget.take() and (attempted is not None or self._anything_due())
            if attempted is None and not claiming:
                return tried
            with self.database.repositories() as repositories:
                outbox = repositories.outbox
                if attempted is not None:
                    message, status, error = attempted
                    recorded = outbox.record_attempt(message.id, status, error, datetime.now(UTC))
                due, expired = outbox.claim_due(datetime.now(UTC), 1) if claiming else ([], [])
            if attempted is not None:
                _log_outcome(*attempted, recorded)
                attempted = None
            _log_given_up(expired)
            if not due:
                if not expired:
                    return tried
                tried += 1  # given up: tried, as `_deliver_next` counts it
                continue
            tried += 1
            attempted = (due[0], *self._attempt(due[0]))

    def _anything_due(self) -> bool:
        """Read first: a claim is a write transaction, which on SQLite queues every request's
        receipt behind it even when it finds nothing."""
        with self.database.reading() as repositories:
            return repositories.outbox.has_due(datetime.now(UTC))

    def _deliver_next(self) -> bool:
        """PostgreSQL: claim, attempt and record one due message in one transaction; False
        when none was due. The row stays locked, and so invisible to every other node's
        claim, until the outcome commits with the claim."""
        if not self._anything_due():
            return False
        with self.database.repositories() as repositories:
            outbox = repositories.outbox
            due, expired = outbox.claim_due(datetime.now(UTC), 1)
            _log_given_up(expired)
            if not due:
                return bool(expired)
            message = due[0]
            status, error = self._attempt(message)
            recorded = outbox.record_attempt(message.id, status, error, datetime.now(UTC))
        _log_outcome(message, status, error, recorded)
        return True

    def _attempt(self, message: DueMessage) -> tuple[OutboxStatus, str | None]:
        try:
            response = self.session.post(
                message.endpoint,
                data=message.body,
                headers={"Content-Type": message.content_type, "SOAPAction": '"ebXML"'},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            return OutboxStatus.PENDING, f"verbinding mislukt: {type(exc).__name__}"
        except Exception as exc:  # whatever else went wrong, the message stays queued
            log.exception("outbox %s: attempt failed", message.message_id)
            return OutboxStatus.PENDING, f"poging mislukt: {type(exc).__name__}"
        return judge_answer(
            message.message_id,
            response.status_code,
            response.headers.get("Content-Type", "text/xml"),
            response.content,
            message.needs_ack,
            answer_check(message, self.cpas, self.signers),
        )


def _log_given_up(expired: list[ExpiredMessage]) -> None:
    for gone in expired:
        log.error("outbox %s to %s failed: %s", gone.message_id, gone.to_oin, gone.last_error)


def _log_outcome(
    message: DueMessage, status: OutboxStatus, error: str | None, recorded: bool
) -> None:
    if not recorded:  # an asynchronous Acknowledgment was faster
        return
    if status is OutboxStatus.DELIVERED:
        log.info("outbox %s delivered to %s", message.message_id, message.to_oin)
    else:
        log.warning("outbox %s to %s: %s (%s)", message.message_id, message.to_oin, status, error)


def answer_check(
    message: DueMessage, cpas: CpaStore | None, signers: TrustAnchors | None
) -> AcknowledgmentCheck | None:
    """How to check the answer to `message` if it asked for a signed Acknowledgment: signed
    by its receiver the way its CPA says, and an Acknowledgment carrying the references of
    our signature (a MessageError has none to carry)."""
    if not message.needs_ack:
        return None
    try:
        sent = envelope_of(message.content_type, message.body)
        requested = sent.find(_ACK_REQUESTED)
        if requested is None or requested.get(f"{{{EB}}}signed") != "true":
            return None
        header = read_header(sent)
    except AdapterError:  # our own message: it was readable when we stored it
        return None
    cpa = cpas.get(header.cpa_id) if cpas is not None else None
    party = cpa.party(message.to_oin) if cpa is not None else None

    def check(answer: etree._Element) -> None:
        if party is None or signers is None:
            raise SecurityFailure(f"geen CPA {header.cpa_id} om de ondertekening te toetsen")
        verify_answer(answer, sent, party, signers, datetime.now(UTC))

    return check


def verify_answer(
    answer: etree._Element,
    sent: etree._Element,
    party: CpaParty,
    signers: TrustAnchors,
    now: datetime,
) -> VerifiedSignature:
    """The synchronous answer of `party` to the signed message `sent`, signed the way its
    side of the CPA says: a MessageError by the party, an Acknowledgment by the party and
    carrying the references of the signature over `sent`. Raises SecurityFailure."""
    signer = signer_of(party.security, party.oin)
    if error_of(answer) is not None:
        return verify(answer, {}, signer, signers, now)
    return verify_acknowledgment(answer, signer, signers, now, sent)

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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import requests
import requests.adapters
from lxml import etree

from adapter.ebms.cpa import Cpa, CpaParty
from adapter.ebms.message import EB, Route, business_message, error_of
from adapter.ebms.mime import build_package, parse_package
from adapter.soap.xml import parse_untrusted
from adapter.store.db import Database
from adapter.store.outbox import DueMessage, NewOutboxMessage, Outbox, OutboxStatus

log = logging.getLogger("adapter.outbox")

PARALLEL_DELIVERIES = 8
PAYLOAD_CID_DOMAIN = "mijnoverheid-adapter"
XML_PAYLOAD = "text/xml; charset=UTF-8"
_ACK_REF = f"{{{EB}}}Acknowledgment/{{{EB}}}RefToMessageId"


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
        max_attempts=party.retries + 1,
        retry_interval_seconds=max(int(party.retry_interval.total_seconds()), 1),
        persist_duration=party.persist_duration,
    )


def enqueue_business(
    outbox: Outbox,
    cpa: Cpa,
    party: CpaParty,
    route: Route,
    ref_to: str,
    payload: bytes,
    extra_headers: Sequence[etree._Element],
    now: datetime,
    payload_type: str = XML_PAYLOAD,
) -> str:
    """Queue a business message with one payload part (XML unless `payload_type` says
    otherwise, e.g. application/gzip) for `party`; returns its MessageId."""
    payload_cid = f"{uuid.uuid4()}@{PAYLOAD_CID_DOMAIN}"
    message_id, soap = business_message(route, now, ref_to, [payload_cid], extra_headers)
    content_type, body = build_package(soap, [(payload_cid, payload_type, payload)])
    outbox.add(_new(party, cpa, message_id, route.action, content_type, body, True, ref_to), now)
    return message_id


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
    outbox.add(
        _new(party, cpa, message_id, action, "text/xml; charset=UTF-8", envelope, False, ref_to),
        now,
    )


def judge_answer(
    message_id: str, status_code: int, content_type: str, content: bytes, needs_ack: bool
) -> tuple[OutboxStatus, str | None]:
    """The state one delivery attempt leaves a message in, from the peer's HTTP answer.

    503 (and any 5xx) is recoverable (Digikoppeling): the message stays pending for a retry.
    Another non-2xx fails it. A signal is done once taken; a business message once the answer
    carries its Acknowledgment, else it waits for one as its own message (`sent`).
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
    if error is not None:
        return OutboxStatus.FAILED, f"MessageError {error[0]}: {error[1]}"
    if document.findtext(f".//{_ACK_REF}") == message_id:
        return OutboxStatus.DELIVERED, None
    return OutboxStatus.SENT, "wacht op Acknowledgment"


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

    def __init__(self, database: Database, tls: OutboundTls, timeout: float = 30) -> None:
        self.database = database
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
        budget = _Budget(limit)
        # Each attempt waits on a peer (TLS handshake, its processing): overlap them.
        workers = [
            self._pool.submit(self._deliver_while_due, budget) for _ in range(PARALLEL_DELIVERIES)
        ]
        return sum(worker.result() for worker in workers)

    def _deliver_while_due(self, budget: _Budget) -> int:
        tried = 0
        while budget.take() and self._deliver_next():
            tried += 1
        return tried

    def _deliver_next(self) -> bool:
        """Claim, attempt and record one due message; False when none was due."""
        with self.database.repositories() as repositories:
            outbox = repositories.outbox
            due, expired = outbox.claim_due(datetime.now(UTC), 1)
            for gone in expired:
                log.error(
                    "outbox %s to %s failed: %s", gone.message_id, gone.to_oin, gone.last_error
                )
            if not due:
                return bool(expired)
            message = due[0]
            if outbox.locks_rows:
                # PostgreSQL: the row stays locked, and so invisible to every other node's
                # claim, until the outcome commits with the claim.
                status, error = self._attempt(message)
                recorded = outbox.record_attempt(message.id, status, error, datetime.now(UTC))
        if not outbox.locks_rows:
            # SQLite: the claim's lease keeps others away; the database is not held meanwhile.
            status, error = self._attempt(message)
            with self.database.repositories() as repositories:
                recorded = repositories.outbox.record_attempt(
                    message.id, status, error, datetime.now(UTC)
                )
        if not recorded:  # an asynchronous Acknowledgment was faster
            return True
        if status is OutboxStatus.DELIVERED:
            log.info("outbox %s delivered to %s", message.message_id, message.to_oin)
        else:
            log.warning(
                "outbox %s to %s: %s (%s)", message.message_id, message.to_oin, status, error
            )
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
        )

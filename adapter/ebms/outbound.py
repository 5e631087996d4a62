"""Outbound ebMS messages: stored in the outbox before the first attempt, retried per the CPA.

A business message (the BerichtVerwerkResponse) is done when the peer acknowledges it, in the
HTTP answer or as its own Acknowledgment message; a signal (our Acknowledgment) when the peer
took it (2xx). 503 and connection failures are retried after the CPA's retryInterval, up to
its retries, within its persistDuration; then the message is marked failed and logged.
Everything is driven from the database, so a restart continues where it stopped.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import requests
import requests.adapters
from lxml import etree
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from adapter.ebms.cpa import Cpa, CpaParty
from adapter.ebms.message import Route, business_message, error_of
from adapter.ebms.mime import build_package, parse_package
from adapter.soap.xml import parse_untrusted
from adapter.store.db import Database
from adapter.store.models import OutboxMessage

log = logging.getLogger("adapter.outbox")

PENDING, SENT, DELIVERED, FAILED = "pending", "sent", "delivered", "failed"
PARALLEL_DELIVERIES = 8
PAYLOAD_CID_DOMAIN = "mijnoverheid-adapter"


def _store(
    session: Session,
    party: CpaParty,
    cpa: Cpa,
    message_id: str,
    action: str,
    content_type: str,
    body: bytes,
    needs_ack: bool,
    now: datetime,
    ref_to: str | None,
) -> None:
    session.add(
        OutboxMessage(
            message_id=message_id,
            ref_to_message_id=ref_to,
            cpa_id=cpa.cpa_id,
            to_oin=party.oin,
            endpoint=party.endpoint,
            action=action,
            content_type=content_type,
            body=body,
            needs_ack=needs_ack,
            status=PENDING,
            attempts=0,
            max_attempts=party.retries + 1,
            retry_interval_seconds=max(int(party.retry_interval.total_seconds()), 1),
            next_attempt_at=now,
            expires_at=now + party.persist_duration,
            created_at=now,
        )
    )


def enqueue_business(
    session: Session,
    cpa: Cpa,
    party: CpaParty,
    route: Route,
    ref_to: str,
    payload: bytes,
    extra_headers: Sequence[etree._Element],
    now: datetime,
) -> str:
    """Queue a business message with one XML payload part for `party`; returns its MessageId."""
    payload_cid = f"{uuid.uuid4()}@{PAYLOAD_CID_DOMAIN}"
    message_id, soap = business_message(route, now, ref_to, [payload_cid], extra_headers)
    content_type, body = build_package(soap, [(payload_cid, "text/xml; charset=UTF-8", payload)])
    _store(session, party, cpa, message_id, route.action, content_type, body, True, now, ref_to)
    return message_id


def enqueue_signal(
    session: Session,
    cpa: Cpa,
    party: CpaParty,
    message_id: str,
    action: str,
    envelope: bytes,
    now: datetime,
    ref_to: str,
) -> None:
    """Queue an MSH signal (Acknowledgment) as its own single-part message."""
    _store(
        session,
        party,
        cpa,
        message_id,
        action,
        "text/xml; charset=UTF-8",
        envelope,
        False,
        now,
        ref_to,
    )


def acknowledged(session: Session, message_id: str, from_oin: str) -> bool:
    """The peer acknowledged one of our messages: it is delivered."""
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.message_id == message_id, OutboxMessage.to_oin == from_oin)
        .values(status=DELIVERED, last_error=None)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def refused(
    session: Session, message_id: str, from_oin: str, reason: str = "MessageError ontvangen"
) -> None:
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.message_id == message_id, OutboxMessage.to_oin == from_oin)
        .values(status=FAILED, last_error=reason)
    )
    log.error("outbox %s: refused by %s: %s", message_id, from_oin, reason)


def resend_acknowledgment(session: Session, ref_to: str, to_oin: str, now: datetime) -> None:
    """A duplicate arrived: the Acknowledgment of the original goes out again, unchanged."""
    session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.ref_to_message_id == ref_to,
            OutboxMessage.to_oin == to_oin,
            OutboxMessage.action == "Acknowledgment",
        )
        .values(status=PENDING, next_attempt_at=now, attempts=0, expires_at=now + timedelta(days=1))
    )


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

    def _claim(self, now: datetime, limit: int) -> list[OutboxMessage]:
        """Due messages, leased until their next retry so other nodes leave them alone."""
        with self.database.transaction() as session:
            due = list(
                session.scalars(
                    select(OutboxMessage)
                    .where(
                        OutboxMessage.status.in_((PENDING, SENT)),
                        OutboxMessage.next_attempt_at <= now,
                    )
                    .order_by(OutboxMessage.next_attempt_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            for message in due:
                if now >= message.expires_at or message.attempts >= message.max_attempts:
                    message.status = FAILED
                    message.last_error = (
                        message.last_error or ""
                    ) + " (opgegeven: retries of persistDuration op)"
                    log.error(
                        "outbox %s to %s failed: %s",
                        message.message_id,
                        message.to_oin,
                        message.last_error,
                    )
                    continue
                message.attempts += 1
                message.next_attempt_at = now + timedelta(seconds=message.retry_interval_seconds)
            session.flush()
            session.expunge_all()  # plain values from here on; the lease is committed below
        return [m for m in due if m.status != FAILED]

    def deliver_due(self, now: datetime, limit: int = 200) -> int:
        """Attempt every due message once, several at a time; returns how many were tried."""
        messages = self._claim(now, limit)
        # Each attempt waits on a peer (TLS handshake, its processing): overlap them.
        list(self._pool.map(self._deliver, messages))
        return len(messages)

    def _deliver(self, message: OutboxMessage) -> None:
        status, error = self._attempt(message)
        with self.database.transaction() as session:
            current = session.get(OutboxMessage, message.id)
            if current is None or current.status in (DELIVERED, FAILED):
                return  # an asynchronous Acknowledgment was faster
            current.status, current.last_error = status, error
        if status == DELIVERED:
            log.info("outbox %s delivered to %s", message.message_id, message.to_oin)
        else:
            log.warning(
                "outbox %s to %s: %s (%s)", message.message_id, message.to_oin, status, error
            )

    def _attempt(self, message: OutboxMessage) -> tuple[str, str | None]:
        try:
            response = self.session.post(
                message.endpoint,
                data=message.body,
                headers={"Content-Type": message.content_type, "SOAPAction": '"ebXML"'},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            return PENDING, f"verbinding mislukt: {type(exc).__name__}"
        if response.status_code >= 500:
            # 503 is explicitly recoverable (Digikoppeling); other 5xx are treated alike.
            return PENDING, f"HTTP {response.status_code}"
        if response.status_code >= 300:
            return FAILED, f"HTTP {response.status_code}"
        if not message.needs_ack:
            return DELIVERED, None
        return self._judge_answer(message, response)

    def _judge_answer(
        self, message: OutboxMessage, response: requests.Response
    ) -> tuple[str, str | None]:
        if not response.content.strip():
            return SENT, "wacht op Acknowledgment"
        try:
            package = parse_package(
                response.headers.get("Content-Type", "text/xml"), response.content
            )
            document = parse_untrusted(package.soap.body)
        except Exception as exc:
            return SENT, f"antwoord onleesbaar: {type(exc).__name__}"
        error = error_of(document)
        if error is not None:
            return FAILED, f"MessageError {error[0]}: {error[1]}"
        ack_ref = document.findtext(
            ".//{http://www.oasis-open.org/committees/ebxml-msg/schema/msg-header-2_0.xsd}Acknowledgment/"
            "{http://www.oasis-open.org/committees/ebxml-msg/schema/msg-header-2_0.xsd}RefToMessageId"
        )
        if ack_ref == message.message_id:
            return DELIVERED, None
        return SENT, "wacht op Acknowledgment"

"""One ebMS 2.0 message, end to end: identify, MIME, MessageHeader, CPA, batch, store, answer.

Problems of the ebMS layer are answered with an ErrorList (MessageError); a message that
passes it is acknowledged even when its content then fails, and the BerichtVerwerkResponse
always goes back as a new ebMS message through the outbox (Digikoppeling: business answers
are asynchronous). Acceptance, receipt, stored answer and outbox rows commit together.
"""

from __future__ import annotations

import copy
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lxml import etree
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from adapter.berichtenbox.berichtverwerk import (
    BatchContext,
    BatchResultaat,
    BijlageLimits,
    VerwerkingsCode,
    batch_failure,
    general_references,
    response_element,
    verwerk,
)
from adapter.config import Config
from adapter.ebms import outbound
from adapter.ebms.cpa import Cpa, CpaParty, CpaStore
from adapter.ebms.inbound import check_route
from adapter.ebms.message import (
    MSH_SERVICE,
    MessageHeader,
    acknowledgment,
    message_error,
    read_header,
    reply_route,
)
from adapter.ebms.mime import Package, parse_package
from adapter.errors import EbmsError, MimeProblem, OtherXml, SoapFault
from adapter.metrics import ACCEPTED, record_request
from adapter.party import Party
from adapter.receipts import Outcome, Receipt, ReceiptSigner
from adapter.soap.envelope import body_hash, build_fault, raw_hash
from adapter.soap.schema import SchemaSet
from adapter.soap.xml import parse_untrusted
from adapter.store.blobs import BlobStore
from adapter.store.db import Database
from adapter.store.models import EbmsMessage
from adapter.store.receipts import save_receipt
from adapter.transport.identity import identify
from adapter.transport.wus import HttpResult

log = logging.getLogger("adapter.ebms")

SOAP_ACTION = "ebXML"
BATCH_ACTION = "GLOBE-R-BV-Request"
RESULT_ACTION = "GLOBE-R-BV-Result"
SERVICE_NAME = "BerichtVerwerk"
BATCH_SCHEMA = "GLOBEBatchRequest.xsd"
ASYNC_ANSWER = HttpResult("200 OK", b"", (("Content-Type", "text/plain; charset=utf-8"),))


@dataclass
class _Progress:
    """What is known of the message so far, for the receipt of whatever happens next."""

    request_id: str
    received_at: datetime
    party: Party
    header: MessageHeader | None = None
    body_hash: str = ""
    part_hashes: tuple[tuple[str, str], ...] = ()


class EbmsEndpoint:
    def __init__(
        self,
        config: Config,
        database: Database,
        signer: ReceiptSigner,
        schemas: SchemaSet,
        cpas: CpaStore,
        blobs: BlobStore,
    ) -> None:
        self.config = config
        self.database = database
        self.signer = signer
        self.schemas = schemas
        self.cpas = cpas
        self.blobs = blobs
        self.receiver_oin = config.receipts.receiver_oin

    # --- the request ----------------------------------------------------------------------

    def handle(self, environ: dict[str, Any]) -> HttpResult:
        try:
            party = identify(environ, self.config.organisations)
        except SoapFault as fault:  # an unknown party learns nothing, as on the WUS side
            return HttpResult("500 Internal Server Error", build_fault(fault))
        progress = _Progress(uuid.uuid4().hex, datetime.now(UTC), party)
        started = time.perf_counter()
        try:
            answer = self._handle(environ, progress)
            record_request(SERVICE_NAME, party.oin, "accepted", time.perf_counter() - started)
            return answer
        except EbmsError as error:
            record_request(
                SERVICE_NAME, party.oin, "refused", time.perf_counter() - started, error.error_code
            )
            return self._refuse(error, progress)
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", exc)).splitlines()[0][:200]
            log.error(
                "request %s: database error: %s: %s",
                progress.request_id,
                type(exc).__name__,
                reason,
            )
            return self._refuse(
                OtherXml("tijdelijk niet beschikbaar, probeer later opnieuw"), progress, store=False
            )
        except Exception:
            log.exception("request %s: unexpected error", progress.request_id)
            return self._refuse(OtherXml("interne fout"), progress, store=False)

    def _handle(self, environ: dict[str, Any], progress: _Progress) -> HttpResult:
        data = self._read(environ)
        progress.body_hash = raw_hash(data)
        soap_action = (environ.get("HTTP_SOAPACTION") or "").strip().strip('"')
        if soap_action != SOAP_ACTION:
            raise OtherXml(
                f"SOAPAction moet {SOAP_ACTION} zijn, niet {soap_action!r}", "SOAPAction"
            )
        package = parse_package(environ.get("CONTENT_TYPE", ""), data)
        progress.part_hashes = tuple(
            (p.content_id or "", raw_hash(p.body)) for p in package.attachments
        )
        try:
            envelope = parse_untrusted(package.soap.body)
        except SoapFault as fault:
            raise OtherXml(f"SOAP-deel: {fault.reason}", "/Envelope") from None
        body = envelope.find("{http://schemas.xmlsoap.org/soap/envelope/}Body")
        if body is not None:
            progress.body_hash = body_hash(body)
        header = read_header(envelope)
        progress.header = header
        answered = self._stored_answer(header)
        if answered is not None:
            return answered
        cpa, sender = check_route(
            header, self.cpas, progress.party, self.receiver_oin, progress.received_at
        )
        for cid in header.manifest:
            package.attachment(cid)  # every Manifest reference must resolve (MimeProblem)
        if header.service == MSH_SERVICE:
            return self._signal(header)
        return self._batch(header, package, cpa, sender, progress)

    def _read(self, environ: dict[str, Any]) -> bytes:
        limit = self.config.limits.max_ebms_message_bytes
        length_text = environ.get("CONTENT_LENGTH") or ""
        if length_text.isdigit() and int(length_text) > limit:
            raise OtherXml(
                f"het bericht is {length_text} bytes; de grens is {limit}", "Content-Length"
            )
        data: bytes = environ["wsgi.input"].read(
            int(length_text) if length_text.isdigit() else limit + 1
        )
        if len(data) > limit:
            raise OtherXml(f"het bericht is groter dan {limit} bytes", "Content-Length")
        return data

    # --- duplicate elimination --------------------------------------------------------------

    def _stored_answer(self, header: MessageHeader) -> HttpResult | None:
        with self.database.transaction() as session:
            stored = session.scalars(
                select(EbmsMessage).where(
                    EbmsMessage.from_oin == header.from_party.value,
                    EbmsMessage.message_id == header.message_id,
                )
            ).one_or_none()
            if stored is None:
                return None
            log.info(
                "ebMS %s from %s: duplicate, stored answer sent again",
                header.message_id,
                stored.from_oin,
            )
            if stored.answer_body is None:
                # syncReplyMode none: the Acknowledgment we sent for the original goes out again.
                outbound.resend_acknowledgment(
                    session, header.message_id, stored.from_oin, datetime.now(UTC)
                )
                return ASYNC_ANSWER
            content_type = stored.answer_content_type or "text/xml; charset=utf-8"
            return HttpResult("200 OK", stored.answer_body, (("Content-Type", content_type),))

    # --- MSH signals ------------------------------------------------------------------------

    def _signal(self, header: MessageHeader) -> HttpResult:
        with self.database.transaction() as session:
            if header.action == "Acknowledgment" and header.ref_to_message_id:
                outbound.acknowledged(session, header.ref_to_message_id, header.from_party.value)
            elif header.action == "MessageError" and header.ref_to_message_id:
                outbound.refused(session, header.ref_to_message_id, header.from_party.value)
        return ASYNC_ANSWER

    # --- BerichtVerwerk -------------------------------------------------------------------

    def _batch(
        self,
        header: MessageHeader,
        package: Package,
        cpa: Cpa,
        sender: CpaParty,
        progress: _Progress,
    ) -> HttpResult:
        if not header.manifest:
            raise MimeProblem("het Manifest verwijst naar geen enkele payload", "//Body/Manifest")
        payload = package.attachment(header.manifest[0])
        organisation = progress.party.organisation
        prepared = self._prepare(
            payload.body, package, organisation.oin, header, progress.received_at
        )

        def attempt() -> HttpResult:
            with self.database.transaction() as session:
                session.add(
                    EbmsMessage(
                        from_oin=header.from_party.value,
                        message_id=header.message_id,
                        cpa_id=header.cpa_id,
                        conversation_id=header.conversation_id,
                        action=header.action,
                        received_at=progress.received_at,
                    )
                )
                session.flush()  # claims the MessageId before any work is done
                result = prepared(session)
                return self._answer(session, header, result, cpa, sender, progress)

        try:
            return attempt()
        except IntegrityError:
            # The same MessageId arrived twice at once: the other one won, send its answer.
            answered = self._stored_answer(header)
            if answered is None:
                raise
            return answered

    def _prepare(
        self,
        payload: bytes,
        package: Package,
        sender_oin: str,
        header: MessageHeader,
        now: datetime,
    ) -> Callable[[Session], BatchResultaat]:
        """Everything that needs no database: parse, validate, resolve; returns the stored part."""
        try:
            batch = parse_untrusted(payload)
            self.schemas.validate(batch, BATCH_SCHEMA)
        except SoapFault as fault:
            code = VerwerkingsCode.XML_ONGELDIG
            reason = fault.message or fault.reason
            batch_id = _batch_id(payload)
            return lambda _session: batch_failure(batch_id, sender_oin, code, reason, now)
        leverancier_oin = (
            batch.findtext("{*}BatchInformatie/{*}BerichtLeverancierID") or ""
        ).strip()
        organisation = self.config.organisations.by_oin[sender_oin]
        leverancier = self.config.organisations.by_oin.get(leverancier_oin)
        batch_id = batch.findtext("{*}BatchInformatie/{*}BatchID")
        if not organisation.may_deliver_for(leverancier_oin) or leverancier is None:
            reason = (
                f"BerichtLeverancierID {leverancier_oin} is niet {sender_oin} (of via acts_for)"
            )
            code = VerwerkingsCode.OIN_MISMATCH
            return lambda _session: batch_failure(
                batch_id, leverancier_oin or sender_oin, code, reason, now
            )
        general = {cid: package.attachment(cid).body for cid in general_references(batch)}
        limits = BijlageLimits(
            self.config.limits.personal_attachments_bytes,
            self.config.limits.general_attachments_bytes,
        )
        context = BatchContext(organisation, leverancier, now, header.message_id, general, limits)
        return lambda session: verwerk(session, self.blobs, batch, context)

    def _answer(
        self,
        session: Session,
        header: MessageHeader,
        result: BatchResultaat,
        cpa: Cpa,
        sender: CpaParty,
        progress: _Progress,
    ) -> HttpResult:
        """Receipt, Acknowledgment and the asynchronous result, stored in the open transaction."""
        receipt = self._receipt(progress, result.outcome())
        signed = self.signer.sign(receipt)
        stored = session.scalars(
            select(EbmsMessage).where(
                EbmsMessage.from_oin == header.from_party.value,
                EbmsMessage.message_id == header.message_id,
            )
        ).one()
        stored.receipt_id = receipt.receipt_id
        # Copies go into the messages; the receipt itself is stored last (see below).
        ack_id, ack = acknowledgment(header, progress.received_at, [copy.deepcopy(signed)])
        result_route = reply_route(header, RESULT_ACTION, sender.service, sender.service_type)
        outbound.enqueue_business(
            session,
            cpa,
            sender,
            result_route,
            header.message_id,
            etree.tostring(response_element(result), xml_declaration=True, encoding="utf-8"),
            [copy.deepcopy(signed)],
            progress.received_at,
        )
        if sender.sync_reply_mode == "mshSignalsOnly":
            stored.answer_content_type, stored.answer_body = "text/xml; charset=utf-8", ack
            answer = HttpResult("200 OK", ack)
        else:
            outbound.enqueue_signal(
                session,
                cpa,
                sender,
                ack_id,
                "Acknowledgment",
                ack,
                progress.received_at,
                header.message_id,
            )
            answer = ASYNC_ANSWER
        # Last before commit: storing the receipt appends to the audit chain under its lock.
        save_receipt(session, receipt, signed)
        verwerkt = sum(1 for b in result.berichten if b.code is VerwerkingsCode.VERWERKT)
        ACCEPTED.labels(service=SERVICE_NAME).inc(verwerkt)
        log.info(
            "ebMS %s from %s: batch %s, %s",
            header.message_id,
            header.from_party.value,
            result.batch_id,
            ", ".join(f"{k}={v}" for k, v in result.counters().items() if v),
        )
        return answer

    # --- refusals ---------------------------------------------------------------------------

    def _receipt(self, progress: _Progress, outcome: Outcome) -> Receipt:
        return Receipt(
            request_id=progress.request_id,
            receiver_oin=self.receiver_oin,
            sender_oin=progress.party.oin,
            received_at=progress.received_at,
            message_ref=progress.header.message_id if progress.header else None,
            service=SERVICE_NAME,
            operation=progress.header.action if progress.header else "onbekend",
            body_hash=progress.body_hash or raw_hash(b""),
            part_hashes=progress.part_hashes,
            outcome=outcome,
        )

    def _refuse(self, error: EbmsError, progress: _Progress, store: bool = True) -> HttpResult:
        """A MessageError with a signed receipt; sent back on this connection (see below)."""
        log.info(
            "request %s: ebMS %s refused: %s %s",
            progress.request_id,
            progress.header.message_id if progress.header else "-",
            error.error_code,
            error.description,
        )
        receipt = self._receipt(progress, Outcome.reject(error.error_code, error.description))
        signed = self.signer.sign(receipt)
        if store:
            try:
                with self.database.transaction() as session:
                    save_receipt(session, receipt, signed)
            except SQLAlchemyError as exc:
                log.error(
                    "request %s: receipt not stored: %s", progress.request_id, type(exc).__name__
                )
        # The error goes back synchronously even for syncReplyMode none: an error found before
        # the CPA is known has nowhere else to go, and one answer path keeps senders simple.
        _, body = message_error(progress.header, error, progress.received_at, [signed])
        return HttpResult("200 OK", body)


def _batch_id(payload: bytes) -> str | None:
    """The BatchID of a batch that failed validation, if it can be read at all."""
    try:
        batch_id: str | None = parse_untrusted(payload).findtext("{*}BatchInformatie/{*}BatchID")
        return batch_id
    except SoapFault:
        return None

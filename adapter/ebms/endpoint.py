"""One ebMS 2.0 message, end to end: identify, MIME, MessageHeader, CPA, grant, payload, answer.

The generic endpoint of the ebMS profile; it knows no business. Problems of the ebMS layer are
answered with an ErrorList (MessageError; itself signed when the CPA of the channel it
came over demands signing) and a signed refusal receipt. A message that passes
it goes to the `EbmsAction` its Action names (adapter.ebms.service), is acknowledged even when
its content then fails (the business answer says why; on a best-effort CPA, whose ackRequested
is never, it gets no Acknowledgment), and the business answer always goes back as a new ebMS
message through the outbox. Acceptance, receipt, stored answer and outbox
rows commit together, or nothing is stored. The MSH services (ebMS 2.0 sections 7 and 8) are
answered here too: Ping with Pong, StatusRequest with StatusResponse.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lxml import etree

from adapter.config import Organisations
from adapter.ebms import outbound
from adapter.ebms.cpa import Cpa, CpaParty, CpaStore
from adapter.ebms.inbound import channel_of, check_route
from adapter.ebms.message import (
    MSH_SERVICE,
    MessageHeader,
    acknowledgment,
    message_error,
    pong,
    read_header,
    reply_route,
    status_request_ref,
    status_response,
)
from adapter.ebms.mime import Package, parse_package
from adapter.ebms.security import (
    SigningKey,
    TrustAnchors,
    VerifiedSignature,
    open_package,
    sign,
    signer_of,
    verify,
    verify_acknowledgment,
)
from adapter.ebms.service import (
    EbmsAction,
    EbmsAnswer,
    EbmsRequest,
    EbmsService,
    EbmsStreamRequest,
    EncodedPayload,
    InvalidPayload,
    StreamedPayload,
)
from adapter.errors import (
    BodyTooLarge,
    BodyUnreadable,
    DeliveryFailure,
    EbmsError,
    Inconsistent,
    MimeProblem,
    NotAuthorised,
    NotGranted,
    NotSupported,
    OtherXml,
    Rejected,
    SchemaViolation,
    SecurityFailure,
    StoreConflict,
    StoreUnavailable,
    UnknownParty,
    XmlRejected,
    translation,
)
from adapter.metrics import ACCEPTED, record_request
from adapter.party import Party
from adapter.receipts import Outcome, Receipt, ReceiptSigner
from adapter.receipts.model import parse_own
from adapter.soap.envelope import SOAP_ENV, body_hash, build_fault, raw_hash
from adapter.soap.schema import SchemaSet
from adapter.soap.xml import XmlLimits, parse_untrusted
from adapter.store.db import Database
from adapter.store.ebms_messages import StoredAnswer
from adapter.store.outbox import NewOutboxMessage
from adapter.store.repositories import Repositories
from adapter.transport.http import HttpResult, read_body
from adapter.transport.identity import identify

log = logging.getLogger("adapter.ebms")

SOAP_ACTION = "ebXML"
# Dienst in receipts and the metrics' service label while no service is known yet.
ENDPOINT_NAME = "ebMS"
ASYNC_ANSWER = HttpResult("200 OK", b"", (("Content-Type", "text/plain; charset=utf-8"),))
_UNAVAILABLE = "tijdelijk niet beschikbaar, probeer later opnieuw"

# Profile-neutral errors in ebMS terms (SPEC Part C): error class, location, and a fixed
# description where the neutral reason would tell the peer about our internals.
EBMS_ERRORS: Mapping[type[Rejected], tuple[type[EbmsError], str | None, str | None]] = {
    XmlRejected: (OtherXml, "/Envelope", None),
    SchemaViolation: (OtherXml, None, None),
    BodyTooLarge: (OtherXml, "Content-Length", None),
    BodyUnreadable: (OtherXml, "Content-Length", None),
    NotGranted: (SecurityFailure, "//MessageHeader/Service", None),
    StoreUnavailable: (DeliveryFailure, None, _UNAVAILABLE),
    StoreConflict: (DeliveryFailure, None, _UNAVAILABLE),
}


def as_ebms_error(error: Rejected) -> EbmsError:
    """The ErrorList error that tells an ebMS peer what a neutral refusal means."""
    entry = translation(EBMS_ERRORS, error)
    if entry is None:
        return OtherXml(error.reason)
    error_class, location, fixed = entry
    mapped = error_class(fixed or error.reason, location)
    mapped.http_headers = error.http_headers
    return mapped


@dataclass(frozen=True)
class EbmsSettings:
    """The part of the configuration the endpoint needs."""

    organisations: Organisations
    receiver_oin: str  # MijnOverheid's OIN: To/PartyId of every message
    max_message_bytes: int  # the whole MIME message, refused unread above
    xml_limits: XmlLimits  # what parsing its SOAP part and its payload may cost
    # The -s/-e profiles: our key (signs acks and answers, decrypts payloads) and the roots
    # a signer's certificate must chain to when its CPA names no certificate.
    signing_key: SigningKey | None = None
    trust_anchors: TrustAnchors | None = None


@dataclass
class _Progress:
    """What is known of the message so far, for the receipt of whatever happens next."""

    request_id: str
    received_at: datetime
    party: Party
    service: str = ENDPOINT_NAME
    header: MessageHeader | None = None
    body_hash: str = ""
    # The message as received, until its SOAP Body has a hash of its own: a refusal before
    # then carries the hash of all of it. Hashed only then: up to 100 MiB, 27 ms for 28 MB.
    unparsed: bytes | None = None
    part_hashes: tuple[tuple[str, str], ...] = ()


class EbmsEndpoint:
    def __init__(
        self,
        services: Sequence[EbmsService],
        settings: EbmsSettings,
        database: Database,
        signer: ReceiptSigner,
        schemas: SchemaSet,
        cpas: CpaStore,
    ) -> None:
        self.actions: dict[str, tuple[EbmsService, EbmsAction]] = {}
        for service in services:
            for action in service.actions:
                if action.action in self.actions:
                    raise ValueError(f"Action {action.action} is served twice")
                self.actions[action.action] = (service, action)
        self.settings = settings
        self.database = database
        self.signer = signer
        self.schemas = schemas
        self.cpas = cpas

    # --- the request ----------------------------------------------------------------------

    def handle(self, environ: dict[str, Any]) -> HttpResult:
        try:
            party = identify(environ, self.settings.organisations)
        except UnknownParty as unknown:  # an unknown party learns nothing, as on the WUS side
            return HttpResult(
                "500 Internal Server Error", build_fault(NotAuthorised(unknown.reason))
            )
        progress = _Progress(uuid.uuid4().hex, datetime.now(UTC), party)
        started = time.perf_counter()
        try:
            answer = self._handle(environ, progress)
        except (EbmsError, Rejected) as refusal:
            error = refusal if isinstance(refusal, EbmsError) else as_ebms_error(refusal)
            if isinstance(refusal, (StoreUnavailable, StoreConflict)):
                log.error("request %s: database error: %s", progress.request_id, refusal.reason)
            record_request(
                progress.service,
                party.oin,
                "refused",
                time.perf_counter() - started,
                error.error_code,
            )
            # Nothing can be stored while the database is down; the signed receipt still goes out.
            return self._refuse(error, progress, store=not isinstance(refusal, StoreUnavailable))
        except Exception:
            log.exception("request %s: unexpected error", progress.request_id)
            return self._refuse(OtherXml("interne fout"), progress, store=False)
        record_request(progress.service, party.oin, "accepted", time.perf_counter() - started)
        return answer

    def _handle(self, environ: dict[str, Any], progress: _Progress) -> HttpResult:
        data = read_body(environ, self.settings.max_message_bytes)
        progress.unparsed = data
        soap_action_header = environ.get("HTTP_SOAPACTION")
        if (soap_action_header or "").strip().strip('"') != SOAP_ACTION:
            found = (
                "ontbreekt" if soap_action_header is None else f"is {soap_action_header.strip()}"
            )
            raise OtherXml(
                f'de HTTP-header SOAPAction {found}; ebMS vereist "{SOAP_ACTION}"', "SOAPAction"
            )
        package = parse_package(environ.get("CONTENT_TYPE", ""), data)
        # The parts are copies: up to max_message_bytes need not stay alive beside them
        # (`progress.unparsed` holds it only until the SOAP part is read, just below).
        del data
        progress.part_hashes = tuple(
            (p.content_id or "", raw_hash(p.body)) for p in package.attachments
        )
        envelope = parse_untrusted(package.soap.body, self.settings.xml_limits)
        body = envelope.find(f"{{{SOAP_ENV}}}Body")
        if body is not None:
            progress.body_hash, progress.unparsed = body_hash(body), None
        header = read_header(envelope)
        progress.header = header
        cpa, sender = check_route(
            header, self.cpas, progress.party, self.settings.receiver_oin, progress.received_at
        )
        for cid in header.manifest:
            package.attachment(cid)  # every Manifest reference must resolve (MimeProblem)
        if header.service == MSH_SERVICE:
            return self._signal(header, envelope, cpa, sender, progress.received_at)
        served = self.actions.get(header.action)
        if served is None:
            raise NotSupported(
                f"Action {header.action} wordt hier niet bediend", "//MessageHeader/Action"
            )
        service, action = served
        progress.service = service.name
        progress.party.require(service.name)
        # -s/-e: the signature is checked, and payloads decrypted, before anything is stored;
        # the receipt's part hashes stay those of the parts as received (encrypted).
        verified, package = open_package(
            envelope,
            package,
            sender.security,
            sender.oin,
            self.settings.signing_key,
            self.settings.trust_anchors,
            progress.received_at,
        )
        # Only now a known MessageId gets its stored answer: on a signed channel an unsigned
        # or forged copy was refused above, and learns nothing of the original's answer.
        answered = self._stored_answer(header, sender)
        if answered is not None:
            return answered
        run = self._prepare(action, header, package, progress)
        return self._process(run, action, header, cpa, sender, progress, verified)

    def _prepare(
        self, action: EbmsAction, header: MessageHeader, package: Package, progress: _Progress
    ) -> Callable[[Repositories], EbmsAnswer]:
        """Everything that needs no database: the payload parsed and validated."""
        if not header.manifest:
            raise MimeProblem("het Manifest verwijst naar geen enkele payload", "//Body/Manifest")
        raw = package.attachment(header.manifest[0]).body
        try:
            if action.stream_handler is not None:
                # The handler reads and validates the payload itself, as a stream, here where
                # no transaction is open yet; what it returns runs in the transaction.
                streamed = EbmsStreamRequest(
                    progress.party,
                    header,
                    StreamedPayload(raw, self.schemas.compiled(action.schema)),
                    package,
                    progress.received_at,
                )
                return action.stream_handler(streamed)
            payload = parse_untrusted(raw, self.settings.xml_limits)
            self.schemas.validate(payload, action.schema, action.checked_by_handler)
        except (XmlRejected, SchemaViolation) as invalid:
            answer_invalid = action.invalid_payload
            if answer_invalid is None:
                raise
            problem = InvalidPayload(
                progress.party, header, raw, invalid.reason, progress.received_at
            )
            return lambda _repositories: answer_invalid(problem)
        request = EbmsRequest(progress.party, header, payload, package, progress.received_at)
        handler = action.handler
        if handler is None:  # EbmsAction refuses to exist without one of its two handlers
            raise TypeError(f"Action {action.action} has no handler")
        return lambda repositories: handler(request, repositories)

    # --- duplicate elimination --------------------------------------------------------------

    def _stored_answer(self, header: MessageHeader, party: CpaParty) -> HttpResult | None:
        """The answer of the first copy of a known MessageId, when the CPA eliminates
        duplicates; on a channel without (best effort) a repeated MessageId is refused: it
        can be neither delivered twice nor silently dropped."""
        sender = header.from_party.value
        # Read without a write transaction: every message asks, and on SQLite a write
        # transaction waits for the database's one write lock behind every batch in progress.
        with self.database.reading() as repositories:
            stored = repositories.ebms_messages.answer_of(sender, header.message_id)
        if stored is None:
            return None
        if not party.eliminates_duplicates(header.duplicate_elimination):
            raise Inconsistent(
                f"MessageId {header.message_id} is al ontvangen, en deze CPA kent geen "
                f"duplicate elimination (duplicateElimination {party.duplicate_elimination}): "
                "geef elk bericht een eigen MessageId",
                "//MessageHeader/MessageData/MessageId",
            )
        log.info("ebMS %s from %s: duplicate, stored answer sent again", header.message_id, sender)
        if stored.body is None:
            # syncReplyMode none: the Acknowledgment we sent for the original goes out again.
            with self.database.repositories() as repositories:
                repositories.outbox.resend_acknowledgment(
                    header.message_id, sender, datetime.now(UTC)
                )
            return ASYNC_ANSWER
        content_type = stored.content_type or "text/xml; charset=utf-8"
        return HttpResult("200 OK", stored.body, (("Content-Type", content_type),))

    # --- MSH signals ------------------------------------------------------------------------

    def _signal(
        self,
        header: MessageHeader,
        envelope: etree._Element,
        cpa: Cpa,
        sender: CpaParty,
        received_at: datetime,
    ) -> HttpResult:
        if header.action == "Ping":
            message_id, answer = pong(header, received_at)
            return self._msh_answer(message_id, answer, "Pong", header, cpa, sender, received_at)
        if header.action == "StatusRequest":
            return self._status(header, envelope, cpa, sender, received_at)
        if header.ref_to_message_id and header.action in ("Acknowledgment", "MessageError"):
            self._verify_signal(header, envelope, sender, received_at)
            oin = header.from_party.value
            with self.database.repositories() as repositories:
                if header.action == "Acknowledgment":
                    repositories.outbox.acknowledged(header.ref_to_message_id, oin)
                elif repositories.outbox.refused(
                    header.ref_to_message_id, oin, "MessageError ontvangen"
                ):
                    log.error("outbox %s: refused by %s", header.ref_to_message_id, oin)
        return ASYNC_ANSWER

    def _verify_signal(
        self, header: MessageHeader, envelope: etree._Element, sender: CpaParty, at: datetime
    ) -> None:
        """On a signed channel an Acknowledgment or MessageError changes the state of our
        message only when the party signed it; so an unsigned or forged one is SecurityFailure
        and changes nothing. An Acknowledgment (signed-ack channels) must also carry the
        ds:Reference values of our signature over the message it acknowledges, as the
        synchronous one must (outbound.Deliverer); a MessageError (signed channels) needs
        only the party's signature: it carries no references."""
        security = sender.security
        if not (security.ack_signed if header.action == "Acknowledgment" else security.sign):
            return
        if self.settings.trust_anchors is None:
            raise SecurityFailure(
                f"ondertekende {header.action}-berichten kunnen hier nu niet worden gecontroleerd"
            )
        signer = signer_of(security, sender.oin)
        if header.action == "MessageError":
            verify(envelope, {}, signer, self.settings.trust_anchors, at)
            return
        with self.database.repositories() as repositories:
            sent = repositories.outbox.sent_message(header.ref_to_message_id or "", sender.oin)
        verify_acknowledgment(
            envelope,
            signer,
            self.settings.trust_anchors,
            at,
            # Not ours (or purged): the signature is checked, and nothing is acknowledged.
            None if sent is None else outbound.envelope_of(*sent),
        )

    def _status(
        self,
        header: MessageHeader,
        envelope: etree._Element,
        cpa: Cpa,
        sender: CpaParty,
        received_at: datetime,
    ) -> HttpResult:
        """ebMS 2.0 §7: the status of a message the asking party sent us.

        Looked up by (asking party, MessageId): another party's message is NotRecognized, as
        one never received, so nobody learns that a message exists that is not theirs.
        Forwarded never applies: this MSH is the final one (Digikoppeling allows no multi-hop).
        """
        ref = status_request_ref(envelope)
        with self.database.repositories() as repositories:
            known = repositories.ebms_messages.status_of(header.from_party.value, ref)
        status, at = known if known is not None else ("NotRecognized", None)
        message_id, answer = status_response(header, ref, status, at, received_at)
        log.info("ebMS StatusRequest %s from %s: %s", ref, header.from_party.value, status)
        return self._msh_answer(
            message_id, answer, "StatusResponse", header, cpa, sender, received_at
        )

    def _msh_answer(
        self,
        message_id: str,
        answer: bytes,
        action: str,
        request: MessageHeader,
        cpa: Cpa,
        sender: CpaParty,
        received_at: datetime,
    ) -> HttpResult:
        """An MSH answer (Pong, StatusResponse) on this connection when the sender's CPA has
        syncReplyMode mshSignalsOnly, else as its own message through the outbox."""
        if sender.sync_reply_mode == "mshSignalsOnly":
            return HttpResult("200 OK", answer, (("Content-Type", "text/xml; charset=utf-8"),))
        with self.database.repositories() as repositories:
            outbound.enqueue_signal(
                repositories.outbox,
                cpa,
                sender,
                message_id,
                action,
                answer,
                received_at,
                request.message_id,
            )
        return ASYNC_ANSWER

    # --- a business message ---------------------------------------------------------------

    def _process(
        self,
        run: Callable[[Repositories], EbmsAnswer],
        action: EbmsAction,
        header: MessageHeader,
        cpa: Cpa,
        sender: CpaParty,
        progress: _Progress,
        verified: VerifiedSignature | None,
    ) -> HttpResult:
        def attempt() -> HttpResult:
            with self.database.repositories() as repositories:
                answer = run(repositories)
                return self._answer(
                    repositories, answer, action, header, cpa, sender, progress, verified
                )

        try:
            return attempt()
        except StoreConflict:
            # The same MessageId arrived twice at once: the other one won, send its answer.
            answered = self._stored_answer(header, sender)
            if answered is None:
                raise
            return answered

    def _answer(
        self,
        repositories: Repositories,
        answer: EbmsAnswer,
        action: EbmsAction,
        header: MessageHeader,
        cpa: Cpa,
        sender: CpaParty,
        progress: _Progress,
        verified: VerifiedSignature | None,
    ) -> HttpResult:
        """Receipt, Acknowledgment and the asynchronous answer, stored in the open transaction.

        All of it is built and signed before the first write, the handler's deferred ones
        (`EbmsAnswer.store`) included: on SQLite the write lock, which every other message's
        writes wait for, is taken by that first write and held only for the writes."""
        receipt = self._receipt(progress, answer.outcome)
        signed = self.signer.signed_xml(receipt)
        route = reply_route(header, action.answer_action, sender.service, sender.service_type)
        if isinstance(answer.payload, EncodedPayload):
            content_type, payload = answer.payload.content_type, answer.payload.data
        else:
            content_type = outbound.XML_PAYLOAD
            payload = etree.tostring(answer.payload, xml_declaration=True, encoding="utf-8")
        result = outbound.business_message_for(
            cpa,
            sender,
            route,
            header.message_id,
            payload,
            [parse_own(signed)],
            progress.received_at,
            content_type,
            self.settings.signing_key,
        )
        if sender.acknowledges(header.ack_requested):
            stored, http, queued_ack = self._acknowledgment(
                header, cpa, sender, progress, signed, verified
            )
        else:
            # Best effort (ackRequested never): no Acknowledgment, on this connection or
            # later; the empty 200 says the message was taken, as for syncReplyMode none.
            stored, http, queued_ack = StoredAnswer(None, None), ASYNC_ANSWER, None
        # The writes, from here on.
        if answer.store is not None:
            answer.store()
        repositories.outbox.add(result, progress.received_at)
        if queued_ack is not None:
            repositories.outbox.add(queued_ack, progress.received_at)
        # The MessageId is claimed last, with its answer: a copy arriving at the same time
        # fails here (StoreConflict) and its transaction, work and all, rolls back. Claimed
        # first, it would begin the transaction, and on SQLite hold the database's one write
        # lock through all of the handler's work (a batch: its letters judged, their
        # attachments checked and written) while every other writer waited.
        repositories.ebms_messages.claim(
            header.from_party.value,
            header.message_id,
            header.cpa_id,
            header.conversation_id,
            header.action,
            progress.received_at,
            (receipt.receipt_id, stored),
        )
        # Last before commit: storing the receipt appends to the audit chain under its lock.
        repositories.receipts.save(receipt, signed)
        ACCEPTED.labels(service=progress.service).inc(answer.accepted)
        log.info("ebMS %s from %s: %s", header.message_id, header.from_party.value, answer.summary)
        return http

    def _acknowledgment(
        self,
        header: MessageHeader,
        cpa: Cpa,
        sender: CpaParty,
        progress: _Progress,
        signed: bytes,
        verified: VerifiedSignature | None,
    ) -> tuple[StoredAnswer, HttpResult, NewOutboxMessage | None]:
        """The Acknowledgment with a copy of the receipt (signed on -s/-e channels, with the
        references of the received signature): on this connection for syncReplyMode
        mshSignalsOnly, else as its own message, returned for the outbox. Returns too what
        duplicates get again."""
        ack_id, ack = acknowledgment(
            header,
            progress.received_at,
            [parse_own(signed)],
            verified.references if verified is not None else (),
        )
        if sender.security.sign or sender.security.ack_signed:
            ack = sign(ack, [], self._signing_key())
        if sender.sync_reply_mode == "mshSignalsOnly":
            return StoredAnswer("text/xml; charset=utf-8", ack), HttpResult("200 OK", ack), None
        queued = outbound.signal_message_for(
            cpa, sender, ack_id, "Acknowledgment", ack, header.message_id
        )
        return StoredAnswer(None, None), ASYNC_ANSWER, queued

    def _signing_key(self) -> SigningKey:
        if self.settings.signing_key is None:
            raise SecurityFailure("er is geen ebMS-ondertekeningssleutel ingesteld")
        return self.settings.signing_key

    # --- refusals ---------------------------------------------------------------------------

    def _receipt(self, progress: _Progress, outcome: Outcome) -> Receipt:
        return Receipt(
            request_id=progress.request_id,
            receiver_oin=self.settings.receiver_oin,
            sender_oin=progress.party.oin,
            received_at=progress.received_at,
            message_ref=progress.header.message_id if progress.header else None,
            service=progress.service,
            operation=progress.header.action if progress.header else "onbekend",
            body_hash=progress.body_hash or raw_hash(progress.unparsed or b""),
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
        signed = self.signer.signed_xml(receipt)
        if store:
            try:
                with self.database.repositories() as repositories:
                    repositories.receipts.save(receipt, signed)
            except StoreUnavailable as unavailable:
                log.error(
                    "request %s: receipt not stored: %s", progress.request_id, unavailable.reason
                )
        # The error goes back synchronously even for syncReplyMode none: an error found before
        # the CPA is known has nowhere else to go, and one answer path keeps senders simple.
        _, body = message_error(progress.header, error, progress.received_at, [parse_own(signed)])
        return HttpResult("200 OK", self._sign_refusal(body, progress), error.http_headers)

    def _sign_refusal(self, body: bytes, progress: _Progress) -> bytes:
        """The MessageError signed with our key when the refused message came over a channel
        whose CPA demands signing, as our Acknowledgments on it are: its sender then trusts
        only what we signed. The channel is the CPA the header names, looked up for the OIN
        the TLS certificate proved, whatever else the refusal is about; with no readable
        header, an unknown CPAId, or a CPA the sender is no party to there is no channel,
        no signing certificate of ours the sender could check, and the error goes unsigned."""
        channel = channel_of(progress.header, self.cpas, progress.party.oin)
        if channel is None or not channel.security.sign:
            return body
        if self.settings.signing_key is None:  # the refusal must still reach the sender
            log.error("request %s: MessageError unsigned: no ebMS signing key", progress.request_id)
            return body
        return sign(body, [], self.settings.signing_key)

"""One WUS request, end to end: identify, parse, WS-A, grant, XSD, service, store, receipt.

The WUS profile's pipeline; it knows no business: a `WusService` descriptor (adapter.soap.wus)
says which operations a path serves. Each stage is a call with plain values; a stage that
refuses raises the `SoapFault` that says why (or a profile-neutral error, which `WUS_FAULTS`
translates), and this module turns it into the fault response, with a stored and signed
receipt when the caller is a configured organisation. A request is fully stored and
receipted, or refused with nothing of its business data stored.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from lxml import etree

from adapter.config import Organisations
from adapter.errors import (
    BodyTooLarge,
    BodyUnreadable,
    ForbiddenMarkup,
    InvalidEnvelope,
    InvalidSoapAction,
    MalformedXml,
    NotAuthorised,
    NotConformXsd,
    NotGranted,
    NotUtf8,
    Rejected,
    RequestTooLarge,
    SchemaViolation,
    ServiceNotGranted,
    ServiceUnavailable,
    SoapFault,
    StoreConflict,
    StoreUnavailable,
    UnknownParty,
    XmlNotUtf8,
    XmlTooComplex,
    translation,
)
from adapter.metrics import ACCEPTED, record_request
from adapter.party import Party
from adapter.receipts import Outcome, Receipt, ReceiptSigner
from adapter.receipts.model import parse_own
from adapter.soap.addressing import (
    WSA,
    Addressing,
    check_addressing,
    read_addressing,
    reply_headers,
)
from adapter.soap.envelope import (
    Envelope,
    body_hash,
    body_of,
    build_fault,
    check_content_type,
    check_understood,
    envelope_tree,
    fault_tree,
    header_of,
    parse_envelope,
    raw_hash,
    serialise,
)
from adapter.soap.replay import DEFAULT_WINDOW, answer_to_repeat, claim_for
from adapter.soap.schema import SchemaSet
from adapter.soap.wssecurity import (
    WSSE,
    VerifiedRequest,
    WsSecurity,
    decrypt_body,
    secure_response,
    signed_body_hash,
    verify_request,
)
from adapter.soap.wus import Call, FaultContext, Operation, PayloadXml, WusService
from adapter.soap.xml import XmlLimits
from adapter.store.db import Database
from adapter.transport.http import HttpResult, read_body
from adapter.transport.identity import CLIENT_CERT_KEY, identify, peer_certificate

log = logging.getLogger("adapter.request")

# Client certificates whose Party a worker remembers: the partners of a deployment, with
# room for their certificates' renewals.
KNOWN_CERTIFICATES = 256

# WS-Security is processed for organisations with 2W-be-S or 2W-be-SE only; from others a
# mustUnderstand wsse:Security is refused, and one without it is ignored, unverified.
UNDERSTOOD_HEADERS = frozenset({WSA})
SIGNED_PROFILE_HEADERS = frozenset({WSA, WSSE})


_UNAVAILABLE = "de database is niet bereikbaar"

# Profile-neutral errors in WUS terms (SPEC Part C): the fault class, and a fixed message
# where the neutral reason would tell the caller about our internals.
WUS_FAULTS: Mapping[type[Rejected], tuple[type[SoapFault], str | None]] = {
    MalformedXml: (InvalidEnvelope, None),
    ForbiddenMarkup: (InvalidEnvelope, None),
    # Past a parser limit: refused before the envelope's structure, let alone its payload
    # against the XSD, could be judged, so 0001 (the envelope is not as expected) and not
    # 0004 (not valid against the XSD): the Digikoppeling best-practice codes, BPWUS ch03.
    XmlTooComplex: (InvalidEnvelope, None),
    XmlNotUtf8: (NotUtf8, None),
    SchemaViolation: (NotConformXsd, None),
    UnknownParty: (NotAuthorised, None),
    NotGranted: (ServiceNotGranted, None),
    BodyUnreadable: (InvalidEnvelope, None),
    BodyTooLarge: (RequestTooLarge, None),
    StoreUnavailable: (ServiceUnavailable, _UNAVAILABLE),
    StoreConflict: (ServiceUnavailable, _UNAVAILABLE),
}


def as_soap_fault(error: Rejected) -> SoapFault:
    """The SOAP fault that tells a WUS caller what a neutral refusal means."""
    entry = translation(WUS_FAULTS, error)
    if entry is None:
        return ServiceUnavailable("interne fout")
    fault_class, fixed = entry
    return fault_class(fixed or error.reason)


@dataclass(frozen=True)
class WusSettings:
    """The part of the configuration the endpoint needs."""

    organisations: Organisations
    receiver_oin: str  # MijnOverheid's OIN: Ontvanger in receipts, WS-A To
    max_request_bytes: int
    xml_limits: XmlLimits  # what parsing one request may cost
    replay_window: timedelta = DEFAULT_WINDOW  # a WS-A MessageID is processed once in it
    security: WsSecurity | None = None  # our key and the signers' trust, for 2W-be-S/SE


@dataclass
class _Progress:
    """What is known about the request so far, for the receipt of whatever happens next."""

    request_id: str
    received_at: datetime
    party: Party | None = None
    body_hash: str = ""
    operation: Operation | None = None
    addressing: Addressing | None = None
    message_ref: str | None = None
    verified: VerifiedRequest | None = None  # what the request's WS-Security signature proves


class WusEndpoint:
    def __init__(
        self,
        service: WusService,
        settings: WusSettings,
        database: Database,
        signer: ReceiptSigner,
        schemas: SchemaSet,
    ) -> None:
        self.service = service
        self.settings = settings
        self.database = database
        self.signer = signer
        self.schemas = schemas
        # Reading a certificate (its OIN, fingerprint and subject) costs more than the rest
        # of identifying; a certificate's Party stays the same for the worker's life, which
        # ends with every change of the organisations (a reload starts new workers). A
        # refusal is not remembered, so it is decided again each time.
        self._party_of = lru_cache(maxsize=KNOWN_CERTIFICATES)(self._read_party)

    def _read_party(self, certificate: bytes) -> Party:
        return identify({CLIENT_CERT_KEY: certificate}, self.settings.organisations)

    def _identify(self, environ: dict[str, Any]) -> Party:
        certificate = peer_certificate(environ)
        if certificate is None:
            return identify(environ, self.settings.organisations)  # refused: no certificate
        return self._party_of(certificate)

    def handle(self, environ: dict[str, Any]) -> HttpResult:
        progress = _Progress(request_id=uuid.uuid4().hex, received_at=datetime.now(UTC))
        started = time.perf_counter()
        refusal: SoapFault | None = None
        try:
            return self._handle(environ, progress)
        except (SoapFault, Rejected) as error:
            if isinstance(error, (StoreUnavailable, StoreConflict)):
                log.error("request %s: database error: %s", progress.request_id, error.reason)
            refusal = error if isinstance(error, SoapFault) else as_soap_fault(error)
            return self._answer_fault(refusal, progress)
        except Exception:
            # A bug must not leave the caller without an answer, nor with a stack trace.
            log.exception(
                "request %s: unexpected error",
                progress.request_id,
                extra={"request_id": progress.request_id},
            )
            refusal = ServiceUnavailable("interne fout")
            return self._answer_fault(refusal, progress)
        finally:
            oin = progress.party.oin if progress.party else "unknown"
            outcome = "refused" if refusal else "accepted"
            code = refusal.receipt_code if refusal else None
            record_request(self.service.name, oin, outcome, time.perf_counter() - started, code)
            if refusal is None:
                ACCEPTED.labels(service=self.service.name).inc()

    def _handle(self, environ: dict[str, Any], progress: _Progress) -> HttpResult:
        progress.party = party = self._identify(environ)
        data = read_body(environ, self.settings.max_request_bytes)
        progress.body_hash = raw_hash(data)
        check_content_type(environ.get("CONTENT_TYPE"))
        envelope = parse_envelope(data, self.settings.xml_limits)
        progress.body_hash = body_hash(envelope.body)
        if party.organisation.requires_signature:
            check_understood(envelope, SIGNED_PROFILE_HEADERS)
            envelope = self._secured(envelope, party, progress)
        else:
            check_understood(envelope, UNDERSTOOD_HEADERS)
        operation = self._operation(envelope, environ.get("HTTP_SOAPACTION"))
        progress.operation = operation
        if operation.message_ref is not None:
            progress.message_ref = operation.message_ref(envelope.payload)
        progress.addressing = check_addressing(
            read_addressing(envelope.headers),
            required=party.organisation.requires_addressing,
            expected_action=operation.action,
            receiver_oin=self.settings.receiver_oin,
        )
        if progress.addressing is not None:
            progress.message_ref = progress.addressing.message_id
        party.require(self.service.name)
        self.schemas.validate(envelope.payload, operation.schema)
        answer = self._store(operation, party, envelope, progress)
        log.info(
            "request %s: %s %s from %s accepted",
            progress.request_id,
            self.service.name,
            operation.name,
            party.oin,
        )
        return HttpResult("200 OK", answer)

    def _security(self) -> WsSecurity:
        if self.settings.security is None:
            raise RuntimeError("a 2W-be-S organisation, but no WS-Security configured")
        return self.settings.security

    def _secured(self, envelope: Envelope, party: Party, progress: _Progress) -> Envelope:
        """2W-be-S/SE: decrypt the Body (SE), then verify the signature (WB006, WB013)."""
        security = self._security()
        if party.organisation.requires_encryption:
            envelope = decrypt_body(envelope, security.credentials, self.settings.xml_limits)
            progress.body_hash = body_hash(envelope.body)
        progress.verified = verify_request(
            envelope, security.trust, party.oin, progress.received_at
        )
        return envelope

    @staticmethod
    def _in_header(party: Party, signed: bytes) -> bytes | None:
        """The signed receipt when the organisation gets it in the SOAP header."""
        return signed if party.organisation.receipt == "header" else None

    def _answer(
        self,
        root: etree._Element,
        progress: _Progress,
        receipt: bytes | None = None,
        body_child: bytes | None = None,
    ) -> bytes:
        """The answer's bytes, with `receipt` (a signed receipt's bytes) as the last header
        block and `body_child` (a `PayloadXml`'s) as the child of an empty Body; signed (and
        for SE encrypted) for a 2W-be-S/SE organisation."""
        party = progress.party
        if party is not None and party.organisation.requires_signature:
            # Signed as part of the message: they need the tree.
            if receipt is not None:
                header_of(root).append(parse_own(receipt))
            if body_child is not None:
                body_of(root).append(etree.fromstring(body_child))  # our own XML
            # A refusal of the request's own security confirms no signature and, with no
            # verified certificate to encrypt for, goes back unencrypted.
            verified = progress.verified
            secure_response(
                root,
                self._security(),
                datetime.now(UTC),
                confirmation=verified.signature_value if verified is not None else None,
                encrypt_for=(
                    verified.certificate
                    if verified is not None and party.organisation.requires_encryption
                    else None
                ),
            )
            return serialise(root)
        return serialise(root, receipt, body_child)

    def _store(
        self, operation: Operation, party: Party, envelope: Envelope, progress: _Progress
    ) -> bytes:
        """Run the handler and store its result with the receipt, in one transaction, and
        answer; a repeat of an accepted WS-A MessageID gets that request's stored answer."""
        claim = None
        if progress.addressing is not None and progress.addressing.message_id is not None:
            claim = claim_for(
                party.oin,
                progress.addressing.message_id,
                self.service.name,
                # A signed request signed again carries a new wsu:Id on its Body: the same
                # request all the same.
                signed_body_hash(envelope.body)
                if party.organisation.requires_signature
                else progress.body_hash,
                progress.received_at,
            )

        def attempt() -> bytes:
            with self.database.repositories() as repositories:
                if claim is not None:
                    earlier = repositories.wus_messages.earlier(
                        claim.sender_oin,
                        claim.message_id,
                        claim.seen_since(self.settings.replay_window),
                    )
                    if earlier is not None:  # a repeat: nothing new is processed or stored
                        log.info(
                            "request %s: wsa:MessageID %s seen before (receipt %s)",
                            progress.request_id,
                            claim.message_id,
                            earlier.receipt_id,
                        )
                        return answer_to_repeat(claim, earlier, self.settings.replay_window)
                call = Call(party, envelope.payload, repositories, progress.received_at)
                payload = operation.handler(call)
                receipt = self._receipt(progress, Outcome.accept())
                signed = self.signer.signed_xml(receipt)
                headers: list[etree._Element] = []
                if progress.addressing is not None:
                    headers = reply_headers(progress.addressing, operation.response_action)
                # What a repeat gets back is these bytes: signed already, the same signature.
                if isinstance(payload, PayloadXml):
                    root, written = envelope_tree(None, headers), payload.xml
                else:
                    root, written = envelope_tree(payload, headers), None
                answer = self._answer(root, progress, self._in_header(party, signed), written)
                if claim is not None:  # the MessageID is claimed last, with the answer
                    repositories.wus_messages.record(
                        claim.sender_oin,
                        claim.message_id,
                        claim.service,
                        claim.body_hash,
                        claim.received_at,
                        claim.seen_since(self.settings.replay_window),
                        receipt.receipt_id,
                        answer,
                    )
                repositories.receipts.save(receipt, signed)
            return answer

        try:
            return attempt()
        except StoreConflict:
            # A concurrent request stored the same thing first (one status sent twice at
            # once, or the same WS-A MessageID): run again, now seeing its row, and answer
            # as for a repeat.
            return attempt()

    def _operation(self, envelope: Envelope, soap_action_header: str | None) -> Operation:
        operation = self.service.operation_for(envelope.payload)
        if operation is None:
            raise InvalidEnvelope(f"onbekende operatie {etree.QName(envelope.payload).localname}")
        soap_action = (soap_action_header or "").strip()
        if soap_action.startswith('"') and soap_action.endswith('"') and len(soap_action) >= 2:
            soap_action = soap_action[1:-1]
        # WS002: on the wire either "" or exactly the operation's action.
        if self.service.any_soap_action:
            return operation
        if soap_action_header is None or soap_action not in ("", operation.action):
            allowed = f'toegestaan voor {operation.name}: "" of "{operation.action}"'
            if soap_action_header is None:
                raise InvalidSoapAction(f"de HTTP-header SOAPAction ontbreekt; {allowed}")
            raise InvalidSoapAction(f"SOAPAction {soap_action_header} is onbekend; {allowed}")
        return operation

    def _receipt(self, progress: _Progress, outcome: Outcome) -> Receipt:
        if progress.party is None:
            raise RuntimeError("a receipt needs an authenticated party")
        return Receipt(
            request_id=progress.request_id,
            receiver_oin=self.settings.receiver_oin,
            sender_oin=progress.party.oin,
            received_at=progress.received_at,
            message_ref=progress.message_ref,
            service=self.service.name,
            operation=progress.operation.name if progress.operation else "onbekend",
            body_hash=progress.body_hash or raw_hash(b""),
            outcome=outcome,
        )

    def _answer_fault(self, fault: SoapFault, progress: _Progress) -> HttpResult:
        """The fault with its receipt, or, should building that fail, a bare 0051 fault.

        A refusal's text comes from the request; whatever it holds, the caller still gets a
        SOAP fault it can parse (nothing of the request in it), never a broken connection.
        """
        try:
            return self._fault(fault, progress)
        except Exception:
            log.exception("request %s: the fault could not be built", progress.request_id)
            bare = ServiceUnavailable()
            return HttpResult("500 Internal Server Error", build_fault(bare), bare.http_headers)

    def _fault(self, fault: SoapFault, progress: _Progress) -> HttpResult:
        oin = progress.party.oin if progress.party else "-"
        log.info("request %s: refused for %s: %s", progress.request_id, oin, fault.reason)
        headers: list[etree._Element] = []
        operation = progress.operation
        if progress.addressing is not None and operation is not None:
            action = operation.fault_actions.get(fault.detail_element or "")
            if action is not None:
                headers = reply_headers(progress.addressing, action)
        receipt_header = None
        if progress.party is not None and fault.receipted:
            receipt = self._receipt(progress, Outcome.reject(fault.receipt_code, fault.reason))
            signed = self.signer.signed_xml(receipt)
            try:
                with self.database.repositories() as repositories:
                    repositories.receipts.save(receipt, signed)
            except StoreUnavailable as unavailable:
                # The signed receipt still goes out: it proves the refusal even unstored.
                log.error(
                    "request %s: receipt not stored: %s", progress.request_id, unavailable.reason
                )
            receipt_header = self._in_header(progress.party, signed)
        context = FaultContext(
            request_id=progress.request_id,
            message_ref=progress.message_ref,
            sender_oin=progress.party.oin if progress.party else None,
            receiver_oin=self.settings.receiver_oin,
        )
        detail = self.service.fault_detail(fault, context)
        body = self._answer(fault_tree(fault, headers, detail), progress, receipt_header)
        return HttpResult("500 Internal Server Error", body, fault.http_headers)

"""Server-mode cases for WUS under WS-Security: Digikoppeling 2W-be-S and 2W-be-SE.

The kit signs as the client's organisation (`Target.wss`) with the adapter's own WS-Security
code, adapter.soap.wssecurity: `secure_response` builds a signed (for 2W-be-SE also
encrypted) envelope the way WB004-WB012 want it, whichever side sends it, and the answers
are opened with `decrypt_body` and checked with `verify_request`, as the adapter checks a
request: every part signed with a Reference of its own, a fresh Timestamp, a certificate that
chains to the trust anchors and carries the target's OIN. On top of that an answer to a
verified request must confirm its SignatureValue (WB014) in a signed SignatureConfirmation.

The negative cases send what a careless or hostile client would (no wsse:Security, a Body
the signature does not cover, a stale Timestamp) and expect the WS-Security fault, signed.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from lxml import etree

from adapter.errors import AdapterError
from adapter.kit.conformance import wus_cases as wus
from adapter.kit.conformance.probe import Answer, Probe, WssSide, check_receipt
from adapter.soap.envelope import SOAP_ENV, body_hash, envelope_of
from adapter.soap.wssecurity import (
    DSIG,
    WSSE,
    WSSE11,
    WSU,
    XENC,
    decrypt_body,
    secure_response,
    verify_request,
)

WSS_RULE = "SPEC-digikoppeling §1.5 (WB002-WB014)"
WSS_FIX = (
    "verify the request's signature (Body, Timestamp and every WS-Addressing header each under "
    "its own Reference, exclusive c14n, RSA-SHA256) and answer signed with a Timestamp and a "
    "wsse11:SignatureConfirmation carrying the request's SignatureValue; under 2W-be-SE "
    "decrypt the request's Body and encrypt the answer's for the certificate that signed it"
)
WSS_FAULT_FIX = (
    "refuse the request with HTTP 500 and a SOAP Fault whose faultcode is this WS-Security "
    "1.1 code (a QName in the wsse namespace), signed like every answer (WB013)"
)
_WSU_ID = f"{{{WSU}}}Id"
_S = f"{{{SOAP_ENV}}}"
_STALE = timedelta(hours=1)  # far past any clock skew and maximum age a receiver allows


@dataclass(frozen=True)
class Secured:
    """A request as the organisation sends it, and what its answer is checked against."""

    wire: bytes
    signature_value: str
    body_hash: str  # the BodyHash its receipt carries: of the Body as signed (decrypted)


def _wss(probe: Probe) -> WssSide:
    wss = probe.target.wss
    if wss is None:  # server_mode runs these cases only for a signing organisation
        raise RuntimeError("a WS-Security case without the organisation's WS-Security key")
    return wss


def secure(
    probe: Probe,
    envelope: bytes,
    *,
    now: datetime | None = None,
    edit: Callable[[etree._Element, etree._Element], None] | None = None,
) -> Secured:
    """`envelope` signed by the organisation (and its Body encrypted under 2W-be-SE for the
    target's certificate); `edit(root, signed_body)` may spoil the result afterwards, given a
    copy of the Body as it was signed."""
    wss = _wss(probe)
    root = etree.fromstring(envelope)  # the kit's own bytes
    body = root.find(f"{_S}Body")
    if body is None:
        raise ValueError("an envelope without Body")
    plain_text, plain_children = body.text, [copy.deepcopy(child) for child in body]
    secure_response(
        root,
        wss.security,
        now or datetime.now(UTC),
        confirmation=None,
        encrypt_for=wss.target_certificate if wss.encrypts else None,
    )
    signed_body = copy.deepcopy(body)  # with the wsu:Id the signature references
    for child in list(signed_body):
        signed_body.remove(child)
    signed_body.text = plain_text
    signed_body.extend(plain_children)
    signature_value = "".join((root.findtext(f".//{{{DSIG}}}SignatureValue") or "").split())
    hashed = body_hash(signed_body) if wss.encrypts else body_hash(body)
    if edit is not None:
        edit(root, signed_body)
    return Secured(etree.tostring(root, encoding="utf-8"), signature_value, hashed)


def open_answer(probe: Probe, answer: Answer, confirm: str | None) -> Answer:
    """The answer with its Body decrypted (if encrypted), once its signature holds: by the
    adapter's verifier, for the target's OIN, with `confirm` (the request's SignatureValue)
    in a signed SignatureConfirmation unless None. Findings for what does not hold."""
    wss = _wss(probe)
    if answer.envelope is None:
        probe.expect(False, "the answer has no SOAP envelope to verify")
        return answer
    document = answer.envelope
    try:
        envelope = envelope_of(document)
        encrypted = envelope.payload.tag == f"{{{XENC}}}EncryptedData"
        if wss.encrypts and confirm is not None:
            probe.expect(
                encrypted,
                "the answer's Body is not encrypted; under 2W-be-SE it must be, for the "
                "certificate that signed the request (WB012)",
            )
        if encrypted:
            envelope = decrypt_body(envelope, wss.security.credentials)
        verified = verify_request(
            envelope, wss.security.trust, probe.target.receiver_oin, datetime.now(UTC)
        )
    except AdapterError as error:
        probe.expect(False, f"the answer's WS-Security does not hold: {error}")
        return answer
    if wss.target_certificate is not None:
        probe.expect(
            verified.certificate == wss.target_certificate,
            "the answer is signed with another certificate than the target's WS-Security "
            f"certificate ({verified.certificate.subject.rfc4514_string()})",
        )
    if confirm is not None:
        _check_confirmation(probe, envelope.root, confirm)
    return replace(answer, envelope=envelope.root)


def _check_confirmation(probe: Probe, document: etree._Element, value: str) -> None:
    security = document.find(f"{_S}Header/{{{WSSE}}}Security")
    confirmations = (
        security.findall(f"{{{WSSE11}}}SignatureConfirmation") if security is not None else []
    )
    if not probe.expect(
        len(confirmations) == 1,
        f"the answer holds {len(confirmations)} wsse11:SignatureConfirmation, expected one "
        "carrying the request's SignatureValue (WB014)",
    ):
        return
    confirmation = confirmations[0]
    probe.expect(
        confirmation.get("Value") == value,
        f"wsse11:SignatureConfirmation Value is {confirmation.get('Value')!r}, not the "
        "request's SignatureValue (WB014)",
    )
    referenced = {
        (reference.get("URI") or "").removeprefix("#")
        for reference in document.iter(f"{{{DSIG}}}Reference")
    }
    probe.expect(
        confirmation.get(_WSU_ID) in referenced,
        "the answer's signature does not cover its wsse11:SignatureConfirmation",
    )


def _validate_request(probe: Probe) -> tuple[bytes, str]:
    data = probe.target.data
    message_id = f"urn:uuid:{uuid.uuid4()}"
    to = f"{probe.target.url(wus.ABONNEMENTEN)}?OIN={probe.target.receiver_oin}"
    body = wus.validate_body(probe.target.oin, [data.subscribed_bsn], data.bericht_type)
    return wus.soap_envelope(body, wus.addressing(to, message_id)), message_id


def validate_signed(probe: Probe) -> None:
    """A correctly signed (2W-be-SE: and encrypted) ValidateAbonnementen: accepted, answered
    signed, confirming the request's signature, with the usual content and receipt."""
    wss = _wss(probe)
    plain, message_id = _validate_request(probe)
    sent = secure(probe, plain)
    answer = probe.post(
        wus.ABONNEMENTEN, sent.wire, wus.XML, f'"{wus.VALIDATE_ACTION}"', f"{wss.profile} request"
    )
    answer = open_answer(probe, answer, sent.signature_value)
    if not wus.check_ok(probe, answer, f"a {wss.profile} ValidateAbonnementen"):
        return
    if answer.envelope is None:  # check_ok holds only for a parsed answer
        return
    bsn = probe.target.data.subscribed_bsn
    probe.expect(
        wus.abonnementen(answer) == [(bsn, "true")],
        f"expected Abonnement {bsn}=true, got {wus.abonnementen(answer)}",
    )
    wus.check_reply_addressing(probe, answer.envelope, message_id)
    if wss.receipt == "header":
        check_receipt(
            probe,
            answer.envelope,
            operation="ValidateAbonnementen",
            body_hash_expected=sent.body_hash,
            message_ref=message_id,
        )


def wss_fault_case(build: Callable[[Probe], bytes], code: str) -> Callable[[Probe], None]:
    """A case that sends what `build` returns and expects the WS-Security fault `code`
    (wsse:`code`), signed by the target and, with the receipt in the header, receipted."""

    def run(probe: Probe) -> None:
        wss = _wss(probe)
        sent = build(probe)
        answer = probe.post(
            wus.ABONNEMENTEN, sent, wus.XML, f'"{wus.VALIDATE_ACTION}"', f"expect wsse:{code}"
        )
        # A request whose own security failed confirms no signature (WB014 needs a verified one).
        answer = open_answer(probe, answer, None)
        document = answer.envelope
        fault = document.find(f"{_S}Body/{_S}Fault") if document is not None else None
        if fault is None:
            probe.expect(False, f"expected a SOAP Fault wsse:{code}, got none")
            return
        probe.expect(answer.status == 500, f"a fault must come with HTTP 500, got {answer.status}")
        faultcode = fault.find("faultcode")
        text = (faultcode.text or "").strip() if faultcode is not None else ""
        prefix, _, local = text.rpartition(":")
        namespace = faultcode.nsmap.get(prefix or None) if faultcode is not None else None
        probe.expect(
            (namespace, local) == (WSSE, code),
            f"faultcode is {text!r} (namespace {namespace}), expected wsse:{code} in {WSSE}",
        )
        if wss.receipt == "header":
            # Refused before its operation is looked at: the receipt names none.
            check_receipt(
                probe,
                document,
                operation=None,
                body_hash_expected=None,
                refused_code=f"wsse:{code}",
            )

    return run


def unsigned(probe: Probe) -> bytes:
    """The request as a 2W-be organisation sends it: no wsse:Security at all."""
    return _validate_request(probe)[0]


def body_not_signed(probe: Probe) -> bytes:
    """A signature that validates but covers a copy of the Body kept in wsse:Security, not
    the Body itself (a wrapping attack): the real Body is unsigned."""

    def wrap(root: etree._Element, signed_body: etree._Element) -> None:
        body = root.find(f"{_S}Body")
        security = root.find(f"{_S}Header/{{{WSSE}}}Security")
        if body is None or security is None:
            raise ValueError("secure() leaves a Body and a wsse:Security header")
        del body.attrib[_WSU_ID]
        security.append(signed_body)

    return secure(probe, _validate_request(probe)[0], edit=wrap).wire


def stale_timestamp(probe: Probe) -> bytes:
    """Signed correctly, an hour ago: wsu:Created and Expires long past."""
    return secure(probe, _validate_request(probe)[0], now=datetime.now(UTC) - _STALE).wire

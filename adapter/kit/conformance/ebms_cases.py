"""Server-mode cases over ebMS 2.0: Ping, BerichtVerwerk (osb-rm, osb-be, and osb-rm-s with the
leverancier's signed CPA), AbonnementAanvraag, duplicates, content rules and the ebMS errors of
SPEC Part C.

Each business message must be acknowledged (synchronously when the CPA says
mshSignalsOnly, else as a message to the kit's receiver), the Acknowledgment must carry a
signed receipt about this message, and the asynchronous result must arrive on the kit's
receiver, answering this message, with the codes the target's test accounts call for.
"""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from lxml import etree

from adapter.ebms.message import (
    EB,
    MSH_SERVICE,
    Route,
    business_message,
    error_of,
    ping,
    read_header,
)
from adapter.ebms.mime import build_package
from adapter.ebms.outbound import envelope_of, verify_answer
from adapter.errors import SecurityFailure
from adapter.kit.conformance.model import Exchange
from adapter.kit.conformance.probe import Answer, Probe, check_receipt, request_body_hash
from adapter.kit.receiver import ReceivedMessage
from adapter.kit.sender import (
    REQUEST_ACTION,
    RESULT_ACTION,
    SERVICE,
    SERVICE_TYPE,
    BerichtSpec,
    build_batch,
    deliver,
)
from adapter.soap.envelope import raw_hash

EBMS_PATH = "/berichtenbox/ebms"
AANVRAAG_NS = "http://schemas.overheid.nl/GEB/AbonnementServiceProcessor/2014/02"
AANVRAAG_ACTION, AANVRAAG_RESULT = "GLOBE-R-A-Request", "GLOBE-R-A-Result"
NIL_GUID = "00000000-0000-0000-0000-000000000000"
PAYLOAD_CID = "payload@conformance-kit"
_E = f"{{{EB}}}"

ACK_RULE = "SPEC-digikoppeling §2.4 (osb-rm: Acknowledgment to the toPartyMSH), §2.5 SyncReply"
ACK_FIX = (
    "acknowledge every reliable message with an eb:Acknowledgment whose RefToMessageId is the "
    "message's MessageId: on the connection for mshSignalsOnly, else as a message of its own"
)
RESULT_RULE = "SPEC Part B (ebMS answers: the business response always as a new ebMS message)"
RESULT_FIX = (
    "send the result as an ebMS message with RefToMessageId = the request's MessageId to the "
    "endpoint in the sender's CPA, and retry it per the CPA until acknowledged"
)


def _route(probe: Probe, action: str, from_oin: str | None = None) -> Route:
    target = probe.target
    msh = action in ("Ping", "StatusRequest")
    return Route(
        cpa_id=target.ebms_cpa_id(),
        conversation_id=str(uuid.uuid4()),
        from_oin=from_oin or target.oin,
        from_role=None if msh else "SR",
        to_oin=target.receiver_oin,
        to_role=None if msh else "SP",
        service=MSH_SERVICE if msh else SERVICE,
        service_type=None if msh else SERVICE_TYPE,
        action=action,
    )


def _post(
    probe: Probe,
    soap: bytes,
    parts: Sequence[tuple[str, str, bytes]],
    title: str,
    soap_action: str = '"ebXML"',
) -> tuple[Answer, bytes]:
    content_type, body = build_package(soap, list(parts))
    return probe.post(EBMS_PATH, body, content_type, soap_action, title), body


def _signal(
    probe: Probe, answer: Answer, message_id: str, actions: set[str]
) -> etree._Element | None:
    """The MSH answer to `message_id`: on the connection, or else from the kit's receiver."""
    if answer.envelope is not None:
        try:
            header = read_header(answer.envelope)
        except Exception as exc:
            probe.expect(False, f"the synchronous answer has no readable MessageHeader: {exc}")
            return None
        probe.expect(
            header.ref_to_message_id == message_id,
            f"the answer's RefToMessageId is {header.ref_to_message_id!r}, expected {message_id}",
            ACK_RULE,
            ACK_FIX,
        )
        return answer.envelope
    probe.expect(answer.status == 200, f"HTTP {answer.status} to an ebMS message (expected 200)")
    inbox = probe.target.inbox
    if inbox is None:
        probe.expect(False, "the answer is asynchronous and the kit has no receiver (--receive-on)")
        return None
    message = inbox.wait_for(actions | {"MessageError"}, message_id, probe.target.result_timeout)
    if message is None:
        probe.expect(
            False,
            f"no {'/'.join(sorted(actions))} for {message_id} arrived on the kit's receiver "
            f"within {probe.target.result_timeout:g} s",
            ACK_RULE,
            ACK_FIX,
        )
        return None
    probe.record(f"{message.header.action} (asynchronous)", message)
    return message.envelope


def _acknowledged(probe: Probe, signal: etree._Element | None, message_id: str) -> bool:
    if signal is None:
        return False
    error = error_of(signal)
    if not probe.expect(error is None, f"refused with MessageError {error}", ACK_RULE, ACK_FIX):
        return False
    ack = signal.find(f".//{_E}Acknowledgment")
    return probe.expect(
        ack is not None and (ack.findtext(f"{_E}RefToMessageId") or "").strip() == message_id,
        f"no eb:Acknowledgment of {message_id} in the answer",
        ACK_RULE,
        ACK_FIX,
    )


def _result(probe: Probe, message_id: str, action: str) -> ReceivedMessage | None:
    inbox = probe.target.inbox
    if inbox is None:
        probe.expect(False, "the kit has no receiver for the result (--receive-on)")
        return None
    message = inbox.wait_for({action}, message_id, probe.target.result_timeout)
    if message is None:
        probe.expect(
            False,
            f"no {action} answering {message_id} arrived within {probe.target.result_timeout:g} s",
            RESULT_RULE,
            RESULT_FIX,
        )
        return None
    probe.record(action, message)
    return message


def _strip_reliability(soap: bytes) -> bytes:
    """osb-be: the same message without AckRequested and DuplicateElimination."""
    envelope = etree.fromstring(soap)
    for element in envelope.iter(f"{_E}AckRequested", f"{_E}DuplicateElimination"):
        element.getparent().remove(element)
    data: bytes = etree.tostring(envelope, xml_declaration=True, encoding="utf-8")
    return data


def _result_codes(message: ReceivedMessage) -> tuple[dict[str, str], dict[str, str]]:
    response = etree.fromstring(message.payload() or b"<leeg/>")
    info = response.find("BatchInformatie")
    counters = {c.tag: (c.text or "") for c in (info if info is not None else [])}
    codes = {
        b.findtext("BerichtID") or "": b.findtext("VerwerkingsCode") or ""
        for b in response.iter("{*}Bericht")
    }
    return counters, codes


def batch_case(
    specs: Callable[[Probe], list[BerichtSpec]],
    expected: Callable[[list[BerichtSpec]], dict[str, str]],
    *,
    reliable: bool = True,
    leverancier: Callable[[Probe], str] | None = None,
    aanmaak: timedelta = timedelta(0),
    edit: Callable[[bytes], bytes] | None = None,
) -> Callable[[Probe], None]:
    """Send one batch; expect an Acknowledgment with a receipt, then the result with `expected`
    (BerichtID -> VerwerkingsCode)."""

    def run(probe: Probe) -> None:
        target = probe.target
        berichten = specs(probe)
        payload = build_batch(
            leverancier(probe) if leverancier else target.oin,
            berichten,
            datetime.now(UTC) - aanmaak,
        )
        if edit is not None:
            payload = edit(payload)
        message_id, soap = business_message(
            _route(probe, REQUEST_ACTION), datetime.now(UTC), None, [PAYLOAD_CID]
        )
        if not reliable:
            soap = _strip_reliability(soap)
        answer, _ = _post(
            probe, soap, [(PAYLOAD_CID, "text/xml; charset=UTF-8", payload)], REQUEST_ACTION
        )
        signal = _signal(probe, answer, message_id, {"Acknowledgment"})
        want = expected(berichten)
        if reliable:
            if not _acknowledged(probe, signal, message_id):
                return
        elif signal is not None and error_of(signal) is not None:
            probe.expect(False, f"a best-effort batch was refused: {error_of(signal)}")
            return
        if signal is not None and reliable:
            _ack_receipt(probe, signal, soap, message_id, {PAYLOAD_CID: raw_hash(payload)}, want)
        _batch_result(probe, message_id, len(berichten), want)

    return run


def _ack_receipt(
    probe: Probe,
    signal: etree._Element,
    soap: bytes,
    message_id: str,
    part_hashes: dict[str, str],
    want: dict[str, str],
) -> None:
    """The receipt in the Acknowledgment: about this message, recording `want`."""
    verified = check_receipt(
        probe,
        signal,
        operation=REQUEST_ACTION,
        body_hash_expected=request_body_hash(soap),
        message_ref=message_id,
        part_hashes=part_hashes,
    )
    if verified is not None:
        in_receipt = {b.bericht_id: b.verwerkingscode for b in verified.receipt.outcome.berichten}
        probe.expect(in_receipt == want, f"the receipt records {in_receipt}, expected {want}")


def _batch_result(
    probe: Probe, message_id: str, count: int, want: dict[str, str]
) -> ReceivedMessage | None:
    """The result of a batch of `count` Berichten: with the codes `want` and a receipt."""
    result = _result(probe, message_id, RESULT_ACTION)
    if result is None:
        return None
    counters, codes = _result_codes(result)
    probe.expect(codes == want, f"the result has codes {codes}, expected {want}")
    probe.expect(
        counters.get("TotaalAantalOntvangenBerichten") == str(max(count, 1)) or NIL_GUID in want,
        f"TotaalAantalOntvangenBerichten is {counters.get('TotaalAantalOntvangenBerichten')}",
    )
    check_receipt(
        probe,
        result.envelope,
        operation=REQUEST_ACTION,
        body_hash_expected=None,
        message_ref=message_id,
    )
    return result


SIGNED_RULE = (
    "SPEC-digikoppeling §2.7 (osb-rm-s: XMLDSig over envelope and parts; ebMS 2.0 §6.3.2: a "
    "signed Acknowledgment carries the ds:Reference elements of the acknowledged message)"
)
SIGNED_FIX = (
    "verify the signature by the certificate the CPA names, sign the Acknowledgment (and the "
    "result) with the certificate your side of the CPA names, and copy the ds:Reference "
    "elements of the received signature into eb:Acknowledgment"
)


def signed_batch(probe: Probe) -> None:
    """osb-rm-s: a batch signed by the kit's sender with the organisation's key; the
    Acknowledgment must be signed by the target and carry the references of that signature,
    and the result must be signed (the kit's receiver verifies it before taking it)."""
    target = probe.target
    channel = target.signed_ebms
    if channel is None:  # run_case runs this case only with one
        raise ValueError("no signed CPA (--cpa)")
    berichten = two_letters(probe)
    payload = build_batch(target.oin, berichten)
    delivery = deliver(
        target.client,
        target.url(EBMS_PATH),
        target.receiver_oin,
        channel.cpa.cpa_id,
        payload,
        [],
        channel.party.security,
        channel.key,
    )
    request, response = delivery.request, delivery.response
    if request is None or response is None:  # deliver always keeps both
        raise ValueError("the kit's sender kept no wire messages")
    probe.exchanges.append(
        Exchange(f"{REQUEST_ACTION} (signed)", request.body, response.body, delivery.http_status)
    )
    answer = Answer(delivery.http_status, response.content_type, response.body, delivery.answer)
    signal = _signal(probe, answer, delivery.message_id, {"Acknowledgment"})
    if signal is None or not _acknowledged(probe, signal, delivery.message_id):
        return
    sent = envelope_of(request.content_type, request.body)
    try:
        verify_answer(signal, sent, channel.party, channel.trust, datetime.now(UTC))
    except SecurityFailure as failure:
        probe.expect(
            False,
            f"the Acknowledgment's signature does not hold: {failure.description}",
            SIGNED_RULE,
            SIGNED_FIX,
        )
        return  # as for an unacknowledged batch: the case failed, no need to wait for more
    soap = etree.tostring(sent)
    want = subscribed_and_not(berichten)
    # Part hashes are over the parts as sent: -s signs and does not encrypt.
    part_hashes = {f"batch@{target.oin}": raw_hash(payload)}
    _ack_receipt(probe, signal, soap, delivery.message_id, part_hashes, want)
    result = _batch_result(probe, delivery.message_id, len(berichten), want)
    if result is not None:
        probe.expect(
            result.signature is not None,
            "the result is not signed, on a channel whose CPA has the target sign",
            SIGNED_RULE,
            SIGNED_FIX,
        )


def two_letters(probe: Probe) -> list[BerichtSpec]:
    data = probe.target.data
    return [
        BerichtSpec(data.subscribed_bsn, data.bericht_type, "Conformiteitstest"),
        BerichtSpec(data.not_subscribed_bsn, data.bericht_type, "Conformiteitstest"),
    ]


def one_letter(probe: Probe) -> list[BerichtSpec]:
    data = probe.target.data
    return [BerichtSpec(data.subscribed_bsn, data.bericht_type, "Conformiteitstest")]


def subscribed_and_not(berichten: list[BerichtSpec]) -> dict[str, str]:
    return {
        berichten[0].bericht_id: "Verwerkt",
        berichten[1].bericht_id: "NietActiefOfGeabonneerd",
    }


def every(code: str) -> Callable[[list[BerichtSpec]], dict[str, str]]:
    return lambda berichten: {b.bericht_id: code for b in berichten}


def whole_batch(code: str) -> Callable[[list[BerichtSpec]], dict[str, str]]:
    return lambda _berichten: {NIL_GUID: code}


def not_a_pdf(probe: Probe) -> list[BerichtSpec]:
    data = probe.target.data
    return [
        BerichtSpec(
            data.subscribed_bsn, data.bericht_type, "Geen PDF", bijlagen=[("brief.pdf", b"hallo")]
        )
    ]


def other_leverancier(_probe: Probe) -> str:
    return "00000001823288444000"


def soort_bedrijf(payload: bytes) -> bytes:
    return payload.replace(b">Burger<", b">Bedrijf<")


# --- Ping, duplicates, AbonnementAanvraag ---------------------------------------------------


def ping_pong(probe: Probe) -> None:
    message_id, soap = ping(_route(probe, "Ping"), datetime.now(UTC))
    answer, _ = _post(probe, soap, [], "Ping")
    signal = _signal(probe, answer, message_id, {"Pong"})
    if signal is None:
        return
    header = read_header(signal)
    probe.expect(header.action == "Pong", f"Ping answered with {header.action}, expected Pong")
    probe.expect(
        header.service == MSH_SERVICE, f"the Pong's Service is {header.service}, not {MSH_SERVICE}"
    )
    probe.expect(
        header.from_party.value == probe.target.receiver_oin
        and header.to_party.value == probe.target.oin,
        f"the Pong goes from {header.from_party.value} to {header.to_party.value}",
    )


def duplicate(probe: Probe) -> None:
    """The same MessageId twice: the second gets the first's Acknowledgment, not a new one."""
    payload = build_batch(probe.target.oin, one_letter(probe))
    message_id, soap = business_message(
        _route(probe, REQUEST_ACTION), datetime.now(UTC), None, [PAYLOAD_CID]
    )
    parts = [(PAYLOAD_CID, "text/xml; charset=UTF-8", payload)]
    receipts = []
    for attempt in ("first", "duplicate"):
        answer, _ = _post(probe, soap, parts, f"{REQUEST_ACTION} ({attempt})")
        signal = _signal(probe, answer, message_id, {"Acknowledgment"})
        if not _acknowledged(probe, signal, message_id):
            return
        verified = check_receipt(
            probe,
            signal,
            operation=REQUEST_ACTION,
            body_hash_expected=request_body_hash(soap),
            message_ref=message_id,
        )
        receipts.append(verified.receipt.receipt_id if verified else None)
    probe.expect(
        receipts[0] == receipts[1],
        f"the duplicate got receipt {receipts[1]}, the original {receipts[0]}: a duplicate must "
        "be answered with the stored answer, not processed again",
        "SPEC-digikoppeling §2.4 (duplicate elimination)",
        "keep each MessageId per sender and answer a repeat with the original Acknowledgment",
    )
    _result(probe, message_id, RESULT_ACTION)


def aanvraag_xml(leverancier: str, bsns: Sequence[str]) -> bytes:
    entries = "".join(f"<BSN>{bsn}</BSN>" for bsn in bsns)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><ab:AbonnementAanvraag xmlns:ab="{AANVRAAG_NS}">'
        f"<BerichtLeverancier><OIN>{leverancier}</OIN></BerichtLeverancier>"
        f"<VerzoekId>conformance-{uuid.uuid4().hex[:8]}</VerzoekId>"
        f"<BSNLijst>{entries}</BSNLijst></ab:AbonnementAanvraag>"
    ).encode()


def abonnement_aanvraag(probe: Probe) -> None:
    data = probe.target.data
    payload = aanvraag_xml(probe.target.oin, [data.subscribed_bsn, data.not_subscribed_bsn])
    message_id, soap = business_message(
        _route(probe, AANVRAAG_ACTION), datetime.now(UTC), None, [PAYLOAD_CID]
    )
    answer, _ = _post(
        probe, soap, [(PAYLOAD_CID, "text/xml; charset=UTF-8", payload)], AANVRAAG_ACTION
    )
    signal = _signal(probe, answer, message_id, {"Acknowledgment"})
    if not _acknowledged(probe, signal, message_id):
        return
    check_receipt(
        probe,
        signal,
        operation=AANVRAAG_ACTION,
        body_hash_expected=request_body_hash(soap),
        message_ref=message_id,
        part_hashes={PAYLOAD_CID: raw_hash(payload)},
    )
    result = _result(probe, message_id, AANVRAAG_RESULT)
    if result is None:
        return
    raw = result.payload() or b""
    try:
        document = etree.fromstring(gzip.decompress(raw))
    except (OSError, etree.XMLSyntaxError) as exc:
        probe.expect(False, f"the AbonnementAntwoord is not gzip-compressed XML: {exc}")
        return
    entries = {
        a.findtext("BSN"): a.findtext("isBerichtSturen") for a in document.iter("Abonnement")
    }
    want = {data.subscribed_bsn: "true", data.not_subscribed_bsn: "false"}
    probe.expect(entries == want, f"AbonnementAntwoord has {entries}, expected {want}")


# --- ebMS errors (SPEC Part C, ebMS error mapping) -----------------------------------------


def error_case(
    code: str,
    *,
    from_oin: Callable[[Probe], str] | None = None,
    soap_edit: Callable[[Probe, bytes], bytes] | None = None,
    manifest: Sequence[str] = (PAYLOAD_CID,),
    soap_action: str = '"ebXML"',
    hash_of: str = "body",
) -> Callable[[Probe], None]:
    """Send a broken BerichtVerwerk message; expect a MessageError `code` with a receipt."""

    def run(probe: Probe) -> None:
        payload = build_batch(probe.target.oin, one_letter(probe))
        route = _route(probe, REQUEST_ACTION, from_oin(probe) if from_oin else None)
        message_id, soap = business_message(route, datetime.now(UTC), None, list(manifest))
        if soap_edit is not None:
            soap = soap_edit(probe, soap)
        answer, body = _post(
            probe,
            soap,
            [(PAYLOAD_CID, "text/xml; charset=UTF-8", payload)],
            f"expect {code}",
            soap_action,
        )
        signal = answer.envelope
        if signal is None and probe.target.inbox is not None:
            signal = _signal(probe, answer, message_id, {"MessageError"})
        error = error_of(signal) if signal is not None else None
        if not probe.expect(
            error is not None and error[0] == code,
            f"expected a MessageError {code}, got "
            + (f"{error[0]}: {error[1]}" if error else "no MessageError"),
        ):
            return
        check_receipt(
            probe,
            signal,
            operation=None,
            body_hash_expected=raw_hash(body) if hash_of == "raw" else request_body_hash(soap),
            refused_code=code,
        )

    return run


def unknown_cpa(probe: Probe, soap: bytes) -> bytes:
    return soap.replace(probe.target.ebms_cpa_id().encode(), b"ONBEKEND-CPA-conformance")


def unknown_action(_probe: Probe, soap: bytes) -> bytes:
    return soap.replace(f">{REQUEST_ACTION}<".encode(), b">GLOBE-R-XX-Request<")


def other_party(_probe: Probe) -> str:
    return "00000001823288444000"

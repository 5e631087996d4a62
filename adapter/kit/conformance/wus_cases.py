"""Server-mode cases over WUS: ValidateAbonnementen, Lopende Zaken (WUS and StUF), faults.

Requests are written here from the contract, as a leverancier's stack would send them, not
with the server's serialisers, so the kit checks the contract rather than our own code.
Fault cases follow SPEC Part C (ValidateAbonnementen rejections) and the Digikoppeling
best-practice codes (SPEC-digikoppeling §1.6): HTTP 500, faultcode Client, a faultstring
that starts with the code, and a signed receipt recording the refusal.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime

from lxml import etree

from adapter.kit.conformance.probe import (
    Answer,
    Probe,
    check_receipt,
    request_body_hash,
)
from adapter.soap.envelope import SOAP_ENV

WSA = "http://www.w3.org/2005/08/addressing"
SVC = "http://schemas.rdw.nl/GEB/BerichtenboxValidatieService/2009/01"
TYP = "http://schemas.rdw.nl/GEB/BerichtenboxValidatieService/Types/2009/01"
SHR = "http://schemas.rdw.nl/GEB/Shared/Types/2009/01"
VALIDATE_ACTION = f"{SVC}/IBerichtenboxValidatieService/ValidateAbonnementen"
VALIDATE_RESPONSE_ACTION = f"{VALIDATE_ACTION}Response"
LZ = "urn:mijnoverheid-adapter:lopende-zaken:1"
ZKN = "http://www.egem.nl/StUF/sector/zkn/0310"
STUF = "http://www.egem.nl/StUF/StUF0301"
BG = "http://www.egem.nl/StUF/sector/bg/0310"
ABONNEMENTEN, LOPENDE_ZAKEN, STUF_PATH = "/abonnementen", "/lopende-zaken", "/lopende-zaken/stuf"
XML = "text/xml; charset=utf-8"
_S = f"{{{SOAP_ENV}}}"

WS_A = "SPEC-digikoppeling §1.3 WA001; SPEC Part B (2W-be: MessageID, RelatesTo, Action)"
WS_A_FIX = (
    "answer a request with WS-A headers with wsa:Action (the response action of the WSDL), "
    "a new wsa:MessageID and wsa:RelatesTo holding the request's MessageID"
)


def soap_envelope(body: str, headers: str = "") -> bytes:
    header = f"<s:Header>{headers}</s:Header>" if headers else ""
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<s:Envelope xmlns:s="{SOAP_ENV}">'
        f"{header}<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def validate_body(leverancier: str, keys: list[str], type_code: str) -> str:
    klanten = "".join(
        f"<k:Klant><k:Key>{key}</k:Key><k:Rol>Burger</k:Rol></k:Klant>" for key in keys
    )
    return (
        f'<ValidateAbonnementen xmlns="{SVC}" xmlns:t="{TYP}" xmlns:k="{SHR}">'
        "<validateAbonnementenAanvraag>"
        f"<t:berichtleverancierCode>{leverancier}</t:berichtleverancierCode>"
        f"<t:berichtTypeCode>{type_code}</t:berichtTypeCode>"
        f"<t:klanten>{klanten}</t:klanten>"
        "</validateAbonnementenAanvraag></ValidateAbonnementen>"
    )


def addressing(to: str | None, message_id: str | None, action: str = VALIDATE_ACTION) -> str:
    parts = [f'<wsa:To xmlns:wsa="{WSA}">{to}</wsa:To>' if to else ""]
    parts.append(f'<wsa:Action xmlns:wsa="{WSA}">{action}</wsa:Action>')
    if message_id:
        parts.append(f'<wsa:MessageID xmlns:wsa="{WSA}">{message_id}</wsa:MessageID>')
    return "".join(parts)


def abonnementen(answer: Answer) -> list[tuple[str | None, str | None]]:
    if answer.envelope is None:
        return []
    return [
        (a.findtext(f"{{{TYP}}}klant/{{{SHR}}}Key"), a.findtext(f"{{{TYP}}}isBerichtSturen"))
        for a in answer.envelope.iter(f"{{{TYP}}}Abonnement")
    ]


def check_ok(probe: Probe, answer: Answer, what: str) -> bool:
    fault = fault_of(answer)
    return probe.expect(
        answer.status == 200 and fault is None,
        f"{what} was refused: HTTP {answer.status}" + (f", {fault[0]} {fault[1]}" if fault else ""),
    )


def fault_of(answer: Answer) -> tuple[str, str] | None:
    """faultcode (without prefix) and faultstring of a SOAP 1.1 fault answer."""
    if answer.envelope is None:
        return None
    fault = answer.envelope.find(f"{_S}Body/{_S}Fault")
    if fault is None:
        return None
    return (fault.findtext("faultcode") or "").rpartition(":")[2], fault.findtext(
        "faultstring"
    ) or ""


# --- ValidateAbonnementen -------------------------------------------------------------------


def validate_no_wsa(probe: Probe) -> None:
    """The Logius form: no WS-A; one Abonnement per Klant in request order, right flags."""
    data = probe.target.data
    keys = [data.subscribed_bsn, data.not_subscribed_bsn]
    envelope = soap_envelope(validate_body(probe.target.oin, keys, data.bericht_type))
    answer = probe.post(ABONNEMENTEN, envelope, XML, f'"{VALIDATE_ACTION}"', "ValidateAbonnementen")
    if not check_ok(probe, answer, "ValidateAbonnementen"):
        return
    probe.expect(
        abonnementen(answer) == [(keys[0], "true"), (keys[1], "false")],
        f"expected Abonnementen {keys[0]}=true, {keys[1]}=false in that order, "
        f"got {abonnementen(answer)}",
    )
    check_receipt(
        probe,
        answer.envelope,
        operation="ValidateAbonnementen",
        body_hash_expected=request_body_hash(envelope),
    )


def validate_2w_be(probe: Probe) -> None:
    """Digikoppeling 2W-be: the answer carries Action, its own MessageID and RelatesTo."""
    data = probe.target.data
    message_id = f"urn:uuid:{uuid.uuid4()}"
    to = f"{probe.target.url(ABONNEMENTEN)}?OIN={probe.target.receiver_oin}"
    envelope = soap_envelope(
        validate_body(probe.target.oin, [data.subscribed_bsn], data.bericht_type),
        addressing(to, message_id),
    )
    answer = probe.post(ABONNEMENTEN, envelope, XML, f'"{VALIDATE_ACTION}"', "2W-be request")
    if not check_ok(probe, answer, "ValidateAbonnementen with WS-A") or answer.envelope is None:
        return
    check_reply_addressing(probe, answer.envelope, message_id)
    check_receipt(
        probe,
        answer.envelope,
        operation="ValidateAbonnementen",
        body_hash_expected=request_body_hash(envelope),
        message_ref=message_id,
    )


def check_reply_addressing(probe: Probe, envelope: etree._Element, message_id: str) -> None:
    """The answer's WS-A headers: the response Action, a new MessageID, RelatesTo the request."""
    header = envelope.find(f"{_S}Header")
    found = {
        etree.QName(h).localname: (h.text or "").strip()
        for h in (header if header is not None else [])
        if isinstance(h.tag, str) and h.tag.startswith(f"{{{WSA}}}")
    }
    probe.expect(
        found.get("RelatesTo") == message_id,
        f"wsa:RelatesTo is {found.get('RelatesTo')!r}, expected the request's {message_id}",
        WS_A,
        WS_A_FIX,
    )
    probe.expect(
        found.get("Action") == VALIDATE_RESPONSE_ACTION,
        f"wsa:Action is {found.get('Action')!r}, expected {VALIDATE_RESPONSE_ACTION}",
        WS_A,
        WS_A_FIX,
    )
    probe.expect(
        bool(found.get("MessageID")) and found.get("MessageID") != message_id,
        f"wsa:MessageID of the answer is {found.get('MessageID')!r}: it must be new and present",
        WS_A,
        WS_A_FIX,
    )


def fault_case(
    build: Callable[[Probe], tuple[bytes, str, str | None]],
    code: str,
    receipt_code: str | None = None,
    *,
    hash_of_request: bool = True,
    faultcode: str = "Client",
    operation: str | None = "ValidateAbonnementen",
) -> Callable[[Probe], None]:
    """A case that sends what `build` returns and expects this Digikoppeling fault.

    `operation` is what the receipt must name; None for a request refused before its
    operation could be known (not parsed, or a SOAPAction of none).
    """

    def run(probe: Probe) -> None:
        envelope, content_type, soap_action = build(probe)
        answer = probe.post(ABONNEMENTEN, envelope, content_type, soap_action, f"expect {code}")
        fault = fault_of(answer)
        if fault is None:
            probe.expect(False, f"expected a SOAP Fault {code}, got none")
            return
        probe.expect(answer.status == 500, f"a fault must come with HTTP 500, got {answer.status}")
        probe.expect(fault[0] == faultcode, f"faultcode is {fault[0]}, expected {faultcode}")
        probe.expect(
            fault[1].startswith(code),
            f"faultstring {fault[1]!r} does not start with {code!r}",
        )
        check_receipt(
            probe,
            answer.envelope,
            operation=operation,
            body_hash_expected=request_body_hash(envelope) if hash_of_request else None,
            refused_code=receipt_code or code,
        )

    return run


def _valid(probe: Probe, headers: str = "") -> bytes:
    data = probe.target.data
    return soap_envelope(
        validate_body(probe.target.oin, [data.subscribed_bsn], data.bericht_type), headers
    )


def not_well_formed(probe: Probe) -> tuple[bytes, str, str | None]:
    return _valid(probe).replace(b"</s:Body>", b"</s:Bod>"), XML, f'"{VALIDATE_ACTION}"'


def with_dtd(probe: Probe) -> tuple[bytes, str, str | None]:
    envelope = _valid(probe).replace(
        b"\n<s:Envelope", b'\n<!DOCTYPE s:Envelope [<!ENTITY x "x">]>\n<s:Envelope', 1
    )
    return envelope, XML, f'"{VALIDATE_ACTION}"'


def too_deep(probe: Probe) -> tuple[bytes, str, str | None]:
    nested = "<d>" * 200 + "</d>" * 200
    envelope = _valid(probe).replace(
        b"</t:berichtTypeCode>", f"</t:berichtTypeCode>{nested}".encode()
    )
    return envelope, XML, f'"{VALIDATE_ACTION}"'


def wrong_soap_action(probe: Probe) -> tuple[bytes, str, str | None]:
    return _valid(probe), XML, f'"{SVC}/IBerichtenboxValidatieService/Onbekend"'


def not_xsd_valid(probe: Probe) -> tuple[bytes, str, str | None]:
    envelope = _valid(probe).replace(b"<k:Rol>Burger</k:Rol>", b"<k:Rol>Bedrijf</k:Rol>")
    return envelope, XML, f'"{VALIDATE_ACTION}"'


def wsa_without_to(probe: Probe) -> tuple[bytes, str, str | None]:
    return _valid(probe, addressing(None, f"urn:uuid:{uuid.uuid4()}")), XML, f'"{VALIDATE_ACTION}"'


def wsa_without_message_id(probe: Probe) -> tuple[bytes, str, str | None]:
    to = probe.target.url(ABONNEMENTEN)
    return _valid(probe, addressing(to, None)), XML, f'"{VALIDATE_ACTION}"'


def not_utf8(probe: Probe) -> tuple[bytes, str, str | None]:
    envelope = _valid(probe).replace(b'encoding="utf-8"', b'encoding="ISO-8859-1"', 1)
    return envelope, "text/xml", f'"{VALIDATE_ACTION}"'


def other_leverancier(probe: Probe) -> tuple[bytes, str, str | None]:
    data = probe.target.data
    other = "00000001823288444000"  # a real municipality's OIN: never the kit's own
    return soap_envelope(validate_body(other, [data.subscribed_bsn], data.bericht_type)), XML, '""'


def elfproef(probe: Probe) -> tuple[bytes, str, str | None]:
    data = probe.target.data
    bad = data.subscribed_bsn[:8] + str((int(data.subscribed_bsn[8]) + 1) % 10)
    return soap_envelope(validate_body(probe.target.oin, [bad], data.bericht_type)), XML, '""'


def too_many_klanten(probe: Probe) -> tuple[bytes, str, str | None]:
    data = probe.target.data
    keys = [data.subscribed_bsn] * 251
    return soap_envelope(validate_body(probe.target.oin, keys, data.bericht_type)), XML, '""'


def too_large(probe: Probe) -> None:
    """A body over the WUS request limit (4 MiB by default) is refused with 0001 unread."""
    filler = b"<!--" + b"x" * (5 * 1024 * 1024) + b"-->"
    envelope = _valid(probe).replace(b"<s:Body>", b"<s:Body>" + filler)
    answer = probe.post(ABONNEMENTEN, envelope, XML, f'"{VALIDATE_ACTION}"', "5 MiB request")
    fault = fault_of(answer)
    probe.expect(
        fault is not None and fault[1].startswith("0001") and answer.status == 500,
        f"a 5 MiB request must be refused with HTTP 500 and 0001, got HTTP {answer.status} "
        f"{fault[1] if fault else 'without a fault'}",
    )
    check_receipt(
        probe,
        answer.envelope,
        operation=None,
        body_hash_expected=None,
        refused_code="0001",
    )
    # Trim what the report keeps of a request this size.
    probe.exchanges[-1] = type(probe.exchanges[-1])(
        "5 MiB request (first 2 KB)", envelope[:2048], answer.body, answer.status
    )


# --- Lopende Zaken --------------------------------------------------------------------------


def _zaak_body(bsn: str, identificatie: str) -> str:
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    return (
        f'<ZaakAanleveren xmlns="{LZ}"><zaak>'
        f"<identificatie>{identificatie}</identificatie>"
        "<omschrijving>Conformiteitstest</omschrijving>"
        f"<startdatum>{date.today().isoformat()}</startdatum>"
        f"<initiator><bsn>{bsn}</bsn></initiator>"
        f"<status><omschrijving>Aanvraag ontvangen</omschrijving>"
        f"<datumStatusGezet>{now}</datumStatusGezet></status>"
        "</zaak></ZaakAanleveren>"
    )


def zaak_aanleveren(probe: Probe) -> None:
    identificatie = f"conformance-{uuid.uuid4().hex[:12]}"
    envelope = soap_envelope(_zaak_body(probe.target.data.subscribed_bsn, identificatie))
    answer = probe.post(LOPENDE_ZAKEN, envelope, XML, f'"{LZ}/ZaakAanleveren"', "ZaakAanleveren")
    if not check_ok(probe, answer, "ZaakAanleveren") or answer.envelope is None:
        return
    resultaat = answer.envelope.findtext(f".//{{{LZ}}}resultaat")
    probe.expect(bool(resultaat), "the ZaakAanleveren answer carries no resultaat")
    check_receipt(
        probe,
        answer.envelope,
        operation="ZaakAanleveren",
        body_hash_expected=request_body_hash(envelope),
    )


def zaak_elfproef(probe: Probe) -> None:
    bsn = probe.target.data.subscribed_bsn
    envelope = soap_envelope(_zaak_body(bsn[:8] + str((int(bsn[8]) + 1) % 10), "conformance-lz002"))
    answer = probe.post(LOPENDE_ZAKEN, envelope, XML, f'"{LZ}/ZaakAanleveren"', "expect LZ002")
    fault = fault_of(answer)
    code = (
        answer.envelope.findtext(f".//{{{LZ}}}ApplicationFault/{{{LZ}}}Code")
        if (answer.envelope is not None)
        else None
    )
    probe.expect(
        answer.status == 500 and fault is not None and code == "LZ002",
        f"a BSN failing the elfproef must be ApplicationFault LZ002, got HTTP {answer.status}, "
        f"Code {code!r}",
    )
    check_receipt(
        probe,
        answer.envelope,
        operation="ZaakAanleveren",
        body_hash_expected=request_body_hash(envelope),
        refused_code="LZ002",
    )


def zak_lk01_body(zender: str, ontvanger: str, referentie: str, bsn: str) -> str:
    now = datetime.now(UTC)
    return f"""<zakLk01 xmlns="{ZKN}" xmlns:StUF="{STUF}" xmlns:BG="{BG}">
<stuurgegevens><StUF:berichtcode>Lk01</StUF:berichtcode>
<StUF:zender><StUF:organisatie>{zender}</StUF:organisatie>
<StUF:applicatie>Conformiteitskit</StUF:applicatie></StUF:zender>
<StUF:ontvanger><StUF:organisatie>{ontvanger}</StUF:organisatie>
<StUF:applicatie>MijnOverheid</StUF:applicatie>
<StUF:administratie>Lopende zaken</StUF:administratie></StUF:ontvanger>
<StUF:referentienummer>{referentie}</StUF:referentienummer>
<StUF:tijdstipBericht>{now:%Y%m%d%H%M%S}000</StUF:tijdstipBericht>
<StUF:entiteittype>ZAK</StUF:entiteittype></stuurgegevens>
<parameters><StUF:mutatiesoort>T</StUF:mutatiesoort>
<StUF:indicatorOvername>V</StUF:indicatorOvername></parameters>
<object StUF:entiteittype="ZAK" StUF:verwerkingssoort="T">
<identificatie>stuf-{referentie[:12]}</identificatie>
<omschrijving>Conformiteitstest StUF</omschrijving>
<startdatum>{now:%Y%m%d}</startdatum>
<heeftAlsInitiator StUF:entiteittype="ZAKBTRINI" StUF:verwerkingssoort="T"><gerelateerde>
<natuurlijkPersoon StUF:entiteittype="NPS" StUF:verwerkingssoort="I">
<BG:inp.bsn>{bsn}</BG:inp.bsn></natuurlijkPersoon>
</gerelateerde></heeftAlsInitiator>
<heeft StUF:entiteittype="ZAKSTT" StUF:verwerkingssoort="T">
<gerelateerde StUF:entiteittype="STT" StUF:verwerkingssoort="I">
<zkt.code>B1210</zkt.code><zkt.omschrijving>Conformiteit</zkt.omschrijving>
<omschrijving>Ontvangen</omschrijving>
</gerelateerde><datumStatusGezet>{now:%Y%m%d%H%M%S}</datumStatusGezet></heeft>
</object></zakLk01>"""


def stuf_bv01(probe: Probe) -> None:
    referentie = str(uuid.uuid4())
    body = zak_lk01_body(
        probe.target.oin, probe.target.receiver_oin, referentie, probe.target.data.subscribed_bsn
    )
    envelope = soap_envelope(body)
    answer = probe.post(STUF_PATH, envelope, XML, f'"{ZKN}/zakLk01"', "zakLk01")
    if not check_ok(probe, answer, "zakLk01") or answer.envelope is None:
        return
    bv01 = answer.envelope.find(f"{_S}Body/{{{STUF}}}Bv01Bericht")
    probe.expect(bv01 is not None, "the answer to zakLk01 is no Bv01Bericht")
    cross = answer.envelope.findtext(f".//{{{STUF}}}crossRefnummer")
    probe.expect(
        cross == referentie,
        f"Bv01 crossRefnummer is {cross!r}, expected the referentienummer {referentie}",
    )
    check_receipt(
        probe,
        answer.envelope,
        operation="zakLk01",
        body_hash_expected=request_body_hash(envelope),
        message_ref=referentie,
    )


def stuf_fo01(probe: Probe) -> None:
    referentie = str(uuid.uuid4())
    wrong = "00000001823288444000"
    envelope = soap_envelope(
        zak_lk01_body(probe.target.oin, wrong, referentie, probe.target.data.subscribed_bsn)
    )
    answer = probe.post(STUF_PATH, envelope, XML, f'"{ZKN}/zakLk01"', "expect Fo01")
    code = (
        answer.envelope.findtext(f".//{{{STUF}}}Fo01Bericht/{{{STUF}}}body/{{{STUF}}}code")
        if answer.envelope is not None
        else None
    )
    probe.expect(
        answer.status == 500 and code == "LZ007",
        f"a wrong ontvanger must be a Fo01 with code LZ007, got HTTP {answer.status}, "
        f"code {code!r}",
    )
    check_receipt(
        probe,
        answer.envelope,
        operation="zakLk01",
        body_hash_expected=request_body_hash(envelope),
        refused_code="LZ007",
    )

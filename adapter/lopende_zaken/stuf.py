"""StUF-ZKN 0310 `zakLk01` kennisgevingen onto the Lopende Zaken rules; Bv01 or Fo01 back.

Many zaaksystemen already send these. We read the fields SPEC A 5.2 lists and accept and
ignore the rest of a valid StUF message (names, contact persons, nil elements with noValue).
A W-kennisgeving carries the old and the new state as two objects; the last one counts.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from lxml import etree

from adapter.errors import SoapFault, ZaakRefused
from adapter.lopende_zaken import zaken
from adapter.lopende_zaken.wus import AMSTERDAM
from adapter.lopende_zaken.zaken import StatusMelding, ZaakMelding
from adapter.soap.wus import Call, FaultContext, Operation, WusService
from adapter.soap.xml import text_of

ZKN = "http://www.egem.nl/StUF/sector/zkn/0310"
STUF = "http://www.egem.nl/StUF/StUF0301"
BG = "http://www.egem.nl/StUF/sector/bg/0310"
XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
NS = {"z": ZKN, "StUF": STUF, "BG": BG}
ACTION = f"{ZKN}/zakLk01"
APPLICATIE, ADMINISTRATIE = "MijnOverheid", "Lopende zaken"
SUPPORTED_MUTATIONS = frozenset({"T", "W"})  # toevoegen, wijzigen
SUPPORTED_PROCESSING = frozenset({"T", "W", "I"})  # I: unchanged object, sent for context
_INITIATOR = "z:heeftAlsInitiator/z:gerelateerde/z:natuurlijkPersoon"


def _value(parent: etree._Element | None, path: str) -> str | None:
    """Text of an element; None when absent, empty or nil (StUF's noValue)."""
    if parent is None:
        return None
    # The whole text: a comment inside a value must not cut it short (the receipt hashes all).
    text = (text_of(parent.find(path, NS), nillable=True) or "").strip()
    return text or None


def _required(parent: etree._Element, path: str, name: str, max_length: int) -> str:
    # The lax StUF schema checks neither presence nor length of these; the rules need both.
    value = _value(parent, path)
    if value is None:
        raise ZaakRefused("LZ001", f"{name} ontbreekt")
    if len(value) > max_length:
        raise ZaakRefused("LZ001", f"{name} is langer dan {max_length} tekens")
    return value


def _optional_date(value: str | None, name: str) -> date | None:
    return _stuf_date(value, name) if value is not None else None


def _stuf_date(value: str, name: str) -> date:
    try:
        return datetime.strptime(value, "%Y%m%d").date()
    except ValueError:
        raise ZaakRefused("LZ008", f"{name} {value!r} is geen datum (jjjjmmdd)") from None


def _stuf_moment(value: str, name: str) -> datetime:
    """yyyyMMddHHmm[ss[SSS]] in Dutch local time, as senders write datumStatusGezet."""
    formats = {12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S", 17: "%Y%m%d%H%M%S%f"}
    try:
        text = value + "000" if len(value) == 17 else value  # %f wants microseconds
        moment = datetime.strptime(text, formats[len(value)])
    except (KeyError, ValueError):
        raise ZaakRefused(
            "LZ008", f"{name} {value!r} is geen tijdstip (jjjjmmdduumm[ss[mmm]])"
        ) from None
    return moment.replace(tzinfo=AMSTERDAM).astimezone(UTC)


def reference(payload: etree._Element) -> str | None:
    return _value(payload, "z:stuurgegevens/StUF:referentienummer")


def _check_stuurgegevens(payload: etree._Element, call: Call, receiver_oin: str) -> None:
    zender = _value(payload, "z:stuurgegevens/StUF:zender/StUF:organisatie")
    ontvanger = _value(payload, "z:stuurgegevens/StUF:ontvanger/StUF:organisatie")
    if zender is None or not call.party.organisation.may_deliver_for(zender):
        raise ZaakRefused(
            "LZ007", f"zender/organisatie {zender or '(leeg)'} is niet het OIN van het certificaat"
        )
    expected = receiver_oin
    if ontvanger != expected:
        raise ZaakRefused(
            "LZ007", f"ontvanger/organisatie {ontvanger or '(leeg)'} is niet {expected}"
        )
    mutatie = _value(payload, "z:parameters/StUF:mutatiesoort")
    if mutatie is not None and mutatie not in SUPPORTED_MUTATIONS:
        raise ZaakRefused("LZ010", f"mutatiesoort {mutatie} wordt niet ondersteund")


def read_object(zaak: etree._Element) -> ZaakMelding:
    verwerking = zaak.get(f"{{{STUF}}}verwerkingssoort")
    if verwerking is not None and verwerking not in SUPPORTED_PROCESSING:
        raise ZaakRefused("LZ010", f"verwerkingssoort {verwerking} wordt niet ondersteund")
    identificatie = _required(zaak, "z:identificatie", "identificatie", 40)
    omschrijving = _required(zaak, "z:omschrijving", "omschrijving", 80)
    startdatum = _stuf_date(_required(zaak, "z:startdatum", "startdatum", 8), "startdatum")
    bsn = _required(zaak, f"{_INITIATOR}/BG:inp.bsn", "BG:inp.bsn van de initiator", 9)
    heeft = zaak.find("z:heeft", NS)
    status = None
    status_text = _value(heeft, "z:gerelateerde/z:omschrijving")
    if heeft is not None and status_text is not None:
        gezet = _value(heeft, "z:datumStatusGezet")
        if gezet is None:
            raise ZaakRefused("LZ001", "heeft/datumStatusGezet ontbreekt")
        status = StatusMelding(
            status_text,
            _stuf_moment(gezet, "datumStatusGezet"),
            _value(heeft, "z:gerelateerde/z:code"),
        )
    verwijzing = next(
        (
            (text_of(e) or "").strip()
            for e in zaak.iterfind("StUF:extraElementen/StUF:extraElement", NS)
            if e.get("naam") == "verwijzing" and e.get(XSI_NIL) not in ("true", "1")
        ),
        None,
    )
    return ZaakMelding(
        identificatie=identificatie,
        omschrijving=omschrijving,
        startdatum=startdatum,
        initiator_bsn=bsn,
        toelichting=_value(zaak, "z:toelichting"),
        zaaktype_code=_value(heeft, "z:gerelateerde/z:zkt.code"),
        zaaktype_omschrijving=_value(heeft, "z:gerelateerde/z:zkt.omschrijving"),
        einddatum_gepland=_optional_date(_value(zaak, "z:einddatumGepland"), "einddatumGepland"),
        einddatum=_optional_date(_value(zaak, "z:einddatum"), "einddatum"),
        resultaat=_value(zaak, "z:resultaat/z:omschrijving"),
        verwijzing=verwijzing or None,
        status=status,
    )


def _timestamp(moment: datetime) -> str:
    local = moment.astimezone(AMSTERDAM)
    return local.strftime("%Y%m%d%H%M%S") + f"{local.microsecond // 1000:03d}"


def _stuurgegevens(
    parent: etree._Element,
    berichtcode: str,
    receiver_oin: str,
    sender_oin: str | None,
    cross_ref: str | None,
) -> None:
    def add(node: etree._Element, name: str, text: str | None) -> etree._Element:
        child = etree.SubElement(node, f"{{{STUF}}}{name}")
        child.text = text
        return child

    stuurgegevens = add(parent, "stuurgegevens", None)
    add(stuurgegevens, "berichtcode", berichtcode)
    zender = add(stuurgegevens, "zender", None)
    add(zender, "organisatie", receiver_oin)
    add(zender, "applicatie", APPLICATIE)
    add(zender, "administratie", ADMINISTRATIE)
    ontvanger = add(stuurgegevens, "ontvanger", None)
    if sender_oin:
        add(ontvanger, "organisatie", sender_oin)
    add(stuurgegevens, "referentienummer", str(uuid.uuid4()))
    add(stuurgegevens, "tijdstipBericht", _timestamp(datetime.now(UTC)))
    if cross_ref:
        add(stuurgegevens, "crossRefnummer", cross_ref)


def zak_lk01(call: Call, receiver_oin: str) -> etree._Element:
    payload = call.payload
    _check_stuurgegevens(payload, call, receiver_oin)
    objects = payload.findall("z:object", NS)
    if not objects:
        raise ZaakRefused("LZ001", "object ontbreekt")
    zaken.zaak_aanleveren(
        call.repositories.zaken, call.party.oin, read_object(objects[-1]), call.received_at
    )
    answer = etree.Element(f"{{{STUF}}}Bv01Bericht", nsmap={"StUF": STUF})
    _stuurgegevens(answer, "Bv01", receiver_oin, call.party.oin, reference(payload))
    return answer


def fault_detail(fault: SoapFault, context: FaultContext) -> etree._Element:
    """Every refusal is a Fo01: StUF001 for what is not valid StUF, LZ codes for content."""
    answer = etree.Element(f"{{{STUF}}}Fo01Bericht", nsmap={"StUF": STUF})
    _stuurgegevens(answer, "Fo01", context.receiver_oin, context.sender_oin, context.message_ref)
    body = etree.SubElement(answer, f"{{{STUF}}}body")
    if isinstance(fault, ZaakRefused):
        code = fault.code
    elif fault.faultcode == "Server":
        code = "StUF058"  # StUF: processing failed on the receiver's side
    else:
        code = "StUF001"
    etree.SubElement(body, f"{{{STUF}}}code").text = code
    etree.SubElement(body, f"{{{STUF}}}plek").text = (
        "server" if fault.faultcode == "Server" else "client"
    )
    etree.SubElement(body, f"{{{STUF}}}omschrijving").text = fault.reason
    return answer


def service(receiver_oin: str) -> WusService:
    """The StUF endpoint; `receiver_oin` is MijnOverheid's OIN, the ontvanger it expects."""
    return WusService(
        name="LopendeZaken",
        path="/lopende-zaken/stuf",
        wsdl=None,
        operations=(
            Operation(
                name="zakLk01",
                request_element=f"{{{ZKN}}}zakLk01",
                action=ACTION,
                response_action=f"{ACTION}Response",
                schema="stuf-zkn-zakLk01.xsd",
                handler=lambda call: zak_lk01(call, receiver_oin),
                message_ref=reference,
            ),
        ),
        fault_detail=fault_detail,
        any_soap_action=True,
    )

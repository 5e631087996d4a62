"""Our Lopende Zaken WUS service (`wsdl/LopendeZaken.wsdl`): XML in, rules, XML out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from lxml import etree

from adapter.errors import SoapFault, ZaakRefused
from adapter.lopende_zaken import zaken
from adapter.lopende_zaken.zaken import Resultaat, StatusMelding, ZaakMelding, ZaakOverzicht
from adapter.soap.wus import Call, FaultContext, Operation, WusService
from adapter.soap.xml import text_of

NS = "urn:mijnoverheid-adapter:lopende-zaken:1"
_L = f"{{{NS}}}"
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
# Requests are validated against the published contract plus the names it deprecated and
# still accepts (xsd/lopende-zaken-with-deprecated.xsd); ?wsdl publishes lopende-zaken.xsd only.
REQUEST_SCHEMA = "lopende-zaken-with-deprecated.xsd"
# ZaakAfsluiten's resultaatOmschrijving was called resultaat, like the answer's child of another
# type, which wrapper-style code generators (wsimport, wsdl2java) refuse.
DEPRECATED_ZAAKRESULTAAT = "resultaat"


def _text(parent: etree._Element, path: str) -> str | None:
    # The whole text: a comment inside `HP-x<!---->y` must not cut the identificatie short.
    text = text_of(parent.find(path.replace("lz:", _L)))
    return text.strip() if text else None


def _required(parent: etree._Element, path: str) -> str:
    value = _text(parent, path)
    if not value:
        raise ZaakRefused("LZ001", f"{path.replace('lz:', '')} ontbreekt")
    return value


def _child(parent: etree._Element, name: str) -> etree._Element:
    found = parent.find(f"{_L}{name}")
    if found is None:
        raise ZaakRefused("LZ001", f"{name} ontbreekt")
    return found


def read_date(value: str, name: str) -> date:
    try:
        # xs:date may carry a zone ("2026-01-10Z", "2026-01-10+01:00"); a calendar day has none.
        return date.fromisoformat(value[:10])
    except ValueError:
        raise ZaakRefused("LZ008", f"{name} {value!r} is geen geldige datum") from None


def read_moment(value: str, name: str) -> datetime:
    """An xs:dateTime; without an offset it is Dutch local time (SPEC Part C)."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ZaakRefused("LZ008", f"{name} {value!r} is geen geldig tijdstip") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=AMSTERDAM)
    return moment.astimezone(UTC)


def _optional_date(parent: etree._Element, path: str) -> date | None:
    value = _text(parent, path)
    return read_date(value, path.replace("lz:", "")) if value else None


def read_status(element: etree._Element) -> StatusMelding:
    return StatusMelding(
        omschrijving=_required(element, "lz:omschrijving"),
        datum_status_gezet=read_moment(
            _required(element, "lz:datumStatusGezet"), "datumStatusGezet"
        ),
        code=_text(element, "lz:code"),
    )


def read_zaak(element: etree._Element) -> ZaakMelding:
    status = element.find(f"{_L}status")
    return ZaakMelding(
        identificatie=_required(element, "lz:identificatie"),
        omschrijving=_required(element, "lz:omschrijving"),
        startdatum=read_date(_required(element, "lz:startdatum"), "startdatum"),
        initiator_bsn=_required(element, "lz:initiator/lz:bsn"),
        toelichting=_text(element, "lz:toelichting"),
        zaaktype_code=_text(element, "lz:zaaktype/lz:code"),
        zaaktype_omschrijving=_text(element, "lz:zaaktype/lz:omschrijving"),
        einddatum_gepland=_optional_date(element, "lz:einddatumGepland"),
        einddatum=_optional_date(element, "lz:einddatum"),
        resultaat=_text(element, "lz:resultaat"),
        verwijzing=_text(element, "lz:verwijzing"),
        status=read_status(status) if status is not None else None,
    )


def _verwerking(operation: str, identificatie: str, resultaat: Resultaat) -> etree._Element:
    response = etree.Element(f"{_L}{operation}Response", nsmap={None: NS})
    etree.SubElement(response, f"{_L}identificatie").text = identificatie
    etree.SubElement(response, f"{_L}resultaat").text = resultaat.value
    return response


def _add(parent: etree._Element, name: str, value: object | None) -> None:
    if value is not None:
        etree.SubElement(parent, f"{_L}{name}").text = str(value)


class _StatusFields(Protocol):
    @property
    def code(self) -> str | None: ...
    @property
    def omschrijving(self) -> str: ...
    @property
    def datum_status_gezet(self) -> datetime: ...


class _ZaakFields(Protocol):
    """What a stored Zaak and an incoming ZaakMelding both have: the contract's zaak fields."""

    @property
    def identificatie(self) -> str: ...
    @property
    def omschrijving(self) -> str: ...
    @property
    def toelichting(self) -> str | None: ...
    @property
    def zaaktype_code(self) -> str | None: ...
    @property
    def zaaktype_omschrijving(self) -> str | None: ...
    @property
    def startdatum(self) -> date: ...
    @property
    def einddatum_gepland(self) -> date | None: ...
    @property
    def einddatum(self) -> date | None: ...
    @property
    def resultaat(self) -> str | None: ...
    @property
    def verwijzing(self) -> str | None: ...
    @property
    def initiator_bsn(self) -> str: ...


def _status_element(parent: etree._Element, status: _StatusFields) -> None:
    element = etree.SubElement(parent, f"{_L}status")
    _add(element, "code", status.code)
    _add(element, "omschrijving", status.omschrijving)
    _add(element, "datumStatusGezet", status.datum_status_gezet.isoformat())


def _zaak_element(
    parent: etree._Element, zaak: _ZaakFields, status: _StatusFields | None
) -> etree._Element:
    """A `zaak` in the contract's field order, from a stored zaak (ZakenOpvragen)."""
    element = etree.SubElement(parent, f"{_L}zaak")
    _add(element, "identificatie", zaak.identificatie)
    _add(element, "omschrijving", zaak.omschrijving)
    _add(element, "toelichting", zaak.toelichting)
    if zaak.zaaktype_code is not None:
        zaaktype = etree.SubElement(element, f"{_L}zaaktype")
        _add(zaaktype, "code", zaak.zaaktype_code)
        _add(zaaktype, "omschrijving", zaak.zaaktype_omschrijving)
    _add(element, "startdatum", zaak.startdatum.isoformat())
    _add(element, "einddatumGepland", zaak.einddatum_gepland and zaak.einddatum_gepland.isoformat())
    _add(element, "einddatum", zaak.einddatum and zaak.einddatum.isoformat())
    _add(element, "resultaat", zaak.resultaat)
    _add(element, "verwijzing", zaak.verwijzing)
    _add(etree.SubElement(element, f"{_L}initiator"), "bsn", zaak.initiator_bsn)
    if status is not None:
        _status_element(element, status)
    return element


def _overzicht(parent: etree._Element, item: ZaakOverzicht) -> None:
    element = _zaak_element(parent, item.zaak, item.status)
    historie = etree.SubElement(element, f"{_L}statushistorie")
    for status in item.historie:
        _status_element(historie, status)


def zaak_aanleveren(call: Call) -> etree._Element:
    melding = read_zaak(_child(call.payload, "zaak"))
    resultaat = zaken.zaak_aanleveren(
        call.repositories.zaken, call.party.oin, melding, call.received_at
    )
    return _verwerking("ZaakAanleveren", melding.identificatie, resultaat)


def status_aanleveren(call: Call) -> etree._Element:
    identificatie = _required(call.payload, "lz:identificatie")
    melding = read_status(_child(call.payload, "status"))
    resultaat = zaken.status_aanleveren(
        call.repositories.zaken, call.party.oin, identificatie, melding, call.received_at
    )
    return _verwerking("StatusAanleveren", identificatie, resultaat)


def _zaakresultaat(payload: etree._Element) -> str | None:
    """ZaakAfsluiten's resultaatOmschrijving, or its deprecated former name resultaat."""
    current = _text(payload, "lz:resultaatOmschrijving")
    deprecated = _text(payload, f"lz:{DEPRECATED_ZAAKRESULTAAT}")
    if current is not None and deprecated is not None:
        raise ZaakRefused(
            "LZ001",
            f"resultaatOmschrijving en het verouderde {DEPRECATED_ZAAKRESULTAAT} samen; "
            "stuur alleen resultaatOmschrijving",
        )
    return current if current is not None else deprecated


def zaak_afsluiten(call: Call) -> etree._Element:
    identificatie = _required(call.payload, "lz:identificatie")
    einddatum = read_date(_required(call.payload, "lz:einddatum"), "einddatum")
    resultaat = zaken.zaak_afsluiten(
        call.repositories.zaken,
        call.party.oin,
        identificatie,
        einddatum,
        _zaakresultaat(call.payload),
        call.received_at,
    )
    return _verwerking("ZaakAfsluiten", identificatie, resultaat)


def zaken_opvragen(call: Call) -> etree._Element:
    response = etree.Element(f"{_L}ZakenOpvragenResponse", nsmap={None: NS})
    for item in zaken.zaken_opvragen(
        call.repositories.zaken, call.party.oin, _required(call.payload, "lz:bsn")
    ):
        _overzicht(response, item)
    return response


def fault_detail(fault: SoapFault, _context: FaultContext) -> etree._Element | None:
    """ApplicationFault with a LZ code; a schema failure is LZ001, as the XSD documents."""
    if fault.detail_element is None:
        return None
    holder = etree.Element(f"{_L}{fault.detail_element}", nsmap={None: NS})
    if fault.detail_element == "ApplicationFault":
        code = fault.code if isinstance(fault, ZaakRefused) else "LZ001"
        etree.SubElement(holder, f"{_L}Code").text = code
    etree.SubElement(holder, f"{_L}Message").text = fault.message or fault.faultstring
    return holder


def _operation(name: str, handler: Callable[[Call], etree._Element]) -> Operation:
    return Operation(
        name=name,
        request_element=f"{_L}{name}",
        action=f"{NS}/{name}",
        response_action=f"{NS}/{name}Response",
        schema=REQUEST_SCHEMA,
        handler=handler,
        fault_actions={
            "ApplicationFault": f"{NS}/{name}ApplicationFault",
            "DependentServiceFault": f"{NS}/{name}DependentServiceFault",
        },
    )


SERVICE = WusService(
    name="LopendeZaken",
    path="/lopende-zaken",
    wsdl="LopendeZaken.wsdl",
    operations=(
        _operation("ZaakAanleveren", zaak_aanleveren),
        _operation("StatusAanleveren", status_aanleveren),
        _operation("ZaakAfsluiten", zaak_afsluiten),
        _operation("ZakenOpvragen", zaken_opvragen),
    ),
    fault_detail=fault_detail,
)

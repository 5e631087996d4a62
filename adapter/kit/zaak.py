"""The organisation's side of Lopende Zaken, for `dk-adapter send-zaak`: one ZaakAanleveren.

The request is written here from the contract (`xsd/lopende-zaken.xsd`, type `Zaak`), not
with the server's own serialiser, so the kit sends what a leverancier's stack would and a
change on the server side cannot silently change what the kit checks against.
"""

from __future__ import annotations

from lxml import etree

from adapter.kit.client import MtlsClient, SoapAnswer
from adapter.lopende_zaken.wus import NS
from adapter.lopende_zaken.zaken import StatusMelding, ZaakMelding

_L = f"{{{NS}}}"
ZAAK_AANLEVEREN_ACTION = f"{NS}/ZaakAanleveren"


def _add(parent: etree._Element, name: str, value: str | None) -> None:
    if value is not None:
        etree.SubElement(parent, f"{_L}{name}").text = value


def _status(parent: etree._Element, status: StatusMelding) -> None:
    element = etree.SubElement(parent, f"{_L}status")
    _add(element, "code", status.code)
    _add(element, "omschrijving", status.omschrijving)
    _add(element, "datumStatusGezet", status.datum_status_gezet.isoformat())


def build_zaak_aanleveren(melding: ZaakMelding) -> etree._Element:
    """The ZaakAanleveren request for a melding, its elements in the order the XSD requires."""
    request = etree.Element(f"{_L}ZaakAanleveren", nsmap={None: NS})
    zaak = etree.SubElement(request, f"{_L}zaak")
    _add(zaak, "identificatie", melding.identificatie)
    _add(zaak, "omschrijving", melding.omschrijving)
    _add(zaak, "toelichting", melding.toelichting)
    if melding.zaaktype_code is not None:
        zaaktype = etree.SubElement(zaak, f"{_L}zaaktype")
        _add(zaaktype, "code", melding.zaaktype_code)
        _add(zaaktype, "omschrijving", melding.zaaktype_omschrijving)
    _add(zaak, "startdatum", melding.startdatum.isoformat())
    if melding.einddatum_gepland is not None:
        _add(zaak, "einddatumGepland", melding.einddatum_gepland.isoformat())
    if melding.einddatum is not None:
        _add(zaak, "einddatum", melding.einddatum.isoformat())
    _add(zaak, "resultaat", melding.resultaat)
    _add(zaak, "verwijzing", melding.verwijzing)
    _add(etree.SubElement(zaak, f"{_L}initiator"), "bsn", melding.initiator_bsn)
    if melding.status is not None:
        _status(zaak, melding.status)
    return request


def send_zaak(client: MtlsClient, endpoint: str, melding: ZaakMelding) -> SoapAnswer:
    """POST one ZaakAanleveren and return the answer, its receipt checked by the client."""
    return client.call(endpoint, build_zaak_aanleveren(melding), ZAAK_AANLEVEREN_ACTION)


def verwerkingsresultaat(answer: SoapAnswer) -> str | None:
    """The `resultaat` of an accepted ZaakAanleveren (e.g. ZAAK_AANGEMAAKT), else None."""
    if answer.payload is None:
        return None
    result: str | None = answer.payload.findtext(f"{_L}resultaat")
    return result

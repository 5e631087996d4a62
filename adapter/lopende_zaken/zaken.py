"""The rules of Lopende Zaken, whichever way a zaak arrives (our WUS service or StUF zakLk01).

Only the organisation that created a zaak can see or change it; the status history is
append-only; an older status is kept but does not become current; the same status twice is
one status; a status that becomes current records a notification for the citizen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from urllib.parse import urlsplit

from stdnum.nl import bsn as bsn_number

from adapter.errors import ZaakRefused
from adapter.store.models import Zaak, ZaakStatus
from adapter.store.zaken import Zaken


class Resultaat(StrEnum):
    AANGEMAAKT = "Aangemaakt"
    BIJGEWERKT = "Bijgewerkt"
    STATUS_TOEGEVOEGD = "StatusToegevoegd"
    STATUS_AL_BEKEND = "StatusAlBekend"
    STATUS_OUDER = "StatusOuderDanHuidige"
    AFGESLOTEN = "Afgesloten"


@dataclass(frozen=True)
class StatusMelding:
    omschrijving: str
    datum_status_gezet: datetime  # aware
    code: str | None = None


@dataclass(frozen=True)
class ZaakMelding:
    identificatie: str
    omschrijving: str
    startdatum: date
    initiator_bsn: str
    toelichting: str | None = None
    zaaktype_code: str | None = None
    zaaktype_omschrijving: str | None = None
    einddatum_gepland: date | None = None
    einddatum: date | None = None
    resultaat: str | None = None
    verwijzing: str | None = None
    status: StatusMelding | None = None


@dataclass(frozen=True)
class ZaakOverzicht:
    zaak: Zaak
    status: ZaakStatus | None
    historie: list[ZaakStatus]


def check_bsn(bsn: str) -> None:
    if len(bsn) != 9 or not bsn_number.is_valid(bsn):
        raise ZaakRefused("LZ002", "het BSN van de initiator voldoet niet aan de elfproef")


def _check(melding: ZaakMelding) -> None:
    if not melding.identificatie.strip() or not melding.omschrijving.strip():
        raise ZaakRefused("LZ001", "identificatie en omschrijving zijn verplicht")
    check_bsn(melding.initiator_bsn)
    if melding.verwijzing is not None:
        parts = urlsplit(melding.verwijzing)
        if parts.scheme != "https" or not parts.netloc:
            raise ZaakRefused("LZ003", "verwijzing moet een https-URL zijn")
    for name, end in (
        ("einddatum", melding.einddatum),
        ("einddatumGepland", melding.einddatum_gepland),
    ):
        if end is not None and end < melding.startdatum:
            raise ZaakRefused("LZ006", f"{name} {end} ligt voor startdatum {melding.startdatum}")


def _apply_status(zaken: Zaken, zaak: Zaak, melding: StatusMelding, now: datetime) -> Resultaat:
    existing = zaken.find_status(zaak.id, melding.datum_status_gezet, melding.omschrijving)
    if existing is not None:
        return Resultaat.STATUS_AL_BEKEND
    if zaak.einddatum is not None:
        raise ZaakRefused("LZ005", f"zaak {zaak.identificatie} is afgesloten op {zaak.einddatum}")
    status = zaken.add_status(
        ZaakStatus(
            zaak_id=zaak.id,
            code=melding.code,
            omschrijving=melding.omschrijving,
            datum_status_gezet=melding.datum_status_gezet,
            received_at=now,
        ),
    )
    current = zaken.current_status(zaak)
    if current is not None and current.datum_status_gezet > status.datum_status_gezet:
        return Resultaat.STATUS_OUDER
    zaak.status_id = status.id
    zaak.updated_at = now
    zaken.record_notification(zaak.initiator_bsn, status, now)
    return Resultaat.STATUS_TOEGEVOEGD


def _existing(zaken: Zaken, oin: str, identificatie: str) -> Zaak:
    zaak = zaken.find_zaak(oin, identificatie, for_update=True)
    if zaak is None:
        # Also for another organisation's zaak: whether it exists is not theirs to learn.
        raise ZaakRefused("LZ004", f"zaak {identificatie} is onbekend")
    return zaak


def zaak_aanleveren(zaken: Zaken, oin: str, melding: ZaakMelding, now: datetime) -> Resultaat:
    """Create or update a zaak; its status (if any) is applied before an einddatum closes it."""
    _check(melding)
    zaak = zaken.find_zaak(oin, melding.identificatie, for_update=True)
    created = zaak is None
    if zaak is None:
        zaak = zaken.new_zaak(oin, melding.identificatie, now)
    elif zaak.initiator_bsn != melding.initiator_bsn:
        raise ZaakRefused("LZ009", f"zaak {melding.identificatie} hoort bij een andere initiator")
    elif zaak.einddatum is not None:
        # A closed zaak is frozen; re-delivering a status it already holds is not an error.
        status = melding.status
        if status and zaken.find_status(zaak.id, status.datum_status_gezet, status.omschrijving):
            return Resultaat.STATUS_AL_BEKEND
        raise ZaakRefused("LZ005", f"zaak {zaak.identificatie} is afgesloten op {zaak.einddatum}")
    einddatum = melding.einddatum
    zaak.omschrijving = melding.omschrijving
    zaak.toelichting = melding.toelichting
    zaak.zaaktype_code = melding.zaaktype_code
    zaak.zaaktype_omschrijving = melding.zaaktype_omschrijving
    zaak.startdatum = melding.startdatum
    zaak.einddatum_gepland = melding.einddatum_gepland
    zaak.resultaat = melding.resultaat if melding.resultaat is not None else zaak.resultaat
    zaak.verwijzing = melding.verwijzing
    zaak.initiator_bsn = melding.initiator_bsn
    zaak.updated_at = now
    zaken.flush()
    resultaat = Resultaat.AANGEMAAKT if created else Resultaat.BIJGEWERKT
    if melding.status is not None:
        status_resultaat = _apply_status(zaken, zaak, melding.status, now)
        resultaat = resultaat if created else status_resultaat
    if einddatum is not None:
        zaak.einddatum = einddatum
        resultaat = resultaat if created else Resultaat.AFGESLOTEN
    return resultaat


def status_aanleveren(
    zaken: Zaken, oin: str, identificatie: str, melding: StatusMelding, now: datetime
) -> Resultaat:
    return _apply_status(zaken, _existing(zaken, oin, identificatie), melding, now)


def zaak_afsluiten(
    zaken: Zaken,
    oin: str,
    identificatie: str,
    einddatum: date,
    resultaat: str | None,
    now: datetime,
) -> Resultaat:
    zaak = _existing(zaken, oin, identificatie)
    if zaak.einddatum is not None:
        if zaak.einddatum == einddatum and resultaat in (None, zaak.resultaat):
            return Resultaat.AFGESLOTEN  # the same closing sent again
        raise ZaakRefused("LZ005", f"zaak {identificatie} is al afgesloten op {zaak.einddatum}")
    if einddatum < zaak.startdatum:
        raise ZaakRefused("LZ006", f"einddatum {einddatum} ligt voor startdatum {zaak.startdatum}")
    zaak.einddatum = einddatum
    if resultaat is not None:
        zaak.resultaat = resultaat
    zaak.updated_at = now
    return Resultaat.AFGESLOTEN


def zaken_opvragen(zaken: Zaken, oin: str, bsn: str) -> list[ZaakOverzicht]:
    check_bsn(bsn)
    overzicht = []
    for zaak, historie in zaken.zaken_for(oin, bsn):
        current = next((s for s in historie if s.id == zaak.status_id), None)
        overzicht.append(ZaakOverzicht(zaak, current, historie))
    return overzicht

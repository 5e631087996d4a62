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

from adapter.bsn import is_bsn
from adapter.errors import ZaakRefused
from adapter.store.models import Zaak, ZaakStatus
from adapter.store.zaken import LockedZaak, ZaakFields, Zaken


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
    if not is_bsn(bsn):
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


def _add_status(zaken: Zaken, zaak: LockedZaak, melding: StatusMelding, now: datetime) -> Resultaat:
    """A status of an open zaak: kept in the history, and current unless a later one is."""
    status_id = zaken.add_status(
        zaak.id, melding.code, melding.omschrijving, melding.datum_status_gezet, now
    )
    if status_id is None:
        return Resultaat.STATUS_AL_BEKEND
    if not zaken.make_current(zaak.id, status_id, melding.datum_status_gezet, now):
        return Resultaat.STATUS_OUDER
    zaken.record_notification(zaak.initiator_bsn, status_id, now)
    return Resultaat.STATUS_TOEGEVOEGD


def _closed(zaken: Zaken, zaak: LockedZaak, melding: StatusMelding | None) -> Resultaat:
    """A closed zaak is frozen; re-delivering a status it already holds is not an error."""
    if melding is not None and zaken.has_status(
        zaak.id, melding.datum_status_gezet, melding.omschrijving
    ):
        return Resultaat.STATUS_AL_BEKEND
    raise ZaakRefused("LZ005", f"zaak {zaak.identificatie} is afgesloten op {zaak.einddatum}")


def _existing(zaken: Zaken, oin: str, identificatie: str) -> LockedZaak:
    zaak = zaken.lock_zaak(oin, identificatie)
    if zaak is None:
        # Also for another organisation's zaak: whether it exists is not theirs to learn.
        raise ZaakRefused("LZ004", f"zaak {identificatie} is onbekend")
    return zaak


def _fields(melding: ZaakMelding, stored_resultaat: str | None) -> ZaakFields:
    return ZaakFields(
        omschrijving=melding.omschrijving,
        toelichting=melding.toelichting,
        zaaktype_code=melding.zaaktype_code,
        zaaktype_omschrijving=melding.zaaktype_omschrijving,
        startdatum=melding.startdatum,
        einddatum_gepland=melding.einddatum_gepland,
        einddatum=melding.einddatum,
        resultaat=melding.resultaat if melding.resultaat is not None else stored_resultaat,
        verwijzing=melding.verwijzing,
        initiator_bsn=melding.initiator_bsn,
    )


def zaak_aanleveren(zaken: Zaken, oin: str, melding: ZaakMelding, now: datetime) -> Resultaat:
    """Create or update a zaak; its status (if any) is applied before an einddatum closes it
    (the zaak is still open for it), so a zaak may arrive closed with its last status."""
    _check(melding)
    zaak = zaken.lock_zaak(oin, melding.identificatie)
    if zaak is None:
        created = zaken.new_zaak(oin, melding.identificatie, _fields(melding, None), now)
        if melding.status is not None:
            _add_status(zaken, created, melding.status, now)
        return Resultaat.AANGEMAAKT
    if zaak.initiator_bsn != melding.initiator_bsn:
        raise ZaakRefused("LZ009", f"zaak {melding.identificatie} hoort bij een andere initiator")
    if zaak.einddatum is not None:
        return _closed(zaken, zaak, melding.status)
    zaken.update_zaak(zaak.id, _fields(melding, zaak.resultaat), now)
    resultaat = Resultaat.BIJGEWERKT
    if melding.status is not None:
        resultaat = _add_status(zaken, zaak, melding.status, now)
    return Resultaat.AFGESLOTEN if melding.einddatum is not None else resultaat


def status_aanleveren(
    zaken: Zaken, oin: str, identificatie: str, melding: StatusMelding, now: datetime
) -> Resultaat:
    zaak = _existing(zaken, oin, identificatie)
    if zaak.einddatum is not None:
        return _closed(zaken, zaak, melding)
    return _add_status(zaken, zaak, melding, now)


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
    zaken.close_zaak(zaak.id, einddatum, resultaat, now)
    return Resultaat.AFGESLOTEN


def zaken_opvragen(zaken: Zaken, oin: str, bsn: str) -> list[ZaakOverzicht]:
    check_bsn(bsn)
    overzicht = []
    for zaak, historie in zaken.zaken_for(oin, bsn):
        current = next((s for s in historie if s.id == zaak.status_id), None)
        overzicht.append(ZaakOverzicht(zaak, current, historie))
    return overzicht

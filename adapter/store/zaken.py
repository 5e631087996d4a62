"""Zaken, their append-only status history, and the notifications a new status records."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from adapter.store.models import Notification, Zaak, ZaakStatus

NOTIFICATION_ZAAK_STATUS = "zaak-status"


class Zaken:
    def __init__(self, session: Session) -> None:
        self.session = session

    def find_zaak(self, oin: str, identificatie: str, *, for_update: bool = False) -> Zaak | None:
        """The zaak with this identificatie of this organisation; other OINs' zaken never match."""
        query = select(Zaak).where(Zaak.oin == oin, Zaak.identificatie == identificatie)
        if for_update:
            query = query.with_for_update()
        return self.session.scalars(query).one_or_none()

    def new_zaak(self, oin: str, identificatie: str, now: datetime) -> Zaak:
        """A new zaak, stored with the rest of the transaction; the caller fills it in."""
        zaak = Zaak(oin=oin, identificatie=identificatie, created_at=now)
        self.session.add(zaak)
        return zaak

    def flush(self) -> None:
        """Write pending changes now, so a new zaak has its id."""
        self.session.flush()

    def find_status(self, zaak_id: int, moment: datetime, omschrijving: str) -> ZaakStatus | None:
        return self.session.scalars(
            select(ZaakStatus).where(
                ZaakStatus.zaak_id == zaak_id,
                ZaakStatus.datum_status_gezet == moment,
                ZaakStatus.omschrijving == omschrijving,
            )
        ).one_or_none()

    def current_status(self, zaak: Zaak) -> ZaakStatus | None:
        return self.session.get(ZaakStatus, zaak.status_id) if zaak.status_id is not None else None

    def add_status(self, status: ZaakStatus) -> ZaakStatus:
        self.session.add(status)
        self.session.flush()
        return status

    def record_notification(self, bsn: str, status: ZaakStatus, now: datetime) -> None:
        self.session.add(
            Notification(
                bsn=bsn, kind=NOTIFICATION_ZAAK_STATUS, zaak_status_id=status.id, created_at=now
            )
        )

    def zaken_for(self, oin: str, bsn: str) -> list[tuple[Zaak, list[ZaakStatus]]]:
        """This organisation's zaken of one citizen, each with its history in order of receipt."""
        zaken = list(
            self.session.scalars(
                select(Zaak)
                .where(Zaak.oin == oin, Zaak.initiator_bsn == bsn)
                .order_by(Zaak.startdatum, Zaak.id)
            )
        )
        histories: dict[int, list[ZaakStatus]] = {zaak.id: [] for zaak in zaken}
        if zaken:
            for status in self.session.scalars(
                select(ZaakStatus).where(ZaakStatus.zaak_id.in_(histories)).order_by(ZaakStatus.id)
            ):
                histories[status.zaak_id].append(status)
        return [(zaak, histories[zaak.id]) for zaak in zaken]

    def purge_closed(self, closed_before: date) -> int:
        """Delete zaken whose einddatum lies before `closed_before`, with history and
        notifications; returns how many zaken."""
        ids = list(self.session.scalars(select(Zaak.id).where(Zaak.einddatum < closed_before)))
        if ids:
            status_ids = select(ZaakStatus.id).where(ZaakStatus.zaak_id.in_(ids))
            self.session.execute(
                delete(Notification).where(Notification.zaak_status_id.in_(status_ids))
            )
            self.session.execute(delete(ZaakStatus).where(ZaakStatus.zaak_id.in_(ids)))
            self.session.execute(delete(Zaak).where(Zaak.id.in_(ids)))
        return len(ids)

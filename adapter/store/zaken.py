"""Zaken, their append-only status history, and the notifications a new status records."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from adapter.store.models import Notification, Zaak, ZaakStatus

NOTIFICATION_ZAAK_STATUS = "zaak-status"


def find_zaak(
    session: Session, oin: str, identificatie: str, *, for_update: bool = False
) -> Zaak | None:
    """The zaak with this identificatie of this organisation; other OINs' zaken never match."""
    query = select(Zaak).where(Zaak.oin == oin, Zaak.identificatie == identificatie)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def find_status(
    session: Session, zaak_id: int, moment: datetime, omschrijving: str
) -> ZaakStatus | None:
    return session.scalars(
        select(ZaakStatus).where(
            ZaakStatus.zaak_id == zaak_id,
            ZaakStatus.datum_status_gezet == moment,
            ZaakStatus.omschrijving == omschrijving,
        )
    ).one_or_none()


def current_status(session: Session, zaak: Zaak) -> ZaakStatus | None:
    return session.get(ZaakStatus, zaak.status_id) if zaak.status_id is not None else None


def add_status(session: Session, status: ZaakStatus) -> ZaakStatus:
    session.add(status)
    session.flush()
    return status


def record_notification(session: Session, bsn: str, status: ZaakStatus, now: datetime) -> None:
    session.add(
        Notification(
            bsn=bsn, kind=NOTIFICATION_ZAAK_STATUS, zaak_status_id=status.id, created_at=now
        )
    )


def zaken_for(session: Session, oin: str, bsn: str) -> list[tuple[Zaak, list[ZaakStatus]]]:
    """This organisation's zaken of one citizen, each with its history in order of receipt."""
    zaken = list(
        session.scalars(
            select(Zaak)
            .where(Zaak.oin == oin, Zaak.initiator_bsn == bsn)
            .order_by(Zaak.startdatum, Zaak.id)
        )
    )
    histories: dict[int, list[ZaakStatus]] = {zaak.id: [] for zaak in zaken}
    if zaken:
        for status in session.scalars(
            select(ZaakStatus).where(ZaakStatus.zaak_id.in_(histories)).order_by(ZaakStatus.id)
        ):
            histories[status.zaak_id].append(status)
    return [(zaak, histories[zaak.id]) for zaak in zaken]


def purge_closed(session: Session, closed_before: date) -> int:
    """Delete zaken whose einddatum lies before `closed_before`, with history and notifications."""
    ids = list(session.scalars(select(Zaak.id).where(Zaak.einddatum < closed_before)))
    if ids:
        status_ids = select(ZaakStatus.id).where(ZaakStatus.zaak_id.in_(ids))
        session.execute(delete(Notification).where(Notification.zaak_status_id.in_(status_ids)))
        session.execute(delete(ZaakStatus).where(ZaakStatus.zaak_id.in_(ids)))
        session.execute(delete(Zaak).where(Zaak.id.in_(ids)))
    return len(ids)

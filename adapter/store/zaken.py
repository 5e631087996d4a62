"""Zaken, their append-only status history, and the notifications a new status records.

A delivery (a zaak or a status, over WUS or StUF) is a few Core statements: lock the zaak,
insert the status unless it is known, make it current unless a later one is, record the
notification. The ORM's unit of work, its flushes and the reads it needed in between cost
more than that SQL. Overviews and the purge read through the ORM.

Concurrent deliveries to one zaak are serialised by its row lock (PostgreSQL: FOR UPDATE;
SQLite: the write lock of BEGIN IMMEDIATE). Whether a status becomes current is decided by
the UPDATE itself, which reads the current status after that lock is held: a status made
current by a transaction that committed while this one waited is seen.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from adapter.store.models import Notification, Zaak, ZaakStatus, table_of

NOTIFICATION_ZAAK_STATUS = "zaak-status"

_ZAKEN = table_of(Zaak)
_STATUSSEN = table_of(ZaakStatus)
_NOTIFICATIONS = table_of(Notification)


@dataclass(frozen=True)
class LockedZaak:
    """What the rules need of a stored zaak; its row stays locked until the commit."""

    id: int
    identificatie: str
    initiator_bsn: str
    startdatum: date
    einddatum: date | None
    resultaat: str | None


@dataclass(frozen=True)
class ZaakFields:
    """The columns a delivered zaak sets, on a new zaak and on an update alike."""

    omschrijving: str
    toelichting: str | None
    zaaktype_code: str | None
    zaaktype_omschrijving: str | None
    startdatum: date
    einddatum_gepland: date | None
    einddatum: date | None
    resultaat: str | None
    verwijzing: str | None
    initiator_bsn: str


_LOCK_ZAAK = (
    select(
        _ZAKEN.c.id,
        _ZAKEN.c.identificatie,
        _ZAKEN.c.initiator_bsn,
        _ZAKEN.c.startdatum,
        _ZAKEN.c.einddatum,
        _ZAKEN.c.resultaat,
    )
    .where(
        _ZAKEN.c.oin == bindparam("zaak_oin"),
        _ZAKEN.c.identificatie == bindparam("zaak_identificatie"),
    )
    .with_for_update()
)
_NEW_ZAAK = insert(_ZAKEN).returning(_ZAKEN.c.id)
_UPDATE_ZAAK = update(_ZAKEN).where(_ZAKEN.c.id == bindparam("zaak_id"))
_HAS_STATUS = select(_STATUSSEN.c.id).where(
    _STATUSSEN.c.zaak_id == bindparam("status_zaak_id"),
    _STATUSSEN.c.datum_status_gezet == bindparam("status_moment"),
    _STATUSSEN.c.omschrijving == bindparam("status_omschrijving"),
)
# The same status twice is one status: its unique key, not a read before the insert, decides.
_SAME_STATUS = ["zaak_id", "datum_status_gezet", "omschrijving"]
_ADD_STATUS = {
    dialect: statement(_STATUSSEN)
    .on_conflict_do_nothing(index_elements=_SAME_STATUS)
    .returning(_STATUSSEN.c.id)
    for dialect, statement in (("postgresql", postgresql_insert), ("sqlite", sqlite_insert))
}
# Typed, so that SQLite compares the stored text with the moment written the same way.
_STATUS_MOMENT = bindparam("status_moment", type_=_STATUSSEN.c.datum_status_gezet.type)
_CURRENT_MOMENT = (
    select(_STATUSSEN.c.datum_status_gezet)
    .where(_STATUSSEN.c.id == _ZAKEN.c.status_id)
    .correlate(_ZAKEN)
    .scalar_subquery()
)
_MAKE_CURRENT = (
    update(_ZAKEN)
    .where(
        _ZAKEN.c.id == bindparam("zaak_id"),
        or_(_ZAKEN.c.status_id.is_(None), _CURRENT_MOMENT <= _STATUS_MOMENT),
    )
    .values(status_id=bindparam("new_status_id"), updated_at=bindparam("changed_at"))
)
_NOTIFY = insert(_NOTIFICATIONS)


class Zaken:
    def __init__(self, session: Session) -> None:
        self.session = session

    def lock_zaak(self, oin: str, identificatie: str) -> LockedZaak | None:
        """The zaak with this identificatie of this organisation, locked; other OINs' zaken
        never match."""
        row = self.session.execute(
            _LOCK_ZAAK, {"zaak_oin": oin, "zaak_identificatie": identificatie}
        ).one_or_none()
        return LockedZaak(*row) if row is not None else None

    def new_zaak(
        self, oin: str, identificatie: str, fields: ZaakFields, now: datetime
    ) -> LockedZaak:
        """A new zaak without status. A concurrent copy's insert fails on the unique
        (oin, identificatie) key (`StoreConflict`), and the endpoint runs it again."""
        row = {**asdict(fields), "oin": oin, "identificatie": identificatie}
        zaak_id = self.session.execute(
            _NEW_ZAAK, {**row, "created_at": now, "updated_at": now}
        ).scalar_one()
        return LockedZaak(
            zaak_id, identificatie, fields.initiator_bsn, fields.startdatum, None, None
        )

    def update_zaak(self, zaak_id: int, fields: ZaakFields, now: datetime) -> None:
        self.session.execute(
            _UPDATE_ZAAK.values(**asdict(fields), updated_at=now), {"zaak_id": zaak_id}
        )

    def close_zaak(
        self, zaak_id: int, einddatum: date, resultaat: str | None, now: datetime
    ) -> None:
        """Set the einddatum, and the resultaat unless it is None (the stored one stays)."""
        values: dict[str, Any] = {"einddatum": einddatum, "updated_at": now}
        if resultaat is not None:
            values["resultaat"] = resultaat
        self.session.execute(_UPDATE_ZAAK.values(**values), {"zaak_id": zaak_id})

    def has_status(self, zaak_id: int, moment: datetime, omschrijving: str) -> bool:
        found = self.session.execute(
            _HAS_STATUS,
            {
                "status_zaak_id": zaak_id,
                "status_moment": moment,
                "status_omschrijving": omschrijving,
            },
        ).first()
        return found is not None

    def add_status(
        self, zaak_id: int, code: str | None, omschrijving: str, moment: datetime, now: datetime
    ) -> int | None:
        """Append a status to the history; its id, or None when the zaak holds it already."""
        statement = _ADD_STATUS[self.session.get_bind().dialect.name]
        added: int | None = self.session.execute(
            statement,
            {
                "zaak_id": zaak_id,
                "code": code,
                "omschrijving": omschrijving,
                "datum_status_gezet": moment,
                "received_at": now,
            },
        ).scalar_one_or_none()
        return added

    def make_current(self, zaak_id: int, status_id: int, moment: datetime, now: datetime) -> bool:
        """Make the status (set at `moment`) the zaak's current one, unless its current status
        was set later; True when it became current."""
        changed: Any = self.session.execute(
            _MAKE_CURRENT,
            {
                "zaak_id": zaak_id,
                "status_moment": moment,
                "new_status_id": status_id,
                "changed_at": now,
            },
        )
        return bool(changed.rowcount == 1)

    def record_notification(self, bsn: str, status_id: int, now: datetime) -> None:
        self.session.execute(
            _NOTIFY,
            {
                "bsn": bsn,
                "kind": NOTIFICATION_ZAAK_STATUS,
                "zaak_status_id": status_id,
                "created_at": now,
            },
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

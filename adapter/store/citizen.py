"""What the citizen side reads and changes: one citizen's letters, zaken, settings and sessions.

Every query is scoped to one BSN, so a citizen can never reach another's letter by guessing
an id. A letter is visible from `visible_from`; until then it does not exist for the citizen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from adapter.store.models import (
    Account,
    Bericht,
    BerichtBijlage,
    Bijlage,
    CitizenSession,
    CitizenSettings,
    Notification,
    Subscription,
    SubscriptionChange,
    Zaak,
    ZaakStatus,
)

INBOX, ARCHIVE, BIN, ERASED = "postvak", "archief", "prullenbak", "gewist"
FOLDERS = (INBOX, ARCHIVE, BIN)  # the ones a citizen can look into


@dataclass(frozen=True)
class Page:
    berichten: list[Bericht]
    total: int
    unread: int


@dataclass(frozen=True)
class Attachment:
    soort: str  # persoonlijk / algemeen
    volgorde: int
    omschrijving: str
    sha256: str
    media_type: str
    size: int


# --- account and settings -------------------------------------------------------------------


def account(session: Session, bsn: str) -> Account | None:
    return session.get(Account, bsn)


def example_login(session: Session) -> str | None:
    """A BSN worth trying the development login with: the active account with the most
    opt-ins, so the one that sees the most post (lowest BSN among equals); None without any.
    """
    opt_ins = func.count(Subscription.oin)
    return session.scalars(
        select(Account.bsn)
        .outerjoin(Subscription, Subscription.bsn == Account.bsn)
        .where(Account.active.is_(True))
        .group_by(Account.bsn)
        .order_by(opt_ins.desc(), Account.bsn)
        .limit(1)
    ).first()


def settings(session: Session, bsn: str, now: datetime) -> CitizenSettings:
    """The citizen's settings row, made with the defaults when there is none yet."""
    found = session.get(CitizenSettings, bsn)
    if found is None:
        found = CitizenSettings(bsn=bsn, reminders=True, activated_at=None, updated_at=now)
        session.add(found)
        session.flush()
    return found


def activate(session: Session, bsn: str, now: datetime) -> bool:
    """First login activates the account. False when no account exists for this BSN."""
    found = session.get(Account, bsn)
    if found is None:
        return False
    if not found.active:
        found.active, found.updated_at = True, now
        # Activation opens the box to every opted-in organisation: part of the history
        # that AbonnementAanvraag's Mutatie variant reads.
        session.add(
            SubscriptionChange(
                bsn=bsn, oin=None, subscribed=True, changed_at=now, source="activatie"
            )
        )
    own = settings(session, bsn, now)
    if own.activated_at is None:
        own.activated_at = now
    return True


def update_contact(
    session: Session, bsn: str, email: str | None, reminders: bool, now: datetime
) -> None:
    found = session.get(Account, bsn)
    if found is None:
        return
    found.email, found.updated_at = email, now
    own = settings(session, bsn, now)
    own.reminders, own.updated_at = reminders, now


def subscriptions(session: Session, bsn: str) -> set[str]:
    return set(session.scalars(select(Subscription.oin).where(Subscription.bsn == bsn)))


def set_subscriptions(
    session: Session, bsn: str, wanted: set[str], choosable: set[str], now: datetime, source: str
) -> list[tuple[str, bool]]:
    """Make the opt-ins among `choosable` equal `wanted`; every change is recorded with its time.

    OINs outside `choosable` (by-law organisations, organisations no longer configured) are
    left as they are. Returns the changes made.
    """
    current = subscriptions(session, bsn)
    changes = [(oin, True) for oin in sorted((wanted & choosable) - current)]
    changes += [(oin, False) for oin in sorted((current & choosable) - wanted)]
    for oin, subscribed in changes:
        if subscribed:
            session.add(Subscription(bsn=bsn, oin=oin, created_at=now))
        else:
            session.execute(
                delete(Subscription).where(Subscription.bsn == bsn, Subscription.oin == oin)
            )
        session.add(
            SubscriptionChange(
                bsn=bsn, oin=oin, subscribed=subscribed, changed_at=now, source=source
            )
        )
    session.flush()
    return changes


def subscription_changes(session: Session, bsn: str) -> list[SubscriptionChange]:
    return list(
        session.scalars(
            select(SubscriptionChange)
            .where(SubscriptionChange.bsn == bsn)
            .order_by(SubscriptionChange.changed_at, SubscriptionChange.id)
        )
    )


# --- letters ---------------------------------------------------------------------------------


def _visible(bsn: str, now: datetime):  # type: ignore[no-untyped-def]
    return (Bericht.bsn == bsn, Bericht.visible_from <= now)


def letters(
    session: Session,
    bsn: str,
    now: datetime,
    folder: str,
    oin: str | None,
    page: int,
    page_size: int,
) -> Page:
    """One page of a folder, newest first; `unread` counts the whole folder, not the page."""
    where = [*_visible(bsn, now), Bericht.folder == folder]
    if oin:
        where.append(Bericht.leverancier_oin == oin)
    total = session.scalar(select(func.count()).select_from(Bericht).where(*where)) or 0
    unread = (
        session.scalar(
            select(func.count()).select_from(Bericht).where(*where, Bericht.opened_at.is_(None))
        )
        or 0
    )
    rows = session.scalars(
        select(Bericht)
        .where(*where)
        .order_by(Bericht.visible_from.desc(), Bericht.bericht_id)
        .offset(max(page - 1, 0) * page_size)
        .limit(page_size)
    )
    return Page(list(rows), int(total), int(unread))


def senders(session: Session, bsn: str, now: datetime, folder: str) -> list[str]:
    """The OINs that have letters in this folder (for the filter)."""
    return list(
        session.scalars(
            select(Bericht.leverancier_oin)
            .where(*_visible(bsn, now), Bericht.folder == folder)
            .distinct()
            .order_by(Bericht.leverancier_oin)
        )
    )


def letter(session: Session, bsn: str, bericht_id: str, now: datetime) -> Bericht | None:
    """The citizen's own visible letter, unless its bin was emptied."""
    return session.scalars(
        select(Bericht).where(
            *_visible(bsn, now), Bericht.bericht_id == bericht_id, Bericht.folder.in_(FOLDERS)
        )
    ).one_or_none()


def mark_opened(session: Session, found: Bericht, now: datetime) -> None:
    """The first opening counts (the reminder needs no more); never shown to organisations."""
    if found.opened_at is None:
        found.opened_at = now


def attachments(session: Session, bericht_id: str) -> list[Attachment]:
    rows = session.execute(
        select(BerichtBijlage, Bijlage.media_type, Bijlage.size)
        .join(Bijlage, Bijlage.sha256 == BerichtBijlage.sha256)
        .where(BerichtBijlage.bericht_id == bericht_id)
        .order_by(BerichtBijlage.soort.desc(), BerichtBijlage.volgorde)
    )
    return [
        Attachment(link.soort, link.volgorde, link.omschrijving, link.sha256, media_type, size)
        for link, media_type, size in rows
    ]


def move(session: Session, found: Bericht, folder: str) -> None:
    if folder not in FOLDERS:
        raise ValueError(f"unknown folder {folder!r}")
    found.folder = folder


def empty_bin(session: Session, bsn: str, now: datetime) -> tuple[int, list[str]]:
    """Remove the content of every letter in the bin for good.

    The row stays (as "gewist", without subject, text, reference or attachments) because the
    delivery receipt, the audit chain and the usage report refer to it. Returns the number of
    letters and the attachment hashes no letter refers to any more, whose rows are deleted
    here and whose blobs the caller removes after commit.
    """
    ids = list(
        session.scalars(select(Bericht.bericht_id).where(Bericht.bsn == bsn, Bericht.folder == BIN))
    )
    if not ids:
        return 0, []
    hashes = set(
        session.scalars(select(BerichtBijlage.sha256).where(BerichtBijlage.bericht_id.in_(ids)))
    )
    session.execute(delete(BerichtBijlage).where(BerichtBijlage.bericht_id.in_(ids)))
    session.execute(
        delete(Notification).where(
            Notification.bericht_id.in_(ids), Notification.status.in_(("pending", "sending"))
        )
    )
    session.execute(
        update(Bericht)
        .where(Bericht.bericht_id.in_(ids))
        .values(
            folder=ERASED,
            onderwerp="",
            tekst=None,
            referentie=None,
            eind_datum_handelingstermijn=None,
        )
    )
    still_used = set(
        session.scalars(
            select(BerichtBijlage.sha256).where(BerichtBijlage.sha256.in_(hashes)).distinct()
        )
    )
    orphans = sorted(hashes - still_used)
    if orphans:
        session.execute(delete(Bijlage).where(Bijlage.sha256.in_(orphans)))
    return len(ids), orphans


# --- zaken -----------------------------------------------------------------------------------


def zaken(session: Session, bsn: str, closed_since: date) -> list[tuple[Zaak, list[ZaakStatus]]]:
    """Every organisation's zaken of this citizen: open ones and those closed since the date.

    Newest first, each with its history, newest status first.
    """
    found = list(
        session.scalars(
            select(Zaak)
            .where(
                Zaak.initiator_bsn == bsn,
                (Zaak.einddatum.is_(None)) | (Zaak.einddatum >= closed_since),
            )
            .order_by(Zaak.einddatum.is_not(None), Zaak.startdatum.desc(), Zaak.id.desc())
        )
    )
    histories: dict[int, list[ZaakStatus]] = {zaak.id: [] for zaak in found}
    if found:
        for status in session.scalars(
            select(ZaakStatus)
            .where(ZaakStatus.zaak_id.in_(histories))
            .order_by(ZaakStatus.datum_status_gezet.desc(), ZaakStatus.id.desc())
        ):
            histories[status.zaak_id].append(status)
    return [(zaak, histories[zaak.id]) for zaak in found]


def zaak(session: Session, bsn: str, zaak_id: int) -> tuple[Zaak, list[ZaakStatus]] | None:
    found = session.scalars(
        select(Zaak).where(Zaak.id == zaak_id, Zaak.initiator_bsn == bsn)
    ).one_or_none()
    if found is None:
        return None
    history = list(
        session.scalars(
            select(ZaakStatus)
            .where(ZaakStatus.zaak_id == found.id)
            .order_by(ZaakStatus.datum_status_gezet.desc(), ZaakStatus.id.desc())
        )
    )
    return found, history


# --- sessions --------------------------------------------------------------------------------


def create_session(
    session: Session, token_hash: str, bsn: str, csrf_token: str, now: datetime
) -> None:
    session.add(
        CitizenSession(
            token_hash=token_hash, bsn=bsn, csrf_token=csrf_token, created_at=now, last_seen_at=now
        )
    )


def live_session(
    session: Session, token_hash: str, now: datetime, idle: timedelta
) -> CitizenSession | None:
    """The session if it was used within `idle`; refreshed, so idle time starts again."""
    found = session.get(CitizenSession, token_hash)
    if found is None:
        return None
    if found.last_seen_at + idle < now:
        session.delete(found)
        return None
    found.last_seen_at = now
    return found


def end_session(session: Session, token_hash: str) -> None:
    session.execute(delete(CitizenSession).where(CitizenSession.token_hash == token_hash))


def purge_sessions(session: Session, idle_before: datetime) -> int:
    result = session.execute(
        delete(CitizenSession).where(CitizenSession.last_seen_at < idle_before)
    )
    return max(int(getattr(result, "rowcount", 0) or 0), 0)

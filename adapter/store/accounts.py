"""Accounts and subscriptions: who may receive post from whom."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from stdnum.nl import bsn as bsn_number

from adapter.store.models import Account, Subscription

_TRUE = {"true", "1", "ja", "yes", "j", "y"}
_FALSE = {"false", "0", "nee", "no", "n", ""}
CSV_COLUMNS = ("bsn", "active", "email", "subscriptions")


class AccountImportError(ValueError):
    """A row of an accounts file is wrong; names the line and the reason."""


@dataclass(frozen=True)
class AccountRow:
    bsn: str
    active: bool
    email: str | None
    subscriptions: frozenset[str]


def read_accounts_csv(handle: TextIO, source: str = "accounts") -> Iterator[AccountRow]:
    """Rows of `bsn,active,email,subscriptions` (OINs separated by `;`), checked one by one."""
    reader = csv.DictReader(handle)
    missing = set(CSV_COLUMNS) - set(reader.fieldnames or ())
    if missing:
        raise AccountImportError(f"{source}: kolommen ontbreken: {', '.join(sorted(missing))}")
    for row in reader:
        where = f"{source}:{reader.line_num}"
        bsn = (row["bsn"] or "").strip()
        if not bsn_number.is_valid(bsn):
            raise AccountImportError(f"{where}: {bsn!r} is geen geldig BSN (elfproef)")
        active_text = (row["active"] or "").strip().lower()
        if active_text not in _TRUE | _FALSE:
            raise AccountImportError(
                f"{where}: active moet true of false zijn, niet {active_text!r}"
            )
        oins = frozenset(o.strip() for o in (row["subscriptions"] or "").split(";") if o.strip())
        for oin in oins:
            if len(oin) != 20 or not oin.isdigit():
                raise AccountImportError(f"{where}: {oin!r} is geen OIN van 20 cijfers")
        yield AccountRow(
            bsn=bsn_number.compact(bsn),
            active=active_text in _TRUE,
            email=(row["email"] or "").strip() or None,
            subscriptions=oins,
        )


def upsert_accounts(session: Session, rows: Sequence[AccountRow]) -> None:
    """Insert or replace these accounts; a row's subscriptions replace the stored ones."""
    now = datetime.now(UTC)
    bsns = [row.bsn for row in rows]
    existing = {a.bsn: a for a in session.scalars(select(Account).where(Account.bsn.in_(bsns)))}
    for row in rows:
        account = existing.get(row.bsn)
        if account is None:
            session.add(Account(bsn=row.bsn, active=row.active, email=row.email, updated_at=now))
        else:
            account.active, account.email, account.updated_at = row.active, row.email, now
    session.flush()
    session.execute(delete(Subscription).where(Subscription.bsn.in_(bsns)))
    session.add_all(
        Subscription(bsn=row.bsn, oin=oin, created_at=now)
        for row in rows
        for oin in row.subscriptions
    )
    session.flush()


def may_receive(session: Session, bsns: Iterable[str], oin: str, by_law: bool) -> dict[str, bool]:
    """Per BSN: may `oin` send it post? By law: any existing account; else active and opted in."""
    wanted = set(bsns)
    accounts: dict[str, bool] = {
        bsn: active
        for bsn, active in session.execute(
            select(Account.bsn, Account.active).where(Account.bsn.in_(wanted))
        )
    }
    if by_law:
        return {bsn: bsn in accounts for bsn in wanted}
    subscribed = set(
        session.scalars(
            select(Subscription.bsn).where(Subscription.bsn.in_(wanted), Subscription.oin == oin)
        )
    )
    return {bsn: accounts.get(bsn, False) and bsn in subscribed for bsn in wanted}

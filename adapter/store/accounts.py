"""Accounts and subscriptions: who may receive post from whom."""

from __future__ import annotations

import csv
import json
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    String,
    any_,
    bindparam,
    delete,
    func,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import InstrumentedAttribute, Session
from stdnum.nl import bsn as bsn_number

from adapter.errors import AdapterError
from adapter.store.engine import DriverStatement
from adapter.store.models import Account, Subscription, SubscriptionChange, table_of
from adapter.store.transaction import InUnit

# BSNs per query when an organisation's subscribers or changes are read page by page: enough
# to keep the round trips few, few enough to keep memory flat for a million.
PAGE_ROWS = 5000

_TRUE = {"true", "1", "ja", "yes", "j", "y"}
_FALSE = {"false", "0", "nee", "no", "n", ""}
CSV_COLUMNS = ("bsn", "active", "email", "subscriptions")


class AccountImportError(AdapterError, ValueError):
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


def upsert_accounts(
    session: Session, rows: Sequence[AccountRow], now: datetime | None = None
) -> None:
    """Insert or replace these accounts; a row's subscriptions replace the stored ones.

    Every change of who may receive is recorded in `subscription_changes` at `now`: a new
    account, a change of `active`, each opt-in added or removed. Unchanged values record
    nothing, so importing the same file twice leaves the history as it was.
    """
    now = now or datetime.now(UTC)
    bsns = [row.bsn for row in rows]
    existing = {a.bsn: a for a in session.scalars(select(Account).where(Account.bsn.in_(bsns)))}
    current: dict[str, set[str]] = {}
    for bsn, oin in session.execute(
        select(Subscription.bsn, Subscription.oin).where(Subscription.bsn.in_(bsns))
    ):
        current.setdefault(bsn, set()).add(oin)
    changes: list[SubscriptionChange] = []

    def changed(bsn: str, oin: str | None, value: bool) -> None:
        changes.append(
            SubscriptionChange(bsn=bsn, oin=oin, subscribed=value, changed_at=now, source="import")
        )

    for row in rows:
        account = existing.get(row.bsn)
        if account is None:
            session.add(Account(bsn=row.bsn, active=row.active, email=row.email, updated_at=now))
            changed(row.bsn, None, row.active)
        else:
            if account.active != row.active:
                changed(row.bsn, None, row.active)
            account.active, account.email, account.updated_at = row.active, row.email, now
    session.flush()
    for row in rows:
        had = current.get(row.bsn, set())
        removed = sorted(had - row.subscriptions)
        if removed:
            session.execute(
                delete(Subscription).where(
                    Subscription.bsn == row.bsn, Subscription.oin.in_(removed)
                )
            )
        for oin in removed:
            changed(row.bsn, oin, False)
        for oin in sorted(row.subscriptions - had):
            session.add(Subscription(bsn=row.bsn, oin=oin, created_at=now))
            changed(row.bsn, oin, True)
    session.add_all(changes)
    session.flush()


@dataclass(frozen=True)
class AccountStanding:
    """What decides whether an organisation may send a BSN post, besides a by-law grant."""

    active: bool
    subscribed: bool  # opted in for the organisation asked about

    def receives(self, by_law: bool) -> bool:
        """May the organisation send this account post? By law: yes; else active and opted in."""
        return by_law or (self.active and self.subscribed)


def _standing_query(bsn_is_asked: ColumnElement[bool]) -> Select[str, bool, str | None]:
    """Every account asked about, with its opt-in for one OIN if it has one: a single query.

    Core columns and the BSNs as one bound value, so the statement is compiled once per
    process and reused: an expanding IN is rendered again for every request.
    """
    accounts, subscriptions = table_of(Account), table_of(Subscription)
    return (
        select(accounts.c.bsn, accounts.c.active, subscriptions.c.oin)
        .outerjoin(
            subscriptions,
            (subscriptions.c.bsn == accounts.c.bsn) & (subscriptions.c.oin == bindparam("oin")),
        )
        .where(bsn_is_asked)
    )


# On the driver: the lookup runs once per request, and SQLAlchemy's execution of it cost
# more CPU than the query (adapter.store.engine.DriverStatement).
_STANDING = {
    "postgresql": DriverStatement(
        _standing_query(table_of(Account).c.bsn == any_(bindparam("bsns", type_=ARRAY(String))))
    ),
    # SQLite: the BSNs as a JSON array, read back by json_each.
    "sqlite": DriverStatement(
        _standing_query(
            table_of(Account).c.bsn.in_(
                select(func.json_each(bindparam("bsns")).table_valued("value").c.value)
            )
        )
    ),
}


def standing(
    session: Session | Connection, bsns: Iterable[str], oin: str
) -> dict[str, AccountStanding]:
    """Per BSN that has an account: is it active, and has it opted in for `oin`? A read
    that takes no write lock (see `Accounts`)."""
    # A session's connection: the statement is Core, which a session runs without flushing.
    connection = session if isinstance(session, Connection) else session.connection()
    name = connection.dialect.name
    wanted = list(set(bsns))
    asked = wanted if name == "postgresql" else json.dumps(wanted)
    rows = _STANDING[name].read(connection, {"bsns": asked, "oin": oin})
    return {bsn: AccountStanding(active, opted_in is not None) for bsn, active, opted_in in rows}


def may_receive(session: Session, bsns: Iterable[str], oin: str, by_law: bool) -> dict[str, bool]:
    """Per BSN: may `oin` send it post? By law: any existing account; else active and opted in."""
    wanted = set(bsns)
    return _receiving(wanted, standing(session, wanted, oin), by_law)


def _receiving(
    wanted: Iterable[str], found: dict[str, AccountStanding], by_law: bool
) -> dict[str, bool]:
    return {
        bsn: (account := found.get(bsn)) is not None and account.receives(by_law) for bsn in wanted
    }


class Accounts(InUnit):
    """The accounts repository of one transaction.

    On SQLite, `may_receive` and `standing` read before the transaction has begun without
    beginning it, on its connection in autocommit: an SQLite transaction holds the database's
    one write lock from its first statement, and a ValidateAbonnementen request would hold it
    from this lookup to its receipt, through the answer's building and signing, while every
    other writer waits. They then see the latest committed rows, as each statement on
    PostgreSQL does; once the transaction has begun, they read in it.
    """

    def may_receive(self, bsns: Iterable[str], oin: str, by_law: bool) -> dict[str, bool]:
        wanted = set(bsns)
        return _receiving(wanted, self.standing(wanted, oin), by_law)

    def standing(self, bsns: Iterable[str], oin: str) -> dict[str, AccountStanding]:
        # A transaction's connection: the lookup needs no session (Transaction).
        return standing(self.connection, bsns, oin)

    def upsert(self, rows: Sequence[AccountRow], now: datetime | None = None) -> None:
        upsert_accounts(self.session, rows, now)

    # --- AbonnementAanvraag: many BSNs at a time --------------------------------------------

    def _among(
        self, column: InstrumentedAttribute[str], bsns: Collection[str]
    ) -> ColumnElement[bool]:
        """`column IN bsns` with the BSNs as one bound value instead of one parameter each:
        binding and planning thousands of parameters costs more than the lookup itself
        (measured for a million BSNs: 16-26 s against 3.5 s on PostgreSQL, 2.6 s against
        1.0 s on SQLite)."""
        values = list(bsns)
        if self.session.get_bind().dialect.name == "postgresql":
            return column == any_(bindparam(None, values, type_=ARRAY(String)))
        each = func.json_each(json.dumps(values)).table_valued("value")
        return column.in_(select(each.c.value))

    def receiving(self, bsns: Collection[str], oin: str, by_law: bool) -> set[str]:
        """Those of `bsns` that `oin` may send post to (the rule of `may_receive`), one query."""
        if by_law:
            query = select(Account.bsn).where(self._among(Account.bsn, bsns))
        else:
            query = (
                select(Account.bsn)
                .join(Subscription, (Subscription.bsn == Account.bsn) & (Subscription.oin == oin))
                .where(self._among(Account.bsn, bsns), Account.active.is_(True))
            )
        return set(self.session.scalars(query))

    def subscribers(self, oin: str, by_law: bool) -> Iterator[str]:
        """Every BSN `oin` may send post to, in BSN order, read a page at a time."""
        if by_law:
            query = select(Account.bsn).order_by(Account.bsn)
            key = Account.bsn
        else:
            query = (
                select(Subscription.bsn)
                .join(Account, Account.bsn == Subscription.bsn)
                .where(Subscription.oin == oin, Account.active.is_(True))
                .order_by(Subscription.bsn)
            )
            key = Subscription.bsn
        last = ""
        while True:
            page = list(self.session.scalars(query.where(key > last).limit(PAGE_ROWS)))
            yield from page
            if len(page) < PAGE_ROWS:
                return
            last = page[-1]

    def changed_since(self, oin: str, by_law: bool, since: datetime) -> Iterator[tuple[str, bool]]:
        """(BSN, may receive now) for every BSN for which that differs from what it was at
        `since`, in BSN order, judged from the recorded history (`subscription_changes`).

        Only BSNs with a recorded change after `since` can differ; for those the value then is
        the last recorded state at or before `since` (no account recorded then: no account).
        A change undone again since then is therefore not listed.
        """
        relevant: ColumnElement[bool] = (
            SubscriptionChange.oin.is_(None)
            if by_law
            else or_(SubscriptionChange.oin == oin, SubscriptionChange.oin.is_(None))
        )
        candidates = (
            select(SubscriptionChange.bsn)
            .where(relevant, SubscriptionChange.changed_at > since)
            .distinct()
            .order_by(SubscriptionChange.bsn)
        )
        last = ""
        while True:
            page = list(
                self.session.scalars(
                    candidates.where(SubscriptionChange.bsn > last).limit(PAGE_ROWS)
                )
            )
            if page:
                before = self._values_at(page, relevant, by_law, since)
                now = self.receiving(page, oin, by_law)
                for bsn in page:
                    if before[bsn] != (bsn in now):
                        yield bsn, bsn in now
            if len(page) < PAGE_ROWS:
                return
            last = page[-1]

    def _values_at(
        self, bsns: Sequence[str], relevant: ColumnElement[bool], by_law: bool, moment: datetime
    ) -> dict[str, bool]:
        """Per BSN: might `oin` send post to it at `moment`, by the last changes until then."""
        account: dict[str, bool] = {}  # the account's `active` then; absent: no account yet
        subscribed: dict[str, bool] = {}
        for bsn, oin, value in self.session.execute(
            select(SubscriptionChange.bsn, SubscriptionChange.oin, SubscriptionChange.subscribed)
            .where(
                self._among(SubscriptionChange.bsn, bsns),
                relevant,
                SubscriptionChange.changed_at <= moment,
            )
            .order_by(SubscriptionChange.changed_at, SubscriptionChange.id)
        ):
            (account if oin is None else subscribed)[bsn] = bool(value)
        if by_law:
            return {bsn: bsn in account for bsn in bsns}
        return {bsn: account.get(bsn, False) and subscribed.get(bsn, False) for bsn in bsns}

"""Berichten (letters) and their attachments, each distinct content stored once by SHA-256.

A batch of a thousand letters is stored with one bulk insert per table (COPY on PostgreSQL,
an executemany elsewhere), not as ORM objects: the unit of work's bookkeeping per object cost
more than the inserts themselves.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Dialect, String, Table, bindparam, func, insert, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from adapter.store.blobs import BlobStore, Staging
from adapter.store.engine import DriverStatement
from adapter.store.models import Bericht, BerichtBijlage, Bijlage, table_of
from adapter.store.transaction import InUnit, Transaction


class NewBericht(NamedTuple):
    """An accepted letter's row: a tuple whose fields are the `berichten` columns it fills (a
    batch makes a thousand, and the bulk insert takes them as they are)."""

    bericht_id: str
    batch_id: str
    leverancier_oin: str
    bsn: str
    bericht_type: str
    onderwerp: str
    tekst: str | None
    referentie: str | None
    eind_datum_handelingstermijn: datetime | None
    visible_from: datetime
    received_at: datetime
    ebms_message_id: str


class NewBijlage(NamedTuple):
    """One attachment of a Bericht: personal (inside the Bericht) or general (a MIME part)."""

    bericht_id: str
    soort: str  # persoonlijk / algemeen
    volgorde: int
    omschrijving: str
    sha256: str  # of the content, staged in the batch's `Berichten.staging()`
    size: int  # bytes of the content
    pdfa: str | None = None  # the PDF/A part and conformance its XMP declares ("2A"), if any


_MISSING = object()


def _bind_processor(table: Table, name: str, dialect: Dialect) -> Any:
    # The dialect's own type: SQLite's DATETIME writes its text form, which a generic DateTime
    # leaves to the driver (an ISO form that compares differently in SQL).
    return table.c[name].type.dialect_impl(dialect).bind_processor(dialect)


def _bound_columns(
    table: Table, names: Sequence[str], rows: Sequence[Sequence[Any]], dialect: Dialect
) -> list[Sequence[Any]]:
    """The values of each column of `rows`, through the column type's bind processor.

    Column by column, and each distinct value processed once: a batch's moments are mostly the
    same few datetimes, and a processor call per value and row was a large part of the cost of
    a bulk insert. The values are hashable (text, numbers, moments); equal ones are processed
    alike.
    """
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
    for index, name in enumerate(names):
        process = _bind_processor(table, name, dialect)
        if process is None:
            continue
        memo: dict[Any, Any] = {}
        processed = []
        for value in columns[index]:
            bound = memo.get(value, _MISSING)
            if bound is _MISSING:
                bound = memo[value] = process(value)
            processed.append(bound)
        columns[index] = processed
    return columns


def insert_many(
    session: Session, table: Table, names: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert `rows` (tuples of the values of the columns `names`) into `table` in the
    session's transaction, with one statement on the driver's own connection.

    On PostgreSQL a COPY, about twice as fast as an executemany there (1000 rows: ~80 against
    ~160 ms measured); elsewhere the driver's executemany of one prepared INSERT, which skips
    SQLAlchemy's per-row parameter handling (a third of the CPU of a 1000-row insert on SQLite).
    Values go through the columns' types as in any statement, and columns left out get their
    scalar defaults. A failure is raised as SQLAlchemy's error (a unique violation as
    IntegrityError), as from any other statement, so the transaction fails as a whole.
    """
    if not rows:
        return
    dialect = session.get_bind().dialect
    if dialect.name not in ("postgresql", "sqlite"):  # no driver path of our own
        session.execute(insert(table), [dict(zip(names, row, strict=True)) for row in rows])
        return
    # No Python-side defaults apply to a statement of our own: the scalar ones go into every row.
    defaults = {
        column.name: column.default.arg  # type: ignore[attr-defined]
        for column in table.columns
        if column.name not in names and column.default is not None and column.default.is_scalar
    }
    values: Sequence[Sequence[Any]]
    if any(_bind_processor(table, name, dialect) is not None for name in names):
        columns = _bound_columns(table, names, rows, dialect)
        columns += [[value] * len(rows) for value in defaults.values()]
        values = list(zip(*columns, strict=True))
    elif defaults:
        added = tuple(defaults.values())
        values = [(*row, *added) for row in rows]
    else:
        values = rows  # nothing to convert or add (bericht_bijlagen): the rows as they are
    quote = dialect.identifier_preparer.quote
    listed = ", ".join(quote(name) for name in [*names, *defaults])
    driver: Any = session.connection().connection.driver_connection
    if dialect.name == "sqlite":
        marks = ", ".join("?" * (len(names) + len(defaults)))  # the sqlite3 paramstyle
        # Names from the table's metadata, values bound: nothing of a request is in the text.
        statement = f"INSERT INTO {quote(table.name)} ({listed}) VALUES ({marks})"  # noqa: S608
        try:
            driver.executemany(statement, values)
        except sqlite3.Error as exc:
            raise DBAPIError.instance(statement, None, exc, sqlite3.Error) from exc
        return
    import psycopg

    statement = f"COPY {quote(table.name)} ({listed}) FROM STDIN"
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in values:
                copy.write_row(row)
    except psycopg.Error as exc:
        raise DBAPIError.instance(statement, None, exc, psycopg.Error) from exc


class _Stored:
    """Which of many keys (text) a column holds, in one statement with one parameter.

    An IN of a thousand parameters cost PostgreSQL four times the CPU (15 against 4 ms
    measured for 1000 BerichtIDs), and SQLite's driver and SQLAlchemy's expansion of them
    three times (3.6 against 1.3 ms). PostgreSQL gets an array, SQLite a JSON array that
    json_each reads. Both as a set to join, not a filter: PostgreSQL planned `= ANY(array)`
    of a thousand keys as a scan of the whole table (30-40 ms at 200,000 letters, growing with
    the table), and `IN (SELECT unnest(array))` as one index lookup per key (5 ms).
    """

    def __init__(self, column: Any) -> None:
        keys = func.unnest(bindparam("keys", type_=ARRAY(String)))
        self.postgresql = DriverStatement(select(column).where(column.in_(select(keys))))
        values = func.json_each(bindparam("keys", type_=String)).table_valued("value")
        self.sqlite = DriverStatement(select(column).where(column.in_(select(values.c.value))))

    def __call__(self, connection: Connection, keys: Iterable[str]) -> set[str]:
        wanted = list(set(keys))
        if not wanted:
            return set()
        if connection.dialect.name == "postgresql":
            found = self.postgresql.read(connection, {"keys": wanted})
        else:
            found = self.sqlite.read(connection, {"keys": json.dumps(wanted)})
        return {row[0] for row in found}


_STORED_BERICHT_IDS = _Stored(table_of(Bericht).c.bericht_id)
_STORED_DIGESTS = _Stored(table_of(Bijlage).c.sha256)


def _no_inserts() -> None:
    pass


class _Contents(NamedTuple):
    """A batch's distinct attachment contents, on disk, and which of them have a row."""

    pdfa: dict[str, str | None]  # digest -> its declared PDF/A
    sizes: dict[str, int]  # digest -> bytes
    known: set[str]  # digests with a `bijlagen` row already


class Berichten(InUnit):
    """The letters repository of one transaction.

    On SQLite a transaction holds the database's one write lock from its first statement to
    its commit, so what needs no lock comes first and reads without it: the look-up of
    stored BerichtIDs, the attachments' files (written and fsynced) and the look-up of their
    digests. The lock then covers the inserts, not the judging of a thousand letters and the
    fsync of their files, which other batches would otherwise have waited for.
    """

    def __init__(self, unit: Session | Transaction, blobs: BlobStore) -> None:
        super().__init__(unit)
        self.blobs = blobs

    def existing_ids(self, bericht_ids: Iterable[str]) -> set[str]:
        """Those of these BerichtIDs that are stored already (one query for a whole batch)."""
        return _STORED_BERICHT_IDS(self.connection, bericht_ids)

    def staging(self) -> Staging:
        """Where a batch hands its attachments' contents as it reads them; `add` keeps those
        of the accepted letters, and closing it removes the rest (adapter.store.blobs)."""
        return self.blobs.staging()

    def add(
        self,
        berichten: Sequence[NewBericht],
        bijlagen: Sequence[NewBijlage],
        staging: Staging | None = None,
    ) -> None:
        """Store accepted letters and their attachments, whose contents `staging` holds
        (made durable first)."""
        self.staged(berichten, bijlagen, staging)()

    def staged(
        self,
        berichten: Sequence[NewBericht],
        bijlagen: Sequence[NewBijlage],
        staging: Staging | None = None,
    ) -> Callable[[], None]:
        """`add` up to its writes: the attachments' contents made durable and their digests
        looked up, none of which takes SQLite's write lock. Returns the inserts, to run later
        in this transaction; they need nothing more of `staging`, which may close first."""
        if not berichten:
            return _no_inserts
        contents = None
        if bijlagen:
            if staging is None:
                raise ValueError("attachments need the staging that holds their contents")
            contents = self._store_contents(bijlagen, staging)

        def insert() -> None:
            # Every column but `folder`, whose default ("postvak") the insert fills in.
            insert_many(self.session, table_of(Bericht), NewBericht._fields, berichten)
            if contents is not None:
                self._add_bijlagen(bijlagen, contents, berichten[0].received_at)

        return insert

    def _store_contents(self, bijlagen: Sequence[NewBijlage], staging: Staging) -> _Contents:
        """Each distinct content made durable once; which of them have a row."""
        pdfa: dict[str, str | None] = {}
        sizes: dict[str, int] = {}
        for bijlage in bijlagen:
            if bijlage.sha256 not in sizes:
                pdfa[bijlage.sha256], sizes[bijlage.sha256] = bijlage.pdfa, bijlage.size
        # Durable before the transaction that refers to them commits.
        staging.keep(sizes)
        return _Contents(pdfa, sizes, _STORED_DIGESTS(self.connection, sizes))

    def _add_bijlagen(
        self, bijlagen: Sequence[NewBijlage], contents: _Contents, now: datetime
    ) -> None:
        """A row for each content that has none yet, then the links.

        A batch shares its general attachment among all its letters, and concurrent batches
        may store the same PDF first at the same moment (or after it was looked up): ON
        CONFLICT DO NOTHING lets both succeed.
        """
        sizes = contents.sizes
        new = [digest for digest in sizes if digest not in contents.known]
        if new:
            dialect = self.session.get_bind().dialect.name
            upsert = postgresql_insert if dialect == "postgresql" else sqlite_insert
            rows = [
                {
                    "sha256": digest,
                    "size": sizes[digest],
                    "media_type": "application/pdf",
                    "pdfa": contents.pdfa[digest],
                    "stored_at": now,
                }
                for digest in new
            ]
            # An executemany: a VALUES list of literals is coerced value by value, 10,000
            # values for a batch of 2,000 distinct personal PDFs.
            self.session.execute(
                upsert(Bijlage).on_conflict_do_nothing(index_elements=["sha256"]), rows
            )
        insert_many(
            self.session,
            table_of(BerichtBijlage),
            ("bericht_id", "soort", "volgorde", "sha256", "omschrijving"),
            [(b.bericht_id, b.soort, b.volgorde, b.sha256, b.omschrijving) for b in bijlagen],
        )

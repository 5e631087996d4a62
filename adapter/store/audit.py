"""The audit trail: every receipt and refusal, appended to `audit_log` as a hash chain.

Entry n (n = 1, 2, 3 … without gaps) records one stored Afleverbevestiging: who sent what, the
outcome, and `content_hash`, the SHA-256 of the signed receipt XML exactly as stored in
`receipts.xml` (its UTF-8 bytes). It commits to the entry before it through `prev_hash` (the
previous entry's `entry_hash`; 64 zeros for entry 1), and

    entry_hash = hex(SHA-256(canonical(entry)))

where `canonical` is the JSON text, encoded as UTF-8, of an object holding exactly the fields
in `HASHED_FIELDS`: `seq` as a JSON number, `outcome_code` as a string or null, `recorded_at`
as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC, always six fraction digits), all others as strings;
keys sorted, no whitespace (separators "," and ":"), non-ASCII characters as themselves. For
these values that is also the JSON Canonicalization Scheme (RFC 8785), so an auditor can
recompute every hash with any JCS implementation, or with Python's
`json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`.

Appending happens inside the transaction that stores the receipt, so both commit or neither
does. One writer at a time: on PostgreSQL a transaction-level advisory lock (released by the
commit), on SQLite the database write lock that `BEGIN IMMEDIATE` took. The primary key on
`seq` refuses a fork even if a writer somehow ran without the lock. Everything that can be
done before the lock (hashing the receipt, writing the caller's rows) is done before it, so
the lock covers only: read the head, insert one row, commit.

On PostgreSQL that commit does not wait for the disk while it holds the lock: the next writer
would otherwise wait for every writer's WAL flush in turn. The transaction commits with
`synchronous_commit` off, and `Database.transaction` then waits for the flush outside the lock,
before its caller can answer: it commits one more, empty, transaction that has a transaction
id (`wait_until_durable`), whose synchronous commit returns only when the WAL is on disk up to
its own commit record, which lies after ours. Concurrent writers wait for one flush together.
So a receipt never leaves the server before its entry is on disk. Should PostgreSQL crash
before that flush, what is lost is the end of the WAL: this entry and any entry chained to it
after it (they come later in the WAL), none of whose receipts has left the server.

`recorded_at` never goes backwards along the chain (an entry takes the later of the clock and
its predecessor's time), so a range of dates is a contiguous run of `seq`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import IO, Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Table,
    bindparam,
    cast,
    exists,
    func,
    insert,
    select,
    text,
    true,
)
from sqlalchemy.orm import Session

from adapter.store.engine import DriverStatement, driver_errors
from adapter.store.models import AuditEntry, ReceiptOutcome, StoredReceipt, table_of

GENESIS_HASH = "0" * 64
# pg_advisory_xact_lock key ("dk-audit"): one writer of the chain at a time per database.
AUDIT_LOCK_KEY = int.from_bytes(b"dk-audit", "big")
KIND_RECEIPT = "receipt"
KIND_REFUSAL = "refusal"
HASHED_FIELDS = (
    "seq",
    "recorded_at",
    "kind",
    "receipt_id",
    "sender_oin",
    "service",
    "operation",
    "outcome",
    "outcome_code",
    "content_hash",
    "prev_hash",
)
# Receipt columns an entry repeats; verify checks they still agree with the receipts table.
RECEIPT_FIELDS = ("sender_oin", "service", "operation", "outcome", "outcome_code")
EXPORT_FORMAT = "dk-adapter-audit-export/1"
BATCH_SIZE = 1000


# --- hashing --------------------------------------------------------------------------------


def content_hash(xml: str) -> str:
    """Hex SHA-256 of stored receipt XML (the `receipts.xml` text, as UTF-8)."""
    return hashlib.sha256(xml.encode("utf-8")).hexdigest()


def timestamp(moment: datetime) -> str:
    """`recorded_at` as it is hashed: UTC, microseconds, `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def hashed_fields(entry: Any) -> dict[str, Any]:
    """The hashed fields of an entry (an `AuditEntry` or a result row with its columns)."""
    values = {name: getattr(entry, name) for name in HASHED_FIELDS}
    values["recorded_at"] = timestamp(values["recorded_at"])
    return values


def canonical(fields: Mapping[str, Any]) -> bytes:
    """The canonical serialisation an entry's hash is taken over (see the module text)."""
    document = {name: fields[name] for name in HASHED_FIELDS}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def entry_hash(fields: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(fields)).hexdigest()


# --- appending ------------------------------------------------------------------------------


# The receipt columns a Record is made of.
_RECORD_COLUMNS = (
    "receipt_id",
    "sender_oin",
    "service",
    "operation",
    "outcome",
    "outcome_code",
    "xml",
)


@dataclass(frozen=True)
class Record:
    """What an entry says about one stored receipt: everything known before the lock."""

    kind: str
    receipt_id: str
    sender_oin: str
    service: str
    operation: str
    outcome: str
    outcome_code: str | None
    content_hash: str

    @classmethod
    def of(cls, receipt: StoredReceipt | Mapping[str, Any]) -> Record:
        """The record of a receipt row, given as a model object or as its column values."""
        row = receipt
        if not isinstance(row, Mapping):
            row = {name: getattr(receipt, name) for name in _RECORD_COLUMNS}
        return cls(
            kind=KIND_REFUSAL if row["outcome"] == ReceiptOutcome.REFUSED else KIND_RECEIPT,
            receipt_id=row["receipt_id"],
            sender_oin=row["sender_oin"],
            service=row["service"],
            operation=row["operation"],
            outcome=row["outcome"],
            outcome_code=row["outcome_code"],
            content_hash=content_hash(row["xml"]),
        )


# The chain's lock, and a commit that does not wait for the disk (see the module text).
# The statements every receipt runs are `DriverStatement`s: SQLAlchemy's execution of a
# statement cost more CPU than the statement itself (adapter.store.engine).
_LOCK = DriverStatement(
    text(
        "SELECT pg_advisory_xact_lock(CAST(:key AS bigint)),"
        " set_config('synchronous_commit', 'off', true)"
    )
)
_DURABLE = "SELECT txid_current()"
# Set in a session's `info` while its transaction's commit still has to reach the disk.
NOT_YET_DURABLE = "audit_commit_not_yet_durable"
_AUDIT_LOG = table_of(AuditEntry)
_HEAD = DriverStatement(
    select(_AUDIT_LOG.c.seq, _AUDIT_LOG.c.entry_hash, _AUDIT_LOG.c.recorded_at)
    .order_by(_AUDIT_LOG.c.seq.desc())
    .limit(1)
)
# One statement, no unit of work; every column is given.
_INSERT = DriverStatement(insert(_AUDIT_LOG), [column.key for column in _AUDIT_LOG.c])


def _lock_chain(connection: Connection, info: dict[Any, Any]) -> None:
    """Become the chain's only writer until this transaction ends."""
    if connection.dialect.name == "postgresql":
        _LOCK.rows(connection, {"key": AUDIT_LOCK_KEY})
        info[NOT_YET_DURABLE] = True
    # SQLite: the transaction began with BEGIN IMMEDIATE, and has written before it got here
    # (append flushes first), so it holds the database's only write lock already.


class InsertTakingChainLock:
    """An INSERT of every column of `table` that also makes its transaction the chain's
    writer: on PostgreSQL in the same statement (a data-modifying WITH beside the lock), one
    round trip fewer for each receipt; then `append_on(..., locked=True)`. The row itself
    needs no lock, it rides along; on SQLite the transaction holds the write lock already.
    """

    def __init__(self, table: Table) -> None:
        self._insert = DriverStatement(insert(table), [column.key for column in table.c])
        written = (
            insert(table)
            .values({column.key: bindparam(column.key, type_=column.type) for column in table.c})
            .cte("written")
        )
        self._insert_and_lock = DriverStatement(
            select(
                func.pg_advisory_xact_lock(cast(bindparam("key"), BigInteger)),
                func.set_config("synchronous_commit", "off", true()),
            ).add_cte(written)
        )

    def execute(self, connection: Connection, info: dict[Any, Any], row: Mapping[str, Any]) -> None:
        """Insert `row`, holding the chain's lock afterwards (`info`: as for `append_on`)."""
        if connection.dialect.name != "postgresql":
            self._insert.execute(connection, row)
            return
        self._insert_and_lock.rows(connection, {**row, "key": AUDIT_LOCK_KEY})
        info[NOT_YET_DURABLE] = True


def wait_until_durable(connection: Connection) -> None:
    """PostgreSQL: return once everything committed on `connection` so far is on disk.

    The statement runs in autocommit, a transaction of its own that PostgreSQL commits
    synchronously: one round trip instead of BEGIN, the statement and COMMIT. Autocommit is
    switched on the driver's connection and back, between transactions: through SQLAlchemy's
    isolation level it cost as much CPU again, half of it to reset the level at check-in.
    """
    driver: Any = connection.connection.dbapi_connection
    with driver_errors(connection, _DURABLE):
        driver.autocommit = True
        try:
            driver.execute(_DURABLE)
        finally:
            if not driver.closed:
                driver.autocommit = False


def append(session: Session, record: Record, now: datetime | None = None) -> dict[str, Any]:
    """Append `record` to the chain in the session's transaction; it commits with it.

    Returns the entry's columns. Under the lock: one read of the head, one insert.
    """
    session.flush()  # the caller's rows are written before the lock, not under it
    return append_on(session.connection(), session.info, record, now)


def append_on(
    connection: Connection,
    info: dict[Any, Any],
    record: Record,
    now: datetime | None = None,
    locked: bool = False,
) -> dict[str, Any]:
    """`append` on the transaction's connection, whose session has nothing left to flush;
    `info` is the session's, where the commit learns that it must wait for the disk.
    `locked`: the transaction holds the chain's lock already (`InsertTakingChainLock`)."""
    if not locked:
        _lock_chain(connection, info)
    head = _HEAD.rows(connection)
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    if not head:
        seq, prev_hash = 1, GENESIS_HASH
    else:
        head_seq, head_hash, head_moment = head[0]
        seq, prev_hash, moment = head_seq + 1, head_hash, max(moment, head_moment)
    entry: dict[str, Any] = {
        "seq": seq,
        "recorded_at": moment,
        "kind": record.kind,
        "receipt_id": record.receipt_id,
        "sender_oin": record.sender_oin,
        "service": record.service,
        "operation": record.operation,
        "outcome": record.outcome,
        "outcome_code": record.outcome_code,
        "content_hash": record.content_hash,
        "prev_hash": prev_hash,
    }
    entry["entry_hash"] = entry_hash({**entry, "recorded_at": timestamp(moment)})
    _INSERT.execute(connection, entry)
    return entry


# --- verifying ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of walking the chain; `broken_at` and `reason` say where and why it fails."""

    entries: int  # entries found intact (all of them when the chain is)
    head_seq: int
    head_hash: str
    broken_at: int | None = None
    reason: str | None = None
    unchained_receipts: int = 0  # stored receipts that no entry records

    @property
    def intact(self) -> bool:
        return self.broken_at is None


def _entry_rows(session: Session, after: int | None, up_to: int, limit: int) -> list[Any]:
    """Entries after seq `after` (from the start when None), each with its receipt's columns."""
    query = (
        select(
            *(getattr(AuditEntry, name) for name in HASHED_FIELDS),
            AuditEntry.entry_hash,
            StoredReceipt.receipt_id.label("r_receipt_id"),
            StoredReceipt.xml.label("r_xml"),
            *(getattr(StoredReceipt, name).label(f"r_{name}") for name in RECEIPT_FIELDS),
        )
        .outerjoin(StoredReceipt, StoredReceipt.receipt_id == AuditEntry.receipt_id)
        .where(AuditEntry.seq <= up_to)
        .order_by(AuditEntry.seq)
        .limit(limit)
    )
    if after is not None:
        query = query.where(AuditEntry.seq > after)
    return list(session.execute(query).all())


def _problem(row: Any, expected: int, prev_hash: str) -> tuple[int, str] | None:
    """Where and why the chain breaks at `row`, which should be entry `expected`."""
    seq: int = row.seq
    if seq > expected:
        return expected, f"entry {expected} is missing (the next entry is {seq})"
    if seq < expected:
        return seq, f"entry {seq} does not belong in the chain (seq counts from 1)"
    if entry_hash(hashed_fields(row)) != row.entry_hash:
        return seq, "entry altered: its content no longer matches its entry_hash"
    if row.prev_hash != prev_hash:
        if seq == 1:
            return 1, "entry altered: the first entry does not start from the genesis hash"
        return seq - 1, (
            f"entry {seq - 1} was rewritten: its entry_hash is not the prev_hash that "
            f"entry {seq} recorded for it (or entry {seq} was rewritten with another prev_hash)"
        )
    receipt = row.receipt_id
    if row.r_receipt_id is None:
        return seq, f"receipt {receipt} is missing from the receipts table"
    if content_hash(row.r_xml) != row.content_hash:
        return seq, f"receipt {receipt} altered: its stored XML does not match content_hash"
    for name in RECEIPT_FIELDS:
        stored, recorded = getattr(row, f"r_{name}"), getattr(row, name)
        if stored != recorded:
            return seq, (
                f"receipt {receipt} and its entry disagree (one was altered): {name} is "
                f"{stored!r} in receipts, {recorded!r} in the entry"
            )
    return None


def verify_chain(session: Session, batch_size: int = BATCH_SIZE) -> VerifyResult:
    """Walk the chain in seq order, `batch_size` entries at a time, up to the head at the start.

    Each entry must hash to its entry_hash, hold the previous entry's hash, follow it without
    a gap, and hold the hash of its receipt's XML as stored now. Entries appended during the
    walk are left for the next one. Receipts that no entry records are counted, not judged:
    receipts stored before the audit trail existed are among them.
    """
    head_seq: int = session.scalar(select(func.max(AuditEntry.seq))) or 0
    expected, prev_hash, after = 1, GENESIS_HASH, None
    while expected <= head_seq:
        rows = _entry_rows(session, after, head_seq, batch_size)
        if not rows:
            return VerifyResult(
                expected - 1,
                head_seq,
                prev_hash,
                expected,
                f"entry {expected} is missing (entries up to {head_seq} were there)",
            )
        for row in rows:
            problem = _problem(row, expected, prev_hash)
            if problem is not None:
                return VerifyResult(expected - 1, head_seq, prev_hash, *problem)
            prev_hash = row.entry_hash
            expected += 1
        after = rows[-1].seq
    unchained = session.scalar(
        select(func.count())
        .select_from(StoredReceipt)
        .where(~exists().where(AuditEntry.receipt_id == StoredReceipt.receipt_id))
    )
    return VerifyResult(head_seq, head_seq, prev_hash, unchained_receipts=unchained or 0)


# --- exporting ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportedEntry:
    fields: dict[str, Any]  # the hashed fields, as `canonical` takes them
    entry_hash: str
    receipt_xml: str | None  # None when the receipt row is gone (verify says so as well)


@dataclass
class ExportSlice:
    """The entries recorded on the days `start` to `end` (UTC, both included), in seq order.

    `previous` is the entry just before the slice (hashed fields plus entry_hash), None when
    the slice starts at the beginning of the chain; `previous_hash` is what the first exported
    entry's prev_hash must be. Iterating reads the entries in batches.
    """

    session: Session
    start: date
    end: date
    previous: dict[str, Any] | None
    previous_hash: str
    first_seq: int  # the slice is seq first_seq .. last_seq; empty when last_seq < first_seq
    last_seq: int
    batch_size: int = field(default=BATCH_SIZE)

    def __len__(self) -> int:
        return max(0, self.last_seq - self.first_seq + 1)

    def __iter__(self) -> Iterator[ExportedEntry]:
        after = self.first_seq - 1
        while after < self.last_seq:
            rows = _entry_rows(self.session, after, self.last_seq, self.batch_size)
            if not rows:
                return
            for row in rows:
                yield ExportedEntry(hashed_fields(row), row.entry_hash, row.r_xml)
            after = rows[-1].seq


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def export(session: Session, start: date, end: date, batch_size: int = BATCH_SIZE) -> ExportSlice:
    """The entries recorded from `start` up to and including `end` (UTC days), with receipts."""
    begin, until = _day_start(start), _day_start(end + timedelta(days=1))
    previous = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.recorded_at < begin)
        .order_by(AuditEntry.recorded_at.desc(), AuditEntry.seq.desc())
        .limit(1)
    ).one_or_none()
    last_seq = session.scalar(
        select(AuditEntry.seq)
        .where(AuditEntry.recorded_at < until)
        .order_by(AuditEntry.recorded_at.desc(), AuditEntry.seq.desc())
        .limit(1)
    )
    previous_fields = None
    if previous is not None:
        previous_fields = {**hashed_fields(previous), "entry_hash": previous.entry_hash}
    return ExportSlice(
        session=session,
        start=start,
        end=end,
        previous=previous_fields,
        previous_hash=previous.entry_hash if previous is not None else GENESIS_HASH,
        first_seq=previous.seq + 1 if previous is not None else 1,
        last_seq=last_seq or 0,
        batch_size=batch_size,
    )


@dataclass(frozen=True)
class ExportSummary:
    entries: int
    first_seq: int | None
    last_seq: int | None
    previous_hash: str
    last_hash: str


def _line(document: Mapping[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n"


def write_jsonl(exported: ExportSlice, out: IO[str]) -> ExportSummary:
    """Write the slice as JSON Lines: a header, one line per entry, and an end line.

    header: {"record": "header", "format", "from", "to", "timezone": "UTC", "hashed_fields",
             "canonical", "previous": {hashed fields + entry_hash} or null, "previous_hash"}
    entry:  {"record": "entry", the hashed fields, "entry_hash", "receipt_xml"}
    end:    {"record": "end", "entries", "first_seq", "last_seq", "last_hash"}
    The end line tells a complete file from a cut-off one.
    """
    out.write(
        _line(
            {
                "record": "header",
                "format": EXPORT_FORMAT,
                "from": exported.start.isoformat(),
                "to": exported.end.isoformat(),
                "timezone": "UTC",
                "hashed_fields": list(HASHED_FIELDS),
                "canonical": "entry_hash = sha256(JSON of the hashed fields, keys sorted, "
                'separators "," and ":", UTF-8, RFC 8785); content_hash = '
                "sha256(receipt_xml as UTF-8); prev_hash = entry_hash of the entry before",
                "previous": exported.previous,
                "previous_hash": exported.previous_hash,
            }
        )
    )
    count, first, last, last_hash = 0, None, None, exported.previous_hash
    for item in exported:
        out.write(
            _line(
                {
                    "record": "entry",
                    **item.fields,
                    "entry_hash": item.entry_hash,
                    "receipt_xml": item.receipt_xml,
                }
            )
        )
        count += 1
        first = item.fields["seq"] if first is None else first
        last, last_hash = item.fields["seq"], item.entry_hash
    out.write(
        _line(
            {
                "record": "end",
                "entries": count,
                "first_seq": first,
                "last_seq": last,
                "last_hash": last_hash,
            }
        )
    )
    return ExportSummary(count, first, last, exported.previous_hash, last_hash)

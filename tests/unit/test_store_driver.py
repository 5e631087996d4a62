"""The store's lean path for the statements every request runs, on SQLite and PostgreSQL.

`DriverStatement` runs a Core statement on the DBAPI cursor: what it writes and reads must be
what SQLAlchemy's own execution writes and reads, and its errors SQLAlchemy's (so the store's
errors stay the same). A `Transaction` makes its session only when asked; a transaction that
mixes Core statements and the session commits or rolls back as one, whichever came first.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from adapter.errors import StoreConflict, StoreUnavailable
from adapter.receipts import Outcome, Receipt
from adapter.store import audit
from adapter.store.accounts import AccountRow
from adapter.store.db import Database, store_errors
from adapter.store.engine import DriverStatement
from adapter.store.models import Account, StoredReceipt, table_of
from tests.conftest import postgres_schema
from tests.helpers import migrated_database

SENDER = "00000099000000002000"
RECEIVER = "00000001820029336000"
BSN = "999990007"
RECEIPTS = table_of(StoredReceipt)
COLUMNS = [column.key for column in RECEIPTS.c]
DRIVER_INSERT = DriverStatement(insert(RECEIPTS), COLUMNS)


@pytest.fixture(scope="module")
def database(database_url: str) -> Iterator[Database]:
    with migrated_database(database_url) as database:
        yield database


@pytest.fixture(scope="module")
def postgresql() -> Iterator[Database]:
    """For what only PostgreSQL has (the durable wait, a backend the server ends)."""
    with postgres_schema() as url, migrated_database(url) as database:
        yield database


def receipt_row(**changes: Any) -> dict[str, Any]:
    # A moment in another zone, with microseconds: the UTC conversion and the stored form.
    moment = datetime(2026, 3, 1, 13, 14, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    row = {
        "receipt_id": str(uuid.uuid4()),
        "request_id": "req-1",
        "sender_oin": SENDER,
        "receiver_oin": RECEIVER,
        "received_at": moment,
        "message_ref": None,
        "service": "ValidateAbonnementen",
        "operation": "validateAbonnementen",
        "outcome": "Geaccepteerd",
        "outcome_code": None,
        "xml": "<Afleverbevestiging>é</Afleverbevestiging>",
    }
    return {**row, **changes}


def raw_row(connection: Connection, receipt_id: str) -> tuple[Any, ...]:
    """The row as the driver hands it back, without SQLAlchemy's type conversions."""
    names = ", ".join(COLUMNS)
    marker = "?" if connection.dialect.name == "sqlite" else "%(r)s"
    parameters: Any = (receipt_id,) if connection.dialect.name == "sqlite" else {"r": receipt_id}
    found = connection.exec_driver_sql(
        f"SELECT {names} FROM receipts WHERE receipt_id = {marker}",  # noqa: S608 - our columns
        parameters,
    ).one()
    return tuple(found)


def receipt(outcome: Outcome) -> Receipt:
    return Receipt(
        request_id="req-2",
        receiver_oin=RECEIVER,
        sender_oin=SENDER,
        received_at=datetime.now(UTC),
        message_ref=None,
        service="ValidateAbonnementen",
        operation="validateAbonnementen",
        body_hash="0" * 64,
        outcome=outcome,
    )


def stored(database: Database, receipt_id: str) -> bool:
    with database.engine.connect() as connection:
        count = connection.execute(
            text("SELECT count(*) FROM receipts WHERE receipt_id = :r"), {"r": receipt_id}
        ).scalar_one()
    return bool(count)


def has_account(database: Database, bsn: str) -> bool:
    with database.transaction() as session:
        return session.get(Account, bsn) is not None


def test_a_driver_statement_writes_what_sqlalchemy_writes(database: Database) -> None:
    through_sqlalchemy, on_the_driver = receipt_row(), receipt_row()
    with database.engine.begin() as connection:
        connection.execute(insert(RECEIPTS), through_sqlalchemy)
        assert DRIVER_INSERT.execute(connection, on_the_driver) == 1
        first = raw_row(connection, through_sqlalchemy["receipt_id"])
        second = raw_row(connection, on_the_driver["receipt_id"])
    assert first[1:] == second[1:]  # all but the key, in the driver's own terms
    assert second[0] == on_the_driver["receipt_id"]


def test_a_driver_statement_reads_what_sqlalchemy_reads(database: Database) -> None:
    row = receipt_row()
    query = select(*RECEIPTS.c).where(RECEIPTS.c.receipt_id == row["receipt_id"])
    with database.engine.begin() as connection:
        connection.execute(insert(RECEIPTS), row)
        expected = tuple(connection.execute(query).one())
        [found] = DriverStatement(query).rows(connection)
    assert found == expected
    assert found[4] == row["received_at"] and found[4].tzinfo == UTC  # aware, in UTC


def test_a_duplicate_key_on_the_driver_is_the_same_store_conflict(database: Database) -> None:
    row = receipt_row()
    with database.transaction() as session:
        session.connection().execute(insert(RECEIPTS), row)
    reasons = []
    for run in (
        lambda connection: connection.execute(insert(RECEIPTS), row),
        lambda connection: DRIVER_INSERT.execute(connection, row),
    ):
        with pytest.raises(StoreConflict) as raised, database.transaction() as session:
            run(session.connection())
        reasons.append(raised.value.reason)
    assert reasons[0] == reasons[1]
    assert reasons[0].startswith("IntegrityError: ")


def test_a_statement_that_needs_sqlalchemys_execution_is_refused(database: Database) -> None:
    returning = DriverStatement(insert(RECEIPTS).returning(RECEIPTS.c.receipt_id), COLUMNS)
    with database.engine.connect() as connection, pytest.raises(ValueError, match="own"):
        returning.execute(connection, receipt_row())


def test_a_receipt_and_session_rows_commit_together_whichever_comes_first(
    database: Database,
) -> None:
    accepted = receipt(Outcome.accept())
    with database.repositories() as repositories:  # Core first, the session joins
        repositories.receipts.save(accepted, b"<a/>")
        repositories.accounts.upsert([AccountRow("999990019", True, None, frozenset())])
    later = receipt(Outcome.accept())
    with database.repositories() as repositories:  # the session first, Core joins it
        repositories.accounts.upsert([AccountRow("999990020", True, None, frozenset())])
        repositories.receipts.save(later, b"<b/>")
    assert stored(database, accepted.receipt_id) and stored(database, later.receipt_id)
    assert has_account(database, "999990019") and has_account(database, "999990020")
    with database.transaction() as session:
        assert audit.verify_chain(session).intact


@pytest.mark.parametrize("session_first", [False, True])
def test_a_failing_block_stores_neither_and_frees_the_database(
    database: Database, session_first: bool
) -> None:
    refused = receipt(Outcome.reject("0002", "niet toegestaan"))
    bsn = "999990032" if session_first else "999990044"
    with pytest.raises(RuntimeError), database.repositories() as repositories:
        if session_first:
            repositories.accounts.upsert([AccountRow(bsn, True, None, frozenset())])
        repositories.receipts.save(refused, b"<c/>")
        repositories.accounts.upsert([AccountRow(bsn, True, None, frozenset())])
        raise RuntimeError("the handler failed after storing")
    assert not stored(database, refused.receipt_id)
    assert not has_account(database, bsn)
    # The write lock (SQLite) and the chain's lock were given up: the next receipt is stored.
    after = receipt(Outcome.accept())
    with database.repositories() as repositories:
        repositories.receipts.save(after, b"<d/>")
    assert stored(database, after.receipt_id)


def test_the_accounts_lookup_sees_a_session_write_of_its_own_transaction(
    database: Database,
) -> None:
    with database.repositories() as repositories:
        repositories.accounts.upsert([AccountRow(BSN, True, None, frozenset({SENDER}))])
        # Once the transaction has begun, SQLite too reads in it, where this write is.
        assert repositories.accounts.may_receive([BSN], SENDER, by_law=False) == {BSN: True}
    with database.repositories() as repositories:
        assert repositories.accounts.may_receive([BSN], SENDER, by_law=False) == {BSN: True}


def test_waiting_for_the_disk_leaves_the_connection_out_of_autocommit(
    postgresql: Database,
) -> None:
    with postgresql.engine.connect() as connection:
        audit.wait_until_durable(connection)
        assert connection.connection.dbapi_connection.autocommit is False  # type: ignore[union-attr]
        first = connection.execute(text("SELECT txid_current()")).scalar_one()
        again = connection.execute(text("SELECT txid_current()")).scalar_one()
        assert first == again  # one transaction, not a statement each
        connection.rollback()


def test_a_lost_connection_on_the_driver_is_invalidated_and_unavailable(
    postgresql: Database,
) -> None:
    database = postgresql
    admin = create_engine(database.url, poolclass=NullPool)
    lookup = DriverStatement(select(RECEIPTS.c.receipt_id).limit(1))
    try:
        with database.engine.connect() as connection:
            pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
            connection.rollback()
            with admin.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with admin.connect() as other:
                    if not other.execute(
                        text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                        {"pid": pid},
                    ).scalar_one():
                        break
            with pytest.raises(StoreUnavailable), store_errors():
                try:
                    lookup.rows(connection)
                except DBAPIError as error:
                    assert error.connection_invalidated
                    raise
            assert connection.invalidated
        with database.engine.connect() as replacement:  # the pool hands out a live one
            assert lookup.rows(replacement) is not None
            assert replacement.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        admin.dispose()

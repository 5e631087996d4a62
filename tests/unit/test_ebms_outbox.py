"""The outbox state machine: what one delivery attempt leaves a message in, and the queue.

`judge_answer` is pure; the `Outbox` repository and the `Deliverer`'s polling run against a
real database (SQLite and PostgreSQL, a schema of its own per module), without a server: the
attempts themselves are replaced by a recorder.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, text

from adapter.ebms import outbound
from adapter.ebms.message import EB
from adapter.ebms.mime import build_package
from adapter.ebms.outbound import Deliverer, OutboundTls, judge_answer
from adapter.store import engine as store_engine
from adapter.store.db import Database
from adapter.store.models import OutboxAttempt, OutboxMessage
from adapter.store.outbox import GIVEN_UP, DueMessage, NewOutboxMessage, OutboxStatus
from tests.helpers import write_lock_held

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PEER = "00000099000000002000"


def _ack_for(message_id: str) -> bytes:
    return (
        f'<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/" xmlns:eb="{EB}">'
        f"<S:Header><eb:Acknowledgment><eb:RefToMessageId>{message_id}</eb:RefToMessageId>"
        "</eb:Acknowledgment></S:Header><S:Body/></S:Envelope>"
    ).encode()


def _error() -> bytes:
    return (
        f'<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/" xmlns:eb="{EB}">'
        '<S:Header><eb:ErrorList><eb:Error eb:errorCode="Inconsistent">'
        "<eb:Description>nee</eb:Description></eb:Error></eb:ErrorList></S:Header>"
        "<S:Body/></S:Envelope>"
    ).encode()


# --- judge_answer -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_server_error_keeps_the_message_pending_for_a_retry(status: int) -> None:
    assert judge_answer("m1", status, "text/xml", b"", True) == (
        OutboxStatus.PENDING,
        f"HTTP {status}",
    )


def test_a_client_error_fails_the_message() -> None:
    assert judge_answer("m1", 404, "text/xml", b"", True) == (OutboxStatus.FAILED, "HTTP 404")


def test_a_signal_is_delivered_once_the_peer_took_it() -> None:
    assert judge_answer("m1", 200, "text/plain", b"", False) == (OutboxStatus.DELIVERED, None)


def test_a_business_message_without_an_answer_waits_for_its_acknowledgment() -> None:
    status, _ = judge_answer("m1", 200, "text/plain", b"  ", True)
    assert status is OutboxStatus.SENT


def test_an_acknowledgment_of_this_message_in_the_answer_delivers_it() -> None:
    answer = judge_answer("m1", 200, "text/xml", _ack_for("m1"), True)
    assert answer == (OutboxStatus.DELIVERED, None)


def test_an_acknowledgment_of_another_message_does_not_deliver_it() -> None:
    status, reason = judge_answer("m1", 200, "text/xml", _ack_for("m2"), True)
    assert status is OutboxStatus.SENT and reason == "wacht op Acknowledgment"


def test_a_message_error_in_the_answer_fails_the_message() -> None:
    status, reason = judge_answer("m1", 200, "text/xml", _error(), True)
    assert status is OutboxStatus.FAILED and reason == "MessageError Inconsistent: nee"


def test_an_acknowledgment_in_a_multipart_answer_is_read_too() -> None:
    content_type, body = build_package(_ack_for("m1"), [])
    assert judge_answer("m1", 200, content_type, body, True) == (OutboxStatus.DELIVERED, None)


def test_an_unreadable_answer_leaves_the_message_waiting() -> None:
    status, reason = judge_answer("m1", 200, "text/xml", b"<niet", True)
    assert status is OutboxStatus.SENT and reason is not None and "onleesbaar" in reason


# --- the Outbox repository ----------------------------------------------------------------------


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    db.create_schema()
    with db.transaction() as session:  # each test starts from an empty outbox
        session.execute(text("DELETE FROM outbox"))
    yield db
    db.dispose()


def _message(
    message_id: str, *, retries: int = 2, persist: timedelta = timedelta(hours=1)
) -> NewOutboxMessage:
    return NewOutboxMessage(
        message_id=message_id,
        ref_to_message_id="ref-" + message_id,
        cpa_id="cpa",
        to_oin=PEER,
        endpoint="https://127.0.0.1:1/ebms",
        action="GLOBE-R-BV-Result",
        content_type="text/xml",
        body=b"<x/>",
        needs_ack=True,
        max_attempts=retries + 1,
        retry_interval_seconds=10,
        persist_duration=persist,
    )


def test_a_new_message_is_due_at_once_and_leased_until_its_next_retry(database: Database) -> None:
    with database.repositories() as repositories:
        repositories.outbox.add(_message("a"), NOW)
    with database.repositories() as repositories:
        due, expired = repositories.outbox.claim_due(NOW, 10)
    assert [m.message_id for m in due] == ["a"] and expired == []
    with database.repositories() as repositories:
        assert repositories.outbox.claim_due(NOW + timedelta(seconds=9), 10) == ([], [])
        again, _ = repositories.outbox.claim_due(NOW + timedelta(seconds=10), 10)
    assert [m.message_id for m in again] == ["a"]


def test_a_message_whose_attempts_ran_out_fails_instead_of_being_sent(database: Database) -> None:
    with database.repositories() as repositories:
        repositories.outbox.add(_message("b", retries=0), NOW)
    with database.repositories() as repositories:
        first, _ = repositories.outbox.claim_due(NOW, 10)
        repositories.outbox.record_attempt(first[0].id, OutboxStatus.PENDING, "HTTP 503")
    with database.repositories() as repositories:
        due, expired = repositories.outbox.claim_due(NOW + timedelta(minutes=1), 10)
        counts = repositories.outbox.counts_by_status()
    assert due == []
    assert [(e.message_id, e.last_error) for e in expired] == [("b", "HTTP 503" + GIVEN_UP)]
    assert counts[OutboxStatus.FAILED] == 1 and counts[OutboxStatus.PENDING] == 0


def test_a_message_past_its_persist_duration_fails(database: Database) -> None:
    with database.repositories() as repositories:
        repositories.outbox.add(_message("c", persist=timedelta(seconds=30)), NOW)
    with database.repositories() as repositories:
        due, expired = repositories.outbox.claim_due(NOW + timedelta(seconds=30), 10)
    assert due == [] and [e.message_id for e in expired] == ["c"]


def test_an_acknowledgment_that_came_first_is_not_undone_by_the_attempt(
    database: Database,
) -> None:
    with database.repositories() as repositories:
        repositories.outbox.add(_message("d"), NOW)
    with database.repositories() as repositories:
        (claimed,), _ = repositories.outbox.claim_due(NOW, 10)
    with database.repositories() as repositories:
        assert repositories.outbox.acknowledged("d", PEER)
    with database.repositories() as repositories:
        assert not repositories.outbox.record_attempt(claimed.id, OutboxStatus.SENT, "wacht")
        assert repositories.outbox.counts_by_status()[OutboxStatus.DELIVERED] == 1


def test_only_the_addressee_can_acknowledge_or_refuse_a_message(database: Database) -> None:
    with database.repositories() as repositories:
        repositories.outbox.add(_message("e"), NOW)
    with database.repositories() as repositories:
        assert not repositories.outbox.acknowledged("e", "00000099000000001000")
        assert not repositories.outbox.refused("e", "00000099000000001000", "nee")
        assert repositories.outbox.refused("e", PEER, "MessageError ontvangen")
        counts = repositories.outbox.counts_by_status()
    assert counts[OutboxStatus.FAILED] == 1
    assert set(counts) == set(OutboxStatus)  # every status is reported, zero included


def test_has_due_sees_what_a_claim_would_find_and_nothing_else(database: Database) -> None:
    with database.reading() as repositories:
        assert not repositories.outbox.has_due(NOW)  # empty
    with database.repositories() as repositories:
        repositories.outbox.add(_message("f"), NOW)
        repositories.outbox.add(_message("g", persist=timedelta(seconds=5)), NOW)
        repositories.outbox.add(_message("h"), NOW)
        assert repositories.outbox.acknowledged("h", PEER)  # delivered: never due again
    with database.reading() as repositories:
        assert repositories.outbox.has_due(NOW)
    with database.repositories() as repositories:
        due, expired = repositories.outbox.claim_due(NOW + timedelta(seconds=5), 10)
    assert [m.message_id for m in due] == ["f"] and [e.message_id for e in expired] == ["g"]
    with database.reading() as repositories:  # f leased for 10 s, g failed, h delivered
        assert not repositories.outbox.has_due(NOW + timedelta(seconds=14))
        assert repositories.outbox.has_due(NOW + timedelta(seconds=15))


# --- the Deliverer's polling -------------------------------------------------------------------

NO_TLS = OutboundTls(Path("unused.pem"), Path("unused.key"), Path("unused-roots.pem"))


class RecordingDeliverer(Deliverer):
    """Attempts nothing over the network: records each attempt and answers 503."""

    def __init__(self, database: Database) -> None:
        super().__init__(database, NO_TLS)
        self.attempted: list[str] = []

    def _attempt(self, message: DueMessage) -> tuple[OutboxStatus, str | None]:
        self.attempted.append(message.message_id)  # list.append: safe across its threads
        return OutboxStatus.PENDING, "HTTP 503"


@pytest.fixture
def deliverer(database: Database) -> Iterator[RecordingDeliverer]:
    recording = RecordingDeliverer(database)
    yield recording
    recording.close()


def _locking_statements(database: Database) -> list[str]:
    """Statements on the writing engine that take a write lock, claim rows or change them,
    recorded from now on. Reads outside the write lock (SQLite) use another engine."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        words = statement.lstrip().upper()
        if words.startswith(("BEGIN", "UPDATE", "INSERT", "DELETE")) or "FOR UPDATE" in words:
            seen.append(statement)

    event.listen(database.engine, "before_cursor_execute", record)
    return seen


def test_a_poll_with_nothing_due_takes_no_write_transaction(
    database: Database, deliverer: RecordingDeliverer
) -> None:
    now = datetime.now(UTC)
    with database.repositories() as repositories:  # not due for another minute
        repositories.outbox.add(_message("i"), now + timedelta(minutes=1))
    statements = _locking_statements(database)
    assert deliverer.deliver_due() == 0
    assert statements == [] and deliverer.attempted == []


def test_a_due_message_is_claimed_once_and_an_expired_one_failed(
    database: Database, deliverer: RecordingDeliverer
) -> None:
    now = datetime.now(UTC)
    with database.repositories() as repositories:
        repositories.outbox.add(_message("j"), now)
        repositories.outbox.add(
            _message("k", persist=timedelta(seconds=30)), now - timedelta(hours=1)
        )
    assert deliverer.deliver_due() == 2  # one attempt, one given up
    after = datetime.now(UTC)
    assert deliverer.attempted == ["j"]
    with database.transaction() as session:
        rows = {row.message_id: row for row in session.scalars(select(OutboxMessage))}
        attempts = session.scalar(select(func.count()).select_from(OutboxAttempt))
    j, k = rows["j"], rows["k"]
    assert (j.status, j.attempts, j.last_error) == (OutboxStatus.PENDING, 1, "HTTP 503")
    # leased until its retry interval (10 s) from the claim
    assert now + timedelta(seconds=10) <= j.next_attempt_at <= after + timedelta(seconds=10)
    assert (k.status, k.attempts, k.last_error) == (OutboxStatus.FAILED, 0, GIVEN_UP)
    assert attempts == 1
    # j is leased until its retry: the next round finds nothing and claims nothing.
    statements = _locking_statements(database)
    assert deliverer.deliver_due() == 0
    assert statements == [] and deliverer.attempted == ["j"]


def test_on_sqlite_a_poll_with_nothing_due_waits_for_no_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_engine, "BUSY_TIMEOUT_MS", 200)
    database = Database(f"sqlite:///{tmp_path / 'adapter.db'}")
    database.create_schema()
    deliverer = RecordingDeliverer(database)
    try:
        with write_lock_held(database, "DELETE FROM outbox"):  # a request's transaction
            # A claim would wait for the lock and fail after 200 ms (StoreUnavailable).
            assert deliverer.deliver_due() == 0
    finally:
        deliverer.close()
        database.dispose()


def test_each_attempt_is_recorded_with_the_next_claim_and_stored_whatever_the_database(
    database: Database, deliverer: RecordingDeliverer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbound, "PARALLEL_DELIVERIES", 1)  # a count that does not race
    now = datetime.now(UTC)
    with database.repositories() as repositories:
        for message_id in ("p", "q", "r"):
            repositories.outbox.add(_message(message_id), now)
    statements = _locking_statements(database)
    assert deliverer.deliver_due() == 3
    begins = sum(statement.startswith("BEGIN") for statement in statements)
    assert deliverer.attempted == ["p", "q", "r"]
    with database.transaction() as session:
        rows = list(session.scalars(select(OutboxMessage)))
        attempts = session.scalar(select(func.count()).select_from(OutboxAttempt))
    assert [(row.attempts, row.last_error) for row in rows] == [(1, "HTTP 503")] * 3
    assert attempts == 3
    if database.url.startswith("sqlite"):
        # One write transaction per message (its claim, with the outcome of the one before)
        # and one for the last outcome: not a claim and a record apiece.
        assert begins == 3 + 1

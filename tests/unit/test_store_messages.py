"""The message administration repository on its own (SQLite and PostgreSQL, no server): how
long each message is kept, and what a resend does to a failed one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select

from adapter.store.db import Database
from adapter.store.messages import MessageFilter, MessageNotFound, NotResendable
from adapter.store.models import EbmsMessage, OutboxAttempt, OutboxMessage
from adapter.store.outbox import NewOutboxMessage, OutboxStatus
from tests.helpers import migrated_database

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PEER = "00000099000000002000"


@pytest.fixture(scope="module")
def database(database_url: str) -> Iterator[Database]:
    with migrated_database(database_url) as database:
        yield database


@pytest.fixture
def empty(database: Database) -> Database:
    with database.transaction() as session:
        for table in (OutboxAttempt, OutboxMessage, EbmsMessage):
            session.execute(delete(table))
    return database


def received(database: Database, message_id: str, cpa_id: str, age: timedelta) -> None:
    with database.repositories() as repositories:
        repositories.ebms_messages.claim(PEER, message_id, cpa_id, "c", "A", NOW - age)


def queued(database: Database, message_id: str, age: timedelta, status: OutboxStatus) -> None:
    with database.repositories() as repositories:
        repositories.outbox.add(
            NewOutboxMessage(
                message_id,
                None,
                "CPA-A",
                PEER,
                "https://peer",
                "R",
                "text/xml",
                b"<x/>",
                True,
                3,
                1,
                timedelta(days=1),
            ),
            NOW - age,
        )
    with database.transaction() as session:
        row = session.scalars(
            select(OutboxMessage).where(OutboxMessage.message_id == message_id)
        ).one()
        row.status = status
        session.add(OutboxAttempt(outbox_id=row.id, attempted_at=NOW - age, status=status))


def ids(database: Database) -> tuple[set[str], set[str]]:
    with database.transaction() as session:
        return (
            set(session.scalars(select(EbmsMessage.message_id))),
            set(session.scalars(select(OutboxMessage.message_id))),
        )


def test_each_message_is_kept_for_its_cpas_persist_duration_plus_the_margin(
    empty: Database,
) -> None:
    received(empty, "a-old", "CPA-A", timedelta(days=3))  # 1 day + 1: gone
    received(empty, "b-old", "CPA-B", timedelta(days=3))  # 10 days + 1: kept
    received(empty, "c-recent", "CPA-GONE", timedelta(days=3))  # fallback 5 + 1: kept
    received(empty, "c-old", "CPA-GONE", timedelta(days=7))  # fallback: gone
    queued(empty, "done", timedelta(days=3), OutboxStatus.DELIVERED)  # expired 2 days ago
    queued(empty, "failed-recent", timedelta(hours=36), OutboxStatus.FAILED)  # 12 h ago
    queued(empty, "still-trying", timedelta(days=3), OutboxStatus.PENDING)  # not final: kept
    persist = {"CPA-A": timedelta(days=1), "CPA-B": timedelta(days=10)}
    with empty.repositories() as repositories:
        counts = repositories.messages.purge(persist, timedelta(days=5), timedelta(days=1), NOW)
    assert counts == (2, 1)
    assert ids(empty) == ({"b-old", "c-recent"}, {"failed-recent", "still-trying"})
    with empty.transaction() as session:  # the purged message's attempts went with it
        assert session.scalar(select(func.count()).select_from(OutboxAttempt)) == 2


def test_a_resend_queues_a_failed_message_again_for_a_whole_persist_duration(
    empty: Database,
) -> None:
    queued(empty, "failed", timedelta(days=3), OutboxStatus.FAILED)
    queued(empty, "done", timedelta(days=3), OutboxStatus.DELIVERED)
    with empty.repositories() as repositories:
        summary = repositories.messages.resend("failed", NOW)
        assert (summary.status, summary.attempts) == (OutboxStatus.PENDING, 0)
        with pytest.raises(NotResendable, match="is delivered"):
            repositories.messages.resend("done", NOW)
        with pytest.raises(MessageNotFound):
            repositories.messages.resend("nergens", NOW)
    with empty.transaction() as session:
        row = session.scalars(
            select(OutboxMessage).where(OutboxMessage.message_id == "failed")
        ).one()
        assert (row.next_attempt_at, row.expires_at) == (NOW, NOW + timedelta(days=1))


def test_listing_filters_and_limits_newest_first(empty: Database) -> None:
    received(empty, "in-1", "CPA-A", timedelta(hours=2))
    received(empty, "in-2", "CPA-A", timedelta(hours=1))
    queued(empty, "out-1", timedelta(minutes=30), OutboxStatus.SENT)
    with empty.repositories() as repositories:
        listing = repositories.messages.listing
        assert [m.message_id for m in listing(MessageFilter())] == ["out-1", "in-2", "in-1"]
        assert [m.message_id for m in listing(MessageFilter(limit=2))] == ["out-1", "in-2"]
        assert [m.message_id for m in listing(MessageFilter(status="sent"))] == ["out-1"]
        assert [m.status for m in listing(MessageFilter(direction="in"))] == ["received"] * 2
        since = MessageFilter(since=NOW - timedelta(minutes=90), until=NOW - timedelta(minutes=45))
        assert [m.message_id for m in listing(since)] == ["in-2"]

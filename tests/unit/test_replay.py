"""Replay protection: the repeat rule (pure) and the MessageID claims in a real database.

`answer_to_repeat` decides what a request that reuses a WS-A MessageID gets; the
`WusMessages` repository runs on SQLite and PostgreSQL (a schema of its own per module),
without a server, including two transactions claiming one MessageID at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text

from adapter.config import ConfigError, load_config
from adapter.errors import HeaderValueNotAllowed, StoreConflict
from adapter.jobs.retention import purge_wus_messages
from adapter.soap.replay import DEFAULT_WINDOW, Claim, answer_to_repeat, claim_for
from adapter.store import migrate
from adapter.store.db import Database
from adapter.store.engine import is_sqlite
from adapter.store.repositories import Repositories
from adapter.store.wus_messages import EarlierRequest
from tests.conftest import CONF, postgres_schema

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
GEMEENTE = "00000099000000002000"
OTHER = "00000099000000001000"
WINDOW = timedelta(hours=24)


def claim_of(
    body_hash: str = "hash-a",
    service: str = "ValidateAbonnementen",
    at: datetime = NOW,
    message_id: str = "urn:uuid:1",
    sender: str = GEMEENTE,
) -> Claim:
    return Claim(sender, message_id, service, body_hash, at)


def earlier_of(body_hash: str = "hash-a", service: str = "ValidateAbonnementen") -> EarlierRequest:
    return EarlierRequest(
        message_id="urn:uuid:1",
        service=service,
        body_hash=body_hash,
        received_at=NOW - timedelta(hours=1),
        receipt_id="7d1f7c2e-0000-4000-8000-000000000001",
        answer=b"<the original answer/>",
    )


# --- the rule ---------------------------------------------------------------------------------


def test_a_repeat_with_the_same_body_gets_the_original_answer() -> None:
    assert answer_to_repeat(claim_of(), earlier_of(), WINDOW) == b"<the original answer/>"


def test_a_different_body_under_a_used_message_id_is_refused_with_what_to_fix() -> None:
    with pytest.raises(HeaderValueNotAllowed) as refused:
        answer_to_repeat(claim_of(body_hash="hash-b"), earlier_of(), WINDOW)
    fault = refused.value
    assert fault.faultcode == "Client"
    assert fault.receipt_code == "0011"
    assert fault.faultstring == (
        "0011 Header andere waarde dan voorgeschreven: wsa:MessageID urn:uuid:1 is op "
        "2026-12-01T11:00:00.000Z al gebruikt voor een verzoek met een andere soap:Body "
        "(BevestigingID 7d1f7c2e-0000-4000-8000-000000000001); geef elk nieuw verzoek een "
        "eigen wsa:MessageID, en herhaal een verzoek onder dezelfde MessageID alleen "
        "ongewijzigd: dat krijgt binnen 24 uur het oorspronkelijke antwoord"
    )


def test_the_same_body_sent_to_another_service_under_a_used_message_id_is_refused() -> None:
    with pytest.raises(HeaderValueNotAllowed, match="een andere dienst"):
        answer_to_repeat(claim_of(service="LopendeZaken"), earlier_of(), WINDOW)


def test_a_message_id_too_long_to_remember_is_refused_before_it_is_claimed() -> None:
    assert claim_for(GEMEENTE, "u" * 255, "ValidateAbonnementen", "h", NOW).message_id == "u" * 255
    with pytest.raises(HeaderValueNotAllowed) as refused:
        claim_for(GEMEENTE, "u" * 256, "ValidateAbonnementen", "h", NOW)
    assert refused.value.faultstring == (
        "0011 Header andere waarde dan voorgeschreven: wsa:MessageID is 256 tekens lang, de "
        "grens is 255; gebruik bijvoorbeeld urn:uuid:<uuid>"
    )


def test_the_window_counts_back_from_the_time_of_receipt() -> None:
    assert claim_of().seen_since(timedelta(hours=2)) == NOW - timedelta(hours=2)
    assert timedelta(hours=24) == DEFAULT_WINDOW


# --- configuration ----------------------------------------------------------------------------

BASE = (CONF / "adapter.toml").read_text()
SHIPPED = "replay_window_hours = 24"


def write(tmp_path: Path, adapter: str) -> Path:
    conf = tmp_path / "conf"
    conf.mkdir(exist_ok=True)
    (conf / "organisations.toml").write_text((CONF / "organisations.toml").read_text())
    (conf / "adapter.toml").write_text(adapter)
    return conf / "adapter.toml"


def test_the_shipped_window_is_a_day_and_reaches_the_wus_endpoints(tmp_path: Path) -> None:
    assert SHIPPED in BASE
    assert load_config(CONF / "adapter.toml", environ={}).limits.replay_window_hours == 24
    unset = load_config(write(tmp_path, BASE.replace(SHIPPED, "")), environ={})
    assert unset.limits.replay_window_hours == 24


def test_a_configured_window_is_read(tmp_path: Path) -> None:
    adapter = BASE.replace(SHIPPED, "replay_window_hours = 2")
    assert load_config(write(tmp_path, adapter), environ={}).limits.replay_window_hours == 2


@pytest.mark.parametrize("value", ["0", "-1", '"24"', "1.5"])
def test_a_window_that_is_not_a_positive_number_of_hours_is_refused(
    tmp_path: Path, value: str
) -> None:
    adapter = BASE.replace(SHIPPED, f"replay_window_hours = {value}")
    with pytest.raises(ConfigError, match=r"limits\.replay_window_hours"):
        load_config(write(tmp_path, adapter), environ={})


# --- the repository ---------------------------------------------------------------------------


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    db.create_schema()
    with db.transaction() as session:  # each test starts without claims
        session.execute(text("DELETE FROM wus_messages"))
    yield db
    db.dispose()


def claim(database: Database, request: Claim, window: timedelta = WINDOW) -> EarlierRequest | None:
    """Claim as the endpoint does, and record an answer when the claim is ours."""
    with database.repositories() as repositories:
        earlier = repositories.wus_messages.earlier(
            request.sender_oin, request.message_id, request.seen_since(window)
        )
        if earlier is None:
            record(repositories, request, f"receipt-{request.received_at:%H%M}", window)
        return earlier


def record(
    repositories: Repositories,
    request: Claim,
    receipt_id: str,
    window: timedelta = WINDOW,
    answer: bytes | None = None,
) -> None:
    repositories.wus_messages.record(
        request.sender_oin,
        request.message_id,
        request.service,
        request.body_hash,
        request.received_at,
        request.seen_since(window),
        receipt_id,
        answer if answer is not None else f"<answer at {request.received_at:%H:%M}/>".encode(),
    )


def rows(database: Database) -> list[tuple[str, str, str | None]]:
    with database.transaction() as session:
        found = session.execute(
            text("SELECT sender_oin, message_id, receipt_id FROM wus_messages ORDER BY id")
        )
        return [(row[0], row[1], row[2]) for row in found]


def test_a_new_message_id_is_claimed_and_its_answer_kept(database: Database) -> None:
    assert claim(database, claim_of()) is None
    earlier = claim(database, claim_of(at=NOW + timedelta(minutes=5)))
    assert earlier is not None
    assert earlier.answer == b"<answer at 12:00/>"
    assert earlier.receipt_id == "receipt-1200"
    assert earlier.body_hash == "hash-a"
    assert earlier.received_at == NOW
    assert rows(database) == [(GEMEENTE, "urn:uuid:1", "receipt-1200")]


def test_the_same_message_id_from_another_organisation_is_its_own(database: Database) -> None:
    assert claim(database, claim_of()) is None
    assert claim(database, claim_of(sender=OTHER)) is None
    assert len(rows(database)) == 2


def test_a_message_id_used_before_the_window_is_taken_over(database: Database) -> None:
    assert claim(database, claim_of()) is None
    later = NOW + WINDOW + timedelta(seconds=1)
    assert claim(database, claim_of(body_hash="hash-b", at=later)) is None
    assert rows(database) == [(GEMEENTE, "urn:uuid:1", f"receipt-{later:%H%M}")]
    # and from then on the new use is the one a repeat is judged against
    earlier = claim(database, claim_of(at=later + timedelta(minutes=1)))
    assert earlier is not None
    assert earlier.body_hash == "hash-b"


def test_a_use_exactly_at_the_start_of_the_window_still_counts(database: Database) -> None:
    assert claim(database, claim_of()) is None
    assert claim(database, claim_of(at=NOW + WINDOW)) is not None


def test_a_rolled_back_claim_leaves_the_message_id_free(database: Database) -> None:
    class Refused(Exception):
        pass

    with pytest.raises(Refused), database.repositories() as repositories:
        request = claim_of()
        assert (
            repositories.wus_messages.earlier(
                request.sender_oin, request.message_id, request.seen_since(WINDOW)
            )
            is None
        )
        record(repositories, request, "r")
        raise Refused  # what a failure before the commit does to its transaction
    assert rows(database) == []
    assert claim(database, claim_of()) is None


def test_recording_a_claim_without_looking_the_message_id_up_is_a_bug(database: Database) -> None:
    with pytest.raises(LookupError), database.repositories() as repositories:
        record(repositories, claim_of(message_id="urn:uuid:9"), "r")


def test_the_look_up_on_sqlite_takes_no_write_lock(database: Database) -> None:
    # A request is looked up before its handler runs: on SQLite that must not begin the
    # transaction, whose BEGIN IMMEDIATE would hold every other writer up until its commit.
    with database.repositories() as repositories:
        repositories.wus_messages.earlier(GEMEENTE, "urn:uuid:1", NOW - WINDOW)
        began = repositories.wus_messages.connection.in_transaction()
    assert began is not is_sqlite(database.url)


def test_the_purge_forgets_only_message_ids_used_before_its_moment(database: Database) -> None:
    assert claim(database, claim_of(message_id="urn:uuid:old")) is None
    assert claim(database, claim_of(message_id="urn:uuid:new", at=NOW + WINDOW)) is None
    with database.repositories() as repositories:
        assert repositories.wus_messages.purge(NOW + timedelta(hours=1)) == 1
    assert [row[1] for row in rows(database)] == ["urn:uuid:new"]


def test_the_daily_purge_forgets_message_ids_past_the_configured_window(
    database: Database,
) -> None:
    assert claim(database, claim_of(message_id="urn:uuid:old", at=NOW - timedelta(hours=3))) is None
    assert claim(database, claim_of(message_id="urn:uuid:new", at=NOW - timedelta(hours=1))) is None
    assert purge_wus_messages(database, 2, NOW) == 1
    assert [row[1] for row in rows(database)] == ["urn:uuid:new"]


def wait_until_blocked(database: Database, statement: str) -> None:
    """Until the second transaction's `statement` waits for the first's lock (PostgreSQL)."""
    if is_sqlite(database.url):
        # SQLite's waiter sits in its busy handler, invisible from outside; it waits for
        # BEGIN IMMEDIATE either way, so how soon it gets there changes nothing below.
        threading.Event().wait(0.5)
        return
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND query LIKE :statement"
    )
    for _ in range(200):
        with database.engine.connect() as connection:
            if connection.execute(waiting, {"statement": f"{statement}%"}).scalar_one():
                return
        threading.Event().wait(0.05)
    raise AssertionError("the second claim never waited for the first")


@pytest.mark.parametrize("used_before_the_window", [False, True])
def test_of_two_concurrent_claims_of_one_message_id_only_the_first_is_taken(
    database: Database, used_before_the_window: bool
) -> None:
    # The first transaction holds its claim uncommitted while the second tries: a new
    # MessageID (both insert), or one last used before the window (both take the row over).
    if used_before_the_window:
        assert claim(database, claim_of(at=NOW - WINDOW - timedelta(hours=1))) is None
    first_claimed = threading.Event()
    release_first = threading.Event()
    outcomes: dict[str, object] = {}

    def first() -> None:
        with database.repositories() as repositories:
            request = claim_of()
            outcomes["first"] = repositories.wus_messages.earlier(
                request.sender_oin, request.message_id, request.seen_since(WINDOW)
            )
            record(repositories, request, "r1", answer=b"<first/>")
            first_claimed.set()
            release_first.wait(timeout=30)

    def second() -> None:
        try:
            outcomes["second"] = claim(database, claim_of(at=NOW + timedelta(seconds=1)))
        except StoreConflict as conflict:
            outcomes["second"] = conflict

    first_thread = threading.Thread(target=first)
    first_thread.start()
    assert first_claimed.wait(timeout=30)
    second_thread = threading.Thread(target=second)
    second_thread.start()
    wait_until_blocked(
        database, "UPDATE wus_messages" if used_before_the_window else "INSERT INTO wus_messages"
    )
    release_first.set()
    first_thread.join(timeout=60)
    second_thread.join(timeout=60)
    assert outcomes["first"] is None
    # Both read before either committed; the unique key refuses the second's insert, or the
    # first's newer time fails the second's take-over once the first commits.
    assert isinstance(outcomes["second"], StoreConflict)
    unique = "UNIQUE constraint failed" if is_sqlite(database.url) else "uq_wus_messages"
    expected = "tegelijk opnieuw gebruikt" if used_before_the_window else unique
    assert expected in outcomes["second"].reason
    assert rows(database) == [(GEMEENTE, "urn:uuid:1", "r1")]
    # The endpoint runs a conflicting request again: it then finds the first one's answer.
    retried = claim(database, claim_of(at=NOW + timedelta(seconds=2)))
    assert retried is not None
    assert retried.answer == b"<first/>"


# --- the migration ----------------------------------------------------------------------------

BEFORE_REPLAY = "d7e8f9a0b1c2"  # the revision before wus_messages


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own: a new SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'adapter.db'}"
        return
    with postgres_schema() as url:
        yield url


def migrate_to(database: Database, revision: str, *, down: bool = False) -> None:
    with migrate.locked_connection(database.engine) as connection:
        config = migrate.alembic_config(connection)
        (command.downgrade if down else command.upgrade)(config, revision)


def test_the_migration_adds_the_claims_table_with_its_unique_key_and_takes_it_away(
    empty_url: str,
) -> None:
    database = Database(empty_url)
    try:
        migrate_to(database, BEFORE_REPLAY)
        assert "wus_messages" not in inspect(database.engine).get_table_names()
        database.create_schema()  # what `serve` and `dk-adapter db upgrade` do
        assert migrate.current_revision(database.engine) == migrate.head_revision()
        found = inspect(database.engine)
        assert [u["column_names"] for u in found.get_unique_constraints("wus_messages")] == [
            ["sender_oin", "message_id"]
        ]
        indexes = {index["name"] for index in found.get_indexes("wus_messages")}
        assert "ix_wus_messages_received_at" in indexes
        assert claim(database, claim_of()) is None
        with pytest.raises(StoreConflict), database.transaction() as session:
            session.execute(
                text(
                    "INSERT INTO wus_messages (sender_oin, message_id, service, body_hash, "
                    "received_at) VALUES (:s, 'urn:uuid:1', 'x', 'h', :t)"
                ),
                {"s": GEMEENTE, "t": NOW},
            )
        migrate_to(database, BEFORE_REPLAY, down=True)
        assert "wus_messages" not in inspect(database.engine).get_table_names()
    finally:
        database.dispose()

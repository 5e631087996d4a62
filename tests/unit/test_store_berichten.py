"""The berichten repository's bulk insert on its own, on SQLite and on PostgreSQL (where it is
a COPY): what it stores, the defaults it fills in, and a BerichtID stored meanwhile failing
the whole transaction as a StoreConflict with nothing of it kept."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from adapter.errors import StoreConflict
from adapter.store.berichten import NewBericht, NewBijlage
from adapter.store.blobs import LocalBlobStore
from adapter.store.db import Database
from adapter.store.models import Bericht, BerichtBijlage, Bijlage
from tests.berichtverwerk_samples import minimal_pdf

GEMEENTE = "00000099000000002000"


@pytest.fixture(scope="module")
def database(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    database = Database(database_url, LocalBlobStore(tmp_path_factory.mktemp("blobs")))
    database.create_schema()
    yield database
    database.dispose()


def letter(bericht_id: str, received_at: datetime, **changes: object) -> NewBericht:
    fields: dict[str, object] = {
        "bericht_id": bericht_id,
        "batch_id": str(uuid.uuid4()),
        "leverancier_oin": GEMEENTE,
        "bsn": "999993653",
        "bericht_type": "BESLUIT",
        "onderwerp": "Uw besluit",
        "tekst": None,
        "referentie": None,
        "eind_datum_handelingstermijn": None,
        "visible_from": received_at,
        "received_at": received_at,
        "ebms_message_id": "message@test",
        **changes,
    }
    return NewBericht(**fields)  # type: ignore[arg-type]


def count(database: Database, bericht_ids: list[str]) -> int:
    with database.transaction() as session:
        return (
            session.scalar(
                select(func.count()).select_from(Bericht).where(Bericht.bericht_id.in_(bericht_ids))
            )
            or 0
        )


def test_a_batch_is_stored_with_its_moments_in_utc_and_the_default_folder(
    database: Database,
) -> None:
    amsterdam = timezone(timedelta(hours=1))
    received = datetime(2026, 12, 1, 17, 30, tzinfo=amsterdam)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    eind = datetime(2027, 1, 1, 12, 0, tzinfo=amsterdam)
    letters = [letter(i, received, eind_datum_handelingstermijn=eind, tekst="t") for i in ids]
    with database.repositories() as repositories:
        repositories.berichten.add(letters, [])
    with database.transaction() as session:
        rows = list(session.scalars(select(Bericht).where(Bericht.bericht_id.in_(ids))))
        # Compared in SQL with a bound moment: stored in the form SQLAlchemy binds (on SQLite
        # its DATETIME text, which an ISO form with "T" and an offset would not equal).
        found = session.scalars(
            select(Bericht.bericht_id).where(
                Bericht.bericht_id.in_(ids),
                Bericht.received_at == received,
                Bericht.visible_from <= received,
                Bericht.eind_datum_handelingstermijn == eind,
            )
        )
        assert sorted(found) == sorted(ids)
    assert sorted(r.bericht_id for r in rows) == sorted(ids)
    for row in rows:
        assert row.received_at == received and row.received_at.tzinfo == UTC
        assert row.eind_datum_handelingstermijn == eind
        assert (row.folder, row.tekst, row.referentie, row.opened_at) == (
            "postvak",
            "t",
            None,
            None,
        )


def test_a_content_shared_by_many_letters_is_one_bijlagen_row_and_one_link_each(
    database: Database,
) -> None:
    now = datetime.now(UTC)
    ids = [str(uuid.uuid4()) for _ in range(4)]
    content = minimal_pdf(1_000 + len(ids[0]))  # a size no other test stores
    with database.repositories() as repositories, repositories.berichten.staging() as staging:
        digest = staging.add(content)
        bijlagen = [NewBijlage(i, "algemeen", 1, "folder", digest, len(content), "2B") for i in ids]
        repositories.berichten.add([letter(i, now) for i in ids], bijlagen, staging)
    with database.transaction() as session:
        links = list(
            session.scalars(select(BerichtBijlage).where(BerichtBijlage.bericht_id.in_(ids)))
        )
        stored = session.get(Bijlage, links[0].sha256)
    assert len(links) == 4 and len({link.sha256 for link in links}) == 1
    assert stored is not None and (stored.size, stored.pdfa) == (len(content), "2B")


def test_a_bericht_id_stored_meanwhile_fails_the_transaction_as_a_store_conflict(
    database: Database,
) -> None:
    now = datetime.now(UTC)
    taken, *others = [str(uuid.uuid4()) for _ in range(3)]
    with database.repositories() as repositories:
        repositories.berichten.add([letter(taken, now)], [])
    with pytest.raises(StoreConflict), database.repositories() as repositories:
        repositories.berichten.add([letter(i, now) for i in [*others, taken]], [])
    assert count(database, others) == 0 and count(database, [taken]) == 1


def test_existing_ids_names_exactly_the_stored_ones_of_a_batch(database: Database) -> None:
    now = datetime.now(UTC)
    stored_ids = [str(uuid.uuid4()) for _ in range(3)]
    new = [str(uuid.uuid4()) for _ in range(1_500)]  # more than one statement's usual parameters
    with database.repositories() as repositories:
        repositories.berichten.add([letter(i, now) for i in stored_ids], [])
    with database.repositories() as repositories:
        found = repositories.berichten.existing_ids([*new, *stored_ids, stored_ids[0]])
        assert found == set(stored_ids)
        assert repositories.berichten.existing_ids([]) == set()


def test_on_sqlite_the_write_lock_is_taken_by_the_first_insert_after_the_files(
    database: Database,
) -> None:
    # What needs no lock comes before it: the look-ups, and the attachments' files written
    # and fsynced. So other writers wait for the inserts only, not for all of that.
    now = datetime.now(UTC)
    ids = [str(uuid.uuid4()) for _ in range(2)]
    content = minimal_pdf(2_000 + len(ids[0]))
    sqlite = database.url.startswith("sqlite")
    with database.repositories() as repositories:
        connection = repositories.berichten.connection
        assert repositories.berichten.existing_ids(ids) == set()
        assert connection.in_transaction() is not sqlite
        began_when_stored: list[bool] = []
        with repositories.berichten.staging() as staging:
            digest = staging.add(content)
            keep = staging.keep

            def watched(digests: Collection[str]) -> None:
                began_when_stored.append(connection.in_transaction())
                keep(digests)

            staging.keep = watched  # type: ignore[method-assign]
            bijlagen = [
                NewBijlage(i, "persoonlijk", 1, "brief", digest, len(content), None) for i in ids
            ]
            repositories.berichten.add([letter(i, now) for i in ids], bijlagen, staging)
        assert began_when_stored == [not sqlite]
        assert connection.in_transaction()
    assert count(database, ids) == 2

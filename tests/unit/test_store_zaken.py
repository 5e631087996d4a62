"""The Lopende Zaken rules on the zaken repository's Core statements, on SQLite and on
PostgreSQL (no server): history, current status, notifications, closed zaken, and an older
status delivered while a newer one commits."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import text

from adapter.errors import ZaakRefused
from adapter.lopende_zaken.zaken import (
    Resultaat,
    StatusMelding,
    ZaakMelding,
    status_aanleveren,
    zaak_aanleveren,
    zaak_afsluiten,
    zaken_opvragen,
)
from adapter.store.db import Database
from tests.helpers import migrated_database
from tests.unit.test_replay import wait_until_blocked

GEMEENTE = "00000099000000002000"
BSN = "999993653"
NOW = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)


def at(hour: int) -> datetime:
    return datetime(2026, 1, 20, hour, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def database(database_url: str) -> Iterator[Database]:
    with migrated_database(database_url) as database:
        yield database


def melding(identificatie: str, **extra: Any) -> ZaakMelding:
    """A zaak of GEMEENTE with its first status; `extra` replaces fields."""
    zaak = ZaakMelding(
        identificatie=identificatie,
        omschrijving="Aanvraag omgevingsvergunning",
        startdatum=date(2026, 1, 10),
        initiator_bsn=BSN,
        status=StatusMelding("Ontvangen", at(9)),
    )
    return replace(zaak, **extra)


def deliver(database: Database, identificatie: str, status: StatusMelding) -> Resultaat:
    with database.repositories() as repositories:
        return status_aanleveren(repositories.zaken, GEMEENTE, identificatie, status, NOW)


def create(database: Database, zaak: ZaakMelding) -> Resultaat:
    with database.repositories() as repositories:
        return zaak_aanleveren(repositories.zaken, GEMEENTE, zaak, NOW)


def current_and_history(database: Database, identificatie: str) -> tuple[str | None, list[str]]:
    with database.repositories() as repositories:
        [found] = [
            item
            for item in zaken_opvragen(repositories.zaken, GEMEENTE, BSN)
            if item.zaak.identificatie == identificatie
        ]
    current = found.status.omschrijving if found.status is not None else None
    return current, [status.omschrijving for status in found.historie]


def notifications(database: Database, identificatie: str) -> int:
    with database.transaction() as session:
        return int(
            session.execute(
                text(
                    "SELECT count(*) FROM notifications n "
                    "JOIN zaak_statussen s ON s.id = n.zaak_status_id "
                    "JOIN zaken z ON z.id = s.zaak_id WHERE z.identificatie = :identificatie"
                ),
                {"identificatie": identificatie},
            ).scalar_one()
        )


def test_a_new_status_becomes_current_once_and_records_one_notification(
    database: Database,
) -> None:
    assert create(database, melding("U-1")) == Resultaat.AANGEMAAKT
    newer = StatusMelding("In behandeling", at(10), code="B")
    assert deliver(database, "U-1", newer) == Resultaat.STATUS_TOEGEVOEGD
    assert deliver(database, "U-1", newer) == Resultaat.STATUS_AL_BEKEND
    assert current_and_history(database, "U-1") == (
        "In behandeling",
        ["Ontvangen", "In behandeling"],
    )
    assert notifications(database, "U-1") == 2


def test_an_older_status_is_kept_in_the_history_but_does_not_become_current(
    database: Database,
) -> None:
    create(database, melding("U-2", status=StatusMelding("Besluit", at(15))))
    assert deliver(database, "U-2", StatusMelding("Ontvangen", at(9))) == Resultaat.STATUS_OUDER
    assert current_and_history(database, "U-2") == ("Besluit", ["Besluit", "Ontvangen"])
    assert notifications(database, "U-2") == 1


def test_an_update_keeps_the_stored_resultaat_and_a_closing_delivery_applies_its_status_first(
    database: Database,
) -> None:
    create(database, melding("U-3", resultaat="Voorlopig"))
    closing = melding(
        "U-3", einddatum=date(2026, 1, 31), status=StatusMelding("Afgehandeld", at(16))
    )
    assert create(database, closing) == Resultaat.AFGESLOTEN
    with database.repositories() as repositories:
        [zaak] = [
            item.zaak
            for item in zaken_opvragen(repositories.zaken, GEMEENTE, BSN)
            if item.zaak.identificatie == "U-3"
        ]
    assert (zaak.resultaat, zaak.einddatum) == ("Voorlopig", date(2026, 1, 31))
    assert current_and_history(database, "U-3")[0] == "Afgehandeld"
    assert notifications(database, "U-3") == 2


def test_a_closed_zaak_takes_only_a_status_it_holds_and_the_same_closing_again(
    database: Database,
) -> None:
    create(database, melding("U-4"))
    with database.repositories() as repositories:
        closed = zaak_afsluiten(repositories.zaken, GEMEENTE, "U-4", date(2026, 1, 31), None, NOW)
    assert closed == Resultaat.AFGESLOTEN
    assert deliver(database, "U-4", StatusMelding("Ontvangen", at(9))) == Resultaat.STATUS_AL_BEKEND
    with pytest.raises(ZaakRefused) as refused:
        deliver(database, "U-4", StatusMelding("Heropend", at(11)))
    assert refused.value.code == "LZ005"
    assert refused.value.message == "zaak U-4 is afgesloten op 2026-01-31"
    with pytest.raises(ZaakRefused) as refused_again:
        create(database, melding("U-4", status=StatusMelding("Heropend", at(11))))
    assert refused_again.value.code == "LZ005"
    assert current_and_history(database, "U-4") == ("Ontvangen", ["Ontvangen"])


def test_another_organisations_zaak_is_unknown(database: Database) -> None:
    create(database, melding("U-5"))
    with database.repositories() as repositories, pytest.raises(ZaakRefused) as refused:
        status_aanleveren(
            repositories.zaken, "00000099000000001000", "U-5", StatusMelding("X", at(10)), NOW
        )
    assert refused.value.code == "LZ004"


def test_an_older_status_delivered_while_a_newer_one_commits_does_not_become_current(
    database: Database,
) -> None:
    # The first transaction makes a newer status current and holds the zaak until released;
    # the second, with an older status, must see that status once it gets the zaak.
    create(database, melding("U-6"))
    first_done = threading.Event()
    release_first = threading.Event()
    outcomes: dict[str, Resultaat] = {}

    def first() -> None:
        with database.repositories() as repositories:
            outcomes["first"] = status_aanleveren(
                repositories.zaken, GEMEENTE, "U-6", StatusMelding("Besluit", at(15)), NOW
            )
            first_done.set()
            release_first.wait(timeout=30)

    def second() -> None:
        outcomes["second"] = deliver(database, "U-6", StatusMelding("In behandeling", at(12)))

    first_thread = threading.Thread(target=first)
    first_thread.start()
    assert first_done.wait(timeout=30)
    second_thread = threading.Thread(target=second)
    second_thread.start()
    wait_until_blocked(database, "SELECT zaken.id")
    release_first.set()
    first_thread.join(timeout=60)
    second_thread.join(timeout=60)
    assert outcomes == {"first": Resultaat.STATUS_TOEGEVOEGD, "second": Resultaat.STATUS_OUDER}
    assert current_and_history(database, "U-6") == (
        "Besluit",
        ["Ontvangen", "Besluit", "In behandeling"],
    )
    assert notifications(database, "U-6") == 2

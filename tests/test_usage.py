"""`dk-adapter usage`: counts per OIN and month, free units, amounts, table and CSV."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from adapter.config import Config, UsageConfig, load_config
from adapter.store.db import Database
from adapter.store.models import Bericht, StoredReceipt, Zaak, ZaakStatus
from adapter.usage import UsageLine, add_commands, monthly_usage, parse_month
from tests.conftest import BELASTINGDIENST, GEMEENTE, STRIKT, Pki, free_port, write_config

GONE = "00000099000000007000"  # delivered in January, since removed from organisations.toml
JANUARY = date(2026, 1, 1)
FIRST = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)  # the first moment of January (UTC)
LAST = datetime(2026, 1, 31, 23, 59, 59, 999000, tzinfo=UTC)  # the last millisecond of it
NEXT = datetime(2026, 2, 1, 0, 0, tzinfo=UTC)  # February already
BEFORE = datetime(2025, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)  # still December
MID = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def _letters(oin: str, moments: list[datetime]) -> list[Bericht]:
    return [
        Bericht(
            bericht_id=str(uuid.uuid4()),
            batch_id="batch",
            leverancier_oin=oin,
            bsn="999993653",
            bericht_type="BESLUIT",
            onderwerp="Besluit",
            visible_from=moment,
            received_at=moment,
            ebms_message_id=f"m-{n}@test",
        )
        for n, moment in enumerate(moments)
    ]


def _receipt(oin: str, moment: datetime, service: str, outcome: str) -> StoredReceipt:
    return StoredReceipt(
        receipt_id=str(uuid.uuid4()),
        request_id="r",
        sender_oin=oin,
        receiver_oin="00000004003214345001",
        received_at=moment,
        service=service,
        operation=service,
        outcome=outcome,
        xml="<Afleverbevestiging/>",
    )


def _zaak_with_statuses(
    database: Database, oin: str, identificatie: str, moments: list[datetime]
) -> None:
    with database.transaction() as session:
        zaak = Zaak(
            oin=oin,
            identificatie=identificatie,
            omschrijving="Bezwaar",
            startdatum=date(2025, 12, 1),
            initiator_bsn="999993653",
            created_at=BEFORE,
            updated_at=BEFORE,
        )
        session.add(zaak)
        session.flush()
        session.add_all(
            ZaakStatus(
                zaak_id=zaak.id,
                omschrijving="In behandeling",
                datum_status_gezet=moment,
                received_at=moment,
            )
            for moment in moments
        )


def _spread(count: int) -> list[datetime]:
    """`count` moments inside January, away from its edges."""
    return [MID + timedelta(seconds=n) for n in range(count)]


@pytest.fixture(scope="module")
def database(database_url: str) -> Iterator[Database]:
    """January 2026 (UTC), with rows on either side of both of its edges.

    Gemeente: 1150 letters and 50 status updates (two zaken) in January, so 1200 units;
    Belastingdienst: 3 letters and 4 accepted ValidateAbonnementen; Strikt: nothing;
    GONE (not configured): 7 letters and 1 status update.
    """
    database = Database(database_url)
    database.create_schema()
    with database.transaction() as session:
        session.add_all(_letters(GEMEENTE, [BEFORE, FIRST, LAST, NEXT, *_spread(1148)]))
        session.add_all(_letters(BELASTINGDIENST, _spread(3)))
        session.add_all(_letters(GONE, _spread(7)))
        session.add_all(
            [
                _receipt(BELASTINGDIENST, moment, "ValidateAbonnementen", "Geaccepteerd")
                for moment in (BEFORE, FIRST, MID, LAST, NEXT, MID + timedelta(seconds=1))
            ]
        )
        # Neither refused requests nor other services count as ValidateAbonnementen.
        session.add(_receipt(BELASTINGDIENST, MID, "ValidateAbonnementen", "Geweigerd"))
        session.add(_receipt(GEMEENTE, MID, "LopendeZaken", "Geaccepteerd"))
        session.add(_receipt(GEMEENTE, MID, "BerichtVerwerk", "Berichten"))
    _zaak_with_statuses(database, GEMEENTE, "Z-1", [BEFORE, FIRST, *_spread(29)])
    _zaak_with_statuses(database, GEMEENTE, "Z-2", [LAST, NEXT, *_spread(19)])
    _zaak_with_statuses(database, GONE, "Z-3", [MID])
    yield database
    database.dispose()


@pytest.fixture(scope="module")
def config(pki: Pki, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    file = write_config(tmp_path_factory.mktemp("usage"), pki, database_url, free_port())
    with file.open("a", encoding="utf-8") as out:
        out.write("[usage]\nfree_units = 1000\nprice_per_unit_cents = 0.35\n")
    return file


@pytest.fixture(scope="module")
def loaded(config: Path) -> Config:
    return load_config(config, environ={})  # the test's database, whatever DATABASE_URL says


def usage(
    database: Database, config: Config, month: date, free: int = 1000, cents: float = 0.5
) -> dict[str, UsageLine]:
    with database.transaction() as session:
        lines = monthly_usage(session, month, config.organisations, UsageConfig(free, cents))
    return {line.oin: line for line in lines}


def test_counts_per_oin_stay_inside_the_utc_month(database: Database, loaded: Config) -> None:
    lines = usage(database, loaded, JANUARY)
    assert list(lines) == [BELASTINGDIENST, GEMEENTE, STRIKT, GONE]
    counts = {
        oin: (line.letters, line.status_updates, line.validate_requests)
        for oin, line in lines.items()
    }
    assert counts == {
        BELASTINGDIENST: (3, 0, 4),
        GEMEENTE: (1150, 50, 0),
        STRIKT: (0, 0, 0),
        GONE: (7, 1, 0),
    }
    # The rows just outside January land in the months around it (December crosses the year).
    assert {
        oin: (line.letters, line.status_updates, line.validate_requests)
        for oin, line in usage(database, loaded, date(2026, 2, 1)).items()
    } == {BELASTINGDIENST: (0, 0, 1), GEMEENTE: (1, 1, 0), STRIKT: (0, 0, 0)}
    assert {
        oin: (line.letters, line.status_updates, line.validate_requests)
        for oin, line in usage(database, loaded, date(2025, 12, 31)).items()
    } == {BELASTINGDIENST: (0, 0, 1), GEMEENTE: (1, 1, 0), STRIKT: (0, 0, 0)}


def test_units_above_the_free_ones_are_billed(database: Database, loaded: Config) -> None:
    lines = usage(database, loaded, JANUARY, free=1000, cents=0.5)
    gemeente = lines[GEMEENTE]
    assert (gemeente.units, gemeente.free_units, gemeente.billable_units) == (1200, 1000, 200)
    assert gemeente.amount == Decimal("1.00")
    assert gemeente.logins is None  # not counted: the adapter never sees citizen logins
    assert (lines[BELASTINGDIENST].billable_units, lines[BELASTINGDIENST].amount) == (
        0,
        Decimal("0.00"),
    )
    assert (lines[STRIKT].units, lines[STRIKT].amount) == (0, Decimal("0.00"))


def test_unconfigured_oin_is_reported_and_marked(database: Database, loaded: Config) -> None:
    gone = usage(database, loaded, JANUARY, free=5, cents=10)[GONE]
    assert not gone.configured and gone.name is None
    assert (gone.units, gone.billable_units, gone.amount) == (8, 3, Decimal("0.30"))
    assert usage(database, loaded, JANUARY)[GEMEENTE].configured


@pytest.mark.parametrize(
    ("free", "cents", "amount"),
    [
        (1199, 0.5, Decimal("0.01")),  # 0.005 euro: half-up, not to the even 0.00
        (
            1190,
            0.35,
            Decimal("0.04"),
        ),  # 3.5 cents, though the float 0.35 is 0.3499...
        (1197, 0.125, Decimal("0.00")),  # 0.375 cents
        (0, 1.005, Decimal("12.06")),  # 1206 cents
        (1199, 0, Decimal("0.00")),
    ],
)
def test_amounts_round_half_up_to_cents(
    database: Database, loaded: Config, free: int, cents: float, amount: Decimal
) -> None:
    assert usage(database, loaded, JANUARY, free=free, cents=cents)[GEMEENTE].amount == amount


def run(config: Path, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="dk-adapter")
    parser.add_argument("--config")
    add_commands(parser.add_subparsers(dest="command", required=True), _load)
    args = parser.parse_args(["--config", str(config), *argv])
    result: int = args.func(args)
    return result


def _load(args: argparse.Namespace) -> Config:
    return load_config(args.config, environ={})


# The report exactly as printed: the lines are wider than the code.
TABLE = """\
Usage 2026-01 (2026-01-01 00:00 to 2026-02-01 00:00 UTC): 1000 units free per organisation, then 0.35 cents per unit

OIN                   Organisation             Letters  Status updates  ValidateAbonnementen  Logins  Units  Free  Billable  Amount EUR
--------------------  -----------------------  -------  --------------  --------------------  ------  -----  ----  --------  ----------
00000099000000001000  Belastingdienst (test)         3               0                     4  n.v.t.      3  1000         0        0.00
00000099000000002000  Gemeente Voorbeeldstad      1150              50                     0  n.v.t.   1200  1000       200        0.70
00000099000000003000  Gemeente Strikt (2W-be)        0               0                     0  n.v.t.      0  1000         0        0.00
00000099000000007000  * not configured               7               1                     0  n.v.t.      8  1000         0        0.00
--------------------  -----------------------  -------  --------------  --------------------  ------  -----  ----  --------  ----------
Total                                             1160              51                     4  n.v.t.   1211             200        0.70

Units are letters delivered plus status updates stored.
Logins: n.v.t., the adapter does not see citizen logins.
* not configured: the OIN is no longer in the organisations file.
"""  # noqa: E501

CSV = """\
month,oin,name,configured,letters,status_updates,validate_abonnementen,logins,units,\
free_units,billable_units,price_per_unit_cents,amount_eur
2026-01,00000099000000001000,Belastingdienst (test),true,3,0,4,n.v.t.,3,1000,0,0.35,0.00
2026-01,00000099000000002000,Gemeente Voorbeeldstad,true,1150,50,0,n.v.t.,1200,1000,200,0.35,0.70
2026-01,00000099000000003000,Gemeente Strikt (2W-be),true,0,0,0,n.v.t.,0,1000,0,0.35,0.00
2026-01,00000099000000007000,,false,7,1,0,n.v.t.,8,1000,0,0.35,0.00
"""


def test_usage_command_prints_the_table(
    database: Database, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(config, "usage", "--month", "2026-01") == 0
    assert capsys.readouterr().out == TABLE


def test_usage_command_writes_the_csv(
    database: Database, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "usage-2026-01.csv"
    assert run(config, "usage", "--month", "2026-01", "--csv", str(target)) == 0
    assert capsys.readouterr().out == TABLE + f"CSV written to {target}\n"
    assert target.read_bytes().decode("utf-8") == CSV


def test_a_month_without_use_lists_every_organisation_with_zeros(
    database: Database, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "empty.csv"
    assert run(config, "usage", "--month", "2030-06", "--csv", str(target)) == 0
    out = capsys.readouterr().out
    assert "not configured" not in out
    assert target.read_text(encoding="utf-8").splitlines()[1:] == [
        f"2030-06,{oin},{name},true,0,0,0,n.v.t.,0,1000,0,0.35,0.00"
        for oin, name in (
            (BELASTINGDIENST, "Belastingdienst (test)"),
            (GEMEENTE, "Gemeente Voorbeeldstad"),
            (STRIKT, "Gemeente Strikt (2W-be)"),
        )
    ]


@pytest.mark.parametrize("value", ["2026-13", "2026-00", "2026-1", "26-01", "januari", "0000-01"])
def test_a_bad_month_is_refused_with_the_expected_format(
    config: Path, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        run(config, "usage", "--month", value)
    assert exited.value.code == 2
    assert f"argument --month: {value!r} is not a month YYYY-MM" in capsys.readouterr().err


def test_the_month_is_required(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run(config, "usage")
    assert "--month" in capsys.readouterr().err


def test_parse_month() -> None:
    assert parse_month("2026-12") == date(2026, 12, 1)


def test_a_database_without_the_tables_is_an_error_not_a_traceback(
    pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, pki, f"sqlite:///{tmp_path / 'empty.db'}", free_port())
    assert run(config, "usage", "--month", "2026-01") == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: database: no such table")

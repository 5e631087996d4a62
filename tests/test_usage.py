"""`dk-adapter usage`: letters charged, free units per calendar year, the tariff by year.

Counts per OIN and month and for the year to date; status updates and ValidateAbonnementen
calls reported, not charged; amounts in Decimal; the table and the CSV as printed.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from adapter.cli.usage import register
from adapter.config import PUBLISHED_TARIFF, Config, ConfigError, UsageConfig, load_config
from adapter.store.db import Database
from adapter.store.models import Bericht, StoredReceipt, Zaak, ZaakStatus
from adapter.store.usage import Usage
from adapter.usage import (
    NoTariff,
    Period,
    UsageReport,
    monthly_usage,
    parse_month,
    tariff_for,
)
from tests.conftest import BELASTINGDIENST, GEMEENTE, STRIKT, Pki, free_port, write_config

GONE = "00000099000000007000"  # delivered in January, since removed from organisations.toml
JANUARY = date(2026, 1, 1)
FIRST = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)  # the first moment of January (UTC)
LAST = datetime(2026, 1, 31, 23, 59, 59, 999000, tzinfo=UTC)  # the last millisecond of it
NEXT = datetime(2026, 2, 1, 0, 0, tzinfo=UTC)  # February already
BEFORE = datetime(2025, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)  # still December
MID = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
FEBRUARY = date(2026, 2, 1)
# Belastingdienst's letters around and in 2021, a year the tariff table has no entry for.
END_OF_2020 = datetime(2020, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
START_OF_2021 = datetime(2021, 1, 1, 0, 0, tzinfo=UTC)
DECEMBER_2020 = datetime(2020, 12, 15, 9, 0, tzinfo=UTC)
MARCH_2021 = datetime(2021, 3, 10, 9, 0, tzinfo=UTC)
APRIL_2021 = datetime(2021, 4, 20, 9, 0, tzinfo=UTC)
TARIFF_TOML = """\
[usage]
free_units = 1000
[usage.tariff]
2018 = 0.454
2019 = 0.44
2020 = 0.40
2022 = 0.32
"""


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


def _spread(count: int, around: datetime = MID) -> list[datetime]:
    """`count` moments, a second apart, from `around` (by default inside January 2026)."""
    return [around + timedelta(seconds=n) for n in range(count)]


@pytest.fixture(scope="module")
def database(database_url: str) -> Iterator[Database]:
    """January and February 2026 (UTC), with rows on either side of both edges of January.

    Gemeente: 1150 letters and 50 status updates (two zaken) in January, one letter and one
    status update on 1 February; Belastingdienst: 3 letters and 4 accepted ValidateAbonnementen
    in January, one more ValidateAbonnementen on 1 February; Strikt: nothing; GONE (not
    configured): 7 letters and 1 status update in January.

    Belastingdienst also has 901 letters in December 2020 (the last at its last millisecond)
    and, in 2021, 1 letter at its first moment, 600 in March and 600 in April.
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
        session.add_all(
            _letters(
                BELASTINGDIENST,
                [
                    *_spread(900, DECEMBER_2020),
                    END_OF_2020,
                    START_OF_2021,
                    *_spread(600, MARCH_2021),
                    *_spread(600, APRIL_2021),
                ],
            )
        )
    _zaak_with_statuses(database, GEMEENTE, "Z-1", [BEFORE, FIRST, *_spread(29)])
    _zaak_with_statuses(database, GEMEENTE, "Z-2", [LAST, NEXT, *_spread(19)])
    _zaak_with_statuses(database, GONE, "Z-3", [MID])
    yield database
    database.dispose()


@pytest.fixture(scope="module")
def config(pki: Pki, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    file = write_config(tmp_path_factory.mktemp("usage"), pki, database_url, free_port())
    with file.open("a", encoding="utf-8") as out:
        out.write(TARIFF_TOML)
    return file


@pytest.fixture(scope="module")
def loaded(config: Path) -> Config:
    return load_config(config, environ={})  # the test's database, whatever DATABASE_URL says


def tariff(**prices: str) -> dict[int, Decimal]:
    """A tariff table from keyword years: tariff(y2022="0.32")."""
    return {int(year.lstrip("y")): Decimal(price) for year, price in prices.items()}


def report(
    database: Database,
    config: Config,
    month: date,
    free: int = 1000,
    prices: dict[int, Decimal] | None = None,
) -> UsageReport:
    usage_config = UsageConfig(free, PUBLISHED_TARIFF if prices is None else prices)
    with database.transaction() as session:
        return monthly_usage(Usage(session), month, config.organisations, usage_config)


def month_counts(result: UsageReport) -> dict[str, tuple[int, int, int]]:
    return {
        line.oin: (line.month.units, line.month.status_updates, line.month.validate_requests)
        for line in result.lines
    }


Charge = tuple[int, int, int, Decimal]  # units, free, billable, amount


def charge(period: Period) -> Charge:
    return (period.units, period.free_units, period.billable_units, period.amount)


def charges(result: UsageReport, oin: str) -> tuple[Charge, Charge]:
    """The charge of the month and of the year to date."""
    line = result.line(oin)
    return charge(line.month), charge(line.year_to_date)


# --- what is counted ------------------------------------------------------------------------


def test_counts_per_oin_stay_inside_the_utc_month(database: Database, loaded: Config) -> None:
    january = report(database, loaded, JANUARY)
    assert [line.oin for line in january.lines] == [BELASTINGDIENST, GEMEENTE, STRIKT, GONE]
    assert month_counts(january) == {
        BELASTINGDIENST: (3, 0, 4),
        GEMEENTE: (1150, 50, 0),
        STRIKT: (0, 0, 0),
        GONE: (7, 1, 0),
    }
    # The rows just outside January land in the months around it (December crosses the year).
    february = report(database, loaded, FEBRUARY)
    assert month_counts(february) == {
        BELASTINGDIENST: (0, 0, 1),
        GEMEENTE: (1, 1, 0),
        STRIKT: (0, 0, 0),
        GONE: (0, 0, 0),  # listed: it delivered earlier in the year
    }
    assert month_counts(report(database, loaded, date(2025, 12, 31))) == {
        BELASTINGDIENST: (0, 0, 1),
        GEMEENTE: (1, 1, 0),
        STRIKT: (0, 0, 0),
    }


def test_only_letters_are_units_and_the_first_thousand_of_the_year_are_free(
    database: Database, loaded: Config
) -> None:
    january = report(database, loaded, JANUARY)
    # 1150 letters and 50 status updates: 1150 units, of which 1000 free, at 2022's EUR 0.32.
    assert charges(january, GEMEENTE) == (
        (1150, 1000, 150, Decimal("48.00")),
        (1150, 1000, 150, Decimal("48.00")),
    )
    assert january.line(GEMEENTE).month.logins is None  # not counted: never seen here
    assert charges(january, BELASTINGDIENST)[0] == (3, 3, 0, Decimal("0.00"))
    assert charges(january, STRIKT)[0] == (0, 0, 0, Decimal("0.00"))


def test_status_updates_and_validations_are_reported_but_not_billed(
    database: Database, loaded: Config
) -> None:
    january = report(database, loaded, JANUARY, free=0, prices=tariff(y2026="1"))
    gemeente, belastingdienst = january.line(GEMEENTE), january.line(BELASTINGDIENST)
    assert (gemeente.month.status_updates, gemeente.month.billable_units) == (50, 1150)
    assert gemeente.month.amount == Decimal("1150.00")  # not 1200: the 50 statuses are free
    assert (belastingdienst.month.validate_requests, belastingdienst.month.billable_units) == (4, 3)
    assert belastingdienst.month.amount == Decimal("3.00")  # the 4 validations cost nothing
    gone = january.line(GONE)
    assert (gone.month.units, gone.month.status_updates, gone.month.amount) == (
        7,
        1,
        Decimal("7.00"),
    )


# --- free units per calendar year -----------------------------------------------------------


def test_letters_after_the_free_ones_were_used_up_are_all_billable(
    database: Database, loaded: Config
) -> None:
    # January took Gemeente's 1000 free letters: February's one letter is billable, and the
    # year to date holds both months.
    assert charges(report(database, loaded, FEBRUARY), GEMEENTE) == (
        (1, 0, 1, Decimal("0.32")),
        (1151, 1000, 151, Decimal("48.32")),
    )


def test_the_free_units_of_a_year_cross_month_boundaries(
    database: Database, loaded: Config
) -> None:
    # 2021: 1 letter on 1 January, 600 in March, 600 in April; priced at 2020's EUR 0.40.
    def at(month: date) -> tuple[Charge, Charge]:
        return charges(report(database, loaded, month), BELASTINGDIENST)

    assert at(date(2021, 1, 1)) == ((1, 1, 0, Decimal("0.00")), (1, 1, 0, Decimal("0.00")))
    assert at(date(2021, 2, 1)) == ((0, 0, 0, Decimal("0.00")), (1, 1, 0, Decimal("0.00")))
    assert at(date(2021, 3, 1)) == ((600, 600, 0, Decimal("0.00")), (601, 601, 0, Decimal("0.00")))
    # 399 free units were left for April: 201 of its 600 letters are billable.
    assert at(date(2021, 4, 1)) == (
        (600, 399, 201, Decimal("80.40")),
        (1201, 1000, 201, Decimal("80.40")),
    )
    assert at(date(2021, 5, 1)) == ((0, 0, 0, Decimal("0.00")), (1201, 1000, 201, Decimal("80.40")))


def test_the_free_units_start_afresh_on_the_first_of_january(
    database: Database, loaded: Config
) -> None:
    # December 2020's 901 letters are 2020's: within its allowance, and none of 2021's.
    assert charges(report(database, loaded, date(2020, 12, 1)), BELASTINGDIENST) == (
        (901, 901, 0, Decimal("0.00")),
        (901, 901, 0, Decimal("0.00")),
    )
    assert charges(report(database, loaded, date(2021, 1, 1)), BELASTINGDIENST)[1][:3] == (1, 1, 0)


def test_unconfigured_oin_is_reported_and_marked(database: Database, loaded: Config) -> None:
    gone = report(database, loaded, JANUARY, free=5, prices=tariff(y2026="0.10")).line(GONE)
    assert not gone.configured and gone.name is None
    assert (gone.month.units, gone.month.billable_units, gone.month.amount) == (
        7,
        2,
        Decimal("0.20"),
    )
    assert report(database, loaded, JANUARY).line(GEMEENTE).configured


# --- the tariff -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("year", "applying", "price"),
    [
        (2018, 2018, "0.454"),
        (2019, 2019, "0.44"),
        (2020, 2020, "0.40"),
        (2021, 2020, "0.40"),  # no entry for 2021: 2020's price goes on
        (2022, 2022, "0.32"),
        (2026, 2022, "0.32"),  # the most recent year applies to every later one
    ],
)
def test_the_most_recent_tariff_year_at_or_before_the_month_applies(
    loaded: Config, year: int, applying: int, price: str
) -> None:
    found = tariff_for(year, loaded.usage)
    assert (found.year, found.price) == (applying, Decimal(price))


def test_a_month_before_the_tariff_table_has_no_price(database: Database, loaded: Config) -> None:
    with pytest.raises(NoTariff) as raised:
        report(database, loaded, date(2017, 12, 1))
    assert str(raised.value) == "usage.tariff has no price for 2017: it starts in 2018"


def test_a_month_in_a_priced_year_is_charged_at_that_year_s_price(
    database: Database, loaded: Config
) -> None:
    prices = tariff(y2020="0.40", y2026="0.50")
    assert report(database, loaded, JANUARY, prices=prices).line(GEMEENTE).month.amount == (
        Decimal("75.00")  # 150 x 0.50, not 2020's price
    )


@pytest.mark.parametrize(
    ("free", "price", "amount"),
    [
        (1149, "0.005", Decimal("0.01")),  # half a cent: half-up, not to the even 0.00
        (1140, "0.0035", Decimal("0.04")),  # 3.5 cents, though the float 0.0035 is 0.00349...
        (1147, "0.00125", Decimal("0.00")),  # 0.375 cents
        (0, "1.005", Decimal("1155.75")),
        (1149, "0", Decimal("0.00")),
    ],
)
def test_amounts_round_half_up_to_cents(
    database: Database, loaded: Config, free: int, price: str, amount: Decimal
) -> None:
    january = report(database, loaded, JANUARY, free=free, prices=tariff(y2026=price))
    assert january.line(GEMEENTE).month.amount == amount


# --- the configuration ----------------------------------------------------------------------


def _usage_config(pki: Pki, tmp_path: Path, section: str) -> UsageConfig:
    file = write_config(tmp_path, pki, f"sqlite:///{tmp_path / 'adapter.db'}", free_port())
    with file.open("a", encoding="utf-8") as out:
        out.write(section)
    return load_config(file, environ={}).usage


def test_the_tariff_is_read_as_written_in_the_file(pki: Pki, tmp_path: Path) -> None:
    usage = _usage_config(pki, tmp_path, "[usage.tariff]\n2022 = 0.32\n2019 = 0.0035\n2030 = 1\n")
    assert usage.tariff == {2019: Decimal("0.0035"), 2022: Decimal("0.32"), 2030: Decimal("1")}
    assert list(usage.tariff) == [2019, 2022, 2030]
    assert usage.free_units == 1000


def test_without_a_tariff_table_the_published_tariff_applies(pki: Pki, tmp_path: Path) -> None:
    assert _usage_config(pki, tmp_path, "").tariff == {
        2018: Decimal("0.454"),
        2019: Decimal("0.44"),
        2020: Decimal("0.40"),
        2022: Decimal("0.32"),
    }


@pytest.mark.parametrize(
    ("section", "key", "reason"),
    [
        ("[usage.tariff]\n", "usage.tariff", "must give the price of at least one year"),
        ("[usage.tariff]\n22 = 0.32\n", "usage.tariff.22", "must be a year, such as 2022"),
        ("[usage.tariff]\n2022 = -0.32\n", "usage.tariff.2022", "must be 0 or more"),
        ("[usage.tariff]\n2022 = nan\n", "usage.tariff.2022", "must be 0 or more"),
        (
            '[usage.tariff]\n2022 = "0.32"\n',
            "usage.tariff.2022",
            "must be a price in euro, not '0.32'",
        ),
        (
            "[usage]\nprice_per_unit_cents = 1.5\n",
            "usage.price_per_unit_cents",
            "replaced by [usage.tariff]: euro per letter by year, e.g. 2022 = 0.32",
        ),
    ],
)
def test_a_bad_tariff_names_the_key_and_the_reason(
    pki: Pki, tmp_path: Path, section: str, key: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        _usage_config(pki, tmp_path, section)
    assert (raised.value.key, raised.value.reason) == (key, reason)


# --- the command ----------------------------------------------------------------------------


def run(config: Path, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="dk-adapter")
    parser.add_argument("--config")
    register(parser.add_subparsers(dest="command", required=True), _load)
    args = parser.parse_args(["--config", str(config), *argv])
    result: int = args.func(args)
    return result


def _load(args: argparse.Namespace) -> Config:
    return load_config(args.config, environ={})


# The report exactly as printed: the lines are wider than the code.
TABLE = """\
Usage 2026-02 (2026-02-01 00:00 to 2026-03-01 00:00 UTC)
Tariff: EUR 0.32 per unit excl. VAT (usage.tariff 2022); 1000 units free per organisation per calendar year

Month 2026-02
OIN                   Organisation             Status updates  ValidateAbonnementen  Logins  Units  Free  Billable  Amount EUR
--------------------  -----------------------  --------------  --------------------  ------  -----  ----  --------  ----------
00000099000000001000  Belastingdienst (test)                0                     1  n.v.t.      0     0         0        0.00
00000099000000002000  Gemeente Voorbeeldstad                1                     0  n.v.t.      1     0         1        0.32
00000099000000003000  Gemeente Strikt (2W-be)               0                     0  n.v.t.      0     0         0        0.00
00000099000000007000  * not configured                      0                     0  n.v.t.      0     0         0        0.00
--------------------  -----------------------  --------------  --------------------  ------  -----  ----  --------  ----------
Total                                                       1                     1  n.v.t.      1     0         1        0.32

Year to date (2026-01-01 00:00 to 2026-03-01 00:00 UTC)
OIN                   Organisation             Status updates  ValidateAbonnementen  Logins  Units  Free  Billable  Amount EUR
--------------------  -----------------------  --------------  --------------------  ------  -----  ----  --------  ----------
00000099000000001000  Belastingdienst (test)                0                     5  n.v.t.      3     3         0        0.00
00000099000000002000  Gemeente Voorbeeldstad               51                     0  n.v.t.   1151  1000       151       48.32
00000099000000003000  Gemeente Strikt (2W-be)               0                     0  n.v.t.      0     0         0        0.00
00000099000000007000  * not configured                      1                     0  n.v.t.      7     7         0        0.00
--------------------  -----------------------  --------------  --------------------  ------  -----  ----  --------  ----------
Total                                                      52                     5  n.v.t.   1161  1010       151       48.32

Units are Berichtenbox letters accepted (Verwerkt). Free: those among the organisation's first 1000 of the calendar year.
Status updates and ValidateAbonnementen calls are reported, not charged.
Logins: n.v.t., the adapter does not see citizen logins.
* not configured: the OIN is no longer in the organisations file.
"""  # noqa: E501

CSV = """\
month,oin,name,configured,status_updates,validate_abonnementen,logins,units,free_units,\
billable_units,amount_eur,ytd_status_updates,ytd_validate_abonnementen,ytd_units,\
ytd_free_units,ytd_billable_units,ytd_amount_eur,tariff_year,price_per_unit_eur
2026-02,00000099000000001000,Belastingdienst (test),true,0,1,n.v.t.,0,0,0,0.00,0,5,3,3,0,0.00,2022,0.32
2026-02,00000099000000002000,Gemeente Voorbeeldstad,true,1,0,n.v.t.,1,0,1,0.32,51,0,1151,1000,151,48.32,2022,0.32
2026-02,00000099000000003000,Gemeente Strikt (2W-be),true,0,0,n.v.t.,0,0,0,0.00,0,0,0,0,0,0.00,2022,0.32
2026-02,00000099000000007000,,false,0,0,n.v.t.,0,0,0,0.00,1,0,7,7,0,0.00,2022,0.32
"""  # noqa: E501


def test_usage_command_prints_the_month_and_the_year_to_date(
    database: Database, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(config, "usage", "--month", "2026-02") == 0
    assert capsys.readouterr().out == TABLE


def test_usage_command_writes_the_csv(
    database: Database, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "usage-2026-02.csv"
    assert run(config, "usage", "--month", "2026-02", "--csv", str(target)) == 0
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
        f"2030-06,{oin},{name},true,0,0,n.v.t.,0,0,0,0.00,0,0,0,0,0,0.00,2022,0.32"
        for oin, name in (
            (BELASTINGDIENST, "Belastingdienst (test)"),
            (GEMEENTE, "Gemeente Voorbeeldstad"),
            (STRIKT, "Gemeente Strikt (2W-be)"),
        )
    ]


def test_a_month_before_the_tariff_table_is_an_error_not_a_report(
    database: Database, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(config, "usage", "--month", "2017-12") == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"error: usage.tariff has no price for 2017: it starts in 2018 (in {config})\n"
    )


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
    with pytest.raises(ValueError, match="is not a month YYYY-MM"):
        parse_month("2026-13")


def test_a_database_without_the_tables_is_an_error_not_a_traceback(
    pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, pki, f"sqlite:///{tmp_path / 'empty.db'}", free_port())
    assert run(config, "usage", "--month", "2026-01") == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    # One line naming the database's own complaint (the store words it: StoreUnavailable).
    assert captured.err.startswith("error: database: ")
    assert "no such table" in captured.err
    assert captured.err.count("\n") == 1

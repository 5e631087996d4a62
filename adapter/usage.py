"""The usage report: what each organisation used in a month and in its year so far, and the cost.

It follows the product's tariff model (p x q since 2018, settled per calendar year):

* **A unit is one Berichtenbox letter accepted** (verwerkingscode `Verwerkt`), counted for
  the organisation it was delivered for; see adapter/store/usage.py for what each count
  reads. Lopende Zaken status updates and ValidateAbonnementen calls are reported beside the
  units but not charged: Lopende Zaken is free for now, and a ValidateAbonnementen call is
  the check before a letter, which would otherwise be charged twice.
* **DigiD logins** are units in the product's model too, but citizens log in to MijnOverheid,
  never to this adapter, so it has nothing to count: the report says "n.v.t.".
* **Free units**: the first `usage.free_units` units (1,000) of every calendar year are free
  for every organisation (also for OINs no longer configured), wherever in the year they
  fall. A month's free units are those of its units that still fit in the year's allowance
  after the units of the months before it; the rest are billable. The year to date runs from
  1 January up to the end of the month and adds up the same way.
* **The tariff** is `usage.tariff`, euro per unit excluding VAT by year: a month is charged
  at the price of the most recent year in the table at or before the month's year (2021 at
  2020's price, 2026 at 2022's); a month before the table's first year has no price and is
  refused.
* **Money** is Decimal: billable units x the price as written in the configuration, rounded
  half-up to whole cents, per line and period. The month's and the year to date's amounts
  are each rounded from their own billable units, so the months of a year can add up to a
  cent or so more or less than its year-to-date amount, which is what a yearly settlement
  charges. A total is the sum of its rounded lines, as the invoices per organisation add up.

**The month** runs from 00:00 UTC on its first day to 00:00 UTC on the first day of the next
month (start included, end excluded), like the rest of the store, which keeps moments in UTC
only; a letter at 00:30 Dutch time on the 1st therefore falls in the previous month. The
year likewise starts at 00:00 UTC on 1 January.

Every configured organisation gets a line, with zeros when it used nothing; an OIN found in the
data but no longer in organisations.toml gets a line too, marked as not configured.

**The CSV** (`--csv FILE`) has a header row and one row per OIN, in the table's order, without
a total row; decimal point, no thousands separators:

    month                       the month, YYYY-MM
    oin, name, configured       the organisation; name empty and configured "false" when the
                                OIN is no longer in organisations.toml
    status_updates              Lopende Zaken statuses stored in the month (not charged)
    validate_abonnementen       ValidateAbonnementen calls answered in the month (not charged)
    logins                      "n.v.t." (not counted, see above)
    units                       letters accepted in the month
    free_units                  of those, the ones still within the year's free allowance
    billable_units              units - free_units
    amount_eur                  billable_units x price_per_unit_eur, rounded half-up to cents
    ytd_status_updates, ytd_validate_abonnementen, ytd_units, ytd_free_units,
    ytd_billable_units, ytd_amount_eur
                                the same for the year to date: 1 January to the month's end
    tariff_year                 the year of `usage.tariff` whose price applies
    price_per_unit_eur          that price, euro per unit excluding VAT
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TextIO

from adapter.config import Organisations, UsageConfig
from adapter.errors import AdapterError
from adapter.store.usage import Counts, Usage

NOT_COUNTED = "n.v.t."  # what the report says for logins
CENT = Decimal("0.01")

CSV_HEADER = (
    "month",
    "oin",
    "name",
    "configured",
    "status_updates",
    "validate_abonnementen",
    "logins",
    "units",
    "free_units",
    "billable_units",
    "amount_eur",
    "ytd_status_updates",
    "ytd_validate_abonnementen",
    "ytd_units",
    "ytd_free_units",
    "ytd_billable_units",
    "ytd_amount_eur",
    "tariff_year",
    "price_per_unit_eur",
)


class NoTariff(AdapterError, LookupError):
    """The tariff table has no year at or before the one asked for."""


@dataclass(frozen=True)
class Tariff:
    """The price that applies to a month: that of `year`, its table entry at or before it."""

    year: int
    price: Decimal  # euro per unit, excluding VAT

    def amount(self, billable_units: int) -> Decimal:
        """billable x price, rounded half-up to whole cents."""
        return (billable_units * self.price).quantize(CENT, ROUND_HALF_UP)


def tariff_for(year: int, usage_config: UsageConfig) -> Tariff:
    """The most recent entry of `usage.tariff` at or before `year`; NoTariff when there is none."""
    earlier = [entry for entry in usage_config.tariff if entry <= year]
    if not earlier:
        first = min(usage_config.tariff, default=None)
        starts = f"it starts in {first}" if first is not None else "it is empty"
        raise NoTariff(f"usage.tariff has no price for {year}: {starts}")
    applying = max(earlier)
    return Tariff(applying, usage_config.tariff[applying])


@dataclass(frozen=True)
class Period:
    """One organisation's use in one period (the month, or the year to date), and its charge."""

    status_updates: int
    validate_requests: int
    units: int  # letters accepted
    free_units: int
    billable_units: int
    amount: Decimal  # euro, rounded half-up to cents
    logins: int | None = None  # None: not counted (the adapter never sees citizen logins)


@dataclass(frozen=True)
class UsageLine:
    """One organisation's month and year to date."""

    oin: str
    name: str | None  # None when the OIN is no longer in organisations.toml
    month: Period
    year_to_date: Period

    @property
    def configured(self) -> bool:
        return self.name is not None


@dataclass(frozen=True)
class UsageReport:
    month: date  # its first day
    tariff: Tariff
    free_units: int  # per organisation per calendar year
    lines: Sequence[UsageLine]

    def line(self, oin: str) -> UsageLine:
        for line in self.lines:
            if line.oin == oin:
                return line
        raise KeyError(oin)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """The month of `month` (any day in it) as [start, end) in UTC."""
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    if month.month == 12:
        return start, datetime(month.year + 1, 1, 1, tzinfo=UTC)
    return start, datetime(month.year, month.month + 1, 1, tzinfo=UTC)


def year_start(month: date) -> datetime:
    return datetime(month.year, 1, 1, tzinfo=UTC)


def _period(counts: Counts, free_left: int, tariff: Tariff) -> Period:
    """The period's counts charged: its first `free_left` units are free, the rest billable."""
    free = min(counts.letters, max(free_left, 0))
    billable = counts.letters - free
    return Period(
        status_updates=counts.status_updates,
        validate_requests=counts.validate_requests,
        units=counts.letters,
        free_units=free,
        billable_units=billable,
        amount=tariff.amount(billable),
    )


def monthly_usage(
    usage: Usage, month: date, organisations: Organisations, usage_config: UsageConfig
) -> UsageReport:
    """The report for the month of `month` (any day in it; UTC boundaries) and its year so far.

    Configured organisations come first, in OIN order, each also when it used nothing; then
    the OINs found in the data that are no longer configured (`name` None), in OIN order.
    Raises NoTariff before reading anything when no price applies to the month.
    """
    tariff = tariff_for(month.year, usage_config)
    start, end = month_bounds(month)
    counts = usage.counts(year_start(month), start, end)
    configured = sorted(organisations.by_oin)
    unconfigured = sorted(counts.oins() - set(configured))
    allowance = usage_config.free_units
    lines = []
    for oin in configured + unconfigured:
        organisation = organisations.by_oin.get(oin)
        earlier = counts.earlier.get(oin, Counts())
        this_month = counts.later.get(oin, Counts())
        lines.append(
            UsageLine(
                oin=oin,
                name=organisation.name if organisation is not None else None,
                month=_period(this_month, allowance - earlier.letters, tariff),
                year_to_date=_period(earlier + this_month, allowance, tariff),
            )
        )
    return UsageReport(month=month, tariff=tariff, free_units=allowance, lines=lines)


def _month_label(month: date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def _price(value: Decimal) -> str:
    """A price as written, with at least whole cents: 0.454, 0.40, 1.00."""
    exact = value.normalize()
    exponent = exact.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        exact = exact.quantize(CENT)
    return format(exact, "f")


def _logins(period: Period) -> str:
    return NOT_COUNTED if period.logins is None else str(period.logins)


HEADERS = (
    "OIN",
    "Organisation",
    "Status updates",
    "ValidateAbonnementen",
    "Logins",
    "Units",
    "Free",
    "Billable",
    "Amount EUR",
)


Row = tuple[str, ...]


def _rows(report: UsageReport, pick: str) -> tuple[list[Row], Row]:
    """The rows and the total row of one period (`pick`: "month" or "year_to_date")."""
    periods = [(line, getattr(line, pick)) for line in report.lines]
    rows: list[Row] = [
        (
            line.oin,
            line.name if line.name is not None else "* not configured",
            str(period.status_updates),
            str(period.validate_requests),
            _logins(period),
            str(period.units),
            str(period.free_units),
            str(period.billable_units),
            f"{period.amount:.2f}",
        )
        for line, period in periods
    ]
    total: Row = (
        "Total",
        "",
        str(sum(period.status_updates for _, period in periods)),
        str(sum(period.validate_requests for _, period in periods)),
        NOT_COUNTED,
        str(sum(period.units for _, period in periods)),
        str(sum(period.free_units for _, period in periods)),
        str(sum(period.billable_units for _, period in periods)),
        f"{sum((period.amount for _, period in periods), Decimal('0.00')):.2f}",
    )
    return rows, total


def format_table(report: UsageReport) -> str:
    """The report as aligned text: a heading, the month, the year to date, and the notes."""
    start, end = month_bounds(report.month)
    label = _month_label(report.month)
    month_rows, month_total = _rows(report, "month")
    year_rows, year_total = _rows(report, "year_to_date")
    every = (HEADERS, *month_rows, month_total, *year_rows, year_total)
    # One set of widths for both tables, so their columns line up.
    widths = [max(len(row[i]) for row in every) for i in range(len(HEADERS))]

    def render(row: Sequence[str]) -> str:
        cells = [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * width for width in widths)

    def table(rows: list[Row], total: Row) -> list[str]:
        return [render(HEADERS), rule, *(render(row) for row in rows), rule, render(total)]

    out = [
        f"Usage {label} ({start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC)",
        f"Tariff: EUR {_price(report.tariff.price)} per unit excl. VAT (usage.tariff "
        f"{report.tariff.year}); {report.free_units} units free per organisation per calendar "
        "year",
        "",
        f"Month {label}",
        *table(month_rows, month_total),
        "",
        f"Year to date ({start.year:04d}-01-01 00:00 to {end:%Y-%m-%d %H:%M} UTC)",
        *table(year_rows, year_total),
        "",
        "Units are Berichtenbox letters accepted (Verwerkt). Free: those among the "
        f"organisation's first {report.free_units} of the calendar year.",
        "Status updates and ValidateAbonnementen calls are reported, not charged.",
        f"Logins: {NOT_COUNTED}, the adapter does not see citizen logins.",
    ]
    if any(not line.configured for line in report.lines):
        out.append("* not configured: the OIN is no longer in the organisations file.")
    return "\n".join(out) + "\n"


def write_csv(report: UsageReport, out: TextIO) -> None:
    """A header row, then one row per OIN; the columns are listed in the module docstring."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    label = _month_label(report.month)
    price = _price(report.tariff.price)
    for line in report.lines:
        month, year = line.month, line.year_to_date
        writer.writerow(
            (
                label,
                line.oin,
                line.name or "",
                "true" if line.configured else "false",
                month.status_updates,
                month.validate_requests,
                _logins(month),
                month.units,
                month.free_units,
                month.billable_units,
                f"{month.amount:.2f}",
                year.status_updates,
                year.validate_requests,
                year.units,
                year.free_units,
                year.billable_units,
                f"{year.amount:.2f}",
                report.tariff.year,
                price,
            )
        )


_MONTH = re.compile(r"(\d{4})-(\d{2})")


def parse_month(value: str) -> date:
    """'2026-01' -> date(2026, 1, 1); anything else is a ValueError naming the format."""
    match = _MONTH.fullmatch(value.strip())
    if match is None or not 1 <= int(match[2]) <= 12 or int(match[1]) < 1:
        raise ValueError(f"{value!r} is not a month YYYY-MM (e.g. 2026-01)")
    return date(int(match[1]), int(match[2]), 1)

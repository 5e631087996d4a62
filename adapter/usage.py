"""`dk-adapter usage --month YYYY-MM`: what each organisation used in a month, and what it costs.

What is counted, per OIN, for one calendar month:

* **letters** - Berichtenbox letters delivered: rows of `berichten` whose `leverancier_oin` is
  the OIN. Only letters that were accepted and stored are there (a letter refused with a
  verwerkingscode is not). An intermediary's letters count for the organisation it delivered
  for (the BerichtLeverancierID), not for the intermediary.
* **status updates** - Lopende Zaken statuses stored: rows of `zaak_statussen` of the zaken
  (`zaken.oin`) of the OIN. A status sent again (STATUS_AL_BEKEND) is stored once and counted
  once. Zaken removed by `retention run` take their statuses with them, so report a month well
  within `lopende_zaken.retention_days`.
* **ValidateAbonnementen** - requests answered: stored receipts of service
  "ValidateAbonnementen" with outcome "Geaccepteerd", counted for the caller (the receipt's
  `sender_oin`, which for an intermediary is the intermediary). Reported, not billed.
* **logins** - not counted: citizens log in to MijnOverheid (DigiD), never to this adapter, so
  it has nothing to count; the report says "n.v.t.".

**A unit** is one letter delivered or one status update stored: units = letters + status
updates. ValidateAbonnementen requests are not units - they are the check that comes before
sending letters, and billing them as well would charge twice for one letter.

Every organisation gets `usage.free_units` units free per month (the same for all, also for
OINs no longer configured); billable units = max(0, units - free_units); the amount in euro
= billable x `usage.price_per_unit_cents` / 100, computed in Decimal (the configured price
taken as written, not as its binary float) and rounded half-up to whole cents, per line. The
total is the sum of the rounded lines, as the invoices per organisation would add up.

**The month** runs from 00:00 UTC on its first day to 00:00 UTC on the first day of the next
month (start included, end excluded), like the rest of the store, which keeps moments in UTC
only; a letter at 00:30 Dutch time on the 1st therefore falls in the previous month.

Every configured organisation gets a line, with zeros when it used nothing; an OIN found in the
data but no longer in organisations.toml gets a line too, marked as not configured. Each count
is one aggregate query (COUNT ... GROUP BY), all three in one statement (one snapshot), so a
month of millions of rows is counted inside the database and read back as a few rows. Neither
`berichten` nor `zaak_statussen` has an index on `received_at`, so those two are one sequential
scan each (all three together took about 0.6 s with 1.5 million rows in each table on
PostgreSQL); SQLite walks `receipts` through `ix_receipts_sender_received` for the grouping.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import TextIO

from sqlalchemy import func, literal, select, union_all
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from adapter.config import Config, Organisations, UsageConfig
from adapter.store.db import reading_session
from adapter.store.models import Bericht, StoredReceipt, Zaak, ZaakStatus

ConfigLoader = Callable[[argparse.Namespace], Config]

NOT_COUNTED = "n.v.t."  # what the report says for logins
VALIDATE_SERVICE = "ValidateAbonnementen"
ACCEPTED = "Geaccepteerd"  # StoredReceipt.outcome of an accepted (answered) request
CENT = Decimal("0.01")

CSV_HEADER = (
    "month",
    "oin",
    "name",
    "configured",
    "letters",
    "status_updates",
    "validate_abonnementen",
    "logins",
    "units",
    "free_units",
    "billable_units",
    "price_per_unit_cents",
    "amount_eur",
)


@dataclass(frozen=True)
class UsageLine:
    """One organisation's use in one month; see the module docstring for each count."""

    oin: str
    name: str | None  # None when the OIN is no longer in organisations.toml
    letters: int
    status_updates: int
    validate_requests: int
    free_units: int
    billable_units: int
    amount: Decimal  # euro, rounded half-up to cents
    logins: int | None = None  # None: not counted (the adapter never sees citizen logins)

    @property
    def configured(self) -> bool:
        return self.name is not None

    @property
    def units(self) -> int:
        return self.letters + self.status_updates


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """The month of `month` (any day in it) as [start, end) in UTC."""
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    if month.month == 12:
        return start, datetime(month.year + 1, 1, 1, tzinfo=UTC)
    return start, datetime(month.year, month.month + 1, 1, tzinfo=UTC)


def unit_price(usage_config: UsageConfig) -> Decimal:
    """The configured price in cents as written in the file (0.35, not 0.34999999999999997...)."""
    return Decimal(repr(float(usage_config.price_per_unit_cents)))


def amount_eur(billable_units: int, usage_config: UsageConfig) -> Decimal:
    """billable x price in cents / 100, rounded half-up to whole cents."""
    return (billable_units * unit_price(usage_config) / 100).quantize(CENT, ROUND_HALF_UP)


def _counts(session: Session, start: datetime, end: datetime) -> dict[str, dict[str, int]]:
    """{kind: {oin: count}} for the three counted kinds, from one aggregate statement."""
    letters = (
        select(
            literal("letters").label("kind"),
            Bericht.leverancier_oin.label("oin"),
            func.count().label("n"),
        )
        .where(Bericht.received_at >= start, Bericht.received_at < end)
        .group_by(Bericht.leverancier_oin)
    )
    statuses = (
        select(
            literal("status_updates").label("kind"),
            Zaak.oin.label("oin"),
            func.count().label("n"),
        )
        .select_from(ZaakStatus)
        .join(Zaak, Zaak.id == ZaakStatus.zaak_id)
        .where(ZaakStatus.received_at >= start, ZaakStatus.received_at < end)
        .group_by(Zaak.oin)
    )
    validations = (
        select(
            literal("validate").label("kind"),
            StoredReceipt.sender_oin.label("oin"),
            func.count().label("n"),
        )
        .where(
            StoredReceipt.received_at >= start,
            StoredReceipt.received_at < end,
            StoredReceipt.service == VALIDATE_SERVICE,
            StoredReceipt.outcome == ACCEPTED,
        )
        .group_by(StoredReceipt.sender_oin)
    )
    counts: dict[str, dict[str, int]] = {"letters": {}, "status_updates": {}, "validate": {}}
    for kind, oin, n in session.execute(union_all(letters, statuses, validations)):
        counts[kind][oin] = int(n)
    return counts


def monthly_usage(
    session: Session, month: date, organisations: Organisations, usage_config: UsageConfig
) -> list[UsageLine]:
    """One line per OIN for the month of `month` (any day in it; UTC month boundaries).

    Configured organisations come first, in OIN order, each also when it used nothing; then
    the OINs found in the data that are no longer configured (`name` None), in OIN order.
    """
    start, end = month_bounds(month)
    counts = _counts(session, start, end)
    seen: set[str] = set()
    for by_oin in counts.values():
        seen.update(by_oin)
    configured = sorted(organisations.by_oin)
    unconfigured = sorted(seen - set(configured))
    lines = []
    for oin in configured + unconfigured:
        organisation = organisations.by_oin.get(oin)
        letters = counts["letters"].get(oin, 0)
        status_updates = counts["status_updates"].get(oin, 0)
        billable = max(0, letters + status_updates - usage_config.free_units)
        lines.append(
            UsageLine(
                oin=oin,
                name=organisation.name if organisation is not None else None,
                letters=letters,
                status_updates=status_updates,
                validate_requests=counts["validate"].get(oin, 0),
                free_units=usage_config.free_units,
                billable_units=billable,
                amount=amount_eur(billable, usage_config),
            )
        )
    return lines


def _month_label(month: date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def _plain(value: Decimal) -> str:
    """A Decimal without exponent or trailing zeros: 0.35, 2, 100."""
    return format(value.normalize(), "f")


def _logins(line: UsageLine) -> str:
    return NOT_COUNTED if line.logins is None else str(line.logins)


def format_table(lines: Sequence[UsageLine], month: date, usage_config: UsageConfig) -> str:
    """The report as aligned text: a heading, one row per OIN, a total row, and the notes."""
    start, end = month_bounds(month)
    headers = (
        "OIN",
        "Organisation",
        "Letters",
        "Status updates",
        "ValidateAbonnementen",
        "Logins",
        "Units",
        "Free",
        "Billable",
        "Amount EUR",
    )
    rows = [
        (
            line.oin,
            line.name if line.name is not None else "* not configured",
            str(line.letters),
            str(line.status_updates),
            str(line.validate_requests),
            _logins(line),
            str(line.units),
            str(line.free_units),
            str(line.billable_units),
            f"{line.amount:.2f}",
        )
        for line in lines
    ]
    total = (
        "Total",
        "",
        str(sum(line.letters for line in lines)),
        str(sum(line.status_updates for line in lines)),
        str(sum(line.validate_requests for line in lines)),
        NOT_COUNTED,
        str(sum(line.units for line in lines)),
        "",
        str(sum(line.billable_units for line in lines)),
        f"{sum((line.amount for line in lines), Decimal('0.00')):.2f}",
    )
    widths = [max(len(row[i]) for row in (headers, *rows, total)) for i in range(len(headers))]

    def render(row: Sequence[str]) -> str:
        cells = [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * width for width in widths)
    out = [
        f"Usage {_month_label(month)} ({start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC): "
        f"{usage_config.free_units} units free per organisation, then "
        f"{_plain(unit_price(usage_config))} cents per unit",
        "",
        render(headers),
        rule,
        *(render(row) for row in rows),
        rule,
        render(total),
        "",
        "Units are letters delivered plus status updates stored.",
        f"Logins: {NOT_COUNTED}, the adapter does not see citizen logins.",
    ]
    if any(not line.configured for line in lines):
        out.append("* not configured: the OIN is no longer in the organisations file.")
    return "\n".join(out) + "\n"


def write_csv(
    lines: Sequence[UsageLine], month: date, usage_config: UsageConfig, out: TextIO
) -> None:
    """A header row, then one row per OIN; decimal point, no thousands separators, no total."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    price = _plain(unit_price(usage_config))
    for line in lines:
        writer.writerow(
            (
                _month_label(month),
                line.oin,
                line.name or "",
                "true" if line.configured else "false",
                line.letters,
                line.status_updates,
                line.validate_requests,
                _logins(line),
                line.units,
                line.free_units,
                line.billable_units,
                price,
                f"{line.amount:.2f}",
            )
        )


_MONTH = re.compile(r"(\d{4})-(\d{2})")


def parse_month(value: str) -> date:
    """'2026-01' -> date(2026, 1, 1); anything else is an argparse error naming the format."""
    match = _MONTH.fullmatch(value.strip())
    if match is None or not 1 <= int(match[2]) <= 12 or int(match[1]) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a month YYYY-MM (e.g. 2026-01)")
    return date(int(match[1]), int(match[2]), 1)


def cmd_usage(args: argparse.Namespace, config_loader: ConfigLoader) -> int:
    config = config_loader(args)
    month: date = args.month
    try:
        with reading_session(config.database_url) as session:
            lines = monthly_usage(session, month, config.organisations, config.usage)
    except SQLAlchemyError as exc:
        message = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
        print(f"error: database: {message}", file=sys.stderr)
        return 2
    sys.stdout.write(format_table(lines, month, config.usage))
    if args.csv:
        target = Path(args.csv)
        with target.open("w", encoding="utf-8", newline="") as out:
            write_csv(lines, month, config.usage, out)
        print(f"CSV written to {target}")
    return 0


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], config_loader: ConfigLoader
) -> None:
    """Register `usage --month YYYY-MM [--csv FILE]` on the CLI's subcommands.

    It sets `func(args) -> int`, as the other commands do; `config_loader` reads the
    configuration from the parsed arguments (`--config`).
    """
    usage = commands.add_parser(
        "usage", help="use and cost per organisation in a month (letters, status updates)"
    )
    usage.add_argument(
        "--month", type=parse_month, required=True, help="the month, YYYY-MM (UTC boundaries)"
    )
    usage.add_argument("--csv", metavar="FILE", help="also write the lines as CSV to FILE")
    usage.set_defaults(func=lambda args: cmd_usage(args, config_loader))

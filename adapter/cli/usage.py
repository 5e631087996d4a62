"""`dk-adapter usage --month YYYY-MM [--csv FILE]`: use and cost per organisation."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from adapter.cli.base import Commands, ConfigLoader, report_database_error
from adapter.errors import StoreUnavailable
from adapter.store.usage import reading_usage
from adapter.usage import NoTariff, format_table, monthly_usage, parse_month, write_csv


def _month(value: str) -> date:
    try:
        return parse_month(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_usage(args: argparse.Namespace, config_loader: ConfigLoader) -> int:
    config = config_loader(args)
    month: date = args.month
    try:
        with reading_usage(config.database_url) as usage:
            report = monthly_usage(usage, month, config.organisations, config.usage)
    except NoTariff as exc:
        print(f"error: {exc} (in {config.file})", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        return report_database_error(exc)
    sys.stdout.write(format_table(report))
    if args.csv:
        target = Path(args.csv)
        with target.open("w", encoding="utf-8", newline="") as out:
            write_csv(report, out)
        print(f"CSV written to {target}")
    return 0


def register(commands: Commands, config_loader: ConfigLoader) -> None:
    usage = commands.add_parser(
        "usage", help="use and cost per organisation in a month and its year to date"
    )
    usage.add_argument(
        "--month", type=_month, required=True, help="the month, YYYY-MM (UTC boundaries)"
    )
    usage.add_argument("--csv", metavar="FILE", help="also write the lines as CSV to FILE")
    usage.set_defaults(func=lambda args: cmd_usage(args, config_loader))

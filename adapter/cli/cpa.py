"""`dk-adapter cpa check FILE…`: validate CPAs and say what is wrong with them."""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path

from adapter.cli.base import Commands, ConfigLoader


def iso_duration(value: timedelta) -> str:
    """A duration as the CPA writes it (xs:duration, ISO 8601): P1D, PT3H, PT1M30S."""
    if value < timedelta(0):
        return "-" + iso_duration(-value)
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    fraction = f"{seconds + value.microseconds / 1_000_000:.6f}".rstrip("0").rstrip(".")
    time = "".join(
        f"{amount}{unit}"
        for amount, unit in ((hours, "H"), (minutes, "M"), (fraction, "S"))
        if amount not in (0, "0")
    )
    day = f"{value.days}D" if value.days else ""
    if not day and not time:
        return "PT0S"
    return f"P{day}" + (f"T{time}" if time else "")


def cmd_cpa_check(args: argparse.Namespace) -> int:
    from adapter.ebms.cpa import check_cpa, load_cpa

    failed = False
    for name in args.files:
        problems = check_cpa(Path(name))
        if problems:
            failed = True
            print(f"{name}: {len(problems)} problem(s)")
            for problem in problems:
                print(f"  {problem}")
            continue
        cpa = load_cpa(Path(name))
        print(f"{name}: OK, CPAId {cpa.cpa_id}, valid {cpa.start:%Y-%m-%d} to {cpa.end:%Y-%m-%d}")
        for party in cpa.parties:
            print(
                f"  {party.oin} ({party.role}) sends {', '.join(sorted(party.can_send)) or '-'}; "
                f"receives at {party.endpoint}, syncReplyMode {party.sync_reply_mode}, "
                f"{party.retries} retries every {iso_duration(party.retry_interval)}, "
                f"kept {iso_duration(party.persist_duration)}"
            )
    return 1 if failed else 0


def register(commands: Commands, config_loader: ConfigLoader) -> None:
    """`cpa check` reads the files it is given; it needs no configuration."""
    cpa = commands.add_parser("cpa", help="collaboration protocol agreements (ebMS)")
    cpa_check = cpa.add_subparsers(dest="cpa", required=True).add_parser(
        "check", help="validate CPA files and say what is wrong"
    )
    cpa_check.add_argument("files", nargs="+", metavar="FILE", help="CPA XML files")
    cpa_check.set_defaults(func=cmd_cpa_check)

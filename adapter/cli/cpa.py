"""`dk-adapter cpa check FILE…`: validate CPAs and say what is wrong with them."""

from __future__ import annotations

import argparse
from pathlib import Path

from adapter.cli.base import Commands, ConfigLoader


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
                f"{party.retries} retries every {party.retry_interval}, "
                f"kept {party.persist_duration}"
            )
    return 1 if failed else 0


def register(commands: Commands, config_loader: ConfigLoader) -> None:
    """`cpa check` reads the files it is given; it needs no configuration."""
    cpa = commands.add_parser("cpa", help="collaboration protocol agreements (ebMS)")
    cpa_check = cpa.add_subparsers(dest="cpa", required=True).add_parser(
        "check", help="validate CPA files and say what is wrong"
    )
    cpa_check.add_argument("files", nargs="+")
    cpa_check.set_defaults(func=cmd_cpa_check)

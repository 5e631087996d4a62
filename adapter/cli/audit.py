"""`dk-adapter audit verify` and `dk-adapter audit export`: the audit hash chain for auditors."""

from __future__ import annotations

import argparse
import io
import sys
from datetime import date
from pathlib import Path

from adapter.cli.base import Commands, ConfigLoader, report_database_error
from adapter.errors import StoreUnavailable
from adapter.store.audit import ExportSlice, ExportSummary, export, verify_chain, write_jsonl
from adapter.store.db import reading_session


def cmd_verify(args: argparse.Namespace, config_loader: ConfigLoader) -> int:
    config = config_loader(args)
    try:
        with reading_session(config.database_url) as session:
            result = verify_chain(session)
    except StoreUnavailable as exc:
        return report_database_error(exc)
    if not result.intact:
        print(f"chain BROKEN at seq {result.broken_at}: {result.reason}")
        print(f"  entries 1 to {result.entries} are intact (of {result.head_seq})")
        return 1
    print(f"chain intact: {result.entries} entries, head {result.head_hash}")
    if result.unchained_receipts:
        print(
            f"warning: {result.unchained_receipts} stored receipts are not in the chain "
            "(stored before the audit trail existed, or not through the adapter)"
        )
    return 0


def cmd_export(args: argparse.Namespace, config_loader: ConfigLoader) -> int:
    start, end = args.start, args.end
    if end < start:
        print(f"error: --to {end} is before --from {start}", file=sys.stderr)
        return 2
    config = config_loader(args)
    target = Path(args.out) if args.out else None
    try:
        with reading_session(config.database_url) as session:
            exported = export(session, start, end)
            if target is None:
                summary = _to_stdout(exported)
            else:
                with target.open("w", encoding="utf-8", newline="\n") as out:
                    summary = write_jsonl(exported, out)
    except StoreUnavailable as exc:
        return report_database_error(exc)
    span = f"seq {summary.first_seq} to {summary.last_seq}" if summary.entries else "no entries"
    # The summary goes to stderr when the export itself goes to stdout.
    print(
        f"exported {summary.entries} entries ({span}) recorded {start} to {end} (UTC)"
        f" to {target or 'stdout'}\n"
        f"  previous entry hash {summary.previous_hash}\n"
        f"  last entry hash     {summary.last_hash}",
        file=sys.stdout if target is not None else sys.stderr,
    )
    return 0


def _to_stdout(exported: ExportSlice) -> ExportSummary:
    """The export on standard output, as UTF-8 whatever the locale says."""
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        return write_jsonl(exported, sys.stdout)
    sys.stdout.flush()
    out = io.TextIOWrapper(buffer, encoding="utf-8", newline="\n")
    try:
        return write_jsonl(exported, out)
    finally:
        out.flush()
        out.detach()


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date YYYY-MM-DD") from None


def register(commands: Commands, config_loader: ConfigLoader) -> None:
    """`audit verify` and `audit export`."""
    audit = commands.add_parser("audit", help="the audit hash chain of receipts and refusals")
    subcommands = audit.add_subparsers(dest="audit", required=True)

    verify = subcommands.add_parser(
        "verify", help="prove the chain unbroken, or name the first entry that is not"
    )
    verify.set_defaults(func=lambda args: cmd_verify(args, config_loader))

    dump = subcommands.add_parser(
        "export", help="write the entries of a date range, with their receipts, as JSON Lines"
    )
    dump.add_argument(
        "--from", dest="start", type=_day, required=True, help="first day, YYYY-MM-DD (UTC)"
    )
    dump.add_argument(
        "--to", dest="end", type=_day, required=True, help="last day, included, YYYY-MM-DD (UTC)"
    )
    dump.add_argument("--out", help="file to write (default: standard output)")
    dump.set_defaults(func=lambda args: cmd_export(args, config_loader))

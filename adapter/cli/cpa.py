"""`dk-adapter cpa check FILE…`: validate CPAs and say what is wrong with them.
`dk-adapter cpa generate`: write a development CPA for one organisation in an osb profile."""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path

from adapter.cli.base import Commands, ConfigLoader
from adapter.ebms.cpa.writer import PROFILES
from adapter.pki.devca import DEFAULT_RECEIVER_OIN


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
                + (
                    ", signed and encrypted (-e)"
                    if party.security.encrypt
                    else ", signed (-s)"
                    if party.security.sign
                    else ""
                )
            )
    return 1 if failed else 0


def cmd_cpa_generate(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from adapter.ebms.cpa import check_cpa
    from adapter.ebms.cpa.writer import CpaPartySpec, CpaSpec, load_certificate, write_cpa

    def certificate(path: str | None) -> object:
        return load_certificate(Path(path).read_bytes()) if path else None

    spec = CpaSpec(
        organisation=CpaPartySpec(
            args.oin,
            args.name or args.oin,
            "SR",
            args.endpoint,
            certificate(args.certificate),  # type: ignore[arg-type]
        ),
        mijnoverheid=CpaPartySpec(
            args.mijnoverheid_oin,
            "MijnOverheid",
            "SP",
            args.mijnoverheid_endpoint,
            certificate(args.mijnoverheid_certificate),  # type: ignore[arg-type]
        ),
        profile=args.profile,
        sync_reply_mode=args.sync_reply_mode,
        retries=args.retries,
        retry_interval=args.retry_interval,
        persist_duration=args.persist_duration,
        sequence=args.sequence,
    )
    try:
        document = write_cpa(spec, datetime.now(UTC))
    except ValueError as exc:
        print(f"cpa generate: {exc}")
        return 2
    target = Path(args.output) if args.output else Path(f"{spec.cpa_id}.xml")
    target.write_bytes(document)
    problems = check_cpa(target)
    for problem in problems:
        print(f"  {problem}")
    print(f"{target}: CPAId {spec.cpa_id}, profile {spec.profile}")
    return 1 if problems else 0


def register(commands: Commands, config_loader: ConfigLoader) -> None:
    """`cpa check` and `cpa generate` need no configuration."""
    cpa = commands.add_parser("cpa", help="collaboration protocol agreements (ebMS)")
    cpa_commands = cpa.add_subparsers(dest="cpa", required=True)
    cpa_check = cpa_commands.add_parser("check", help="validate CPA files and say what is wrong")
    cpa_check.add_argument("files", nargs="+", metavar="FILE", help="CPA XML files")
    cpa_check.set_defaults(func=cmd_cpa_check)
    generate = cpa_commands.add_parser(
        "generate", help="write a development CPA for one organisation and MijnOverheid"
    )
    generate.add_argument("--oin", required=True, help="the organisation's OIN (role SR)")
    generate.add_argument("--name", help="the organisation's name (partyName)")
    generate.add_argument(
        "--endpoint", required=True, help="https URL where the organisation receives ebMS"
    )
    generate.add_argument(
        "--profile",
        default="osb-rm",
        choices=PROFILES,
        help="Digikoppeling ebMS profile: -s signed, -e signed and encrypted (default osb-rm)",
    )
    generate.add_argument(
        "--certificate",
        help="PEM file: the organisation's signing/encryption certificate (required for -e)",
    )
    generate.add_argument(
        "--mijnoverheid-oin",
        default=DEFAULT_RECEIVER_OIN,
        help=f"MijnOverheid's OIN (role SP; default {DEFAULT_RECEIVER_OIN})",
    )
    generate.add_argument(
        "--mijnoverheid-endpoint",
        default="https://127.0.0.1:8443/berichtenbox/ebms",
        help="https URL of this adapter's ebMS endpoint",
    )
    generate.add_argument(
        "--mijnoverheid-certificate",
        help="PEM file: MijnOverheid's ebMS signing/encryption certificate (required for -e)",
    )
    generate.add_argument(
        "--sync-reply-mode",
        default="none",
        choices=("none", "mshSignalsOnly"),
        help="none (default): signals as messages of their own; mshSignalsOnly: on the connection",
    )
    generate.add_argument("--retries", type=int, default=8, help="reliable profiles (default 8)")
    generate.add_argument("--retry-interval", default="PT3H", help="xs:duration (default PT3H)")
    generate.add_argument("--persist-duration", default="P1D", help="xs:duration (default P1D)")
    generate.add_argument(
        "--sequence", type=int, default=1, help="last part of the CPAId (default 1)"
    )
    generate.add_argument("-o", "--output", help="file to write (default: <CPAId>.xml)")
    generate.set_defaults(func=cmd_cpa_generate)

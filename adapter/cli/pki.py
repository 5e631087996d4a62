"""`dk-adapter pki init|issue`: a PKIoverheid-shaped development hierarchy (adapter.pki.devca)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from adapter.cli.base import Commands, ConfigLoader
from adapter.config import Organisations, load_organisations


def _organisations(args: argparse.Namespace) -> tuple[Path, Organisations]:
    # Only the organisations file is needed: the PKI must be buildable before certs exist.
    config_file = Path(args.config).resolve()
    file = (
        Path(args.organisations)
        if args.organisations
        else config_file.parent / "organisations.toml"
    )
    return file, load_organisations(file)


def cmd_pki_init(args: argparse.Namespace) -> int:
    from adapter.pki.devca import OrganisationSubject, PkiExists, init_dev_pki

    _, organisations = _organisations(args)
    directory = Path(args.dir)
    if args.if_missing and (directory / "root-ca.pem").exists():
        print(f"{directory}: development PKI already present")
        return 0
    try:
        files = init_dev_pki(
            directory,
            [OrganisationSubject(o.oin, o.name, o.kvk) for o in organisations.by_oin.values()],
            receipt_key=args.receipt_key,
            overwrite=args.force,
        )
    except PkiExists as exists:
        print(
            f"error: {exists.path} already exists: refusing to replace the development PKI, "
            "since every certificate issued from it would stop working.\n"
            "  A client certificate for a newly configured organisation: "
            "dk-adapter pki issue --oin OIN\n"
            "  A new hierarchy (every certificate replaced): dk-adapter pki init --force",
            file=sys.stderr,
        )
        return 2
    print(f"development PKI written to {directory} (trust anchor {files.root_ca})")
    for oin, client in files.clients.items():
        print(
            f"  {oin}: {client.certificate} (key {client.private_key.name}, {client.pkcs12.name})"
        )
    return 0


def cmd_pki_issue(args: argparse.Namespace) -> int:
    from adapter.pki.devca import OrganisationSubject, PkiExists, issue_client

    file, organisations = _organisations(args)
    organisation = organisations.by_oin.get(args.oin)
    if organisation is None:
        print(
            f"error: {args.oin} is not an organisation in {file}; add its [[organisation]] "
            "first, so the certificate carries its name and KvK number",
            file=sys.stderr,
        )
        return 2
    subject = OrganisationSubject(organisation.oin, organisation.name, organisation.kvk)
    try:
        client = issue_client(Path(args.dir), subject, overwrite=args.force)
    except PkiExists as exists:
        print(
            f"error: {exists.path} already exists; --force issues a new certificate and key "
            "in its place",
            file=sys.stderr,
        )
        return 2
    except FileNotFoundError as missing:
        print(f"error: {missing}; run dk-adapter pki init first", file=sys.stderr)
        return 2
    print(f"client certificate for {organisation.oin} ({organisation.name}) issued:")
    print(f"  {client.certificate} (key {client.private_key.name}, {client.pkcs12.name})")
    return 0


def register(commands: Commands, config_loader: ConfigLoader) -> None:
    """`pki init` and `pki issue` read `--config` only for its directory, never through
    `config_loader`: the full configuration names certificates they are about to create."""
    pki = commands.add_parser(
        "pki", help="development PKI: a test hierarchy and client certificates"
    ).add_subparsers(dest="pki", required=True)
    organisations_help = "organisations.toml (default: next to --config)"
    directory_help = "where the development PKI is (default certs)"

    init = pki.add_parser(
        "init",
        help="build a PKIoverheid-shaped test hierarchy with a client certificate "
        "per configured organisation",
    )
    init.add_argument("--dir", default="certs", help=directory_help)
    init.add_argument("--organisations", help=organisations_help)
    init.add_argument(
        "--receipt-key",
        choices=("ecdsa-p256", "rsa-3072"),
        default="ecdsa-p256",
        help="key type of the receipt-signing certificate (default ecdsa-p256)",
    )
    init.add_argument("--force", action="store_true", help="replace an existing hierarchy")
    init.add_argument("--if-missing", action="store_true", help="do nothing when one exists")
    init.set_defaults(func=cmd_pki_init)

    issue = pki.add_parser(
        "issue",
        help="add a client certificate for one organisation to the existing hierarchy",
    )
    issue.add_argument("--oin", required=True, help="OIN of an organisation in organisations.toml")
    issue.add_argument("--dir", default="certs", help=directory_help)
    issue.add_argument("--organisations", help=organisations_help)
    issue.add_argument(
        "--force", action="store_true", help="replace the organisation's existing certificate"
    )
    issue.set_defaults(func=cmd_pki_issue)

"""`dk-adapter pki init`: a PKIoverheid-shaped development hierarchy (adapter.pki.devca)."""

from __future__ import annotations

import argparse
from pathlib import Path

from adapter.cli.base import Commands, ConfigLoader
from adapter.config import load_organisations


def cmd_pki_init(args: argparse.Namespace) -> int:
    from adapter.pki.devca import OrganisationSubject, init_dev_pki

    # Only the organisations file is needed: the PKI must be buildable before certs exist.
    config_file = Path(args.config).resolve()
    organisations_file = (
        Path(args.organisations)
        if args.organisations
        else config_file.parent / "organisations.toml"
    )
    organisations = load_organisations(organisations_file)
    directory = Path(args.dir)
    if args.if_missing and (directory / "root-ca.pem").exists():
        print(f"{directory}: development PKI already present")
        return 0
    files = init_dev_pki(
        directory,
        [OrganisationSubject(o.oin, o.name, o.kvk) for o in organisations.by_oin.values()],
        receipt_key=args.receipt_key,
        overwrite=args.force,
    )
    print(f"development PKI written to {directory} (trust anchor {files.root_ca})")
    for oin, client in files.clients.items():
        print(
            f"  {oin}: {client.certificate} (key {client.private_key.name}, {client.pkcs12.name})"
        )
    return 0


def register(commands: Commands, config_loader: ConfigLoader) -> None:
    """`pki init` reads `--config` only for its directory, never through `config_loader`.

    The full configuration names certificates that `pki init` is about to create.
    """
    pki = commands.add_parser("pki", help="development PKI").add_subparsers(
        dest="pki", required=True
    )
    init = pki.add_parser("init", help="build a PKIoverheid-shaped test hierarchy")
    init.add_argument("--dir", default="certs")
    init.add_argument("--organisations", help="organisations.toml (default: next to --config)")
    init.add_argument("--receipt-key", choices=("ecdsa-p256", "rsa-3072"), default="ecdsa-p256")
    init.add_argument("--force", action="store_true", help="replace an existing hierarchy")
    init.add_argument("--if-missing", action="store_true", help="do nothing when one exists")
    init.set_defaults(func=cmd_pki_init)

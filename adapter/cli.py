"""`dk-adapter`: serve, check configuration, build the dev PKI, import accounts, verify receipts."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from lxml import etree

from adapter.config import Config, ConfigError, check_files, load_config, load_organisations

DEFAULT_CONFIG = "conf/adapter.toml"
IMPORT_CHUNK = 1000


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def cmd_serve(args: argparse.Namespace) -> int:
    from adapter.transport.server import serve

    config = _config(args)
    check_files(config)
    openssl_conf = config.tls.openssl_conf
    if openssl_conf is not None and os.environ.get("OPENSSL_CONF") != str(openssl_conf):
        # OpenSSL reads its configuration once, when the ssl module loads: start afresh with it.
        os.execve(  # noqa: S606 - re-executing ourselves with a fixed argv, no shell
            sys.executable,
            [sys.executable, "-m", "adapter.cli", *sys.argv[1:]],
            {**os.environ, "OPENSSL_CONF": str(openssl_conf)},
        )
    serve(config)
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _config(args)
    check_files(config)
    print(f"{config.file}: OK")
    server = config.server
    print(f"  listens on {server.host}:{server.port}, public URL {server.public_url}")
    print(f"  database {config.database_url.split('://')[0]}")
    print(f"  {len(config.organisations.by_oin)} organisations from {config.organisations_file}")
    return 0


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


def cmd_accounts_import(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from adapter.store.accounts import read_accounts_csv, upsert_accounts
    from adapter.store.db import Database

    config = _config(args)
    path = Path(args.file)
    with path.open(encoding="utf-8", newline="") as handle:
        total = max(sum(1 for _ in handle) - 1, 0)
    database = Database(config.database_url)
    database.create_schema()
    count = 0
    # One transaction: a bad line anywhere leaves the stored accounts as they were.
    with database.transaction() as session, path.open(encoding="utf-8", newline="") as handle:
        chunk = []
        with tqdm(total=total, unit="line", disable=args.quiet, file=sys.stderr) as progress:
            for row in read_accounts_csv(handle, str(path)):
                chunk.append(row)
                if len(chunk) == IMPORT_CHUNK:
                    upsert_accounts(session, chunk)
                    progress.update(len(chunk))
                    count += len(chunk)
                    chunk = []
            if chunk:
                upsert_accounts(session, chunk)
                progress.update(len(chunk))
                count += len(chunk)
    database.dispose()
    print(f"{count} lines imported from {path}")
    return 0


def cmd_verify_receipt(args: argparse.Namespace) -> int:
    from adapter.receipts import ReceiptInvalid, verify
    from adapter.soap.xml import parse_untrusted

    trusted = Path(args.trusted_pem) if args.trusted_pem else _config(args).tls.trust_anchors
    try:
        verified = verify(parse_untrusted(Path(args.file).read_bytes()), trusted)
    except ReceiptInvalid as exc:
        print(f"INVALID: {exc}")
        return 1
    receipt = verified.receipt
    outcome = receipt.outcome
    print("VALID: signature, certificate chain and signer check out")
    print(f"  signed by          {verified.signer_subject}")
    print(f"  receipt            {receipt.receipt_id} (request {receipt.request_id})")
    print(f"  sender → receiver  {receipt.sender_oin} → {receipt.receiver_oin}")
    print(f"  received at (UTC)  {receipt.received_at.isoformat()}")
    print(f"  service/operation  {receipt.service} / {receipt.operation}")
    print(f"  message id         {receipt.message_ref or '-'}")
    print(f"  SHA-256 of Body    {receipt.body_hash}")
    if outcome.berichten:
        for bericht in outcome.berichten:
            print(f"  bericht {bericht.bericht_id}: {bericht.verwerkingscode}")
    elif outcome.accepted:
        print("  outcome            Geaccepteerd")
    else:
        print(f"  outcome            Geweigerd {outcome.code}: {outcome.reason}")
    if args.show:
        print(etree.tostring(verified.element, pretty_print=True, encoding="unicode"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dk-adapter", description=__doc__)
    parser.add_argument(
        "--config",
        default=os.environ.get("DK_ADAPTER_CONFIG", DEFAULT_CONFIG),
        help="adapter.toml (default: $DK_ADAPTER_CONFIG or conf/adapter.toml)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("serve", help="serve over mutual TLS").set_defaults(func=cmd_serve)
    commands.add_parser("check-config", help="validate the configuration").set_defaults(
        func=cmd_check_config
    )

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

    accounts = commands.add_parser("accounts", help="accounts and subscriptions")
    accounts_commands = accounts.add_subparsers(dest="accounts", required=True)
    load = accounts_commands.add_parser("import", help="load or update accounts from CSV")
    load.add_argument("file")
    load.add_argument("--quiet", action="store_true", help="no progress bar")
    load.set_defaults(func=cmd_accounts_import)

    check = commands.add_parser("verify-receipt", help="verify a signed Afleverbevestiging")
    check.add_argument("file", help="a SOAP response or a stand-alone receipt")
    check.add_argument("--trusted-pem", help="root certificate (default: tls.trust_anchors)")
    check.add_argument("--show", action="store_true", help="print the verified receipt XML")
    check.set_defaults(func=cmd_verify_receipt)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, FileExistsError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())

"""`dk-adapter accounts import FILE`: load or update accounts and subscriptions from CSV."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from adapter.cli.base import Commands, ConfigLoader

IMPORT_CHUNK = 1000


def cmd_accounts_import(args: argparse.Namespace, config_loader: ConfigLoader) -> int:
    from tqdm import tqdm

    from adapter.store.accounts import read_accounts_csv
    from adapter.store.db import Database

    config = config_loader(args)
    path = Path(args.file)
    with path.open(encoding="utf-8", newline="") as handle:
        total = max(sum(1 for _ in handle) - 1, 0)
    database = Database(config.database_url)
    database.create_schema()
    count = 0
    # One transaction: a bad line anywhere leaves the stored accounts as they were.
    with database.repositories() as stores, path.open(encoding="utf-8", newline="") as handle:
        chunk = []
        with tqdm(total=total, unit="line", disable=args.quiet, file=sys.stderr) as progress:
            for row in read_accounts_csv(handle, str(path)):
                chunk.append(row)
                if len(chunk) == IMPORT_CHUNK:
                    stores.accounts.upsert(chunk)
                    progress.update(len(chunk))
                    count += len(chunk)
                    chunk = []
            if chunk:
                stores.accounts.upsert(chunk)
                progress.update(len(chunk))
                count += len(chunk)
    database.dispose()
    print(f"{count} lines imported from {path}")
    return 0


def register(commands: Commands, config_loader: ConfigLoader) -> None:
    accounts = commands.add_parser("accounts", help="accounts and subscriptions")
    accounts_commands = accounts.add_subparsers(dest="accounts", required=True)
    load = accounts_commands.add_parser("import", help="load or update accounts from CSV")
    load.add_argument(
        "file", metavar="FILE.csv", help="bsn,active,email,subscriptions (OINs joined by ;)"
    )
    load.add_argument("--quiet", action="store_true", help="no progress bar")
    load.set_defaults(func=lambda args: cmd_accounts_import(args, config_loader))

"""`dk-adapter db upgrade` and `dk-adapter db current`: the schema's Alembic revision."""

from __future__ import annotations

import argparse

from adapter.cli.base import Commands, ConfigLoader
from adapter.store.migrate import database_revision, head_revision, upgrade_database

UPGRADE_HINT = "run `dk-adapter db upgrade`"


def cmd_upgrade(args: argparse.Namespace, config_loader: ConfigLoader) -> int:
    before, after = upgrade_database(config_loader(args).database_url)
    if before == after:
        print(f"database already at head {after}")
    else:
        print(f"database upgraded from {before or '(empty)'} to {after} (head)")
    return 0


def cmd_current(args: argparse.Namespace, config_loader: ConfigLoader) -> int:
    current, has_tables = database_revision(config_loader(args).database_url)
    head = head_revision()
    if current is None:
        state = "tables made before migrations" if has_tables else "empty database"
        print(f"current revision: none ({state}); head is {head}: {UPGRADE_HINT}")
        return 1
    if current != head:
        print(f"current revision: {current}; head is {head}: {UPGRADE_HINT}")
        return 1
    print(f"current revision: {current} (head)")
    return 0


def register(commands: Commands, config_loader: ConfigLoader) -> None:
    db = commands.add_parser("db", help="database schema migrations (Alembic)")
    db_commands = db.add_subparsers(dest="db", required=True)
    db_commands.add_parser(
        "upgrade", help="migrate the database to the newest revision (also done on start-up)"
    ).set_defaults(func=lambda args: cmd_upgrade(args, config_loader))
    db_commands.add_parser(
        "current", help="show the database's revision; exit 1 unless it is at head"
    ).set_defaults(func=lambda args: cmd_current(args, config_loader))

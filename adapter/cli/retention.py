"""`dk-adapter retention run`: delete what has outlived its retention (adapter.jobs.retention)."""

from __future__ import annotations

import argparse

from adapter.cli.base import Commands, ConfigLoader


def cmd_retention_run(args: argparse.Namespace, config_loader: ConfigLoader) -> int:
    from datetime import date

    from adapter.jobs.retention import purge_expired_zaken
    from adapter.store.db import Database

    config = config_loader(args)
    database = Database(config.database_url)
    database.create_schema()
    removed = purge_expired_zaken(database, config.lopende_zaken.retention_days, date.today())
    database.dispose()
    print(f"{removed} closed zaken older than {config.lopende_zaken.retention_days} days removed")
    return 0


def register(commands: Commands, config_loader: ConfigLoader) -> None:
    retention = commands.add_parser("retention", help="delete what has outlived its retention")
    retention.add_subparsers(dest="retention", required=True).add_parser(
        "run", help="delete closed zaken older than lopende_zaken.retention_days"
    ).set_defaults(func=lambda args: cmd_retention_run(args, config_loader))

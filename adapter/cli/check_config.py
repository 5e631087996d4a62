"""`dk-adapter check-config`: the start-up validation of the configuration, without starting."""

from __future__ import annotations

import argparse

from adapter.cli.base import Commands, ConfigLoader
from adapter.config import check_files


def cmd_check_config(args: argparse.Namespace, config_loader: ConfigLoader) -> int:
    config = config_loader(args)
    check_files(config)
    print(f"{config.file}: OK")
    server = config.server
    print(f"  listens on {server.host}:{server.port}, public URL {server.public_url}")
    print(f"  database {config.database_url.split('://')[0]}")
    print(f"  {len(config.organisations.by_oin)} organisations from {config.organisations_file}")
    return 0


def register(commands: Commands, config_loader: ConfigLoader) -> None:
    commands.add_parser("check-config", help="validate the configuration").set_defaults(
        func=lambda args: cmd_check_config(args, config_loader)
    )

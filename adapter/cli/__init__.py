"""`dk-adapter`: serve, administer, and the organisation's side (send, send-zaak, verify-receipt).

One module per command group registers its commands (`register(commands, config_loader)`);
this module only builds the parser from them and turns the errors a command may raise into
an exit status, so no room elsewhere adds commands of its own.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from adapter.cli.base import report_database_error
from adapter.config import Config, ConfigError, load_config
from adapter.errors import Rejected, SoapFault, StoreUnavailable

DEFAULT_CONFIG = "conf/adapter.toml"
DESCRIPTION = (
    "The MijnOverheid Digikoppeling adapter: serve it, administer it, and play an "
    "organisation's side against it. `dk-adapter COMMAND --help` explains each command."
)

# In the order `dk-adapter --help` lists them; modules of adapter.cli, loaded when needed.
COMMAND_GROUPS = (
    "serve",
    "check_config",
    "pki",
    "accounts",
    "verify_receipt",
    "kit",
    "cpa",
    "db",
    "audit",
    "usage",
    "retention",
    "messages",
    "conformance",
)


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def build_parser(groups: Sequence[str] = COMMAND_GROUPS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dk-adapter", description=DESCRIPTION)
    parser.add_argument(
        "--config",
        default=os.environ.get("DK_ADAPTER_CONFIG", DEFAULT_CONFIG),
        help="adapter.toml (default: $DK_ADAPTER_CONFIG or conf/adapter.toml)",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, title="commands", metavar="COMMAND"
    )
    for group in groups:
        _group(group).register(commands, _config)
    return parser


def _group(name: str) -> ModuleType:
    return importlib.import_module(f"adapter.cli.{name}")


def _groups_for(argv: Sequence[str]) -> Sequence[str]:
    """The command groups the parser needs for `argv`: all of them, but `serve` alone.

    `serve` re-executes itself first thing (adapter.cli.serve), and the modules of the other
    commands (the store, the kit, XML and PDF libraries) took a second or more to load in the
    process it replaces.
    """
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--config")
    first.add_argument("command", nargs="?")
    known, _rest = first.parse_known_args(argv)
    return ("serve",) if known.command == "serve" else COMMAND_GROUPS


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_groups_for(arguments)).parse_args(arguments)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # `db upgrade` reports what it did
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except SoapFault as exc:  # a value the command checks as the server would
        print(f"error: {exc.reason}", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:  # a command without a message of its own for it
        return report_database_error(exc)
    except Rejected as exc:  # a file the safe parser or a schema refuses, as the server would
        print(f"error: {exc.reason}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:  # requests' RequestException is an OSError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return result

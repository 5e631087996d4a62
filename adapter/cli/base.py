"""What every command-group module of the CLI shares: how it is registered, how it reports.

Each module of `adapter.cli` exposes `register(commands, config_loader)`, which adds its
subcommands to `commands` and sets `func(args) -> int` (the exit status) on each of them.
The configuration is read only when a command runs, through `config_loader`, so `--help`
and a bad `--config` never depend on each other.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TypeAlias

from adapter.config import Config
from adapter.errors import StoreUnavailable

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
ConfigLoader = Callable[[argparse.Namespace], Config]


def report_database_error(exc: StoreUnavailable) -> int:
    """Say on stderr that the database failed, in one line; the exit status for that (2)."""
    print(f"error: database: {exc.reason.splitlines()[0][:200]}", file=sys.stderr)
    return 2

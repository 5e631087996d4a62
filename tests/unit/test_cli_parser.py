"""The CLI's parser: every command group for every command, but `serve` alone for serve."""

from __future__ import annotations

import subprocess
import sys

import pytest

from adapter.cli import COMMAND_GROUPS, _groups_for, build_parser


@pytest.mark.parametrize(
    "argv",
    [["serve"], ["--config", "conf/x.toml", "serve"], ["--config=conf/x.toml", "serve", "--help"]],
)
def test_serve_needs_only_its_own_group(argv: list[str]) -> None:
    assert _groups_for(argv) == ("serve",)


@pytest.mark.parametrize(
    "argv", [[], ["--help"], ["accounts", "import"], ["--config", "serve", "check-config"]]
)
def test_other_commands_get_every_group(argv: list[str]) -> None:
    assert _groups_for(argv) == COMMAND_GROUPS


def test_every_group_registers_its_commands() -> None:
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"serve", "send", "accounts", "audit", "db"} <= set(commands)


def test_serve_loads_no_library_of_the_server_before_it_re_executes_itself() -> None:
    # OpenSSL reads OPENSSL_CONF and prometheus_client PROMETHEUS_MULTIPROC_DIR when they load:
    # serve re-executes itself with both set, so what it loads before that is loaded twice.
    probe = (
        "import sys\n"
        "from adapter.cli import _groups_for, build_parser\n"
        "build_parser(_groups_for(['serve'])).parse_args(['serve'])\n"
        "print(sorted(m for m in ('ssl', 'sqlalchemy', 'lxml', 'prometheus_client', 'requests')"
        " if m in sys.modules))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"

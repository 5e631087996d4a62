"""The layering is a contract: `.importlinter` states it, and this test keeps the house to it.

transport/ imports no profile and no business; the profiles import no business; business
rooms use descriptor types, not pipelines; only store/ speaks SQL; no server module imports
the kit; no import circles. A broken contract names the offending import line.
"""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = ROOT / ".importlinter"


def test_every_layering_contract_is_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), str(CONTRACTS), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout, result.stdout


def test_the_contracts_cover_every_room_of_the_adapter() -> None:
    contracts = configparser.ConfigParser()
    contracts.read(CONTRACTS)
    sql = contracts["importlinter:contract:sql"]["source_modules"].split()
    kit = contracts["importlinter:contract:kit"]["source_modules"].split()
    rooms = {
        f"adapter.{p.stem if p.is_file() else p.name}"
        for p in (ROOT / "adapter").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()
    }
    # A new room must be placed in the contracts, or SQL and kit imports there go unchecked.
    assert rooms - {"adapter.store"} == set(sql)
    assert rooms - {"adapter.kit", "adapter.cli"} == set(kit)

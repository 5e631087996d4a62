"""Fuzz target: a CPA file through the validating reader (`adapter.ebms.cpa.load_cpa`).

CPAs come from the organisations (through the operator), so the reader must refuse a broken
one with a `CpaError` naming file, place and reason, never fail otherwise. The reader works on
files: each input is written to one file in a temporary directory and read back from there.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from adapter.ebms.cpa import CpaError, load_cpa
from adapter.errors import AdapterError

# In memory where there is a tmpfs: rewriting a file on disk costs more than reading the CPA.
_SHM = Path("/dev/shm")  # noqa: S108 - mkdtemp makes a private directory in it
_DIRECTORY = Path(tempfile.mkdtemp(prefix="fuzz-cpa-", dir=_SHM if _SHM.is_dir() else None))
atexit.register(shutil.rmtree, _DIRECTORY, ignore_errors=True)
_FILE = _DIRECTORY / "cpa.xml"
NOW = datetime(2025, 1, 1, tzinfo=UTC)


def fuzz_one(data: bytes) -> str:
    """One input; "accepted", or the name of the refusal."""
    _FILE.write_bytes(data)
    try:
        cpa = load_cpa(_FILE)
    except CpaError as error:
        str(error)
        return type(error).__name__
    except AdapterError as error:
        return type(error).__name__
    # What the endpoint and the outbox ask of a CPA once it is loaded.
    cpa.is_active(NOW)
    for party in cpa.parties:
        cpa.other(party.oin)
    return "accepted"

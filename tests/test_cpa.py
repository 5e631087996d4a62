"""The example CPAs in conf/cpa: each reads as the organisation and MijnOverheid agreed.

The reader's rules, its refusals and the store's lookups are tested on a CPA built in the
test, in tests/unit/test_ebms_cpa.py; this module is about the agreements the adapter ships.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapter.config import load_organisations
from adapter.ebms.cpa import CpaParty, CpaStore, check_cpa, load_cpa
from tests.conftest import CONF

CPA_DIR = CONF / "cpa"
MIJNOVERHEID = "00000004003214345001"
SERVICE = "urn:osb:services:MIJNOVERHEID.ebMS.BB.2.0"
# BerichtVerwerk and AbonnementAanvraag, both on the Berichtenbox service.
REQUESTS = frozenset({"GLOBE-R-BV-Request", "GLOBE-R-A-Request"})
RESULTS = frozenset({"GLOBE-R-BV-Result", "GLOBE-R-A-Result"})
ORGANISATIONS = ("00000099000000001000", "00000099000000002000", "00000099000000003000")


def cpa_id(oin: str) -> str:
    return f"MIJNOVERHEID-EBMS-BB-2-0_{oin}_{MIJNOVERHEID}_1"


def example(oin: str = "00000099000000002000") -> Path:
    return CPA_DIR / f"{cpa_id(oin)}.xml"


def party(
    oin: str,
    role: str,
    sends: frozenset[str],
    receives: frozenset[str],
    endpoint: str,
    sync_reply_mode: str,
) -> CpaParty:
    """A side of an example CPA: the osb-rm profile with the CPA Register's defaults."""
    return CpaParty(
        oin=oin,
        party_id_type="urn:osb:oin",
        role=role,
        endpoint=endpoint,
        can_send=sends,
        can_receive=receives,
        service=SERVICE,
        service_type="urn:osb:services",
        sync_reply_mode=sync_reply_mode,
        ack_requested="always",
        duplicate_elimination="always",
        retries=8,
        retry_interval=timedelta(hours=3),
        persist_duration=timedelta(days=1),
    )


@pytest.mark.parametrize("oin", ORGANISATIONS)
def test_each_example_cpa_reads_as_the_organisation_and_mijnoverheid_agreed(oin: str) -> None:
    cpa = load_cpa(example(oin))
    assert cpa.cpa_id == cpa_id(oin)
    assert cpa.source == example(oin)
    assert cpa.start == datetime(2026, 11, 1, tzinfo=UTC)
    assert cpa.end == datetime(2029, 11, 1, tzinfo=UTC)
    sync = "mshSignalsOnly" if oin == "00000099000000002000" else "none"
    assert cpa.parties == (
        party(oin, "SR", REQUESTS, RESULTS, "https://127.0.0.1:8444/ebms", sync),
        party(
            MIJNOVERHEID, "SP", RESULTS, REQUESTS, "https://127.0.0.1:8443/berichtenbox/ebms", sync
        ),
    )


@pytest.mark.parametrize("oin", ORGANISATIONS)
def test_each_example_cpa_passes_the_check(oin: str) -> None:
    assert check_cpa(example(oin)) == []


def test_there_is_one_example_cpa_per_organisation_with_berichtverwerk() -> None:
    organisations = load_organisations(CONF / "organisations.toml")
    with_service = {
        org.oin for org in organisations.by_oin.values() if "BerichtVerwerk" in org.services
    }
    store = CpaStore.load(CPA_DIR)
    assert {cpa.other(MIJNOVERHEID).oin for cpa in store} == with_service
    assert len(store) == len(with_service)


def test_the_store_loads_every_example_and_finds_them_by_cpa_id() -> None:
    store = CpaStore.load(CPA_DIR)
    assert len(store) == 3
    found = store.get(cpa_id("00000099000000003000"))
    assert found is not None and found.parties[0].oin == "00000099000000003000"
    assert store.get("MIJNOVERHEID-EBMS-BB-2-0_example") is None

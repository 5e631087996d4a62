"""The CPAs the adapter knows: loaded from one directory at start-up, looked up per message."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from adapter.ebms.cpa.model import Cpa
from adapter.ebms.cpa.reader import ROOT, CpaError, load_cpa


class CpaStore:
    """The CPAs the adapter knows, by CPAId; CPAIds are unique."""

    def __init__(self, cpas: Iterable[Cpa] = ()) -> None:
        self._by_id: dict[str, Cpa] = {}
        for cpa in cpas:
            known = self._by_id.get(cpa.cpa_id)
            if known is not None:
                raise CpaError(
                    cpa.source,
                    f"{ROOT}/@cpaid",
                    f"CPAId {cpa.cpa_id} is also used by {known.source}",
                )
            self._by_id[cpa.cpa_id] = cpa

    @classmethod
    def load(cls, directory: Path) -> CpaStore:
        """Every `*.xml` in `directory` (not recursive), in name order."""
        directory = Path(directory)
        if not directory.is_dir():
            raise CpaError(directory, "-", "CPA directory not found")
        return cls(load_cpa(path) for path in sorted(directory.glob("*.xml")))

    def __iter__(self) -> Iterator[Cpa]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, cpa_id: str) -> Cpa | None:
        return self._by_id.get(cpa_id)

    def for_parties(
        self, from_oin: str, to_oin: str, service: str, action: str, at: datetime | None = None
    ) -> Cpa | None:
        """The CPA under which `from_oin` may send `action` of `service` to `to_oin`.

        When several match (a CPA and its successor), one active at `at` (default: now) wins,
        then the latest Start. When none is active the latest is still returned, so the caller
        can say that the CPA has expired rather than that none exists: check `is_active`.
        """
        moment = at or datetime.now(UTC)
        matches = []
        for cpa in self._by_id.values():
            sender, receiver = cpa.party(from_oin), cpa.party(to_oin)
            if sender is None or receiver is None or sender is receiver:
                continue
            if sender.service == service and action in sender.can_send & receiver.can_receive:
                matches.append(cpa)
        if not matches:
            return None
        return max(matches, key=lambda cpa: (cpa.is_active(moment), cpa.start))

"""The usage repository: what each OIN did in a period, counted inside the database.

Three things are counted per OIN (adapter/usage.py turns them into the report and its money):

* **letters**: rows of `berichten` by `leverancier_oin`. Only letters accepted and stored
  (verwerkingscode `Verwerkt`) have a row; a letter refused with another code has none, and
  a letter whose content the citizen removed keeps its row. An intermediary's letters count
  for the organisation it delivered for (the BerichtLeverancierID), not for the intermediary.
* **status updates**: rows of `zaak_statussen` of the zaken (`zaken.oin`) of the OIN. A
  status sent again (STATUS_AL_BEKEND) is stored, and counted, once. Zaken removed by
  `retention run` take their statuses with them.
* **ValidateAbonnementen calls**: stored receipts of that service with outcome
  `Geaccepteerd`, counted for the caller (`sender_oin`, an intermediary's own OIN).

A period is [start, end) on `received_at`, in UTC like every moment in the store. One
statement counts two adjacent periods at once, [start, split) and [split, end) (the year up
to a month, and the month), so both come from one snapshot and add up. Each part is an
aggregate per OIN (COUNT ... GROUP BY) over the `received_at` indexes, so millions of rows are
counted in the database and read back as a few rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, literal, select, union_all
from sqlalchemy.orm import Session

from adapter.store.db import reading_session
from adapter.store.models import Bericht, ReceiptOutcome, StoredReceipt, Zaak, ZaakStatus

VALIDATE_SERVICE = "ValidateAbonnementen"


@dataclass(frozen=True)
class Counts:
    """What one OIN did in one period."""

    letters: int = 0
    status_updates: int = 0
    validate_requests: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.letters + other.letters,
            self.status_updates + other.status_updates,
            self.validate_requests + other.validate_requests,
        )


@dataclass(frozen=True)
class SplitCounts:
    """Counts per OIN in [start, split) (`earlier`) and in [split, end) (`later`).

    An OIN that did nothing in a period is absent from that period's mapping.
    """

    earlier: Mapping[str, Counts]
    later: Mapping[str, Counts]

    def oins(self) -> set[str]:
        return set(self.earlier) | set(self.later)


class Usage:
    """The usage counts of one session (a reading one: see `reading_usage`)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def counts(self, start: datetime, split: datetime, end: datetime) -> SplitCounts:
        """Counts per OIN for [start, split) and [split, end), from one statement."""
        if not start <= split <= end:
            raise ValueError(f"periods out of order: {start} <= {split} <= {end} does not hold")

        def part(kind: str, oin: Any, moment: Any) -> Any:
            # COUNT ignores NULLs: each CASE counts the rows on its side of the split.
            return select(
                literal(kind).label("kind"),
                oin.label("oin"),
                func.count(case((moment < split, 1))).label("earlier"),
                func.count(case((moment >= split, 1))).label("later"),
            ).where(moment >= start, moment < end)

        letters = part("letters", Bericht.leverancier_oin, Bericht.received_at).group_by(
            Bericht.leverancier_oin
        )
        statuses = (
            part("status_updates", Zaak.oin, ZaakStatus.received_at)
            .select_from(ZaakStatus)
            .join(Zaak, Zaak.id == ZaakStatus.zaak_id)
            .group_by(Zaak.oin)
        )
        validations = (
            part("validate_requests", StoredReceipt.sender_oin, StoredReceipt.received_at)
            .where(
                StoredReceipt.service == VALIDATE_SERVICE,
                StoredReceipt.outcome == ReceiptOutcome.ACCEPTED,
            )
            .group_by(StoredReceipt.sender_oin)
        )
        earlier: dict[str, dict[str, int]] = {}
        later: dict[str, dict[str, int]] = {}
        for kind, oin, before, after in self.session.execute(
            union_all(letters, statuses, validations)
        ):
            if before:
                earlier.setdefault(oin, {})[kind] = int(before)
            if after:
                later.setdefault(oin, {})[kind] = int(after)
        return SplitCounts(
            earlier={oin: Counts(**kinds) for oin, kinds in earlier.items()},
            later={oin: Counts(**kinds) for oin, kinds in later.items()},
        )


@contextmanager
def reading_usage(database_url: str) -> Iterator[Usage]:
    """The usage repository on a reading session: a long count never holds up the writers.

    A database that fails or cannot be reached raises `adapter.errors.StoreUnavailable`.
    """
    with reading_session(database_url) as session:
        yield Usage(session)

"""What a conformance run produces: cases, their findings, and a report with one exit status.

A case that could not be run is never counted as passed. Cases the kit cannot run yet
(encrypted or best-effort signed ebMS), or not as given (osb-rm-s without its CPA, a WUS
case for another WUS profile than the organisation's) are listed as `NOT_RUN` and marked
not required, so they do not fail a run, yet every report
says in words that they were not proven; a required case that could not run fails the run
like a failed one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

# The WUS profile of the client's organisation, which decides what the kit sends: unsigned
# requests (2W-be, which stands for no profile as well), or signed (and encrypted) ones.
WUS_PROFILES = ("2W-be", "2W-be-S", "2W-be-SE")


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_RUN = "not run"


@dataclass(frozen=True)
class Finding:
    """One thing that is wrong: what, the rule it breaks (a SPEC reference), how to fix it."""

    message: str
    rule: str
    fix: str
    severity: str = "error"  # "error" fails the case; "warning" is reported only


@dataclass(frozen=True)
class Exchange:
    """One request and its answer as they went over the wire, for the report of a failure."""

    title: str
    request: bytes
    response: bytes
    http_status: int | None = None


@dataclass(frozen=True)
class CaseResult:
    case_id: str
    title: str
    group: str  # "wus", "ebms", "client"
    rule: str  # the SPEC rule the case checks
    status: Status
    findings: tuple[Finding, ...] = ()
    exchanges: tuple[Exchange, ...] = ()
    reason: str | None = None  # why a case was not run
    required: bool = True
    seconds: float = 0.0

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")


@dataclass
class Report:
    """All results of one run (server mode) or one listening session (client mode)."""

    mode: str  # "server" or "client"
    target: str
    started: datetime
    results: list[CaseResult] = field(default_factory=list)

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status is status)

    @property
    def unrun_required(self) -> Sequence[CaseResult]:
        return [r for r in self.results if r.status is Status.NOT_RUN and r.required]

    @property
    def passed(self) -> bool:
        """True only when every case that ran passed and no required case was left unrun."""
        return bool(self.results) and self.count(Status.FAILED) == 0 and not self.unrun_required

    def exit_status(self) -> int:
        return 0 if self.passed else 1

    def summary(self) -> str:
        text = (
            f"{self.count(Status.PASSED)} passed, {self.count(Status.FAILED)} failed, "
            f"{self.count(Status.NOT_RUN)} not run"
        )
        if not self.results:
            return text + ": nothing was tested"
        if self.count(Status.NOT_RUN):
            text += " (not run is not passed: those cases prove nothing)"
        return text + (": CONFORMANT for the cases run" if self.passed else ": NOT CONFORMANT")

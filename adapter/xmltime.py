"""The one way the adapter writes a moment into XML: xs:dateTime in UTC with milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_millis(moment: datetime) -> str:
    """E.g. 2026-11-23T12:00:00.123Z; `moment` must be timezone-aware."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"

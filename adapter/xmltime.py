"""The one way the adapter writes a moment into XML: xs:dateTime in UTC with milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_millis(moment: datetime) -> str:
    """E.g. 2026-11-23T12:00:00.123Z; `moment` must be timezone-aware."""
    # isoformat, not strftime: the same text for years 1000-9999, in a tenth of the time.
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"

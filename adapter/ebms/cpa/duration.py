"""xs:duration texts, as CPAs state retry intervals and persist durations, read as timedeltas.

Only the part of xs:duration that has a fixed length is accepted: days, hours, minutes and
seconds. It lives apart from the reader because the retry schedule and the configuration use
the same rule.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

_DURATION = re.compile(
    r"P(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?"
)


def parse_duration(text: str) -> timedelta:
    """An xs:duration of days, hours, minutes and seconds (`P1DT2H`, `PT0.5S`) as a timedelta.

    Years and months are refused: they have no fixed length, and a retry schedule must not
    depend on the calendar. Raises ValueError saying why a text is not accepted.
    """
    value = text.strip()
    if value.startswith("-"):
        raise ValueError(f"{text!r} is negative; a duration here must not be")
    match = _DURATION.fullmatch(value)
    if match is None:
        date_part = value.partition("T")[0]
        if value.startswith("P") and ("Y" in date_part or "M" in date_part):
            raise ValueError(
                f"{text!r} uses years or months, which have no fixed length; use days (P30D)"
            )
        if value.startswith("P") and "W" in date_part:
            raise ValueError(f"{text!r} uses weeks, which xs:duration has not; use days (P7D)")
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as PT3H, P1D or PT0.5S")
    parts = match.groupdict()
    if all(part is None for part in parts.values()) or value.endswith("T"):
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as PT3H, P1D or PT0.5S")
    microseconds = int(Decimal(parts["seconds"] or "0") * 1_000_000)
    try:
        return timedelta(
            days=int(parts["days"] or 0),
            hours=int(parts["hours"] or 0),
            minutes=int(parts["minutes"] or 0),
            microseconds=microseconds,
        )
    except OverflowError:
        raise ValueError(f"{text!r} is too long a duration") from None

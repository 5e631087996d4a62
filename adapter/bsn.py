"""The burgerservicenummer: nine digits that pass the elfproef.

Checked for every Klant of every request (250 in a full ValidateAbonnementen), where
python-stdnum's general validator (it cleans separators, converts to an int, pads eight digits
to nine) cost eight times this check; the account import, which accepts separators, still
uses stdnum's `compact` before it.
"""

from __future__ import annotations

_DIGITS = frozenset("0123456789")  # ASCII only: str.isdigit also accepts '٣' and '²'
# The weights 9, 8, ..., 2, -1 sum to 43: what the ASCII code of '0' adds to the sum.
_ASCII_ZERO_SUM = 43 * ord("0")


def is_bsn(value: str) -> bool:
    """Whether `value` is exactly nine ASCII digits, not all zero, passing the elfproef
    (9*d1 + 8*d2 + ... + 2*d8 - d9 is a multiple of 11)."""
    if len(value) != 9 or not _DIGITS.issuperset(value) or value == "000000000":
        return False
    d = value.encode("ascii")
    weighted = 9 * d[0] + 8 * d[1] + 7 * d[2] + 6 * d[3] + 5 * d[4] + 4 * d[5] + 3 * d[6]
    return (weighted + 2 * d[7] - d[8] - _ASCII_ZERO_SUM) % 11 == 0

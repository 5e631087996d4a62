"""The burgerservicenummer: nine digits that pass the elfproef.

Checked for every Klant of every request (250 in a full ValidateAbonnementen), where
python-stdnum's general validator (it cleans separators, converts to an int, pads eight digits
to nine) cost eight times this check; the account import, which accepts separators, still
uses stdnum's `compact` before it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

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


# `first_invalid` checks many BSNs in a few calls that each run over all of them in C. Joined
# by newlines, they are nine ASCII digits each exactly when one regular expression matches and
# the length is 10 per BSN less one (a newline inside a value would make a segment too many).
# Then for digit position p (weight 9, 8, ..., 2, -1), a table turns each digit's ASCII code into
# its weighted value modulo 11 (0..10); the translated digits of one position, one byte per BSN,
# read as one big integer; the nine integers added: byte i of the sum is BSN i's elfproef sum
# modulo 11, not yet reduced (at most 9 x 10 = 90, so no byte carries into the next).
_JOINED_BSNS = re.compile(r"[0-9]{9}(?:\n[0-9]{9})*")
_WEIGHTED = tuple(
    bytes.maketrans(b"0123456789", bytes(weight * digit % 11 for digit in range(10)))
    for weight in (9, 8, 7, 6, 5, 4, 3, 2, -1)
)
_FAILS = bytes(0 if total % 11 == 0 else 1 for total in range(256))


def first_invalid(values: Sequence[str]) -> int | None:
    """The index of the first of `values` that `is_bsn` refuses; None when it accepts all.

    For the 250 Klanten of a full ValidateAbonnementen request, at a sixth of the cost of
    calling `is_bsn` for each.
    """
    joined = "\n".join(values)
    if (
        len(joined) != 10 * len(values) - 1
        or not _JOINED_BSNS.fullmatch(joined)
        or "000000000" in values
    ):
        # Something is not a BSN, or there is nothing: the plain check says which.
        return next((i for i, value in enumerate(values) if not is_bsn(value)), None)
    digits = joined.encode("ascii")
    total = sum(
        int.from_bytes(digits[position::10].translate(table), "big")
        for position, table in enumerate(_WEIGHTED)
    )
    failing = total.to_bytes(len(values), "big").translate(_FAILS).find(1)
    return None if failing < 0 else failing

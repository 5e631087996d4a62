"""adapter.bsn against python-stdnum's validator on the inputs both accept as nine digits, and
the batch check `first_invalid` against `is_bsn` one value at a time."""

from __future__ import annotations

import random

import pytest
from stdnum.nl import bsn as stdnum_bsn

from adapter.bsn import first_invalid, is_bsn


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("999993653", True),  # an example BSN of the test accounts
        ("111222333", True),
        ("123456782", True),
        ("123456789", False),  # fails the elfproef
        ("000000000", False),  # passes the sum, but is no number
        ("99999365", False),  # eight digits: stdnum pads them, a Key of eight is refused
        ("9999936530", False),
        ("99999365a", False),
        ("99999365٣", False),  # an Arabic-Indic digit: str.isdigit says yes
        ("999 993 653", False),
        ("", False),
    ],
)
def test_is_bsn(value: str, valid: bool) -> None:
    assert is_bsn(value) is valid


def test_agrees_with_stdnum_on_nine_digit_numbers() -> None:
    numbers = random.Random(12).sample(range(10**9), 20_000)
    for number in numbers:
        value = f"{number:09d}"
        assert is_bsn(value) is stdnum_bsn.is_valid(value), value
    assert sum(is_bsn(f"{n:09d}") for n in numbers) > 1000  # both sides of the answer seen


VALID = [n for n in random.Random(3).sample(range(10**9), 5000) if is_bsn(f"{n:09d}")]


def _plain_first_invalid(values: list[str]) -> int | None:
    return next((i for i, value in enumerate(values) if not is_bsn(value)), None)


ODD_VALUES = ["", "000000000", "12345678", "1234567890", "٣23456789", "12345678x", " 23456789"]
ODD_VALUES += ["123456789\n123456789", "\n", "99999365\n"]


def test_first_invalid_agrees_with_is_bsn_on_random_lists() -> None:
    rnd = random.Random(7)
    seen = set()
    for _ in range(20_000):
        values = []
        for _ in range(rnd.randint(0, 12)):
            draw = rnd.random()
            if draw < 0.5:
                values.append(f"{rnd.randrange(10**9):09d}")  # mostly failing the elfproef
            elif draw < 0.85:
                values.append(f"{rnd.choice(VALID):09d}")
            else:
                values.append(rnd.choice(ODD_VALUES))
        expected = _plain_first_invalid(values)
        assert first_invalid(values) == expected, values
        seen.add(expected is None)
    assert seen == {True, False}


@pytest.mark.parametrize("position", [0, 1, 124, 249])
def test_first_invalid_names_the_first_failing_klant_of_250(position: int) -> None:
    values = [f"{n:09d}" for n in VALID[:250]]
    assert first_invalid(values) is None
    values[position] = "123456789"  # nine digits, failing the elfproef
    values[-1] = "123456780"  # and another after it
    assert first_invalid(values) == (position if position < 249 else 249)

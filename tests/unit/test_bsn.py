"""adapter.bsn against python-stdnum's validator on the inputs both accept as nine digits."""

from __future__ import annotations

import random

import pytest
from stdnum.nl import bsn as stdnum_bsn

from adapter.bsn import is_bsn


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

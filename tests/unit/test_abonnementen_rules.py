"""ValidateAbonnementen's request rules on a parsed payload, without a server."""

from __future__ import annotations

import pytest

from adapter.berichtenbox.abonnementen import read_aanvraag
from adapter.config import load_organisations
from adapter.errors import InvalidRequest
from adapter.soap.envelope import parse_envelope
from tests.conftest import CONF, GEMEENTE
from tests.soap_helpers import aanvraag

ORGANISATION = load_organisations(CONF / "organisations.toml").by_oin[GEMEENTE]


@pytest.mark.parametrize("key", ["123456789", "9" * 10, "9" * 4301, "9" * 3_000_000, "99999365a"])
def test_a_key_that_is_no_bsn_of_any_length_is_refused_by_position(key: str) -> None:
    # Past 4300 digits stdnum's int() conversion raises ValueError instead of answering.
    payload = parse_envelope(aanvraag(["999993653", key], GEMEENTE)).payload
    with pytest.raises(InvalidRequest, match="Klant 2: Key is geen geldig BSN"):
        read_aanvraag(payload, ORGANISATION, 250)


def test_a_valid_bsn_is_read_as_its_key() -> None:
    payload = parse_envelope(aanvraag(["999993653"], GEMEENTE)).payload
    assert read_aanvraag(payload, ORGANISATION, 250).keys == ("999993653",)

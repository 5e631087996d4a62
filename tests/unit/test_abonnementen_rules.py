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


KEY = "999993653"
XSI = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'


def with_klanten(klanten: str) -> bytes:
    one = f"<k:Klant><k:Key>{KEY}</k:Key><k:Rol>Burger</k:Rol></k:Klant>"
    return aanvraag([KEY], GEMEENTE).replace(one.encode(), klanten.encode())


@pytest.mark.parametrize(
    "klanten",
    [
        # Plain keys (one text node each) are read in one go; whitespace is stripped.
        f"<k:Klant><k:Key> {KEY} </k:Key></k:Klant><k:Klant><k:Key>{KEY}</k:Key></k:Klant>",
        # Any other kind sends every Klant through the look-up per Klant: a comment inside a
        # Key (the whole text counts), a comment beside it, xsi:nil="false".
        f"<k:Klant><k:Key>9999<!---->93653</k:Key></k:Klant><k:Klant><k:Key>{KEY}</k:Key></k:Klant>",
        f"<k:Klant><!-- x --><k:Key>{KEY}</k:Key></k:Klant>"
        f'<k:Klant><k:Key {XSI} xsi:nil="false">{KEY}</k:Key></k:Klant>',
    ],
)
def test_keys_are_read_whole_and_in_order_however_they_are_written(klanten: str) -> None:
    payload = parse_envelope(with_klanten(klanten)).payload
    assert read_aanvraag(payload, ORGANISATION, 250).keys == (KEY, KEY)


@pytest.mark.parametrize(
    "second",
    [
        "<k:Klant/>",
        f'<k:Klant {XSI} xsi:nil="true"/>',
        f'<k:Klant><k:Key {XSI} xsi:nil="true"/></k:Klant>',
        "<k:Klant><k:Key/></k:Klant>",
    ],
)
def test_a_klant_without_a_key_to_read_is_refused_by_position(second: str) -> None:
    payload = parse_envelope(
        with_klanten(f"<k:Klant><k:Key>{KEY}</k:Key></k:Klant>{second}")
    ).payload
    with pytest.raises(InvalidRequest, match="Klant 2: Key is geen geldig BSN"):
        read_aanvraag(payload, ORGANISATION, 250)

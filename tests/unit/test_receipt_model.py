"""The Afleverbevestiging as a value: each outcome survives the trip to XML and back, and the
XML has the shape xsd/afleverbevestiging.xsd describes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from lxml import etree

from adapter.receipts.model import (
    NS,
    BerichtUitkomst,
    Outcome,
    Receipt,
    canonical,
    from_element,
    to_element,
)

A = f"{{{NS}}}"
BATCH = Outcome(
    accepted=True,
    berichten=(
        BerichtUitkomst("0b6e3c1a-1111-4222-8333-444455556666", "Verwerkt"),
        BerichtUitkomst("0b6e3c1a-1111-4222-8333-777788889999", "Geweigerd", "BSN onbekend"),
    ),
)


def receipt(outcome: Outcome | None = None, **changes: object) -> Receipt:
    values: dict[str, object] = {
        "request_id": "4f1c",
        "receiver_oin": "00000004003214345001",
        "sender_oin": "00000099000000002000",
        "received_at": datetime(2026, 11, 23, 12, 0, 0, 123000, tzinfo=UTC),
        "message_ref": "urn:uuid:5e7b",
        "service": "ValidateAbonnementen",
        "operation": "ValidateAbonnementen",
        "body_hash": "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        "outcome": outcome or Outcome.accept(),
        **changes,
    }
    return Receipt(**values)  # type: ignore[arg-type]


def uitkomst(original: Receipt) -> list[etree._Element]:
    """The children of the Uitkomst element of a receipt's XML form."""
    element = to_element(original).find(f"{A}Uitkomst")
    assert element is not None
    return list(element)


def round_trip(original: Receipt) -> Receipt:
    """Through serialised bytes, as a receipt travels, not only through the element tree."""
    return from_element(etree.fromstring(etree.tostring(to_element(original))))


# --- outcomes ----------------------------------------------------------------------------------


def test_accept_is_an_accepted_outcome_without_code_or_berichten() -> None:
    assert Outcome.accept() == Outcome(accepted=True, code=None, reason=None, berichten=())


def test_reject_is_a_refused_outcome_with_its_code_and_reason() -> None:
    outcome = Outcome.reject("0004", "0004 Niet conform xsd")
    assert (outcome.accepted, outcome.code, outcome.reason) == (
        False,
        "0004",
        "0004 Niet conform xsd",
    )
    assert outcome.berichten == ()


# --- the round trip ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "outcome",
    [
        pytest.param(Outcome.accept(), id="accepted"),
        pytest.param(Outcome.reject("0004", "0004 Niet conform xsd: regel 3"), id="refused"),
        pytest.param(BATCH, id="a code per Bericht"),
    ],
)
def test_a_receipt_reads_back_from_its_element_unchanged(outcome: Outcome) -> None:
    original = receipt(outcome)
    assert round_trip(original) == original


def test_part_hashes_read_back_with_their_content_ids_in_order() -> None:
    original = receipt(part_hashes=(("batch@x", "aGFzaDE="), ("bijlage@x", "aGFzaDI=")))
    assert round_trip(original).part_hashes == original.part_hashes


def test_a_receipt_without_message_reference_reads_back_without_one() -> None:
    assert round_trip(receipt(message_ref=None)).message_ref is None


def test_a_moment_in_another_offset_reads_back_as_the_same_instant_in_utc() -> None:
    amsterdam = timezone(timedelta(hours=1))
    received = datetime(2026, 11, 23, 13, 0, 0, 123000, tzinfo=amsterdam)
    read = round_trip(receipt(received_at=received)).received_at
    assert read == received
    assert read.utcoffset() == timedelta(0)


def test_an_element_without_uitkomst_is_refused() -> None:
    element = to_element(receipt())
    uitkomst = element.find(f"{A}Uitkomst")
    assert uitkomst is not None
    element.remove(uitkomst)
    with pytest.raises(ValueError, match="zonder Uitkomst"):
        from_element(element)


# --- the XML form ------------------------------------------------------------------------------


def test_the_element_carries_an_xml_id_that_does_not_start_with_a_digit() -> None:
    original = receipt(receipt_id="0e5f0000-0000-4000-8000-000000000000")
    element = to_element(original)
    assert element.tag == f"{A}Afleverbevestiging"
    assert element.get("Id") == original.xml_id == f"AB-{original.receipt_id}"


def test_every_receipt_gets_its_own_id() -> None:
    assert receipt().receipt_id != receipt().receipt_id


def test_the_fields_appear_in_the_order_of_the_schema() -> None:
    names = [etree.QName(child).localname for child in to_element(receipt())]
    assert names == [
        "BevestigingID",
        "RequestID",
        "Ontvanger",
        "Afzender",
        "TijdstipOntvangst",
        "BerichtReferentie",
        "Dienst",
        "Operatie",
        "BodyHash",
        "Uitkomst",
    ]


def test_the_moment_of_receipt_is_written_in_utc_with_milliseconds() -> None:
    assert to_element(receipt()).findtext(f"{A}TijdstipOntvangst") == "2026-11-23T12:00:00.123Z"


def test_an_accepted_outcome_is_an_empty_geaccepteerd() -> None:
    [child] = uitkomst(receipt())
    assert child.tag == f"{A}Geaccepteerd" and len(child) == 0


def test_a_refused_outcome_is_a_geweigerd_with_code_and_reason() -> None:
    outcome = Outcome.reject("0002", "0002 Niet geautoriseerd")
    [refused] = uitkomst(receipt(outcome))
    assert refused.tag == f"{A}Geweigerd"
    assert refused.findtext(f"{A}Code") == "0002"
    assert refused.findtext(f"{A}Reden") == "0002 Niet geautoriseerd"


def test_a_batch_outcome_is_one_bericht_per_message_with_a_reason_only_where_given() -> None:
    berichten = uitkomst(receipt(BATCH))
    assert {b.tag for b in berichten} == {f"{A}Bericht"}
    assert [b.findtext(f"{A}VerwerkingsCode") for b in berichten] == ["Verwerkt", "Geweigerd"]
    assert [b.find(f"{A}Reden") is not None for b in berichten] == [False, True]


# --- the canonical form, written without a tree -------------------------------------------------

HOSTILE = "a&b<c>d\"e'f\tg\nh\ri ]]> é ∑ 𝄞"


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"outcome": BATCH},
        {"outcome": Outcome.reject("0004", HOSTILE)},
        {"message_ref": HOSTILE, "request_id": "&&&", "service": "<Dienst>"},
        {"message_ref": None, "part_hashes": ((HOSTILE, "h1"), ("cid:b@x", "h2"))},
        {
            "outcome": Outcome(
                accepted=True, berichten=(BerichtUitkomst(HOSTILE, "Geweigerd", HOSTILE),)
            )
        },
    ],
    ids=["accepted", "batch", "refused", "hostile-fields", "part-hashes", "hostile-batch"],
)
def test_the_canonical_bytes_are_what_exclusive_c14n_makes_of_them(
    changes: dict[str, object],
) -> None:
    # Parsing normalises what a wrong escape would let through (a raw CR or tab, a ">" left
    # as it is), and lxml's c14n writes its own escapes: the bytes survive only if canonical.
    original = receipt(**changes)
    written = canonical(original)
    parsed = etree.fromstring(written)
    assert etree.tostring(parsed, method="c14n", exclusive=True) == written
    assert from_element(parsed) == original


def test_a_character_xml_cannot_carry_is_refused_before_anything_is_signed() -> None:
    with pytest.raises(ValueError, match="XML cannot carry"):
        canonical(receipt(message_ref="urn:uuid:\x01"))

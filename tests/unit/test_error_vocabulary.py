"""One error vocabulary: each profile translates every neutral refusal in one table."""

from __future__ import annotations

import pytest

from adapter.ebms.endpoint import EBMS_ERRORS, as_ebms_error
from adapter.errors import (
    AdapterError,
    BodyTooLarge,
    BodyUnreadable,
    ForbiddenMarkup,
    MalformedXml,
    NotGranted,
    Rejected,
    SchemaViolation,
    StoreConflict,
    StoreUnavailable,
    UnknownParty,
    XmlNotUtf8,
    XmlTooComplex,
)
from adapter.soap.endpoint import WUS_FAULTS, as_soap_fault

NEUTRAL = (
    MalformedXml,
    ForbiddenMarkup,
    XmlTooComplex,
    XmlNotUtf8,
    SchemaViolation,
    UnknownParty,
    NotGranted,
    BodyUnreadable,
    BodyTooLarge,
    StoreUnavailable,
    StoreConflict,
)


@pytest.mark.parametrize(
    ("error", "code", "receipted"),
    [
        (MalformedXml("geen well-formed XML"), "0001", True),
        (ForbiddenMarkup("DTD"), "0001", True),
        # Past a parser limit: the envelope as a whole is refused, not judged against the XSD.
        (XmlTooComplex("100000 attributen"), "0001", True),
        (XmlNotUtf8("UTF-16"), "0009", True),
        (SchemaViolation("regel 3"), "0004", True),
        (UnknownParty("onbekend"), "0002", False),
        (NotGranted("niet aangesloten"), "0002", True),
        (BodyUnreadable("leeg bericht"), "0001", True),
        (BodyTooLarge("te groot"), "0001", True),
        (StoreUnavailable("OperationalError: x"), "0051", True),
    ],
)
def test_wus_answers_each_neutral_refusal_with_its_digikoppeling_code(
    error: Rejected, code: str, receipted: bool
) -> None:
    fault = as_soap_fault(error)
    assert fault.code == code and fault.receipted is receipted


def test_wus_keeps_the_reason_but_never_the_database_internals() -> None:
    assert as_soap_fault(NotGranted("Gemeente X is niet aangesloten")).message == (
        "Gemeente X is niet aangesloten"
    )
    fault = as_soap_fault(StoreUnavailable("OperationalError: connection refused at 10.0.0.1"))
    assert fault.message == "de database is niet bereikbaar"


def test_a_too_large_body_closes_the_connection_in_both_profiles() -> None:
    assert ("Connection", "close") in as_soap_fault(BodyTooLarge("x")).http_headers
    assert ("Connection", "close") in as_ebms_error(BodyTooLarge("x")).http_headers


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (MalformedXml("x"), "OtherXml"),
        (XmlTooComplex("x"), "OtherXml"),
        (XmlNotUtf8("x"), "OtherXml"),
        (SchemaViolation("x"), "OtherXml"),
        (NotGranted("x"), "SecurityFailure"),
        (StoreUnavailable("x"), "DeliveryFailure"),
        (StoreConflict("x"), "DeliveryFailure"),
    ],
)
def test_ebms_answers_each_neutral_refusal_with_its_error_code(error: Rejected, code: str) -> None:
    assert as_ebms_error(error).error_code == code


def test_a_database_outage_on_ebms_says_try_again_later() -> None:
    mapped = as_ebms_error(StoreUnavailable("OperationalError: secret detail"))
    assert "secret" not in mapped.description and "probeer later opnieuw" in mapped.description


def test_both_tables_cover_every_neutral_refusal_the_pipelines_can_meet() -> None:
    for kind in NEUTRAL:
        assert any(issubclass(kind, known) for known in WUS_FAULTS), kind
        if kind is not UnknownParty:  # answered before any ebMS processing, as on WUS
            assert any(issubclass(kind, known) for known in EBMS_ERRORS), kind


def test_every_refusal_shares_one_root() -> None:
    from adapter.config import ConfigError
    from adapter.ebms.cpa import CpaError
    from adapter.errors import EbmsError, SoapFault
    from adapter.receipts import ReceiptInvalid
    from adapter.store.accounts import AccountImportError
    from adapter.store.migrate import SchemaMismatch

    for kind in (
        ConfigError,
        CpaError,
        ReceiptInvalid,
        AccountImportError,
        SchemaMismatch,
        SoapFault,
        EbmsError,
        Rejected,
    ):
        assert issubclass(kind, AdapterError), kind

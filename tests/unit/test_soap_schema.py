"""SchemaSet: the contract's schemas, and types a caller checks itself validated as strings."""

from __future__ import annotations

import pytest

from adapter.berichtenbox.berichtverwerk import SCHEMA_TYPES_CHECKED_HERE
from adapter.errors import SchemaViolation
from adapter.soap.schema import SchemaSet
from adapter.soap.xml import parse_untrusted
from tests.berichtverwerk_samples import BER, batch_xml, minimal_pdf
from tests.conftest import ROOT

SCHEMAS = SchemaSet(ROOT / "xsd")
BATCH_SCHEMA = "GLOBEBatchRequest.xsd"


def batch_with_inhoud(text: bytes, **bericht: str) -> bytes:
    payload = batch_xml([{"bijlagen": [(minimal_pdf(400), "bijlage")], **bericht}])
    start = payload.index(b"<ber:Inhoud>") + len(b"<ber:Inhoud>")
    return payload[:start] + text + payload[payload.index(b"</ber:Inhoud>") :]


def test_a_type_checked_by_the_caller_takes_any_string_where_the_schema_refuses_it() -> None:
    batch = parse_untrusted(batch_with_inhoud(b"QQ="))  # padding short of a group of four
    with pytest.raises(SchemaViolation, match="Inhoud"):
        SCHEMAS.validate(batch, BATCH_SCHEMA)
    SCHEMAS.validate(batch, BATCH_SCHEMA, SCHEMA_TYPES_CHECKED_HERE)


def test_everything_else_is_still_checked_against_the_schema_files() -> None:
    # The relaxed copy is made of the files themselves: the types the batch schema imports
    # from another file (BerichtType's length, here) keep every facet.
    batch = parse_untrusted(batch_with_inhoud(b"QQ=", BerichtType="kleine letters"))
    with pytest.raises(SchemaViolation, match="BerichtType"):
        SCHEMAS.validate(batch, BATCH_SCHEMA, SCHEMA_TYPES_CHECKED_HERE)


def test_a_type_no_schema_file_declares_is_refused_when_the_schema_is_compiled() -> None:
    with pytest.raises(ValueError, match=r"declares no simple type \{.*\}Inhoudd"):
        SCHEMAS.validate(
            parse_untrusted(batch_with_inhoud(b"QQ==")),
            BATCH_SCHEMA,
            frozenset({f"{{{BER}}}Inhoudd"}),
        )

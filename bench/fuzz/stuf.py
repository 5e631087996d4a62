"""Fuzz target: a StUF zakLk01 request through the envelope, its schema and the StUF reader.

What the WUS endpoint and `adapter/lopende_zaken/stuf.py` do with a kennisgeving before the
database: parse the envelope, validate the Body child against `xsd/stuf-zkn-zakLk01.xsd`,
read the stuurgegevens reference and the last object into a `ZaakMelding` and check the BSN's
elfproef; every refusal becomes the Fo01 detail inside the SOAP fault that would answer it.
"""

from __future__ import annotations

from pathlib import Path

from adapter.errors import AdapterError, Rejected, SoapFault, ZaakRefused
from adapter.lopende_zaken.stuf import NS, fault_detail, read_object, reference
from adapter.lopende_zaken.zaken import check_bsn
from adapter.soap.endpoint import as_soap_fault
from adapter.soap.envelope import build_fault, parse_envelope
from adapter.soap.schema import SchemaSet
from adapter.soap.wus import FaultContext

SCHEMAS = SchemaSet(Path(__file__).resolve().parents[2] / "xsd")
SCHEMA = "stuf-zkn-zakLk01.xsd"
CONTEXT = FaultContext(
    request_id="fuzz",
    message_ref=None,
    sender_oin="00000099000000002000",
    receiver_oin="00000004003214345001",
)


def fuzz_one(data: bytes) -> str:
    """One input; "accepted", or the refusal that would answer it (a ZaakRefused by its code)."""
    try:
        envelope = parse_envelope(data)
        SCHEMAS.validate(envelope.payload, SCHEMA)
        reference(envelope.payload)
        objects = envelope.payload.findall("z:object", NS)
        if objects:
            check_bsn(read_object(objects[-1]).initiator_bsn)
    except ZaakRefused as refused:
        _answer(refused)
        return refused.code
    except SoapFault as fault:
        _answer(fault)
        return type(fault).__name__
    except Rejected as error:
        _answer(as_soap_fault(error))
        return type(error).__name__
    except AdapterError as error:
        return type(error).__name__
    return "accepted"


def _answer(fault: SoapFault) -> None:
    build_fault(fault, detail=fault_detail(fault, CONTEXT))

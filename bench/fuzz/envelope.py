"""Fuzz target: a WUS request body through the safe XML parser and the SOAP 1.1 envelope.

What `adapter/soap/endpoint.py` does with a body before it looks at the operation: the safe
parser (`parse_untrusted`, byte checks and the counting pass of `XmlLimits`), the envelope's
shape (`parse_envelope`), the receipt's body hash, mustUnderstand and WS-Addressing; a refusal
becomes the SOAP fault that would answer it. The streaming parser (`iterparse_untrusted`)
reads the same bytes. Every input is also parsed under tight limits, so the limit checks (the
text measure too, which the defaults only switch on for documents over 100 MiB) are reached
by small inputs; a document those accept must pass the defaults as well.
"""

from __future__ import annotations

from lxml import etree

from adapter.berichtenbox.abonnementen import ACTION
from adapter.errors import AdapterError, Rejected, SoapFault, XmlRejected
from adapter.soap.addressing import check_addressing, read_addressing
from adapter.soap.endpoint import UNDERSTOOD_HEADERS, as_soap_fault
from adapter.soap.envelope import (
    body_hash,
    build_fault,
    check_understood,
    parse_envelope,
)
from adapter.soap.xml import (
    DEFAULT_LIMITS,
    XmlLimits,
    iterparse_untrusted,
    parse_untrusted,
    text_of,
)

TIGHT_LIMITS = XmlLimits(max_attributes=4, max_depth=6, max_elements=40, max_text_length=32)
RECEIVER_OIN = "00000004003214345001"


def fuzz_one(data: bytes) -> str:
    """One input; "accepted", or the name of the refusal that would answer it."""
    _limits_are_monotonic(data)
    _stream(data)
    try:
        envelope = parse_envelope(data, DEFAULT_LIMITS)
        body_hash(envelope.body)
        check_understood(envelope, UNDERSTOOD_HEADERS)
        for element in envelope.payload.iter(etree.Element):  # elements, not comments
            text_of(element, nillable=True)
        check_addressing(
            read_addressing(envelope.headers),
            required=True,
            expected_action=ACTION,
            receiver_oin=RECEIVER_OIN,
        )
    except SoapFault as fault:
        build_fault(fault)
        return type(fault).__name__
    except Rejected as error:
        build_fault(as_soap_fault(error))
        return type(error).__name__
    except AdapterError as error:
        return type(error).__name__
    return "accepted"


def _limits_are_monotonic(data: bytes) -> None:
    try:
        parse_untrusted(data, TIGHT_LIMITS)
    except XmlRejected:
        return
    # Accepted under the tight limits: the defaults, which are wider in every way, must too.
    parse_untrusted(data, DEFAULT_LIMITS)


def _stream(data: bytes) -> None:
    try:
        for element in iterparse_untrusted(data):
            text_of(element)
    except AdapterError:
        return

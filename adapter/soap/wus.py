"""How a WUS service describes itself to the endpoint: operations, actions, schema, faults."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from lxml import etree

from adapter.errors import SoapFault
from adapter.party import Party
from adapter.store.repositories import Repositories


@dataclass(frozen=True)
class Call:
    """What an operation handler gets: the caller, the validated payload, the repositories of
    the open transaction. Its configuration it got when its service was built."""

    party: Party
    payload: etree._Element
    repositories: Repositories
    received_at: datetime


@dataclass(frozen=True)
class FaultContext:
    """What a fault's detail may echo of the request it refuses."""

    request_id: str
    message_ref: str | None  # the sender's message id (WS-A MessageID, StUF referentienummer)
    sender_oin: str | None
    receiver_oin: str


# Builds the <detail> content of a fault, or None for a fault without detail.
FaultDetail = Callable[[SoapFault, FaultContext], etree._Element | None]


def message_detail(namespace: str) -> FaultDetail:
    """The Logius shape: ApplicationFault or DependentServiceFault holding one Message."""

    def detail(fault: SoapFault, _context: FaultContext) -> etree._Element | None:
        if fault.detail_element is None:
            return None
        holder = etree.Element(f"{{{namespace}}}{fault.detail_element}", nsmap={None: namespace})
        etree.SubElement(holder, f"{{{namespace}}}Message").text = (
            fault.message or fault.faultstring
        )
        return holder

    return detail


@dataclass(frozen=True)
class PayloadXml:
    """An answer's Body child as the XML its handler wrote, for an answer of many parts: 250
    Abonnementen parsed into a tree only to be written out again cost a seventh of the whole
    request. One well-formed element that declares every namespace it uses; only an answer
    that is still to be signed (WS-Security) is parsed."""

    xml: bytes


@dataclass(frozen=True)
class Operation:
    name: str
    request_element: str  # Clark name of the Body child
    action: str  # SOAPAction and wsa:Action of the request
    response_action: str
    schema: str  # file in xsd/ the payload is validated against
    handler: Callable[[Call], etree._Element | PayloadXml]
    fault_actions: Mapping[str, str] = field(default_factory=dict)  # detail element -> wsa:Action
    # The sender's own reference inside the payload (StUF referentienummer), when WS-A has none.
    message_ref: Callable[[etree._Element], str | None] | None = None


@dataclass(frozen=True)
class WusService:
    """A WUS endpoint: its grant name in conf, its operations and its fault vocabulary."""

    name: str  # the grant in organisations.toml, and Dienst in receipts
    path: str  # where it is served, e.g. /abonnementen
    wsdl: str | None  # file in wsdl/, served at ?wsdl; None for a service without our WSDL
    operations: tuple[Operation, ...]
    fault_detail: FaultDetail
    # Accept any SOAPAction: StUF senders are routed on the Body, and their actions vary.
    any_soap_action: bool = False

    def operation_for(self, payload: etree._Element) -> Operation | None:
        return next((op for op in self.operations if op.request_element == payload.tag), None)

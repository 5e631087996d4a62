"""How a WUS service describes itself to the endpoint: operations, actions, schema, faults."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree
from sqlalchemy.orm import Session

from adapter.config import Config
from adapter.party import Party


@dataclass(frozen=True)
class Call:
    """What an operation handler gets: the caller, the validated payload, the open transaction."""

    party: Party
    payload: etree._Element
    session: Session
    config: Config


@dataclass(frozen=True)
class Operation:
    name: str
    request_element: str  # Clark name of the Body child
    action: str  # SOAPAction and wsa:Action of the request
    response_action: str
    schema: str  # file in xsd/ the payload is validated against
    handler: Callable[[Call], etree._Element]


@dataclass(frozen=True)
class WusService:
    """A WUS endpoint: its grant name in conf, its operations and its fault vocabulary."""

    name: str  # the grant in organisations.toml, and Dienst in receipts
    path: str  # where it is served, e.g. /abonnementen
    wsdl: str  # file in wsdl/
    operations: tuple[Operation, ...]
    fault_namespace: str  # namespace of the ApplicationFault/DependentServiceFault details
    fault_actions: dict[str, str]  # detail element -> wsa:Action of that fault

    def operation_for(self, payload: etree._Element) -> Operation | None:
        return next((op for op in self.operations if op.request_element == payload.tag), None)

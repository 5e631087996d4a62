"""How an ebMS service describes itself to the generic endpoint: Actions, schemas, handlers.

A business room declares an `EbmsService` (its grant name in organisations.toml) with one
`EbmsAction` per Action it serves. The endpoint does everything of the ebMS profile (MIME,
MessageHeader, CPA, authorisation, duplicate elimination, Acknowledgment, receipt, outbox)
and calls the handler with plain values and the repositories of the open transaction; the
handler returns the business answer, which always goes back asynchronously as a new message
with the Action's `answer_action` (Digikoppeling: business answers are asynchronous).

An Action whose payload can be too large for a tree (an AbonnementAanvraag of a million BSNs)
is served in streaming mode: it names a `stream_handler` instead of a `handler`, which gets
the payload unparsed (`StreamedPayload`), reads and validates it as a stream before any
transaction is open, and returns the step that needs the repositories. Its answer may come
already serialised (`EncodedPayload`, e.g. a gzip stream) instead of as a tree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from adapter.ebms.message import MessageHeader
from adapter.ebms.mime import Package
from adapter.party import Party
from adapter.receipts import Outcome
from adapter.soap.xml import iterparse_untrusted
from adapter.store.repositories import Repositories


@dataclass(frozen=True)
class EbmsRequest:
    """What an Action handler gets: the caller, the message, its payload and other parts."""

    party: Party
    header: MessageHeader
    payload: etree._Element  # the first Manifest part, parsed and valid against the schema
    package: Package  # every MIME part, for the payload's references to other parts
    received_at: datetime

    def part(self, cid: str) -> bytes:
        """The content of the MIME part `cid` names; `MimeProblem` refuses the message if none."""
        return self.package.attachment(cid).body


@dataclass(frozen=True)
class InvalidPayload:
    """A payload that is not well-formed or fails its schema, for a business answer to it."""

    party: Party
    header: MessageHeader
    raw: bytes
    reason: str
    received_at: datetime


@dataclass(frozen=True)
class StreamedPayload:
    """The first Manifest part of a streaming Action, unparsed, with the schema it must pass."""

    data: bytes
    schema: etree.XMLSchema

    def elements(self) -> Iterable[etree._Element]:
        """Each element at its end, validated as the document is read (`SchemaViolation`,
        `XmlRejected`). The caller clears what it has read to keep memory flat."""
        return iterparse_untrusted(self.data, self.schema)


@dataclass(frozen=True)
class EbmsStreamRequest:
    """What a stream handler gets: as `EbmsRequest`, with the payload still unparsed."""

    party: Party
    header: MessageHeader
    payload: StreamedPayload
    package: Package
    received_at: datetime


@dataclass(frozen=True)
class EncodedPayload:
    """An answer payload already serialised, with its MIME type (e.g. application/gzip)."""

    content_type: str
    data: bytes


@dataclass(frozen=True)
class EbmsAnswer:
    """A handler's result: the answer payload, and what the receipt records of the message."""

    payload: etree._Element | EncodedPayload  # a tree goes out as UTF-8 text/xml
    outcome: Outcome
    accepted: int  # business items accepted, for the dk_messages_accepted metric
    summary: str  # one line for the log: no BSNs, no content
    # Writes the handler leaves to the endpoint, which runs them in the handler's transaction
    # once the receipt, answer and Acknowledgment are built and signed: on SQLite the write
    # lock (every other message's writes wait for it) is then held for writes only.
    store: Callable[[], None] | None = None


Handler = Callable[[EbmsRequest, Repositories], EbmsAnswer]
# Reads the payload (no database yet) and returns the step to run in the transaction.
StreamHandler = Callable[[EbmsStreamRequest], Callable[[Repositories], EbmsAnswer]]


@dataclass(frozen=True)
class EbmsAction:
    action: str  # MessageHeader Action of the request, e.g. GLOBE-R-BV-Request
    answer_action: str  # Action of the asynchronous answer, e.g. GLOBE-R-BV-Result
    schema: str  # file in xsd/ the payload is validated against
    handler: Handler | None = None  # the payload as a validated tree
    # Simple types of `schema` ({namespace}name) whose values `handler` checks itself, as
    # the schema says: validated as any string (`SchemaSet.validate`).
    checked_by_handler: frozenset[str] = frozenset()
    # When set, an invalid payload is answered by the business (with a result that says why)
    # instead of being refused at the ebMS layer: the message itself was fine.
    invalid_payload: Callable[[InvalidPayload], EbmsAnswer] | None = None
    # Instead of `handler`, for payloads too large for a tree: see the module's docstring.
    stream_handler: StreamHandler | None = None

    def __post_init__(self) -> None:
        if (self.handler is None) == (self.stream_handler is None):
            raise ValueError(f"Action {self.action}: give either handler or stream_handler")


@dataclass(frozen=True)
class EbmsService:
    """A business service reached over ebMS: its grant name in conf and its Actions."""

    name: str  # the grant in organisations.toml, and Dienst in receipts
    actions: tuple[EbmsAction, ...]

    def action_for(self, action: str) -> EbmsAction | None:
        return next((a for a in self.actions if a.action == action), None)

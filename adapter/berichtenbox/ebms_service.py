"""The Berichtenbox's ebMS service: BerichtVerwerk as a descriptor on the generic endpoint.

What is BerichtVerwerk's own and not the ebMS profile's lives here: its Actions and schema,
the BerichtLeverancierID rule (the sender, or one it acts for), the general attachments a
batch refers to by cid, and the answer to a batch that fails its schema (one nil-GUID entry,
as Logius answers it, instead of an ebMS error: the message itself was fine). The service's
second Action, AbonnementAanvraag, has its rules in abonnement_aanvraag.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from adapter.berichtenbox import abonnement_aanvraag
from adapter.berichtenbox.berichtverwerk import (
    SCHEMA_TYPES_CHECKED_HERE,
    BatchContext,
    BatchResultaat,
    BijlageLimits,
    VerwerkingsCode,
    batch_failure,
    general_references,
    response_xml,
    verwerk,
)
from adapter.config import Organisations
from adapter.ebms.service import (
    EbmsAction,
    EbmsAnswer,
    EbmsRequest,
    EbmsService,
    EncodedPayload,
    InvalidPayload,
)
from adapter.errors import XmlRejected
from adapter.soap.xml import parse_untrusted, text_of
from adapter.store.repositories import Repositories

SERVICE_NAME = "BerichtVerwerk"  # the grant in organisations.toml
BATCH_ACTION = "GLOBE-R-BV-Request"
RESULT_ACTION = "GLOBE-R-BV-Result"
BATCH_SCHEMA = "GLOBEBatchRequest.xsd"
# The type the endpoint gives a payload it serialises from a tree (adapter.ebms.outbound's
# XML_PAYLOAD): the response is written as text, but goes out as any XML answer does.
RESPONSE_TYPE = "text/xml; charset=UTF-8"


@dataclass(frozen=True)
class BerichtVerwerkSettings:
    """The part of the configuration BerichtVerwerk needs."""

    organisations: Organisations  # whose letters a BerichtLeverancierID names
    limits: BijlageLimits


def _answer(result: BatchResultaat, store: Callable[[], None] | None = None) -> EbmsAnswer:
    counters = ", ".join(f"{k}={v}" for k, v in result.counters().items() if v)
    return EbmsAnswer(
        payload=EncodedPayload(RESPONSE_TYPE, response_xml(result)),
        outcome=result.outcome(),
        accepted=sum(1 for b in result.berichten if b.code is VerwerkingsCode.VERWERKT),
        summary=f"batch {result.batch_id}, {counters}",
        store=store,
    )


def _batch_id(payload: bytes) -> str | None:
    """The BatchID of a batch that failed validation, if it can be read at all."""
    try:
        root = parse_untrusted(payload)
    except XmlRejected:
        return None
    return text_of(root.find("{*}BatchInformatie/{*}BatchID"))


def _verwerk(
    request: EbmsRequest, repositories: Repositories, settings: BerichtVerwerkSettings
) -> tuple[BatchResultaat, Callable[[], None] | None]:
    """The batch judged, and the inserts of its accepted letters (see `verwerk`)."""
    batch, now = request.payload, request.received_at
    organisation = request.party.organisation
    leverancier_id = text_of(batch.find("{*}BatchInformatie/{*}BerichtLeverancierID"))
    leverancier_oin = (leverancier_id or "").strip()
    leverancier = settings.organisations.by_oin.get(leverancier_oin)
    batch_id = text_of(batch.find("{*}BatchInformatie/{*}BatchID"))
    if leverancier is None or not organisation.may_deliver_for(leverancier_oin):
        reason = (
            f"BerichtLeverancierID {leverancier_oin} is niet {organisation.oin} (of via acts_for)"
        )
        failure = batch_failure(
            batch_id, leverancier_oin or organisation.oin, VerwerkingsCode.OIN_MISMATCH, reason, now
        )
        return failure, None
    # An unresolvable reference refuses the whole message at the ebMS layer (MimeProblem).
    general = {cid: request.part(cid) for cid in general_references(batch)}
    context = BatchContext(
        organisation, leverancier, now, request.header.message_id, general, settings.limits
    )
    return verwerk(repositories, batch, context)


def service(settings: BerichtVerwerkSettings) -> EbmsService:
    def handle(request: EbmsRequest, repositories: Repositories) -> EbmsAnswer:
        return _answer(*_verwerk(request, repositories, settings))

    def invalid(problem: InvalidPayload) -> EbmsAnswer:
        code = VerwerkingsCode.XML_ONGELDIG
        return _answer(
            batch_failure(
                _batch_id(problem.raw), problem.party.oin, code, problem.reason, problem.received_at
            )
        )

    return EbmsService(
        name=SERVICE_NAME,
        actions=(
            EbmsAction(
                action=BATCH_ACTION,
                answer_action=RESULT_ACTION,
                schema=BATCH_SCHEMA,
                handler=handle,
                checked_by_handler=SCHEMA_TYPES_CHECKED_HERE,
                invalid_payload=invalid,
            ),
            # The AbonnementService on the same CPA service (SPEC §3): up to a million BSNs,
            # so its payload is read as a stream rather than as a tree.
            EbmsAction(
                action=abonnement_aanvraag.REQUEST_ACTION,
                answer_action=abonnement_aanvraag.RESULT_ACTION,
                schema=abonnement_aanvraag.REQUEST_SCHEMA,
                stream_handler=lambda request: abonnement_aanvraag.prepare(
                    request, abonnement_aanvraag.AbonnementSettings(settings.organisations)
                ),
                invalid_payload=abonnement_aanvraag.invalid,
            ),
        ),
    )

"""ValidateAbonnementen: may this organisation send post of this type to these BSNs?

Runs after the envelope, WS-Addressing and XSD checks; receives the validated payload element
and answers one Abonnement per Klant, in request order (SPEC Part B/C).
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass

from lxml import etree

from adapter.bsn import first_invalid, is_bsn
from adapter.config import Organisation, Organisations
from adapter.errors import InvalidRequest
from adapter.soap.wus import Call, Operation, PayloadXml, WusService, message_detail
from adapter.soap.xml import text_of
from adapter.store.accounts import Accounts, AccountStanding

SVC = "http://schemas.rdw.nl/GEB/BerichtenboxValidatieService/2009/01"
TYP = "http://schemas.rdw.nl/GEB/BerichtenboxValidatieService/Types/2009/01"
SHR = "http://schemas.rdw.nl/GEB/Shared/Types/2009/01"
XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"

_PORT = f"{SVC}/IBerichtenboxValidatieService"
ACTION = f"{_PORT}/ValidateAbonnementen"
RESPONSE_ACTION = f"{_PORT}/ValidateAbonnementenResponse"
FAULT_ACTIONS = {
    "ApplicationFault": f"{_PORT}/ValidateAbonnementenApplicationFaultFault",
    "DependentServiceFault": f"{_PORT}/ValidateAbonnementenDependentServiceFaultFault",
}
REQUEST_ELEMENT = f"{{{SVC}}}ValidateAbonnementen"


@dataclass(frozen=True)
class Aanvraag:
    berichtleverancier_code: str
    bericht_type_code: str
    keys: tuple[str, ...]


def _text(parent: etree._Element, tag: str) -> str | None:
    # The first child of that tag, as `find` gives it, at half find's cost: ElementPath
    # reads the path anew for each of 250 Klanten.
    child = next(parent.iterchildren(tag), None)
    # The whole text: `12345<!---->6789` is the BSN 123456789, as the receipt's hash has it.
    text = text_of(child, nillable=True)
    return text.strip() if text is not None else None


def read_aanvraag(
    payload: etree._Element, organisation: Organisation, max_klanten: int
) -> Aanvraag:
    """The request's values, refused with `InvalidRequest` when the caller may not ask them."""
    aanvraag = payload.find(f"{{{SVC}}}validateAbonnementenAanvraag")
    if aanvraag is None or aanvraag.get(XSI_NIL) in ("true", "1"):
        raise InvalidRequest("validateAbonnementenAanvraag ontbreekt")
    leverancier = _text(aanvraag, f"{{{TYP}}}berichtleverancierCode")
    if not leverancier or not organisation.may_deliver_for(leverancier):
        raise InvalidRequest(
            f"berichtleverancierCode {leverancier or '(leeg)'} is niet het OIN van het certificaat"
        )
    type_code = _text(aanvraag, f"{{{TYP}}}berichtTypeCode")
    if not type_code or type_code not in organisation.bericht_types:  # the active codes
        known = organisation.bericht_type(type_code or "") is not None
        raise InvalidRequest(
            f"berichtTypeCode {type_code or '(leeg)'} is "
            + ("niet actief" if known else "niet toegekend aan deze organisatie")
        )
    klanten_element = aanvraag.find(f"{{{TYP}}}klanten")
    klanten = [] if klanten_element is None else klanten_element.findall(f"{{{SHR}}}Klant")
    if not 1 <= len(klanten) <= max_klanten:
        raise InvalidRequest(f"{len(klanten)} klanten; toegestaan is 1 tot en met {max_klanten}")
    keys = _plain_keys(klanten_element, len(klanten))
    if keys is None:
        keys = [_text(klant, f"{{{SHR}}}Key") or "" for klant in klanten]
    invalid = first_invalid(keys)
    if invalid is not None:
        # Only the position: a full BSN does not belong in a fault that may be logged.
        raise InvalidRequest(f"Klant {invalid + 1}: Key is geen geldig BSN (elfproef)")
    return Aanvraag(leverancier, type_code, tuple(keys))


class _KeyPaths(threading.local):
    """Keys that are one text node each, not nil (nearly every request's), read in two XPath
    calls instead of a look-up and a text per Klant: a third of reading 250 Klanten. The
    schema lets a Klant hold one Key at most, so as many such Keys as Klanten means one in
    each, in order. Compiled per thread, as lxml's XPath evaluators are not to be shared."""

    def __init__(self) -> None:
        paths = {"k": SHR, "xsi": XSI_NIL[1:].partition("}")[0]}
        self.count = etree.XPath(
            "count(k:Klant/k:Key[not(@xsi:nil)][count(node()) = 1][text()])", namespaces=paths
        )
        self.texts = etree.XPath("k:Klant/k:Key/text()", namespaces=paths, smart_strings=False)


_key_paths = _KeyPaths()


def _plain_keys(klanten: etree._Element | None, count: int) -> list[str] | None:
    """Each Klant's Key, stripped, when every Klant has a plain one; else None."""
    if klanten is None or _key_paths.count(klanten) != count:
        return None
    return list(map(str.strip, _key_paths.texts(klanten)))


def why_not_receiving(bsn: str, standing: AccountStanding | None) -> str:
    """Why an organisation may not send this BSN post (NietActiefOfGeabonneerd), in words a
    leverancier can act on; never the BSN itself, since receipts and logs carry the reason."""
    if not is_bsn(bsn):
        return "GebruikerID is geen geldig BSN (elfproef)"
    if standing is None:
        return "bij dit BSN bestaat geen Berichtenbox"
    if not standing.active:
        return "de Berichtenbox van dit BSN is niet geactiveerd"
    if not standing.subscribed:
        return "de burger heeft geen abonnement op post van deze organisatie"
    return "de burger mag geen post van deze organisatie ontvangen"


def refusals(accounts: Accounts, bsns: Collection[str], oin: str, by_law: bool) -> dict[str, str]:
    """For each of `bsns` that `oin` may not send post to: why (see `why_not_receiving`)."""
    standings = accounts.standing(bsns, oin)  # one query for the whole batch
    return {
        bsn: why_not_receiving(bsn, standing)
        for bsn in bsns
        if (standing := standings.get(bsn)) is None or not standing.receives(by_law)
    }


# The answer as text (a `PayloadXml`, parsed only to be signed): building an element per field,
# or copying one Abonnement per Klant, cost three to five times as much as parsing it, and that
# parse and writing it out again a seventh of a request of 250 Klanten. Keys are checked BSNs
# (nine ASCII digits), so nothing in it needs escaping.
_RESPONSE_OPEN = (
    f'<ValidateAbonnementenResponse xmlns="{SVC}" xmlns:t="{TYP}" xmlns:k="{SHR}">'
    "<ValidateAbonnementenResult>"
)
_RESPONSE_CLOSE = "</ValidateAbonnementenResult></ValidateAbonnementenResponse>"
# One Abonnement is its opening, the Key, and one of two endings: pieces added, which cost a
# seventh of formatting a template for each of 250 Klanten.
_ABONNEMENT_OPEN = "<t:Abonnement><t:klant><k:Key>"
_ABONNEMENT_ENDS = {
    allowed: "</k:Key><k:Rol>Burger</k:Rol></t:klant>"
    f"<t:isBerichtSturen>{'true' if allowed else 'false'}</t:isBerichtSturen></t:Abonnement>"
    for allowed in (True, False)
}


def answer(accounts: Accounts, aanvraag: Aanvraag, by_law: bool) -> PayloadXml:
    """The ValidateAbonnementenResponse for a checked request, for the leverancier's OIN."""
    allowed = accounts.may_receive(aanvraag.keys, aanvraag.berichtleverancier_code, by_law)
    ends = _ABONNEMENT_ENDS
    abonnementen = "".join([_ABONNEMENT_OPEN + key + ends[allowed[key]] for key in aanvraag.keys])
    return PayloadXml((_RESPONSE_OPEN + abonnementen + _RESPONSE_CLOSE).encode("ascii"))


@dataclass(frozen=True)
class AbonnementenSettings:
    """The part of the configuration ValidateAbonnementen needs."""

    organisations: Organisations  # whose by-law status an intermediary's request is judged by
    max_klanten: int


def handle(call: Call, settings: AbonnementenSettings) -> PayloadXml:
    aanvraag = read_aanvraag(call.payload, call.party.organisation, settings.max_klanten)
    # An intermediary asks on behalf of the leverancier: its by-law status is what counts.
    leverancier = settings.organisations.by_oin.get(
        aanvraag.berichtleverancier_code, call.party.organisation
    )
    return answer(call.repositories.accounts, aanvraag, leverancier.by_law)


def service(settings: AbonnementenSettings) -> WusService:
    return WusService(
        name="ValidateAbonnementen",
        path="/abonnementen",
        wsdl="BerichtenboxValidatieService.wsdl",
        operations=(
            Operation(
                name="ValidateAbonnementen",
                request_element=REQUEST_ELEMENT,
                action=ACTION,
                response_action=RESPONSE_ACTION,
                schema="BerichtenboxValidatieService.xsd",
                handler=lambda call: handle(call, settings),
                fault_actions=FAULT_ACTIONS,
            ),
        ),
        fault_detail=message_detail(SHR),
    )

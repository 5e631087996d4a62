"""The organisation's side of a BerichtVerwerk delivery, for `dk-adapter send`.

Builds a batch as a Logius client does, packs it into a reliable ebMS message (payload and
general attachments as MIME parts) and reads what comes back.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lxml import etree

from adapter.berichtenbox.berichtverwerk import BATCH, EXTENSION, LETTER
from adapter.ebms.message import Route, business_message

SERVICE = "urn:osb:services:MIJNOVERHEID.ebMS.BB.2.0"
SERVICE_TYPE = "urn:osb:services"
REQUEST_ACTION = "GLOBE-R-BV-Request"


@dataclass(frozen=True)
class BerichtSpec:
    bsn: str
    bericht_type: str
    onderwerp: str
    tekst: str | None = None
    bijlagen: Sequence[tuple[str, bytes]] = ()  # omschrijving, PDF content (personal)
    algemene: Sequence[tuple[str, str]] = ()  # omschrijving, content-id of a general part
    bericht_id: str = field(default_factory=lambda: str(uuid.uuid4()))


def _add(parent: etree._Element, tag: str, text: str) -> etree._Element:
    element = etree.SubElement(parent, tag)
    element.text = text
    return element


def build_batch(
    leverancier: str, berichten: Sequence[BerichtSpec], now: datetime | None = None
) -> bytes:
    """A `Berichten` document with one BatchID for all letters."""
    batch_id = str(uuid.uuid4())
    moment = (
        (now or datetime.now(UTC))
        .astimezone(UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
    root = etree.Element(
        f"{{{BATCH}}}Berichten", nsmap={"bvs": BATCH, "b": LETTER, "mo": EXTENSION}
    )
    info = etree.SubElement(root, f"{{{BATCH}}}BatchInformatie")
    _add(info, f"{{{BATCH}}}BatchID", batch_id)
    _add(info, f"{{{BATCH}}}AanmaakDatum", moment)
    _add(info, f"{{{BATCH}}}BerichtLeverancierID", leverancier)
    for spec in berichten:
        bericht = etree.SubElement(root, f"{{{LETTER}}}Bericht")
        letter = etree.SubElement(bericht, f"{{{LETTER}}}BerichtInformatie")
        _add(letter, f"{{{LETTER}}}BatchID", batch_id)
        _add(letter, f"{{{LETTER}}}BerichtID", spec.bericht_id)
        _add(letter, f"{{{LETTER}}}BerichtType", spec.bericht_type)
        _add(letter, f"{{{LETTER}}}Onderwerp", spec.onderwerp)
        if spec.tekst:
            _add(letter, f"{{{LETTER}}}BerichtTekst", spec.tekst)
        _add(letter, f"{{{LETTER}}}GebruikerID", spec.bsn)
        _add(letter, f"{{{LETTER}}}SoortGebruiker", "Burger")
        if spec.bijlagen:
            bijlagen = etree.SubElement(bericht, f"{{{LETTER}}}Bijlagen")
            for volgorde, (omschrijving, content) in enumerate(spec.bijlagen, start=1):
                bijlage = etree.SubElement(bijlagen, f"{{{LETTER}}}Bijlage")
                _add(bijlage, f"{{{LETTER}}}Inhoud", base64.b64encode(content).decode("ascii"))
                _add(bijlage, f"{{{LETTER}}}BijlageType", "Pdf")
                _add(bijlage, f"{{{LETTER}}}Omschrijving", omschrijving)
                _add(bijlage, f"{{{LETTER}}}Volgorde", str(volgorde))
        if spec.algemene:
            algemene = etree.SubElement(bericht, f"{{{EXTENSION}}}AlgemeneBijlagen")
            for volgorde, (omschrijving, cid) in enumerate(spec.algemene, start=1):
                bijlage = etree.SubElement(algemene, f"{{{EXTENSION}}}AlgemeneBijlage")
                _add(bijlage, f"{{{EXTENSION}}}Referentie", f"cid:{cid}")
                _add(bijlage, f"{{{EXTENSION}}}BijlageType", "Pdf")
                _add(bijlage, f"{{{EXTENSION}}}Omschrijving", omschrijving)
                _add(bijlage, f"{{{EXTENSION}}}Volgorde", str(volgorde))
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="utf-8")
    return data


def batch_request(
    from_oin: str,
    to_oin: str,
    cpa_id: str,
    payload_cid: str,
    general_cids: Sequence[str],
    now: datetime,
) -> tuple[str, bytes]:
    """The SOAP part of a GLOBE-R-BV-Request; returns (MessageId, envelope)."""
    route = Route(
        cpa_id=cpa_id,
        conversation_id=str(uuid.uuid4()),
        from_oin=from_oin,
        from_role="SR",
        to_oin=to_oin,
        to_role="SP",
        service=SERVICE,
        service_type=SERVICE_TYPE,
        action=REQUEST_ACTION,
    )
    return business_message(route, now, None, [payload_cid, *general_cids])

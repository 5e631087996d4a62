"""Builders for AbonnementAanvraag requests and readers of AbonnementAntwoord answers.

`aanvraag_xml` writes the request as a Logius client does (SPEC.md §3: the root qualified,
its children not), fast enough for a million BSNs; `valid_bsns` makes BSNs that pass the
elfproef; `read_antwoord` unzips and validates an answer and returns its entries. Plain
functions without pytest fixtures, so tests and the benchmark can share them.
"""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import requests
from lxml import etree

from adapter.berichtenbox.abonnement_aanvraag import NS, REQUEST_ACTION
from adapter.ebms.message import Route, business_message
from adapter.ebms.mime import build_package
from adapter.xmltime import utc_millis

MIJNOVERHEID = "00000004003214345001"
SERVICE = "urn:osb:services:MIJNOVERHEID.ebMS.BB.2.0"
XSD = Path(__file__).resolve().parents[1] / "xsd"
PAYLOAD_CID = "aanvraag@test"
_WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2)


def cpa_id(oin: str) -> str:
    return f"MIJNOVERHEID-EBMS-BB-2-0_{oin}_{MIJNOVERHEID}_1"


def valid_bsns(count: int, start: int = 20_000_000) -> Iterator[str]:
    """`count` different BSNs passing the elfproef, from the 8-digit prefix `start` upwards."""
    prefix = start
    while count:
        digits = f"{prefix:08d}"
        check = sum(w * int(d) for w, d in zip(_WEIGHTS, digits, strict=True)) % 11
        prefix += 1
        if check < 10:  # a check digit of 10 does not exist: that prefix has no valid BSN
            count -= 1
            yield digits + str(check)


def invalid_bsn(valid: str) -> str:
    """A nine-digit number that fails the elfproef: `valid` with its check digit changed."""
    return valid[:8] + str((int(valid[8]) + 1) % 10)


def aanvraag_xml(
    leverancier: str,
    verzoek_id: str = "verzoek-1",
    *,
    bsns: Iterable[str] | None = None,
    mutatie: datetime | str | None = None,
) -> bytes:
    """An AbonnementAanvraag: a BSNLijst when `bsns` is given, Mutatie with `mutatie`, else
    Volledig. Written as text in one pass (a million BSNs take well under a second)."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<ns0:AbonnementAanvraag xmlns:ns0="{NS}">\n',
        f"  <BerichtLeverancier>\n    <OIN>{leverancier}</OIN>\n  </BerichtLeverancier>\n",
        f"  <VerzoekId>{verzoek_id}</VerzoekId>\n",
    ]
    if bsns is not None:
        parts.append("  <BSNLijst>\n")
        parts.extend(f"    <BSN>{bsn}</BSN>\n" for bsn in bsns)
        parts.append("  </BSNLijst>\n")
    if mutatie is not None:
        text = mutatie if isinstance(mutatie, str) else utc_millis(mutatie)
        parts.append(f"  <MutatieDatum>{text}</MutatieDatum>\n")
    parts.append("</ns0:AbonnementAanvraag>\n")
    return "".join(parts).encode("utf-8")


def aanvraag_message(
    from_oin: str, now: datetime, action: str = REQUEST_ACTION
) -> tuple[str, bytes]:
    """The SOAP part of a GLOBE-R-A-Request from `from_oin`; returns (MessageId, envelope)."""
    route = Route(
        cpa_id=cpa_id(from_oin),
        conversation_id=str(uuid.uuid4()),
        from_oin=from_oin,
        from_role="SR",
        to_oin=MIJNOVERHEID,
        to_role="SP",
        service=SERVICE,
        service_type="urn:osb:services",
        action=action,
    )
    return business_message(route, now, None, [PAYLOAD_CID])


def post_aanvraag(
    url: str,
    cert: tuple[str, str],
    root: Path,
    payload: bytes,
    message: tuple[str, bytes],
    timeout: float = 120,
) -> requests.Response:
    """POST an AbonnementAanvraag package to the adapter's ebMS endpoint `url`."""
    content_type, body = build_package(
        message[1], [(PAYLOAD_CID, "text/xml; charset=UTF-8", payload)]
    )
    return requests.post(
        url,
        data=body,
        headers={"Content-Type": content_type, "SOAPAction": '"ebXML"'},
        cert=cert,
        verify=str(root),
        timeout=timeout,
    )


@dataclass(frozen=True)
class Entry:
    bsn: str
    sturen: bool
    fout: str | None


@dataclass(frozen=True)
class Antwoord:
    root: etree._Element
    entries: list[Entry]

    def text(self, name: str) -> str | None:
        return self.root.findtext(name)


def read_antwoord(data: bytes) -> Antwoord:
    """Unzip an AbonnementAntwoord (RFC 1952), validate it against our XSD, read its entries."""
    assert data[:2] == b"\x1f\x8b", "not a gzip stream"
    document = etree.fromstring(gzip.decompress(data))
    schema = etree.XMLSchema(etree.parse(str(XSD / "abonnement-antwoord.xsd")))
    schema.assertValid(document)
    assert document.tag == f"{{{NS}}}AbonnementAntwoord"
    entries = [
        Entry(
            entry.findtext("BSN") or "",
            entry.findtext("isBerichtSturen") == "true",
            entry.findtext("Fout"),
        )
        for entry in document.iterfind("Abonnementen/Abonnement")
    ]
    return Antwoord(document, entries)

"""BerichtVerwerk: a batch of letters, each accepted or refused with its own VerwerkingsCode.

Runs after the ebMS layer and the XSD check, inside the transaction that also stores the
receipt. One bad Bericht never rejects the others; what is accepted is stored completely
(letter, attachments by SHA-256) and becomes visible to the citizen at its PublicatieDatum.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from lxml import etree

from adapter.berichtenbox.abonnementen import refusals
from adapter.berichtenbox.pdf import PdfVerdict, check_pdf
from adapter.config import Organisation
from adapter.receipts import BerichtUitkomst, Outcome
from adapter.soap.xml import text_of
from adapter.store.berichten import NewBericht, NewBijlage
from adapter.store.repositories import Repositories
from adapter.xmltime import utc_millis

BATCH = "http://schemas.rdw.nl/GEB/BerichtVerwerkService/Types/2009/01"
LETTER = "http://schemas.rdw.nl/GEB/BerichtenProsessor/Bericht/Types/2009/01"
RESULT = "http://schemas.rdw.nl/GEB/BerichtVerwerkService/BerichtResultaat/Types/2009/01"
EXTENSION = "urn:mijnoverheid-adapter:berichtenbox:1"
NIL_GUID = "00000000-0000-0000-0000-000000000000"
_B, _L, _X = f"{{{BATCH}}}", f"{{{LETTER}}}", f"{{{EXTENSION}}}"
_INFO, _BIJLAGEN, _ALGEMENE = f"{_L}BerichtInformatie", f"{_L}Bijlagen", f"{_X}AlgemeneBijlagen"
DATE_WINDOW = timedelta(days=13)


class VerwerkingsCode(StrEnum):
    VERWERKT = "Verwerkt"
    TECHNISCH_PROBLEEM = "TechnischProbleem"
    NIET_ACTIEF_OF_GEABONNEERD = "NietActiefOfGeabonneerd"
    BERICHTTYPE_NIET_ONDERSTEUND = "BerichtTypeNietOndersteund"
    PUBLICATIEDATUM_TE_VER = "PublicatieDatumLigtTeVerInDeToekomst"
    AANMAAKDATUM_TE_VER = "AanmaakDatumLigtTeVerInHetVerleden"
    BERICHT_BESTAAT_AL = "BerichtBestaatAl"
    BIJLAGE_TE_GROOT = "BijlageTeGroot"
    OIN_MISMATCH = "OinInCPAKomtNietOvereenMetOinInBericht"
    XML_ONGELDIG = "XmlValidatieTegenXsdValtNegatiefUit"


# Stadium per code (SPEC Part B) and the batch counter each code increments; codes without a
# counter of their own count as a technical problem.
STADIUM = {
    VerwerkingsCode.VERWERKT: "NA",
    VerwerkingsCode.NIET_ACTIEF_OF_GEABONNEERD: "ValidatieGebruiker",
    VerwerkingsCode.BERICHTTYPE_NIET_ONDERSTEUND: "ValidatieBerichtType",
    VerwerkingsCode.PUBLICATIEDATUM_TE_VER: "ValidatieBerichtType",
    VerwerkingsCode.AANMAAKDATUM_TE_VER: "ValidatieBerichtType",
}
COUNTERS = (
    ("AantalBerichtenSuccesvolVerwerkt", VerwerkingsCode.VERWERKT),
    (
        "AantalBerichtenGeenActieveBoxOfGeabonneertOpLeverancier",
        VerwerkingsCode.NIET_ACTIEF_OF_GEABONNEERD,
    ),
    ("AantalBerichtenMetTechnischProbleem", VerwerkingsCode.TECHNISCH_PROBLEEM),
    ("AantalBerichtenBerichtTypeNietCorrect", VerwerkingsCode.BERICHTTYPE_NIET_ONDERSTEUND),
    ("AantalBerichtenPublicatieDatumNietCorrect", VerwerkingsCode.PUBLICATIEDATUM_TE_VER),
    ("AantalBerichtenAanmaakDatumNietCorrect", VerwerkingsCode.AANMAAKDATUM_TE_VER),
)
_OWN_COUNTER = {code for _, code in COUNTERS}


@dataclass(frozen=True)
class BijlageLimits:
    personal_bytes: int = 512_000  # 500 KiB as Logius counts it, decoded, per Bericht
    general_bytes: int = 2_097_152  # 2 MiB, per Bericht


@dataclass(frozen=True)
class BerichtResultaat:
    bericht_id: str
    bericht_type: str
    code: VerwerkingsCode
    reden: str | None = None


@dataclass(frozen=True)
class BatchResultaat:
    batch_id: str
    leverancier: str
    received_at: datetime
    processed_at: datetime
    berichten: tuple[BerichtResultaat, ...] = field(default_factory=tuple)

    def counters(self) -> dict[str, int]:
        counted = Counter(
            b.code if b.code in _OWN_COUNTER else VerwerkingsCode.TECHNISCH_PROBLEEM
            for b in self.berichten
        )
        return {name: counted[code] for name, code in COUNTERS}

    def outcome(self) -> Outcome:
        """What the receipt records: every BerichtID with its code (and why, when refused)."""
        return Outcome(
            accepted=True,
            berichten=tuple(
                BerichtUitkomst(b.bericht_id, b.code.value, b.reden) for b in self.berichten
            ),
        )


@dataclass(frozen=True)
class BatchContext:
    sender: Organisation  # the party that delivered the batch (From OIN)
    leverancier: Organisation  # whose letters these are (BerichtLeverancierID)
    received_at: datetime
    ebms_message_id: str
    general_attachments: Mapping[str, bytes]  # content-id -> bytes, resolved by the ebMS layer
    limits: BijlageLimits
    # Each distinct attachment content is judged once per batch: a general PDF is referred to
    # by every Bericht, and the same personal PDF often comes in many.
    pdf_verdicts: dict[bytes, PdfVerdict] = field(default_factory=dict, compare=False, repr=False)

    def pdf_verdict(self, content: bytes) -> PdfVerdict:
        verdict = self.pdf_verdicts.get(content)
        if verdict is None:
            verdict = self.pdf_verdicts[content] = check_pdf(content)
        return verdict


def batch_failure(
    batch_id: str | None, leverancier: str, code: VerwerkingsCode, reden: str, now: datetime
) -> BatchResultaat:
    """A whole-batch refusal: one entry with the nil GUID, as Logius answers it."""
    return BatchResultaat(
        batch_id=batch_id or NIL_GUID,
        leverancier=leverancier,
        received_at=now,
        processed_at=now,
        berichten=(BerichtResultaat(NIL_GUID, "", code, reden),),
    )


def _moment(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # no offset reads as UTC


@dataclass
class _Letter:
    """One Bericht's fields, read in one pass over its elements."""

    info: dict[str, str]  # BerichtInformatie: local name -> whole text
    bericht_id: str
    bericht_type: str
    bsn: str
    publicatie: datetime | None
    personal: list[tuple[int, str, bytes]]  # volgorde, omschrijving, content
    general: list[tuple[int, str, bytes]]


def _fields(parent: etree._Element, prefix: str) -> dict[str, str]:
    """The child elements of `parent` in the namespace `prefix` ("{uri}") by local name, each
    with its whole text (`text_of`): one pass instead of a find() per field, which was the
    largest per-Bericht cost of a batch."""
    skip = len(prefix)
    fields = {}
    for child in parent:
        tag = child.tag
        if isinstance(tag, str) and tag.startswith(prefix):
            # Without children (a comment is one) .text is the whole text.
            fields[tag[skip:]] = (child.text or "") if len(child) == 0 else text_of(child) or ""
    return fields


def _attachments(
    parent: etree._Element, prefix: str, content: Callable[[dict[str, str]], bytes]
) -> list[tuple[int, str, bytes]]:
    """Volgorde, Omschrijving and content of each attachment element inside `parent`."""
    found = []
    for element in parent:
        if isinstance(element.tag, str):
            fields = _fields(element, prefix)
            found.append(
                (int(fields.get("Volgorde") or 0), fields.get("Omschrijving", ""), content(fields))
            )
    return found


def _decoded(text: str) -> bytes:
    """The content an Inhoud encodes; binascii.Error when it is no base64."""
    try:
        # Most senders write base64 without line breaks: strict mode decodes that in one pass.
        return binascii.a2b_base64(text, strict_mode=True)
    except binascii.Error:
        # Whitespace is allowed in xs:base64Binary; anything else outside the alphabet is not.
        return base64.b64decode("".join(text.split()), validate=True)


class _Inline:
    """Personal attachments' contents, each distinct Inhoud decoded and held once per batch.

    Leveranciers often send the same PDF to every citizen of a batch: decoding it once saves
    the decoding, a copy per Bericht in memory, and makes every later look-up of that content
    (its PDF verdict, its blob) one of the same object. Keyed by the digest of the text, so the
    texts themselves are not kept.
    """

    def __init__(self) -> None:
        self.contents: dict[bytes, bytes] = {}

    def __call__(self, fields: dict[str, str]) -> bytes:
        text = fields.get("Inhoud", "")
        key = hashlib.sha256(text.encode()).digest()
        content = self.contents.get(key)
        if content is None:
            content = self.contents[key] = _decoded(text)
        return content


def _drop_inhoud(bijlagen: etree._Element) -> None:
    """Free the base64 text of attachments already decoded.

    The batch tree is the handler's alone and nothing reads an Inhoud twice; without its text
    a batch's attachments are held once, decoded, instead of also as base64 in the tree (up to
    a third more than the message itself) while the whole batch is judged and stored.
    """
    for inhoud in bijlagen.iter(f"{_L}Inhoud"):
        if len(inhoud) == 0:  # one text node; a (rare) comment inside keeps the rest
            inhoud.text = None


def _read_letter(element: etree._Element, general: Mapping[str, bytes], inline: _Inline) -> _Letter:
    info: dict[str, str] | None = None
    personal: list[tuple[int, str, bytes]] = []
    shared: list[tuple[int, str, bytes]] = []
    for part in element:
        if part.tag == _INFO:
            info = _fields(part, _L)
        elif part.tag == _BIJLAGEN:
            personal = _attachments(part, _L, inline)
            _drop_inhoud(part)
        elif part.tag == _ALGEMENE:
            shared = _attachments(part, _X, lambda f: general[_cid(f.get("Referentie", ""))])
    if info is None:  # the schema requires it; reaching this means it was not checked
        raise ValueError(f"{_INFO} ontbreekt in een niet gevalideerde batch")
    return _Letter(
        info,
        info.get("BerichtID", "").lower(),
        info.get("BerichtType", ""),
        info.get("GebruikerID", "").strip(),
        _moment(info.get("PublicatieDatum")),
        personal,
        shared,
    )


def _child(parent: etree._Element, tag: str) -> etree._Element:
    found = parent.find(tag)
    if found is None:  # the schema requires it; reaching this means it was not checked
        raise ValueError(f"{tag} ontbreekt in een niet gevalideerde batch")
    return found


def _cid(reference: str) -> str:
    return reference[4:] if reference.startswith("cid:") else reference


def general_references(batch: etree._Element) -> set[str]:
    """Every content-id the batch's AlgemeneBijlagen refer to (the ebMS layer resolves them)."""
    return {_cid(text_of(r) or "") for r in batch.iter(f"{_X}Referentie")}


def _judge(
    letter: _Letter,
    ctx: BatchContext,
    aanmaak: datetime,
    refused: Mapping[str, str],  # why, for each BSN the leverancier may not send post to
    taken: set[str],
) -> tuple[VerwerkingsCode, str | None]:
    if letter.bericht_id in taken:
        return VerwerkingsCode.BERICHT_BESTAAT_AL, None
    if letter.bericht_type not in ctx.leverancier.bericht_types:  # the active codes
        known = ctx.leverancier.bericht_type(letter.bericht_type) is not None
        return (
            VerwerkingsCode.BERICHTTYPE_NIET_ONDERSTEUND,
            f"BerichtType {letter.bericht_type} is "
            + ("niet actief" if known else "niet toegekend"),
        )
    if ctx.received_at - aanmaak > DATE_WINDOW:
        return (
            VerwerkingsCode.AANMAAKDATUM_TE_VER,
            "AanmaakDatum ligt meer dan 13 dagen in het verleden",
        )
    publicatie = letter.publicatie
    if publicatie is not None and publicatie - ctx.received_at > DATE_WINDOW:
        return (
            VerwerkingsCode.PUBLICATIEDATUM_TE_VER,
            "PublicatieDatum ligt meer dan 13 dagen in de toekomst",
        )
    refusal = refused.get(letter.bsn)
    if refusal is not None:
        return VerwerkingsCode.NIET_ACTIEF_OF_GEABONNEERD, refusal
    if sum(len(content) for _, _, content in letter.personal) > ctx.limits.personal_bytes:
        return (
            VerwerkingsCode.BIJLAGE_TE_GROOT,
            f"persoonlijke bijlagen samen groter dan {ctx.limits.personal_bytes} bytes",
        )
    if sum(len(content) for _, _, content in letter.general) > ctx.limits.general_bytes:
        return (
            VerwerkingsCode.BIJLAGE_TE_GROOT,
            f"algemene bijlagen samen groter dan {ctx.limits.general_bytes} bytes",
        )
    for soort, bijlagen in (("persoonlijke", letter.personal), ("algemene", letter.general)):
        for volgorde, _, content in bijlagen:
            verdict = ctx.pdf_verdict(content)
            problem = verdict.problem
            if problem is None and verdict.pdfa is None and ctx.leverancier.require_pdfa:
                problem = "is geen PDF/A: de XMP-metadata noemt geen pdfaid:part"
            if problem is not None:
                return VerwerkingsCode.TECHNISCH_PROBLEEM, f"{soort} bijlage {volgorde} {problem}"
    return VerwerkingsCode.VERWERKT, None


def _new_bericht(letter: _Letter, ctx: BatchContext, batch_id: str) -> NewBericht:
    info, publicatie = letter.info, letter.publicatie
    return NewBericht(
        bericht_id=letter.bericht_id,
        batch_id=batch_id,
        leverancier_oin=ctx.leverancier.oin,
        bsn=letter.bsn,
        bericht_type=letter.bericht_type,
        onderwerp=info.get("Onderwerp", ""),
        tekst=info.get("BerichtTekst"),
        referentie=info.get("Referentie"),
        eind_datum_handelingstermijn=_moment(info.get("EindDatumHandelingsTermijn")),
        visible_from=max(publicatie, ctx.received_at) if publicatie else ctx.received_at,
        received_at=ctx.received_at,
        ebms_message_id=ctx.ebms_message_id,
    )


def _new_bijlagen(letter: _Letter, ctx: BatchContext) -> list[NewBijlage]:
    return [
        NewBijlage(
            letter.bericht_id, soort, volgorde, omschrijving, content, ctx.pdf_verdict(content).pdfa
        )
        for soort, bijlagen in (("persoonlijk", letter.personal), ("algemeen", letter.general))
        for volgorde, omschrijving, content in bijlagen
    ]


def verwerk(repositories: Repositories, batch: etree._Element, ctx: BatchContext) -> BatchResultaat:
    """Judge and store every Bericht of an XSD-valid batch; returns the code of each."""
    info = _fields(_child(batch, f"{_B}BatchInformatie"), _B)
    batch_id = info.get("BatchID", "").lower()
    aanmaak = _moment(info.get("AanmaakDatum")) or ctx.received_at
    # The ebMS layer has resolved every general attachment's cid. The base64 is checked here:
    # libxml2's base64Binary skips characters outside the alphabet, which XSD does not allow,
    # so such an Inhoud fails the schema and with it the whole batch, as the schema would.
    inline = _Inline()
    try:
        letters = [
            _read_letter(element, ctx.general_attachments, inline)
            for element in batch.iterfind(f"{_L}Bericht")
        ]
    except binascii.Error:
        why = "een Inhoud is geen base64 (xs:base64Binary)"
        return batch_failure(
            batch_id, ctx.leverancier.oin, VerwerkingsCode.XML_ONGELDIG, why, ctx.received_at
        )
    bsns = {letter.bsn for letter in letters}
    refused = refusals(repositories.accounts, bsns, ctx.leverancier.oin, ctx.leverancier.by_law)
    taken = repositories.berichten.existing_ids(lt.bericht_id for lt in letters)
    results = []
    accepted: list[NewBericht] = []
    bijlagen: list[NewBijlage] = []
    for letter in letters:
        code, reden = _judge(letter, ctx, aanmaak, refused, taken)
        if code is VerwerkingsCode.VERWERKT:
            accepted.append(_new_bericht(letter, ctx, batch_id))
            bijlagen += _new_bijlagen(letter, ctx)
        results.append(BerichtResultaat(letter.bericht_id, letter.bericht_type, code, reden))
        # A BerichtID offered twice in one batch: the second is a repeat of the first.
        taken.add(letter.bericht_id)
    repositories.berichten.add(accepted, bijlagen)
    return BatchResultaat(
        batch_id=batch_id,
        leverancier=ctx.leverancier.oin,
        received_at=ctx.received_at,
        processed_at=datetime.now(UTC),
        berichten=tuple(results),
    )


def response_element(result: BatchResultaat) -> etree._Element:
    """The BerichtVerwerkResponse: root and Bericht qualified, everything else unqualified."""
    root = etree.Element(f"{_B}BerichtVerwerkResponse", nsmap={"bvs": BATCH, "br": RESULT})
    info = etree.SubElement(root, "BatchInformatie")
    etree.SubElement(info, "BerichtLeverancierCode").text = result.leverancier
    etree.SubElement(info, "BatchID").text = result.batch_id
    etree.SubElement(info, "TotaalAantalOntvangenBerichten").text = str(len(result.berichten))
    for name, count in result.counters().items():
        etree.SubElement(info, name).text = str(count)
    etree.SubElement(info, "DatumOntvangen").text = utc_millis(result.received_at)
    etree.SubElement(info, "DatumVerwerkt").text = utc_millis(result.processed_at)
    berichten = etree.SubElement(root, "Berichten")
    for bericht in result.berichten:
        entry = etree.SubElement(berichten, f"{{{RESULT}}}Bericht")
        etree.SubElement(entry, "BerichtID").text = bericht.bericht_id
        etree.SubElement(entry, "BerichtType").text = bericht.bericht_type
        etree.SubElement(entry, "VerwerkingsCode").text = bericht.code.value
        etree.SubElement(entry, "Stadium").text = STADIUM.get(bericht.code, "StoreMessage")
    return root

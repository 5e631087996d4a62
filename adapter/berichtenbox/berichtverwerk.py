"""BerichtVerwerk: a batch of letters, each accepted or refused with its own VerwerkingsCode.

Runs after the ebMS layer and the XSD check, inside the transaction that also stores the
receipt. One bad Bericht never rejects the others; what is accepted is stored completely
(letter, attachments by SHA-256) and becomes visible to the citizen at its PublicatieDatum.
"""

from __future__ import annotations

import binascii
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from lxml import etree

from adapter.berichtenbox.abonnementen import refusals
from adapter.berichtenbox.pdf import PdfVerdict, check_pdf
from adapter.config import Organisation
from adapter.receipts import BerichtUitkomst, Outcome
from adapter.soap.xml import text_of
from adapter.store.berichten import NewBericht, NewBijlage
from adapter.store.blobs import Staging
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

    # A member hashes as its text, the text it equals, in C: Enum's own hash (of the name)
    # is a Python call, and a batch looks up a thousand codes in dicts and a Counter.
    __hash__ = str.__hash__


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


class BerichtResultaat(NamedTuple):
    """One Bericht's outcome (a tuple: a batch makes a thousand of them)."""

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
                BerichtUitkomst(b.bericht_id, b.code._value_, b.reden) for b in self.berichten
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


class _Content(NamedTuple):
    """An attachment's content, staged: what judging and storing a letter need of it."""

    sha256: str
    size: int  # bytes, decoded


# Volgorde, Omschrijving and content of each of a Bericht's personal or general attachments: a
# tuple, so that the letters with the same attachments (most in a batch) are judged once.
_Attachments = tuple[tuple[int, str, _Content], ...]
# The code of each pair of personal and general attachments judged so far in a batch: their
# sizes and PDF checks depend on nothing else of the letter.
_AttachmentsJudged = dict[tuple[_Attachments, _Attachments], tuple[VerwerkingsCode, str | None]]


@dataclass
class _Letter:
    """One Bericht's fields, read in one pass over its elements."""

    info: dict[str, str]  # BerichtInformatie's fields read (_LETTER_INFO): local name -> whole text
    bericht_id: str
    bericht_type: str
    bsn: str
    publicatie: datetime | None
    personal: _Attachments
    general: _Attachments


@dataclass(frozen=True)
class _Record:
    """How to read the fields of one kind of record (BerichtInformatie, Bijlage, ...).

    `names`: qualified tag -> local name of the fields read (the others, such as a Bericht's
    BatchID, SoortGebruiker and BijlageType, never are). `required`: the elements its schema
    sequence requires, and `positions`: where the fields read then are. A record of exactly
    that many children holds only those, in the schema's order: an optional element, or a
    comment or processing instruction between them, would leave a required one out, which
    the XSD check refuses. So such a record's fields are taken by position, reading no tag.
    """

    names: Mapping[str, str]
    required: int = -1  # -1: always by tag
    positions: tuple[tuple[int, str], ...] = ()


def _record(prefix: str, names: tuple[str, ...], sequence: tuple[str, ...] = ()) -> _Record:
    """A record whose schema sequence requires `sequence` (in order), of which `names` are read."""
    return _Record(
        {f"{prefix}{name}": name for name in names},
        len(sequence) if sequence else -1,
        tuple((sequence.index(name), name) for name in names if name in sequence),
    )


_BATCH_INFO = _record(_B, ("BatchID", "AanmaakDatum"))
_LETTER_INFO = _record(
    _L,
    (
        "BerichtID",
        "BerichtType",
        "PublicatieDatum",
        "EindDatumHandelingsTermijn",
        "Onderwerp",
        "BerichtTekst",
        "Referentie",
        "GebruikerID",
    ),
    ("BatchID", "BerichtID", "BerichtType", "Onderwerp", "GebruikerID", "SoortGebruiker"),
)
_PERSONAL = _record(
    _L,
    ("Inhoud", "Omschrijving", "Volgorde"),
    ("Inhoud", "BijlageType", "Omschrijving", "Volgorde"),
)
_GENERAL = _record(
    _X,
    ("Referentie", "Omschrijving", "Volgorde"),
    ("Referentie", "BijlageType", "Omschrijving", "Volgorde"),
)
_INHOUD = f"{_L}Inhoud"


def _fields(parent: etree._Element, record: _Record) -> dict[str, str]:
    """The fields `record` reads of `parent`, by local name, each with its whole text
    (`text_of`): one pass instead of a find() per field, which was the largest per-Bericht
    cost of a batch. By position when the record holds only what its schema requires (reading
    an element's tag costs as much as its text), else one dict look-up per child's tag (a
    comment's tag is a function, found in no table)."""
    fields: dict[str, str] = {}
    if len(parent) == record.required:
        for position, name in record.positions:
            child = parent[position]
            # A field without children (nearly all) has at most one text node: its .text, as
            # text_of reads it, without the call per field.
            fields[name] = (child.text or "") if len(child) == 0 else (text_of(child) or "")
        return fields
    names = record.names
    for child in parent:
        local = names.get(child.tag)
        if local is not None:
            fields[local] = text_of(child) or ""
    return fields


def _attachments(
    parent: etree._Element, record: _Record, content: Callable[[dict[str, str]], _Content]
) -> _Attachments:
    """Volgorde, Omschrijving and content of each attachment element inside `parent`."""
    found = []
    for element in parent:
        if isinstance(element.tag, str):
            fields = _fields(element, record)
            found.append(
                (int(fields.get("Volgorde") or 0), fields.get("Omschrijving", ""), content(fields))
            )
    return tuple(found)


# The schema's Inhoud (xs:base64Binary, at least one octet) is checked here, not by libxml2
# (`EbmsAction.checked_by_handler`): libxml2 let characters outside the alphabet pass, and
# its check cost a 27 MB batch 35 ms, more than the rest of its validation together.
SCHEMA_TYPES_CHECKED_HERE = frozenset({f"{_L}Inhoud"})
_XML_WHITESPACE = str.maketrans("", "", " \t\r\n")  # what the type's whitespace rule removes
# The last character before "=" or "==" leaves 2 or 4 bits unused, which must be zero.
_BEFORE_ONE_PAD, _BEFORE_TWO_PADS = frozenset("AEIMQUYcgkosw048"), frozenset("AQgw")
_OUTSIDE_BASE64 = re.compile(r"[^A-Za-z0-9+/=]")


class _NotBase64(ValueError):
    """An Inhoud that is no xs:base64Binary; the text says why."""


def _decoded(text: str) -> bytes:
    """The content an Inhoud encodes, as xs:base64Binary defines it, or `_NotBase64`."""
    try:
        # Most senders write base64 without line breaks: strict mode decodes that in one pass.
        data = binascii.a2b_base64(text, strict_mode=True)
    except ValueError:  # binascii.Error, or a character outside ASCII
        text = text.translate(_XML_WHITESPACE)
        try:
            data = binascii.a2b_base64(text, strict_mode=True)
        except ValueError:
            raise _NotBase64(_why_not_base64(text)) from None
    if not _well_padded(text):
        raise _NotBase64(_why_not_base64(text))
    if not data:
        raise _NotBase64("de Inhoud is leeg")
    return data


def _well_padded(text: str) -> bool:
    """Whether the padding of text that strict mode decoded is the type's: strict mode also
    takes "=" after a whole group of four and unused bits that are not zero."""
    if not text.endswith("="):
        return True
    if len(text) % 4 or text.endswith("==="):
        return False
    if text.endswith("=="):
        return text[-3] in _BEFORE_TWO_PADS
    return text[-2] in _BEFORE_ONE_PAD


def _why_not_base64(text: str) -> str:
    """What is wrong with base64 text, whitespace removed, that does not decode as the type."""
    outside = _OUTSIDE_BASE64.search(text)
    if outside:
        return f"het teken {outside.group()!r} hoort niet bij base64"
    data = text.rstrip("=")
    if "=" in data or len(text) - len(data) > 2:
        return "'=' mag alleen aan het eind staan, hoogstens twee keer"
    if len(text) % 4:
        return f"{len(text)} tekens (zonder witruimte) is geen veelvoud van 4"
    return f"het laatste teken voor de '=' ({data[-1]}) laat bits over die niet 0 zijn"


_RECENT_TEXTS = 8  # Inhoud texts remembered to find a repeat without decoding it (_Staged)


class _Staged:
    """A batch's attachment contents, each distinct one decoded, checked as a PDF and handed
    to the blob store's staging once, as its letters are read: the letters then hold only
    each content's digest and size, and no batch's attachments are all in memory together.

    Leveranciers often send the same PDF to every citizen of a batch, so an Inhoud is looked
    up by its text before it is decoded: a string hashes and compares at memory speed, where
    decoding and a SHA-256 per Bericht cost more than a third of reading the letters. Only the
    last _RECENT_TEXTS distinct texts are kept for that: a batch of distinct PDFs would
    otherwise hold all its base64 once more. A text seen before them is decoded again, and
    the staging still stores its content once. A general attachment is staged once per
    content-id; the PDF check runs once per distinct content (`verdicts`).
    """

    def __init__(self, staging: Staging, general: Mapping[str, bytes]) -> None:
        self._staging = staging
        self._general_parts = general
        self._inline: dict[str, _Content] = {}  # recent Inhoud texts -> their content
        self._general: dict[str, _Content] = {}  # content-id -> its content
        self.verdicts: dict[str, PdfVerdict] = {}  # digest -> the PDF check of its content

    def _stage(self, data: bytes) -> _Content:
        digest = self._staging.add(data)
        if digest not in self.verdicts:
            self.verdicts[digest] = check_pdf(data)
        return _Content(digest, len(data))

    def personal(self, fields: dict[str, str]) -> _Content:
        text = fields.get("Inhoud", "")
        recent = self._inline
        content = recent.get(text)
        if content is None:
            if len(recent) >= _RECENT_TEXTS:
                del recent[next(iter(recent))]  # the oldest: dicts keep insertion order
            content = recent[text] = self._stage(_decoded(text))
        return content

    def general(self, fields: dict[str, str]) -> _Content:
        cid = _cid(fields.get("Referentie", ""))
        content = self._general.get(cid)
        if content is None:
            content = self._general[cid] = self._stage(self._general_parts[cid])
        return content


def _drop_inhoud(bijlagen: etree._Element) -> None:
    """Free the base64 text of attachments already decoded.

    The batch tree is the handler's alone and nothing reads an Inhoud twice; without its text
    a batch's attachments are held once, decoded, instead of also as base64 in the tree (up to
    a third more than the message itself) while the whole batch is judged and stored.
    """
    for inhoud in bijlagen.iter(_INHOUD):
        if len(inhoud) == 0:  # one text node; a (rare) comment inside keeps the rest
            inhoud.text = None


def _read_letter(element: etree._Element, staged: _Staged) -> _Letter:
    info: dict[str, str] | None = None
    personal: _Attachments = ()
    shared: _Attachments = ()
    for part in element:
        tag = part.tag
        if tag == _INFO:
            info = _fields(part, _LETTER_INFO)
        elif tag == _BIJLAGEN:
            personal = _attachments(part, _PERSONAL, staged.personal)
            _drop_inhoud(part)
        elif tag == _ALGEMENE:
            shared = _attachments(part, _GENERAL, staged.general)
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


_VERWERKT = (VerwerkingsCode.VERWERKT, None)
_BESTAAT_AL = (VerwerkingsCode.BERICHT_BESTAAT_AL, None)
_AANMAAK_TE_VER = (
    VerwerkingsCode.AANMAAKDATUM_TE_VER,
    "AanmaakDatum ligt meer dan 13 dagen in het verleden",
)
_PUBLICATIE_TE_VER = (
    VerwerkingsCode.PUBLICATIEDATUM_TE_VER,
    "PublicatieDatum ligt meer dan 13 dagen in de toekomst",
)


def _judge(
    letter: _Letter,
    ctx: BatchContext,
    aanmaak_te_ver: bool,  # the batch's AanmaakDatum, judged once for all its Berichten
    refused: Mapping[str, str],  # why, for each BSN the leverancier may not send post to
    taken: set[str],
    attachments_judged: _AttachmentsJudged,
    verdicts: Mapping[str, PdfVerdict],
) -> tuple[VerwerkingsCode, str | None]:
    if letter.bericht_id in taken:
        return _BESTAAT_AL
    if letter.bericht_type not in ctx.leverancier.bericht_types:  # the active codes
        known = ctx.leverancier.bericht_type(letter.bericht_type) is not None
        return (
            VerwerkingsCode.BERICHTTYPE_NIET_ONDERSTEUND,
            f"BerichtType {letter.bericht_type} is "
            + ("niet actief" if known else "niet toegekend"),
        )
    if aanmaak_te_ver:
        return _AANMAAK_TE_VER
    publicatie = letter.publicatie
    if publicatie is not None and publicatie - ctx.received_at > DATE_WINDOW:
        return _PUBLICATIE_TE_VER
    refusal = refused.get(letter.bsn)
    if refusal is not None:
        return VerwerkingsCode.NIET_ACTIEF_OF_GEABONNEERD, refusal
    if not (letter.personal or letter.general):
        return _VERWERKT
    key = (letter.personal, letter.general)
    judged = attachments_judged.get(key)
    if judged is None:
        judged = attachments_judged[key] = _judge_attachments(letter, ctx, verdicts)
    return judged


def _judge_attachments(
    letter: _Letter, ctx: BatchContext, verdicts: Mapping[str, PdfVerdict]
) -> tuple[VerwerkingsCode, str | None]:
    if sum(content.size for _, _, content in letter.personal) > ctx.limits.personal_bytes:
        return (
            VerwerkingsCode.BIJLAGE_TE_GROOT,
            f"persoonlijke bijlagen samen groter dan {ctx.limits.personal_bytes} bytes",
        )
    if sum(content.size for _, _, content in letter.general) > ctx.limits.general_bytes:
        return (
            VerwerkingsCode.BIJLAGE_TE_GROOT,
            f"algemene bijlagen samen groter dan {ctx.limits.general_bytes} bytes",
        )
    for soort, bijlagen in (("persoonlijke", letter.personal), ("algemene", letter.general)):
        for volgorde, _, content in bijlagen:
            verdict = verdicts[content.sha256]
            problem = verdict.problem
            if problem is None and verdict.pdfa is None and ctx.leverancier.require_pdfa:
                problem = "is geen PDF/A: de XMP-metadata noemt geen pdfaid:part"
            if problem is not None:
                return VerwerkingsCode.TECHNISCH_PROBLEEM, f"{soort} bijlage {volgorde} {problem}"
    return _VERWERKT


def _new_bericht(letter: _Letter, ctx: BatchContext, batch_id: str) -> NewBericht:
    info, publicatie, received_at = letter.info, letter.publicatie, ctx.received_at
    # Positional, in NewBericht's order: a keyword call per Bericht costs twice as much.
    return NewBericht(
        letter.bericht_id,
        batch_id,
        ctx.leverancier.oin,
        letter.bsn,
        letter.bericht_type,
        info.get("Onderwerp", ""),
        info.get("BerichtTekst"),
        info.get("Referentie"),
        _moment(info.get("EindDatumHandelingsTermijn")),
        max(publicatie, received_at) if publicatie else received_at,
        received_at,
        ctx.ebms_message_id,
    )


def _new_bijlagen(letter: _Letter, verdicts: Mapping[str, PdfVerdict]) -> list[NewBijlage]:
    return [
        NewBijlage(
            letter.bericht_id,
            soort,
            volgorde,
            omschrijving,
            content.sha256,
            content.size,
            verdicts[content.sha256].pdfa,
        )
        for soort, bijlagen in (("persoonlijk", letter.personal), ("algemeen", letter.general))
        for volgorde, omschrijving, content in bijlagen
    ]


def verwerk(
    repositories: Repositories, batch: etree._Element, ctx: BatchContext
) -> tuple[BatchResultaat, Callable[[], None] | None]:
    """Judge every Bericht of an XSD-valid batch: the code of each, and the inserts of those
    accepted (None when the batch is refused whole), to run in the same transaction (their
    attachments' contents are durable already). The caller runs them once its answer is
    built and signed: on SQLite the database's write lock, which every other batch waits
    for, is then held for writes only."""
    info = _fields(_child(batch, f"{_B}BatchInformatie"), _BATCH_INFO)
    batch_id = info.get("BatchID", "").lower()
    with repositories.berichten.staging() as staging:  # what is not kept is removed
        letters, verdicts = _read_letters(batch, _Staged(staging, ctx.general_attachments))
        if isinstance(letters, str):
            failure = batch_failure(
                batch_id,
                ctx.leverancier.oin,
                VerwerkingsCode.XML_ONGELDIG,
                letters,
                ctx.received_at,
            )
            return failure, None
        aanmaak = _moment(info.get("AanmaakDatum")) or ctx.received_at
        aanmaak_te_ver = ctx.received_at - aanmaak > DATE_WINDOW
        bsns = {letter.bsn for letter in letters}
        refused = refusals(repositories.accounts, bsns, ctx.leverancier.oin, ctx.leverancier.by_law)
        taken = repositories.berichten.existing_ids(lt.bericht_id for lt in letters)
        results = []
        accepted: list[NewBericht] = []
        bijlagen: list[NewBijlage] = []
        judged: _AttachmentsJudged = {}
        for letter in letters:
            code, reden = _judge(letter, ctx, aanmaak_te_ver, refused, taken, judged, verdicts)
            if code is VerwerkingsCode.VERWERKT:
                accepted.append(_new_bericht(letter, ctx, batch_id))
                if letter.personal or letter.general:
                    bijlagen += _new_bijlagen(letter, verdicts)
            results.append(BerichtResultaat(letter.bericht_id, letter.bericht_type, code, reden))
            # A BerichtID offered twice in one batch: the second is a repeat of the first.
            taken.add(letter.bericht_id)
        store = repositories.berichten.staged(accepted, bijlagen, staging)
    result = BatchResultaat(
        batch_id=batch_id,
        leverancier=ctx.leverancier.oin,
        received_at=ctx.received_at,
        processed_at=datetime.now(UTC),
        berichten=tuple(results),
    )
    return result, store


def _read_letters(
    batch: etree._Element, staged: _Staged
) -> tuple[list[_Letter] | str, dict[str, PdfVerdict]]:
    """Every Bericht's fields, its attachments staged; instead, when an Inhoud is no base64,
    why and where.

    The ebMS layer has resolved every general attachment's cid. An Inhoud that is no base64
    fails the whole batch, as the schema it stands in for would (SCHEMA_TYPES_CHECKED_HERE).
    """
    letters = []
    for number, element in enumerate(batch.iterfind(f"{_L}Bericht"), 1):
        try:
            letters.append(_read_letter(element, staged))
        except _NotBase64 as exc:
            info = _fields(_child(element, _INFO), _LETTER_INFO)
            where = f"Bericht {number} (BerichtID {info.get('BerichtID', '')})"
            return f"een Inhoud van {where} is geen xs:base64Binary: {exc}", {}
    return letters, staged.verdicts


def _escaped(text: str) -> str:
    """Text content as libxml2 writes it: &, <, > and carriage returns escaped."""
    if "&" in text or "<" in text or ">" in text or "\r" in text:
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        text = text.replace("\r", "&#13;")
    return text


# The rest of a Bericht's entry after its BerichtType, for each code.
_ENTRY_END = {
    code: f"</BerichtType><VerwerkingsCode>{code.value}</VerwerkingsCode>"
    f"<Stadium>{STADIUM.get(code, 'StoreMessage')}</Stadium></br:Bericht>"
    for code in VerwerkingsCode
}
_RESPONSE_START = (
    f"<?xml version='1.0' encoding='utf-8'?>\n<bvs:BerichtVerwerkResponse xmlns:bvs=\"{BATCH}\""
    f' xmlns:br="{RESULT}">'
)


def response_xml(result: BatchResultaat) -> bytes:
    """The BerichtVerwerkResponse (root and Bericht qualified, everything else unqualified),
    UTF-8 with an XML declaration: the bytes lxml wrote for the same tree, written directly,
    since building a thousand-Bericht tree cost ten times as much as the text."""
    counters = "".join(f"<{name}>{count}</{name}>" for name, count in result.counters().items())
    parts = [
        _RESPONSE_START,
        "<BatchInformatie><BerichtLeverancierCode>",
        _escaped(result.leverancier),
        "</BerichtLeverancierCode><BatchID>",
        _escaped(result.batch_id),
        f"</BatchID><TotaalAantalOntvangenBerichten>{len(result.berichten)}"
        f"</TotaalAantalOntvangenBerichten>{counters}"
        f"<DatumOntvangen>{utc_millis(result.received_at)}</DatumOntvangen>"
        f"<DatumVerwerkt>{utc_millis(result.processed_at)}</DatumVerwerkt></BatchInformatie>",
    ]
    if result.berichten:
        parts.append("<Berichten>")
        parts += [
            f"<br:Bericht><BerichtID>{_escaped(b.bericht_id)}</BerichtID><BerichtType>"
            f"{_escaped(b.bericht_type)}{_ENTRY_END[b.code]}"
            for b in result.berichten
        ]
        parts.append("</Berichten>")
    else:
        parts.append("<Berichten/>")
    parts.append("</bvs:BerichtVerwerkResponse>")
    return "".join(parts).encode()

"""AbonnementAanvraag: which of up to a million citizens take this organisation's post digitally.

The Logius AbonnementService (SPEC §3, Part B) over ebMS: Action `GLOBE-R-A-Request` on the
Berichtenbox service, an `AbonnementAanvraag` in one of three variants,

* BSNLijst: 1 to 1,000,000 BSNs, each answered in request order (a BSN failing the elfproef
  gets `isBerichtSturen` false and `Fout`, the request is not refused for it);
* Mutatie: every BSN whose answer changed after `MutatieDatum`, from the recorded history of
  opt-ins, activations and account imports (`subscription_changes`);
* Volledig: every BSN the organisation may send post to;

answered asynchronously with `AbonnementAntwoord` (xsd/abonnement-antwoord.xsd, our
assumption) as a gzip payload (RFC 1952), Action `GLOBE-R-A-Result`, through the outbox.
"May send post to" is the rule of ValidateAbonnementen: by-law organisations every account,
the others an activated account that opted in for the BerichtLeverancier's OIN.

Memory stays flat whatever the size: the request is read as a stream in streaming mode (the
BSNs kept as 32-bit numbers, 4 MB for a million), the database is read a page of BSNs at a
time, and the answer is written as a gzip stream to a temporary file; only the compressed
answer (a few MB for a million) is held, and the outbox keeps it in its row like any body.
"""

from __future__ import annotations

import gzip
import tempfile
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import IO
from xml.sax.saxutils import escape

from adapter.config import Organisations
from adapter.ebms.service import (
    EbmsAnswer,
    EbmsStreamRequest,
    EncodedPayload,
    InvalidPayload,
    StreamedPayload,
)
from adapter.errors import SchemaViolation, XmlRejected
from adapter.receipts import Outcome
from adapter.soap.xml import iterparse_untrusted
from adapter.store.repositories import Repositories
from adapter.xmltime import utc_millis

NS = "http://schemas.overheid.nl/GEB/AbonnementServiceProcessor/2014/02"
REQUEST_ACTION = "GLOBE-R-A-Request"
RESULT_ACTION = "GLOBE-R-A-Result"  # not published by Logius: our assumption (SPEC Part B)
REQUEST_SCHEMA = "abonnement-aanvraag.xsd"
GZIP = "application/gzip"  # RFC 6713, for an RFC 1952 stream
ANSWER_FILE = "AbonnementAntwoord.xml"  # the name inside the gzip header
MAX_BSNS = 1_000_000  # TAH §4; enforced here with a clear reason rather than by the XSD
# BSNs looked up per query, and answer lines per write to the gzip stream.
LOOKUP_BSNS = 10_000
# "Changed after MutatieDatum" is read from this much earlier: a change stamped just before
# the previous answer's Tijdstip but committed after that answer read the history is then
# still reported (again, harmless: every entry carries the current value), never lost.
SETTLE = timedelta(minutes=1)
# Level 6 (zlib's default) makes a million entries about 5 MB in about a second.
COMPRESS_LEVEL = 6
_TYPECODE = "I" if array("I").itemsize >= 4 else "L"  # an unsigned type holding 999,999,999


class Variant(StrEnum):
    BSN_LIJST = "BSNLijst"
    MUTATIE = "Mutatie"
    VOLLEDIG = "Volledig"


class Weigering(StrEnum):
    """Why a whole request is answered without entries (the BerichtVerwerk codes' names)."""

    OIN = "OinInCPAKomtNietOvereenMetOinInBericht"
    XML = "XmlValidatieTegenXsdValtNegatiefUit"


ELFPROEF_FOUT = "BSNVoldoetNietAanElfproef"


@dataclass(frozen=True)
class AbonnementSettings:
    """The part of the configuration AbonnementAanvraag needs."""

    organisations: Organisations  # whose by-law status and intermediaries count


@dataclass(frozen=True)
class Aanvraag:
    """A request read and validated; the BSNs of a BSNLijst as numbers, in request order."""

    leverancier_oin: str
    verzoek_id: str
    variant: Variant
    mutatie_datum: datetime | None
    bsns: array[int]


def is_bsn(text: str) -> bool:
    """The elfproef on nine ASCII digits, as stdnum's `bsn.is_valid` judges them, fast enough
    for a million (weights 9..2 and -1, the sum divisible by 11, not all zeros)."""
    if len(text) != 9 or not (text.isascii() and text.isdigit()):
        return False
    d = text.encode("ascii")
    total = 9 * d[0] + 8 * d[1] + 7 * d[2] + 6 * d[3] + 5 * d[4] + 4 * d[5] + 3 * d[6]
    total += 2 * d[7] - d[8] - 48 * 43  # the digits' ASCII offset, times the weights' sum
    return total % 11 == 0 and text != "000000000"


def _moment(text: str) -> datetime:
    """An xs:dateTime the schema accepted; without an offset it is UTC (as in BerichtVerwerk)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SchemaViolation(
            f"MutatieDatum {text.strip()!r} is geen xs:dateTime, bijvoorbeeld "
            "2016-02-02T12:23:16.326Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_aanvraag(payload: StreamedPayload) -> Aanvraag:
    """Read the request as a stream, validating it against the schema as it goes.

    Raises `SchemaViolation` or `XmlRejected` saying what to fix. Finished BSN elements are
    removed from the partial tree as they are read, so a million cost no more than a few.
    """
    oin, verzoek_id = "", ""
    mutatie: datetime | None = None
    variant = Variant.VOLLEDIG
    bsns: array[int] = array(_TYPECODE)
    for element in payload.elements():
        tag = element.tag
        if tag == "BSN":
            text = (element.text or "").strip()
            if len(text) != 9 or not (text.isascii() and text.isdigit()):
                # The schema says the same; this keeps int() safe whenever it reports.
                raise SchemaViolation(
                    f"BSN {len(bsns) + 1} van de BSNLijst is geen getal van 9 cijfers"
                )
            if len(bsns) == MAX_BSNS:
                raise SchemaViolation(
                    f"de BSNLijst bevat meer dan {MAX_BSNS} BSN's; verdeel ze over meer aanvragen"
                )
            bsns.append(int(text))
            if len(bsns) % 4096 == 0:
                parent = element.getparent()
                if parent is not None:
                    del parent[:-1]  # every earlier BSN: read, validated, no longer needed
        elif tag == "BSNLijst":
            variant = Variant.BSN_LIJST
            element.clear()
        elif tag == "OIN":
            oin = (element.text or "").strip()
        elif tag == "VerzoekId":
            verzoek_id = (element.text or "").strip()
        elif tag == "MutatieDatum":
            variant, mutatie = Variant.MUTATIE, _moment(element.text or "")
    return Aanvraag(oin, verzoek_id, variant, mutatie, bsns)


def _verzoek_id(raw: bytes) -> str:
    """The VerzoekId of a request that failed validation, if it can be read before the fault."""
    try:
        for element in iterparse_untrusted(raw):
            if element.tag == "VerzoekId":
                return (element.text or "").strip()
            if element.tag in ("BSN", "BSNLijst", "MutatieDatum"):
                break  # VerzoekId comes before these; it is not there
    except XmlRejected:
        pass
    return ""


# --- the answer ------------------------------------------------------------------------------


class _Answer:
    """AbonnementAntwoord, written as a gzip stream into a temporary file."""

    def __init__(self, leverancier_oin: str, verzoek_id: str, moment: datetime) -> None:
        # Closed by finish() or discard(): the file outlives this method on purpose.
        self.file: IO[bytes] = tempfile.TemporaryFile(prefix="abonnement-antwoord-")  # noqa: SIM115
        self.stream = gzip.GzipFile(
            filename=ANSWER_FILE,
            mode="wb",
            fileobj=self.file,
            compresslevel=COMPRESS_LEVEL,
            mtime=int(moment.timestamp()),
        )
        self.entries = self.receiving = self.invalid = 0
        self._text(
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<ab:AbonnementAntwoord xmlns:ab="{NS}">\n'
            f"  <BerichtLeverancier><OIN>{escape(leverancier_oin)}</OIN></BerichtLeverancier>\n"
            f"  <VerzoekId>{escape(verzoek_id)}</VerzoekId>\n"
            f"  <Tijdstip>{utc_millis(moment)}</Tijdstip>\n"
        )

    def _text(self, text: str) -> None:
        self.stream.write(text.encode("utf-8"))

    def refusal(self, code: Weigering, reason: str) -> None:
        self._text(f"  <Weigering><Code>{code}</Code><Reden>{escape(reason)}</Reden></Weigering>\n")

    def begin(self, variant: Variant, mutatie_datum: datetime | None) -> None:
        self._text(f"  <Soort>{variant}</Soort>\n")
        if mutatie_datum is not None:
            self._text(f"  <MutatieDatum>{utc_millis(mutatie_datum)}</MutatieDatum>\n")
        self._text("  <Abonnementen>\n")

    def entries_of(self, lines: Iterable[tuple[str, bool | None]]) -> None:
        """(BSN, isBerichtSturen) per entry; None: the BSN fails the elfproef."""
        out = []
        for bsn, receiving in lines:
            if receiving is None:
                out.append(_INVALID % bsn)
                self.invalid += 1
            elif receiving:
                out.append(_TRUE % bsn)
                self.receiving += 1
            else:
                out.append(_FALSE % bsn)
        self.entries += len(out)
        if out:
            self._text("".join(out))

    def end(self) -> None:
        self._text("  </Abonnementen>\n")

    def finish(self) -> bytes:
        self._text("</ab:AbonnementAntwoord>\n")
        self.stream.close()
        self.file.seek(0)
        data = self.file.read()
        self.file.close()
        return data

    def discard(self) -> None:
        self.stream.close()
        self.file.close()


_ENTRY = "    <Abonnement><BSN>%s</BSN><isBerichtSturen>{}</isBerichtSturen>{}</Abonnement>\n"
_TRUE = _ENTRY.format("true", "")
_FALSE = _ENTRY.format("false", "")
_INVALID = _ENTRY.format("false", f"<Fout>{ELFPROEF_FOUT}</Fout>")


def _pages(items: Iterable[tuple[str, bool]]) -> Iterable[list[tuple[str, bool | None]]]:
    page: list[tuple[str, bool | None]] = []
    for item in items:
        page.append(item)
        if len(page) == LOOKUP_BSNS:
            yield page
            page = []
    if page:
        yield page


def _bsn_list(
    answer: _Answer, repositories: Repositories, aanvraag: Aanvraag, by_law: bool
) -> None:
    numbers = aanvraag.bsns
    for start in range(0, len(numbers), LOOKUP_BSNS):
        page = [f"{n:09d}" for n in numbers[start : start + LOOKUP_BSNS]]
        valid = {bsn for bsn in page if is_bsn(bsn)}
        receiving = (
            repositories.accounts.receiving(valid, aanvraag.leverancier_oin, by_law)
            if valid
            else set()
        )
        answer.entries_of((bsn, (bsn in receiving) if bsn in valid else None) for bsn in page)


def answer_aanvraag(
    aanvraag: Aanvraag, by_law: bool, repositories: Repositories, moment: datetime
) -> tuple[bytes, _Answer]:
    """The gzipped AbonnementAntwoord of a checked request, and its counts."""
    answer = _Answer(aanvraag.leverancier_oin, aanvraag.verzoek_id, moment)
    try:
        answer.begin(aanvraag.variant, aanvraag.mutatie_datum)
        oin = aanvraag.leverancier_oin
        if aanvraag.variant is Variant.BSN_LIJST:
            _bsn_list(answer, repositories, aanvraag, by_law)
        elif aanvraag.variant is Variant.MUTATIE and aanvraag.mutatie_datum is not None:
            since = aanvraag.mutatie_datum - SETTLE
            for page in _pages(repositories.accounts.changed_since(oin, by_law, since)):
                answer.entries_of(page)
        else:
            for page in _pages(
                (bsn, True) for bsn in repositories.accounts.subscribers(oin, by_law)
            ):
                answer.entries_of(page)
        answer.end()
        return answer.finish(), answer
    except BaseException:
        answer.discard()
        raise


def refusal(
    leverancier_oin: str, verzoek_id: str, code: Weigering, reason: str, moment: datetime
) -> EbmsAnswer:
    """The answer to a request that cannot be answered per BSN: no entries, code and reason."""
    answer = _Answer(leverancier_oin, verzoek_id, moment)
    answer.refusal(code, reason)
    return EbmsAnswer(
        payload=EncodedPayload(GZIP, answer.finish()),
        outcome=Outcome.reject(code, reason),
        accepted=0,
        summary=f"AbonnementAanvraag geweigerd: {code}",
    )


# --- the descriptor's handlers -----------------------------------------------------------------


def prepare(
    request: EbmsStreamRequest, settings: AbonnementSettings
) -> Callable[[Repositories], EbmsAnswer]:
    """Streaming-mode handler: read the request now, answer it in the transaction."""
    aanvraag = read_aanvraag(request.payload)
    organisation = request.party.organisation
    leverancier = settings.organisations.by_oin.get(aanvraag.leverancier_oin)
    if leverancier is None or not organisation.may_deliver_for(aanvraag.leverancier_oin):
        reason = (
            f"BerichtLeverancier/OIN {aanvraag.leverancier_oin} is niet {organisation.oin} "
            "(of een organisatie waarvoor die via acts_for mag aanleveren)"
        )
        answer = refusal(
            aanvraag.leverancier_oin,
            aanvraag.verzoek_id,
            Weigering.OIN,
            reason,
            request.received_at,
        )
        return lambda _repositories: answer

    def run(repositories: Repositories) -> EbmsAnswer:
        # An intermediary asks on behalf of the leverancier: its by-law status is what counts.
        data, counts = answer_aanvraag(
            aanvraag, leverancier.by_law, repositories, request.received_at
        )
        return EbmsAnswer(
            payload=EncodedPayload(GZIP, data),
            outcome=Outcome.accept(),
            accepted=1,
            summary=(
                f"AbonnementAanvraag {aanvraag.variant}: {counts.entries} BSN's, "
                f"{counts.receiving} isBerichtSturen, {counts.invalid} zonder geldige elfproef, "
                f"antwoord {len(data)} bytes gzip"
            ),
        )

    return run


def invalid(problem: InvalidPayload) -> EbmsAnswer:
    """A request that is not well-formed or breaks the schema: refused as a whole, by the
    business (acknowledged at the ebMS layer, as BerichtVerwerk answers a bad batch)."""
    return refusal(
        problem.party.oin,
        _verzoek_id(problem.raw),
        Weigering.XML,
        problem.reason,
        problem.received_at,
    )

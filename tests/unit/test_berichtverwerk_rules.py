"""BerichtVerwerk's rules on a batch, without a server: parse, XSD, judge and store, on SQLite
and PostgreSQL. Each refusal is its own Bericht's (exact VerwerkingsCode and reason) while the
rest of the batch is still Verwerkt, and nothing of a refused Bericht is stored."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from adapter.berichtenbox import berichtverwerk
from adapter.berichtenbox.berichtverwerk import BatchContext, BijlageLimits, verwerk
from adapter.berichtenbox.pdf import check_pdf
from adapter.config import Organisation, load_organisations
from adapter.soap.schema import SchemaSet
from adapter.soap.xml import parse_untrusted
from adapter.store.blobs import LocalBlobStore
from adapter.store.db import Database
from adapter.store.models import Account, Bericht, BerichtBijlage, Bijlage, Subscription
from tests import pdf_samples as pdfs
from tests.berichtverwerk_samples import batch_xml, minimal_pdf
from tests.conftest import CONF, GEMEENTE, ROOT

SUBSCRIBED = "999993653"
ORGANISATION = load_organisations(CONF / "organisations.toml").by_oin[GEMEENTE]
SCHEMAS = SchemaSet(ROOT / "xsd")


@pytest.fixture(scope="module")
def database(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    database = Database(database_url, LocalBlobStore(tmp_path_factory.mktemp("blobs")))
    database.create_schema()
    now = datetime.now(UTC)
    with database.transaction() as session:
        session.add(Account(bsn=SUBSCRIBED, active=True, email=None, updated_at=now))
        session.flush()
        session.add(Subscription(bsn=SUBSCRIBED, oin=GEMEENTE, created_at=now))
    yield database
    database.dispose()


def run(
    database: Database,
    payload: bytes,
    organisation: Organisation = ORGANISATION,
    general: Mapping[str, bytes] | None = None,
) -> dict[str, tuple[str, str | None]]:
    """Parse and validate as the ebMS endpoint does, then judge and store; BerichtID -> code."""
    batch = parse_untrusted(payload)
    SCHEMAS.validate(batch, "GLOBEBatchRequest.xsd", berichtverwerk.SCHEMA_TYPES_CHECKED_HERE)
    context = BatchContext(
        organisation,
        organisation,
        datetime.now(UTC),
        "message@test",
        general or {},
        BijlageLimits(),
    )
    with database.repositories() as repositories:
        result, store = verwerk(repositories, batch, context)
        if store is not None:
            store()
    return {b.bericht_id: (b.code.value, b.reden) for b in result.berichten}


def stored(database: Database, bericht_id: str) -> tuple[int, int]:
    """How many berichten and bericht_bijlagen rows a BerichtID has."""
    with database.transaction() as session:
        berichten = session.scalars(select(Bericht).where(Bericht.bericht_id == bericht_id))
        links = session.scalars(
            select(BerichtBijlage).where(BerichtBijlage.bericht_id == bericht_id)
        )
        return len(list(berichten)), len(list(links))


def pdfa_of(database: Database, content: bytes) -> str | None:
    """What `bijlagen.pdfa` recorded for a stored content."""
    with database.transaction() as session:
        row = session.get(Bijlage, hashlib.sha256(content).hexdigest())
        assert row is not None, "attachment not stored"
        return row.pdfa


def bericht(bericht_id: str, *bijlagen: bytes, **extra: Any) -> dict[str, Any]:
    return {
        "BerichtID": bericht_id,
        "bijlagen": [(b, f"bijlage {n}") for n, b in enumerate(bijlagen, 1)],
        **extra,
    }


def new_ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


# --- unsafe attachments --------------------------------------------------------------------------

UNSAFE = {
    "javascript-openaction": (pdfs.javascript_open_action, "bevat JavaScript"),
    "javascript-name-tree": (pdfs.javascript_name_tree, "bevat JavaScript"),
    "launch": (pdfs.launch_action, "bevat een Launch-actie (starten van een programma)"),
    "embedded-file": (pdfs.embedded_file, "bevat een ingesloten bestand"),
    "xfa": (pdfs.xfa_form, "bevat een XFA-formulier"),
    "encrypted": (pdfs.encrypted, "is versleuteld"),
    "truncated": (
        pdfs.truncated,
        "is geen volledige PDF (startxref en %%EOF aan het eind ontbreken)",
    ),
}


def test_each_unsafe_attachment_refuses_only_its_own_bericht(database: Database) -> None:
    good, pdfa, *unsafe = new_ids(2 + len(UNSAFE))
    good_pdf, pdfa_pdf = minimal_pdf(10_000), pdfs.pdfa_pdf()
    letters = [bericht(good, good_pdf), bericht(pdfa, pdfa_pdf)]
    letters += [bericht(i, build()) for i, (build, _) in zip(unsafe, UNSAFE.values(), strict=True)]
    codes = run(database, batch_xml(letters))
    expected: dict[str, tuple[str, str | None]] = {
        good: ("Verwerkt", None),
        pdfa: ("Verwerkt", None),
    }
    for bericht_id, (_, problem) in zip(unsafe, UNSAFE.values(), strict=True):
        expected[bericht_id] = ("TechnischProbleem", f"persoonlijke bijlage 1 {problem}")
    assert codes == expected
    assert stored(database, good) == (1, 1) and stored(database, pdfa) == (1, 1)
    assert all(stored(database, bericht_id) == (0, 0) for bericht_id in unsafe)
    assert pdfa_of(database, pdfa_pdf) == "2A"
    assert pdfa_of(database, good_pdf) is None


def test_the_reason_names_the_volgorde_and_nothing_of_that_bericht_is_stored(
    database: Database,
) -> None:
    second, other = new_ids(2)
    payload = batch_xml(
        [bericht(second, pdfs.good_pdf(b"1"), pdfs.javascript_in_a_link()), bericht(other)]
    )
    assert run(database, payload) == {
        second: ("TechnischProbleem", "persoonlijke bijlage 2 bevat JavaScript"),
        other: ("Verwerkt", None),
    }
    assert stored(database, second) == (0, 0)


def test_an_unsafe_general_attachment_refuses_each_bericht_that_refers_to_it(
    database: Database,
) -> None:
    refers, plain = new_ids(2)
    payload = batch_xml(
        [{"BerichtID": refers, "algemene": [("folder@test", "Folder")]}, {"BerichtID": plain}]
    )
    codes = run(database, payload, general={"folder@test": pdfs.launch_action()})
    assert codes == {
        refers: (
            "TechnischProbleem",
            "algemene bijlage 1 bevat een Launch-actie (starten van een programma)",
        ),
        plain: ("Verwerkt", None),
    }


# --- require_pdfa ------------------------------------------------------------------------------


@pytest.mark.parametrize("require", [True, False], ids=["required", "not-required"])
def test_require_pdfa_refuses_only_attachments_that_declare_no_pdfa(
    database: Database, require: bool
) -> None:
    organisation = dataclasses.replace(ORGANISATION, require_pdfa=require)
    plain, declared, without = new_ids(3)
    payload = batch_xml(
        [
            bericht(plain, pdfs.good_pdf(str(require).encode())),
            bericht(declared, pdfs.pdfa_pdf(pdfs.XMP_PDFA_1B_ATTRIBUTES)),
            bericht(without),
        ]
    )
    refused = (
        "TechnischProbleem",
        "persoonlijke bijlage 1 is geen PDF/A: de XMP-metadata noemt geen pdfaid:part",
    )
    assert run(database, payload, organisation) == {
        plain: refused if require else ("Verwerkt", None),
        declared: ("Verwerkt", None),
        without: ("Verwerkt", None),
    }
    assert stored(database, plain) == ((0, 0) if require else (1, 1))
    assert pdfa_of(database, pdfs.pdfa_pdf(pdfs.XMP_PDFA_1B_ATTRIBUTES)) == "1B"


# --- cost ----------------------------------------------------------------------------------------


def test_each_distinct_content_is_checked_once_per_batch(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def counting(content: bytes) -> Any:
        calls.append(len(content))
        return check_pdf(content)

    monkeypatch.setattr(berichtverwerk, "check_pdf", counting)
    first, second, general = minimal_pdf(10_000), minimal_pdf(10_001), minimal_pdf(50_000)
    letters = [
        {**bericht(i, first, second), "algemene": [("folder@test", "Folder")]} for i in new_ids(50)
    ]
    codes = run(database, batch_xml(letters), general={"folder@test": general})
    assert set(codes.values()) == {("Verwerkt", None)}
    assert sorted(calls) == [10_000, 10_001, 50_000]


def test_letters_with_the_same_attachments_are_judged_alike_and_by_their_own_order(
    database: Database,
) -> None:
    # The judgement of a letter's attachments is reused for every letter with the same ones
    # (content, Volgorde and Omschrijving): its reason still names the Volgorde it has there.
    safe, unsafe = minimal_pdf(10_000), pdfs.javascript_open_action()
    a, b, c, d, e = new_ids(5)
    letters = [
        bericht(a, safe, unsafe),
        bericht(b, unsafe, safe),
        bericht(c, safe, safe),
        bericht(d, safe, unsafe),
        bericht(e, safe, unsafe, GebruikerID="999990019"),  # no account: refused before
    ]
    codes = run(database, batch_xml(letters))
    problem = ("TechnischProbleem", "persoonlijke bijlage 2 bevat JavaScript")
    assert codes[a] == codes[d] == problem
    assert codes[b] == ("TechnischProbleem", "persoonlijke bijlage 1 bevat JavaScript")
    assert codes[c] == ("Verwerkt", None)
    assert codes[e][0] == "NietActiefOfGeabonneerd"
    assert stored(database, a) == stored(database, d) == (0, 0)
    assert stored(database, c) == (1, 2)


# --- text read whole, and the one oversized Bericht ---------------------------------------------


def test_a_comment_inside_onderwerp_or_berichttekst_is_stored_as_the_whole_text(
    database: Database,
) -> None:
    (bericht_id,) = new_ids(1)
    payload = batch_xml(
        [{"BerichtID": bericht_id, "Onderwerp": "UwXbesluit", "BerichtTekst": "AXB"}]
    )
    payload = payload.replace(b"UwXbesluit", b"Uw<!---->besluit")
    payload = payload.replace(b">AXB<", b">A<!-- -->B<")
    assert run(database, payload) == {bericht_id: ("Verwerkt", None)}
    with database.transaction() as session:
        row = session.get(Bericht, bericht_id)
        assert row is not None
        assert (row.onderwerp, row.tekst) == ("Uwbesluit", "AB")


def test_comments_between_the_fields_leave_every_field_read_as_sent(
    database: Database,
) -> None:
    # A record holding only what its schema requires is read by position; a comment among
    # its children makes it one child longer, and its fields are then found by their tags.
    bericht_id, plain_id = new_ids(2)
    content = minimal_pdf(1_500)
    payload = batch_xml(
        [
            {"BerichtID": bericht_id, "Onderwerp": "Met opmerking", "bijlagen": [(content, "a")]},
            {"BerichtID": plain_id, "Onderwerp": "Zonder", "bijlagen": [(content, "b")]},
        ]
    )
    payload = payload.replace(
        b"<ber:Onderwerp>Met opmerking", b"<!-- x --><ber:Onderwerp>Met opmerking", 1
    )
    payload = payload.replace(b"<ber:BijlageType>", b"<!-- y --><ber:BijlageType>", 1)
    assert run(database, payload) == {bericht_id: ("Verwerkt", None), plain_id: ("Verwerkt", None)}
    digest = hashlib.sha256(content).hexdigest()
    with database.transaction() as session:
        for key, onderwerp, omschrijving in (
            (bericht_id, "Met opmerking", "a"),
            (plain_id, "Zonder", "b"),
        ):
            row = session.get(Bericht, key)
            assert row is not None
            assert (row.onderwerp, row.bsn, row.bericht_type) == (onderwerp, SUBSCRIBED, "BESLUIT")
            (link,) = session.scalars(
                select(BerichtBijlage).where(BerichtBijlage.bericht_id == key)
            )
            assert (link.volgorde, link.omschrijving, link.sha256) == (1, omschrijving, digest)


def test_an_oversized_inline_bijlage_is_its_own_berichts_problem_not_the_batches(
    database: Database,
) -> None:
    # 11 MB of PDF is about 14.7 MB of base64: past libxml2's own 10 MB text limit, still
    # within the batch's; the parser must let it through for BerichtVerwerk to judge it.
    big, good = new_ids(2)
    payload = batch_xml([bericht(big, minimal_pdf(11_000_000)), bericht(good, minimal_pdf(400))])
    assert run(database, payload) == {
        big: ("BijlageTeGroot", "persoonlijke bijlagen samen groter dan 512000 bytes"),
        good: ("Verwerkt", None),
    }
    assert stored(database, big) == (0, 0) and stored(database, good) == (1, 1)


# Inhoud texts xs:base64Binary (XSD 1.0 part 2, 3.2.16) refuses, and why; libxml2, which no
# longer checks this type, let the first three pass (characters outside the alphabet).
NOT_BASE64 = [
    ("!*$" + base64.b64encode(b"%PDF").decode(), "het teken '!' hoort niet bij base64"),
    ("JVBE\u00a0Rg==", "het teken '\\xa0' hoort niet bij base64"),
    ("JVBERg==\u2003", "het teken '\\u2003' hoort niet bij base64"),
    ("JVBERg=", "7 tekens (zonder witruimte) is geen veelvoud van 4"),
    ("JVBERh==", "het laatste teken voor de '=' (h) laat bits over die niet 0 zijn"),
    ("JVBERi1=", "het laatste teken voor de '=' (1) laat bits over die niet 0 zijn"),
    ("JVBE====", "'=' mag alleen aan het eind staan, hoogstens twee keer"),
    ("JV==BERg", "'=' mag alleen aan het eind staan, hoogstens twee keer"),
    (" \n\t ", "de Inhoud is leeg"),
]


@pytest.mark.parametrize(("inhoud", "why"), NOT_BASE64)
def test_an_inhoud_that_is_no_base64_fails_the_batch_as_the_schema_would_saying_why(
    database: Database, inhoud: str, why: str
) -> None:
    good, bad = new_ids(2)
    payload = batch_xml([bericht(good, minimal_pdf(400)), bericht(bad, minimal_pdf(400))])
    second = payload.index(b"<ber:Inhoud>", payload.index(b"<ber:Inhoud>") + 1) + 12
    payload = (
        payload[:second] + inhoud.encode() + payload[payload.index(b"</ber:Inhoud>", second) :]
    )
    assert run(database, payload) == {
        berichtverwerk.NIL_GUID: (
            "XmlValidatieTegenXsdValtNegatiefUit",
            f"een Inhoud van Bericht 2 (BerichtID {bad}) is geen xs:base64Binary: {why}",
        )
    }
    assert stored(database, bad) == (0, 0) and stored(database, good) == (0, 0)


def test_base64_in_lines_and_with_single_spaces_is_the_content_it_encodes(
    database: Database,
) -> None:
    (bericht_id,) = new_ids(1)
    pdf = minimal_pdf(400)
    payload = batch_xml([bericht(bericht_id, pdf)])
    encoded = base64.b64encode(pdf)
    lines = base64.encodebytes(pdf).replace(b"\n", b"\r\n").replace(b"A", b"A ", 3)
    payload = payload.replace(encoded, b"\n" + lines + b"  ")
    assert run(database, payload) == {bericht_id: ("Verwerkt", None)}
    with database.transaction() as session:
        (link,) = session.scalars(
            select(BerichtBijlage).where(BerichtBijlage.bericht_id == bericht_id)
        )
        assert link.sha256 == hashlib.sha256(pdf).hexdigest()


# --- what the bulk insert stores ----------------------------------------------------------------


def test_every_field_of_an_accepted_bericht_is_stored_as_sent(database: Database) -> None:
    (bericht_id,) = new_ids(1)
    batch_id = str(uuid.uuid4())
    publicatie = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    eind = publicatie + timedelta(days=30)
    letter = {
        "BerichtID": bericht_id.upper(),
        "PublicatieDatum": publicatie,
        "EindDatumHandelingsTermijn": eind,
        "Onderwerp": "Uw aanslag",
        "BerichtTekst": "Zie de bijlage.",
        "Referentie": "REF-1",
        "bijlagen": [(minimal_pdf(400), "aanslag")],
    }
    before = datetime.now(UTC)
    assert run(database, batch_xml([letter], batch_id=batch_id.upper())) == {
        bericht_id: ("Verwerkt", None)
    }
    with database.transaction() as session:
        row = session.get(Bericht, bericht_id)
        assert row is not None
        assert (row.batch_id, row.leverancier_oin, row.bsn, row.bericht_type) == (
            batch_id,
            GEMEENTE,
            SUBSCRIBED,
            "BESLUIT",
        )
        assert (row.onderwerp, row.tekst, row.referentie) == (
            "Uw aanslag",
            "Zie de bijlage.",
            "REF-1",
        )
        assert (row.visible_from, row.eind_datum_handelingstermijn) == (publicatie, eind)
        assert before <= row.received_at <= datetime.now(UTC)
        assert (row.ebms_message_id, row.folder, row.opened_at) == ("message@test", "postvak", None)
        (link,) = session.scalars(
            select(BerichtBijlage).where(BerichtBijlage.bericht_id == bericht_id)
        )
        assert (link.soort, link.volgorde, link.omschrijving) == ("persoonlijk", 1, "aanslag")
        assert link.sha256 == hashlib.sha256(minimal_pdf(400)).hexdigest()


def test_an_inhoud_with_line_breaks_is_stored_as_the_content_it_encodes(
    database: Database,
) -> None:
    # xs:base64Binary allows whitespace; MIME-style encoders break lines every 76 characters.
    (bericht_id,) = new_ids(1)
    content = minimal_pdf(2_000)
    payload = batch_xml([bericht(bericht_id, content)])
    inline = base64.b64encode(content)
    payload = payload.replace(inline, base64.encodebytes(content).replace(b"\n", b"\r\n  "))
    assert run(database, payload) == {bericht_id: ("Verwerkt", None)}
    with database.transaction() as session:
        (link,) = session.scalars(
            select(BerichtBijlage).where(BerichtBijlage.bericht_id == bericht_id)
        )
        assert link.sha256 == hashlib.sha256(content).hexdigest()
    assert database.blobs is not None and database.blobs.get(link.sha256) == content


# --- the response, written as text ---------------------------------------------------------------


def test_the_response_is_schema_valid_and_counts_every_code() -> None:
    now = datetime(2026, 12, 1, 17, 30, 0, 123000, tzinfo=UTC)
    code = berichtverwerk.VerwerkingsCode
    first, second, third, batch_id = new_ids(4)
    result = berichtverwerk.BatchResultaat(
        batch_id,
        GEMEENTE,
        now,
        now + timedelta(seconds=1),
        (
            berichtverwerk.BerichtResultaat(first, "BESLUIT", code.VERWERKT),
            berichtverwerk.BerichtResultaat(second, "BESLUIT", code.BERICHT_BESTAAT_AL),
            berichtverwerk.BerichtResultaat(third, "X", code.NIET_ACTIEF_OF_GEABONNEERD, "reden"),
        ),
    )
    root = parse_untrusted(berichtverwerk.response_xml(result))
    SCHEMAS.validate(root, "GLOBEBatchResponse.xsd")
    info = root.find("BatchInformatie")
    assert info is not None
    assert {child.tag: child.text for child in info} == {
        "BerichtLeverancierCode": GEMEENTE,
        "BatchID": batch_id,
        "TotaalAantalOntvangenBerichten": "3",
        "AantalBerichtenSuccesvolVerwerkt": "1",
        "AantalBerichtenGeenActieveBoxOfGeabonneertOpLeverancier": "1",
        "AantalBerichtenMetTechnischProbleem": "1",
        "AantalBerichtenBerichtTypeNietCorrect": "0",
        "AantalBerichtenPublicatieDatumNietCorrect": "0",
        "AantalBerichtenAanmaakDatumNietCorrect": "0",
        "DatumOntvangen": "2026-12-01T17:30:00.123Z",
        "DatumVerwerkt": "2026-12-01T17:30:01.123Z",
    }
    entries = [
        tuple(child.text for child in entry)
        for entry in root.iterfind(f"Berichten/{{{berichtverwerk.RESULT}}}Bericht")
    ]
    assert entries == [
        (first, "BESLUIT", "Verwerkt", "NA"),
        (second, "BESLUIT", "BerichtBestaatAl", "StoreMessage"),
        (third, "X", "NietActiefOfGeabonneerd", "ValidatieGebruiker"),
    ]


def test_the_response_carries_markup_characters_as_they_were_read() -> None:
    # Written as text rather than built as a tree: what a refused batch echoes (its BatchID,
    # a BerichtType) comes back as it went in, whatever markup characters it holds.
    now = datetime.now(UTC)
    result = berichtverwerk.BatchResultaat(
        "batch & <1>",
        "lev>",
        now,
        now,
        (
            berichtverwerk.BerichtResultaat(
                "a&b<c>\r", "T&", berichtverwerk.VerwerkingsCode.VERWERKT
            ),
        ),
    )
    root = parse_untrusted(berichtverwerk.response_xml(result))
    assert root.findtext("BatchInformatie/BatchID") == "batch & <1>"
    assert root.findtext("BatchInformatie/BerichtLeverancierCode") == "lev>"
    (entry,) = root.iterfind(f"Berichten/{{{berichtverwerk.RESULT}}}Bericht")
    assert (entry.findtext("BerichtID"), entry.findtext("BerichtType")) == ("a&b<c>\r", "T&")

"""AbonnementAanvraag's handler without a server: reading the request as a stream, the
elfproef, the subscription history, and the gzipped answer (on SQLite and PostgreSQL)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import delete, select
from stdnum.nl import bsn as stdnum_bsn

from adapter.berichtenbox import abonnement_aanvraag as aa
from adapter.ebms.service import EbmsAction, StreamedPayload
from adapter.errors import ForbiddenMarkup, MalformedXml, SchemaViolation
from adapter.store import citizen as citizen_store
from adapter.store.accounts import AccountRow
from adapter.store.db import Database
from adapter.store.models import Account, Subscription, SubscriptionChange
from tests.abonnement_samples import aanvraag_xml, invalid_bsn, read_antwoord, valid_bsns
from tests.helpers import migrated_database

XSD = Path(__file__).resolve().parents[2] / "xsd"
GEMEENTE = "00000099000000002000"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def streamed(data: bytes) -> StreamedPayload:
    schema = etree.XMLSchema(etree.parse(str(XSD / aa.REQUEST_SCHEMA)))
    return StreamedPayload(data, schema)


def read(data: bytes) -> aa.Aanvraag:
    return aa.read_aanvraag(streamed(data))


# --- the elfproef ------------------------------------------------------------------------------


def test_the_fast_elfproef_judges_as_stdnum_does() -> None:
    rng = random.Random(11)
    numbers = [f"{rng.randrange(10**9):09d}" for _ in range(20_000)]
    numbers += [*valid_bsns(500), "000000000", "999993653", "12345678", "1234567890"]
    numbers += ["99999365\u0663", "9999 9365", "abcdefghi"]
    for number in numbers:
        expected = stdnum_bsn.is_valid(number) and len(number) == 9 and number.isdigit()
        assert aa.is_bsn(number) is expected, number


# --- reading the request ---------------------------------------------------------------------


def test_a_bsn_list_is_read_in_request_order() -> None:
    bsns = [*valid_bsns(3), invalid_bsn("999993653"), "999993653"]
    aanvraag = read(aanvraag_xml(GEMEENTE, "v-1", bsns=bsns))
    assert (aanvraag.leverancier_oin, aanvraag.verzoek_id) == (GEMEENTE, "v-1")
    assert aanvraag.variant is aa.Variant.BSN_LIJST and aanvraag.mutatie_datum is None
    assert [f"{n:09d}" for n in aanvraag.bsns] == bsns
    assert aanvraag.bsns.itemsize >= 4  # 32-bit numbers, not a list of strings


def test_a_mutatie_request_reads_its_moment_and_one_without_offset_is_utc() -> None:
    aanvraag = read(aanvraag_xml(GEMEENTE, mutatie="2016-02-02T12:23:16.326Z"))
    assert aanvraag.variant is aa.Variant.MUTATIE
    assert aanvraag.mutatie_datum == datetime(2016, 2, 2, 12, 23, 16, 326000, tzinfo=UTC)
    naive = read(aanvraag_xml(GEMEENTE, mutatie="2016-02-02T12:23:16"))
    assert naive.mutatie_datum == datetime(2016, 2, 2, 12, 23, 16, tzinfo=UTC)


def test_a_request_without_list_or_moment_asks_for_the_full_set() -> None:
    aanvraag = read(aanvraag_xml(GEMEENTE))
    assert aanvraag.variant is aa.Variant.VOLLEDIG and len(aanvraag.bsns) == 0


def test_whitespace_and_comments_around_values_are_read_as_the_schema_reads_them() -> None:
    data = aanvraag_xml(GEMEENTE, bsns=["999993653"]).replace(
        b"<BSN>999993653</BSN>", b"<BSN> 9999<!-- x -->93653\n</BSN>"
    )
    assert [f"{n:09d}" for n in read(data).bsns] == ["999993653"]


def test_a_list_longer_than_the_maximum_is_refused_saying_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(aa, "MAX_BSNS", 3)
    read(aanvraag_xml(GEMEENTE, bsns=list(valid_bsns(3))))
    with pytest.raises(SchemaViolation, match="meer dan 3 BSN's"):
        read(aanvraag_xml(GEMEENTE, bsns=list(valid_bsns(4))))


@pytest.mark.parametrize(
    ("data", "error", "says"),
    [
        (aanvraag_xml(GEMEENTE, bsns=["12345678"]), SchemaViolation, "BSN"),
        (
            aanvraag_xml(GEMEENTE, bsns=["\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19"]),
            SchemaViolation,
            "BSN",
        ),
        (aanvraag_xml(GEMEENTE, bsns=[]), SchemaViolation, "BSNLijst"),
        (aanvraag_xml("123", bsns=["999993653"]), SchemaViolation, "OIN"),
        (aanvraag_xml(GEMEENTE, mutatie="morgen"), SchemaViolation, "MutatieDatum"),
        (
            aanvraag_xml(GEMEENTE)
            .replace(b"<VerzoekId>", b"<ns0:VerzoekId>")
            .replace(b"</VerzoekId>", b"</ns0:VerzoekId>"),
            SchemaViolation,
            "VerzoekId",
        ),
        (aanvraag_xml(GEMEENTE).replace(b"</ns0:AbonnementAanvraag>", b""), MalformedXml, ""),
        (
            b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY b "c">]>'
            + aanvraag_xml(GEMEENTE).split(b"?>", 1)[1],
            ForbiddenMarkup,
            "DTD",
        ),
        (
            aanvraag_xml(GEMEENTE).replace(b"<VerzoekId>", b"<?pi x?><VerzoekId>"),
            ForbiddenMarkup,
            "processing",
        ),
    ],
    ids=[
        "8-digits",
        "fullwidth-digits",
        "empty-list",
        "bad-oin",
        "bad-moment",
        "qualified-child",
        "not-well-formed",
        "dtd",
        "processing-instruction",
    ],
)
def test_an_invalid_request_is_refused_with_what_to_fix(
    data: bytes, error: type[Exception], says: str
) -> None:
    with pytest.raises(error) as raised:
        read(data)
    assert says in str(raised.value)


def test_the_verzoek_id_of_an_invalid_request_is_still_answered() -> None:
    assert aa._verzoek_id(aanvraag_xml(GEMEENTE, "terug", bsns=["1"])) == "terug"
    assert aa._verzoek_id(b"<geen xml") == ""


def test_an_action_names_exactly_one_kind_of_handler() -> None:
    with pytest.raises(ValueError, match="either handler or stream_handler"):
        EbmsAction("A", "B", "x.xsd")
    with pytest.raises(ValueError, match="either handler or stream_handler"):
        EbmsAction(
            "A",
            "B",
            "x.xsd",
            handler=lambda _r, _s: None,  # type: ignore[arg-type,return-value]
            stream_handler=lambda _r: None,  # type: ignore[arg-type,return-value]
        )


# --- the history and the answer, on a database ----------------------------------------------


@pytest.fixture(scope="module")
def database(database_url: str) -> Iterator[Database]:
    with migrated_database(database_url) as database:
        yield database


@pytest.fixture
def empty(database: Database) -> Database:
    with database.transaction() as session:
        for table in (SubscriptionChange, Subscription, Account):
            session.execute(delete(table))
    return database


def row(bsn: str, active: bool, *oins: str) -> AccountRow:
    return AccountRow(bsn=bsn, active=active, email=None, subscriptions=frozenset(oins))


def history(database: Database) -> list[tuple[str, str | None, bool, str]]:
    with database.transaction() as session:
        return [
            (c.bsn, c.oin, c.subscribed, c.source)
            for c in session.scalars(select(SubscriptionChange).order_by(SubscriptionChange.id))
        ]


def test_an_import_records_every_change_of_who_may_receive_and_nothing_else(
    empty: Database,
) -> None:
    one, two = valid_bsns(2)
    with empty.repositories() as repositories:
        repositories.accounts.upsert([row(one, False, GEMEENTE), row(two, True)], NOW)
    with empty.repositories() as repositories:  # the same file again: nothing changed
        repositories.accounts.upsert([row(one, False, GEMEENTE), row(two, True)], NOW)
    with empty.repositories() as repositories:
        repositories.accounts.upsert([row(one, True), row(two, True, GEMEENTE)], NOW)
    assert history(empty) == [
        (one, None, False, "import"),
        (two, None, True, "import"),
        (one, GEMEENTE, True, "import"),
        (one, None, True, "import"),
        (one, GEMEENTE, False, "import"),
        (two, GEMEENTE, True, "import"),
    ]


def test_a_first_login_records_the_activation_once(empty: Database) -> None:
    (one,) = valid_bsns(1)
    with empty.repositories() as repositories:
        repositories.accounts.upsert([row(one, False, GEMEENTE)], NOW)
    for _ in range(2):
        with empty.transaction() as session:
            assert citizen_store.activate(session, one, NOW + timedelta(hours=1))
    assert history(empty)[-1] == (one, None, True, "activatie")
    assert [h[3] for h in history(empty)].count("activatie") == 1


def answer(
    database: Database, aanvraag: aa.Aanvraag, by_law: bool = False
) -> tuple[list[tuple[str, bool, str | None]], str | None]:
    with database.repositories() as repositories:
        data, _ = aa.answer_aanvraag(aanvraag, by_law, repositories, NOW)
    antwoord = read_antwoord(data)
    return [(e.bsn, e.sturen, e.fout) for e in antwoord.entries], antwoord.text("Soort")


def test_a_bsn_list_is_answered_across_lookup_pages_in_request_order(
    empty: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aa, "LOOKUP_BSNS", 2)
    yes, no, other = valid_bsns(3)
    with empty.repositories() as repositories:
        repositories.accounts.upsert([row(yes, True, GEMEENTE), row(no, True)], NOW)
    bsns = [no, invalid_bsn(yes), yes, other, yes]
    aanvraag = read(aanvraag_xml(GEMEENTE, bsns=bsns))
    entries, soort = answer(empty, aanvraag)
    assert soort == "BSNLijst"
    assert entries == [
        (no, False, None),
        (invalid_bsn(yes), False, aa.ELFPROEF_FOUT),
        (yes, True, None),
        (other, False, None),
        (yes, True, None),
    ]
    by_law, _ = answer(empty, aanvraag, by_law=True)
    assert [e[1] for e in by_law] == [True, False, True, False, True]


def test_the_full_set_pages_through_every_subscriber(
    empty: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("adapter.store.accounts.PAGE_ROWS", 2)
    bsns = sorted(valid_bsns(5))
    with empty.repositories() as repositories:
        repositories.accounts.upsert(
            [row(b, i != 2, GEMEENTE) for i, b in enumerate(bsns)] + [row("999993653", True)], NOW
        )
    entries, soort = answer(empty, read(aanvraag_xml(GEMEENTE)))
    assert soort == "Volledig"
    assert entries == [(b, True, None) for i, b in enumerate(bsns) if i != 2]
    everyone, _ = answer(empty, read(aanvraag_xml(GEMEENTE)), by_law=True)
    assert [e[0] for e in everyone] == sorted([*bsns, "999993653"])


def test_mutatie_compares_the_state_at_the_moment_with_the_state_now(
    empty: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("adapter.store.accounts.PAGE_ROWS", 2)
    stays, joins, leaves, flips_back, appears, activated = sorted(valid_bsns(6))
    moment = NOW - timedelta(hours=2)
    with empty.repositories() as repositories:
        repositories.accounts.upsert(
            [
                row(stays, True, GEMEENTE),
                row(joins, True),
                row(leaves, True, GEMEENTE),
                row(flips_back, True, GEMEENTE),
                row(activated, False, GEMEENTE),
            ],
            moment - timedelta(hours=1),
        )
    later = moment + timedelta(hours=1)
    with empty.repositories() as repositories:
        repositories.accounts.upsert(
            [
                row(joins, True, GEMEENTE),
                row(leaves, True),
                row(flips_back, True),
                row(appears, False),
                row(stays, True, GEMEENTE),
            ],
            later,
        )
        repositories.accounts.upsert([row(flips_back, True, GEMEENTE)], later)
    with empty.transaction() as session:
        citizen_store.activate(session, activated, later)
    entries, soort = answer(empty, read(aanvraag_xml(GEMEENTE, mutatie=moment)))
    assert soort == "Mutatie"
    assert entries == [(joins, True, None), (leaves, False, None), (activated, True, None)]
    by_law, _ = answer(empty, read(aanvraag_xml(GEMEENTE, mutatie=moment)), by_law=True)
    assert by_law == [(appears, True, None)]
    # Changes in the minute before the moment are listed too (SETTLE): never lost.
    close, _ = answer(empty, read(aanvraag_xml(GEMEENTE, mutatie=later + timedelta(seconds=30))))
    assert (joins, True, None) in close


def test_a_refusal_is_a_valid_answer_without_entries() -> None:
    refused = aa.refusal(GEMEENTE, "v", aa.Weigering.OIN, "reden <met> & tekens", NOW)
    assert isinstance(refused.payload, aa.EncodedPayload)
    assert refused.payload.content_type == "application/gzip"
    antwoord = read_antwoord(refused.payload.data)
    assert antwoord.text("Weigering/Code") == "OinInCPAKomtNietOvereenMetOinInBericht"
    assert antwoord.text("Weigering/Reden") == "reden <met> & tekens"
    assert not refused.outcome.accepted and refused.outcome.code == aa.Weigering.OIN

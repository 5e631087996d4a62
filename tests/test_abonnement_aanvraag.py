"""AbonnementAanvraag over ebMS 2.0 end to end: real mTLS, a real peer for the gzipped answer.

Gemeente Voorbeeldstad's CPA has syncReplyMode mshSignalsOnly (the Acknowledgment comes back
in the HTTP answer); the Belastingdienst's has none (it comes as its own message). The
answer, `AbonnementAntwoord` gzipped, always comes as a GLOBE-R-A-Result message of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import requests
from lxml import etree

from adapter.ebms.message import EB, error_of
from adapter.kit.receiver import ReceivedMessage
from adapter.receipts import verify
from adapter.store import citizen as citizen_store
from adapter.store.accounts import AccountRow
from adapter.store.db import Database
from tests.abonnement_samples import (
    Antwoord,
    aanvraag_message,
    aanvraag_xml,
    invalid_bsn,
    post_aanvraag,
    read_antwoord,
    valid_bsns,
)
from tests.conftest import BELASTINGDIENST, GEMEENTE, STRIKT, Pki, Server
from tests.ebms_helpers import BUSINESS_TABLES, Peer
from tests.soap_helpers import verify_with_libxmlsec

RESULT = "GLOBE-R-A-Result"
# accounts.example.csv: active and opted in for the Gemeente; active, not opted in; not
# activated but opted in; active and opted in.
SUBSCRIBED, NOT_SUBSCRIBED, INACTIVE, ALSO_SUBSCRIBED = (
    "999993653",
    "999990019",
    "999990020",
    "111222333",
)
UNKNOWN = next(valid_bsns(1, start=30_000_000))  # valid, but nobody has that account
# What an AbonnementAanvraag may write: duplicate elimination, the outbox and receipts only.
UNTOUCHED = (*BUSINESS_TABLES, "accounts", "subscriptions", "subscription_changes")


@pytest.fixture(scope="module")
def peer(server: Server, pki: Pki) -> Iterator[Peer]:
    peer = Peer(server, pki)
    with peer.receiver:
        yield peer


@dataclass
class Asked:
    message_id: str
    response: requests.Response
    document: etree._Element | None


def ask(server: Server, pki: Pki, payload: bytes, oin: str = GEMEENTE) -> Asked:
    message = aanvraag_message(oin, datetime.now(UTC))
    response = post_aanvraag(
        f"{server.url}/berichtenbox/ebms", pki.clients[oin].pair, pki.root, payload, message
    )
    document = etree.fromstring(response.content) if response.content.strip() else None
    return Asked(message[0], response, document)


def answer_of(peer: Peer, asked: Asked) -> tuple[ReceivedMessage, Antwoord]:
    result = peer.wait_for(RESULT, asked.message_id)
    part = result.package.attachment(result.header.manifest[0])
    assert part.content_type == "application/gzip"
    return result, read_antwoord(part.body)


def acknowledged(asked: Asked, pki: Pki) -> None:
    """The HTTP answer is the Acknowledgment (mshSignalsOnly), with a verified receipt."""
    assert asked.response.status_code == 200
    assert asked.document is not None and error_of(asked.document) is None
    ref = asked.document.find(f".//{{{EB}}}Acknowledgment/{{{EB}}}RefToMessageId")
    assert ref is not None and ref.text == asked.message_id


# --- the three variants ----------------------------------------------------------------------


def test_a_bsn_list_is_answered_per_bsn_in_request_order_as_gzip(
    server: Server, pki: Pki, peer: Peer
) -> None:
    bad = invalid_bsn(SUBSCRIBED)
    bsns = [NOT_SUBSCRIBED, SUBSCRIBED, bad, INACTIVE, UNKNOWN, ALSO_SUBSCRIBED, SUBSCRIBED]
    before = server.counts(*UNTOUCHED)
    asked = ask(server, pki, aanvraag_xml(GEMEENTE, "lijst-1", bsns=bsns))
    acknowledged(asked, pki)
    receipt = verify(asked.document, pki.root).receipt  # type: ignore[arg-type]
    assert receipt.outcome.accepted and receipt.operation == "GLOBE-R-A-Request"
    assert receipt.service == "BerichtVerwerk" and receipt.sender_oin == GEMEENTE

    result, antwoord = answer_of(peer, asked)
    assert result.header.action == RESULT and result.header.to_party.value == GEMEENTE
    assert result.header.service == "urn:osb:services:MIJNOVERHEID.ebMS.BB.2.0"
    verify_with_libxmlsec(result.envelope, pki.root)  # the receipt rides along, signed
    assert antwoord.text("VerzoekId") == "lijst-1"
    assert antwoord.text("BerichtLeverancier/OIN") == GEMEENTE
    assert antwoord.text("Soort") == "BSNLijst"
    tijdstip = datetime.fromisoformat(antwoord.text("Tijdstip") or "")
    assert abs(tijdstip - receipt.received_at) < timedelta(milliseconds=1)
    assert [(e.bsn, e.sturen, e.fout) for e in antwoord.entries] == [
        (NOT_SUBSCRIBED, False, None),
        (SUBSCRIBED, True, None),
        (bad, False, "BSNVoldoetNietAanElfproef"),  # answered, not refused
        (INACTIVE, False, None),
        (UNKNOWN, False, None),
        (ALSO_SUBSCRIBED, True, None),
        (SUBSCRIBED, True, None),  # asked twice, answered twice
    ]
    assert server.counts(*UNTOUCHED) == before


def test_a_list_of_only_bsns_failing_the_elfproef_is_answered_not_refused(
    server: Server, pki: Pki, peer: Peer
) -> None:
    bad = [invalid_bsn(b) for b in valid_bsns(3, start=31_000_000)] + ["000000000"]
    asked = ask(server, pki, aanvraag_xml(GEMEENTE, "alle-fout", bsns=bad))
    acknowledged(asked, pki)
    _, antwoord = answer_of(peer, asked)
    assert [(e.bsn, e.sturen, e.fout) for e in antwoord.entries] == [
        (b, False, "BSNVoldoetNietAanElfproef") for b in bad
    ]


def test_a_by_law_organisation_reaches_every_existing_account(
    server: Server, pki: Pki, peer: Peer
) -> None:
    bsns = [NOT_SUBSCRIBED, INACTIVE, UNKNOWN, SUBSCRIBED]
    asked = ask(server, pki, aanvraag_xml(BELASTINGDIENST, "wet", bsns=bsns), BELASTINGDIENST)
    # The Belastingdienst's CPA has syncReplyMode none: the Acknowledgment is its own message.
    assert asked.response.status_code == 200 and asked.document is None
    ack = peer.wait_for("Acknowledgment", asked.message_id)
    assert verify(ack.envelope, pki.root).receipt.outcome.accepted
    _, antwoord = answer_of(peer, asked)
    assert [(e.bsn, e.sturen) for e in antwoord.entries] == [
        (NOT_SUBSCRIBED, True),
        (INACTIVE, True),
        (UNKNOWN, False),
        (SUBSCRIBED, True),
    ]


def test_the_full_set_lists_every_subscriber_of_the_organisation_in_bsn_order(
    server: Server, pki: Pki, peer: Peer
) -> None:
    asked = ask(server, pki, aanvraag_xml(STRIKT, "alles"), STRIKT)
    assert asked.response.status_code == 200
    _, antwoord = answer_of(peer, asked)
    assert antwoord.text("Soort") == "Volledig"
    # accounts.example.csv: 999993653 and 123456782 opted in for Gemeente Strikt, both active.
    assert [(e.bsn, e.sturen) for e in antwoord.entries] == [
        ("123456782", True),
        ("999993653", True),
    ]


def test_the_full_set_of_a_by_law_organisation_is_every_account(
    server: Server, pki: Pki, peer: Peer
) -> None:
    asked = ask(server, pki, aanvraag_xml(BELASTINGDIENST, "alles"), BELASTINGDIENST)
    _, antwoord = answer_of(peer, asked)
    bsns = [e.bsn for e in antwoord.entries]
    assert bsns == sorted(bsns) and all(e.sturen for e in antwoord.entries)
    assert bsns == sorted(stored_bsns(server))


def stored_bsns(server: Server) -> list[str]:
    with server.engine.connect() as conn:
        return [row[0] for row in conn.exec_driver_sql("SELECT bsn FROM accounts")]


def row(bsn: str, active: bool, *oins: str) -> AccountRow:
    return AccountRow(bsn=bsn, active=active, email=None, subscriptions=frozenset(oins))


def test_mutatie_lists_exactly_the_bsns_whose_answer_changed_since_the_moment(
    server: Server, pki: Pki, peer: Peer
) -> None:
    """History recorded by account imports and a first login, at chosen moments."""
    kept, opts_in, opts_out, activates, new, new_inactive, undone = valid_bsns(7, 32_000_000)
    now = datetime.now(UTC)
    before, moment, after = (
        now - timedelta(hours=3),
        now - timedelta(hours=2),
        now - timedelta(hours=1),
    )
    database = Database(server.database_url)
    try:
        with database.repositories() as repositories:
            repositories.accounts.upsert(
                [
                    row(kept, True, GEMEENTE),
                    row(opts_in, True),
                    row(opts_out, True, GEMEENTE),
                    row(activates, False, GEMEENTE),
                    row(undone, True),
                ],
                now=before,
            )
        with database.repositories() as repositories:
            repositories.accounts.upsert(
                [
                    row(opts_in, True, GEMEENTE),
                    row(opts_out, True),
                    row(new, True, GEMEENTE),
                    row(new_inactive, False, GEMEENTE),
                    row(undone, True, GEMEENTE),
                ],
                now=after,
            )
        with database.repositories() as repositories:
            repositories.accounts.upsert([row(undone, True)], now=after + timedelta(minutes=5))
        with database.transaction() as session:  # the citizen's first login
            assert citizen_store.activate(session, activates, after)
    finally:
        database.dispose()

    asked = ask(server, pki, aanvraag_xml(GEMEENTE, "sinds", mutatie=moment))
    acknowledged(asked, pki)
    _, antwoord = answer_of(peer, asked)
    assert antwoord.text("Soort") == "Mutatie"
    assert datetime.fromisoformat(antwoord.text("MutatieDatum") or "") == moment.replace(
        microsecond=moment.microsecond // 1000 * 1000
    )
    ours = {e.bsn: e.sturen for e in antwoord.entries if e.bsn.startswith("32")}
    # kept did not change; new_inactive cannot receive, as before; undone changed back.
    assert ours == {opts_in: True, opts_out: False, activates: True, new: True}
    # The example accounts were imported when the server started, after the moment.
    others = {e.bsn: e.sturen for e in antwoord.entries if not e.bsn.startswith("32")}
    assert others == {SUBSCRIBED: True, ALSO_SUBSCRIBED: True}
    assert [e.bsn for e in antwoord.entries] == sorted(e.bsn for e in antwoord.entries)

    # By law, only an account coming into existence changes the answer.
    asked = ask(
        server, pki, aanvraag_xml(BELASTINGDIENST, "sinds", mutatie=moment), BELASTINGDIENST
    )
    _, antwoord = answer_of(peer, asked)
    ours = {e.bsn: e.sturen for e in antwoord.entries if e.bsn.startswith("32")}
    assert ours == {new: True, new_inactive: True}

    # Nothing changed after the latest of these moments, apart from what this test did not do.
    later = after + timedelta(minutes=10)
    asked = ask(server, pki, aanvraag_xml(GEMEENTE, "later", mutatie=later))
    _, antwoord = answer_of(peer, asked)
    assert not [e for e in antwoord.entries if e.bsn.startswith("32")]


# --- refusals ----------------------------------------------------------------------------------


def refused(peer: Peer, asked: Asked, pki: Pki) -> tuple[str, str]:
    """Acknowledged, answered with a Weigering and no entries; its code and reason."""
    acknowledged(asked, pki)
    receipt = verify(asked.document, pki.root).receipt  # type: ignore[arg-type]
    _, antwoord = answer_of(peer, asked)
    assert antwoord.entries == [] and antwoord.root.find("Abonnementen") is None
    code, reason = antwoord.text("Weigering/Code") or "", antwoord.text("Weigering/Reden") or ""
    assert not receipt.outcome.accepted and receipt.outcome.code == code
    return code, reason


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (aanvraag_xml(GEMEENTE, bsns=["12345"]), "BSN"),
        (aanvraag_xml(GEMEENTE, bsns=[]), "BSNLijst"),
        (aanvraag_xml(GEMEENTE, mutatie="gisteren"), "MutatieDatum"),
        (aanvraag_xml(GEMEENTE).replace(b"<VerzoekId>verzoek-1</VerzoekId>", b""), "VerzoekId"),
        (aanvraag_xml(GEMEENTE).replace(b"</ns0:AbonnementAanvraag>", b""), "well-formed"),
        (
            b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]>'
            + aanvraag_xml(GEMEENTE).split(b"?>", 1)[1],
            "DTD",
        ),
    ],
    ids=["bsn-not-9-digits", "empty-list", "bad-date", "no-verzoek-id", "not-xml", "dtd"],
)
def test_an_invalid_request_is_refused_whole_and_nothing_is_looked_up_or_stored(
    server: Server, pki: Pki, peer: Peer, payload: bytes, reason: str
) -> None:
    before = server.counts(*UNTOUCHED)
    code, why = refused(peer, ask(server, pki, payload), pki)
    assert code == "XmlValidatieTegenXsdValtNegatiefUit"
    assert reason in why, why
    assert server.counts(*UNTOUCHED) == before


def test_a_leverancier_that_is_not_the_sender_is_refused(
    server: Server, pki: Pki, peer: Peer
) -> None:
    asked = ask(server, pki, aanvraag_xml(BELASTINGDIENST, "ander", bsns=[SUBSCRIBED]))
    code, reason = refused(peer, asked, pki)
    assert code == "OinInCPAKomtNietOvereenMetOinInBericht"
    assert BELASTINGDIENST in reason and GEMEENTE in reason


def test_a_replayed_request_gets_the_stored_answer_and_no_second_result(
    server: Server, pki: Pki, peer: Peer
) -> None:
    payload = aanvraag_xml(GEMEENTE, "dubbel", bsns=[SUBSCRIBED])
    message = aanvraag_message(GEMEENTE, datetime.now(UTC))
    url = f"{server.url}/berichtenbox/ebms"
    first = post_aanvraag(url, pki.clients[GEMEENTE].pair, pki.root, payload, message)
    outbox = server.count("outbox")
    again = post_aanvraag(url, pki.clients[GEMEENTE].pair, pki.root, payload, message)
    assert again.content == first.content
    assert server.count("outbox") == outbox
    assert server.count("outbox", f"ref_to_message_id = '{message[0]}'") == 1


def test_a_large_list_is_answered_entirely(server: Server, pki: Pki, peer: Peer) -> None:
    bsns = list(valid_bsns(20_000, start=33_000_000))  # several lookup pages and gzip writes
    asked = ask(server, pki, aanvraag_xml(GEMEENTE, "groot", bsns=[*bsns, SUBSCRIBED]))
    acknowledged(asked, pki)
    _, antwoord = answer_of(peer, asked)
    assert [e.bsn for e in antwoord.entries] == [*bsns, SUBSCRIBED]
    assert [e.sturen for e in antwoord.entries] == [False] * len(bsns) + [True]

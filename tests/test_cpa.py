"""CPAs: the example agreements read as stated, and every broken variant is named precisely."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from adapter.config import load_organisations
from adapter.ebms.cpa import (
    NSMAP,
    TP,
    Cpa,
    CpaError,
    CpaStore,
    check_cpa,
    load_cpa,
    parse_duration,
)
from tests.conftest import CONF

CPA_DIR = CONF / "cpa"
MIJNOVERHEID = "00000004003214345001"
SERVICE = "urn:osb:services:MIJNOVERHEID.ebMS.BB.2.0"
REQUEST, RESULT = "GLOBE-R-BV-Request", "GLOBE-R-BV-Result"
ORGANISATIONS = ("00000099000000001000", "00000099000000002000", "00000099000000003000")
ROOT = "/CollaborationProtocolAgreement"
SR = f"{ROOT}/PartyInfo[1]"  # the organisation's side in the examples
SP = f"{ROOT}/PartyInfo[2]"  # MijnOverheid's side


def cpa_id(oin: str) -> str:
    return f"MIJNOVERHEID-EBMS-BB-2-0_{oin}_{MIJNOVERHEID}_1"


def example(oin: str = "00000099000000002000") -> Path:
    return CPA_DIR / f"{cpa_id(oin)}.xml"


Edit = Callable[[etree._ElementTree], None]


def variant(tmp_path: Path, edit: Edit, source: Path | None = None) -> Path:
    """A copy of an example CPA with one change, written to a temporary file."""
    tree = etree.parse(str(source or example()))
    edit(tree)
    path = tmp_path / "variant.xml"
    tree.write(str(path), xml_declaration=True, encoding="UTF-8")
    return path


def first(tree: etree._ElementTree, xpath: str) -> etree._Element:
    found = tree.xpath(xpath, namespaces=NSMAP)
    assert isinstance(found, list) and found, xpath
    element = found[0]
    assert isinstance(element, etree._Element)
    return element


def set_attr(xpath: str, name: str, value: str) -> Edit:
    return lambda tree: first(tree, xpath).set(f"{{{TP}}}{name}", value)


def set_text(xpath: str, value: str) -> Edit:
    def edit(tree: etree._ElementTree) -> None:
        first(tree, xpath).text = value

    return edit


def remove(*xpaths: str) -> Edit:
    def edit(tree: etree._ElementTree) -> None:
        for xpath in xpaths:
            element = first(tree, xpath)
            parent = element.getparent()
            assert parent is not None
            parent.remove(element)

    return edit


def remove_attr(xpath: str, name: str) -> Edit:
    return lambda tree: first(tree, xpath).attrib.pop(f"{{{TP}}}{name}")


def unqualify(xpath: str, name: str) -> Edit:
    def edit(tree: etree._ElementTree) -> None:
        element = first(tree, xpath)
        element.set(name, element.attrib.pop(f"{{{TP}}}{name}"))

    return edit


def add_third_party(tree: etree._ElementTree) -> None:
    second = first(tree, "/tp:CollaborationProtocolAgreement/tp:PartyInfo[2]")
    second.addnext(etree.fromstring(etree.tostring(second)))


# --- the examples ------------------------------------------------------------------------------


@pytest.mark.parametrize("oin", ORGANISATIONS)
def test_each_example_cpa_reads_as_the_organisation_and_mijnoverheid_agreed(oin: str) -> None:
    cpa = load_cpa(example(oin))
    assert cpa.cpa_id == cpa_id(oin)
    assert cpa.source == example(oin)
    assert cpa.start == datetime(2026, 11, 1, tzinfo=UTC)
    assert cpa.end == datetime(2029, 11, 1, tzinfo=UTC)
    organisation, mijnoverheid = cpa.parties
    sync = "mshSignalsOnly" if oin == "00000099000000002000" else "none"
    for party, party_oin, role, sends, receives, endpoint in (
        (organisation, oin, "SR", REQUEST, RESULT, "https://127.0.0.1:8444/ebms"),
        (
            mijnoverheid,
            MIJNOVERHEID,
            "SP",
            RESULT,
            REQUEST,
            "https://127.0.0.1:8443/berichtenbox/ebms",
        ),
    ):
        assert party.oin == party_oin
        assert party.party_id_type == "urn:osb:oin"
        assert party.role == role
        assert party.can_send == frozenset({sends})
        assert party.can_receive == frozenset({receives})
        assert party.service == SERVICE
        assert party.service_type == "urn:osb:services"
        assert party.endpoint == endpoint
        assert party.sync_reply_mode == sync
        assert party.ack_requested == "always"
        assert party.duplicate_elimination == "always"
        assert party.retries == 8
        assert party.retry_interval == timedelta(hours=3)
        assert party.persist_duration == timedelta(days=1)


@pytest.mark.parametrize("oin", ORGANISATIONS)
def test_each_example_cpa_passes_the_check(oin: str) -> None:
    assert check_cpa(example(oin)) == []


def test_there_is_one_example_cpa_per_organisation_with_berichtverwerk() -> None:
    organisations = load_organisations(CONF / "organisations.toml")
    with_service = {
        org.oin for org in organisations.by_oin.values() if "BerichtVerwerk" in org.services
    }
    store = CpaStore.load(CPA_DIR)
    assert {cpa.other(MIJNOVERHEID).oin for cpa in store} == with_service
    assert len(store) == len(with_service)


def test_a_cpa_is_active_from_its_start_until_just_before_its_end() -> None:
    cpa = load_cpa(example())
    assert cpa.is_active(cpa.start)
    assert cpa.is_active(cpa.end - timedelta(microseconds=1))
    assert not cpa.is_active(cpa.end)
    assert not cpa.is_active(cpa.start - timedelta(seconds=1))


def test_a_moment_without_offset_is_read_as_utc() -> None:
    cpa = load_cpa(example())
    assert cpa.is_active(datetime(2026, 11, 1, 0, 0, 0))
    assert not cpa.is_active(datetime(2026, 10, 31, 23, 59, 59))


def test_party_finds_a_side_by_oin_and_other_gives_the_opposite_side() -> None:
    cpa = load_cpa(example())
    organisation = cpa.party("00000099000000002000")
    assert organisation is not None and organisation.role == "SR"
    assert cpa.other("00000099000000002000").oin == MIJNOVERHEID
    assert cpa.other(MIJNOVERHEID) is organisation
    assert cpa.party("00000099000000001000") is None


def test_other_refuses_an_oin_that_is_not_a_party() -> None:
    with pytest.raises(KeyError, match="00000099000000001000 is not a party"):
        load_cpa(example()).other("00000099000000001000")


# --- broken variants ---------------------------------------------------------------------------

SR_XP = "/tp:CollaborationProtocolAgreement/tp:PartyInfo[1]"
SP_XP = "/tp:CollaborationProtocolAgreement/tp:PartyInfo[2]"
SR_BINDING = f"{SR}/CollaborationRole/ServiceBinding"
SR_CHANNEL = f"{SR}/DeliveryChannel[@channelId='SR_RM_Channel']/MessagingCharacteristics"
SR_RECEIVER = f"{SR}/DocExchange[@docExchangeId='SR_RM']/ebXMLReceiverBinding"


@pytest.mark.parametrize(
    ("edit", "where", "reason"),
    [
        pytest.param(
            set_attr(f"{SR_XP}/tp:PartyId", "type", "urn:osb:kvk"),
            f"{SR}/PartyId/@type",
            "must be urn:osb:oin but is 'urn:osb:kvk'",
            id="wrong PartyId type",
        ),
        pytest.param(
            remove_attr(f"{SR_XP}/tp:PartyId", "type"),
            f"{SR}/PartyId/@type",
            "must be urn:osb:oin but is missing",
            id="PartyId without type",
        ),
        pytest.param(
            set_text(f"{SR_XP}/tp:PartyId", "0000009900000000200"),
            f"{SR}/PartyId",
            "'0000009900000000200' is not a 20-digit OIN",
            id="bad OIN",
        ),
        pytest.param(
            set_text(f"{SR_XP}/tp:PartyId", "00000099000000002000_OTA"),
            f"{SR}/PartyId",
            "carries the environment suffix '_OTA' (BPEB EB004)",
            id="OIN with an environment suffix",
        ),
        pytest.param(
            remove_attr("/tp:CollaborationProtocolAgreement", "cpaid"),
            f"{ROOT}/@cpaid",
            "is required",
            id="missing CPAId",
        ),
        pytest.param(
            remove("/tp:CollaborationProtocolAgreement/tp:Start"),
            f"{ROOT}/Start",
            "is required",
            id="missing Start",
        ),
        pytest.param(
            set_text("/tp:CollaborationProtocolAgreement/tp:End", "2026-10-01T00:00:00Z"),
            f"{ROOT}/End",
            "2026-10-01T00:00:00+00:00 is not after Start 2026-11-01T00:00:00+00:00",
            id="End before Start",
        ),
        pytest.param(
            set_text("/tp:CollaborationProtocolAgreement/tp:End", "2029-11-01"),
            f"{ROOT}/End",
            "'2029-11-01' is not an xs:dateTime",
            id="End without a time",
        ),
        pytest.param(
            set_text(
                f"{SR_XP}/tp:DocExchange/tp:ebXMLReceiverBinding/tp:ReliableMessaging"
                "/tp:RetryInterval",
                "3 hours",
            ),
            f"{SR_RECEIVER}/ReliableMessaging/RetryInterval",
            "'3 hours' is not an ISO 8601 duration",
            id="bad RetryInterval",
        ),
        pytest.param(
            set_text(f"{SR_XP}/tp:DocExchange/tp:ebXMLSenderBinding/tp:PersistDuration", "P1M"),
            f"{SR}/DocExchange[@docExchangeId='SR_RM']/ebXMLSenderBinding/PersistDuration",
            "'P1M' uses years or months, which have no fixed length",
            id="PersistDuration in months, even in a binding that is not used",
        ),
        pytest.param(
            set_text(
                f"{SR_XP}/tp:DocExchange/tp:ebXMLReceiverBinding/tp:ReliableMessaging/tp:Retries",
                "eight",
            ),
            f"{SR_RECEIVER}/ReliableMessaging/Retries",
            "'eight' is not a whole number",
            id="Retries not a number",
        ),
        pytest.param(
            remove(f"{SR_XP}/tp:DocExchange/tp:ebXMLReceiverBinding/tp:ReliableMessaging"),
            f"{SR_RECEIVER}/ReliableMessaging",
            "is required: the channel asks for acknowledgements or duplicate elimination",
            id="reliable channel without ReliableMessaging",
        ),
        pytest.param(
            set_attr(
                f"{SR_XP}/tp:DeliveryChannel/tp:MessagingCharacteristics",
                "syncReplyMode",
                "signalsAndResponse",
            ),
            f"{SR_CHANNEL}/@syncReplyMode",
            "not 'signalsAndResponse' (Digikoppeling allows only none and mshSignalsOnly)",
            id="syncReplyMode signalsAndResponse",
        ),
        pytest.param(
            set_attr(
                f"{SR_XP}/tp:DeliveryChannel/tp:MessagingCharacteristics",
                "actor",
                "urn:oasis:names:tc:ebxml-msg:actor:nextMSH",
            ),
            f"{SR_CHANNEL}/@actor",
            "nextMSH acknowledgements are not supported",
            id="nextMSH actor",
        ),
        pytest.param(
            set_attr(
                f"{SR_XP}/tp:DeliveryChannel/tp:MessagingCharacteristics",
                "ackRequested",
                "never",
            ),
            f"{SR_CHANNEL}/@syncReplyMode",
            "mshSignalsOnly needs reliable messaging",
            id="mshSignalsOnly on a best-effort channel",
        ),
        pytest.param(
            set_attr(
                f"{SR_XP}/tp:Transport/tp:TransportReceiver/tp:Endpoint",
                "uri",
                "http://127.0.0.1:8444/ebms",
            ),
            f"{SR}/Transport[@transportId='SR_Transport']/TransportReceiver/Endpoint/@uri",
            "'http://127.0.0.1:8444/ebms' is not an https:// URL",
            id="http endpoint",
        ),
        pytest.param(
            add_third_party,
            f"{ROOT}/PartyInfo",
            "must occur exactly twice, not 3 times",
            id="three PartyInfo",
        ),
        pytest.param(
            remove(f"{SR_XP}/tp:CollaborationRole/tp:Role"),
            f"{SR}/CollaborationRole/Role",
            "is required",
            id="missing role",
        ),
        pytest.param(
            remove(
                f"{SR_XP}/tp:CollaborationRole/tp:ServiceBinding/tp:CanSend",
                f"{SR_XP}/tp:CollaborationRole/tp:ServiceBinding/tp:CanReceive",
            ),
            SR_BINDING,
            "has no CanSend or CanReceive action",
            id="no action",
        ),
        pytest.param(
            remove(f"{SP_XP}/tp:CollaborationRole/tp:ServiceBinding/tp:CanReceive"),
            f"{SR_BINDING}/CanSend",
            f"00000099000000002000 sends 'GLOBE-R-BV-Request', which {MIJNOVERHEID} cannot receive",
            id="an action the other party cannot receive",
        ),
        pytest.param(
            set_text(f"{SP_XP}/tp:PartyId", "00000099000000002000"),
            f"{SP}/PartyId",
            "both parties have OIN 00000099000000002000",
            id="the same OIN twice",
        ),
        pytest.param(
            set_text(f"{SR_XP}/tp:CollaborationRole/tp:ServiceBinding/tp:Service", "a b"),
            f"{SR_BINDING}/Service",
            "'a b' contains whitespace (Digikoppeling)",
            id="whitespace in the service",
        ),
        pytest.param(
            set_text(
                f"{SR_XP}/tp:CollaborationRole/tp:ServiceBinding/tp:CanSend//tp:ChannelId", "X"
            ),
            f"{SR_BINDING}/CanSend[1]/ThisPartyActionBinding/ChannelId",
            "no DeliveryChannel with channelId 'X'",
            id="a ChannelId that names no channel",
        ),
        pytest.param(
            unqualify(f"{SR_XP}/tp:DeliveryChannel/tp:MessagingCharacteristics", "ackRequested"),
            f"{SR_CHANNEL}/@ackRequested",
            "must be namespace-qualified (tp:ackRequested)",
            id="an attribute without the tp: prefix",
        ),
        pytest.param(
            set_attr("/tp:CollaborationProtocolAgreement/tp:Status", "value", "proposed"),
            f"{ROOT}/Status/@value",
            "the CPA is only proposed, not agreed",
            id="a proposed CPA",
        ),
    ],
)
def test_check_cpa_names_the_place_and_reason_of_each_broken_variant(
    tmp_path: Path, edit: Edit, where: str, reason: str
) -> None:
    path = variant(tmp_path, edit)
    problems = check_cpa(path)
    assert any(p.startswith(f"{path}: {where}: ") and reason in p for p in problems), problems
    with pytest.raises(CpaError) as raised:
        load_cpa(path)
    assert raised.value.file == str(path)


def test_check_cpa_lists_every_problem_not_only_the_first(tmp_path: Path) -> None:
    def two_problems(tree: etree._ElementTree) -> None:
        set_text(f"{SR_XP}/tp:PartyId", "1234")(tree)
        set_attr(f"{SP_XP}/tp:Transport/tp:TransportReceiver/tp:Endpoint", "uri", "http://x")(tree)

    path = variant(tmp_path, two_problems)
    endpoint = f"{SP}/Transport[@transportId='SP_Transport']/TransportReceiver/Endpoint/@uri"
    assert check_cpa(path) == [
        f"{path}: {SR}/PartyId: '1234' is not a 20-digit OIN",
        f"{path}: {endpoint}: 'http://x' is not an https:// URL (Digikoppeling: HTTPS only)",
    ]


def test_load_cpa_raises_the_first_problem_as_file_where_and_reason(tmp_path: Path) -> None:
    path = variant(tmp_path, set_attr(f"{SR_XP}/tp:PartyId", "type", "urn:osb:kvk"))
    with pytest.raises(CpaError) as raised:
        load_cpa(path)
    assert raised.value.where == f"{SR}/PartyId/@type"
    assert str(raised.value).startswith(f"{path}: {SR}/PartyId/@type: must be urn:osb:oin but")


@pytest.mark.parametrize(
    ("content", "where", "reason"),
    [
        pytest.param(b"<a><b></a>", "line 1", "not well-formed XML", id="not well-formed"),
        pytest.param(b"<root/>", "/", "is not a CPA: the root element is root", id="not a CPA"),
        pytest.param(
            f'<tp:CollaborationProtocolProfile xmlns:tp="{TP}"/>'.encode(),
            "/",
            "is a CPP (one party's profile), not a CPA",
            id="a CPP",
        ),
        pytest.param(
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "e">]><x>&e;</x>',
            "-",
            "a DOCTYPE is not allowed",
            id="a DOCTYPE",
        ),
    ],
)
def test_a_file_that_is_no_cpa_at_all_is_refused(
    tmp_path: Path, content: bytes, where: str, reason: str
) -> None:
    path = tmp_path / "cpa.xml"
    path.write_bytes(content)
    [problem] = check_cpa(path)
    assert problem.startswith(f"{path}: {where}: {reason}")


def test_a_missing_file_is_reported_not_raised_by_check_cpa(tmp_path: Path) -> None:
    [problem] = check_cpa(tmp_path / "absent.xml")
    assert problem.startswith(f"{tmp_path / 'absent.xml'}: -: cannot be read")


def test_a_best_effort_channel_without_reliable_messaging_has_no_retries(tmp_path: Path) -> None:
    def best_effort(tree: etree._ElementTree) -> None:
        for characteristics in tree.iterfind(".//tp:MessagingCharacteristics", NSMAP):
            characteristics.set(f"{{{TP}}}ackRequested", "never")
            characteristics.set(f"{{{TP}}}duplicateElimination", "never")
        for exchange in tree.iterfind(".//tp:DocExchange", NSMAP):
            for binding in exchange:
                binding.clear()
                binding.set(f"{{{TP}}}version", "2.0")

    path = variant(tmp_path, best_effort, example("00000099000000001000"))
    organisation = load_cpa(path).parties[0]
    assert (organisation.ack_requested, organisation.duplicate_elimination) == ("never", "never")
    assert organisation.retries == 0
    assert organisation.retry_interval == organisation.persist_duration == timedelta(0)


# --- the store ---------------------------------------------------------------------------------


def test_the_store_loads_every_example_and_finds_them_by_cpa_id() -> None:
    store = CpaStore.load(CPA_DIR)
    assert len(store) == 3
    found = store.get(cpa_id("00000099000000003000"))
    assert found is not None and found.parties[0].oin == "00000099000000003000"
    assert store.get("MIJNOVERHEID-EBMS-BB-2-0_example") is None


def test_the_store_refuses_two_files_with_the_same_cpa_id(tmp_path: Path) -> None:
    shutil.copy(example(), tmp_path / "a.xml")
    shutil.copy(example(), tmp_path / "b.xml")
    with pytest.raises(CpaError) as raised:
        CpaStore.load(tmp_path)
    assert raised.value.file == str(tmp_path / "b.xml")
    assert raised.value.reason == (
        f"CPAId {cpa_id('00000099000000002000')} is also used by {tmp_path / 'a.xml'}"
    )


def test_the_store_refuses_a_directory_with_a_broken_cpa(tmp_path: Path) -> None:
    shutil.copy(example(), tmp_path / "a.xml")
    (tmp_path / "b.xml").write_text("<root/>")
    with pytest.raises(CpaError, match="is not a CPA"):
        CpaStore.load(tmp_path)


def test_the_store_refuses_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(CpaError, match="CPA directory not found"):
        CpaStore.load(tmp_path / "absent")


def test_for_parties_finds_the_cpa_for_each_direction_of_the_flow() -> None:
    store = CpaStore.load(CPA_DIR)
    org = "00000099000000002000"
    request = store.for_parties(org, MIJNOVERHEID, SERVICE, REQUEST)
    result = store.for_parties(MIJNOVERHEID, org, SERVICE, RESULT)
    assert request is not None and request.cpa_id == cpa_id(org)
    assert result is request


@pytest.mark.parametrize(
    ("from_oin", "to_oin", "service", "action"),
    [
        pytest.param(
            "00000099000000002000", MIJNOVERHEID, SERVICE, "GLOBE-R-A-Request", id="unknown action"
        ),
        pytest.param("00000099000000002000", MIJNOVERHEID, SERVICE, RESULT, id="wrong direction"),
        pytest.param(
            "00000099000000002000", MIJNOVERHEID, "urn:osb:services:X", REQUEST, id="other service"
        ),
        pytest.param("00000099000000009000", MIJNOVERHEID, SERVICE, REQUEST, id="unknown party"),
    ],
)
def test_for_parties_finds_nothing_when_no_cpa_allows_the_message(
    from_oin: str, to_oin: str, service: str, action: str
) -> None:
    assert CpaStore.load(CPA_DIR).for_parties(from_oin, to_oin, service, action) is None


def test_for_parties_prefers_the_active_cpa_over_an_expired_one() -> None:
    current = load_cpa(example())
    expired: Cpa = dataclasses.replace(
        current,
        cpa_id="MIJNOVERHEID-EBMS-BB-2-0_00000099000000002000_00000004003214345001_0",
        start=datetime(2020, 1, 1, tzinfo=UTC),
        end=datetime(2023, 1, 1, tzinfo=UTC),
    )
    moment = datetime(2027, 1, 1, tzinfo=UTC)
    org = "00000099000000002000"
    assert (
        CpaStore([expired, current]).for_parties(org, MIJNOVERHEID, SERVICE, REQUEST, moment)
        is current
    )
    only_expired = CpaStore([expired])
    assert only_expired.for_parties(org, MIJNOVERHEID, SERVICE, REQUEST, moment) is expired


# --- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT1S", timedelta(seconds=1)),
        ("PT3H", timedelta(hours=3)),
        ("P1D", timedelta(days=1)),
        ("P5D", timedelta(days=5)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("PT0.5S", timedelta(milliseconds=500)),
        ("PT1M30S", timedelta(minutes=1, seconds=30)),
        ("P2DT3H4M5.25S", timedelta(days=2, hours=3, minutes=4, seconds=5.25)),
        ("PT36H", timedelta(hours=36)),
        ("P0D", timedelta(0)),
        (" PT30M ", timedelta(minutes=30)),
    ],
)
def test_an_iso_8601_duration_becomes_a_timedelta(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "is not an ISO 8601 duration"),
        ("P", "is not an ISO 8601 duration"),
        ("PT", "is not an ISO 8601 duration"),
        ("P1DT", "is not an ISO 8601 duration"),
        ("1D", "is not an ISO 8601 duration"),
        ("PT1.5H", "is not an ISO 8601 duration"),
        ("PT1,5S", "is not an ISO 8601 duration"),
        ("PT3h", "is not an ISO 8601 duration"),
        ("P1Y", "uses years or months"),
        ("P1M", "uses years or months"),
        ("P1W", "uses weeks"),
        ("-P1D", "is negative"),
        ("P999999999999D", "is too long a duration"),
    ],
)
def test_a_text_that_is_no_usable_duration_is_refused_with_the_reason(
    text: str, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_duration(text)

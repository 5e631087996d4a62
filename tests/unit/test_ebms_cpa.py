"""The CPA package on its own: the reader on a minimal CPA built here and on broken variants
of it, the values it gives, the duration parser and the store's lookups.

The CPA is built in the test rather than taken from `conf/cpa`, so these tests say what the
reader requires and do not change when an example agreement does (tests/test_cpa.py checks
the examples themselves).
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from adapter.ebms.cpa import (
    NSMAP,
    TP,
    Cpa,
    CpaError,
    CpaParty,
    CpaStore,
    check_cpa,
    load_cpa,
    parse_duration,
)
from adapter.errors import AdapterError

ORGANISATION = "00000099000000002000"
OTHER_ORGANISATION = "00000099000000001000"
MIJNOVERHEID = "00000004003214345001"
SERVICE = "urn:osb:services:MIJNOVERHEID.ebMS.BB.2.0"
REQUEST, RESULT = "GLOBE-R-BV-Request", "GLOBE-R-BV-Result"
ORGANISATION_ENDPOINT = "https://127.0.0.1:8444/ebms"
MIJNOVERHEID_ENDPOINT = "https://127.0.0.1:8443/berichtenbox/ebms"
ROOT = "/CollaborationProtocolAgreement"
SR = f"{ROOT}/PartyInfo[1]"  # the organisation's side
SP = f"{ROOT}/PartyInfo[2]"  # MijnOverheid's side


def cpa_id(oin: str = ORGANISATION, sequence: int = 1) -> str:
    return f"MIJNOVERHEID-EBMS-BB-2-0_{oin}_{MIJNOVERHEID}_{sequence}"


def _party_info(
    side: str, oin: str, sends: str, receives: str, endpoint: str, sync_reply_mode: str
) -> str:
    channel = f"{side}_RM_Channel"
    reliability = (
        "<tp:ReliableMessaging><tp:Retries>8</tp:Retries>"
        "<tp:RetryInterval>PT3H</tp:RetryInterval></tp:ReliableMessaging>"
        "<tp:PersistDuration>P1D</tp:PersistDuration>"
    )
    return f"""
  <tp:PartyInfo tp:defaultMshChannelId="{channel}">
    <tp:PartyId tp:type="urn:osb:oin">{oin}</tp:PartyId>
    <tp:CollaborationRole>
      <tp:Role tp:name="{side}"/>
      <tp:ServiceBinding>
        <tp:Service tp:type="urn:osb:services">{SERVICE}</tp:Service>
        <tp:CanSend><tp:ThisPartyActionBinding tp:action="{sends}">
          <tp:ChannelId>{channel}</tp:ChannelId>
        </tp:ThisPartyActionBinding></tp:CanSend>
        <tp:CanReceive><tp:ThisPartyActionBinding tp:action="{receives}">
          <tp:ChannelId>{channel}</tp:ChannelId>
        </tp:ThisPartyActionBinding></tp:CanReceive>
      </tp:ServiceBinding>
    </tp:CollaborationRole>
    <tp:DeliveryChannel tp:channelId="{channel}" tp:transportId="{side}_Transport"
        tp:docExchangeId="{side}_RM">
      <tp:MessagingCharacteristics tp:syncReplyMode="{sync_reply_mode}"
          tp:ackRequested="always" tp:duplicateElimination="always"/>
    </tp:DeliveryChannel>
    <tp:Transport tp:transportId="{side}_Transport">
      <tp:TransportReceiver><tp:Endpoint tp:uri="{endpoint}"/></tp:TransportReceiver>
    </tp:Transport>
    <tp:DocExchange tp:docExchangeId="{side}_RM">
      <tp:ebXMLSenderBinding>{reliability}</tp:ebXMLSenderBinding>
      <tp:ebXMLReceiverBinding>{reliability}</tp:ebXMLReceiverBinding>
    </tp:DocExchange>
  </tp:PartyInfo>"""


def minimal_cpa(
    oin: str = ORGANISATION,
    *,
    sequence: int = 1,
    sync_reply_mode: str = "mshSignalsOnly",
    start: str = "2026-11-01T00:00:00Z",
    end: str = "2029-11-01T00:00:00Z",
) -> bytes:
    """The smallest agreement the reader accepts: an organisation (SR) sends REQUEST to
    MijnOverheid (SP), which answers RESULT, reliably, over one channel per party."""
    organisation = _party_info("SR", oin, REQUEST, RESULT, ORGANISATION_ENDPOINT, sync_reply_mode)
    mijnoverheid = _party_info(
        "SP", MIJNOVERHEID, RESULT, REQUEST, MIJNOVERHEID_ENDPOINT, sync_reply_mode
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<tp:CollaborationProtocolAgreement xmlns:tp="{TP}" tp:cpaid="{cpa_id(oin, sequence)}">
  <tp:Status tp:value="agreed"/>
  <tp:Start>{start}</tp:Start>
  <tp:End>{end}</tp:End>{organisation}{mijnoverheid}
</tp:CollaborationProtocolAgreement>
""".encode()


Edit = Callable[[etree._ElementTree], None]


def write_cpa(
    directory: Path,
    edit: Edit | None = None,
    name: str = "cpa.xml",
    *,
    oin: str = ORGANISATION,
    sync_reply_mode: str = "mshSignalsOnly",
    start: str = "2026-11-01T00:00:00Z",
) -> Path:
    """The minimal CPA, changed by `edit`, as a file in `directory`."""
    document = minimal_cpa(oin, sync_reply_mode=sync_reply_mode, start=start)
    tree = etree.ElementTree(etree.fromstring(document))
    if edit is not None:
        edit(tree)
    path = directory / name
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


def duplicate(xpath: str) -> Edit:
    """A second copy of the element, right after the first."""

    def edit(tree: etree._ElementTree) -> None:
        element = first(tree, xpath)
        element.addnext(etree.fromstring(etree.tostring(element)))

    return edit


def add_third_party(tree: etree._ElementTree) -> None:
    duplicate("/tp:CollaborationProtocolAgreement/tp:PartyInfo[2]")(tree)


@pytest.fixture
def cpa(tmp_path: Path) -> Cpa:
    return load_cpa(write_cpa(tmp_path))


# --- the minimal CPA ---------------------------------------------------------------------------


def test_the_minimal_cpa_passes_the_check(tmp_path: Path) -> None:
    assert check_cpa(write_cpa(tmp_path)) == []


def test_the_minimal_cpa_reads_into_its_identity_and_period(tmp_path: Path) -> None:
    path = write_cpa(tmp_path)
    cpa = load_cpa(path)
    assert cpa.cpa_id == cpa_id()
    assert cpa.source == path
    assert cpa.start == datetime(2026, 11, 1, tzinfo=UTC)
    assert cpa.end == datetime(2029, 11, 1, tzinfo=UTC)


def test_each_party_of_the_minimal_cpa_has_the_values_of_the_channel_it_receives_on(
    cpa: Cpa,
) -> None:
    organisation = CpaParty(
        oin=ORGANISATION,
        party_id_type="urn:osb:oin",
        role="SR",
        endpoint=ORGANISATION_ENDPOINT,
        can_send=frozenset({REQUEST}),
        can_receive=frozenset({RESULT}),
        service=SERVICE,
        service_type="urn:osb:services",
        sync_reply_mode="mshSignalsOnly",
        ack_requested="always",
        duplicate_elimination="always",
        retries=8,
        retry_interval=timedelta(hours=3),
        persist_duration=timedelta(days=1),
    )
    mijnoverheid = dataclasses.replace(
        organisation,
        oin=MIJNOVERHEID,
        role="SP",
        endpoint=MIJNOVERHEID_ENDPOINT,
        can_send=frozenset({RESULT}),
        can_receive=frozenset({REQUEST}),
    )
    assert cpa.parties == (organisation, mijnoverheid)


def test_a_cpa_is_active_from_its_start_until_just_before_its_end(cpa: Cpa) -> None:
    assert cpa.is_active(cpa.start)
    assert cpa.is_active(cpa.end - timedelta(microseconds=1))
    assert not cpa.is_active(cpa.end)
    assert not cpa.is_active(cpa.start - timedelta(seconds=1))


def test_a_moment_without_offset_is_read_as_utc(cpa: Cpa) -> None:
    assert cpa.is_active(datetime(2026, 11, 1, 0, 0, 0))
    assert not cpa.is_active(datetime(2026, 10, 31, 23, 59, 59))


def test_a_start_without_offset_is_read_as_utc(tmp_path: Path) -> None:
    cpa = load_cpa(write_cpa(tmp_path, start="2026-11-01T00:00:00"))
    assert cpa.start == datetime(2026, 11, 1, tzinfo=UTC)


def test_party_finds_a_side_by_oin_and_other_gives_the_opposite_side(cpa: Cpa) -> None:
    organisation = cpa.party(ORGANISATION)
    assert organisation is not None and organisation.role == "SR"
    assert cpa.other(ORGANISATION).oin == MIJNOVERHEID
    assert cpa.other(MIJNOVERHEID) is organisation
    assert cpa.party(OTHER_ORGANISATION) is None


def test_other_refuses_an_oin_that_is_not_a_party(cpa: Cpa) -> None:
    with pytest.raises(KeyError, match="00000099000000001000 is not a party"):
        cpa.other(OTHER_ORGANISATION)


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
        # Rules the example agreements never come near.
        pytest.param(
            set_attr("/tp:CollaborationProtocolAgreement", "cpaid", "a b"),
            f"{ROOT}/@cpaid",
            "'a b' contains whitespace",
            id="whitespace in the CPAId",
        ),
        pytest.param(
            duplicate(f"{SR_XP}/tp:CollaborationRole"),
            f"{SR}/CollaborationRole",
            "must occur once, not 2 times (Digikoppeling: one role and one service per party",
            id="two roles for one party",
        ),
        pytest.param(
            duplicate(f"{SR_XP}/tp:CollaborationRole/tp:ServiceBinding"),
            f"{SR}/CollaborationRole/ServiceBinding",
            "must occur once: one service per CPA",
            id="two services for one party",
        ),
        pytest.param(
            duplicate(f"{SR_XP}/tp:PartyId"),
            f"{SR}/PartyId",
            "must occur once: Digikoppeling identifies a party by one OIN",
            id="two PartyIds for one party",
        ),
        pytest.param(
            duplicate(f"{SR_XP}/tp:CollaborationRole/tp:ServiceBinding/tp:CanSend"),
            f"{SR_BINDING}/CanSend[2]/ThisPartyActionBinding/@action",
            "'GLOBE-R-BV-Request' is listed twice",
            id="an action listed twice",
        ),
        pytest.param(
            set_attr(
                f"{SR_XP}/tp:CollaborationRole/tp:ServiceBinding/tp:CanSend"
                "/tp:ThisPartyActionBinding",
                "action",
                "GLOBE R",
            ),
            f"{SR_BINDING}/CanSend[1]/ThisPartyActionBinding/@action",
            "'GLOBE R' contains whitespace (Digikoppeling)",
            id="whitespace in an action",
        ),
        pytest.param(
            remove(f"{SR_XP}/tp:Transport/tp:TransportReceiver"),
            f"{SR}/Transport[@transportId='SR_Transport']/TransportReceiver",
            "is required: messages to this party are delivered on this transport",
            id="a receiving channel whose transport has no receiver",
        ),
        pytest.param(
            set_attr(f"{SR_XP}/tp:DeliveryChannel", "docExchangeId", "elsewhere"),
            f"{SR}/DeliveryChannel[@channelId='SR_RM_Channel']/@docExchangeId",
            "no DocExchange with docExchangeId 'elsewhere'",
            id="a channel naming no DocExchange",
        ),
        pytest.param(
            set_attr(f"{SR_XP}/tp:DeliveryChannel", "transportId", "elsewhere"),
            f"{SR}/DeliveryChannel[@channelId='SR_RM_Channel']/@transportId",
            "no Transport with transportId 'elsewhere'",
            id="a channel naming no Transport",
        ),
    ],
)
def test_check_cpa_names_the_place_and_reason_of_each_broken_variant(
    tmp_path: Path, edit: Edit, where: str, reason: str
) -> None:
    path = write_cpa(tmp_path, edit)
    problems = check_cpa(path)
    assert any(p.startswith(f"{path}: {where}: ") and reason in p for p in problems), problems
    with pytest.raises(CpaError) as raised:
        load_cpa(path)
    assert raised.value.file == str(path)


def test_check_cpa_lists_every_problem_not_only_the_first(tmp_path: Path) -> None:
    def two_problems(tree: etree._ElementTree) -> None:
        set_text(f"{SR_XP}/tp:PartyId", "1234")(tree)
        set_attr(f"{SP_XP}/tp:Transport/tp:TransportReceiver/tp:Endpoint", "uri", "http://x")(tree)

    path = write_cpa(tmp_path, two_problems)
    endpoint = f"{SP}/Transport[@transportId='SP_Transport']/TransportReceiver/Endpoint/@uri"
    assert check_cpa(path) == [
        f"{path}: {SR}/PartyId: '1234' is not a 20-digit OIN",
        f"{path}: {endpoint}: 'http://x' is not an https:// URL (Digikoppeling: HTTPS only)",
    ]


def test_load_cpa_raises_the_first_problem_as_file_where_and_reason(tmp_path: Path) -> None:
    path = write_cpa(tmp_path, set_attr(f"{SR_XP}/tp:PartyId", "type", "urn:osb:kvk"))
    with pytest.raises(CpaError) as raised:
        load_cpa(path)
    assert raised.value.where == f"{SR}/PartyId/@type"
    assert str(raised.value).startswith(f"{path}: {SR}/PartyId/@type: must be urn:osb:oin but")


def test_a_cpa_error_belongs_to_the_adapters_error_vocabulary(tmp_path: Path) -> None:
    with pytest.raises(AdapterError):
        load_cpa(write_cpa(tmp_path, remove_attr("/tp:CollaborationProtocolAgreement", "cpaid")))


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
        pytest.param(
            b'<tp:CollaborationProtocolAgreement xmlns:tp="urn:elsewhere"/>',
            "/",
            "is not a CPA 2.0: the root element is not in namespace",
            id="a CPA in another namespace",
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

    path = write_cpa(tmp_path, best_effort, sync_reply_mode="none")
    organisation = load_cpa(path).parties[0]
    assert (organisation.ack_requested, organisation.duplicate_elimination) == ("never", "never")
    assert organisation.retries == 0
    assert organisation.retry_interval == organisation.persist_duration == timedelta(0)


def test_absent_messaging_characteristics_take_the_schema_defaults(tmp_path: Path) -> None:
    def defaults(tree: etree._ElementTree) -> None:
        for characteristics in tree.iterfind(".//tp:MessagingCharacteristics", NSMAP):
            characteristics.attrib.clear()

    organisation = load_cpa(write_cpa(tmp_path, defaults)).parties[0]
    assert organisation.sync_reply_mode == "none"
    assert (organisation.ack_requested, organisation.duplicate_elimination) == (
        "perMessage",
        "perMessage",
    )


def test_a_default_msh_channel_posting_elsewhere_is_refused(tmp_path: Path) -> None:
    def second_channel(tree: etree._ElementTree) -> None:
        for element in ("DeliveryChannel", "Transport"):
            duplicate(f"{SR_XP}/tp:{element}")(tree)
        msh_channel = first(tree, f"{SR_XP}/tp:DeliveryChannel[2]")
        msh_channel.set(f"{{{TP}}}channelId", "SR_MSH_Channel")
        msh_channel.set(f"{{{TP}}}transportId", "SR_MSH_Transport")
        transport = first(tree, f"{SR_XP}/tp:Transport[2]")
        transport.set(f"{{{TP}}}transportId", "SR_MSH_Transport")
        set_attr(f"{SR_XP}/tp:Transport[2]/tp:TransportReceiver/tp:Endpoint", "uri", "https://x")(
            tree
        )
        first(tree, SR_XP).set(f"{{{TP}}}defaultMshChannelId", "SR_MSH_Channel")

    [problem] = check_cpa(write_cpa(tmp_path, second_channel))
    assert f"{SR}/@defaultMshChannelId: channel 'SR_MSH_Channel' posts to https://x" in problem
    assert "this adapter keeps one endpoint per party" in problem


# --- the store ---------------------------------------------------------------------------------


def test_the_store_loads_every_file_of_a_directory_and_finds_each_by_cpa_id(
    tmp_path: Path,
) -> None:
    write_cpa(tmp_path, name="a.xml")
    write_cpa(tmp_path, name="b.xml", oin=OTHER_ORGANISATION)
    (tmp_path / "notes.txt").write_text("not a CPA, and not read")
    store = CpaStore.load(tmp_path)
    assert len(store) == 2
    assert {cpa.cpa_id for cpa in store} == {cpa_id(), cpa_id(OTHER_ORGANISATION)}
    found = store.get(cpa_id(OTHER_ORGANISATION))
    assert found is not None and found.parties[0].oin == OTHER_ORGANISATION
    assert store.get("MIJNOVERHEID-EBMS-BB-2-0_example") is None


def test_the_store_refuses_two_files_with_the_same_cpa_id(tmp_path: Path) -> None:
    source, directory = write_cpa(tmp_path), tmp_path / "cpa"
    directory.mkdir()
    shutil.copy(source, directory / "a.xml")
    shutil.copy(source, directory / "b.xml")
    with pytest.raises(CpaError) as raised:
        CpaStore.load(directory)
    assert raised.value.file == str(directory / "b.xml")
    assert raised.value.reason == f"CPAId {cpa_id()} is also used by {directory / 'a.xml'}"


def test_the_store_refuses_a_directory_with_a_broken_cpa(tmp_path: Path) -> None:
    write_cpa(tmp_path, name="a.xml")
    (tmp_path / "b.xml").write_text("<root/>")
    with pytest.raises(CpaError, match="is not a CPA"):
        CpaStore.load(tmp_path)


def test_the_store_refuses_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(CpaError, match="CPA directory not found"):
        CpaStore.load(tmp_path / "absent")


def test_for_parties_finds_the_cpa_for_each_direction_of_the_flow(cpa: Cpa) -> None:
    store = CpaStore([cpa])
    request = store.for_parties(ORGANISATION, MIJNOVERHEID, SERVICE, REQUEST)
    result = store.for_parties(MIJNOVERHEID, ORGANISATION, SERVICE, RESULT)
    assert request is not None and request.cpa_id == cpa_id()
    assert result is request


@pytest.mark.parametrize(
    ("from_oin", "to_oin", "service", "action"),
    [
        pytest.param(ORGANISATION, MIJNOVERHEID, SERVICE, "GLOBE-R-A-Request", id="unknown action"),
        pytest.param(ORGANISATION, MIJNOVERHEID, SERVICE, RESULT, id="wrong direction"),
        pytest.param(ORGANISATION, MIJNOVERHEID, "urn:osb:services:X", REQUEST, id="other service"),
        pytest.param("00000099000000009000", MIJNOVERHEID, SERVICE, REQUEST, id="unknown party"),
        pytest.param(ORGANISATION, ORGANISATION, SERVICE, REQUEST, id="to itself"),
    ],
)
def test_for_parties_finds_nothing_when_no_cpa_allows_the_message(
    cpa: Cpa, from_oin: str, to_oin: str, service: str, action: str
) -> None:
    assert CpaStore([cpa]).for_parties(from_oin, to_oin, service, action) is None


def test_for_parties_prefers_the_active_cpa_over_an_expired_one(cpa: Cpa) -> None:
    expired: Cpa = dataclasses.replace(
        cpa,
        cpa_id=cpa_id(sequence=0),
        start=datetime(2020, 1, 1, tzinfo=UTC),
        end=datetime(2023, 1, 1, tzinfo=UTC),
    )
    moment = datetime(2027, 1, 1, tzinfo=UTC)
    assert (
        CpaStore([expired, cpa]).for_parties(ORGANISATION, MIJNOVERHEID, SERVICE, REQUEST, moment)
        is cpa
    )
    only_expired = CpaStore([expired])
    assert only_expired.for_parties(ORGANISATION, MIJNOVERHEID, SERVICE, REQUEST, moment) is expired


def test_for_parties_prefers_the_later_start_among_active_cpas(cpa: Cpa) -> None:
    successor = dataclasses.replace(
        cpa, cpa_id=cpa_id(sequence=2), start=datetime(2027, 6, 1, tzinfo=UTC)
    )
    moment = datetime(2028, 1, 1, tzinfo=UTC)
    store = CpaStore([successor, cpa])
    assert store.for_parties(ORGANISATION, MIJNOVERHEID, SERVICE, REQUEST, moment) is successor


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

"""ebMS SOAP headers on their own: what we write reads back, every broken MessageHeader is the
ebMS error that says what is wrong, and Acknowledgments and MessageErrors have their shape."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from lxml import etree

from adapter.ebms.message import (
    EB,
    ERROR_CONTEXT,
    MSH_SERVICE,
    NSMAP,
    TO_PARTY_MSH,
    XLINK,
    MessageHeader,
    Route,
    acknowledgment,
    business_message,
    error_of,
    message_error,
    new_message_id,
    read_header,
    reply_route,
)
from adapter.errors import EbmsError, Inconsistent, MimeProblem, NotSupported, OtherXml
from adapter.soap.envelope import SOAP_ENV

ORGANISATION = "00000099000000002000"
MIJNOVERHEID = "00000004003214345001"
NOW = datetime(2026, 11, 23, 12, 0, 0, 123000, tzinfo=UTC)
ROUTE = Route(
    cpa_id="MIJNOVERHEID-EBMS-BB-2-0_00000099000000002000_00000004003214345001_1",
    conversation_id="conversation-1",
    from_oin=ORGANISATION,
    from_role="SR",
    to_oin=MIJNOVERHEID,
    to_role="SP",
    service="urn:osb:services:MIJNOVERHEID.ebMS.BB.2.0",
    service_type="urn:osb:services",
    action="GLOBE-R-BV-Request",
)
E = f"{{{EB}}}"
S = f"{{{SOAP_ENV}}}"


def message(manifest: tuple[str, ...] = ("batch@test",)) -> tuple[str, etree._Element]:
    """A business message as we send it: its MessageId and its parsed envelope."""
    message_id, data = business_message(ROUTE, NOW, "earlier@test", manifest)
    return message_id, etree.fromstring(data)


def request() -> MessageHeader:
    return read_header(message()[1])


def find(element: etree._Element, path: str) -> etree._Element:
    found = element.find(path, NSMAP)
    assert found is not None, path
    return found


def broken(change: Callable[[etree._Element], None]) -> etree._Element:
    envelope = message()[1]
    change(envelope)
    return envelope


def drop(path: str) -> Callable[[etree._Element], None]:
    def change(envelope: etree._Element) -> None:
        element = find(envelope, path)
        parent = element.getparent()
        assert parent is not None
        parent.remove(element)

    return change


def set_text(path: str, value: str) -> Callable[[etree._Element], None]:
    def change(envelope: etree._Element) -> None:
        find(envelope, path).text = value

    return change


def twice(path: str) -> Callable[[etree._Element], None]:
    def change(envelope: etree._Element) -> None:
        element = find(envelope, path)
        element.addnext(etree.fromstring(etree.tostring(element)))

    return change


HEADER = "SOAP:Header/eb:MessageHeader"


# --- reading a MessageHeader -------------------------------------------------------------------


def test_a_business_message_we_write_reads_back_as_its_route() -> None:
    message_id, envelope = message(("batch@test", "bijlage 1@test"))
    header = read_header(envelope)
    assert (header.from_party.value, header.from_party.type) == (ORGANISATION, "urn:osb:oin")
    assert (header.to_party.value, header.to_party.type) == (MIJNOVERHEID, "urn:osb:oin")
    assert (header.from_role, header.to_role) == ("SR", "SP")
    assert (header.cpa_id, header.conversation_id) == (ROUTE.cpa_id, ROUTE.conversation_id)
    assert (header.service, header.service_type) == (ROUTE.service, ROUTE.service_type)
    assert header.action == ROUTE.action
    assert header.message_id == message_id
    assert header.timestamp == NOW
    assert header.ref_to_message_id == "earlier@test"
    assert header.manifest == ("batch@test", "bijlage 1@test")


def test_a_business_message_asks_for_an_acknowledgment_and_duplicate_elimination() -> None:
    header = request()
    assert header.ack_requested and header.duplicate_elimination
    assert not header.sync_reply


def test_a_sync_reply_element_is_read_as_a_request_for_a_synchronous_answer() -> None:
    envelope = message()[1]
    find(envelope, "SOAP:Header").append(etree.Element(f"{E}SyncReply"))
    assert read_header(envelope).sync_reply


def test_a_timestamp_without_offset_is_read_as_utc() -> None:
    envelope = broken(set_text(f"{HEADER}/eb:MessageData/eb:Timestamp", "2026-11-23T12:00:00"))
    assert read_header(envelope).timestamp == datetime(2026, 11, 23, 12, tzinfo=UTC)


def test_a_percent_encoded_manifest_reference_is_decoded() -> None:
    envelope = message()[1]
    find(envelope, "SOAP:Body/eb:Manifest/eb:Reference").set(f"{{{XLINK}}}href", "cid:a%40b")
    assert read_header(envelope).manifest == ("a@b",)


def test_a_message_without_a_manifest_has_no_references() -> None:
    assert read_header(broken(drop("SOAP:Body/eb:Manifest"))).manifest == ()


@pytest.mark.parametrize(
    ("change", "error", "location"),
    [
        pytest.param(drop("SOAP:Body"), OtherXml, "/Envelope", id="no Body"),
        pytest.param(drop(HEADER), OtherXml, "//Header/MessageHeader", id="no MessageHeader"),
        pytest.param(twice(HEADER), OtherXml, "//Header/MessageHeader", id="two MessageHeaders"),
        pytest.param(
            lambda envelope: find(envelope, HEADER).set(f"{E}version", "3.0"),
            NotSupported,
            "//Header/MessageHeader/@version",
            id="another ebMS version",
        ),
        pytest.param(
            twice(f"{HEADER}/eb:From/eb:PartyId"),
            Inconsistent,
            "//MessageHeader/From/PartyId",
            id="two PartyIds for the sender",
        ),
        pytest.param(drop(f"{HEADER}/eb:To"), OtherXml, "//MessageHeader/To", id="no To"),
        pytest.param(
            set_text(f"{HEADER}/eb:CPAId", " "), OtherXml, "//MessageHeader/CPAId", id="empty CPAId"
        ),
        pytest.param(
            drop(f"{HEADER}/eb:Action"), OtherXml, "//MessageHeader/Action", id="no Action"
        ),
        pytest.param(
            drop(f"{HEADER}/eb:MessageData/eb:MessageId"),
            OtherXml,
            "//MessageHeader/MessageData/MessageId",
            id="no MessageId",
        ),
        pytest.param(
            set_text(f"{HEADER}/eb:MessageData/eb:Timestamp", "gisteren"),
            OtherXml,
            "//MessageData/Timestamp",
            id="a Timestamp that is no xs:dateTime",
        ),
        pytest.param(
            lambda envelope: find(envelope, "SOAP:Body/eb:Manifest/eb:Reference").set(
                f"{{{XLINK}}}href", "https://example.org/payload"
            ),
            MimeProblem,
            "//Body/Manifest/Reference",
            id="a payload by external reference",
        ),
    ],
)
def test_a_broken_message_header_is_the_ebms_error_that_names_its_place(
    change: Callable[[etree._Element], None], error: type[EbmsError], location: str
) -> None:
    with pytest.raises(error) as raised:
        read_header(broken(change))
    assert raised.value.location == location
    assert raised.value.description


# --- writing -----------------------------------------------------------------------------------


def test_a_new_message_id_is_a_unique_uuid_at_a_domain() -> None:
    first, second = new_message_id(), new_message_id("example.org")
    assert re.fullmatch(r"[0-9a-f-]{36}@mijnoverheid-adapter", first)
    assert second.endswith("@example.org")
    assert first.split("@")[0] != second.split("@")[0]


def test_the_reply_route_of_a_business_answer_swaps_the_parties_and_keeps_their_roles() -> None:
    route = reply_route(request(), "GLOBE-R-BV-Result", ROUTE.service, ROUTE.service_type)
    assert (route.from_oin, route.from_role) == (MIJNOVERHEID, "SP")
    assert (route.to_oin, route.to_role) == (ORGANISATION, "SR")
    assert (route.cpa_id, route.conversation_id) == (ROUTE.cpa_id, ROUTE.conversation_id)
    assert (route.service, route.action) == (ROUTE.service, "GLOBE-R-BV-Result")


def test_the_reply_route_of_an_msh_signal_has_no_roles() -> None:
    route = reply_route(request(), "Acknowledgment")
    assert (route.service, route.service_type) == (MSH_SERVICE, None)
    assert route.from_role is None and route.to_role is None


def test_an_acknowledgment_goes_back_to_the_sender_and_refers_to_the_request() -> None:
    original = request()
    message_id, data = acknowledgment(original, NOW)
    envelope = etree.fromstring(data)
    answer = read_header(envelope)
    assert answer.message_id == message_id != original.message_id
    assert (answer.from_party.value, answer.to_party.value) == (MIJNOVERHEID, ORGANISATION)
    assert (answer.service, answer.action) == (MSH_SERVICE, "Acknowledgment")
    assert answer.ref_to_message_id == original.message_id
    assert not answer.ack_requested and not answer.duplicate_elimination


def test_an_acknowledgment_element_names_the_request_and_the_acknowledging_party() -> None:
    original = request()
    envelope = etree.fromstring(acknowledgment(original, NOW)[1])
    ack = find(envelope, "SOAP:Header/eb:Acknowledgment")
    assert ack.get(f"{E}version") == "2.0"
    assert ack.get(f"{S}mustUnderstand") == "1"
    assert ack.get(f"{S}actor") == TO_PARTY_MSH
    assert ack.findtext("eb:RefToMessageId", namespaces=NSMAP) == original.message_id
    assert ack.findtext("eb:From/eb:PartyId", namespaces=NSMAP) == MIJNOVERHEID
    assert ack.findtext("eb:Timestamp", namespaces=NSMAP) == "2026-11-23T12:00:00.123Z"
    assert error_of(envelope) is None


def test_extra_headers_follow_the_ebms_headers() -> None:
    extra = etree.Element("{urn:test}Extra")
    envelope = etree.fromstring(acknowledgment(request(), NOW, [extra])[1])
    assert [child.tag for child in find(envelope, "SOAP:Header")][-1] == "{urn:test}Extra"


def test_a_message_error_carries_one_error_with_code_location_and_dutch_description() -> None:
    original = request()
    problem = OtherXml("CPAId is leeg", location="//MessageHeader/CPAId")
    message_id, data = message_error(original, problem, NOW)
    envelope = etree.fromstring(data)
    errors = find(envelope, "SOAP:Header/eb:ErrorList")
    assert errors.get(f"{E}highestSeverity") == "Error"
    [error] = errors.findall("eb:Error", NSMAP)
    assert error.get(f"{E}codeContext") == ERROR_CONTEXT
    assert error.get(f"{E}errorCode") == "OtherXml"
    assert error.get(f"{E}severity") == "Error"
    assert error.get(f"{E}location") == "//MessageHeader/CPAId"
    description = find(error, "eb:Description")
    assert description.get("{http://www.w3.org/XML/1998/namespace}lang") == "nl"
    answer = read_header(envelope)
    assert answer.message_id == message_id
    assert (answer.action, answer.ref_to_message_id) == ("MessageError", original.message_id)


def test_a_message_error_without_a_location_leaves_the_attribute_out() -> None:
    envelope = etree.fromstring(message_error(request(), NotSupported("alleen 2.0"), NOW)[1])
    assert find(envelope, "SOAP:Header/eb:ErrorList/eb:Error").get(f"{E}location") is None


def test_a_message_error_to_an_unreadable_request_is_addressed_to_no_one() -> None:
    envelope = etree.fromstring(message_error(None, OtherXml("geen ebMS"), NOW)[1])
    assert envelope.find(HEADER, NSMAP) is None
    assert envelope.find("SOAP:Header/eb:ErrorList", NSMAP) is not None


def test_error_of_reads_the_code_and_description_of_a_message_error() -> None:
    data = message_error(request(), MimeProblem("cid:x ontbreekt", location="cid:x"), NOW)[1]
    assert error_of(etree.fromstring(data)) == ("MimeProblem", "cid:x ontbreekt")


def test_error_of_a_business_message_is_none() -> None:
    assert error_of(message()[1]) is None


def _second(tag: str) -> Callable[[etree._Element], None]:
    return lambda envelope: envelope.append(etree.Element(f"{S}{tag}"))


def _header_block(
    must_understand: str | None, namespace: str = "urn:x"
) -> Callable[[etree._Element], None]:
    def add(envelope: etree._Element) -> None:
        block = etree.SubElement(find(envelope, "SOAP:Header"), f"{{{namespace}}}Trace")
        if must_understand is not None:
            block.set(f"{S}mustUnderstand", must_understand)

    return add


@pytest.mark.parametrize(
    ("change", "error", "location"),
    [
        pytest.param(_second("Body"), OtherXml, "/Envelope", id="two Bodies"),
        pytest.param(_second("Header"), OtherXml, "/Envelope", id="two Headers"),
        pytest.param(_header_block("1"), NotSupported, "//Header/Trace", id="mustUnderstand 1"),
        pytest.param(
            _header_block("true"), NotSupported, "//Header/Trace", id="mustUnderstand true"
        ),
    ],
)
def test_an_envelope_that_is_not_one_soap_11_message_we_fully_process_is_refused(
    change: Callable[[etree._Element], None], error: type[EbmsError], location: str
) -> None:
    with pytest.raises(error) as raised:
        read_header(broken(change))
    assert raised.value.location == location


@pytest.mark.parametrize(
    "change",
    [_header_block(None), _header_block("0"), _header_block("1", EB)],
    ids=["no mustUnderstand", "mustUnderstand 0", "an ebMS block"],
)
def test_a_header_block_we_need_not_understand_or_do_understand_is_read_past(
    change: Callable[[etree._Element], None],
) -> None:
    assert read_header(broken(change)).action == "GLOBE-R-BV-Request"

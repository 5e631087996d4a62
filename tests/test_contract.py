"""Contract tests for the published schemas and the ValidateAbonnementen WSDL.

These pin the wire contract (SPEC.md A 2 and Part C) independently of the server code, so a
schema edit that would break Logius-generated clients, or a receipt the schema no longer
describes, fails here first.
"""

import base64
import copy
import hashlib
from pathlib import Path

import pytest
import zeep
from lxml import etree

ROOT = Path(__file__).parents[1]
XSD = ROOT / "xsd"
WSDL = ROOT / "wsdl" / "BerichtenboxValidatieService.wsdl"

SVC = "http://schemas.rdw.nl/GEB/BerichtenboxValidatieService/2009/01"
TYP = "http://schemas.rdw.nl/GEB/BerichtenboxValidatieService/Types/2009/01"
SHR = "http://schemas.rdw.nl/GEB/Shared/Types/2009/01"
AB = "urn:mijnoverheid-adapter:afleverbevestiging:1"
DS = "http://www.w3.org/2000/09/xmldsig#"
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
WSAM = "http://www.w3.org/2007/05/addressing/metadata"
WSAW = "http://www.w3.org/2006/05/addressing/wsdl"
WSA = "http://www.w3.org/2005/08/addressing"

ACTION_BASE = f"{SVC}/IBerichtenboxValidatieService/"
SOAP_ACTION = ACTION_BASE + "ValidateAbonnementen"
BINDING = f"{{{SVC}}}BasicHttpBinding_IBerichtenboxValidatieService"

# The same hardening the server uses: a schema that needs a DTD or the network must fail here.
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)

SCHEMA_FILES = [
    "BerichtenboxValidatieService.xsd",
    "BerichtenboxValidatieService-types.xsd",
    "GEB-shared-types.xsd",
    "afleverbevestiging.xsd",
]

EMPTY_SHA256 = base64.b64encode(hashlib.sha256(b"").digest()).decode()


def load_schema(name: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD / name), PARSER))


def xml(text: str) -> etree._Element:
    return etree.fromstring(text.strip().encode(), PARSER)


@pytest.fixture(scope="module")
def svc_schema() -> etree.XMLSchema:
    return load_schema("BerichtenboxValidatieService.xsd")


@pytest.fixture(scope="module")
def receipt_schema() -> etree.XMLSchema:
    return load_schema("afleverbevestiging.xsd")


@pytest.fixture(scope="module")
def client() -> zeep.Client:
    return zeep.Client(str(WSDL))


REQUEST = f"""
<svc:ValidateAbonnementen xmlns:svc="{SVC}" xmlns:typ="{TYP}" xmlns:shr="{SHR}">
  <svc:validateAbonnementenAanvraag>
    <typ:berichtleverancierCode>00000001234567890000</typ:berichtleverancierCode>
    <typ:berichtTypeCode>BESLUIT</typ:berichtTypeCode>
    <typ:klanten>
      <shr:Klant><shr:Key>999993653</shr:Key><shr:Rol>Burger</shr:Rol></shr:Klant>
      <shr:Klant><shr:Key>999990019</shr:Key><shr:Rol>Burger</shr:Rol></shr:Klant>
    </typ:klanten>
  </svc:validateAbonnementenAanvraag>
</svc:ValidateAbonnementen>
"""

RESPONSE = f"""
<svc:ValidateAbonnementenResponse xmlns:svc="{SVC}" xmlns:typ="{TYP}" xmlns:shr="{SHR}">
  <svc:ValidateAbonnementenResult>
    <typ:Abonnement>
      <typ:klant><shr:Key>999993653</shr:Key><shr:Rol>Burger</shr:Rol></typ:klant>
      <typ:isBerichtSturen>true</typ:isBerichtSturen>
    </typ:Abonnement>
    <typ:Abonnement>
      <typ:klant><shr:Key>999990019</shr:Key><shr:Rol>Burger</shr:Rol></typ:klant>
      <typ:isBerichtSturen>false</typ:isBerichtSturen>
    </typ:Abonnement>
  </svc:ValidateAbonnementenResult>
</svc:ValidateAbonnementenResponse>
"""

RECEIPT = f"""
<ab:Afleverbevestiging xmlns:ab="{AB}" Id="AB-6f1c2b8e-4a7d-4a55-9a43-2f0e8c1d9b70">
  <ab:BevestigingID>6f1c2b8e-4a7d-4a55-9a43-2f0e8c1d9b70</ab:BevestigingID>
  <ab:RequestID>req-0001</ab:RequestID>
  <ab:Ontvanger>00000004003214345001</ab:Ontvanger>
  <ab:Afzender>00000001234567890000</ab:Afzender>
  <ab:TijdstipOntvangst>2026-01-15T09:30:00.123Z</ab:TijdstipOntvangst>
  <ab:BerichtReferentie></ab:BerichtReferentie>
  <ab:Dienst>BerichtenboxValidatieService</ab:Dienst>
  <ab:Operatie>ValidateAbonnementen</ab:Operatie>
  <ab:BodyHash>{EMPTY_SHA256}</ab:BodyHash>
  <ab:Uitkomst><ab:Geaccepteerd/></ab:Uitkomst>
</ab:Afleverbevestiging>
"""

BATCH_RECEIPT = f"""
<ab:Afleverbevestiging xmlns:ab="{AB}" xmlns:ds="{DS}" Id="AB-1">
  <ab:BevestigingID>0b7e6a3c-1d2f-4e5a-8b9c-0d1e2f3a4b5c</ab:BevestigingID>
  <ab:RequestID>req-0002</ab:RequestID>
  <ab:Ontvanger>00000004003214345001</ab:Ontvanger>
  <ab:Afzender>00000001234567890000</ab:Afzender>
  <ab:TijdstipOntvangst>2026-01-15T09:30:00.123Z</ab:TijdstipOntvangst>
  <ab:BerichtReferentie>20260115-093000-1@sender.example</ab:BerichtReferentie>
  <ab:Dienst>urn:osb:services:MIJNOVERHEID.ebMS.BB.2.0</ab:Dienst>
  <ab:Operatie>GLOBE-R-BV-Request</ab:Operatie>
  <ab:BodyHash>{EMPTY_SHA256}</ab:BodyHash>
  <ab:PartHash ContentId="bericht-1@sender.example">{EMPTY_SHA256}</ab:PartHash>
  <ab:Uitkomst>
    <ab:Bericht>
      <ab:BerichtID>1a2b3c4d-0000-4000-8000-000000000001</ab:BerichtID>
      <ab:VerwerkingsCode>Verwerkt</ab:VerwerkingsCode>
    </ab:Bericht>
    <ab:Bericht>
      <ab:BerichtID>1a2b3c4d-0000-4000-8000-000000000002</ab:BerichtID>
      <ab:VerwerkingsCode>TechnischProbleem</ab:VerwerkingsCode>
      <ab:Reden>bijlage is geen PDF (Volgorde 2)</ab:Reden>
    </ab:Bericht>
  </ab:Uitkomst>
  <ds:Signature><ds:SignedInfo/></ds:Signature>
</ab:Afleverbevestiging>
"""


def ab(tag: str) -> str:
    return f"{{{AB}}}{tag}"


# --- schemas compile -------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_every_schema_compiles_without_network_or_dtd(name: str) -> None:
    assert isinstance(load_schema(name), etree.XMLSchema)


# --- ValidateAbonnementen request/response/faults --------------------------------------------


def test_a_logius_style_request_is_valid(svc_schema: etree.XMLSchema) -> None:
    assert svc_schema.validate(xml(REQUEST)), svc_schema.error_log


def test_a_nil_aanvraag_is_schema_valid_so_the_service_must_refuse_it_itself(
    svc_schema: etree.XMLSchema,
) -> None:
    request = xml(
        f'<svc:ValidateAbonnementen xmlns:svc="{SVC}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        '<svc:validateAbonnementenAanvraag xsi:nil="true"/>'
        "</svc:ValidateAbonnementen>"
    )
    assert svc_schema.validate(request), svc_schema.error_log


def test_a_request_without_klanten_is_invalid(svc_schema: etree.XMLSchema) -> None:
    request = xml(REQUEST)
    klanten = request.find(f".//{{{TYP}}}klanten")
    klanten.getparent().remove(klanten)
    assert not svc_schema.validate(request)


def test_a_request_with_a_rol_other_than_burger_is_invalid(svc_schema: etree.XMLSchema) -> None:
    request = xml(REQUEST.replace("<shr:Rol>Burger</shr:Rol>", "<shr:Rol>Bedrijf</shr:Rol>", 1))
    assert not svc_schema.validate(request)


def test_a_request_with_unqualified_children_is_invalid(svc_schema: etree.XMLSchema) -> None:
    # Logius' schemas are qualified; a client that drops the prefixes is talking to the wrong
    # contract, and accepting it would hide that until it reaches Logius.
    request = xml(
        f'<svc:ValidateAbonnementen xmlns:svc="{SVC}"><validateAbonnementenAanvraag>'
        "<berichtleverancierCode>00000001234567890000</berichtleverancierCode>"
        "<berichtTypeCode>BESLUIT</berichtTypeCode><klanten/>"
        "</validateAbonnementenAanvraag></svc:ValidateAbonnementen>"
    )
    assert not svc_schema.validate(request)


def test_a_response_with_one_abonnement_per_klant_is_valid(svc_schema: etree.XMLSchema) -> None:
    assert svc_schema.validate(xml(RESPONSE)), svc_schema.error_log


def test_a_response_without_isberichtsturen_is_invalid(svc_schema: etree.XMLSchema) -> None:
    response = xml(RESPONSE)
    flag = response.find(f".//{{{TYP}}}isBerichtSturen")
    flag.getparent().remove(flag)
    assert not svc_schema.validate(response)


def test_an_application_fault_detail_is_valid(svc_schema: etree.XMLSchema) -> None:
    detail = xml(
        f'<ApplicationFault xmlns="{SHR}"><Message>Klant 2: BSN faalt de elfproef</Message>'
        "</ApplicationFault>"
    )
    assert svc_schema.validate(detail), svc_schema.error_log


def test_a_dependent_service_fault_detail_is_valid(svc_schema: etree.XMLSchema) -> None:
    detail = xml(
        f'<DependentServiceFault xmlns="{SHR}"><Message>database niet bereikbaar</Message>'
        "</DependentServiceFault>"
    )
    assert svc_schema.validate(detail), svc_schema.error_log


def test_an_application_fault_without_message_is_invalid(svc_schema: etree.XMLSchema) -> None:
    assert not svc_schema.validate(xml(f'<ApplicationFault xmlns="{SHR}"/>'))


# --- Afleverbevestiging ----------------------------------------------------------------------


def test_an_accepted_unsigned_receipt_is_valid(receipt_schema: etree.XMLSchema) -> None:
    assert receipt_schema.validate(xml(RECEIPT)), receipt_schema.error_log


def test_a_signed_batch_receipt_with_part_hashes_is_valid(
    receipt_schema: etree.XMLSchema,
) -> None:
    assert receipt_schema.validate(xml(BATCH_RECEIPT)), receipt_schema.error_log


def test_a_refused_receipt_with_code_and_reason_is_valid(receipt_schema: etree.XMLSchema) -> None:
    receipt = xml(
        RECEIPT.replace(
            "<ab:Geaccepteerd/>",
            "<ab:Geweigerd><ab:Code>0004</ab:Code><ab:Reden>Niet conform xsd</ab:Reden>"
            "</ab:Geweigerd>",
        )
    )
    assert receipt_schema.validate(receipt), receipt_schema.error_log


def test_a_receipt_without_bodyhash_is_invalid(receipt_schema: etree.XMLSchema) -> None:
    receipt = xml(RECEIPT)
    receipt.remove(receipt.find(ab("BodyHash")))
    assert not receipt_schema.validate(receipt)


def test_a_receipt_with_a_19_digit_oin_is_invalid(receipt_schema: etree.XMLSchema) -> None:
    receipt = xml(RECEIPT)
    receipt.find(ab("Afzender")).text = "0000000123456789000"
    assert not receipt_schema.validate(receipt)


def test_a_receipt_with_a_prefixed_oin_is_invalid(receipt_schema: etree.XMLSchema) -> None:
    # The ebMS PartyId form must be stripped before it goes into the receipt.
    receipt = xml(RECEIPT)
    receipt.find(ab("Afzender")).text = "urn:osb:oin:00000001234567890000"
    assert not receipt_schema.validate(receipt)


def test_an_uitkomst_with_all_three_outcomes_is_invalid(receipt_schema: etree.XMLSchema) -> None:
    receipt = xml(RECEIPT)
    uitkomst = receipt.find(ab("Uitkomst"))
    batch = xml(BATCH_RECEIPT)
    refused = etree.SubElement(uitkomst, ab("Geweigerd"))
    etree.SubElement(refused, ab("Code")).text = "0004"
    etree.SubElement(refused, ab("Reden")).text = "Niet conform xsd"
    uitkomst.append(copy.deepcopy(batch.find(f"{ab('Uitkomst')}/{ab('Bericht')}")))
    assert len(uitkomst) == 3
    assert not receipt_schema.validate(receipt)


def test_a_receipt_in_another_namespace_is_invalid(receipt_schema: etree.XMLSchema) -> None:
    receipt = xml(RECEIPT.replace(AB, "urn:mijnoverheid-adapter:afleverbevestiging:2"))
    assert not receipt_schema.validate(receipt)


def test_a_receipt_id_starting_with_a_digit_is_invalid(receipt_schema: etree.XMLSchema) -> None:
    # xs:ID must be an NCName, so a bare UUID cannot be the Id: generators need a prefix.
    receipt = xml(RECEIPT)
    receipt.set("Id", "6f1c2b8e-4a7d-4a55-9a43-2f0e8c1d9b70")
    assert not receipt_schema.validate(receipt)


def test_a_bodyhash_that_is_not_sha256_sized_is_invalid(receipt_schema: etree.XMLSchema) -> None:
    receipt = xml(RECEIPT)
    receipt.find(ab("BodyHash")).text = base64.b64encode(bytes(20)).decode()
    assert not receipt_schema.validate(receipt)


# --- WSDL ------------------------------------------------------------------------------------


def test_zeep_finds_the_validateabonnementen_operation(client: zeep.Client) -> None:
    assert client.wsdl.bindings[BINDING].get("ValidateAbonnementen").name == (
        "ValidateAbonnementen"
    )


def test_the_binding_soapaction_is_the_logius_value(client: zeep.Client) -> None:
    assert client.wsdl.bindings[BINDING].get("ValidateAbonnementen").soapaction == SOAP_ACTION


def test_a_zeep_built_request_body_validates_against_the_service_schema(
    client: zeep.Client, svc_schema: etree.XMLSchema
) -> None:
    envelope = client.create_message(
        client.service,
        "ValidateAbonnementen",
        validateAbonnementenAanvraag={
            "berichtleverancierCode": "00000001234567890000",
            "berichtTypeCode": "BESLUIT",
            "klanten": {"Klant": [{"Key": "999993653", "Rol": "Burger"}]},
        },
    )
    body = envelope.find("{http://schemas.xmlsoap.org/soap/envelope/}Body")
    assert len(body) == 1
    assert svc_schema.validate(body[0]), svc_schema.error_log


def test_zeep_sends_ws_addressing_headers_because_the_wsdl_declares_actions(
    client: zeep.Client,
) -> None:
    # zeep adds wsa:Action/MessageID/To whenever a portType input carries wsam/wsaw:Action, so
    # the server must accept these headers even for organisations that do not require WS-A.
    envelope = client.create_message(
        client.service,
        "ValidateAbonnementen",
        validateAbonnementenAanvraag={
            "berichtleverancierCode": "00000001234567890000",
            "berichtTypeCode": "BESLUIT",
            "klanten": {"Klant": []},
        },
    )
    assert envelope.findtext(f".//{{{WSA}}}Action") == SOAP_ACTION


@pytest.mark.parametrize(
    ("xpath", "action"),
    [
        ("wsdl:input", SOAP_ACTION),
        ("wsdl:output", ACTION_BASE + "ValidateAbonnementenResponse"),
        (
            "wsdl:fault[@name='DependentServiceFaultFault']",
            ACTION_BASE + "ValidateAbonnementenDependentServiceFaultFault",
        ),
        (
            "wsdl:fault[@name='ApplicationFaultFault']",
            ACTION_BASE + "ValidateAbonnementenApplicationFaultFault",
        ),
    ],
)
def test_the_porttype_carries_equal_wsam_and_wsaw_actions(xpath: str, action: str) -> None:
    wsdl = etree.parse(str(WSDL), PARSER)
    (node,) = wsdl.xpath(
        f"/wsdl:definitions/wsdl:portType/wsdl:operation[@name='ValidateAbonnementen']/{xpath}",
        namespaces={"wsdl": WSDL_NS},
    )
    assert node.get(f"{{{WSAM}}}Action") == action
    assert node.get(f"{{{WSAW}}}Action") == action

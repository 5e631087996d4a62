"""Contract tests for the Lopende Zaken WUS and StUF schemas and wsdl/LopendeZaken.wsdl.

These pin our own Lopende Zaken contract (SPEC.md Part B and Part C "Lopende Zaken WUS
contract", "StUF zakLk01") independently of the server code: the WUS request/response/fault
shapes, the SOAPAction and WS-Addressing action values, and the lax StUF-ZKN zakLk01 subset
that must accept what zaaksystemen really send (SPEC.md A 5.2) while still checking the parts
the service relies on.
"""

import copy
from pathlib import Path

import pytest
import zeep
from lxml import etree

ROOT = Path(__file__).parents[1]
XSD = ROOT / "xsd"
WSDL = ROOT / "wsdl" / "LopendeZaken.wsdl"
ZAKLK01_FILE = ROOT / "tests" / "data" / "stuf" / "zakLk01.xml"

LZ = "urn:mijnoverheid-adapter:lopende-zaken:1"
ZKN = "http://www.egem.nl/StUF/sector/zkn/0310"
STUF = "http://www.egem.nl/StUF/StUF0301"
BG = "http://www.egem.nl/StUF/sector/bg/0310"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XS = "http://www.w3.org/2001/XMLSchema"
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
WSAM = "http://www.w3.org/2007/05/addressing/metadata"
WSAW = "http://www.w3.org/2006/05/addressing/wsdl"
WSA = "http://www.w3.org/2005/08/addressing"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"

BINDING = f"{{{LZ}}}LopendeZakenBinding"
OPERATIONS = ["ZaakAanleveren", "StatusAanleveren", "ZaakAfsluiten", "ZakenOpvragen"]
FAULT_CODES = [f"LZ{n:03d}" for n in range(1, 11)]

# The same hardening the server uses: a schema that needs a DTD or the network must fail here.
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)

SCHEMA_FILES = [
    "lopende-zaken.xsd",
    "lopende-zaken-with-deprecated.xsd",
    "stuf-zkn-zakLk01.xsd",
    "stuf-0301-subset.xsd",
    "stuf-bg-subset.xsd",
]

NS = {"lz": LZ, "zkn": ZKN, "StUF": STUF, "BG": BG, "xs": XS, "wsdl": WSDL_NS}


def load_schema(name: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD / name), PARSER))


def xml(text: str) -> etree._Element:
    return etree.fromstring(text.strip().encode(), PARSER)


def one(node: etree._Element, path: str) -> etree._Element:
    (found,) = node.xpath(path, namespaces=NS)
    return found


def remove(node: etree._Element, path: str) -> etree._Element:
    found = one(node, path)
    found.getparent().remove(found)
    return node


@pytest.fixture(scope="module")
def lz_schema() -> etree.XMLSchema:
    return load_schema("lopende-zaken.xsd")


@pytest.fixture(scope="module")
def stuf_schema() -> etree.XMLSchema:
    return load_schema("stuf-zkn-zakLk01.xsd")


@pytest.fixture(scope="module")
def stuf_base_schema() -> etree.XMLSchema:
    return load_schema("stuf-0301-subset.xsd")


@pytest.fixture(scope="module")
def client() -> zeep.Client:
    return zeep.Client(str(WSDL))


@pytest.fixture
def zaklk01() -> etree._Element:
    return etree.parse(str(ZAKLK01_FILE), PARSER).getroot()


# --- WUS samples -----------------------------------------------------------------------------

ZAAK_AANLEVEREN = f"""
<lz:ZaakAanleveren xmlns:lz="{LZ}">
  <lz:zaak>
    <lz:identificatie>190010457</lz:identificatie>
    <lz:omschrijving>Aanvraag omgevingsvergunning Dorpsstraat 1</lz:omschrijving>
    <lz:toelichting>Verbouwing van de woning</lz:toelichting>
    <lz:zaaktype>
      <lz:code>B1210</lz:code>
      <lz:omschrijving>Omgevingsvergunning</lz:omschrijving>
    </lz:zaaktype>
    <lz:startdatum>2026-01-10</lz:startdatum>
    <lz:einddatumGepland>2026-03-01</lz:einddatumGepland>
    <lz:verwijzing>https://zaken.voorbeeldstad.example/zaak/190010457</lz:verwijzing>
    <lz:initiator><lz:bsn>999993653</lz:bsn></lz:initiator>
    <lz:status>
      <lz:code>ONTV</lz:code>
      <lz:omschrijving>Aanvraag ontvangen</lz:omschrijving>
      <lz:datumStatusGezet>2026-01-15T09:30:00</lz:datumStatusGezet>
    </lz:status>
  </lz:zaak>
</lz:ZaakAanleveren>
"""

ZAAK_AANLEVEREN_MINIMAL = f"""
<ZaakAanleveren xmlns="{LZ}">
  <zaak>
    <identificatie>Z-1</identificatie>
    <omschrijving>Melding openbare ruimte</omschrijving>
    <startdatum>2026-01-10</startdatum>
    <initiator><bsn>999993653</bsn></initiator>
  </zaak>
</ZaakAanleveren>
"""

STATUS_AANLEVEREN = f"""
<lz:StatusAanleveren xmlns:lz="{LZ}">
  <lz:identificatie>190010457</lz:identificatie>
  <lz:status>
    <lz:omschrijving>In behandeling</lz:omschrijving>
    <lz:datumStatusGezet>2026-01-20T14:05:00+01:00</lz:datumStatusGezet>
  </lz:status>
</lz:StatusAanleveren>
"""

ZAAK_AFSLUITEN = f"""
<lz:ZaakAfsluiten xmlns:lz="{LZ}">
  <lz:identificatie>190010457</lz:identificatie>
  <lz:einddatum>2026-02-27</lz:einddatum>
  <lz:resultaatOmschrijving>Verleend</lz:resultaatOmschrijving>
</lz:ZaakAfsluiten>
"""

ZAKEN_OPVRAGEN = f"""
<lz:ZakenOpvragen xmlns:lz="{LZ}"><lz:bsn>999993653</lz:bsn></lz:ZakenOpvragen>
"""

ZAKEN_OPVRAGEN_RESPONSE = f"""
<lz:ZakenOpvragenResponse xmlns:lz="{LZ}">
  <lz:zaak>
    <lz:identificatie>190010457</lz:identificatie>
    <lz:omschrijving>Aanvraag omgevingsvergunning Dorpsstraat 1</lz:omschrijving>
    <lz:zaaktype><lz:code>B1210</lz:code></lz:zaaktype>
    <lz:startdatum>2026-01-10</lz:startdatum>
    <lz:einddatum>2026-02-27</lz:einddatum>
    <lz:resultaat>Verleend</lz:resultaat>
    <lz:initiator><lz:bsn>999993653</lz:bsn></lz:initiator>
    <lz:status>
      <lz:omschrijving>Besluit genomen</lz:omschrijving>
      <lz:datumStatusGezet>2026-02-27T10:00:00+01:00</lz:datumStatusGezet>
    </lz:status>
    <lz:statushistorie>
      <lz:status>
        <lz:code>ONTV</lz:code>
        <lz:omschrijving>Aanvraag ontvangen</lz:omschrijving>
        <lz:datumStatusGezet>2026-01-15T09:30:00+01:00</lz:datumStatusGezet>
      </lz:status>
      <lz:status>
        <lz:omschrijving>Besluit genomen</lz:omschrijving>
        <lz:datumStatusGezet>2026-02-27T10:00:00+01:00</lz:datumStatusGezet>
      </lz:status>
    </lz:statushistorie>
  </lz:zaak>
  <lz:zaak>
    <lz:identificatie>Z-1</lz:identificatie>
    <lz:omschrijving>Melding openbare ruimte</lz:omschrijving>
    <lz:startdatum>2026-01-10</lz:startdatum>
    <lz:initiator><lz:bsn>999993653</lz:bsn></lz:initiator>
    <lz:statushistorie/>
  </lz:zaak>
</lz:ZakenOpvragenResponse>
"""


def verwerking(element: str, resultaat: str) -> str:
    return (
        f'<lz:{element} xmlns:lz="{LZ}"><lz:identificatie>190010457</lz:identificatie>'
        f"<lz:resultaat>{resultaat}</lz:resultaat></lz:{element}>"
    )


# --- StUF samples ----------------------------------------------------------------------------

BV01 = f"""
<StUF:Bv01Bericht xmlns:StUF="{STUF}">
  <StUF:stuurgegevens>
    <StUF:berichtcode>Bv01</StUF:berichtcode>
    <StUF:zender>
      <StUF:organisatie>00000004003214345001</StUF:organisatie>
      <StUF:applicatie>MijnOverheid</StUF:applicatie>
      <StUF:administratie>Lopende zaken</StUF:administratie>
    </StUF:zender>
    <StUF:ontvanger>
      <StUF:organisatie>00000099000000002000</StUF:organisatie>
      <StUF:applicatie>Zaaksysteem</StUF:applicatie>
      <StUF:administratie>Zaken</StUF:administratie>
    </StUF:ontvanger>
    <StUF:referentienummer>0d9e8f7a-6b5c-4d3e-8f2a-1b0c9d8e7f6a</StUF:referentienummer>
    <StUF:tijdstipBericht>20260115093000456</StUF:tijdstipBericht>
    <StUF:crossRefnummer>5b8f2c1e-7d3a-4e9b-a6f0-3c2d1e0f9a8b</StUF:crossRefnummer>
  </StUF:stuurgegevens>
</StUF:Bv01Bericht>
"""

FO01 = f"""
<StUF:Fo01Bericht xmlns:StUF="{STUF}">
  <StUF:stuurgegevens>
    <StUF:berichtcode>Fo01</StUF:berichtcode>
    <StUF:zender>
      <StUF:organisatie>00000004003214345001</StUF:organisatie>
      <StUF:applicatie>MijnOverheid</StUF:applicatie>
    </StUF:zender>
    <StUF:ontvanger>
      <StUF:organisatie>00000099000000002000</StUF:organisatie>
      <StUF:applicatie>Zaaksysteem</StUF:applicatie>
    </StUF:ontvanger>
    <StUF:referentienummer>1e0f9a8b-5b8f-4c1e-9d3a-7e9ba6f03c2d</StUF:referentienummer>
    <StUF:tijdstipBericht>20260115093000456</StUF:tijdstipBericht>
    <StUF:crossRefnummer>5b8f2c1e-7d3a-4e9b-a6f0-3c2d1e0f9a8b</StUF:crossRefnummer>
  </StUF:stuurgegevens>
  <StUF:body>
    <StUF:code>LZ002</StUF:code>
    <StUF:plek>client</StUF:plek>
    <StUF:omschrijving>BSN faalt de elfproef</StUF:omschrijving>
    <StUF:details>heeftAlsInitiator/gerelateerde/natuurlijkPersoon/inp.bsn</StUF:details>
  </StUF:body>
</StUF:Fo01Bericht>
"""


# --- schemas compile -------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_every_schema_compiles_without_network_or_dtd(name: str) -> None:
    assert isinstance(load_schema(name), etree.XMLSchema)


def test_every_fault_code_is_documented_in_the_schema() -> None:
    schema = etree.parse(str(XSD / "lopende-zaken.xsd"), PARSER)
    values = schema.xpath("//xs:simpleType[@name='FoutCode']//xs:enumeration", namespaces=NS)
    assert [v.get("value") for v in values] == FAULT_CODES
    for value in values:
        text = value.findtext(f"{{{XS}}}annotation/{{{XS}}}documentation")
        assert text and text.strip(), value.get("value")


# --- WUS requests ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_xml",
    [ZAAK_AANLEVEREN, ZAAK_AANLEVEREN_MINIMAL, STATUS_AANLEVEREN, ZAAK_AFSLUITEN, ZAKEN_OPVRAGEN],
    ids=[
        "ZaakAanleveren",
        "ZaakAanleveren-minimal",
        "StatusAanleveren",
        "ZaakAfsluiten",
        "ZakenOpvragen",
    ],
)
def test_a_valid_request_validates(lz_schema: etree.XMLSchema, request_xml: str) -> None:
    assert lz_schema.validate(xml(request_xml)), lz_schema.error_log


def test_zaakafsluiten_without_resultaat_omschrijving_is_valid(lz_schema: etree.XMLSchema) -> None:
    assert lz_schema.validate(remove(xml(ZAAK_AFSLUITEN), "lz:resultaatOmschrijving")), (
        lz_schema.error_log
    )


def deprecated_zaak_afsluiten() -> etree._Element:
    """ZaakAfsluiten as the first contract had it: resultaat, not resultaatOmschrijving."""
    request = xml(ZAAK_AFSLUITEN)
    one(request, "lz:resultaatOmschrijving").tag = f"{{{LZ}}}resultaat"
    return request


def test_the_published_schema_no_longer_has_the_deprecated_resultaat_of_zaakafsluiten(
    lz_schema: etree.XMLSchema,
) -> None:
    assert not lz_schema.validate(deprecated_zaak_afsluiten())


def test_the_schema_requests_are_validated_against_still_accepts_the_deprecated_name() -> None:
    schema = load_schema("lopende-zaken-with-deprecated.xsd")
    assert schema.validate(deprecated_zaak_afsluiten()), schema.error_log
    assert schema.validate(xml(ZAAK_AFSLUITEN)), schema.error_log
    for request_xml in (ZAAK_AANLEVEREN, STATUS_AANLEVEREN, ZAKEN_OPVRAGEN):
        assert schema.validate(xml(request_xml)), schema.error_log


def test_request_and_answer_of_an_operation_share_no_child_name_of_another_type() -> None:
    """Wrapper-style generators (wsimport, wsdl2java) map the children of request and answer
    to one method's parameters; a name in both must have one type (it becomes a Holder)."""
    schema = etree.parse(str(XSD / "lopende-zaken.xsd"), PARSER).getroot()

    def children(element_name: str) -> dict[str, str]:
        element = one(schema, f"xs:element[@name='{element_name}']")
        type_name = (element.get("type") or "").removeprefix("lz:")
        holder = one(schema, f"xs:complexType[@name='{type_name}']") if type_name else element
        return {
            child.get("name"): child.get("type") or "anonymous"
            for child in holder.iterfind(f".//{{{XS}}}sequence/{{{XS}}}element")
        }

    for operation in OPERATIONS:
        request, answer = children(operation), children(f"{operation}Response")
        clashes = {n for n in request.keys() & answer.keys() if request[n] != answer[n]}
        assert not clashes, (operation, clashes)


@pytest.mark.parametrize(
    ("request_xml", "path"),
    [
        (ZAAK_AANLEVEREN, "lz:zaak/lz:identificatie"),
        (ZAAK_AANLEVEREN, "lz:zaak/lz:omschrijving"),
        (ZAAK_AANLEVEREN, "lz:zaak/lz:startdatum"),
        (ZAAK_AANLEVEREN, "lz:zaak/lz:initiator"),
        (ZAAK_AANLEVEREN, "lz:zaak/lz:status/lz:datumStatusGezet"),
        (STATUS_AANLEVEREN, "lz:identificatie"),
        (STATUS_AANLEVEREN, "lz:status/lz:omschrijving"),
        (ZAAK_AFSLUITEN, "lz:identificatie"),
        (ZAAK_AFSLUITEN, "lz:einddatum"),
        (ZAKEN_OPVRAGEN, "lz:bsn"),
    ],
)
def test_a_request_without_a_required_element_is_invalid(
    lz_schema: etree.XMLSchema, request_xml: str, path: str
) -> None:
    assert not lz_schema.validate(remove(xml(request_xml), path))


@pytest.mark.parametrize("bsn", ["99999365", "9999936530", "99999365a", " 999993653", ""])
def test_a_bsn_that_is_not_nine_digits_is_invalid(lz_schema: etree.XMLSchema, bsn: str) -> None:
    request = xml(ZAAK_AANLEVEREN)
    one(request, "lz:zaak/lz:initiator/lz:bsn").text = bsn
    assert not lz_schema.validate(request)
    query = xml(ZAKEN_OPVRAGEN)
    one(query, "lz:bsn").text = bsn
    assert not lz_schema.validate(query)


def test_a_bsn_failing_the_elfproef_is_schema_valid_so_the_service_must_refuse_it(
    lz_schema: etree.XMLSchema,
) -> None:
    query = xml(ZAKEN_OPVRAGEN)
    one(query, "lz:bsn").text = "123456789"
    assert lz_schema.validate(query), lz_schema.error_log


def test_a_plain_http_verwijzing_is_schema_valid_so_the_service_must_refuse_it(
    lz_schema: etree.XMLSchema,
) -> None:
    request = xml(ZAAK_AANLEVEREN)
    one(request, "lz:zaak/lz:verwijzing").text = "http://zaken.voorbeeldstad.example/zaak/1"
    assert lz_schema.validate(request), lz_schema.error_log


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("lz:zaak/lz:identificatie", ""),
        ("lz:zaak/lz:identificatie", "x" * 41),
        ("lz:zaak/lz:omschrijving", "x" * 81),
        ("lz:zaak/lz:toelichting", "x" * 1001),
        ("lz:zaak/lz:zaaktype/lz:code", "x" * 21),
        ("lz:zaak/lz:startdatum", "20260110"),
        ("lz:zaak/lz:status/lz:omschrijving", ""),
        ("lz:zaak/lz:status/lz:datumStatusGezet", "2026-01-15"),
        ("lz:zaak/lz:status/lz:datumStatusGezet", "20260115093000"),
    ],
)
def test_a_value_breaking_its_type_is_invalid(
    lz_schema: etree.XMLSchema, path: str, value: str
) -> None:
    request = xml(ZAAK_AANLEVEREN)
    one(request, path).text = value
    assert not lz_schema.validate(request)


def test_a_request_in_another_namespace_is_invalid(lz_schema: etree.XMLSchema) -> None:
    other = ZAAK_AANLEVEREN_MINIMAL.replace(LZ, "urn:mijnoverheid-adapter:lopende-zaken:2")
    assert not lz_schema.validate(xml(other))


def test_a_request_with_unqualified_children_is_invalid(lz_schema: etree.XMLSchema) -> None:
    request = xml(f'<lz:ZakenOpvragen xmlns:lz="{LZ}"><bsn>999993653</bsn></lz:ZakenOpvragen>')
    assert not lz_schema.validate(request)


def test_fields_out_of_order_are_invalid(lz_schema: etree.XMLSchema) -> None:
    request = xml(ZAAK_AANLEVEREN_MINIMAL)
    zaak = one(request, "lz:zaak")
    zaak.append(one(zaak, "lz:identificatie"))  # lxml moves the node to the end
    assert not lz_schema.validate(request)


# --- WUS responses and faults ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("element", "resultaat"),
    [
        ("ZaakAanleverenResponse", "Aangemaakt"),
        ("ZaakAanleverenResponse", "Bijgewerkt"),
        ("StatusAanleverenResponse", "StatusToegevoegd"),
        ("StatusAanleverenResponse", "StatusAlBekend"),
        ("StatusAanleverenResponse", "StatusOuderDanHuidige"),
        ("ZaakAfsluitenResponse", "Afgesloten"),
    ],
)
def test_a_response_with_a_known_resultaat_is_valid(
    lz_schema: etree.XMLSchema, element: str, resultaat: str
) -> None:
    assert lz_schema.validate(xml(verwerking(element, resultaat))), lz_schema.error_log


def test_a_response_with_an_unknown_resultaat_is_invalid(lz_schema: etree.XMLSchema) -> None:
    assert not lz_schema.validate(xml(verwerking("StatusAanleverenResponse", "Dubbel")))


def test_a_response_without_identificatie_is_invalid(lz_schema: etree.XMLSchema) -> None:
    response = xml(verwerking("ZaakAanleverenResponse", "Aangemaakt"))
    assert not lz_schema.validate(remove(response, "lz:identificatie"))


def test_zakenopvragen_response_with_history_is_valid(lz_schema: etree.XMLSchema) -> None:
    assert lz_schema.validate(xml(ZAKEN_OPVRAGEN_RESPONSE)), lz_schema.error_log


def test_an_empty_zakenopvragen_response_is_valid(lz_schema: etree.XMLSchema) -> None:
    empty = xml(f'<lz:ZakenOpvragenResponse xmlns:lz="{LZ}"/>')
    assert lz_schema.validate(empty), lz_schema.error_log


def test_a_zaakoverzicht_without_statushistorie_is_invalid(lz_schema: etree.XMLSchema) -> None:
    response = xml(ZAKEN_OPVRAGEN_RESPONSE)
    assert not lz_schema.validate(remove(response, "lz:zaak[2]/lz:statushistorie"))


@pytest.mark.parametrize("code", FAULT_CODES)
def test_an_application_fault_with_each_code_is_valid(
    lz_schema: etree.XMLSchema, code: str
) -> None:
    detail = xml(
        f'<ApplicationFault xmlns="{LZ}"><Code>{code}</Code><Message>reden</Message>'
        "</ApplicationFault>"
    )
    assert lz_schema.validate(detail), lz_schema.error_log


@pytest.mark.parametrize(
    "detail_xml",
    [
        f'<ApplicationFault xmlns="{LZ}"><Code>LZ999</Code><Message>x</Message></ApplicationFault>',
        f'<ApplicationFault xmlns="{LZ}"><Code>LZ001</Code></ApplicationFault>',
        f'<ApplicationFault xmlns="{LZ}"><Message>x</Message></ApplicationFault>',
        f'<DependentServiceFault xmlns="{LZ}"/>',
    ],
)
def test_an_incomplete_or_unknown_fault_detail_is_invalid(
    lz_schema: etree.XMLSchema, detail_xml: str
) -> None:
    assert not lz_schema.validate(xml(detail_xml))


def test_a_dependent_service_fault_detail_is_valid(lz_schema: etree.XMLSchema) -> None:
    detail = xml(
        f'<DependentServiceFault xmlns="{LZ}"><Message>database niet bereikbaar</Message>'
        "</DependentServiceFault>"
    )
    assert lz_schema.validate(detail), lz_schema.error_log


# --- WSDL ------------------------------------------------------------------------------------


@pytest.mark.parametrize("operation", OPERATIONS)
def test_zeep_finds_each_operation_with_its_soapaction(client: zeep.Client, operation: str) -> None:
    binding = client.wsdl.bindings[BINDING]
    assert binding.get(operation).soapaction == f"{LZ}/{operation}"


def test_the_binding_has_exactly_the_four_operations(client: zeep.Client) -> None:
    assert sorted(client.wsdl.bindings[BINDING].all()) == sorted(OPERATIONS)


def test_the_service_port_has_the_development_address(client: zeep.Client) -> None:
    service = client.wsdl.services["LopendeZakenService"]
    (port,) = service.ports.values()
    assert port.binding_options["address"] == "https://127.0.0.1:8443/lopende-zaken"


def test_the_wsdl_imports_the_schema_by_relative_path() -> None:
    wsdl = etree.parse(str(WSDL), PARSER)
    (location,) = wsdl.xpath("//wsdl:types//xs:import/@schemaLocation", namespaces=NS)
    assert location == "../xsd/lopende-zaken.xsd"


def test_a_zeep_built_zaakaanleveren_body_validates(
    client: zeep.Client, lz_schema: etree.XMLSchema
) -> None:
    envelope = client.create_message(
        client.service,
        "ZaakAanleveren",
        zaak={
            "identificatie": "190010457",
            "omschrijving": "Aanvraag omgevingsvergunning",
            "zaaktype": {"code": "B1210", "omschrijving": "Omgevingsvergunning"},
            "startdatum": "2026-01-10",
            "verwijzing": "https://zaken.voorbeeldstad.example/zaak/190010457",
            "initiator": {"bsn": "999993653"},
            "status": {
                "omschrijving": "Aanvraag ontvangen",
                "datumStatusGezet": "2026-01-15T09:30:00",
            },
        },
    )
    body = envelope.find(f"{{{SOAP_ENV}}}Body")
    assert len(body) == 1
    assert body[0].tag == f"{{{LZ}}}ZaakAanleveren"
    assert lz_schema.validate(body[0]), lz_schema.error_log
    assert envelope.findtext(f".//{{{WSA}}}Action") == f"{LZ}/ZaakAanleveren"


@pytest.mark.parametrize(
    ("operation", "operation_args"),
    [
        (
            "StatusAanleveren",
            {
                "identificatie": "190010457",
                "status": {
                    "omschrijving": "In behandeling",
                    "datumStatusGezet": "2026-01-20T14:05:00",
                },
            },
        ),
        ("ZaakAfsluiten", {"identificatie": "190010457", "einddatum": "2026-02-27"}),
        ("ZakenOpvragen", {"bsn": "999993653"}),
    ],
)
def test_zeep_built_bodies_of_the_other_operations_validate(
    client: zeep.Client, lz_schema: etree.XMLSchema, operation: str, operation_args: dict
) -> None:
    envelope = client.create_message(client.service, operation, **operation_args)
    body = envelope.find(f"{{{SOAP_ENV}}}Body")
    assert lz_schema.validate(body[0]), lz_schema.error_log


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize(
    ("xpath", "suffix"),
    [
        ("wsdl:input", ""),
        ("wsdl:output", "Response"),
        ("wsdl:fault[@name='ApplicationFault']", "ApplicationFault"),
        ("wsdl:fault[@name='DependentServiceFault']", "DependentServiceFault"),
    ],
)
def test_the_porttype_carries_equal_wsam_and_wsaw_actions(
    operation: str, xpath: str, suffix: str
) -> None:
    wsdl = etree.parse(str(WSDL), PARSER)
    (node,) = wsdl.xpath(
        f"/wsdl:definitions/wsdl:portType[@name='LopendeZaken']"
        f"/wsdl:operation[@name='{operation}']/{xpath}",
        namespaces=NS,
    )
    action = f"{LZ}/{operation}{suffix}"
    assert node.get(f"{{{WSAM}}}Action") == action
    assert node.get(f"{{{WSAW}}}Action") == action


# --- StUF zakLk01 ----------------------------------------------------------------------------


def test_the_realistic_zaklk01_is_valid(
    stuf_schema: etree.XMLSchema, zaklk01: etree._Element
) -> None:
    assert stuf_schema.validate(zaklk01), stuf_schema.error_log


def test_the_sample_carries_an_undeclared_zkn_element_and_a_nil_isvan(
    zaklk01: etree._Element,
) -> None:
    # Guards the sample itself: it must keep exercising the lax parts of the schema.
    assert one(zaklk01, "zkn:object/zkn:registratiedatum").text == "20260110"
    is_van = one(zaklk01, "zkn:object/zkn:isVan")
    assert is_van.get(f"{{{XSI}}}nil") == "true"
    assert is_van.get(f"{{{STUF}}}noValue") == "waardeOnbekend"


def test_unknown_elements_and_attributes_anywhere_are_accepted(
    stuf_schema: etree.XMLSchema, zaklk01: etree._Element
) -> None:
    status = one(zaklk01, "zkn:object/zkn:heeft/zkn:gerelateerde")
    etree.SubElement(status, f"{{{ZKN}}}toelichting").text = "Uw aanvraag is compleet"
    etree.SubElement(status, "{urn:example:eigen}kleur").text = "groen"
    one(zaklk01, "zkn:object").set("{urn:example:eigen}bron", "import")
    etree.SubElement(one(zaklk01, "zkn:object"), f"{{{ZKN}}}archiefnominatie").text = "N"
    etree.SubElement(one(zaklk01, "zkn:parameters"), f"{{{STUF}}}onbekend").text = "x"
    assert stuf_schema.validate(zaklk01), stuf_schema.error_log


def test_a_closing_zaklk01_with_einddatum_and_resultaat_is_valid(
    stuf_schema: etree.XMLSchema, zaklk01: etree._Element
) -> None:
    obj = one(zaklk01, "zkn:object")
    resultaat = etree.Element(f"{{{ZKN}}}resultaat")
    etree.SubElement(resultaat, f"{{{ZKN}}}omschrijving").text = "Verleend"
    obj.insert(3, resultaat)
    etree.SubElement(obj, f"{{{ZKN}}}einddatum").text = "20260227"
    one(zaklk01, "zkn:parameters/StUF:mutatiesoort").text = "W"
    assert stuf_schema.validate(zaklk01), stuf_schema.error_log


def test_a_12_digit_datumstatusgezet_is_valid(
    stuf_schema: etree.XMLSchema, zaklk01: etree._Element
) -> None:
    one(zaklk01, "zkn:object/zkn:heeft/zkn:datumStatusGezet").text = "202601150930"
    assert stuf_schema.validate(zaklk01), stuf_schema.error_log


def test_a_zaklk01_without_identificatie_is_invalid(
    stuf_schema: etree.XMLSchema, zaklk01: etree._Element
) -> None:
    assert not stuf_schema.validate(remove(zaklk01, "zkn:object/zkn:identificatie"))


@pytest.mark.parametrize("value", ["", "x" * 41])
def test_an_empty_or_too_long_identificatie_is_invalid(
    stuf_schema: etree.XMLSchema, zaklk01: etree._Element, value: str
) -> None:
    one(zaklk01, "zkn:object/zkn:identificatie").text = value
    assert not stuf_schema.validate(zaklk01)


def test_a_nil_identificatie_is_invalid(
    stuf_schema: etree.XMLSchema, zaklk01: etree._Element
) -> None:
    identificatie = one(zaklk01, "zkn:object/zkn:identificatie")
    identificatie.text = None
    identificatie.set(f"{{{XSI}}}nil", "true")
    assert not stuf_schema.validate(zaklk01)


def test_identificatie_must_be_the_first_child_of_the_object(
    stuf_schema: etree.XMLSchema, zaklk01: etree._Element
) -> None:
    obj = one(zaklk01, "zkn:object")
    obj.append(copy.deepcopy(one(obj, "zkn:identificatie")))
    remove(zaklk01, "zkn:object/zkn:identificatie[1]")
    assert not stuf_schema.validate(zaklk01)


@pytest.mark.parametrize("berichtcode", ["Lk02", "Bv01", "La01"])
def test_a_berichtcode_other_than_lk01_is_invalid(
    stuf_schema: etree.XMLSchema, zaklk01: etree._Element, berichtcode: str
) -> None:
    one(zaklk01, "zkn:stuurgegevens/StUF:berichtcode").text = berichtcode
    assert not stuf_schema.validate(zaklk01)


@pytest.mark.parametrize(
    "path",
    ["zkn:stuurgegevens/StUF:entiteittype", "zkn:object/@StUF:entiteittype"],
)
def test_an_entiteittype_other_than_zak_is_invalid(
    stuf_schema: etree.XMLSchema, zaklk01: etree._Element, path: str
) -> None:
    if "@" in path:
        one(zaklk01, "zkn:object").set(f"{{{STUF}}}entiteittype", "ZKT")
    else:
        one(zaklk01, path).text = "NPS"
    assert not stuf_schema.validate(zaklk01)


def test_an_object_without_entiteittype_is_invalid(
    stuf_schema: etree.XMLSchema, zaklk01: etree._Element
) -> None:
    del one(zaklk01, "zkn:object").attrib[f"{{{STUF}}}entiteittype"]
    assert not stuf_schema.validate(zaklk01)


@pytest.mark.parametrize(
    "path",
    [
        "zkn:stuurgegevens",
        "zkn:parameters",
        "zkn:object",
        "zkn:stuurgegevens/StUF:referentienummer",
        "zkn:stuurgegevens/StUF:zender",
        "zkn:parameters/StUF:mutatiesoort",
    ],
)
def test_a_zaklk01_missing_a_required_part_is_invalid(
    stuf_schema: etree.XMLSchema, zaklk01: etree._Element, path: str
) -> None:
    assert not stuf_schema.validate(remove(zaklk01, path))


def test_another_root_element_is_invalid(
    stuf_schema: etree.XMLSchema, zaklk01: etree._Element
) -> None:
    zaklk01.tag = f"{{{ZKN}}}zakLk02"
    assert not stuf_schema.validate(zaklk01)


def test_a_zaklk01_in_another_sector_namespace_is_invalid(stuf_schema: etree.XMLSchema) -> None:
    text = ZAKLK01_FILE.read_text(encoding="utf-8").replace(
        ZKN, "http://www.egem.nl/StUF/sector/zkn/0204"
    )
    assert not stuf_schema.validate(etree.fromstring(text.encode(), PARSER))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("zkn:object/zkn:startdatum", "2026-01-10"),
        ("zkn:object/zkn:einddatumGepland", "202603"),
        ("zkn:object/zkn:heeft/zkn:datumStatusGezet", "2026011509"),
        ("zkn:object/zkn:heeft/zkn:datumStatusGezet", "2026-01-15T09:30:00"),
        (
            "zkn:object/zkn:heeftAlsInitiator/zkn:gerelateerde/zkn:natuurlijkPersoon/BG:inp.bsn",
            "99999365",
        ),
        (
            "zkn:object/zkn:heeftAlsInitiator/zkn:gerelateerde/zkn:natuurlijkPersoon"
            "/BG:geslachtsaanduiding",
            "X",
        ),
        (
            "zkn:object/zkn:heeftAlsInitiator/zkn:gerelateerde/zkn:natuurlijkPersoon/BG:geboortedatum",
            "1980-01-01",
        ),
        ("zkn:stuurgegevens/StUF:tijdstipBericht", "2026-01-15"),
        ("zkn:parameters/StUF:indicatorOvername", "X"),
    ],
)
def test_a_known_element_with_a_bad_format_is_invalid(
    stuf_schema: etree.XMLSchema, zaklk01: etree._Element, path: str, value: str
) -> None:
    one(zaklk01, path).text = value
    assert not stuf_schema.validate(zaklk01)


def test_a_known_element_is_checked_even_where_it_is_not_expected(
    stuf_schema: etree.XMLSchema, zaklk01: etree._Element
) -> None:
    # Lax wildcards validate every globally declared element wherever it appears.
    onbekend = etree.SubElement(one(zaklk01, "zkn:object"), f"{{{ZKN}}}onbekend")
    etree.SubElement(onbekend, f"{{{ZKN}}}startdatum").text = "10-01-2026"
    assert not stuf_schema.validate(zaklk01)


def test_an_unknown_novalue_is_invalid(
    stuf_schema: etree.XMLSchema, zaklk01: etree._Element
) -> None:
    one(zaklk01, "zkn:object/zkn:isVan").set(f"{{{STUF}}}noValue", "onbekend")
    assert not stuf_schema.validate(zaklk01)


def test_an_extra_element_without_naam_is_invalid(
    stuf_schema: etree.XMLSchema, zaklk01: etree._Element
) -> None:
    del one(zaklk01, "zkn:object/StUF:extraElementen/StUF:extraElement").attrib["naam"]
    assert not stuf_schema.validate(zaklk01)


def test_a_relation_without_gerelateerde_is_invalid(
    stuf_schema: etree.XMLSchema, zaklk01: etree._Element
) -> None:
    assert not stuf_schema.validate(remove(zaklk01, "zkn:object/zkn:heeft/zkn:gerelateerde"))


def test_two_objects_are_accepted(stuf_schema: etree.XMLSchema, zaklk01: etree._Element) -> None:
    # StUF sends the old and the new state of a zaak as two objects (verwerkingssoort W).
    zaklk01.append(copy.deepcopy(one(zaklk01, "zkn:object")))
    assert stuf_schema.validate(zaklk01), stuf_schema.error_log


# --- StUF answers ----------------------------------------------------------------------------


def test_a_bv01_is_valid(stuf_base_schema: etree.XMLSchema) -> None:
    assert stuf_base_schema.validate(xml(BV01)), stuf_base_schema.error_log


def test_a_bv01_is_valid_against_the_zakLk01_schema_set_too(stuf_schema: etree.XMLSchema) -> None:
    assert stuf_schema.validate(xml(BV01)), stuf_schema.error_log


def test_a_bv01_without_crossrefnummer_is_invalid(stuf_base_schema: etree.XMLSchema) -> None:
    assert not stuf_base_schema.validate(
        remove(xml(BV01), "StUF:stuurgegevens/StUF:crossRefnummer")
    )


def test_a_bv01_with_another_berichtcode_is_invalid(stuf_base_schema: etree.XMLSchema) -> None:
    assert not stuf_base_schema.validate(xml(BV01.replace(">Bv01<", ">Fo01<")))


@pytest.mark.parametrize("code", ["LZ002", "StUF001"])
def test_a_fo01_is_valid(stuf_base_schema: etree.XMLSchema, code: str) -> None:
    assert stuf_base_schema.validate(xml(FO01.replace(">LZ002<", f">{code}<"))), (
        stuf_base_schema.error_log
    )


def test_a_fo01_without_details_or_crossrefnummer_is_valid(
    stuf_base_schema: etree.XMLSchema,
) -> None:
    fo01 = remove(xml(FO01), "StUF:body/StUF:details")
    remove(fo01, "StUF:stuurgegevens/StUF:crossRefnummer")
    assert stuf_base_schema.validate(fo01), stuf_base_schema.error_log


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("<StUF:plek>client</StUF:plek>", "<StUF:plek>elders</StUF:plek>"),
        (">LZ002<", ">E42<"),
        (">Fo01<", ">Bv01<"),
        ("<StUF:omschrijving>BSN faalt de elfproef</StUF:omschrijving>", ""),
    ],
)
def test_an_invalid_fo01_is_invalid(stuf_base_schema: etree.XMLSchema, old: str, new: str) -> None:
    assert old in FO01
    assert not stuf_base_schema.validate(xml(FO01.replace(old, new)))

"""Contract tests for the BerichtVerwerkService schemas and the sample builders.

These pin the batch request (`Berichten`, SPEC.md A 1.2-1.3 and A 4.1), our optional
`AlgemeneBijlagen` extension (Part B "general attachments", Part C "BerichtVerwerk details") and
the batch result (`BerichtVerwerkResponse`, A 1.4-1.6) independently of the server code. Counts
are schema rules (Part C "What nothing stored means"), so too many attachments must fail here;
sizes and the PDF check are the service's and are not tested here.
"""

import copy
import re
from pathlib import Path

import pytest
from lxml import etree

from tests.berichtverwerk_samples import (
    BBX,
    BER,
    BV,
    MINIMAL_PDF_SIZE,
    NIL_GUID,
    RES,
    batch_xml,
    minimal_pdf,
)

ROOT = Path(__file__).parents[1]
XSD = ROOT / "xsd"

# The same hardening the server uses: a schema that needs a DTD or the network must fail here.
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)

SCHEMA_FILES = [
    "GLOBEBatchRequest.xsd",
    "GLOBEBatchRequestTypes.xsd",
    "berichtenbox-extensie.xsd",
    "GLOBEBatchResponse.xsd",
    "GLOBEBatchResponseTypes.xsd",
]

NS = {"bv": BV, "ber": BER, "bbx": BBX, "res": RES}

BATCH_ID = "5d0c6b1e-2f3a-4b5c-8d9e-0a1b2c3d4e5f"
BERICHT_1 = "1a2b3c4d-0000-4000-8000-000000000001"
BERICHT_2 = "1a2b3c4d-0000-4000-8000-000000000002"
PDF = minimal_pdf(1024)

VERWERKINGSCODES = [
    "Verwerkt",
    "TechnischProbleem",
    "NietActiefOfGeabonneerd",
    "BerichtTypeNietOndersteund",
    "PublicatieDatumLigtTeVerInDeToekomst",
    "AanmaakDatumLigtTeVerInHetVerleden",
    "BerichtBestaatAl",
    "BijlageTeGroot",
    "OinInCPAKomtNietOvereenMetOinInBericht",
    "XmlValidatieTegenXsdValtNegatiefUit",
]

RESPONSE = f"""
<bv:BerichtVerwerkResponse xmlns:bv="{BV}" xmlns:res="{RES}">
  <BatchInformatie>
    <BerichtLeverancierCode>00000099000000002000</BerichtLeverancierCode>
    <BatchID>{BATCH_ID}</BatchID>
    <TotaalAantalOntvangenBerichten>2</TotaalAantalOntvangenBerichten>
    <AantalBerichtenSuccesvolVerwerkt>1</AantalBerichtenSuccesvolVerwerkt>
    <AantalBerichtenGeenActieveBoxOfGeabonneertOpLeverancier>1</AantalBerichtenGeenActieveBoxOfGeabonneertOpLeverancier>
    <AantalBerichtenMetTechnischProbleem>0</AantalBerichtenMetTechnischProbleem>
    <AantalBerichtenBerichtTypeNietCorrect>0</AantalBerichtenBerichtTypeNietCorrect>
    <AantalBerichtenPublicatieDatumNietCorrect>0</AantalBerichtenPublicatieDatumNietCorrect>
    <AantalBerichtenAanmaakDatumNietCorrect>0</AantalBerichtenAanmaakDatumNietCorrect>
    <DatumOntvangen>2026-01-15T09:00:00.000Z</DatumOntvangen>
    <DatumVerwerkt>2026-01-15T09:00:02.500Z</DatumVerwerkt>
  </BatchInformatie>
  <Berichten>
    <res:Bericht>
      <BerichtID>{BERICHT_1}</BerichtID>
      <BerichtType>BESLUIT</BerichtType>
      <VerwerkingsCode>Verwerkt</VerwerkingsCode>
      <Stadium>NA</Stadium>
    </res:Bericht>
    <res:Bericht>
      <BerichtID>{BERICHT_2}</BerichtID>
      <BerichtType>BESLUIT</BerichtType>
      <VerwerkingsCode>NietActiefOfGeabonneerd</VerwerkingsCode>
      <Stadium>ValidatieGebruiker</Stadium>
    </res:Bericht>
  </Berichten>
</bv:BerichtVerwerkResponse>
"""

# A whole-batch failure: one entry with the nil GUID, a nil Stadium, counted as technical.
NIL_RESPONSE = f"""
<BerichtVerwerkResponse xmlns="{BV}">
  <BatchInformatie xmlns="">
    <BerichtLeverancierCode>00000099000000002000</BerichtLeverancierCode>
    <BatchID>{BATCH_ID}</BatchID>
    <TotaalAantalOntvangenBerichten>1</TotaalAantalOntvangenBerichten>
    <AantalBerichtenSuccesvolVerwerkt>0</AantalBerichtenSuccesvolVerwerkt>
    <AantalBerichtenGeenActieveBoxOfGeabonneertOpLeverancier>0</AantalBerichtenGeenActieveBoxOfGeabonneertOpLeverancier>
    <AantalBerichtenMetTechnischProbleem>1</AantalBerichtenMetTechnischProbleem>
    <AantalBerichtenBerichtTypeNietCorrect>0</AantalBerichtenBerichtTypeNietCorrect>
    <AantalBerichtenPublicatieDatumNietCorrect>0</AantalBerichtenPublicatieDatumNietCorrect>
    <AantalBerichtenAanmaakDatumNietCorrect>0</AantalBerichtenAanmaakDatumNietCorrect>
    <DatumOntvangen>2026-01-15T09:00:00.000Z</DatumOntvangen>
    <DatumVerwerkt>2026-01-15T09:00:00.100Z</DatumVerwerkt>
  </BatchInformatie>
  <Berichten xmlns="">
    <r:Bericht xmlns:r="{RES}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
      <BerichtID>{NIL_GUID}</BerichtID>
      <BerichtType></BerichtType>
      <VerwerkingsCode>XmlValidatieTegenXsdValtNegatiefUit</VerwerkingsCode>
      <Stadium xsi:nil="true"/>
    </r:Bericht>
  </Berichten>
</BerichtVerwerkResponse>
"""


def load_schema(name: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD / name), PARSER))


def parse(data: bytes | str) -> etree._Element:
    if isinstance(data, str):
        data = data.strip().encode()
    return etree.fromstring(data, PARSER)


def one(node: etree._Element, path: str) -> etree._Element:
    (found,) = node.xpath(path, namespaces=NS)
    return found


@pytest.fixture(scope="module")
def request_schema() -> etree.XMLSchema:
    return load_schema("GLOBEBatchRequest.xsd")


@pytest.fixture(scope="module")
def response_schema() -> etree.XMLSchema:
    return load_schema("GLOBEBatchResponse.xsd")


def valid_bericht(**extra: object) -> dict[str, object]:
    return {"BerichtID": BERICHT_1, **extra}


def assert_valid(schema: etree.XMLSchema, doc: etree._Element) -> None:
    assert schema.validate(doc), schema.error_log


# --- schemas compile -------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_every_schema_compiles_without_network_or_dtd(name: str) -> None:
    assert isinstance(load_schema(name), etree.XMLSchema)


def test_request_and_response_schemas_cannot_share_one_schema_object() -> None:
    # Both roots live in the same namespace: libxml2 imports a namespace once and skips the
    # second file, so a wrapper importing both silently loses the response root. This is why
    # the files say they must be loaded separately. (The wrapper exists only in memory.)
    wrapper = etree.fromstring(
        (
            '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
            f'<xs:import namespace="{BV}" schemaLocation="GLOBEBatchRequest.xsd"/>'
            f'<xs:import namespace="{BV}" schemaLocation="GLOBEBatchResponse.xsd"/>'
            "</xs:schema>"
        ).encode(),
        PARSER,
        base_url=str(XSD / "wrapper-in-memory.xsd"),
    )
    schema = etree.XMLSchema(wrapper)
    assert "Skipping import" in str(schema.error_log)
    assert schema.validate(parse(batch_xml([valid_bericht()]))), schema.error_log
    assert not schema.validate(parse(RESPONSE))


# --- request: valid --------------------------------------------------------------------------


def test_a_batch_with_one_bericht_and_no_attachments_is_valid(
    request_schema: etree.XMLSchema,
) -> None:
    doc = parse(batch_xml([valid_bericht()], batch_id=BATCH_ID))
    assert_valid(request_schema, doc)
    assert one(doc, "ber:Bericht/ber:BerichtInformatie/ber:BatchID").text == BATCH_ID
    assert doc.find(f".//{{{BER}}}Bijlagen") is None
    assert doc.find(f".//{{{BBX}}}AlgemeneBijlagen") is None


def test_a_batch_with_two_bijlagen_and_three_algemene_bijlagen_is_valid(
    request_schema: etree.XMLSchema,
) -> None:
    doc = parse(
        batch_xml(
            [
                valid_bericht(
                    bijlagen=[(PDF, "Besluit.pdf"), (minimal_pdf(2048), "Bijlage bij besluit.pdf")],
                    algemene=[
                        ("brochure@sender.example", "Brochure.pdf"),
                        ("cid:voorwaarden@sender.example", "Voorwaarden.pdf"),
                        ("privacy@sender.example", "x" * 128),
                    ],
                )
            ]
        )
    )
    assert_valid(request_schema, doc)
    assert [n.text for n in doc.iterfind(f".//{{{BER}}}Volgorde")] == ["1", "2"]
    assert [n.text for n in doc.iterfind(f".//{{{BBX}}}Referentie")] == [
        "cid:brochure@sender.example",
        "cid:voorwaarden@sender.example",
        "cid:privacy@sender.example",
    ]


def test_all_optional_letter_fields_in_order_are_valid(request_schema: etree.XMLSchema) -> None:
    doc = parse(
        batch_xml(
            [
                valid_bericht(
                    PublicatieDatum="2026-01-20T08:00:00Z",
                    EindDatumHandelingsTermijn="2026-02-20T00:00:00",
                    BerichtTekst="Geachte heer,\\r\\nZie bijlage.",
                    Referentie="x" * 25,
                    Onderwerp="x" * 50,
                )
            ]
        )
    )
    assert_valid(request_schema, doc)


def test_a_batch_of_1000_berichten_is_valid(request_schema: etree.XMLSchema) -> None:
    assert_valid(request_schema, parse(batch_xml([{}] * 1000)))


def test_an_uppercase_guid_is_valid(request_schema: etree.XMLSchema) -> None:
    assert_valid(request_schema, parse(batch_xml([valid_bericht()], batch_id=BATCH_ID.upper())))


# --- request: invalid ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bericht",
    [
        pytest.param(valid_bericht(bijlagen=[(PDF, "a.pdf")] * 3), id="three-bijlagen"),
        pytest.param(
            valid_bericht(algemene=[(f"p{i}@x", "a.pdf") for i in range(4)]),
            id="four-algemene-bijlagen",
        ),
        pytest.param(valid_bericht(SoortGebruiker="Bedrijf"), id="soortgebruiker-bedrijf"),
        pytest.param(valid_bericht(Onderwerp="x" * 51), id="onderwerp-51"),
        pytest.param(valid_bericht(Onderwerp=""), id="onderwerp-empty"),
        pytest.param(
            valid_bericht(BerichtID="1a2b3c4d-0000-4000-8000-00000000000g"), id="bad-guid"
        ),
        pytest.param(valid_bericht(BerichtID="{" + BERICHT_1 + "}"), id="braced-guid"),
        pytest.param(valid_bericht(BerichtType="BESLUIT01"), id="berichttype-9"),
        pytest.param(valid_bericht(GebruikerID=""), id="gebruikerid-empty"),
        pytest.param(valid_bericht(Referentie="x" * 26), id="referentie-26"),
        pytest.param(valid_bericht(BerichtTekst="x" * 4001), id="berichttekst-4001"),
        pytest.param(valid_bericht(PublicatieDatum="20-01-2026"), id="publicatiedatum-not-a-date"),
        pytest.param(valid_bericht(bijlagen=[(PDF, "x" * 129)]), id="omschrijving-129"),
        pytest.param(valid_bericht(bijlagen=[(PDF, "")]), id="omschrijving-empty"),
        pytest.param(valid_bericht(bijlagen=[(b"", "leeg.pdf")]), id="inhoud-empty"),
        pytest.param(valid_bericht(algemene=[("cid:", "a.pdf")]), id="referentie-bare-cid"),
        pytest.param(
            valid_bericht(algemene=[("cid:x@y", "x" * 129)]), id="algemene-omschrijving-129"
        ),
    ],
)
def test_an_invalid_bericht_fails_the_schema(
    request_schema: etree.XMLSchema, bericht: dict[str, object]
) -> None:
    assert not request_schema.validate(parse(batch_xml([bericht])))


def test_a_referentie_without_cid_prefix_is_invalid(request_schema: etree.XMLSchema) -> None:
    doc = parse(batch_xml([valid_bericht(algemene=[("brochure@x", "Brochure.pdf")])]))
    one(doc, "//bbx:Referentie").text = "brochure@x"
    assert not request_schema.validate(doc)


@pytest.mark.parametrize(("ns", "tag"), [(BER, "BijlageType"), (BBX, "BijlageType")])
def test_a_bijlagetype_other_than_pdf_is_invalid(
    request_schema: etree.XMLSchema, ns: str, tag: str
) -> None:
    doc = parse(batch_xml([valid_bericht(bijlagen=[(PDF, "a.pdf")], algemene=[("a@x", "b.pdf")])]))
    assert_valid(request_schema, doc)
    doc.find(f".//{{{ns}}}{tag}").text = "Docx"
    assert not request_schema.validate(doc)


def test_an_empty_bijlagen_element_is_invalid(request_schema: etree.XMLSchema) -> None:
    doc = parse(batch_xml([valid_bericht()]))
    etree.SubElement(one(doc, "ber:Bericht"), f"{{{BER}}}Bijlagen")
    assert not request_schema.validate(doc)


def test_an_empty_algemene_bijlagen_element_is_invalid(request_schema: etree.XMLSchema) -> None:
    doc = parse(batch_xml([valid_bericht()]))
    etree.SubElement(one(doc, "ber:Bericht"), f"{{{BBX}}}AlgemeneBijlagen")
    assert not request_schema.validate(doc)


def test_algemene_bijlagen_before_bijlagen_is_invalid(request_schema: etree.XMLSchema) -> None:
    doc = parse(batch_xml([valid_bericht(bijlagen=[(PDF, "a.pdf")], algemene=[("a@x", "b.pdf")])]))
    bericht = one(doc, "ber:Bericht")
    bericht.append(one(bericht, "ber:Bijlagen"))
    assert not request_schema.validate(doc)


def test_algemene_bijlagen_in_the_letter_namespace_is_invalid(
    request_schema: etree.XMLSchema,
) -> None:
    doc = parse(batch_xml([valid_bericht(algemene=[("a@x", "b.pdf")])]))
    for node in doc.iter(f"{{{BBX}}}*"):
        node.tag = f"{{{BER}}}{etree.QName(node).localname}"
    assert not request_schema.validate(doc)


def test_a_bad_batch_guid_is_invalid(request_schema: etree.XMLSchema) -> None:
    assert not request_schema.validate(parse(batch_xml([valid_bericht()], batch_id="batch-1")))


def test_a_leverancier_of_26_characters_is_invalid(request_schema: etree.XMLSchema) -> None:
    assert not request_schema.validate(parse(batch_xml([{}], leverancier="0" * 26)))


def test_a_batch_of_1001_berichten_is_invalid(request_schema: etree.XMLSchema) -> None:
    assert not request_schema.validate(parse(batch_xml([{}] * 1001)))


def test_a_batch_without_berichten_is_invalid(request_schema: etree.XMLSchema) -> None:
    assert not request_schema.validate(parse(batch_xml([])))


def test_a_batch_with_unqualified_elements_is_invalid(request_schema: etree.XMLSchema) -> None:
    # Logius' request schemas are qualified throughout; a client dropping the namespaces from
    # the children is talking to another contract.
    doc = parse(batch_xml([valid_bericht()]))
    for node in doc.iter():
        if node is not doc:
            node.tag = etree.QName(node).localname
    assert not request_schema.validate(doc)


def test_a_bericht_in_the_batch_namespace_is_invalid(request_schema: etree.XMLSchema) -> None:
    doc = parse(batch_xml([valid_bericht()]))
    one(doc, "ber:Bericht").tag = f"{{{BV}}}Bericht"
    assert not request_schema.validate(doc)


def test_a_response_document_is_not_a_valid_request(request_schema: etree.XMLSchema) -> None:
    assert not request_schema.validate(parse(RESPONSE))


# --- response --------------------------------------------------------------------------------


def test_a_response_with_two_berichten_is_valid(response_schema: etree.XMLSchema) -> None:
    assert_valid(response_schema, parse(RESPONSE))


def test_a_whole_batch_failure_with_the_nil_guid_is_valid(
    response_schema: etree.XMLSchema,
) -> None:
    assert_valid(response_schema, parse(NIL_RESPONSE))


def test_a_response_without_berichten_entries_or_stadium_is_valid(
    response_schema: etree.XMLSchema,
) -> None:
    doc = parse(RESPONSE)
    stadium = one(doc, "Berichten/res:Bericht[1]/Stadium")
    stadium.getparent().remove(stadium)
    assert_valid(response_schema, doc)
    berichten = one(doc, "Berichten")
    for bericht in list(berichten):
        berichten.remove(bericht)
    assert_valid(response_schema, doc)


@pytest.mark.parametrize("code", VERWERKINGSCODES)
def test_every_logius_verwerkingscode_is_valid(response_schema: etree.XMLSchema, code: str) -> None:
    doc = parse(RESPONSE)
    one(doc, "(//VerwerkingsCode)[1]").text = code
    assert_valid(response_schema, doc)


def test_the_verwerkingscode_enumeration_is_in_logius_order() -> None:
    types = etree.parse(str(XSD / "GLOBEBatchResponseTypes.xsd"), PARSER)
    values = types.xpath(
        "//xs:simpleType[@name='VerwerkingsCode']//xs:enumeration/@value",
        namespaces={"xs": "http://www.w3.org/2001/XMLSchema"},
    )
    assert values == VERWERKINGSCODES


@pytest.mark.parametrize("code", ["00", "verwerkt", "Onbekend"])
def test_an_unknown_verwerkingscode_is_invalid(response_schema: etree.XMLSchema, code: str) -> None:
    # Worth's fixture carries "00"; a real Logius success always says Verwerkt.
    doc = parse(RESPONSE)
    one(doc, "(//VerwerkingsCode)[1]").text = code
    assert not response_schema.validate(doc)


def test_an_unknown_stadium_is_valid(response_schema: etree.XMLSchema) -> None:
    doc = parse(RESPONSE)
    one(doc, "(//Stadium)[1]").text = "IetsNieuws"
    assert_valid(response_schema, doc)


@pytest.mark.parametrize(
    "path",
    ["//VerwerkingsCode", "//BerichtID", "//BatchInformatie/BatchID", "//Stadium"],
)
def test_a_qualified_leaf_is_invalid(response_schema: etree.XMLSchema, path: str) -> None:
    doc = parse(RESPONSE)
    node = one(doc, f"({path})[1]")
    ns = RES if node.getparent().tag == f"{{{RES}}}Bericht" else BV
    node.tag = f"{{{ns}}}{node.tag}"
    assert not response_schema.validate(doc)


@pytest.mark.parametrize("path", ["BatchInformatie", "Berichten"])
def test_a_qualified_container_is_invalid(response_schema: etree.XMLSchema, path: str) -> None:
    doc = parse(RESPONSE)
    one(doc, path).tag = f"{{{BV}}}{path}"
    assert not response_schema.validate(doc)


def test_an_unqualified_result_bericht_is_invalid(response_schema: etree.XMLSchema) -> None:
    doc = parse(RESPONSE)
    one(doc, "Berichten/res:Bericht[1]").tag = "Bericht"
    assert not response_schema.validate(doc)


def test_a_response_with_1001_berichten_is_invalid(response_schema: etree.XMLSchema) -> None:
    doc = parse(RESPONSE)
    berichten = one(doc, "Berichten")
    template = berichten[0]
    for _ in range(1001 - len(berichten)):
        berichten.append(copy.deepcopy(template))
    assert not response_schema.validate(doc)


def test_a_response_with_a_bad_batch_guid_is_invalid(response_schema: etree.XMLSchema) -> None:
    doc = parse(RESPONSE)
    one(doc, "BatchInformatie/BatchID").text = "not-a-guid"
    assert not response_schema.validate(doc)


def test_a_request_document_is_not_a_valid_response(response_schema: etree.XMLSchema) -> None:
    assert not response_schema.validate(parse(batch_xml([valid_bericht()])))


# --- sample builders -------------------------------------------------------------------------


def test_the_builder_refuses_unknown_keys() -> None:
    with pytest.raises(ValueError, match="Onderwerpp"):
        batch_xml([{"Onderwerpp": "typo"}])


def test_the_builder_fills_batch_information() -> None:
    doc = parse(batch_xml([{}, {}], batch_id=BATCH_ID, aanmaak="2026-01-15T09:00:00Z"))
    assert one(doc, "bv:BatchInformatie/bv:AanmaakDatum").text == "2026-01-15T09:00:00Z"
    assert one(doc, "bv:BatchInformatie/bv:BerichtLeverancierID").text == "00000099000000002000"
    ids = doc.xpath("ber:Bericht/ber:BerichtInformatie/ber:BerichtID/text()", namespaces=NS)
    assert len(set(ids)) == 2
    batch_ids = doc.xpath("ber:Bericht/ber:BerichtInformatie/ber:BatchID/text()", namespaces=NS)
    assert batch_ids == [BATCH_ID, BATCH_ID]


@pytest.mark.parametrize("size", [512_000, 2_097_152, MINIMAL_PDF_SIZE, 300 + MINIMAL_PDF_SIZE])
def test_minimal_pdf_has_exactly_the_requested_size(size: int) -> None:
    pdf = minimal_pdf(size)
    assert len(pdf) == size
    assert pdf.startswith(b"%PDF-")
    assert pdf.endswith((b"%%EOF\n", b"%%EOF"))


def test_minimal_pdf_hits_every_size_across_digit_boundaries() -> None:
    # /Length and startxref gain a digit at these paddings; no size may be skipped.
    for size in range(MINIMAL_PDF_SIZE, 1200):
        assert len(minimal_pdf(size)) == size
    for size in range(99_900, 100_600):
        assert len(minimal_pdf(size)) == size


@pytest.mark.parametrize("size", [MINIMAL_PDF_SIZE, 400, 512_000])
def test_minimal_pdf_is_structurally_sound(size: int) -> None:
    pdf = minimal_pdf(size)
    assert pdf.startswith(b"%PDF-1.7\n")
    startxref = int(re.search(rb"startxref\s+(\d+)\s+%%EOF\s*$", pdf).group(1))
    assert pdf[startxref:].startswith(b"xref\n")
    table = re.match(rb"xref\n0 (\d+)\n((?:\d{10} \d{5} [fn] \n)+)trailer\n<<", pdf[startxref:])
    assert table is not None
    count = int(table.group(1))
    entries = table.group(2).splitlines()
    assert len(entries) == count
    for number, entry in enumerate(entries[1:], start=1):
        offset = int(entry[:10])
        assert pdf[offset:].startswith(b"%d 0 obj\n" % number)
    assert re.search(rb"/Type/Page/", pdf)
    assert re.search(rb"/Size %d/Root 1 0 R\s*>>" % count, pdf)
    stream = re.search(rb"<</Length (\d+)>>\nstream\n", pdf)
    if stream:
        end = stream.end() + int(stream.group(1))
        assert pdf[end:].startswith(b"\nendstream\n")


def test_minimal_pdf_refuses_a_size_below_its_minimum() -> None:
    with pytest.raises(ValueError, match="at least"):
        minimal_pdf(MINIMAL_PDF_SIZE - 1)

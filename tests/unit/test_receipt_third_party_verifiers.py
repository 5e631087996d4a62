"""Fresh receipts, as `ReceiptSigner` makes them, checked the way another party would: with
the `xmlsec1` command line tool (Debian's package, `make xmlsec1`) and with signxml's
verifier, for ECDSA P-256 and RSA-3072, on their own and inside the SOAP message they travel
in.

The signer builds SignedInfo from a template and signs its canonical bytes itself, so these
tests are what proves its bytes are the ones a verifier computes.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.verifier import SignatureConfiguration, XMLVerifier

from adapter.pki.devca import DevHierarchy, new_hierarchy
from adapter.receipts import BerichtUitkomst, Outcome, Receipt, ReceiptSigner, verify

RECEIVER = "00000004003214345001"
SENDER = "00000099000000002000"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
ID_ATTRIBUTE = ("--id-attr:Id", "Afleverbevestiging")
ALGORITHMS = {"ecdsa-sha256": "ecdsa-p256", "rsa-sha256": "rsa-3072"}


@pytest.fixture(scope="module")
def hierarchy() -> DevHierarchy:
    return new_hierarchy("Verifiers")


@pytest.fixture(scope="module")
def root(hierarchy: DevHierarchy, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("verifiers") / "root.pem"
    path.write_bytes(hierarchy.root_pem())
    return path


@pytest.fixture(scope="module", params=sorted(ALGORITHMS))
def signer(request: pytest.FixtureRequest, hierarchy: DevHierarchy) -> ReceiptSigner:
    algorithm: str = request.param
    issued = hierarchy.tsp.issue_receipt_certificate(
        receiver_oin=RECEIVER,
        key_type=ALGORITHMS[algorithm],  # type: ignore[arg-type]
    )
    return ReceiptSigner(
        issued.private_key,
        [issued.certificate, hierarchy.tsp.certificate, hierarchy.domain.certificate],
        algorithm,
    )


def fresh_receipt(outcome: Outcome | None = None) -> Receipt:
    return Receipt(
        request_id=str(uuid.uuid4()),
        receiver_oin=RECEIVER,
        sender_oin=SENDER,
        received_at=datetime(2026, 11, 23, 12, 0, 0, 123000, tzinfo=UTC),
        message_ref=f"urn:uuid:{uuid.uuid4()}",
        service="BerichtVerwerk",
        operation="GLOBE-R-BV-Request",
        body_hash="47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        part_hashes=(("batch@gemeente", "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="),),
        outcome=outcome or Outcome.accept(),
    )


def xmlsec1(document: bytes, root: Path, directory: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("xmlsec1")
    assert binary is not None, "xmlsec1 is not installed: run `make xmlsec1`"
    path = directory / "receipt.xml"
    path.write_bytes(document)
    return subprocess.run(
        [binary, "--verify", "--trusted-pem", str(root), *ID_ATTRIBUTE, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def signxml_verifies(document: bytes, root: Path) -> etree._Element:
    """What signxml's own verifier says was signed, with nothing of ours in between."""
    result = XMLVerifier().verify(
        document,
        ca_pem_file=str(root),
        id_attribute="Id",
        expect_config=SignatureConfiguration(
            signature_methods=frozenset({SignatureMethod.ECDSA_SHA256, SignatureMethod.RSA_SHA256}),
            digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
        ),
    )
    signed: etree._Element = result.signed_xml  # type: ignore[union-attr]
    return signed


def in_soap_header(signed: etree._Element) -> bytes:
    """A SOAP envelope with the receipt in its Header, serialised as the server sends it."""
    envelope = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"soap": SOAP})
    etree.SubElement(envelope, f"{{{SOAP}}}Header").append(signed)
    etree.SubElement(etree.SubElement(envelope, f"{{{SOAP}}}Body"), "Antwoord").text = "ok"
    serialised: bytes = etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
    return serialised


def test_a_fresh_receipt_verifies_with_the_xmlsec1_tool(
    signer: ReceiptSigner, root: Path, tmp_path: Path
) -> None:
    document = etree.tostring(signer.sign(fresh_receipt()), xml_declaration=True, encoding="UTF-8")
    result = xmlsec1(document, root, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout + result.stderr


def test_a_fresh_receipt_verifies_with_signxml_and_says_what_it_said(
    signer: ReceiptSigner, root: Path
) -> None:
    original = fresh_receipt()
    document = etree.tostring(signer.sign(original))
    signed = signxml_verifies(document, root)
    assert signed.findtext("{*}BevestigingID") == original.receipt_id
    assert verify(etree.fromstring(document), root).receipt == original


def test_a_receipt_inside_a_soap_header_verifies_with_both(
    signer: ReceiptSigner, root: Path, tmp_path: Path
) -> None:
    # Exclusive c14n must leave the envelope's namespaces out of the digest and SignedInfo.
    original = fresh_receipt()
    message = in_soap_header(signer.sign(original))
    result = xmlsec1(message, root, tmp_path)
    assert result.returncode == 0, result.stderr
    assert verify(etree.fromstring(message), root).receipt == original


def test_a_batch_receipt_with_markup_characters_in_its_reasons_verifies_with_both(
    signer: ReceiptSigner, root: Path, tmp_path: Path
) -> None:
    outcome = Outcome(
        accepted=True,
        berichten=tuple(
            BerichtUitkomst(str(uuid.uuid4()), "BijlageOngeldig", 'Bijlage "A&B" <actief> é\t')
            for _ in range(50)
        ),
    )
    original = fresh_receipt(outcome)
    document = etree.tostring(signer.sign(original), encoding="UTF-8")
    result = xmlsec1(document, root, tmp_path)
    assert result.returncode == 0, result.stderr
    assert verify(etree.fromstring(document), root).receipt == original


def test_xmlsec1_refuses_a_fresh_receipt_altered_after_signing(
    signer: ReceiptSigner, root: Path, tmp_path: Path
) -> None:
    signed = signer.sign(fresh_receipt())
    signed.find("{*}Afzender").text = "00000099000000001000"  # type: ignore[union-attr]
    result = xmlsec1(etree.tostring(signed), root, tmp_path)
    assert result.returncode != 0
    assert "FAIL" in result.stdout + result.stderr


def test_every_receipt_of_one_signer_has_its_own_digest_and_signature(
    signer: ReceiptSigner,
) -> None:
    # SignedInfo comes from a template: no receipt may carry another's values.
    first, second = signer.sign(fresh_receipt()), signer.sign(fresh_receipt())
    for path in (".//{*}DigestValue", ".//{*}SignatureValue", ".//{*}Reference"):
        assert etree.tostring(first.find(path)) != etree.tostring(second.find(path))
    assert first.find(".//{*}Reference").get("URI") == f"#{first.get('Id')}"  # type: ignore[union-attr]

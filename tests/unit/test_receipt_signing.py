"""Signed receipts: what verification accepts and what it refuses, with both signature
algorithms and two independent verifiers (signxml, which we use, and libxmlsec1).

The keys and certificates come from a development hierarchy made here, once per module, not
from the session's PKI: signing needs no server and no files but the trust anchor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import xmlsec
from lxml import etree

from adapter.pki.devca import DevHierarchy, new_hierarchy
from adapter.receipts import (
    BerichtUitkomst,
    Outcome,
    Receipt,
    ReceiptInvalid,
    ReceiptSigner,
    find_receipt,
    verify,
)
from adapter.receipts.model import parse_own
from adapter.soap.envelope import envelope_tree, serialise
from adapter.soap.xml import parse_trusted_file
from tests.conftest import GEMEENTE, ROOT

RECEIVER = "00000004003214345001"


@dataclass(frozen=True)
class Keys:
    """A hierarchy of our own: its CAs, the trust anchor as a file, and the receipt signer."""

    hierarchy: DevHierarchy
    root: Path
    signer: ReceiptSigner


def receipt(outcome: Outcome | None = None) -> Receipt:
    return Receipt(
        request_id="4f1c",
        receiver_oin=RECEIVER,
        sender_oin=GEMEENTE,
        received_at=datetime(2026, 11, 23, 12, 0, 0, 123000, tzinfo=UTC),
        message_ref="urn:uuid:5e7b",
        service="ValidateAbonnementen",
        operation="ValidateAbonnementen",
        body_hash="47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        outcome=outcome or Outcome.accept(),
    )


def signer_for(hierarchy: DevHierarchy, **issue: str) -> ReceiptSigner:
    """A signer with a new receipt certificate of the TSP CA and its chain."""
    issued = hierarchy.tsp.issue_receipt_certificate(**issue)  # type: ignore[arg-type]
    return ReceiptSigner(
        issued.private_key,
        [issued.certificate, hierarchy.tsp.certificate, hierarchy.domain.certificate],
        "rsa-sha256" if issue.get("key_type") == "rsa-3072" else "ecdsa-sha256",
    )


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    """The receipt signer loaded from PEM files, as the server loads it."""
    directory = tmp_path_factory.mktemp("receipt-keys")
    hierarchy = new_hierarchy("Unit")
    issued = hierarchy.tsp.issue_receipt_certificate(receiver_oin=RECEIVER)
    files = {
        "root.pem": hierarchy.root_pem(),
        "receipt.pem": issued.cert_pem(),
        "receipt.key": issued.key_pem(),
        "chain.pem": hierarchy.chain_pem(),
    }
    for name, content in files.items():
        (directory / name).write_bytes(content)
    signer = ReceiptSigner.from_files(
        directory / "receipt.key",
        directory / "receipt.pem",
        directory / "chain.pem",
        "ecdsa-sha256",
    )
    return Keys(hierarchy, directory / "root.pem", signer)


def libxmlsec_verifies(element: etree._Element, root: Path) -> bool:
    document = etree.fromstring(etree.tostring(element))
    xmlsec.tree.add_ids(document, ["Id"])
    manager = xmlsec.KeysManager()
    manager.load_cert(
        str(root), xmlsec.constants.KeyDataFormatPem, xmlsec.constants.KeyDataTypeTrusted
    )
    try:
        xmlsec.SignatureContext(manager).verify(
            xmlsec.tree.find_node(document, xmlsec.constants.NodeSignature)
        )
    except xmlsec.Error:
        return False
    return True


def test_a_signed_receipt_is_valid_against_its_schema(keys: Keys) -> None:
    schema = etree.XMLSchema(parse_trusted_file(str(ROOT / "xsd" / "afleverbevestiging.xsd")))
    batch = Outcome(
        accepted=True,
        berichten=(BerichtUitkomst("0b6e3c1a-1111-4222-8333-444455556666", "Verwerkt"),),
    )
    for outcome in (Outcome.accept(), Outcome.reject("0004", "0004 Niet conform xsd"), batch):
        signed = keys.signer.sign(receipt(outcome))
        assert schema.validate(signed), schema.error_log.last_error


def test_verification_returns_exactly_what_was_signed(keys: Keys) -> None:
    original = receipt(Outcome.reject("0004", "0004 Niet conform xsd: regel 3"))
    verified = verify(keys.signer.sign(original), keys.root)
    assert verified.receipt == original
    assert verified.signer_oin == RECEIVER


def test_a_signed_receipt_verifies_with_libxmlsec_as_well(keys: Keys) -> None:
    assert libxmlsec_verifies(keys.signer.sign(receipt()), keys.root)


def test_an_altered_receipt_fails_both_verifiers(keys: Keys) -> None:
    signed = keys.signer.sign(receipt())
    signed.find("{*}Afzender").text = "00000099000000001000"
    with pytest.raises(ReceiptInvalid):
        verify(signed, keys.root)
    assert not libxmlsec_verifies(signed, keys.root)


def test_a_receipt_signed_by_another_certificate_of_the_same_root_is_refused(keys: Keys) -> None:
    # A connected organisation holds a certificate under the same root: it must not be able
    # to write receipts in MijnOverheid's name.
    forged = signer_for(keys.hierarchy, receiver_oin=GEMEENTE).sign(receipt())
    assert libxmlsec_verifies(forged, keys.root)  # the cryptography holds...
    with pytest.raises(ReceiptInvalid, match="ondertekend door OIN 00000099000000002000"):
        verify(forged, keys.root)  # ...but the signer is not the Ontvanger


def test_a_receipt_signed_under_another_root_is_refused(keys: Keys) -> None:
    stranger = signer_for(new_hierarchy("Stranger"), receiver_oin=RECEIVER)
    with pytest.raises(ReceiptInvalid):
        verify(stranger.sign(receipt()), keys.root)


def test_rsa_sha256_receipts_verify_with_both_verifiers(keys: Keys) -> None:
    rsa_signer = signer_for(keys.hierarchy, receiver_oin=RECEIVER, key_type="rsa-3072")
    original = receipt()
    signed = rsa_signer.sign(original)
    assert signed.find(".//{*}SignatureMethod").get("Algorithm").endswith("rsa-sha256")
    assert libxmlsec_verifies(signed, keys.root)
    assert verify(signed, keys.root).receipt == original


def test_an_algorithm_that_does_not_fit_the_key_is_refused(keys: Keys) -> None:
    issued = keys.hierarchy.tsp.issue_receipt_certificate(receiver_oin=RECEIVER)
    with pytest.raises(ValueError, match="does not fit"):
        ReceiptSigner(issued.private_key, [issued.certificate], "rsa-sha256")


def test_a_receipt_is_found_inside_a_soap_message_and_on_its_own(keys: Keys) -> None:
    signed = keys.signer.sign(receipt())
    envelope = etree.Element("{http://schemas.xmlsoap.org/soap/envelope/}Envelope")
    header = etree.SubElement(envelope, "{http://schemas.xmlsoap.org/soap/envelope/}Header")
    header.append(signed)
    assert find_receipt(envelope) is signed
    assert find_receipt(signed) is signed


def test_a_document_without_a_receipt_is_refused(keys: Keys) -> None:
    with pytest.raises(ReceiptInvalid, match="geen Afleverbevestiging"):
        verify(etree.fromstring(b"<Envelope/>"), keys.root)


def test_the_signed_bytes_spliced_into_an_answer_verify_there_with_both_verifiers(
    keys: Keys,
) -> None:
    original = receipt()
    signed = keys.signer.signed_xml(original)
    action = etree.Element("{http://www.w3.org/2005/08/addressing}Action")
    action.text = "urn:answer"
    answer = serialise(envelope_tree(etree.Element("{urn:test}Antwoord"), [action]), signed)
    document = etree.fromstring(answer)
    header = document[0]
    assert [etree.QName(child).localname for child in header] == ["Action", "Afleverbevestiging"]
    assert signed in answer  # the signer's bytes as they are, no tree written in between
    assert verify(document, keys.root).receipt == original
    assert libxmlsec_verifies(find_receipt(document), keys.root)
    assert verify(parse_own(signed), keys.root).receipt == original  # on its own as well

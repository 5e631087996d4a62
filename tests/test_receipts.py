"""Receipts: what verification accepts and what it refuses, with both signature algorithms."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import xmlsec
from lxml import etree

from adapter.pki.devca import load_hierarchy
from adapter.receipts import (
    BerichtUitkomst,
    Outcome,
    Receipt,
    ReceiptInvalid,
    ReceiptSigner,
    verify,
)
from adapter.soap.xml import parse_trusted_file
from tests.conftest import GEMEENTE, ROOT, Pki

RECEIVER = "00000004003214345001"


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


@pytest.fixture(scope="module")
def signer(pki: Pki) -> ReceiptSigner:
    return ReceiptSigner.from_files(
        pki.directory / "receipt-signing.key",
        pki.directory / "receipt-signing.pem",
        pki.directory / "chain.pem",
        "ecdsa-sha256",
    )


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


def test_a_signed_receipt_is_valid_against_its_schema(signer: ReceiptSigner) -> None:
    schema = etree.XMLSchema(parse_trusted_file(str(ROOT / "xsd" / "afleverbevestiging.xsd")))
    batch = Outcome(
        accepted=True,
        berichten=(BerichtUitkomst("0b6e3c1a-1111-4222-8333-444455556666", "Verwerkt"),),
    )
    for outcome in (Outcome.accept(), Outcome.reject("0004", "0004 Niet conform xsd"), batch):
        signed = signer.sign(receipt(outcome))
        assert schema.validate(signed), schema.error_log.last_error


def test_verification_returns_exactly_what_was_signed(signer: ReceiptSigner, pki: Pki) -> None:
    original = receipt(Outcome.reject("0004", "0004 Niet conform xsd: regel 3"))
    verified = verify(signer.sign(original), pki.root)
    assert verified.receipt == original
    assert verified.signer_oin == RECEIVER


def test_an_altered_receipt_fails_both_verifiers(signer: ReceiptSigner, pki: Pki) -> None:
    signed = signer.sign(receipt())
    signed.find("{*}Afzender").text = "00000099000000001000"
    with pytest.raises(ReceiptInvalid):
        verify(signed, pki.root)
    assert not libxmlsec_verifies(signed, pki.root)


def test_a_receipt_signed_by_another_certificate_of_the_same_root_is_refused(pki: Pki) -> None:
    # A connected organisation holds a certificate under the same root: it must not be able
    # to write receipts in MijnOverheid's name.
    hierarchy = load_hierarchy(pki.directory)
    forger = hierarchy.tsp.issue_receipt_certificate(receiver_oin=GEMEENTE)
    forged = ReceiptSigner(
        forger.private_key,
        [forger.certificate, hierarchy.tsp.certificate, hierarchy.domain.certificate],
    )
    signed = forged.sign(receipt())
    assert libxmlsec_verifies(signed, pki.root)  # the cryptography holds...
    with pytest.raises(ReceiptInvalid, match="ondertekend door OIN 00000099000000002000"):
        verify(signed, pki.root)  # ...but the signer is not the Ontvanger


def test_rsa_sha256_receipts_verify_with_both_verifiers(pki: Pki) -> None:
    hierarchy = load_hierarchy(pki.directory)
    issued = hierarchy.tsp.issue_receipt_certificate(receiver_oin=RECEIVER, key_type="rsa-3072")
    rsa_signer = ReceiptSigner(
        issued.private_key,
        [issued.certificate, hierarchy.tsp.certificate, hierarchy.domain.certificate],
        "rsa-sha256",
    )
    original = receipt()
    signed = rsa_signer.sign(original)
    assert signed.find(".//{*}SignatureMethod").get("Algorithm").endswith("rsa-sha256")
    assert libxmlsec_verifies(signed, pki.root)
    assert verify(signed, pki.root).receipt == original


def test_an_algorithm_that_does_not_fit_the_key_is_refused(pki: Pki) -> None:
    hierarchy = load_hierarchy(pki.directory)
    issued = hierarchy.tsp.issue_receipt_certificate(receiver_oin=RECEIVER)
    with pytest.raises(ValueError, match="does not fit"):
        ReceiptSigner(issued.private_key, [issued.certificate], "rsa-sha256")

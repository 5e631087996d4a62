"""Signing and verifying Afleverbevestigingen (enveloped XMLDSig, exclusive c14n).

The signature references the receipt by its `Id` and carries the signing certificate and its
intermediates, so anyone holding only the root can check it, with our code or with
`xmlsec1 --verify --trusted-pem ROOT --id-attr:Id Afleverbevestiging FILE`.
"""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidCertificate, InvalidInput, InvalidSignature
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration, VerifyResult, XMLVerifier

from adapter.errors import AdapterError
from adapter.metrics import SIGN_SECONDS
from adapter.receipts.model import ROOT, Receipt, from_element, to_element

DSIG = "http://www.w3.org/2000/09/xmldsig#"
_ALGORITHMS = {
    "ecdsa-sha256": SignatureMethod.ECDSA_SHA256,
    "rsa-sha256": SignatureMethod.RSA_SHA256,
}
_EXC_C14N = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0


class ReceiptInvalid(AdapterError):
    """The receipt's signature, certificate chain or signer does not hold."""


class ReceiptSigner:
    """Signs receipts with one key; built once per process, used by every request."""

    def __init__(
        self,
        private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
        certificates: list[x509.Certificate],
        algorithm: str = "ecdsa-sha256",
    ) -> None:
        method = _ALGORITHMS[algorithm]
        if (method is SignatureMethod.ECDSA_SHA256) != isinstance(
            private_key, ec.EllipticCurvePrivateKey
        ):
            raise ValueError(f"receipt algorithm {algorithm} does not fit the signing key")
        self.private_key = private_key
        # Parsed certificate objects: signxml would otherwise re-parse PEM on every signature.
        self.certificates = certificates
        self.algorithm = algorithm
        self._signer = XMLSigner(
            signature_algorithm=method,
            digest_algorithm=DigestAlgorithm.SHA256,
            c14n_algorithm=_EXC_C14N,
        )

    @classmethod
    def from_files(
        cls, key_file: Path, cert_file: Path, intermediates_file: Path, algorithm: str
    ) -> ReceiptSigner:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise ValueError(f"{key_file}: receipt key must be ECDSA or RSA")
        leaf = x509.load_pem_x509_certificates(cert_file.read_bytes())[:1]
        chain = x509.load_pem_x509_certificates(intermediates_file.read_bytes())
        return cls(key, leaf + chain, algorithm)

    def sign(self, receipt: Receipt) -> etree._Element:
        """The signed Afleverbevestiging element, ready to put in a SOAP header."""
        with SIGN_SECONDS.time():
            return self._sign(receipt)

    def _sign(self, receipt: Receipt) -> etree._Element:
        signed: etree._Element = self._signer.sign(
            to_element(receipt),
            key=self.private_key,
            cert=self.certificates,
            reference_uri=f"#{receipt.xml_id}",
            id_attribute="Id",
        )
        return signed


@dataclass(frozen=True)
class VerifiedReceipt:
    """What a receipt proves: its content, as read from the signed bytes, and who signed it."""

    receipt: Receipt
    signer_subject: str
    signer_oin: str | None
    element: etree._Element


def find_receipt(document: etree._Element) -> etree._Element:
    """The Afleverbevestiging element in a SOAP message or a stand-alone receipt document."""
    if document.tag == ROOT:
        return document
    found = document.find(f".//{ROOT}")
    if found is None:
        raise ReceiptInvalid("geen Afleverbevestiging gevonden")
    return found


def _signing_certificate(signature: etree._Element, public_key_pem: bytes) -> x509.Certificate:
    for node in signature.iter(f"{{{DSIG}}}X509Certificate"):
        cert = x509.load_der_x509_certificate(_b64(node.text or ""))
        pem = cert.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if pem == public_key_pem:
            return cert
    raise ReceiptInvalid("het ondertekenende certificaat ontbreekt in KeyInfo")


def _b64(text: str) -> bytes:
    return base64.b64decode("".join(text.split()))


def verify(document: etree._Element, trusted_roots: Path) -> VerifiedReceipt:
    """Check signature and chain, and that the signer is the receipt's Ontvanger (by OIN).

    Everything returned is read from what was signed, never from the input as given.
    """
    element = copy.deepcopy(find_receipt(document))
    try:
        result = XMLVerifier().verify(
            element,
            ca_pem_file=str(trusted_roots),
            id_attribute="Id",
            expect_config=SignatureConfiguration(
                location="./",
                signature_methods=frozenset(_ALGORITHMS.values()),
                digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
            ),
        )
    except (InvalidSignature, InvalidCertificate, InvalidInput) as exc:
        raise ReceiptInvalid(str(exc)) from None
    if not isinstance(result, VerifyResult):
        raise ReceiptInvalid("meer dan één handtekening")
    signed = result.signed_xml
    if signed is None or signed.tag != ROOT:
        raise ReceiptInvalid("de handtekening dekt geen Afleverbevestiging")
    receipt = from_element(signed)
    cert = _signing_certificate(result.signature_xml, result.signature_key)
    serials = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    signer_oin = str(serials[0].value) if serials else None
    if signer_oin != receipt.receiver_oin:
        # Any certificate under the root can sign XML; only the receiver's own proves receipt.
        raise ReceiptInvalid(
            f"ondertekend door OIN {signer_oin}, maar de ontvanger is {receipt.receiver_oin}"
        )
    return VerifiedReceipt(
        receipt=receipt,
        signer_subject=cert.subject.rfc4514_string(),
        signer_oin=signer_oin,
        element=signed,
    )

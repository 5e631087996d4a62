"""Signing and verifying Afleverbevestigingen (enveloped XMLDSig, exclusive c14n).

The signature references the receipt by its `Id` and carries the signing certificate and its
intermediates, so anyone holding only the root can check it, with our code or with
`xmlsec1 --verify --trusted-pem ROOT --id-attr:Id Afleverbevestiging FILE`.

Signing does only what this one signature shape needs: every receipt has the same
SignedInfo but for its Reference URI and DigestValue, and the same KeyInfo. So each signer
canonicalises and serialises its ds:Signature once, with markers where those values go, and
per receipt joins bytes: the receipt written in canonical form (`model.canonical`, its
digest), the canonical SignedInfo around that digest (what is signed), one signature with
`cryptography`. The signed document stays bytes (`signed_xml`), parsed into an element only
for a message that is signed again as a whole (`sign`). A generic signer (signxml) spends
most of its time discovering that shape again for every receipt.
Verification stays with signxml, which checks everything a foreign signature may vary.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidCertificate, InvalidInput, InvalidSignature
from signxml.verifier import SignatureConfiguration, VerifyResult, XMLVerifier

from adapter.errors import AdapterError
from adapter.metrics import SIGN_SECONDS
from adapter.receipts.model import NS, ROOT, Receipt, canonical, from_element, parse_own

DSIG = "http://www.w3.org/2000/09/xmldsig#"
_DS = f"{{{DSIG}}}"
_EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
_ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
_ALGORITHMS = {
    "ecdsa-sha256": SignatureMethod.ECDSA_SHA256,
    "rsa-sha256": SignatureMethod.RSA_SHA256,
}
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


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
        self.certificates = certificates
        self.algorithm = algorithm
        self._signed_info, self._signature_markup = _signature_pieces(
            _signature_template(method.value, certificates)
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
        """The signed Afleverbevestiging element, for a message that is signed as a whole
        after it is put in (WS-Security, ebMS); `signed_xml` is the same signature as bytes."""
        return parse_own(self.signed_xml(receipt))

    def signed_xml(self, receipt: Receipt) -> bytes:
        """The signed Afleverbevestiging document (UTF-8, no XML declaration): what the store
        keeps and an answer carries as it is, so no tree is built for it."""
        with SIGN_SECONDS.time():
            return self._sign(receipt)

    def _sign(self, receipt: Receipt) -> bytes:
        unsigned = canonical(receipt)
        # The enveloped-signature transform removes the Signature again, so the digest is
        # that of the receipt before the Signature is added.
        digest = base64.b64encode(hashlib.sha256(unsigned).digest())
        reference = f"#{receipt.xml_id}".encode("ascii")
        head, middle, tail = self._signed_info
        value = base64.b64encode(self._signature(head + reference + middle + digest + tail))
        open_, after_reference, after_digest, close = self._signature_markup
        signature = open_ + reference + after_reference + digest + after_digest + value + close
        closing = unsigned.rindex(b"</")
        return unsigned[:closing] + signature + unsigned[closing:]

    def _signature(self, data: bytes) -> bytes:
        key = self.private_key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            # XMLDSig wants r and s as two fixed-width big-endian integers, not DER.
            r, s = decode_dss_signature(key.sign(data, _ECDSA_SHA256))
            width = (key.curve.key_size + 7) // 8
            return r.to_bytes(width, "big") + s.to_bytes(width, "big")
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


# Markers where a receipt's own values go: characters no URI, base64 or element name holds.
_REFERENCE, _DIGEST, _VALUE = "@reference@", "@digest@", "@value@"


def _signature_pieces(
    signature: etree._Element,
) -> tuple[tuple[bytes, bytes, bytes], tuple[bytes, bytes, bytes, bytes]]:
    """The canonical SignedInfo and the serialised ds:Signature of `signature`, each cut at
    the markers of the Reference URI, the DigestValue (and the SignatureValue).

    SignedInfo is canonicalised inside a receipt, as a verifier does: exclusive c14n renders
    only the namespaces it uses, so the receipt's own cannot change its bytes.
    """
    signed_info, reference = signature[0], signature[0][2]
    reference.set("URI", _REFERENCE)
    reference[2].text = _DIGEST
    signature[1].text = _VALUE
    markup = etree.tostring(signature)
    etree.Element(ROOT, nsmap={None: NS}).append(signature)
    canonical_info = etree.tostring(signed_info, method="c14n", exclusive=True)
    head, rest = canonical_info.split(_REFERENCE.encode())
    middle, tail = rest.split(_DIGEST.encode())
    open_, rest = markup.split(_REFERENCE.encode())
    after_reference, rest = rest.split(_DIGEST.encode())
    after_digest, close = rest.split(_VALUE.encode())
    return (head, middle, tail), (open_, after_reference, after_digest, close)


def _signature_template(method: str, certificates: list[x509.Certificate]) -> etree._Element:
    """The ds:Signature every receipt of this signer gets, with an empty Reference URI,
    DigestValue and SignatureValue, and KeyInfo holding the certificates (leaf first)."""
    signature = etree.Element(f"{_DS}Signature", nsmap={"ds": DSIG})
    signed_info = etree.SubElement(signature, f"{_DS}SignedInfo")
    etree.SubElement(signed_info, f"{_DS}CanonicalizationMethod", Algorithm=_EXC_C14N)
    etree.SubElement(signed_info, f"{_DS}SignatureMethod", Algorithm=method)
    reference = etree.SubElement(signed_info, f"{_DS}Reference", URI="")
    transforms = etree.SubElement(reference, f"{_DS}Transforms")
    etree.SubElement(transforms, f"{_DS}Transform", Algorithm=_ENVELOPED)
    etree.SubElement(transforms, f"{_DS}Transform", Algorithm=_EXC_C14N)
    etree.SubElement(reference, f"{_DS}DigestMethod", Algorithm=_SHA256)
    etree.SubElement(reference, f"{_DS}DigestValue")
    etree.SubElement(signature, f"{_DS}SignatureValue")
    x509_data = etree.SubElement(etree.SubElement(signature, f"{_DS}KeyInfo"), f"{_DS}X509Data")
    for certificate in certificates:
        pem = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
        # The PEM body as it is: base64 in lines of 64, as signxml wrote it before.
        body = "".join(line + "\n" for line in pem.splitlines() if not line.startswith("-----"))
        etree.SubElement(x509_data, f"{_DS}X509Certificate").text = body
    return signature


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

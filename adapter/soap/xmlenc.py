"""XML Encryption as Digikoppeling allows it, for both profiles (WUS 2W-be-SE, ebMS osb-*-e).

The algorithm URIs (and the XMLDSig signature and digest URIs Digikoppeling allows, BEV
SIGN001-004), and the primitives under the profiles' layouts: read a CipherValue, unwrap an
xenc:EncryptedKey with our RSA key, decrypt an xenc:EncryptedData; encrypt data under AES-GCM,
wrap its key for a certificate (RSA-OAEP, SHA-256, MGF1-SHA-256), write CipherData.

Where the EncryptedKey is found and what the plaintext becomes is the profile's: WS-Security
keeps the key in its header, ebMS in the EncryptedData's KeyInfo. Which data algorithms are
accepted is the profile's too, and an argument here: WUS decrypts AES-CBC from legacy senders,
ebMS only AES-GCM. Every refusal is one `XmlEncryptionRefused` whose `kind` the profile maps
onto its own fault.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping, Set
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from lxml import etree

from adapter.errors import XmlEncryptionRefused

DSIG = "http://www.w3.org/2000/09/xmldsig#"
XENC = "http://www.w3.org/2001/04/xmlenc#"
XENC11 = "http://www.w3.org/2009/xmlenc11#"
_DSIG_MORE = "http://www.w3.org/2001/04/xmldsig-more#"

SHA1 = f"{DSIG}sha1"
SHA256, SHA384, SHA512 = f"{XENC}sha256", f"{_DSIG_MORE}sha384", f"{XENC}sha512"
RSA_SHA256, RSA_SHA384, RSA_SHA512 = (f"{_DSIG_MORE}rsa-sha{bits}" for bits in (256, 384, 512))
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
# Digikoppeling (BEV SIGN001/SIGN004): RSA with SHA-256 or stronger; never SHA-1.
SIGNATURE_METHODS = frozenset({RSA_SHA256, RSA_SHA384, RSA_SHA512})
DIGEST_HASHES: Mapping[str, type[hashes.HashAlgorithm]] = {
    SHA256: hashes.SHA256,
    SHA384: hashes.SHA384,
    SHA512: hashes.SHA512,
}
DIGEST_METHODS = frozenset(DIGEST_HASHES)

AES128_GCM, AES256_GCM = f"{XENC11}aes128-gcm", f"{XENC11}aes256-gcm"
AES128_CBC, AES256_CBC = f"{XENC}aes128-cbc", f"{XENC}aes256-cbc"
# ENC001-ENC003: AES-GCM for data. CBC is no choice of ours; a profile may accept it.
GCM = frozenset({AES128_GCM, AES256_GCM})
LEGACY_CBC = frozenset({AES128_CBC, AES256_CBC})
KEY_BYTES: Mapping[str, int] = {AES128_GCM: 16, AES256_GCM: 32, AES128_CBC: 16, AES256_CBC: 32}
CONTENT, ELEMENT = f"{XENC}Content", f"{XENC}Element"  # EncryptedData Type

# ENC004: RSA-OAEP for keys.
RSA_OAEP_MGF1P, RSA_OAEP = f"{XENC}rsa-oaep-mgf1p", f"{XENC11}rsa-oaep"
KEY_TRANSPORT = frozenset({RSA_OAEP_MGF1P, RSA_OAEP})
MGF1_SHA1, MGF1_SHA256, MGF1_SHA512 = (f"{XENC11}mgf1sha{bits}" for bits in (1, 256, 512))
OAEP_DIGESTS: Mapping[str, type[hashes.HashAlgorithm]] = {
    SHA1: hashes.SHA1,  # OAEP's default; no signature hash, so BEV allows it
    SHA256: hashes.SHA256,
    SHA512: hashes.SHA512,
}
MGF_DIGESTS: Mapping[str, type[hashes.HashAlgorithm]] = {
    MGF1_SHA1: hashes.SHA1,
    MGF1_SHA256: hashes.SHA256,
    MGF1_SHA512: hashes.SHA512,
}

_GCM_IV_BYTES = 12
_CBC_IV_BYTES = 16
_DS, _XENC = f"{{{DSIG}}}", f"{{{XENC}}}"
_GCM_ADVICE = f"gebruik AES-256-GCM ({AES256_GCM}) of AES-128-GCM ({AES128_GCM})"


class RecipientKey(Protocol):
    """Our key pair as decryption needs it (`WssCredentials` is one)."""

    @property
    def private_key(self) -> rsa.RSAPrivateKey: ...

    @property
    def certificate(self) -> x509.Certificate: ...


# --- decrypting ---------------------------------------------------------------------------------


def data_algorithm(encrypted: etree._Element, allowed: Set[str]) -> str:
    """The data algorithm of an xenc:EncryptedData, refused unless the profile allows it."""
    algorithm = _method_algorithm(encrypted)
    if not algorithm:
        raise XmlEncryptionRefused(
            "malformed", f"xenc:EncryptedData noemt geen EncryptionMethod Algorithm; {_GCM_ADVICE}"
        )
    if algorithm not in allowed:
        raise XmlEncryptionRefused(
            "algorithm", f"versleuteling {algorithm} is niet toegestaan; {_GCM_ADVICE}"
        )
    return algorithm


def unwrap_key(encrypted_key: etree._Element, recipient: RecipientKey) -> bytes:
    """The session key of an xenc:EncryptedKey, RSA-OAEP-decrypted with our private key."""
    method = encrypted_key.find(f"{_XENC}EncryptionMethod")
    algorithm = _method_algorithm(encrypted_key)
    if method is None or algorithm not in KEY_TRANSPORT:
        raise XmlEncryptionRefused(
            "algorithm",
            f"sleuteltransport {algorithm or '(geen)'} is niet toegestaan; "
            f"gebruik {RSA_OAEP} of {RSA_OAEP_MGF1P}",
        )
    digest = method.find(f"{_DS}DigestMethod")
    digest_uri = SHA1 if digest is None else digest.get("Algorithm") or ""
    # rsa-oaep-mgf1p fixes MGF1 with SHA-1; only XML Encryption 1.1's rsa-oaep names one.
    mgf = method.find(f"{{{XENC11}}}MGF")
    mgf_uri = MGF1_SHA1
    if mgf is not None and algorithm == RSA_OAEP:
        mgf_uri = mgf.get("Algorithm") or ""
    if digest_uri not in OAEP_DIGESTS or mgf_uri not in MGF_DIGESTS:
        raise XmlEncryptionRefused(
            "algorithm",
            f"RSA-OAEP met digest {digest_uri or '(geen)'} en MGF {mgf_uri or '(geen)'} wordt "
            f"niet ondersteund; gebruik digest {SHA256} met MGF {MGF1_SHA256}",
        )
    try:
        return recipient.private_key.decrypt(
            cipher_value(encrypted_key), _oaep(OAEP_DIGESTS[digest_uri], MGF_DIGESTS[mgf_uri])
        )
    except ValueError:
        raise XmlEncryptionRefused(
            "not-for-our-key",
            "de sessiesleutel kan niet worden ontsleuteld: hij is niet voor onze sleutel "
            f"versleuteld; versleutel hem voor ons certificaat "
            f"({recipient.certificate.subject.rfc4514_string()})",
        ) from None


def decrypt_data(encrypted: etree._Element, algorithm: str, session_key: bytes) -> bytes:
    """The plaintext of an xenc:EncryptedData under `algorithm`, as `data_algorithm` allowed
    it: AES-GCM (IV, ciphertext, tag) or AES-CBC (IV, ciphertext with XML Encryption padding)."""
    if len(session_key) != KEY_BYTES[algorithm]:
        raise XmlEncryptionRefused(
            "tampered",
            f"de sessiesleutel ({len(session_key)} bytes) past niet bij {algorithm} "
            f"({KEY_BYTES[algorithm]} bytes); versleutel met een sleutel van die lengte",
        )
    data = cipher_value(encrypted)
    if algorithm in GCM:
        try:
            return AESGCM(session_key).decrypt(data[:_GCM_IV_BYTES], data[_GCM_IV_BYTES:], None)
        except (InvalidTag, ValueError):
            raise XmlEncryptionRefused(
                "tampered",
                "de inhoud kan niet worden ontsleuteld: de AES-GCM-tag klopt niet, dus is de "
                "inhoud onderweg gewijzigd of met een andere sessiesleutel versleuteld",
            ) from None
    try:
        decryptor = Cipher(algorithms.AES(session_key), modes.CBC(data[:_CBC_IV_BYTES])).decryptor()
        padded = decryptor.update(data[_CBC_IV_BYTES:]) + decryptor.finalize()
    except ValueError:
        padded = b""
    # XML Encryption's padding: the last byte says how many bytes to drop, the rest is free.
    if not padded or not 0 < padded[-1] <= _CBC_IV_BYTES:
        raise XmlEncryptionRefused(
            "tampered",
            "de inhoud kan niet worden ontsleuteld: de AES-CBC-opvulling klopt niet (sleutel "
            f"of inhoud klopt niet); {_GCM_ADVICE}",
        )
    return padded[: -padded[-1]]


def cipher_value(element: etree._Element) -> bytes:
    """The bytes of an element's xenc:CipherData/xenc:CipherValue."""
    value = element.findtext(f"{_XENC}CipherData/{_XENC}CipherValue")
    if value is None:
        raise XmlEncryptionRefused(
            "malformed",
            f"{etree.QName(element).localname} heeft geen xenc:CipherData/xenc:CipherValue",
        )
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except ValueError:
        raise XmlEncryptionRefused(
            "malformed",
            f"de xenc:CipherValue van {etree.QName(element).localname} is geen base64",
        ) from None


# --- encrypting ---------------------------------------------------------------------------------


def encrypt_data(plaintext: bytes, algorithm: str = AES256_GCM) -> tuple[bytes, bytes]:
    """A new session key, and `plaintext` under it as a CipherValue holds it (IV, ciphertext,
    tag): we encrypt with AES-GCM only."""
    if algorithm not in GCM:
        raise ValueError(f"encryption algorithm {algorithm!r}: use AES-128-GCM or AES-256-GCM")
    session_key = AESGCM.generate_key(bit_length=KEY_BYTES[algorithm] * 8)
    iv = os.urandom(_GCM_IV_BYTES)
    return session_key, iv + AESGCM(session_key).encrypt(iv, plaintext, None)


def wrap_key(session_key: bytes, recipient: x509.Certificate) -> bytes:
    """`session_key` RSA-OAEP-encrypted (SHA-256, MGF1-SHA-256) for `recipient`, as the
    EncryptionMethod `add_key_transport` writes says."""
    public_key = recipient.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise ValueError("RSA-OAEP key transport needs an RSA certificate")
    return public_key.encrypt(session_key, _oaep(hashes.SHA256, hashes.SHA256))


def add_key_transport(encrypted_key: etree._Element) -> None:
    """The EncryptionMethod of a key that `wrap_key` wrapped, as the first child."""
    method = etree.SubElement(encrypted_key, f"{_XENC}EncryptionMethod", Algorithm=RSA_OAEP)
    etree.SubElement(method, f"{_DS}DigestMethod", Algorithm=SHA256, nsmap={"ds": DSIG})
    etree.SubElement(method, f"{{{XENC11}}}MGF", Algorithm=MGF1_SHA256, nsmap={"xenc11": XENC11})


def add_cipher_data(parent: etree._Element, value: bytes) -> None:
    cipher_data = etree.SubElement(parent, f"{_XENC}CipherData")
    etree.SubElement(cipher_data, f"{_XENC}CipherValue").text = base64.b64encode(value).decode()


def _method_algorithm(element: etree._Element) -> str:
    method = element.find(f"{_XENC}EncryptionMethod")
    return "" if method is None else method.get("Algorithm") or ""


def _oaep(digest: type[hashes.HashAlgorithm], mgf: type[hashes.HashAlgorithm]) -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(mgf()), algorithm=digest(), label=None)

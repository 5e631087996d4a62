"""adapter.soap.xmlenc: XML Encryption's primitives, as both profiles use them."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from lxml import etree

from adapter.ebms import security as ebms_security
from adapter.errors import XmlEncryptionRefused
from adapter.pki.devca import new_hierarchy
from adapter.soap import xmlenc
from adapter.soap.wssecurity import WssCredentials
from adapter.soap.xmlenc import (
    AES128_CBC,
    AES128_GCM,
    AES256_CBC,
    AES256_GCM,
    DSIG,
    GCM,
    LEGACY_CBC,
    RSA_OAEP_MGF1P,
    XENC,
    XENC11,
)

_XENC = f"{{{XENC}}}"
_PARTIES = (("MijnOverheid", "00000004003214345001"), ("Gemeente", "00000099000000002000"))


@dataclass(frozen=True)
class Pair:
    ours: WssCredentials
    theirs: WssCredentials  # another organisation's key


@pytest.fixture(scope="module")
def pair() -> Pair:
    tsp = new_hierarchy("Xmlenc").tsp
    issued = [tsp.issue_tls_certificate(name, oin=oin) for name, oin in _PARTIES]
    credentials = []
    for one in issued:
        assert isinstance(one.private_key, rsa.RSAPrivateKey)
        credentials.append(WssCredentials(one.private_key, one.certificate))
    return Pair(*credentials)


def _encrypted_data(algorithm: str, cipher_value: bytes) -> etree._Element:
    data = etree.Element(f"{_XENC}EncryptedData", nsmap={"xenc": XENC, "ds": DSIG})
    etree.SubElement(data, f"{_XENC}EncryptionMethod", Algorithm=algorithm)
    xmlenc.add_cipher_data(data, cipher_value)
    return data


def _encrypted_key(session_key: bytes, recipient: x509.Certificate) -> etree._Element:
    key = etree.Element(f"{_XENC}EncryptedKey", nsmap={"xenc": XENC})
    xmlenc.add_key_transport(key)
    xmlenc.add_cipher_data(key, xmlenc.wrap_key(session_key, recipient))
    return key


def _sealed(
    plaintext: bytes, recipient: x509.Certificate, algorithm: str = AES256_GCM
) -> tuple[etree._Element, etree._Element]:
    session_key, value = xmlenc.encrypt_data(plaintext, algorithm)
    return _encrypted_data(algorithm, value), _encrypted_key(session_key, recipient)


def _opened(
    data: etree._Element,
    key: etree._Element,
    ours: WssCredentials,
    allowed: frozenset[str] = GCM,
) -> bytes:
    algorithm = xmlenc.data_algorithm(data, allowed)
    return xmlenc.decrypt_data(data, algorithm, xmlenc.unwrap_key(key, ours))


def _refusal(call: Callable[..., object], *args: object) -> XmlEncryptionRefused:
    with pytest.raises(XmlEncryptionRefused) as refused:
        call(*args)
    return refused.value


def _cbc(session_key: bytes, plaintext_blocks: bytes) -> bytes:
    """IV and ciphertext of whole blocks as given: the padding is the caller's."""
    iv = os.urandom(16)
    encryptor = Cipher(algorithms.AES(session_key), modes.CBC(iv)).encryptor()
    return iv + encryptor.update(plaintext_blocks) + encryptor.finalize()


def _set_cipher_value(element: etree._Element, text: str) -> None:
    value = element.find(f"{_XENC}CipherData/{_XENC}CipherValue")
    assert value is not None
    value.text = text


# --- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", [AES256_GCM, AES128_GCM])
def test_what_is_encrypted_for_our_certificate_decrypts_with_our_key(
    pair: Pair, algorithm: str
) -> None:
    data, key = _sealed(b"<geheim>999993653</geheim>", pair.ours.certificate, algorithm)
    assert b"999993653" not in etree.tostring(data)
    assert _opened(data, key, pair.ours) == b"<geheim>999993653</geheim>"


def test_a_wrapped_key_unwraps_to_the_same_key(pair: Pair) -> None:
    session_key = os.urandom(32)
    assert xmlenc.unwrap_key(_encrypted_key(session_key, pair.ours.certificate), pair.ours) == (
        session_key
    )


def test_the_key_transport_written_is_rsa_oaep_sha256_with_mgf1_sha256(pair: Pair) -> None:
    key = _encrypted_key(os.urandom(32), pair.ours.certificate)
    method = key.find(f"{_XENC}EncryptionMethod")
    assert method is not None and method.get("Algorithm") == xmlenc.RSA_OAEP
    digest, mgf = method.find(f"{{{DSIG}}}DigestMethod"), method.find(f"{{{XENC11}}}MGF")
    assert digest is not None and digest.get("Algorithm") == xmlenc.SHA256
    assert mgf is not None and mgf.get("Algorithm") == xmlenc.MGF1_SHA256


def test_a_legacy_rsa_oaep_mgf1p_key_with_the_sha1_defaults_unwraps(pair: Pair) -> None:
    session_key = os.urandom(16)
    public_key = pair.ours.certificate.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    # SHA-1 is what this URI means; OAEP's hash is no signature hash, so BEV allows it.
    sha1 = hashes.SHA1()  # noqa: S303
    wrapped = public_key.encrypt(
        session_key, padding.OAEP(mgf=padding.MGF1(sha1), algorithm=sha1, label=None)
    )
    key = etree.Element(f"{_XENC}EncryptedKey")
    etree.SubElement(key, f"{_XENC}EncryptionMethod", Algorithm=RSA_OAEP_MGF1P)
    xmlenc.add_cipher_data(key, wrapped)
    assert xmlenc.unwrap_key(key, pair.ours) == session_key


@pytest.mark.parametrize(("algorithm", "size"), [(AES128_CBC, 16), (AES256_CBC, 32)])
def test_cbc_decrypts_where_the_caller_allows_it(pair: Pair, algorithm: str, size: int) -> None:
    session_key = os.urandom(size)
    # XML Encryption's padding: free bytes, then the count of bytes added.
    padded = b"legacy" + os.urandom(9) + bytes([10])
    data = _encrypted_data(algorithm, _cbc(session_key, padded))
    key = _encrypted_key(session_key, pair.ours.certificate)
    assert _opened(data, key, pair.ours, GCM | LEGACY_CBC) == b"legacy"


# --- refusals, by kind --------------------------------------------------------------------------


def test_cbc_is_refused_where_the_caller_allows_only_gcm(pair: Pair) -> None:
    session_key = os.urandom(32)
    data = _encrypted_data(AES256_CBC, _cbc(session_key, b"x" * 15 + b"\x01"))
    refused = _refusal(xmlenc.data_algorithm, data, GCM)
    assert refused.kind == "algorithm" and AES256_CBC in refused.reason
    assert AES256_GCM in refused.reason  # what to use instead


def test_an_unknown_data_algorithm_is_refused_by_name() -> None:
    refused = _refusal(xmlenc.data_algorithm, _encrypted_data("urn:example:rot13", b"x"), GCM)
    assert refused.kind == "algorithm" and "urn:example:rot13" in refused.reason


def test_an_encrypted_data_without_algorithm_is_malformed() -> None:
    data = etree.Element(f"{_XENC}EncryptedData")
    xmlenc.add_cipher_data(data, b"x")
    assert _refusal(xmlenc.data_algorithm, data, GCM).kind == "malformed"


@pytest.mark.parametrize(
    "transport",
    ["http://www.w3.org/2001/04/xmlenc#rsa-1_5", None],
    ids=["rsa-1_5", "no-method"],
)
def test_a_key_transport_other_than_rsa_oaep_is_refused(pair: Pair, transport: str | None) -> None:
    key = _encrypted_key(os.urandom(32), pair.ours.certificate)
    method = key.find(f"{_XENC}EncryptionMethod")
    assert method is not None
    if transport is None:
        key.remove(method)
    else:
        method.set("Algorithm", transport)
    refused = _refusal(xmlenc.unwrap_key, key, pair.ours)
    assert refused.kind == "algorithm" and xmlenc.RSA_OAEP in refused.reason


def test_an_oaep_digest_outside_the_table_is_refused(pair: Pair) -> None:
    key = _encrypted_key(os.urandom(32), pair.ours.certificate)
    digest = key.find(f"{_XENC}EncryptionMethod/{{{DSIG}}}DigestMethod")
    assert digest is not None
    digest.set("Algorithm", xmlenc.SHA384)  # a signature digest, not one OAEP here takes
    refused = _refusal(xmlenc.unwrap_key, key, pair.ours)
    assert refused.kind == "algorithm" and xmlenc.SHA384 in refused.reason


def test_a_key_wrapped_for_another_certificate_is_not_for_our_key(pair: Pair) -> None:
    key = _encrypted_key(os.urandom(32), pair.theirs.certificate)
    refused = _refusal(xmlenc.unwrap_key, key, pair.ours)
    assert refused.kind == "not-for-our-key"
    assert pair.ours.certificate.subject.rfc4514_string() in refused.reason


def test_a_missing_cipher_value_is_malformed() -> None:
    key = etree.Element(f"{_XENC}EncryptedKey")
    refused = _refusal(xmlenc.cipher_value, key)
    assert refused.kind == "malformed" and "EncryptedKey" in refused.reason


def test_a_cipher_value_that_is_not_base64_is_malformed(pair: Pair) -> None:
    data, _ = _sealed(b"x", pair.ours.certificate)
    _set_cipher_value(data, "geen base64!")
    refused = _refusal(xmlenc.cipher_value, data)
    assert refused.kind == "malformed" and "base64" in refused.reason


def test_a_changed_gcm_ciphertext_is_tampered(pair: Pair) -> None:
    data, key = _sealed(b"x" * 40, pair.ours.certificate)
    value = bytearray(xmlenc.cipher_value(data))
    value[20] ^= 1
    _set_cipher_value(data, base64.b64encode(bytes(value)).decode())
    refused = _refusal(_opened, data, key, pair.ours)
    assert refused.kind == "tampered" and "AES-GCM-tag" in refused.reason


def test_a_session_key_of_the_wrong_size_is_tampered(pair: Pair) -> None:
    session_key, value = xmlenc.encrypt_data(b"x", AES128_GCM)
    data = _encrypted_data(AES256_GCM, value)
    refused = _refusal(xmlenc.decrypt_data, data, AES256_GCM, session_key)
    assert refused.kind == "tampered" and "16 bytes" in refused.reason


@pytest.mark.parametrize(
    "last_block",
    [b"x" * 15 + b"\x00", b"x" * 15 + b"\x11"],
    ids=["count-zero", "count-past-the-block"],
)
def test_cbc_padding_that_does_not_hold_is_tampered(last_block: bytes) -> None:
    session_key = os.urandom(32)
    data = _encrypted_data(AES256_CBC, _cbc(session_key, last_block))
    refused = _refusal(xmlenc.decrypt_data, data, AES256_CBC, session_key)
    assert refused.kind == "tampered" and "AES-CBC" in refused.reason


def test_cbc_ciphertext_of_a_partial_block_is_tampered() -> None:
    session_key = os.urandom(16)
    data = _encrypted_data(AES128_CBC, _cbc(session_key, b"x" * 16)[:-3])
    assert _refusal(xmlenc.decrypt_data, data, AES128_CBC, session_key).kind == "tampered"


# --- what we never write ------------------------------------------------------------------------


def test_we_encrypt_with_gcm_only() -> None:
    with pytest.raises(ValueError, match="AES-128-GCM or AES-256-GCM"):
        xmlenc.encrypt_data(b"x", AES256_CBC)


def test_the_ebms_xmlsec_tables_name_exactly_the_allowed_uris() -> None:
    assert set(ebms_security.SIGNATURE_METHODS) == xmlenc.SIGNATURE_METHODS
    assert set(ebms_security.DIGEST_METHODS) == xmlenc.DIGEST_METHODS == set(xmlenc.DIGEST_HASHES)

"""WS-Security as an organisation's client does it, for tests: sign a request, encrypt its Body,
check a signed answer. Built on python-xmlsec directly, not on adapter.soap.wssecurity, so
what the server accepts and answers is checked against another implementation."""

from __future__ import annotations

import base64
import subprocess
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from adapter.soap.addressing import WSA
from adapter.soap.wssecurity import BASE64_BINARY, WSSE, WSSE11, WSU, X509V3

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
DSIG = "http://www.w3.org/2000/09/xmldsig#"
_WSU_ID = f"{{{WSU}}}Id"
# The parts a 2W-be-S request signs (WB004), by name, so a test can leave one out.
ALL_PARTS = ("Body", "Timestamp", "To", "Action", "MessageID")


def _xs(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def sign_request(
    envelope: bytes,
    key_pem: bytes,
    certificate: x509.Certificate,
    *,
    parts: Sequence[str] = ALL_PARTS,
    created: datetime | None = None,
    expires: timedelta | None = timedelta(minutes=5),
    digest: object = xmlsec.constants.TransformSha256,
    method: object = xmlsec.constants.TransformRsaSha256,
    timestamp: bool = True,
    must_understand: bool = True,
) -> bytes:
    """`envelope` with a wsse:Security header: Timestamp, the certificate as a
    BinarySecurityToken, and a signature with one Reference per named part."""
    root = etree.fromstring(envelope)
    header = root.find(f"{{{SOAP}}}Header")
    body = root.find(f"{{{SOAP}}}Body")
    assert body is not None
    if header is None:
        header = etree.Element(f"{{{SOAP}}}Header")
        body.addprevious(header)
    security = etree.SubElement(header, f"{{{WSSE}}}Security", nsmap={"wsse": WSSE, "wsu": WSU})
    if must_understand:
        security.set(f"{{{SOAP}}}mustUnderstand", "1")
    by_name: dict[str, etree._Element] = {"Body": body}
    if timestamp:
        stamp = etree.SubElement(security, f"{{{WSU}}}Timestamp")
        moment = created or datetime.now(UTC)
        etree.SubElement(stamp, f"{{{WSU}}}Created").text = _xs(moment)
        if expires is not None:
            etree.SubElement(stamp, f"{{{WSU}}}Expires").text = _xs(moment + expires)
        by_name["Timestamp"] = stamp
    for child in header:
        if etree.QName(child).namespace == WSA:
            by_name[etree.QName(child).localname] = child
    token = etree.SubElement(
        security, f"{{{WSSE}}}BinarySecurityToken", EncodingType=BASE64_BINARY, ValueType=X509V3
    )
    token.text = base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()
    token.set(_WSU_ID, f"X509-{uuid.uuid4()}")
    signature = xmlsec.template.create(root, xmlsec.constants.TransformExclC14N, method, ns="ds")
    security.append(signature)
    context = xmlsec.SignatureContext()
    for name in parts:
        element = by_name[name]
        element.set(_WSU_ID, element.get(_WSU_ID) or f"id-{name}-{uuid.uuid4()}")
        reference = xmlsec.template.add_reference(signature, digest, uri=f"#{element.get(_WSU_ID)}")
        xmlsec.template.add_transform(reference, xmlsec.constants.TransformExclC14N)
        context.register_id(element, "Id", WSU)
    key_info = xmlsec.template.ensure_key_info(signature)
    reference = etree.SubElement(
        etree.SubElement(key_info, f"{{{WSSE}}}SecurityTokenReference"), f"{{{WSSE}}}Reference"
    )
    reference.set("URI", f"#{token.get(_WSU_ID)}")
    reference.set("ValueType", X509V3)
    context.key = xmlsec.Key.from_memory(key_pem, xmlsec.constants.KeyDataFormatPem)
    context.sign(signature)
    data: bytes = etree.tostring(root)
    return data


def encrypt_body(envelope: bytes, recipient: x509.Certificate) -> bytes:
    """The Body's content encrypted (AES-256-GCM) with libxmlsec1's EncryptionContext, its
    key RSA-OAEP for `recipient` inside the EncryptedData's KeyInfo."""
    root = etree.fromstring(envelope)
    body = root.find(f"{{{SOAP}}}Body")
    assert body is not None
    payload = body[0]
    template = xmlsec.template.encrypted_data_create(
        root,
        xmlsec.constants.TransformAes256Gcm,
        type=xmlsec.constants.TypeEncElement,
        ns="xenc",
    )
    xmlsec.template.encrypted_data_ensure_cipher_value(template)
    key_info = xmlsec.template.encrypted_data_ensure_key_info(template, ns="dsig")
    encrypted_key = xmlsec.template.add_encrypted_key(key_info, xmlsec.constants.TransformRsaOaep)
    xmlsec.template.encrypted_data_ensure_cipher_value(encrypted_key)
    manager = xmlsec.KeysManager()
    manager.add_key(
        xmlsec.Key.from_memory(
            recipient.public_bytes(serialization.Encoding.PEM),
            xmlsec.constants.KeyDataFormatCertPem,
        )
    )
    context = xmlsec.EncryptionContext(manager)
    context.key = xmlsec.Key.generate(
        xmlsec.constants.KeyDataAes, 256, xmlsec.constants.KeyDataTypeSession
    )
    context.encrypt_xml(template, payload)
    data: bytes = etree.tostring(root)
    return data


def signature_value(envelope: bytes) -> str:
    root = etree.fromstring(envelope)
    value = root.findtext(f".//{{{DSIG}}}SignatureValue") or ""
    return "".join(value.split())


def verify_answer(
    document: etree._Element, certificate: x509.Certificate, *, confirmed: bool = True
) -> str | None:
    """Check the answer's signature with python-xmlsec and the given certificate's key, and
    that it covers its SignatureConfirmation; returns the confirmed SignatureValue. An answer
    to a request whose signature was not verified confirms none (`confirmed=False`)."""
    security = document.find(f"{{{SOAP}}}Header/{{{WSSE}}}Security")
    assert security is not None, etree.tostring(document)
    signature = security.find(f"{{{DSIG}}}Signature")
    context = xmlsec.SignatureContext()
    for element in document.iter():
        if isinstance(element.tag, str) and element.get(_WSU_ID):
            context.register_id(element, "Id", WSU)
    context.key = xmlsec.Key.from_memory(
        certificate.public_bytes(serialization.Encoding.PEM),
        xmlsec.constants.KeyDataFormatCertPem,
    )
    context.verify(signature)
    confirmation = security.find(f"{{{WSSE11}}}SignatureConfirmation")
    if not confirmed:
        assert confirmation is None
        return None
    assert confirmation is not None
    assert confirmation.get(_WSU_ID) in signed_ids(document)
    return confirmation.get("Value")


def signed_ids(document: etree._Element) -> set[str]:
    """The wsu:Ids the answer's signature references."""
    return {
        (reference.get("URI") or "").removeprefix("#")
        for reference in document.iter(f"{{{DSIG}}}Reference")
    }


def token_certificate(document: etree._Element) -> x509.Certificate:
    token = document.find(f".//{{{WSSE}}}BinarySecurityToken")
    assert token is not None
    return x509.load_der_x509_certificate(base64.b64decode(token.text or ""))


def xmlsec1_verifies(answer: Path, certificate: Path) -> subprocess.CompletedProcess[str]:
    """The Debian xmlsec1 tool on a saved answer, with the signer's certificate."""
    id_nodes = [
        f"{SOAP}:Body",
        f"{WSU}:Timestamp",
        f"{WSSE}:BinarySecurityToken",
        f"{WSSE11}:SignatureConfirmation",
        *(f"{WSA}:{name}" for name in ("To", "Action", "MessageID", "RelatesTo")),
    ]
    arguments = [argument for node in id_nodes for argument in ("--id-attr:Id", node)]
    return subprocess.run(
        ["xmlsec1", "--verify", "--pubkey-cert-pem", str(certificate), *arguments, str(answer)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

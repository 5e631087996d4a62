"""The least a ValidateAbonnementen server can do: parse the envelope with lxml and answer
every Klant with isBerichtSturen true. No XSD validation, no authorisation, no storage.

`signed_app` adds what the adapter's receipts cost when signxml makes them: the SHA-256 of the
exclusive-c14n Body and an Afleverbevestiging signed by signxml's XMLSigner (ECDSA P-256) in
the SOAP Header; still nothing stored.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.signer import XMLSigner

from adapter.berichtenbox.abonnementen import SHR, SVC, TYP
from adapter.receipts import Outcome, Receipt
from adapter.receipts.model import to_element

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
RECEIVER_OIN = "00000004003214345001"
# What a safe server parser must refuse anyway; the cost of these settings is lxml's.
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _answer(keys: list[str], header: etree._Element | None) -> bytes:
    envelope = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"s": SOAP})
    soap_header = etree.SubElement(envelope, f"{{{SOAP}}}Header")
    if header is not None:
        soap_header.append(header)
    body = etree.SubElement(envelope, f"{{{SOAP}}}Body")
    response = etree.SubElement(
        body, f"{{{SVC}}}ValidateAbonnementenResponse", nsmap={None: SVC, "t": TYP, "k": SHR}
    )
    result = etree.SubElement(response, f"{{{SVC}}}ValidateAbonnementenResult")
    for key in keys:
        abonnement = etree.SubElement(result, f"{{{TYP}}}Abonnement")
        klant = etree.SubElement(abonnement, f"{{{TYP}}}klant")
        etree.SubElement(klant, f"{{{SHR}}}Key").text = key
        etree.SubElement(klant, f"{{{SHR}}}Rol").text = "Burger"
        etree.SubElement(abonnement, f"{{{TYP}}}isBerichtSturen").text = "true"
    data: bytes = etree.tostring(envelope, xml_declaration=True, encoding="utf-8")
    return data


def _respond(start_response: Callable[..., Any], status: str, data: bytes) -> list[bytes]:
    start_response(
        status,
        [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(data)))],
    )
    return [data]


def _read(environ: dict[str, Any]) -> bytes:
    data: bytes = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    return data


def _request_body(data: bytes) -> tuple[etree._Element, list[str]] | None:
    try:
        envelope = etree.fromstring(data, PARSER)
    except etree.XMLSyntaxError:
        return None
    body = envelope.find(f"{{{SOAP}}}Body")
    if body is None:
        return None
    return body, [key.text or "" for key in body.iter(f"{{{SHR}}}Key")]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    parsed = _request_body(_read(environ))
    if parsed is None:
        return _respond(start_response, "500 Internal Server Error", b"not a SOAP envelope")
    return _respond(start_response, "200 OK", _answer(parsed[1], None))


def signed_app(key_file: Path, cert_file: Path, chain_file: Path) -> WsgiApp:
    """`app` plus a signxml-signed Afleverbevestiging in the Header of every answer."""
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    certificates = x509.load_pem_x509_certificates(cert_file.read_bytes())[:1]
    certificates += x509.load_pem_x509_certificates(chain_file.read_bytes())
    signer = XMLSigner(
        signature_algorithm=SignatureMethod.ECDSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )

    def signed(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        parsed = _request_body(_read(environ))
        if parsed is None:
            return _respond(start_response, "500 Internal Server Error", b"not a SOAP envelope")
        body, keys = parsed
        canonical = etree.tostring(body, method="c14n", exclusive=True)
        receipt = Receipt(
            request_id=str(uuid.uuid4()),
            receiver_oin=RECEIVER_OIN,
            sender_oin="",
            received_at=datetime.now(UTC),
            message_ref=None,
            service="ValidateAbonnementen",
            operation="ValidateAbonnementen",
            body_hash=base64.b64encode(hashlib.sha256(canonical).digest()).decode(),
            outcome=Outcome.accept(),
        )
        element = signer.sign(
            to_element(receipt),
            key=key,
            cert=certificates,
            reference_uri=f"#{receipt.xml_id}",
            id_attribute="Id",
        )
        return _respond(start_response, "200 OK", _answer(keys, element))

    return signed

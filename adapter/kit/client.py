"""A small SOAP client over mutual TLS for the kit's commands (`send-zaak`, `send`).

Leveranciers use it to push a test message with their own certificate (PEM, or the PKCS#12
their SoapUI or Java stack already has) and see the answer and whether its receipt verifies.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import requests
from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    pkcs12,
)
from lxml import etree

from adapter.kit.wire import WireMessage
from adapter.pki.identity import read_identity
from adapter.receipts import ReceiptInvalid, VerifiedReceipt, verify
from adapter.soap.envelope import SOAP_ENV, build_envelope
from adapter.soap.xml import parse_untrusted

_ENV = f"{{{SOAP_ENV}}}"


@dataclass(frozen=True)
class SoapAnswer:
    http_status: int
    document: etree._Element
    payload: etree._Element | None  # the Body child of a normal answer
    faultstring: str | None
    fault_detail: etree._Element | None
    receipt: VerifiedReceipt | None
    receipt_problem: str | None  # why the receipt did not verify, or that there was none
    request: WireMessage | None = None  # what went over the wire, for `--save`
    response: WireMessage | None = None


class MtlsClient:
    """POSTs SOAP envelopes with a client certificate; use as a context manager."""

    def __init__(
        self, certificate: Path, key: Path | None, trusted_root: Path, password: str | None = None
    ):
        self.trusted_root = trusted_root
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        if certificate.suffix.lower() in (".p12", ".pfx"):
            certificate, key = self._unpack_pkcs12(certificate, password)
        if key is None:
            raise ValueError("--key is required with a PEM certificate")
        self.certificate_file, self.key_file = certificate, key
        self.session = requests.Session()
        self.session.cert = (str(certificate), str(key))
        self.session.verify = str(trusted_root)
        # Environment CA bundles (REQUESTS_CA_BUNDLE) would silently replace our root.
        self.session.trust_env = False

    def _unpack_pkcs12(self, bundle: Path, password: str | None) -> tuple[Path, Path]:
        key, leaf, chain = pkcs12.load_key_and_certificates(
            bundle.read_bytes(), password.encode() if password is not None else None
        )
        if key is None or leaf is None:
            raise ValueError(f"{bundle}: no key and certificate in this PKCS#12 file")
        self._tempdir = tempfile.TemporaryDirectory(prefix="dk-adapter-")
        directory = Path(self._tempdir.name)
        cert_file, key_file = directory / "client.pem", directory / "client.key"
        cert_file.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in [leaf, *chain]))
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        return cert_file, key_file

    def __enter__(self) -> MtlsClient:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.session.close()
        if self._tempdir is not None:
            self._tempdir.cleanup()

    def oin(self) -> str:
        """The OIN this client authenticates as, from its certificate."""
        leaf = x509.load_pem_x509_certificates(self.certificate_file.read_bytes())[0]
        oin = read_identity(leaf.public_bytes(Encoding.DER)).oin
        if oin is None:
            raise ValueError(f"{self.certificate_file}: the certificate carries no OIN")
        return oin

    def post(self, url: str, body: bytes, content_type: str, soap_action: str) -> requests.Response:
        headers = {"Content-Type": content_type, "SOAPAction": f'"{soap_action}"'}
        return self.session.post(url, data=body, headers=headers, timeout=120)

    def call(self, url: str, payload: etree._Element, soap_action: str) -> SoapAnswer:
        content_type = "text/xml; charset=utf-8"
        request = build_envelope(payload)
        response = self.post(url, request, content_type, soap_action)
        document = parse_untrusted(response.content)
        body = document.find(f"{_ENV}Body")
        child = body[0] if body is not None and len(body) else None
        fault = child if child is not None and child.tag == f"{_ENV}Fault" else None
        detail = fault.find("detail") if fault is not None else None
        try:
            receipt, problem = verify(document, self.trusted_root), None
        except ReceiptInvalid as exc:
            receipt, problem = None, str(exc)
        return SoapAnswer(
            http_status=response.status_code,
            document=document,
            payload=None if fault is not None else child,
            faultstring=fault.findtext("faultstring") if fault is not None else None,
            fault_detail=detail[0] if detail is not None and len(detail) else None,
            receipt=receipt,
            receipt_problem=problem,
            request=WireMessage(content_type, request),
            response=WireMessage(response.headers.get("Content-Type", ""), response.content),
        )

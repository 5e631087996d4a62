"""Building requests and reading answers in tests, the way a client on the wire would."""

from __future__ import annotations

from pathlib import Path

import requests
import xmlsec
from lxml import etree
from zeep import Client
from zeep.plugins import HistoryPlugin
from zeep.transports import Transport

from adapter.berichtenbox.abonnementen import ACTION, SHR, SVC, TYP
from adapter.receipts.model import NS as RECEIPT_NS
from adapter.soap.addressing import WSA

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"


def aanvraag(
    keys: list[str],
    leverancier: str,
    type_code: str = "BESLUIT",
    headers: str = "",
) -> bytes:
    klanten = "".join(
        f"<k:Klant><k:Key>{key}</k:Key><k:Rol>Burger</k:Rol></k:Klant>" for key in keys
    )
    return f"""<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="{SOAP}"><s:Header>{headers}</s:Header><s:Body>
<ValidateAbonnementen xmlns="{SVC}" xmlns:t="{TYP}" xmlns:k="{SHR}">
<validateAbonnementenAanvraag>
<t:berichtleverancierCode>{leverancier}</t:berichtleverancierCode>
<t:berichtTypeCode>{type_code}</t:berichtTypeCode>
<t:klanten>{klanten}</t:klanten>
</validateAbonnementenAanvraag></ValidateAbonnementen></s:Body></s:Envelope>""".encode()


def addressing(
    to: str, message_id: str = "urn:uuid:2b1c5a0e-0000-4000-8000-000000000001", action: str = ACTION
) -> str:
    parts = [f'<wsa:To xmlns:wsa="{WSA}">{to}</wsa:To>' if to else ""]
    if action:
        parts.append(f'<wsa:Action xmlns:wsa="{WSA}">{action}</wsa:Action>')
    if message_id:
        parts.append(f'<wsa:MessageID xmlns:wsa="{WSA}">{message_id}</wsa:MessageID>')
    return "".join(parts)


def post(
    url: str,
    body: bytes,
    cert: tuple[str, str],
    root: Path,
    soap_action: str | None = f'"{ACTION}"',
) -> requests.Response:
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    if soap_action is not None:
        headers["SOAPAction"] = soap_action
    return requests.post(url, data=body, headers=headers, cert=cert, verify=str(root), timeout=30)


def zeep_client(wsdl_url: str, cert: tuple[str, str], root: Path) -> tuple[Client, HistoryPlugin]:
    """A zeep client over mutual TLS that keeps the last envelopes sent and received."""
    session = requests.Session()
    session.cert = cert
    session.verify = str(root)
    # REQUESTS_CA_BUNDLE in the environment would otherwise override session.verify.
    session.trust_env = False
    history = HistoryPlugin()
    return Client(wsdl_url, transport=Transport(session=session), plugins=[history]), history


def fault_of(response: requests.Response) -> tuple[str, str, str | None]:
    """faultcode, faultstring and the detail Message of a SOAP fault response."""
    document = etree.fromstring(response.content)
    fault = document.find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    assert fault is not None, response.text
    message = fault.find(f"detail/*/{{{SHR}}}Message")
    return (
        fault.findtext("faultcode") or "",
        fault.findtext("faultstring") or "",
        message.text if message is not None else None,
    )


def receipt_element(document: etree._Element) -> etree._Element | None:
    return document.find(f"{{{SOAP}}}Header/{{{RECEIPT_NS}}}Afleverbevestiging")


def receipt_text(document: etree._Element, path: str) -> str | None:
    receipt = receipt_element(document)
    assert receipt is not None
    ns = {"a": RECEIPT_NS}
    return receipt.findtext(path, namespaces=ns)


def verify_with_libxmlsec(document: etree._Element, root: Path) -> None:
    """Check the receipt with libxmlsec1 (python-xmlsec): independent of signxml and of us."""
    receipt = receipt_element(document)
    assert receipt is not None
    xmlsec.tree.add_ids(receipt, ["Id"])
    signature = xmlsec.tree.find_node(receipt, xmlsec.constants.NodeSignature)
    reference = signature.find(".//{http://www.w3.org/2000/09/xmldsig#}Reference")
    # The signature must cover the receipt itself, not some other element.
    assert reference.get("URI") == f"#{receipt.get('Id')}"
    manager = xmlsec.KeysManager()
    manager.load_cert(
        str(root), xmlsec.constants.KeyDataFormatPem, xmlsec.constants.KeyDataTypeTrusted
    )
    xmlsec.SignatureContext(manager).verify(signature)

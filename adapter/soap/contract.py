"""The published contract: a service's WSDL and the XSDs it reaches, as served at ?wsdl.

The files in wsdl/ and xsd/ use relative schemaLocations so they work from a checkout; when
served, every schemaLocation becomes `<endpoint>?xsd=<file>` and soap:address the configured
public URL, never anything taken from the request's Host header.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, quote

from lxml import etree

from adapter.soap.xml import parse_trusted_file
from adapter.transport.http import HttpResult

_XSD = "http://www.w3.org/2001/XMLSchema"
_SOAP_ADDRESS = "{http://schemas.xmlsoap.org/wsdl/soap/}address"


class PublishedContract:
    """WSDL and XSD documents of one endpoint, rewritten once at start-up."""

    def __init__(self, wsdl_file: Path, xsd_dir: Path, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        self.xsd_dir = xsd_dir
        self.schemas: dict[str, bytes] = {}
        wsdl = parse_trusted_file(str(wsdl_file))
        for address in wsdl.iter(_SOAP_ADDRESS):
            address.set("location", endpoint_url)
        self._rewrite_imports(wsdl.getroot(), wsdl_file.parent)
        self.wsdl = etree.tostring(wsdl, xml_declaration=True, encoding="utf-8")

    def _rewrite_imports(self, root: etree._Element, base: Path) -> None:
        for tag in ("import", "include"):
            for node in root.iter(f"{{{_XSD}}}{tag}"):
                location = node.get("schemaLocation")
                if not location:
                    continue
                target = (base / location).resolve()
                if target.parent != self.xsd_dir.resolve():
                    raise ValueError(f"{location}: only schemas in {self.xsd_dir} are published")
                node.set("schemaLocation", f"{self.endpoint_url}?xsd={quote(target.name)}")
                if target.name not in self.schemas:
                    self.schemas[target.name] = b""  # claimed first: schemas import each other
                    schema = parse_trusted_file(str(target))
                    self._rewrite_imports(schema.getroot(), target.parent)
                    self.schemas[target.name] = etree.tostring(
                        schema, xml_declaration=True, encoding="utf-8"
                    )

    def xsd(self, name: str) -> bytes | None:
        """A schema the WSDL reaches, or None; no other file is ever served."""
        return self.schemas.get(name)

    def answer(self, query: str) -> HttpResult:
        """The answer to a GET of the endpoint: the WSDL at ?wsdl, a schema at ?xsd=<file>."""
        params = parse_qs(query, keep_blank_values=True)
        if "wsdl" in params or query.lower() == "wsdl":
            return HttpResult("200 OK", self.wsdl)
        if "xsd" in params:
            schema = self.xsd(params["xsd"][0])
            if schema is not None:
                return HttpResult("200 OK", schema)
        return HttpResult(
            "404 Not Found",
            b"vraag ?wsdl of een ?xsd=... uit de WSDL\n",
            (("Content-Type", "text/plain; charset=utf-8"),),
        )

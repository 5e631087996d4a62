"""The WSGI application: routes a path to its endpoint, serves each contract at ?wsdl.

It is a plain WSGI callable, so tests can call it without a socket; gunicorn serves it over
mutual TLS in production (adapter.transport.server).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs

from adapter.berichtenbox import abonnementen
from adapter.config import Config
from adapter.ebms.cpa import CpaStore
from adapter.lopende_zaken import stuf as lopende_zaken_stuf
from adapter.lopende_zaken import wus as lopende_zaken
from adapter.receipts import ReceiptSigner
from adapter.soap.contract import PublishedContract
from adapter.soap.schema import SchemaSet
from adapter.soap.wus import WusService
from adapter.store.blobs import BlobStore
from adapter.store.db import Database
from adapter.transport.ebms import EbmsEndpoint
from adapter.transport.wus import HttpResult, WusEndpoint

WUS_SERVICES: tuple[WusService, ...] = (
    abonnementen.SERVICE,
    lopende_zaken.SERVICE,
    lopende_zaken_stuf.SERVICE,
)

StartResponse = Callable[..., Any]


EBMS_PATH = "/berichtenbox/ebms"


class Endpoint(Protocol):
    def handle(self, environ: dict[str, Any]) -> HttpResult: ...


@dataclass(frozen=True)
class Route:
    endpoint: Endpoint
    contract: PublishedContract | None


class AdapterApp:
    def __init__(self, config: Config, database: Database, signer: ReceiptSigner) -> None:
        root = config.base_dir
        schemas = SchemaSet(root / "xsd")
        self.database = database
        self.signer = signer
        self.routes: dict[str, Route] = {
            service.path: Route(
                endpoint=WusEndpoint(service, config, database, signer, schemas),
                contract=PublishedContract(
                    root / "wsdl" / service.wsdl,
                    root / "xsd",
                    config.server.public_url + service.path,
                )
                if service.wsdl
                else None,
            )
            for service in WUS_SERVICES
        }
        ebms = EbmsEndpoint(
            config,
            database,
            signer,
            schemas,
            CpaStore.load(config.ebms.cpa_dir),
            BlobStore(config.ebms.blob_dir),
        )
        self.routes[EBMS_PATH] = Route(endpoint=ebms, contract=None)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        route = self.routes.get(environ.get("PATH_INFO", ""))
        method = environ.get("REQUEST_METHOD", "GET")
        if route is None:
            result = _plain("404 Not Found", "onbekend adres\n")
        elif method == "POST":
            result = route.endpoint.handle(environ)
        elif method in ("GET", "HEAD") and route.contract is not None:
            result = _contract(route.contract, environ.get("QUERY_STRING", ""))
        else:
            allowed = "GET, POST" if route.contract is not None else "POST"
            result = HttpResult(
                "405 Method Not Allowed", b"niet toegestaan\n", (("Allow", allowed),)
            )
        content_type = next((v for k, v in result.headers if k == "Content-Type"), None)
        headers = [
            ("Content-Type", content_type or "text/xml; charset=utf-8"),
            ("Content-Length", str(len(result.body))),
            *((k, v) for k, v in result.headers if k != "Content-Type"),
        ]
        start_response(result.status, headers)
        return [b"" if method == "HEAD" else result.body]


def _plain(status: str, text: str) -> HttpResult:
    return HttpResult(status, text.encode(), (("Content-Type", "text/plain; charset=utf-8"),))


def _contract(contract: PublishedContract, query: str) -> HttpResult:
    params = parse_qs(query, keep_blank_values=True)
    if "wsdl" in params or query.lower() == "wsdl":
        return HttpResult("200 OK", contract.wsdl)
    if "xsd" in params:
        schema = contract.xsd(params["xsd"][0])
        if schema is not None:
            return HttpResult("200 OK", schema)
    return _plain("404 Not Found", "vraag ?wsdl of een ?xsd=... uit de WSDL\n")

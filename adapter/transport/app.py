"""The WSGI router of the mTLS port: a path to its endpoint, POST to it, GET to its contract.

It knows no SOAP profile: an endpoint is anything with `handle(environ) -> HttpResult`, and
what a GET answers (the WSDL at ?wsdl) is a function the wiring gives it. It is a plain WSGI
callable, so tests can call it without a socket; gunicorn serves it over mutual TLS in
production (adapter.transport.server).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from adapter.transport.http import Endpoint, HttpResult

StartResponse = Callable[..., Any]


@dataclass(frozen=True)
class Route:
    endpoint: Endpoint
    # Answers GET and HEAD with the query string, e.g. the published contract at ?wsdl.
    get: Callable[[str], HttpResult] | None = None
    # The largest body the endpoint reads; the connection front reads no further.
    max_body_bytes: int = 65536


class Router:
    def __init__(self, routes: Mapping[str, Route]) -> None:
        self.routes = dict(routes)

    def body_limit(self, path: str) -> int:
        route = self.routes.get(path)
        return route.max_body_bytes if route is not None else Route.max_body_bytes

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        route = self.routes.get(environ.get("PATH_INFO", ""))
        method = environ.get("REQUEST_METHOD", "GET")
        if route is None:
            result = _plain("404 Not Found", "onbekend adres\n")
        elif method == "POST":
            result = route.endpoint.handle(environ)
        elif method in ("GET", "HEAD") and route.get is not None:
            result = route.get(environ.get("QUERY_STRING", ""))
        else:
            allowed = "GET, POST" if route.get is not None else "POST"
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

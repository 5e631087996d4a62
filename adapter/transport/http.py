"""HTTP values shared by every endpoint: the answer an endpoint returns, and reading a body.

An endpoint is anything with `handle(environ) -> HttpResult`; the router (adapter.transport.app)
writes the result to the WSGI server. Neither knows which SOAP profile an endpoint speaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from adapter.errors import BodyTooLarge, BodyUnreadable


@dataclass(frozen=True)
class HttpResult:
    status: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


class Endpoint(Protocol):
    def handle(self, environ: dict[str, Any]) -> HttpResult: ...


def read_body(environ: dict[str, Any], limit: int) -> bytes:
    """The request body, refused when it declares or turns out to be larger than `limit`.

    A declared oversize is refused without reading the body: the connection front
    (adapter.transport.front) lets the client finish sending and closes the connection.
    """
    stream = environ["wsgi.input"]
    length_text = environ.get("CONTENT_LENGTH") or ""
    if length_text:
        try:
            length = int(length_text)
        except ValueError:
            raise BodyUnreadable("ongeldige Content-Length") from None
        if length > limit:
            raise BodyTooLarge(f"het bericht is {length} bytes; de grens is {limit}")
    data: bytes = stream.read(int(length_text)) if length_text else stream.read(limit + 1)
    if len(data) > limit:
        raise BodyTooLarge(f"het bericht is groter dan {limit} bytes; de grens is {limit}")
    if not data:
        raise BodyUnreadable("leeg bericht")
    return data

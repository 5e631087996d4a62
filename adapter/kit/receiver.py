"""A small mTLS ebMS endpoint on the organisation's side: receives and acknowledges messages.

`dk-adapter send --receive-on HOST:PORT` runs it to wait for the asynchronous
BerichtVerwerkResponse; tests run it as the peer whose outages the outbox must survive.
Given the CPAs and the organisation's key, it handles the -s/-e profiles as the organisation's
MSH must: a signed message is verified (and its payloads decrypted) before it is taken, a
bad one is answered with a SecurityFailure MessageError, and Acknowledgments are signed.
"""

from __future__ import annotations

import logging
import queue
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from lxml import etree

from adapter.ebms.cpa import Cpa
from adapter.ebms.message import (
    MSH_SERVICE,
    MessageHeader,
    acknowledgment,
    message_error,
    read_header,
)
from adapter.ebms.mime import Package, parse_package
from adapter.ebms.security import (
    SigningKey,
    TrustAnchors,
    VerifiedSignature,
    open_package,
    sign,
)
from adapter.errors import SecurityFailure
from adapter.kit.wire import WireMessage
from adapter.soap.xml import parse_untrusted

log = logging.getLogger("adapter.receiver")


@dataclass(frozen=True)
class ReceivedMessage:
    header: MessageHeader
    envelope: etree._Element
    package: Package
    peer_certificate: bytes | None
    wire: WireMessage | None = None  # the HTTP body as received, for `send --save`
    signature: VerifiedSignature | None = None  # -s/-e: the verified signature

    def payload(self) -> bytes | None:
        """The first payload the Manifest refers to."""
        return (
            self.package.attachment(self.header.manifest[0]).body if self.header.manifest else None
        )


@dataclass(frozen=True)
class Reply:
    """What the receiver answers: an HTTP status, or dropping the connection unanswered."""

    status: int = 200
    drop: bool = False
    acknowledge: bool = True  # False: 200 without a body, the Acknowledgment follows separately


ACKNOWLEDGE = Reply()
Responder = Callable[[ReceivedMessage], Reply]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    context: ssl.SSLContext

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        return self.context.wrap_socket(connection, server_side=True), address


class _Handler(WSGIRequestHandler):
    def get_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environ()
        environ["dk_adapter.connection"] = self.connection
        return environ

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)


def server_context(certificate: Path, key: Path, trust_anchors: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(certificate), str(key))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(str(trust_anchors))
    return context


class EbmsReceiver:
    """Serves in a background thread; received messages are put on `self.received`."""

    def __init__(
        self,
        host: str,
        port: int,
        certificate: Path,
        key: Path,
        trust_anchors: Path,
        responder: Responder | None = None,
        *,
        cpas: Sequence[Cpa] = (),
        signing_key: SigningKey | None = None,
        signers: TrustAnchors | None = None,
    ) -> None:
        self.received: queue.Queue[ReceivedMessage] = queue.Queue()
        self.refused: queue.Queue[tuple[MessageHeader, SecurityFailure]] = queue.Queue()
        self.cpas = {cpa.cpa_id: cpa for cpa in cpas}  # -s/-e: the rules per CPAId
        self.signing_key = signing_key
        self.signers = signers
        self.responder = responder or (lambda _message: ACKNOWLEDGE)
        self.attempts = 0
        self._server = make_server(
            host, port, self._app, server_class=_Server, handler_class=_Handler
        )
        self._server.context = server_context(certificate, key, trust_anchors)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="ebms-receiver", daemon=True
        )

    def __enter__(self) -> EbmsReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        self.attempts += 1
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        connection = environ["dk_adapter.connection"]
        try:
            package = parse_package(environ.get("CONTENT_TYPE", ""), body)
            envelope = parse_untrusted(package.soap.body)
            header = read_header(envelope)
        except Exception as exc:
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [f"not an ebMS message: {exc}".encode()]
        peer = (
            connection.getpeercert(binary_form=True)
            if isinstance(connection, ssl.SSLSocket)
            else None
        )
        wire = WireMessage(environ.get("CONTENT_TYPE", ""), body)
        cpa = self.cpas.get(header.cpa_id)
        sender = cpa.party(header.from_party.value) if cpa is not None else None
        signature = None
        if sender is not None and header.service != MSH_SERVICE:
            try:
                signature, package = open_package(
                    envelope,
                    package,
                    sender.security,
                    sender.oin,
                    self.signing_key,
                    self.signers,
                    datetime.now(UTC),
                )
            except SecurityFailure as failure:
                self.refused.put((header, failure))
                _, error = message_error(header, failure, datetime.now(UTC))
                if sender.security.sign and self.signing_key is not None:
                    error = sign(error, [], self.signing_key)  # as the CPA asks of the party
                start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8")])
                return [error]
        message = ReceivedMessage(header, envelope, package, peer, wire, signature)
        reply = self.responder(message)
        if reply.drop:
            connection.shutdown(socket.SHUT_RDWR)
            return []
        if reply.status != 200:
            start_response(f"{reply.status} Unavailable", [("Content-Type", "text/plain")])
            return [b"try again later\n"]
        self.received.put(message)
        # Signals, and best-effort messages (no AckRequested), get no Acknowledgment.
        if header.service == MSH_SERVICE or not header.ack_requested or not reply.acknowledge:
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "0")])
            return [b""]
        _, ack = acknowledgment(
            header, datetime.now(UTC), references=signature.references if signature else ()
        )
        if sender is not None and (sender.security.sign or sender.security.ack_signed):
            if self.signing_key is None:
                raise ValueError("a signed CPA needs the receiver's signing key")
            ack = sign(ack, [], self.signing_key)
        start_response(
            "200 OK",
            [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(ack)))],
        )
        return [ack]

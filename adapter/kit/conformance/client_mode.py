"""Client mode: MijnOverheid's endpoints over mTLS, the real adapter behind a grader.

`Grader` is WSGI middleware around the adapter's own app (adapter.wiring): every POST is
graded by the rules of `client_checks` before the real service answers it exactly as it
would in production, and the answer is graded too; each request becomes one `CaseResult`
with the request, the answer and the findings. GETs (the WSDLs at ?wsdl) pass through.
`Listener` serves it over mutual TLS (the kit's receiver's TLS context, client certificate
required) and delivers the outbox the way the scheduler does, so results and asynchronous
Acknowledgments reach the leverancier's CPA endpoint as they would from the real service.
"""

from __future__ import annotations

import io
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from adapter.config import Config
from adapter.ebms.cpa import CpaStore
from adapter.ebms.outbound import Deliverer, OutboundTls
from adapter.kit.conformance.client_checks import Context, grade_answer, grade_ebms, grade_wus
from adapter.kit.conformance.model import CaseResult, Exchange, Finding, Report, Status
from adapter.kit.receiver import server_context
from adapter.pki.identity import read_identity
from adapter.soap.schema import SchemaSet
from adapter.transport.identity import CLIENT_CERT_KEY
from adapter.wiring import (
    EBMS_PATH,
    build_app,
    ebms_services,
    ws_security,
    wus_services,
    xml_limits,
)

log = logging.getLogger("adapter.conformance")
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
MAX_GRADED_BYTES = 128 * 1024 * 1024  # above the largest request limit the adapter has


def context_for(config: Config) -> Context:
    actions = {a.action: a.schema for s in ebms_services(config) for a in s.actions}
    return Context(
        organisations=config.organisations,
        receiver_oin=config.receipts.receiver_oin,
        schemas=SchemaSet(config.base_dir / "xsd"),
        wus_services={s.path: s for s in wus_services(config)},
        ebms_schemas=actions,
        cpas=CpaStore.load(config.ebms.cpa_dir),
        personal_limit=config.limits.personal_attachments_bytes,
        general_limit=config.limits.general_attachments_bytes,
        xml_limits=xml_limits(config),
        wss=(
            ws_security(config)
            if any(o.requires_signature for o in config.organisations.by_oin.values())
            else None
        ),
    )


class Grader:
    """Grades each request, lets `app` answer it, and records the result in `report`."""

    def __init__(
        self,
        app: WsgiApp,
        context: Context,
        report: Report,
        trusted_root: Path | None = None,
        on_result: Callable[[CaseResult], None] = lambda _result: None,
    ) -> None:
        self.app, self.context, self.report = app, context, report
        self.trusted_root = trusted_root
        self.on_result = on_result
        self._lock = threading.Lock()  # one graded request at a time: Memory is shared

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(min(length, MAX_GRADED_BYTES)) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        path = environ.get("PATH_INFO", "")
        der = environ.get(CLIENT_CERT_KEY)
        oin = read_identity(der).oin if isinstance(der, bytes) and der else None
        headers = {"content-type": environ.get("CONTENT_TYPE", "")}
        if "HTTP_SOAPACTION" in environ:
            headers["soapaction"] = environ["HTTP_SOAPACTION"]
        started = time.perf_counter()
        with self._lock:
            title, findings = self._grade(path, headers, body, oin)
            answer: dict[str, Any] = {}

            def capture(status: str, response_headers: list[tuple[str, str]], *_: Any) -> Any:
                answer["status"], answer["headers"] = status, response_headers
                return start_response(status, response_headers)

            chunks = b"".join(self.app(environ, capture))
            status = int(str(answer.get("status", "500")).split()[0])
            content_type = next(
                (v for k, v in answer.get("headers", []) if k.lower() == "content-type"), ""
            )
            findings += grade_answer(status, content_type, chunks, self.trusted_root)
            self._record(path, title, oin, body, chunks, status, findings, started)
        return [chunks]

    def _grade(
        self, path: str, headers: dict[str, str], body: bytes, oin: str | None
    ) -> tuple[str, list[Finding]]:
        try:
            if path == EBMS_PATH:
                return grade_ebms(self.context, headers, body, oin)
            if path in self.context.wus_services:
                return grade_wus(self.context, path, headers, body, oin)
        except Exception as exc:  # a rule that trips over odd input must not lose the answer
            return "request", [Finding(f"the kit could not grade it: {exc}", "-", "-", "warning")]
        return "request", [
            Finding(f"no service at {path}", "SPEC Part B (addresses)", "use a published path")
        ]

    def _record(
        self,
        path: str,
        title: str,
        oin: str | None,
        body: bytes,
        answer: bytes,
        status: int,
        findings: list[Finding],
        started: float,
    ) -> None:
        number = len(self.report.results) + 1
        errors = [f for f in findings if f.severity == "error"]
        result = CaseResult(
            case_id=f"request-{number:03d}",
            title=f"{title} on {path} from {oin or 'no OIN'}",
            group="client",
            rule="every rule the request is graded by (see its findings)",
            status=Status.FAILED if errors else Status.PASSED,
            findings=tuple(findings),
            exchanges=(Exchange(f"{title} on {path}", body, answer, status),),
            seconds=time.perf_counter() - started,
        )
        self.report.results.append(result)
        self.on_result(result)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    context: ssl.SSLContext

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        return self.context.wrap_socket(connection, server_side=True), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that fails the TLS handshake is not a crash of the listener


class _Handler(WSGIRequestHandler):
    def get_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environ()
        if isinstance(self.connection, ssl.SSLSocket):
            # Who terminates TLS tells the adapter who is calling (adapter.transport.identity).
            environ[CLIENT_CERT_KEY] = self.connection.getpeercert(binary_form=True)
        return environ

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Listener:
    """`conformance listen`: the graded adapter over mTLS, with outbox delivery beside it."""

    def __init__(
        self,
        config: Config,
        host: str,
        port: int,
        on_result: Callable[[CaseResult], None] = lambda _result: None,
    ) -> None:
        self.config = config
        app = build_app(config)
        self.database = app.database
        self.database.create_schema()
        tls = config.tls
        self.report = Report("client", f"https://{host}:{port}", datetime.now(UTC))
        self.grader = Grader(app, context_for(config), self.report, tls.trust_anchors, on_result)
        self._server = make_server(
            host, port, self.grader, server_class=_Server, handler_class=_Handler
        )
        self._server.context = server_context(tls.certificate, tls.private_key, tls.trust_anchors)
        self.port = self._server.server_address[1]
        self.report.target = f"https://{host}:{self.port}"
        self._deliverer = Deliverer(
            self.database, OutboundTls(tls.certificate, tls.private_key, tls.trust_anchors)
        )
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._server.serve_forever, name="conformance-listen"),
            threading.Thread(target=self._deliver, name="conformance-outbox"),
        ]

    def _deliver(self) -> None:
        while not self._stop.wait(self.config.ebms.outbox_poll_seconds):
            try:
                self._deliverer.deliver_due()
            except Exception:  # the database or a peer failing must not end the listener
                log.exception("outbox delivery failed; trying again")

    def __enter__(self) -> Listener:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=30)
        self._deliverer.close()
        self.database.dispose()

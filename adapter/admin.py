"""The admin listener: /health, /ready and /metrics over plain HTTP, in the scheduler process.

Never on the mTLS port (gunicorn's TLS applies to all its binds). /ready says why not, so an
operator or a load balancer sees the reason: the database, a certificate or CRL near its end,
a stale CRL or a failed CRL refresh, or a scheduler that stopped running its jobs.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from cryptography import x509
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from adapter.config import Config
from adapter.errors import StoreUnavailable
from adapter.store.db import Database
from adapter.store.outbox import OutboxStatus

log = logging.getLogger("adapter.admin")
CRL_MARGIN = timedelta(hours=12)


@dataclass
class Heartbeat:
    """When the scheduler last finished its outbox round; /ready checks it is recent."""

    max_age_seconds: float
    last: float = field(default_factory=time.monotonic)

    def beat(self) -> None:
        self.last = time.monotonic()

    def age(self) -> float:
        return time.monotonic() - self.last


class CrlStatus:
    """What the last CRL refresh (adapter.jobs.crl) could not do; /ready reports it until a
    later refresh succeeds. Written by the scheduler's job thread, read by the admin's."""

    def __init__(self) -> None:
        self._problems: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def report(self, problems: Iterable[str]) -> None:
        with self._lock:
            self._problems = tuple(problems)

    @property
    def problems(self) -> tuple[str, ...]:
        with self._lock:
            return self._problems


def _certificates(config: Config) -> Iterator[tuple[str, x509.Certificate]]:
    tls = config.tls
    for name, path in (
        ("server", tls.certificate),
        ("receipt-signing", config.receipts.certificate),
        ("trust-anchor", tls.trust_anchors),
        ("intermediates", tls.intermediates),
    ):
        for index, cert in enumerate(x509.load_pem_x509_certificates(Path(path).read_bytes())):
            yield (name if index == 0 else f"{name}-{index}"), cert


def _crls(config: Config) -> Iterator[x509.CertificateRevocationList]:
    if config.tls.crl is None:
        return
    data = config.tls.crl.read_bytes()
    marker = b"-----BEGIN X509 CRL-----"
    for chunk in data.split(marker)[1:]:
        yield x509.load_pem_x509_crl(marker + chunk)


def readiness(
    config: Config, database: Database, heartbeat: Heartbeat, crls: CrlStatus | None = None
) -> list[str]:
    """Every reason the adapter is not ready; empty when it is."""
    problems = []
    try:
        database.ping()
    except StoreUnavailable as unavailable:
        problems.append(f"database unreachable: {unavailable.reason.split(':')[0]}")
    now = datetime.now(UTC)
    margin = timedelta(days=config.admin.certificate_warning_days)
    try:
        for name, cert in _certificates(config):
            if cert.not_valid_after_utc - now < margin:
                problems.append(f"certificate {name} expires {cert.not_valid_after_utc:%Y-%m-%d}")
        for crl in _crls(config):
            issuer = crl.issuer.rfc4514_string()
            # A CRL past its nextUpdate makes OpenSSL refuse every client of that CA.
            if crl.next_update_utc is not None and crl.next_update_utc <= now:
                problems.append(
                    f"CRL of {issuer} is stale: nextUpdate {crl.next_update_utc:%Y-%m-%d %H:%M}"
                    " UTC has passed"
                )
            # CRLs are reissued every day or two: warn half a day ahead, not weeks.
            elif crl.next_update_utc is not None and crl.next_update_utc - now < CRL_MARGIN:
                problems.append(
                    f"CRL of {issuer} runs out {crl.next_update_utc:%Y-%m-%d %H:%M} UTC"
                )
    except (OSError, ValueError) as exc:
        problems.append(f"certificates unreadable: {exc}")
    if crls is not None:
        problems.extend(crls.problems)
    if heartbeat.age() > heartbeat.max_age_seconds:
        problems.append(f"scheduler idle for {heartbeat.age():.0f}s")
    return problems


class StateCollector:
    """Metrics read at scrape time: outbound queue and certificate lifetimes."""

    def __init__(self, config: Config, database: Database) -> None:
        self.config, self.database = config, database

    def collect(self) -> Iterable[GaugeMetricFamily]:
        queue = GaugeMetricFamily(
            "dk_outbox_messages", "Outbound ebMS messages by status", labels=["status"]
        )
        counts = dict.fromkeys(OutboxStatus, 0)  # zero is a value too
        try:
            with self.database.repositories() as repositories:
                counts = repositories.outbox.counts_by_status()
        except StoreUnavailable:  # /ready reports the database; the other metrics stay available
            log.warning("outbox depth unavailable")
        for status, count in counts.items():
            queue.add_metric([status.value], count)
        yield queue
        days = GaugeMetricFamily(
            "dk_certificate_days_to_expiry",
            "Days until each configured certificate expires",
            labels=["certificate"],
        )
        now = datetime.now(UTC)
        for name, cert in _certificates(self.config):
            days.add_metric([name], (cert.not_valid_after_utc - now).total_seconds() / 86400)
        yield days


def admin_app(
    config: Config, database: Database, heartbeat: Heartbeat, crls: CrlStatus | None = None
) -> Callable[..., Iterable[bytes]]:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(StateCollector(config, database))

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/health":
            status, body, content_type = "200 OK", b'{"status":"alive"}\n', "application/json"
        elif path == "/ready":
            problems = readiness(config, database, heartbeat, crls)
            status = "200 OK" if not problems else "503 Service Unavailable"
            body = (json.dumps({"ready": not problems, "problems": problems}) + "\n").encode()
            content_type = "application/json"
        elif path == "/metrics":
            status, body, content_type = "200 OK", generate_latest(registry), CONTENT_TYPE_LATEST
        else:
            status, body, content_type = (
                "404 Not Found",
                b"/health, /ready or /metrics\n",
                "text/plain",
            )
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]

    return app


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)


def start_admin(
    config: Config, database: Database, heartbeat: Heartbeat, crls: CrlStatus | None = None
) -> WSGIServer:
    """Serve the admin endpoints in a background thread; returns the server to shut down."""
    server = make_server(
        config.admin.host,
        config.admin.port,
        admin_app(config, database, heartbeat, crls),
        server_class=_Server,
        handler_class=_QuietHandler,
    )
    threading.Thread(target=server.serve_forever, name="admin", daemon=True).start()
    log.info(
        "admin listener on http://%s:%s (/health, /ready, /metrics)",
        config.admin.host,
        config.admin.port,
    )
    return server

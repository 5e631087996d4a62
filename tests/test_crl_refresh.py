"""CRLs refreshed on a live server without a restart (issue 14, revocation).

A real `dk-adapter serve` over mutual TLS, whose scheduler fetches the TSP CA's CRL from a
small HTTP server on loopback (its URL configured in `tls.crl_urls`) every few seconds. A
client certificate revoked after start-up is refused once the CRL is fetched, with no SIGHUP
and no worker replaced; a failing distribution point and a CRL past its nextUpdate make
/ready say not ready, with the reason.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from adapter.jobs.crl import parse_crls
from adapter.pki.devca import load_hierarchy, revoke
from tests.conftest import GEMEENTE, Pki, Server, running_server
from tests.helpers import wait_until
from tests.soap_helpers import aanvraag, post

SUBSCRIBED = "999993653"
REFRESH_HOURS = 0.0005  # 1.8 s: the test's schedule (production: at most 4 hours)


class DistributionPoint:
    """Serves the current CRL file of a CA directory at /tsp.crl, as DER like a real CDP;
    `failing` makes it answer 503 instead."""

    def __init__(self, crl_file: Path) -> None:
        self.crl_file = crl_file
        self.failing = False
        self.override: bytes | None = None  # served instead of the file when set
        point = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if point.failing or self.path != "/tsp.crl":
                    self.send_response(503 if point.failing else 404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = point.override or point.tsp_crl_der()
                self.send_response(200)
                self.send_header("Content-Type", "application/pkix-crl")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/tsp.crl"

    def tsp_crl_der(self) -> bytes:
        tsp = load_hierarchy(self.crl_file.parent).tsp.certificate.subject
        for crl in parse_crls(self.crl_file.read_bytes()):
            if crl.issuer == tsp:
                return crl.public_bytes(serialization.Encoding.DER)
        raise AssertionError("no TSP CRL")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Setup:
    server: Server
    ca: Path  # a private copy of the session's CA directory: revocations here stay here
    point: DistributionPoint
    live_crl: Path  # the server's tls.crl, which its scheduler keeps current


@pytest.fixture(scope="module")
def setup(pki: Pki, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    directory = tmp_path_factory.mktemp("crl-refresh")
    ca = directory / "ca"
    shutil.copytree(pki.directory, ca)
    live_crl = directory / "live-crl.pem"
    shutil.copy(pki.directory / "crl.pem", live_crl)
    point = DistributionPoint(ca / "crl.pem")

    def prepare(server_dir: Path) -> None:
        config = server_dir / "conf" / "adapter.toml"
        text = config.read_text()
        original = f'crl = "{pki.directory / "crl.pem"}"'
        assert original in text
        config.write_text(
            text.replace(
                original,
                f'crl = "{live_crl}"\ncrl_refresh_hours = {REFRESH_HOURS}\n'
                f'crl_urls = ["{point.url}"]',
            )
        )

    try:
        with running_server(pki, database_url, directory, prepare) as server:
            yield Setup(server, ca, point, live_crl)
    finally:
        point.close()


def workers_of(pid: int) -> set[int]:
    """The processes whose parent is `pid`: gunicorn's workers and the side processes."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended while we looked
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def refused(setup: Setup, cert: tuple[str, str], root: Path) -> bool:
    """Refused on three connections in a row (each lands on either worker)."""
    body = aanvraag([SUBSCRIBED], GEMEENTE)
    for _ in range(3):
        try:
            post(f"{setup.server.url}/abonnementen", body, cert, root)
            return False
        except (requests.exceptions.SSLError, requests.exceptions.ConnectionError):
            pass
    return True


def ready(setup: Setup) -> tuple[int, list[str]]:
    answer = requests.get(f"{setup.server.admin_url}/ready", timeout=5)
    return answer.status_code, list(answer.json()["problems"])


def test_a_certificate_revoked_after_start_up_is_refused_once_the_crl_is_fetched(
    setup: Setup, pki: Pki, tmp_path: Path
) -> None:
    hierarchy = load_hierarchy(setup.ca)
    issued = hierarchy.tsp.issue_tls_certificate("Later ingetrokken", oin=GEMEENTE)
    cert_file, key_file = tmp_path / "later.pem", tmp_path / "later.key"
    cert_file.write_bytes(issued.cert_pem() + hierarchy.chain_pem())
    key_file.write_bytes(issued.key_pem())
    later = (str(cert_file), str(key_file))
    body = aanvraag([SUBSCRIBED], GEMEENTE)
    assert post(f"{setup.server.url}/abonnementen", body, later, pki.root).status_code == 200
    assert ready(setup) == (200, [])
    processes = workers_of(setup.server.process.pid)

    revoke(setup.ca, issued.certificate.serial_number)  # the CA publishes a new CRL
    started = time.monotonic()
    wait_until(lambda: refused(setup, later, pki.root), timeout=30)
    took = time.monotonic() - started

    # Taken from the distribution point into the server's own file, and no restart for it.
    live = parse_crls(setup.live_crl.read_bytes())
    assert any(
        c.get_revoked_certificate_by_serial_number(issued.certificate.serial_number) for c in live
    )
    assert workers_of(setup.server.process.pid) == processes
    assert "configuration reloaded" not in setup.server.log.read_text()
    # The other certificates of that CA still get in.
    good = pki.clients[GEMEENTE].pair
    assert post(f"{setup.server.url}/abonnementen", body, good, pki.root).status_code == 200
    assert ready(setup) == (200, [])
    print(f"revoked certificate refused {took:.1f} s after the CA published its CRL")


def test_a_failing_distribution_point_and_a_stale_crl_make_the_server_not_ready(
    setup: Setup, pki: Pki
) -> None:
    setup.point.failing = True
    wait_until(lambda: ready(setup)[0] == 503)
    _, problems = ready(setup)
    assert problems == [
        f"refresh from {setup.point.url} failed: 503 Server Error: "
        f"Service Unavailable for url: {setup.point.url}"
    ]
    setup.point.failing = False
    wait_until(lambda: ready(setup) == (200, []))

    # The CA's newest CRL, but its nextUpdate has passed (a CA that stopped publishing).
    tsp = load_hierarchy(setup.ca).tsp
    now = datetime.now(UTC)
    key_id = tsp.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    stale = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(tsp.certificate.subject)
        .last_update(now - timedelta(days=2))
        .next_update(now - timedelta(minutes=5))
        .add_extension(x509.CRLNumber(10_000), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(key_id),
            critical=False,
        )
        .sign(tsp.private_key, hashes.SHA256())
    )
    setup.point.override = stale.public_bytes(serialization.Encoding.DER)
    wait_until(lambda: ready(setup)[0] == 503)
    _, problems = ready(setup)
    issuer = tsp.certificate.subject.rfc4514_string()
    passed = f"{stale.next_update_utc:%Y-%m-%d %H:%M}"
    expected = f"CRL of {issuer} is stale: nextUpdate {passed} UTC has passed"
    assert expected in problems, problems
    log = setup.server.log.read_text()
    assert any("ERROR" in line and expected in line for line in log.splitlines()), log[-3000:]
    # Once the workers load it, OpenSSL refuses that CA's clients: why a CRL must not go stale.
    wait_until(lambda: refused(setup, pki.clients[GEMEENTE].pair, pki.root))

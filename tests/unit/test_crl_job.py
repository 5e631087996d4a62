"""The CRL refresh job (adapter.jobs.crl) and the worker's CRL watch, against a real HTTP
server on loopback serving CRLs signed by a real (development) CA hierarchy."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from adapter.admin import CrlStatus
from adapter.config import ConfigError, TlsConfig, load_config
from adapter.jobs.crl import (
    JOB_ID,
    RETRY_SECONDS,
    CrlRefresh,
    distribution_points,
    parse_crls,
    schedule_crl_refresh,
)
from adapter.pki.devca import DevHierarchy, new_hierarchy
from adapter.transport.worker import CrlWatch
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC)


class CrlServer:
    """Serves `responses[path]` (bytes) on loopback; anything else is a 404."""

    def __init__(self) -> None:
        self.responses: dict[str, bytes] = {}
        responses = self.responses

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = responses.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "application/pkix-crl")
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass(frozen=True)
class World:
    hierarchy: DevHierarchy
    copied: DevHierarchy  # the same CA names, other keys: an attacker's look-alike
    files: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    files = tmp_path_factory.mktemp("crl-pki")
    hierarchy = new_hierarchy("Unit")
    server = hierarchy.tsp.issue_tls_certificate("localhost", oin="00000004003214345001")
    (files / "root.pem").write_bytes(hierarchy.root_pem())
    (files / "chain.pem").write_bytes(hierarchy.chain_pem())
    (files / "server.pem").write_bytes(server.cert_pem() + hierarchy.chain_pem())
    (files / "server.key").write_bytes(server.key_pem())
    return World(hierarchy, new_hierarchy("Unit"), files)


@pytest.fixture
def crl_server() -> Iterator[CrlServer]:
    running = CrlServer()
    yield running
    running.close()


def pem(*crls: x509.CertificateRevocationList) -> bytes:
    return b"".join(crl.public_bytes(serialization.Encoding.PEM) for crl in crls)


def der(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.DER)


def tls_for(world: World, directory: Path, *urls: str, max_bytes: int = 1 << 20) -> TlsConfig:
    crl = directory / "crl.pem"
    h = world.hierarchy
    crl.write_bytes(pem(h.root.issue_crl(number=1), h.domain.issue_crl(number=1), tsp_crl(h, 1)))
    return TlsConfig(
        certificate=world.files / "server.pem",
        private_key=world.files / "server.key",
        trust_anchors=world.files / "root.pem",
        intermediates=world.files / "chain.pem",
        crl=crl,
        openssl_conf=None,
        crl_urls=tuple(urls),
        crl_fetch_timeout_seconds=5,
        crl_max_bytes=max_bytes,
    )


def tsp_crl(h: DevHierarchy, number: int, *serials: int) -> x509.CertificateRevocationList:
    revoked = [
        x509.RevokedCertificateBuilder().serial_number(s).revocation_date(NOW).build()
        for s in serials
    ]
    return h.tsp.issue_crl(revoked, number=number)


def held_tsp(tls: TlsConfig, h: DevHierarchy) -> x509.CertificateRevocationList:
    assert tls.crl is not None
    (found,) = [
        c for c in parse_crls(tls.crl.read_bytes()) if c.issuer == h.tsp.certificate.subject
    ]
    return found


def test_a_newer_crl_from_the_distribution_point_replaces_the_held_one(
    world: World, crl_server: CrlServer, tmp_path: Path
) -> None:
    h = world.hierarchy
    crl_server.responses["/tsp.crl"] = der(tsp_crl(h, 2, 4242))
    tls = tls_for(world, tmp_path, crl_server.url("/tsp.crl"))
    status = CrlStatus()
    CrlRefresh(tls, status).run()
    assert status.problems == ()
    held = held_tsp(tls, h)
    assert [entry.serial_number for entry in held] == [4242]
    assert held.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
    assert tls.crl is not None and len(parse_crls(tls.crl.read_bytes())) == 3  # others kept


def test_pem_with_several_crls_is_read_as_well(
    world: World, crl_server: CrlServer, tmp_path: Path
) -> None:
    h = world.hierarchy
    crl_server.responses["/all.pem"] = pem(h.domain.issue_crl(number=5), tsp_crl(h, 5, 7))
    tls = tls_for(world, tmp_path, crl_server.url("/all.pem"))
    assert CrlRefresh(tls, CrlStatus()).refresh(NOW) == []
    assert [entry.serial_number for entry in held_tsp(tls, h)] == [7]


def test_a_crl_under_a_copied_ca_name_is_refused_and_the_good_one_kept(
    world: World, crl_server: CrlServer, tmp_path: Path
) -> None:
    # Same issuer name, signed by another key: it would "unrevoke" everything if taken.
    crl_server.responses["/tsp.crl"] = der(tsp_crl(world.copied, 99))
    tls = tls_for(world, tmp_path, crl_server.url("/tsp.crl"))
    assert tls.crl is not None
    before = tls.crl.read_bytes()
    problems = CrlRefresh(tls, CrlStatus()).refresh(NOW)
    assert len(problems) == 1 and "is not signed by a configured CA" in problems[0]
    assert tls.crl.read_bytes() == before


def test_an_older_crl_never_replaces_a_newer_one(
    world: World, crl_server: CrlServer, tmp_path: Path
) -> None:
    h = world.hierarchy
    tls = tls_for(world, tmp_path, crl_server.url("/tsp.crl"))
    assert tls.crl is not None
    tls.crl.write_bytes(pem(tsp_crl(h, 10, 1)))
    crl_server.responses["/tsp.crl"] = der(tsp_crl(h, 9))  # a CDP cache serving an old one
    mtime = tls.crl.stat().st_mtime_ns
    assert CrlRefresh(tls, CrlStatus()).refresh(NOW) == []
    assert [entry.serial_number for entry in held_tsp(tls, h)] == [1]
    assert tls.crl.stat().st_mtime_ns == mtime  # not even rewritten


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"x" * 5000, "more than crl_max_bytes (4096)"),
        (b"<html>not found</html>", "not a CRL"),
    ],
)
def test_oversized_or_garbage_downloads_are_refused(
    world: World, crl_server: CrlServer, tmp_path: Path, body: bytes, expected: str
) -> None:
    crl_server.responses["/tsp.crl"] = body
    tls = tls_for(world, tmp_path, crl_server.url("/tsp.crl"), max_bytes=4096)
    assert tls.crl is not None
    before = tls.crl.read_bytes()
    problems = CrlRefresh(tls, CrlStatus()).refresh(NOW)
    assert len(problems) == 1 and expected in problems[0], problems
    assert tls.crl.read_bytes() == before


def test_a_failing_refresh_and_a_stale_crl_are_logged_at_error_and_reported(
    world: World, crl_server: CrlServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tls = tls_for(world, tmp_path, crl_server.url("/gone.crl"))
    status = CrlStatus()
    job = CrlRefresh(tls, status)
    with caplog.at_level(logging.ERROR, logger="adapter.jobs.crl"):
        job.run()
    assert len(status.problems) == 1
    assert status.problems[0].startswith(f"refresh from {crl_server.url('/gone.crl')} failed")
    assert "404" in status.problems[0]
    assert [r.levelno for r in caplog.records] == [logging.ERROR]

    # Thirty-one days on, the development CRLs (valid 30 days) have run out.
    later = job.refresh(NOW + timedelta(days=31))
    stale = [p for p in later if "is stale: nextUpdate" in p]
    assert len(stale) == 3, later

    # Once the distribution point answers again the problems are gone.
    crl_server.responses["/gone.crl"] = der(tsp_crl(world.hierarchy, 2))
    job.run()
    assert status.problems == ()


def test_distribution_points_come_from_the_configured_certificates_and_crl_urls(
    tmp_path: Path, world: World
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CA met CDP")])
    points = x509.CRLDistributionPoints(
        [
            x509.DistributionPoint(
                full_name=[
                    x509.UniformResourceIdentifier("ldap://ldap.example/cn=ca"),
                    x509.UniformResourceIdentifier("http://crl.example/ca.crl"),
                ],
                relative_name=None,
                reasons=None,
                crl_issuer=None,
            )
        ]
    )
    ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(points, critical=False)
        .sign(key, hashes.SHA256())
    )
    anchors = tmp_path / "anchors.pem"
    anchors.write_bytes(ca.public_bytes(serialization.Encoding.PEM) + world.hierarchy.root_pem())
    tls = replace(
        tls_for(world, tmp_path, "http://extra.example/tsp.crl", "http://crl.example/ca.crl"),
        trust_anchors=anchors,
    )
    assert distribution_points(tls) == [
        "http://extra.example/tsp.crl",
        "http://crl.example/ca.crl",  # once, though named twice; the LDAP one is skipped
    ]


def test_the_worker_watch_builds_a_new_context_only_when_the_file_was_replaced(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tls = tls_for(world, tmp_path)
    assert tls.crl is not None
    watch = CrlWatch(tls)
    assert watch.new_context() is None  # unchanged since start
    replacement = tmp_path / "next.pem"
    replacement.write_bytes(pem(tsp_crl(world.hierarchy, 3, 11)))
    replacement.replace(tls.crl)
    context = watch.new_context()
    assert context is not None
    assert context.cert_store_stats()["crl"] == 1
    assert watch.new_context() is None  # seen now

    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"-----BEGIN X509 CRL-----\nbm9uc2Vuc2U=\n-----END X509 CRL-----\n")
    garbage.replace(tls.crl)
    with caplog.at_level(logging.ERROR, logger="adapter.server"):
        assert watch.new_context() is None  # the previous context stays in use
    assert any("not loaded, keeping the previous one" in r.message for r in caplog.records)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("crl_refresh_hours = 5", "at most 4"),
        ("crl_refresh_hours = 0", "more than 0"),
        ('crl_urls = ["ldap://ldap.example/crl"]', "http:// or https:// URL"),
        ("crl_max_bytes = 0", "greater than 0"),
    ],
)
def test_crl_settings_are_checked(tmp_path: Path, line: str, expected: str) -> None:
    config = tmp_path / "adapter.toml"
    key = line.split(" = ")[0]
    lines = (ROOT / "conf" / "adapter.toml").read_text().splitlines()
    kept = [text for text in lines if not text.startswith(f"{key} ")]  # the example's own
    config.write_text("\n".join(kept).replace("[tls]\n", f"[tls]\n{line}\n", 1))
    with pytest.raises(ConfigError, match=expected):
        load_config(config)


def test_crl_settings_default_to_four_hours_without_extra_urls() -> None:
    tls = load_config(ROOT / "conf" / "adapter.toml").tls
    assert tls.crl_refresh_hours == 4
    assert tls.crl_urls == ()


def test_after_a_failed_round_the_job_runs_again_within_minutes_not_hours(
    world: World, crl_server: CrlServer, tmp_path: Path
) -> None:
    tls = replace(tls_for(world, tmp_path, crl_server.url("/down.crl")), crl_refresh_hours=4)
    status = CrlStatus()
    scheduler = BackgroundScheduler(timezone=UTC)
    schedule_crl_refresh(scheduler, tls, status)
    scheduler.start()
    try:
        wait_until(lambda: bool(status.problems))  # the first round runs at once, and fails

        def retry_is_near() -> bool:
            next_run = scheduler.get_job(JOB_ID).next_run_time
            return next_run is not None and next_run <= datetime.now(UTC) + timedelta(
                seconds=RETRY_SECONDS
            )

        wait_until(retry_is_near, timeout=10)  # not the 4 hours of the interval
    finally:
        scheduler.shutdown(wait=True)

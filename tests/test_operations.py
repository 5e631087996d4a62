"""Operations: health, readiness, metrics from real traffic; SIGTERM and SIGHUP on a live server."""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import signal
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from lxml import etree

from adapter.admin import Heartbeat, readiness
from adapter.berichtenbox.abonnementen import ACTION
from adapter.config import LoggingConfig, load_config
from adapter.logs import JsonFormatter, configure_logging
from adapter.pki.devca import load_hierarchy, revoke
from adapter.store.db import Database
from tests.conftest import CONF, GEMEENTE, UNKNOWN_OIN, Pki, Server
from tests.helpers import wait_until
from tests.soap_helpers import aanvraag, post, receipt_text

SUBSCRIBED = "999993653"


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_health_and_readiness_answer_on_the_admin_listener(server: Server) -> None:
    assert requests.get(f"{server.admin_url}/health", timeout=5).json() == {"status": "alive"}
    ready = requests.get(f"{server.admin_url}/ready", timeout=5)
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"ready": True, "problems": []}


def test_metrics_reflect_real_requests_and_refusals(server: Server, pki: Pki) -> None:
    before = requests.get(f"{server.admin_url}/metrics", timeout=5).text
    cert = pki.clients[GEMEENTE].pair
    for _ in range(3):
        assert (
            post(
                f"{server.url}/abonnementen", aanvraag([SUBSCRIBED], GEMEENTE), cert, pki.root
            ).status_code
            == 200
        )
    assert (
        post(
            f"{server.url}/abonnementen", aanvraag(["123456789"], GEMEENTE), cert, pki.root
        ).status_code
        == 500
    )
    after = requests.get(f"{server.admin_url}/metrics", timeout=5).text

    def grew(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    accepted = {"service": "ValidateAbonnementen", "outcome": "accepted", "oin": GEMEENTE}
    assert grew("dk_requests_total", **accepted) == 3
    assert (
        grew("dk_requests_total", service="ValidateAbonnementen", outcome="refused", oin=GEMEENTE)
        == 1
    )
    assert grew("dk_faults_total", service="ValidateAbonnementen", code="ApplicationFault") == 1
    assert grew("dk_receipt_sign_seconds_count") == 4
    assert grew("dk_intake_seconds_count", service="ValidateAbonnementen") == 4
    assert metric(after, "dk_certificate_days_to_expiry", certificate="server") > 300
    assert "dk_outbox_messages" in after


def test_readiness_names_every_reason_it_is_not_ready(server: Server) -> None:
    config = load_config(
        server.config, environ={"DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/x"}
    )
    # Warn 5000 days ahead: every certificate of the dev PKI is then "about to expire".
    config = replace(config, admin=replace(config.admin, certificate_warning_days=5000))
    stale = Heartbeat(max_age_seconds=0.0)
    time.sleep(0.01)
    problems = readiness(config, Database(config.database_url), stale)
    assert problems[0].startswith("database unreachable")
    assert any(p.startswith("certificate server expires") for p in problems)
    assert problems[-1].startswith("scheduler idle")


def test_json_logs_carry_the_request_id_and_no_message_content() -> None:
    record = logging.LogRecord(
        "adapter.request", logging.INFO, __file__, 1, "request %s: refused", ("abc",), None
    )
    record.request_id = "abc"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["request_id"] == "abc" and entry["message"] == "request abc: refused"
    configure_logging(LoggingConfig("text", "INFO"))  # leave the test process as it was


def test_sigterm_during_a_stream_of_requests_loses_no_acknowledged_request(
    server: Server, pki: Pki
) -> None:
    stop = threading.Event()
    acknowledged: list[str] = []
    lock = threading.Lock()

    def stream(_: int) -> None:
        session = requests.Session()
        session.trust_env = False
        while not stop.is_set():
            try:
                response = session.post(
                    f"{server.url}/abonnementen",
                    data=aanvraag([SUBSCRIBED], GEMEENTE),
                    headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'},
                    cert=pki.clients[GEMEENTE].pair,
                    verify=str(pki.root),
                    timeout=10,
                )
            except requests.RequestException:
                time.sleep(0.05)  # the server is restarting; a refused connection loses nothing
                continue
            if response.status_code == 200:
                receipt_id = receipt_text(etree.fromstring(response.content), "a:BevestigingID")
                with lock:
                    acknowledged.append(receipt_id or "")

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(stream, n) for n in range(4)]
        time.sleep(1.5)
        during = len(acknowledged)
        server.restart()  # SIGTERM: gunicorn finishes in-flight requests, then a fresh start
        time.sleep(1.5)
        stop.set()
        for future in futures:
            future.result()
    assert during > 0 and len(acknowledged) > during
    ids = ",".join(f"'{r}'" for r in acknowledged)
    assert server.count("receipts", f"receipt_id IN ({ids})") == len(set(acknowledged))


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (gunicorn workers and the scheduler)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def status_of(server: Server, body: bytes, cert: tuple[str, str], root: Path) -> int:
    """POST on a new connection. Workers being replaced reset none: every worker accepts from
    the master's one listening socket, which outlives them."""
    return post(f"{server.url}/abonnementen", body, cert, root).status_code


def established_sockets(port: int) -> set[int]:
    """The socket inodes of the established TCP connections whose local port is `port`."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
            inodes.add(int(fields[9]))
    return inodes


def sockets_held(pid: int, inodes: set[int]) -> int:
    held = 0
    for descriptor in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(descriptor)
        except OSError:
            continue  # closed while we looked
        if target.startswith("socket:[") and int(target[8:-1]) in inodes:
            held += 1
    return held


def test_kept_alive_connections_are_spread_evenly_over_the_workers(
    server: Server, pki: Pki
) -> None:
    """An organisation's few kept-alive connections carry all its requests: each worker gets
    its share of them (with a socket per worker, the kernel's hash often gave one worker
    most or all)."""
    port = int(server.url.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(pki.root))
    context.load_cert_chain(*pki.clients[GEMEENTE].pair)
    body = aanvraag([SUBSCRIBED], GEMEENTE)
    connections = []
    try:
        for _ in range(10):  # a socket per worker split 10 evenly in a quarter of the runs
            connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
            connection.request(
                "POST",
                "/abonnementen",
                body,
                {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{ACTION}"'},
            )
            response = connection.getresponse()
            response.read()
            assert response.status == 200
            connections.append(connection)
        inodes = established_sockets(port)
        held = sorted(sockets_held(pid, inodes) for pid in children(server.process.pid))
        # The two workers, even to one (earlier tests' connections may still be open); the
        # side processes hold none.
        *side, fewer, more = held
        assert side == [0, 0] and fewer + more >= 10 and more - fewer <= 1, held
    finally:
        for connection in connections:
            connection.close()


def test_sighup_reloads_organisations_and_crls_without_a_restart(
    server: Server, pki: Pki, tmp_path: Path
) -> None:
    organisations = server.config.parent / "organisations.toml"
    original = organisations.read_text()
    cert = pki.unknown_oin.pair
    body = aanvraag([SUBSCRIBED], UNKNOWN_OIN)
    assert status_of(server, body, cert, pki.root) == 500
    pid = server.process.pid
    organisations.write_text(
        original
        + f'\n[[organisation]]\noin = "{UNKNOWN_OIN}"\nname = "Nieuw aangesloten"\n'
        + 'services = ["ValidateAbonnementen"]\nbericht_types = ["BESLUIT"]\n'
    )
    try:
        server.process.send_signal(signal.SIGHUP)
        wait_until(lambda: status_of(server, body, cert, pki.root) == 200)
        assert server.process.pid == pid and server.process.poll() is None

        # A certificate revoked after start-up is refused once the CRL is reloaded.
        hierarchy = load_hierarchy(pki.directory)
        issued = hierarchy.tsp.issue_tls_certificate("Later ingetrokken", oin=GEMEENTE)
        cert_file, key_file = tmp_path / "later.pem", tmp_path / "later.key"
        cert_file.write_bytes(issued.cert_pem() + hierarchy.chain_pem())
        key_file.write_bytes(issued.key_pem())
        later = (str(cert_file), str(key_file))
        gemeente_body = aanvraag([SUBSCRIBED], GEMEENTE)
        assert status_of(server, gemeente_body, later, pki.root) == 200
        revoke(pki.directory, issued.certificate.serial_number)
        server.process.send_signal(signal.SIGHUP)

        def refused_three_times() -> bool:
            # A reset by a worker being replaced is brief; a revoked certificate stays refused.
            for _ in range(3):
                try:
                    post(f"{server.url}/abonnementen", gemeente_body, later, pki.root)
                    return False
                except (requests.exceptions.SSLError, requests.exceptions.ConnectionError):
                    time.sleep(0.3)
            return True

        wait_until(refused_three_times)
    finally:
        organisations.write_text(original)
        server.process.send_signal(signal.SIGHUP)
        # Leave the server settled for the next test: the replaced workers are gone.
        time.sleep(1)
        wait_until(lambda: len(children(server.process.pid)) == 4)  # 2 workers + 2 side processes


@pytest.mark.parametrize("path", ["/nothing", "/metrics/x"])
def test_unknown_admin_paths_get_404(server: Server, path: str) -> None:
    assert requests.get(f"{server.admin_url}{path}", timeout=5).status_code == 404


def test_the_grafana_dashboard_only_uses_metrics_the_adapter_exports(
    server: Server, pki: Pki
) -> None:
    cert = pki.clients[GEMEENTE].pair
    post(f"{server.url}/abonnementen", aanvraag([SUBSCRIBED], GEMEENTE), cert, pki.root)
    post(f"{server.url}/abonnementen", aanvraag(["123456789"], GEMEENTE), cert, pki.root)  # refused
    exported = requests.get(f"{server.admin_url}/metrics", timeout=5).text
    dashboard = json.loads((CONF / "grafana-dashboard.json").read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"dk_\w+", target["expr"])
    }
    assert used
    for name in used:
        assert re.search(rf"^{name}[{{ ]", exported, re.MULTILINE), f"{name} is not exported"

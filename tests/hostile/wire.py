"""Sending the corpus and looking at what it left behind: stored rows, fetches, memory.

Plain helpers over a running `Server`: one query for every table the corpus compares, a
loopback listener that records any connection a parser might make, a request that declares
more bytes than it sends, and the resident memory of the server's whole process tree.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from pathlib import Path

import requests
from sqlalchemy import text

from tests.conftest import ClientCert, Pki, Server

# Rows of the business (SPEC Part C "What nothing stored means") and of the ebMS layer.
# Notifications are left out: the scheduler queues them in its own time from berichten,
# which are compared.
BUSINESS_TABLES = (
    "accounts",
    "subscriptions",
    "subscription_changes",
    "zaken",
    "zaak_statussen",
    "berichten",
    "bericht_bijlagen",
    "bijlagen",
)
MESSAGE_TABLES = ("ebms_messages", "outbox")
# Receipts by outcome: a refusal, an accepted request, a batch judged per Bericht.
RECEIPTS = {"refused": "Geweigerd", "accepted": "Geaccepteerd", "judged": "Berichten"}
REFUSED, ACCEPTED, JUDGED = (f"{name}_receipts" for name in RECEIPTS)


def snapshot(server: Server) -> dict[str, int]:
    """Row counts of the compared tables and the receipts by outcome, in one query."""
    # Literal names from this module only.
    counts = [f"(SELECT count(*) FROM {t}) AS {t}" for t in BUSINESS_TABLES + MESSAGE_TABLES]  # noqa: S608
    counts += [
        f"(SELECT count(*) FROM receipts WHERE outcome = '{outcome}') AS {name}_receipts"  # noqa: S608
        for name, outcome in RECEIPTS.items()
    ]
    with server.engine.connect() as conn:
        row = conn.exec_driver_sql("SELECT " + ", ".join(counts)).mappings().one()
    return {name: int(value) for name, value in row.items()}


def changed(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """The tables whose count moved, with by how much."""
    return {name: after[name] - before[name] for name in before if after[name] != before[name]}


def receipt_code(server: Server, receipt_id: str) -> tuple[str, str | None]:
    """Outcome and code of the stored receipt with this id."""
    with server.engine.connect() as conn:
        row = conn.execute(
            text("SELECT outcome, outcome_code FROM receipts WHERE receipt_id = :id"),
            {"id": receipt_id},
        ).one()
    return str(row[0]), row[1]


def post(
    server: Server,
    pki: Pki,
    path: str,
    body: bytes,
    content_type: str | None,
    soap_action: str | None,
    client: ClientCert,
) -> requests.Response:
    headers = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if soap_action is not None:
        headers["SOAPAction"] = soap_action
    return requests.post(
        f"{server.url}{path}",
        data=body,
        headers=headers,
        cert=client.pair,
        verify=str(pki.root),
        timeout=60,
    )


def post_declaring(
    server: Server,
    pki: Pki,
    client: ClientCert,
    path: str,
    headers: dict[str, str],
    declared: int,
    sent: bytes,
) -> tuple[int, dict[str, str], bytes]:
    """POST that declares `declared` bytes but sends only `sent`, then reads the answer.

    For a cap the server must apply from Content-Length alone, before reading the body.
    """
    context = ssl.create_default_context(cafile=str(pki.root))
    context.load_cert_chain(*client.pair)
    host, port = server.url.removeprefix("https://").rsplit(":", 1)
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=30)
    try:
        connection.putrequest("POST", path)
        for name, value in {**headers, "Content-Length": str(declared)}.items():
            connection.putheader(name, value)
        connection.endheaders(sent)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


class Tripwire:
    """A loopback listener standing in for an attacker's server: it records who connects."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.connections: list[bytes] = []  # the first bytes each connection sent
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> Tripwire:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.socket.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(1)
                try:
                    self.connections.append(connection.recv(1024))
                except OSError:
                    self.connections.append(b"")


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line
            )
        except OSError:  # the process ended while we looked
            continue
        children.setdefault(int(fields["PPid"]), []).append(int(fields["Pid"]))
    return children


def resident_mib(pid: int) -> dict[int, float]:
    """VmRSS in MiB of `pid` and every process below it (gunicorn's workers, the scheduler,
    the citizen listener and its workers)."""
    children, pending, sizes = _children(), [pid], {}
    while pending:
        current = pending.pop()
        pending += children.get(current, [])
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                sizes[current] = int(line.split()[1]) / 1024
    return sizes

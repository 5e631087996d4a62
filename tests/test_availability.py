"""Idle, stalled, slow and half-finished clients against the mTLS port (adapter.transport.front).

An attacker on loopback opens connections that say nothing, stall their TLS handshake, or send
their headers a byte at a time, and a good request from a configured organisation must still
be answered at once, while each bad connection is closed by its deadline. The attackers come
from other loopback addresses (127.0.0.2 and up) than the good client, as they would from
other hosts, so the per-address limit applies to them and not to it.

The deadlines here are 2 s (the product's default is 10 s) to keep the test short; the one
timed assertion is the issue's own measure: the good request is answered in under a second.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.berichtverwerk_samples import batch_xml, minimal_pdf
from tests.conftest import GEMEENTE, Pki, Server, running_server
from tests.ebms_helpers import send
from tests.helpers import wait_until
from tests.hostile.wire import resident_mib
from tests.soap_helpers import aanvraag, fault_of, post

DEADLINE = 2.0  # handshake, header and body deadlines of the server under test
MARGIN = 3.0  # how much later than its deadline a bad connection may be seen closed
PER_ADDRESS = 24  # connections one address may hold per worker (2 workers)
SUBSCRIBED = "999993653"
# The good request's second is measured against the load these tests make, not another's.
pytestmark = pytest.mark.alone


def _shorter_deadlines(directory: Path) -> None:
    config = directory / "conf" / "adapter.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace(
            "[server]\n",
            "[server]\n"
            f"handshake_timeout_seconds = {DEADLINE}\n"
            f"header_timeout_seconds = {DEADLINE}\n"
            f"body_timeout_seconds = {DEADLINE}\n"
            f"max_connections_per_address = {PER_ADDRESS}\n"
            "keepalive_seconds = 3\n",
            1,
        ),
        encoding="utf-8",
    )


@pytest.fixture(scope="module")
def guarded(
    pki: Pki, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("availability")
    with running_server(pki, database_url, directory, _shorter_deadlines) as running:
        yield running


def _port(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _connect(server: Server, source: str) -> socket.socket:
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.bind((source, 0))
    raw.connect(("127.0.0.1", _port(server)))
    return raw


def _client_context(pki: Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.root))
    context.load_cert_chain(*pki.clients[GEMEENTE].pair)
    return context


def _closed(sock: socket.socket) -> bool:
    """Whether the server has closed this connection (reading what it may have said first)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        while True:
            if not sock.recv(65536):
                return True
    except (ConnectionError, ssl.SSLError, OSError):
        return True


def _wait_all_closed(sockets: list[socket.socket], by: float) -> list[float]:
    """The moment each socket was seen closed, in the order of `sockets`; fails when one is
    still open at `by`."""
    closed_at: dict[int, float] = {}
    while len(closed_at) < len(sockets) and time.monotonic() < by:
        for index, sock in enumerate(sockets):
            if index not in closed_at and _closed(sock):
                closed_at[index] = time.monotonic()
        time.sleep(0.05)
    open_ones = len(sockets) - len(closed_at)
    assert open_ones == 0, f"{open_ones} of {len(sockets)} connections still open"
    return [closed_at[index] for index in range(len(sockets))]


def _good_request(server: Server, pki: Pki) -> float:
    started = time.monotonic()
    response = post(
        f"{server.url}/abonnementen",
        aanvraag([SUBSCRIBED], GEMEENTE),
        pki.clients[GEMEENTE].pair,
        pki.root,
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert b"isBerichtSturen>true<" in response.content
    return elapsed


class _Trickle(threading.Thread):
    """Sends request heads one byte every 0.3 s on TLS connections, until told to stop."""

    def __init__(self, connections: list[ssl.SSLSocket]) -> None:
        super().__init__(daemon=True)
        self.connections = connections
        self.stopped = threading.Event()

    def run(self) -> None:
        head = b"POST /abonnementen HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
        for byte in range(len(head)):
            for connection in self.connections:
                # A send may fail once the server closed it: what we expect after its deadline.
                with contextlib.suppress(OSError):
                    connection.send(head[byte : byte + 1])
            if self.stopped.wait(0.3):
                return


def test_idle_stalled_and_slow_clients_do_not_delay_a_good_request(
    guarded: Server, pki: Pki
) -> None:
    _good_request(guarded, pki)  # warm: the first request of a worker loads its schemas
    opened = time.monotonic()
    silent = [_connect(guarded, "127.0.0.2") for _ in range(64)]
    stalled = [_connect(guarded, "127.0.0.3") for _ in range(16)]
    for sock in stalled:
        # A TLS record header announcing a 512-byte ClientHello, and then only its first bytes.
        sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 16)
    context = _client_context(pki)
    slow, slow_ready = [], []  # each one's header deadline runs from its own handshake
    for _ in range(16):
        sock = context.wrap_socket(_connect(guarded, "127.0.0.4"), server_hostname="127.0.0.1")
        slow.append(sock)
        slow_ready.append(time.monotonic())
    slow_opened = time.monotonic()
    trickle = _Trickle(slow)
    trickle.start()
    try:
        elapsed = [_good_request(guarded, pki) for _ in range(5)]
        assert max(elapsed) < 1.0, f"good requests took {elapsed}"
        silent_closed = _wait_all_closed(silent + stalled, opened + DEADLINE + MARGIN)
        slow_closed = _wait_all_closed(slow, slow_opened + DEADLINE + MARGIN)
    finally:
        trickle.stopped.set()
        for sock in silent + stalled + slow:
            sock.close()
    # Closed by the deadline, not before it (those above the per-address limit are refused
    # at once, so the earliest may be early; most must wait for the deadline).
    assert sorted(silent_closed)[len(silent_closed) // 2] >= opened + DEADLINE - 0.5
    assert all(
        closed >= ready + DEADLINE - 0.5
        for closed, ready in zip(slow_closed, slow_ready, strict=True)
    ), [round(closed - ready, 2) for closed, ready in zip(slow_closed, slow_ready, strict=True)]
    assert _good_request(guarded, pki) < 1.0


def test_connections_beyond_the_per_address_limit_are_refused_at_once(
    guarded: Server, pki: Pki
) -> None:
    held = [_connect(guarded, "127.0.0.5") for _ in range(4 * PER_ADDRESS)]
    try:
        time.sleep(0.5)
        refused = sum(_closed(sock) for sock in held)
        # Two workers hold at most 2 x PER_ADDRESS of them; the kernel spreads the rest too.
        assert refused >= 4 * PER_ADDRESS - 2 * PER_ADDRESS
        assert _good_request(guarded, pki) < 1.0  # another address is not affected
    finally:
        for sock in held:
            sock.close()


def test_an_idle_keep_alive_connection_is_closed_after_its_keepalive_time(
    guarded: Server, pki: Pki
) -> None:
    context = _client_context(pki)
    sock = context.wrap_socket(_connect(guarded, "127.0.0.1"), server_hostname="127.0.0.1")
    body = aanvraag([SUBSCRIBED], GEMEENTE)
    head = (
        "POST /abonnementen HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml; charset=utf-8\r\n"
        f'SOAPAction: "{_action()}"\r\nContent-Length: {len(body)}\r\n\r\n'
    ).encode()
    sock.sendall(head + body)
    answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    idle_from = time.monotonic()
    closed = _wait_all_closed([sock], idle_from + 3 + MARGIN)
    assert closed[0] >= idle_from + 3 - 0.5
    sock.close()


def _action() -> str:
    from adapter.berichtenbox.abonnementen import ACTION

    return ACTION


def _raw_request(server: Server, pki: Pki, head: bytes, body: bytes = b"") -> ssl.SSLSocket:
    sock = _client_context(pki).wrap_socket(
        _connect(server, "127.0.0.1"), server_hostname="127.0.0.1"
    )
    sock.sendall(head + body)
    return sock


def _read_answer(sock: ssl.SSLSocket, within: float) -> bytes:
    sock.settimeout(within)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (TimeoutError, ssl.SSLError, ConnectionError):
        pass
    return received


def _head(length: str) -> bytes:
    return (
        "POST /abonnementen HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml; charset=utf-8\r\n"
        f'SOAPAction: "{_action()}"\r\n{length}\r\n\r\n'
    ).encode()


def test_a_declared_oversize_whose_body_never_comes_is_answered_at_once(
    guarded: Server, pki: Pki
) -> None:
    limit = 4194304  # [limits] max_request_bytes of the test configuration (the default)
    started = time.monotonic()
    sock = _raw_request(guarded, pki, _head(f"Content-Length: {limit + 1}"))
    answer = _read_answer(sock, DEADLINE + 8)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 500"), answer[:300]
    assert b"Connection: close" in answer or b"connection: close" in answer
    assert b"0001 " in answer
    assert time.monotonic() - started < 1.0 + 5.0  # answered at once; the close follows linger


def test_an_absurd_chunk_size_with_nothing_after_it_is_answered_by_the_body_deadline(
    guarded: Server, pki: Pki
) -> None:
    receipts = guarded.count("receipts")
    started = time.monotonic()
    sock = _raw_request(
        guarded, pki, _head("Transfer-Encoding: chunked"), b"10000000000000000\r\n<s:Env"
    )
    answer = _read_answer(sock, DEADLINE + MARGIN + 5)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 500"), answer[:300]
    assert b"niet verder binnen" in answer
    assert time.monotonic() - started < DEADLINE + MARGIN
    assert guarded.count("receipts") == receipts + 1  # a client fault, recorded as refused


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_client_leaving_mid_body_leaves_no_receipt_and_the_server_serves_on(
    guarded: Server, pki: Pki, framing: str
) -> None:
    receipts = guarded.count("receipts")
    body = aanvraag([SUBSCRIBED], GEMEENTE)
    if framing == "chunked":
        head, sent = _head("Transfer-Encoding: chunked"), b"%x\r\n%s" % (len(body), body[:100])
    else:
        head, sent = _head(f"Content-Length: {len(body)}"), body[:100]
    sock = _raw_request(guarded, pki, head, sent)
    time.sleep(0.3)
    sock.close()
    time.sleep(1.0)
    assert guarded.count("receipts") == receipts
    assert _good_request(guarded, pki) < 1.0


def test_a_whole_oversized_body_gets_its_refusal_instead_of_a_reset(
    guarded: Server, pki: Pki
) -> None:
    """The client sends all of it before reading: lingering lets it read the fault."""
    body = b"<x>" + b"a" * (4194304 + 10) + b"</x>"
    response = post(f"{guarded.url}/abonnementen", body, pki.clients[GEMEENTE].pair, pki.root)
    _, text, _ = fault_of(response)
    assert response.headers.get("Connection") == "close"
    assert text.startswith("0001 "), text  # refused by size, unparsed


def test_a_malformed_request_head_gets_400_and_a_close(guarded: Server, pki: Pki) -> None:
    sock = _raw_request(guarded, pki, b"POST /abonnementen HTTP/1.1\r\nContent-Length: x\r\n\r\n")
    answer = _read_answer(sock, DEADLINE + MARGIN)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]


def test_requests_keep_working_over_one_kept_alive_connection(guarded: Server, pki: Pki) -> None:
    with requests.Session() as session:
        session.cert = pki.clients[GEMEENTE].pair
        session.verify = str(pki.root)
        session.trust_env = False
        for _ in range(20):
            response = session.post(
                f"{guarded.url}/abonnementen",
                data=aanvraag([SUBSCRIBED], GEMEENTE),
                headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": _action()},
                timeout=10,
            )
            assert response.status_code == 200


def _worst_case_bodies() -> list[bytes]:
    """Requests just under the 4 MiB cap that cost the parser the most before its limits."""
    cap = 4194304 - 200
    attributes = b" ".join(b'a%d="x"' % i for i in range(cap // 12))
    return [
        b"<s:Envelope xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'><s:Body><x "
        + attributes[: cap - 120]
        + b"/></s:Body></s:Envelope>",
        b"<a>" * (cap // 7) + b"</a>" * (cap // 7),
        b"<s:Envelope xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'><s:Body><x>"
        + b"<y/>" * (cap // 4 - 40)
        + b"</x></s:Body></s:Envelope>",
        b"<s:Envelope xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'><s:Body><x>"
        + b"t" * (cap - 120)
        + b"</x></s:Body></s:Envelope>",
    ]


def test_eight_concurrent_worst_case_requests_delay_a_good_request_by_under_a_second(
    guarded: Server, pki: Pki
) -> None:
    bodies = _worst_case_bodies()
    url, cert = f"{guarded.url}/abonnementen", pki.clients[GEMEENTE].pair
    for body in bodies:  # alone, each is answered within a second
        started = time.monotonic()
        assert post(url, body, cert, pki.root).status_code == 500
        assert time.monotonic() - started < 1.0
    answered: list[float] = []

    def hostile(body: bytes) -> None:
        started = time.monotonic()
        response = post(url, body, cert, pki.root)
        assert response.status_code == 500, response.text[:200]
        answered.append(time.monotonic() - started)

    workers = [threading.Thread(target=hostile, args=(bodies[i % 4],)) for i in range(8)]
    for worker in workers:
        worker.start()
    time.sleep(0.2)  # the hostile requests are on their way or being parsed
    good = _good_request(guarded, pki)
    for worker in workers:
        worker.join(30)
    assert len(answered) == 8
    assert good < 1.0, f"the good request took {good:.2f} s beside 8 worst-case requests"
    assert max(answered) < 8 * 1.0, answered  # together they share two cores; none hangs


def _workers(server: Server) -> dict[int, float]:
    """gunicorn's workers of the mTLS port (forks of the master: the same command line) and
    their resident memory in MiB."""
    master = server.process.pid
    command = Path(f"/proc/{master}/cmdline").read_bytes()
    workers = {}
    for pid, mib in resident_mib(master).items():
        try:
            same = Path(f"/proc/{pid}/cmdline").read_bytes() == command
            parent = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
        except OSError:
            continue
        if pid != master and same and int(parent) == master:
            workers[pid] = mib
    return workers


def test_a_worker_left_holding_a_large_message_is_replaced_and_the_server_serves_on(
    pki: Pki, database_url: str, tmp_path: Path
) -> None:
    def small_memory_limit(directory: Path) -> None:
        config = directory / "conf" / "adapter.toml"
        text = config.read_text(encoding="utf-8")
        config.write_text(
            text.replace("[server]\n", "[server]\nmax_worker_memory_mib = 130\n", 1),
            encoding="utf-8",
        )

    with running_server(pki, database_url, tmp_path, small_memory_limit) as server:
        _good_request(server, pki)
        before = _workers(server)
        assert len(before) == 2 and max(before.values()) < 130, before
        # A batch of 1,500 Berichten with two 10 KB PDFs each: one large message becomes many
        # small objects, and the worker that took it is left holding about 160 MiB (from 90).
        # The limit lies halfway, so neither a leaner batch path nor a heavier start flips it.
        pdf = minimal_pdf(10_000)
        batch = batch_xml([{"bijlagen": [(pdf, "a"), (pdf, "b")]} for _ in range(1500)])
        assert send(server, pki, batch).response.status_code == 200
        wait_until(lambda: set(_workers(server)) - set(before) != set(), timeout=60)
        wait_until(lambda: len(_workers(server)) == 2, timeout=60)
        assert _good_request(server, pki) < 1.0
        assert max(_workers(server).values()) < 130
        assert "above max_worker_memory_mib = 130: replacing it" in server.log.read_text()

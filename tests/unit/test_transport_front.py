"""The connection front (adapter.transport.front) in-process: one event loop, a tiny WSGI app.

A throw-away EC certificate authority makes mutual TLS cheap enough for the unit layer; the
deadlines are a fraction of a second. The end-to-end behaviour against the real app is in
tests/test_availability.py.
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from adapter.errors import BodyUnreadable
from adapter.transport.balance import ConnectionShare, WorkerConnections
from adapter.transport.front import Front, FrontLimits, _BodyBudget
from adapter.transport.identity import CLIENT_CERT_KEY
from tests.helpers import wait_until

LIMITS = FrontLimits(
    handshake_seconds=0.4,
    header_seconds=0.4,
    body_seconds=0.4,
    keepalive_seconds=0.6,
    per_address=3,
    connections=50,
    linger_seconds=0.3,
)
BODY_LIMIT = 1000


def _issue(
    name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: Any, ca: bool
) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(signer, hashes.SHA256())


@dataclass
class _Pki:
    ca: Path
    server: tuple[Path, Path]
    client: tuple[Path, Path]


@pytest.fixture(scope="module")
def tiny_pki(tmp_path_factory: pytest.TempPathFactory) -> _Pki:
    directory = tmp_path_factory.mktemp("front-pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "front test CA")])
    ca = _issue("front test CA", ca_key, ca_name, ca_key, ca=True)
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pairs = []
    for name in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(name, key, ca_name, ca_key, ca=False)
        (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / f"{name}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        pairs.append((directory / f"{name}.pem", directory / f"{name}.key"))
    return _Pki(directory / "ca.pem", pairs[0], pairs[1])


class _App:
    """Answers with what it saw; `calls` counts the requests that reached it."""

    def __init__(self) -> None:
        self.calls = 0
        self.environ: dict[str, Any] = {}
        self.release = threading.Event()  # what /hold waits for before it answers

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.calls += 1
        self.environ = environ
        if environ["PATH_INFO"] == "/boom":
            raise RuntimeError("the app failed")
        if environ["PATH_INFO"] == "/hold":
            self.release.wait(5)
        try:
            length = environ.get("CONTENT_LENGTH")
            body = environ["wsgi.input"].read(int(length) if length else BODY_LIMIT + 1)
            answer = b"read %d bytes" % len(body)
        except BodyUnreadable as refusal:
            answer = refusal.reason.encode()
        headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(answer)))]
        start_response("200 OK", headers)
        return [answer]


@dataclass
class _Running:
    port: int
    app: _App
    front: Front
    loop: asyncio.AbstractEventLoop
    client: ssl.SSLContext


@contextmanager
def _front(
    tiny_pki: _Pki,
    limits: FrontLimits,
    listener: socket.socket | None = None,
    share: ConnectionShare | None = None,
) -> Iterator[_Running]:
    """A front in a thread of its own, on `listener` (default: a new one, closed after)."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(*tiny_pki.server)
    server_context.verify_mode = ssl.CERT_REQUIRED
    server_context.load_verify_locations(cafile=str(tiny_pki.ca))
    client_context = ssl.create_default_context(cafile=str(tiny_pki.ca))
    client_context.load_cert_chain(*tiny_pki.client)
    own_listener = listener is None
    listener = listener or socket.create_server(("127.0.0.1", 0))
    app = _App()
    loop = asyncio.new_event_loop()
    pool = ThreadPoolExecutor(2)
    front = Front(app, server_context, limits, pool, lambda _path: BODY_LIMIT, share)
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(front.start, [listener])
        loop.call_soon(started.set)
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(5)
    try:
        yield _Running(listener.getsockname()[1], app, front, loop, client_context)
    finally:
        asyncio.run_coroutine_threadsafe(front.stop(1.0), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
        app.release.set()
        pool.shutdown()
        if own_listener:
            listener.close()


@pytest.fixture()
def running(tiny_pki: _Pki) -> Iterator[_Running]:
    with _front(tiny_pki, LIMITS) as running:
        yield running


def _tls(running: _Running, source: str = "127.0.0.1") -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", running.port), source_address=(source, 0))
    return running.client.wrap_socket(raw, server_hostname="127.0.0.1")


def _answer(sock: ssl.SSLSocket, timeout: float = 3.0) -> bytes:
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
            if b"\r\n\r\n" in received:
                head, _, rest = received.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    None,
                )
                if length is not None and len(rest) >= length:
                    return received
    except (TimeoutError, ssl.SSLError, ConnectionError):
        pass
    return received


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except (ssl.SSLError, ConnectionError):
        pass
    return True


def _post(body: bytes, extra: str = "", path: str = "/echo") -> bytes:
    head = f"POST {path}?x=1 HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


def test_a_request_reaches_the_app_with_its_certificate_path_query_and_headers(
    running: _Running,
) -> None:
    with _tls(running) as sock:
        sock.sendall(
            _post(b"hello", "SOAPAction: x\r\nX_Smuggled: 1\r\nX-Twice: a\r\nX-Twice: b\r\n")
        )
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 200 OK"), answer
    assert answer.endswith(b"read 5 bytes")
    environ = running.app.environ
    assert isinstance(environ[CLIENT_CERT_KEY], bytes)
    assert x509.load_der_x509_certificate(environ[CLIENT_CERT_KEY]).subject.rfc4514_string() == (
        "CN=client"
    )
    assert (environ["PATH_INFO"], environ["QUERY_STRING"]) == ("/echo", "x=1")
    assert environ["HTTP_SOAPACTION"] == "x"
    assert environ["HTTP_X_TWICE"] == "a, b"
    assert "HTTP_X_SMUGGLED" not in environ  # underscores would alias X-Smuggled


def test_a_kept_alive_connection_carries_several_requests(running: _Running) -> None:
    with _tls(running) as sock:
        for size in (1, 10, 100):
            sock.sendall(_post(b"x" * size))
            assert _answer(sock).endswith(b"read %d bytes" % size)
    assert running.app.calls == 3


def test_a_declared_oversize_is_passed_on_unread_and_the_connection_closed(
    running: _Running,
) -> None:
    with _tls(running) as sock:
        sock.sendall(
            f"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {BODY_LIMIT + 1}\r\n\r\n".encode()
        )
        answer = _answer(sock)
        assert answer.endswith(b"read 0 bytes"), answer
        assert b"connection: close" in answer.lower()
        assert _closed_within(sock, LIMITS.linger_seconds + 2)


def test_a_chunked_body_over_the_limit_stops_at_one_byte_past_it(running: _Running) -> None:
    with _tls(running) as sock:
        chunk = b"x" * 600
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n%s\r\n" % (len(chunk), chunk) * 3
        )
        answer = _answer(sock)
    assert answer.endswith(b"read %d bytes" % (BODY_LIMIT + 1)), answer


def test_a_body_that_stops_arriving_reaches_the_app_as_unreadable(running: _Running) -> None:
    with _tls(running) as sock:
        sock.sendall(_post(b"x" * 100)[:-50])
        answer = _answer(sock, LIMITS.body_seconds + 3)
    assert b"niet verder binnen" in answer, answer


def test_a_client_leaving_mid_body_never_reaches_the_app(running: _Running) -> None:
    with _tls(running) as sock:
        sock.sendall(_post(b"x" * 100)[:-50])
    time.sleep(LIMITS.body_seconds + 0.3)
    assert running.app.calls == 0


def test_a_slow_head_gets_408_and_a_close_by_its_deadline(running: _Running) -> None:
    with _tls(running) as sock:
        sock.sendall(b"POST /echo HTT")
        started = time.monotonic()
        answer = _answer(sock, LIMITS.header_seconds + 3)
        assert answer.startswith(b"HTTP/1.1 408")
        assert time.monotonic() - started < LIMITS.header_seconds + 1
    assert running.app.calls == 0


def test_a_silent_connection_is_closed_by_the_handshake_deadline(running: _Running) -> None:
    with socket.create_connection(("127.0.0.1", running.port)) as raw:
        started = time.monotonic()
        assert _closed_within(raw, LIMITS.handshake_seconds + 2)
        assert time.monotonic() - started >= LIMITS.handshake_seconds - 0.1


def test_connections_beyond_the_per_address_limit_are_closed_at_once(
    running: _Running,
) -> None:
    held = [
        socket.create_connection(("127.0.0.1", running.port), source_address=("127.0.0.7", 0))
        for _ in range(5)
    ]
    try:
        time.sleep(0.1)
        assert sum(_closed_within(sock, 0.05) for sock in held) == 2
        with _tls(running, "127.0.0.8") as sock:  # another address still gets in
            sock.sendall(_post(b"ok"))
            assert _answer(sock).endswith(b"read 2 bytes")
    finally:
        for sock in held:
            sock.close()


def test_an_idle_kept_alive_connection_is_closed_after_the_keepalive_time(
    running: _Running,
) -> None:
    with _tls(running) as sock:
        sock.sendall(_post(b"x"))
        assert _answer(sock).endswith(b"read 1 bytes")
        started = time.monotonic()
        assert _closed_within(sock, LIMITS.keepalive_seconds + 2)
        assert time.monotonic() - started >= LIMITS.keepalive_seconds - 0.1


def test_a_malformed_head_gets_400(running: _Running) -> None:
    with _tls(running) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nContent-Length: x\r\n\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 400")


def test_an_app_failure_is_a_500_and_the_front_serves_on(running: _Running) -> None:
    with _tls(running) as sock:
        sock.sendall(_post(b"x", path="/boom"))
        assert _answer(sock).startswith(b"HTTP/1.1 500")
        sock.sendall(_post(b"y"))
        assert _answer(sock).endswith(b"read 1 bytes")


def test_stop_closes_idle_connections(running: _Running) -> None:
    with _tls(running) as sock:
        sock.sendall(_post(b"x"))
        assert _answer(sock).endswith(b"read 1 bytes")
        asyncio.run_coroutine_threadsafe(running.front.stop(1.0), running.loop).result(3)
        assert _closed_within(sock, 1)
    assert running.front.open_connections == 0


def test_stop_answers_the_first_request_of_a_connection_it_accepted_before_stopping(
    running: _Running,
) -> None:
    # A worker being replaced (SIGHUP) may have just accepted a connection whose client is
    # sending its request: closing that connection would lose the request.
    with _tls(running) as sock:  # handshake done: the server holds it, no request yet
        stopping = asyncio.run_coroutine_threadsafe(running.front.stop(3.0), running.loop)
        time.sleep(0.1)
        sock.sendall(_post(b"z"))
        answer = _answer(sock)
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"read 1 bytes")
        assert b"connection: close" in answer.lower()
        stopping.result(5)
    assert running.front.open_connections == 0


# --- the budget of bodies in flight ------------------------------------------------------------


def test_the_budget_admits_in_order_and_one_body_alone_whatever_its_size() -> None:
    async def scenario() -> None:
        budget = _BodyBudget(limit=100, small=10)
        await budget.take(150)  # alone: admitted although above the budget
        second = asyncio.ensure_future(budget.take(60))
        third = asyncio.ensure_future(budget.take(30))  # would fit beside the second: waits
        await asyncio.sleep(0.01)
        assert not second.done() and not third.done()
        budget.give_back(150)
        await asyncio.sleep(0.01)
        assert second.done() and third.done() and budget.in_flight == 90
        budget.give_back(60)
        budget.give_back(30)
        assert budget.in_flight == 0

    asyncio.run(scenario())


def test_a_body_that_stops_waiting_leaves_nothing_counted_and_lets_the_next_in() -> None:
    async def scenario() -> None:
        budget = _BodyBudget(limit=100, small=10)
        await budget.take(80)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await budget.take(90)
        await budget.take(20)  # the one that gave up no longer blocks the queue
        assert budget.in_flight == 100
        assert not budget.counts(10) and budget.counts(11)
        assert not _BodyBudget(limit=0, small=10).counts(10**9)  # 0: no budget

    asyncio.run(scenario())


BUDGETED = FrontLimits(
    handshake_seconds=2.0,
    header_seconds=2.0,
    body_seconds=3.0,  # room for a loaded machine: the waiting test pays it once
    keepalive_seconds=2.0,
    per_address=10,
    connections=50,
    linger_seconds=0.3,
    bytes_in_flight=1000,
    small_body_bytes=100,
)


@pytest.fixture()
def budgeted(tiny_pki: _Pki) -> Iterator[_Running]:
    with _front(tiny_pki, BUDGETED) as running:
        yield running


def test_a_large_body_waits_unread_for_the_one_in_flight_and_small_ones_pass(
    budgeted: _Running,
) -> None:
    with _tls(budgeted) as first, _tls(budgeted) as second, _tls(budgeted) as small:
        first.sendall(_post(b"a" * 600, path="/hold"))
        wait_until(lambda: budgeted.app.calls == 1, timeout=10, interval=0.02)
        second.sendall(_post(b"b" * 600))  # 600 + 600 > 1000: waits
        time.sleep(0.2)
        small.sendall(_post(b"c" * 100))  # small: never held back
        assert _answer(small).endswith(b"read 100 bytes")
        assert budgeted.app.calls == 2  # the held request and the small one, not the second
        budgeted.app.release.set()
        assert _answer(first).endswith(b"read 600 bytes")
        assert _answer(second).endswith(b"read 600 bytes")
    assert budgeted.front.budget.in_flight == 0


def test_a_body_the_budget_counts_is_held_in_memory_and_one_it_does_not_may_go_to_a_file(
    budgeted: _Running, running: _Running
) -> None:
    # The budget bounds the bytes of counted bodies per worker, so they need no temporary
    # file; without a budget a body over 1 MiB is written to one while it waits.
    with _tls(budgeted) as counted, _tls(running) as unbounded:
        counted.sendall(_post(b"a" * 600))
        assert _answer(counted).endswith(b"read 600 bytes")
        assert type(budgeted.app.environ["wsgi.input"]) is io.BytesIO
        unbounded.sendall(_post(b"b" * 600))
        assert _answer(unbounded).endswith(b"read 600 bytes")
        assert isinstance(running.app.environ["wsgi.input"], tempfile.SpooledTemporaryFile)


def test_a_body_that_waits_past_the_body_deadline_gets_503_and_never_reaches_the_app(
    budgeted: _Running,
) -> None:
    with _tls(budgeted) as first, _tls(budgeted) as second:
        first.sendall(_post(b"a" * 900, path="/hold"))
        wait_until(lambda: budgeted.app.calls == 1, timeout=10, interval=0.02)
        second.sendall(_post(b"b" * 900))
        started = time.monotonic()
        answer = _answer(second, BUDGETED.body_seconds + 3)
        assert time.monotonic() - started >= BUDGETED.body_seconds - 0.1
        assert answer.startswith(b"HTTP/1.1 503"), answer
        assert b"retry-after: 3" in answer.lower()
        assert b"connection: close" in answer.lower()
        assert budgeted.app.calls == 1
        budgeted.app.release.set()
        assert _answer(first).endswith(b"read 900 bytes")
    assert budgeted.front.budget.in_flight == 0


# --- two workers on one socket (adapter.transport.balance) -----------------------------------


class _Worker:
    """A stand-in for a gunicorn worker object: what the table assigns a slot to."""

    connections_slot: int | None = None


def _two_workers() -> tuple[WorkerConnections, list[_Worker]]:
    table = WorkerConnections(4)
    workers = [_Worker(), _Worker()]
    for worker in workers:
        table.assign(worker)
    return table, workers


KEPT_OPEN = FrontLimits(keepalive_seconds=30, per_address=20)


def test_fronts_on_one_socket_take_turns_so_kept_alive_connections_are_spread_evenly(
    tiny_pki: _Pki,
) -> None:
    table, workers = _two_workers()
    with (
        socket.create_server(("127.0.0.1", 0)) as listener,
        _front(tiny_pki, KEPT_OPEN, listener, table.share(workers[0].connections_slot)) as first,
        _front(tiny_pki, KEPT_OPEN, listener, table.share(workers[1].connections_slot)) as second,
    ):
        connections = []
        try:
            for _ in range(8):
                sock = _tls(first)  # same port as `second`
                sock.sendall(_post(b"x"))
                assert _answer(sock).endswith(b"read 1 bytes")
                connections.append(sock)
            held = (first.front.open_connections, second.front.open_connections)
            assert held == (4, 4), held
            assert first.app.calls == second.app.calls == 4
        finally:
            for sock in connections:
                sock.close()


def test_a_front_whose_peer_stopped_accepting_takes_every_connection_itself(
    tiny_pki: _Pki,
) -> None:
    table, workers = _two_workers()
    gone = table.share(workers[1].connections_slot)
    assert gone is not None
    gone.hold(0)  # fewer than anyone, but then it stops: nobody may wait for it
    gone.stop_accepting()
    with (
        socket.create_server(("127.0.0.1", 0)) as listener,
        _front(tiny_pki, KEPT_OPEN, listener, table.share(workers[0].connections_slot)) as only,
    ):
        connections = [_tls(only) for _ in range(3)]
        try:
            for sock in connections:
                sock.sendall(_post(b"x"))
                assert _answer(sock).endswith(b"read 1 bytes")
            assert only.front.open_connections == 3
        finally:
            for sock in connections:
                sock.close()

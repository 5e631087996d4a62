"""The connection front of the mTLS port: an asyncio event loop in front of the WSGI threads.

TLS handshakes, request heads and request bodies are read here, each under a deadline, so a
client that connects and says nothing, stalls its handshake or sends its headers one byte a
second costs a coroutine, never one of the few threads that run the app. A request reaches
the app only when its head and body are complete (or, for a body the app will refuse anyway,
when its head is); the app then runs in a thread pool and its answer is written from here.

HTTP/1.1 framing is h11's: it rejects malformed heads, conflicting lengths and bad chunking.
Our part is the deadlines, the limits per client address, and what a half-sent body means:
- a declared body above the route's limit is not read: the app refuses it from its
  Content-Length, and after the answer we keep reading (and discarding) for a short while so
  the client, still sending, receives the answer instead of a reset;
- a body that stops arriving reaches the app as unreadable, so the client gets a fault;
- a client that hangs up mid-body gets nothing and nothing is recorded: nobody is left to
  receive a receipt, and the service was not at fault.

What large bodies may cost a worker is bounded too (`FrontLimits.bytes_in_flight`): a request
whose declared body would take the bytes of the bodies this worker is reading or handling above
that budget waits, its body unread, until enough of them are done (`_BodyBudget`).
"""

from __future__ import annotations

import asyncio
import functools
import io
import logging
import math
import socket
import ssl
import sys
import tempfile
from collections import Counter, deque
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import unquote

import h11

from adapter.errors import BodyUnreadable
from adapter.transport.balance import ConnectionShare
from adapter.transport.identity import CLIENT_CERT_KEY

log = logging.getLogger("adapter.front")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
BodyLimit = Callable[[str], int]

_READ = 65536
_SPOOL_IN_MEMORY = 1 << 20  # uncounted bodies above this wait for the app in a temporary file
_LINGER_BYTES = 1 << 30  # we never discard more than this after refusing an unread body
_TIMEOUT_ANSWER = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
_BUSY_TEXT = b"503 te veel grote berichten tegelijk; probeer het later opnieuw\n"
# How long a worker that holds more connections than another leaves a new one to that worker;
# after it, the connection is taken anyway (that worker may be busy, or hung).
_DEFER_SECONDS = 0.005


@dataclass(frozen=True)
class FrontLimits:
    handshake_seconds: float = 10.0  # TCP accepted to TLS handshake done
    header_seconds: float = 10.0  # first byte (or handshake) to the end of the request head
    body_seconds: float = 10.0  # longest silence while a body arrives or an answer is taken
    keepalive_seconds: float = 30.0  # idle between requests on one connection
    per_address: int = 32  # open connections from one IP address
    connections: int = 1000  # open connections in all
    max_head_bytes: int = 16384
    linger_seconds: float = 5.0  # reading on after refusing a body we did not read
    # Bodies read or being handled at once, in bytes, counting only bodies above
    # `small_body_bytes` (those never wait); 0: no budget.
    bytes_in_flight: int = 0
    small_body_bytes: int = 1 << 20


class _ClientGone(Exception):
    """The client closed its side before its request was complete."""


class _Unreadable(io.RawIOBase):
    """The body stream of a request whose body could not be read: the app refuses it."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def readable(self) -> bool:
        return True

    def readinto(self, _buffer: Any) -> int:
        raise BodyUnreadable(self.reason)


class _BodyBudget:
    """The bytes of large bodies one worker reads or handles at once, and who waits for room.

    A body is admitted when it fits beside those in flight, or when none is in flight (so a
    body larger than the budget still runs, alone). Waiting is first come, first served: a
    large body is not overtaken forever by smaller ones that would fit. Bodies of at most
    `small` bytes are neither counted nor held back, so big uploads never delay small requests.
    One event loop runs all of it: no lock is needed.
    """

    def __init__(self, limit: int, small: int) -> None:
        self.limit, self.small = limit, small
        self.in_flight = 0
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    def counts(self, size: int) -> bool:
        return self.limit > 0 and size > self.small

    def _fits(self, size: int) -> bool:
        return self.in_flight == 0 or self.in_flight + size <= self.limit

    async def take(self, size: int) -> None:
        """Wait until `size` bytes may be in flight, and count them; give them back with
        `give_back`. Cancelled (a deadline), nothing stays counted."""
        if not self._waiting and self._fits(size):
            self.in_flight += size
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((size, turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.give_back(size)  # admitted just as the deadline passed
            else:
                turn.cancel()
                self._admit()  # those behind it may fit now
            raise

    def give_back(self, size: int) -> None:
        self.in_flight -= size
        self._admit()

    def _admit(self) -> None:
        while self._waiting and (self._waiting[0][1].done() or self._fits(self._waiting[0][0])):
            size, turn = self._waiting.popleft()
            if not turn.done():
                self.in_flight += size
                turn.set_result(None)


@dataclass
class _Body:
    stream: IO[bytes] | io.RawIOBase
    complete: bool  # read to its end: the connection may be kept alive
    linger: bool = False  # the client may still be sending: read on after answering


class _InFile:
    """A body that no budget bounds, above 1 MiB waiting for the app in a temporary file."""

    def __init__(self) -> None:
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115

    def write(self, data: bytes) -> None:
        self.file.write(data)

    def readable(self) -> IO[bytes]:
        self.file.seek(0)
        return self.file

    def close(self) -> None:
        self.file.close()


class _InMemory:
    """A body counted against the worker's budget, which bounds such bytes already: held in
    memory, where a temporary file cost a 28 MB batch a write and a read through the file
    system. Joined once, its bytes reach the app without a further copy: read whole, a
    BytesIO returns the bytes object it was made with."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.chunks.append(data)

    def readable(self) -> IO[bytes]:
        body, self.chunks = io.BytesIO(b"".join(self.chunks)), []
        return body

    def close(self) -> None:
        self.chunks = []


_Spool = _InFile | _InMemory


class Front:
    """Serves `app` over TLS on listening sockets; one per worker process."""

    def __init__(
        self,
        app: WsgiApp,
        context: ssl.SSLContext,
        limits: FrontLimits,
        pool: Executor,
        body_limit: BodyLimit,
        share: ConnectionShare | None = None,
    ) -> None:
        self.app, self.context, self.limits = app, context, limits
        self.pool, self.body_limit = pool, body_limit
        self.share = share  # this worker's count among the workers on one socket, if any
        self.budget = _BodyBudget(limits.bytes_in_flight, limits.small_body_bytes)
        self.per_address: Counter[str] = Counter()
        self.stopping = False  # requests in progress are answered with Connection: close
        self._accepting: list[asyncio.Task[None]] = []
        self._listeners: list[socket.socket] = []
        # task -> busy: a request in progress, or none answered yet (else idle between requests)
        self._connections: dict[asyncio.Task[None], bool] = {}

    def replace_context(self, context: ssl.SSLContext) -> None:
        """Handshake new connections with `context` (new CRLs); open ones keep theirs."""
        self.context = context

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def start(self, listeners: Iterable[socket.socket]) -> None:
        self._listeners = list(listeners)
        for listener in self._listeners:
            listener.setblocking(False)
            self._accepting.append(asyncio.create_task(self._accept(listener)))

    async def stop(self, grace_seconds: float) -> None:
        """Stop accepting, close connections idle between requests, and give the others
        (a request in progress, or a new connection's first) `grace`."""
        self.stopping = True
        for task in self._accepting:
            task.cancel()
        if self.share is not None:
            self.share.stop_accepting()
        for listener in self._listeners:
            listener.close()  # this worker's descriptor; the others keep accepting on theirs
        for task, busy in list(self._connections.items()):
            if not busy:
                task.cancel()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=grace_seconds)
        for task in list(self._connections):
            task.cancel()

    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await _readable(loop, listener)
            if self.share is not None and self.share.others_hold_fewer(len(self._connections)):
                # Every worker wakes for the connection: let one holding fewer take it.
                await asyncio.sleep(_DEFER_SECONDS)
            try:
                raw, address = listener.accept()
            except BlockingIOError:
                continue  # another worker took it
            except OSError as exc:  # EMFILE and the like: back off instead of spinning
                log.warning("accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            raw.setblocking(False)
            ip = str(address[0])
            if self.per_address[ip] >= self.limits.per_address:
                log.info("refused a connection from %s: %d already open", ip, self.per_address[ip])
                raw.close()
                continue
            if len(self._connections) >= self.limits.connections:
                log.warning(
                    "refused a connection from %s: %d open in all", ip, self.limits.connections
                )
                raw.close()
                continue
            self.per_address[ip] += 1
            task = asyncio.create_task(self._connection(raw, address))
            # Busy until its first request is answered: the client has sent one, or is about
            # to, and closing a connection it never got an answer on loses that request.
            self._connections[task] = True
            task.add_done_callback(functools.partial(self._forget, ip=ip))
            self._hold()

    def _forget(self, task: asyncio.Task[None], ip: str) -> None:
        self._connections.pop(task, None)
        self.per_address[ip] -= 1
        if self.per_address[ip] <= 0:
            del self.per_address[ip]
        self._hold()

    def _hold(self) -> None:
        if self.share is not None and not self.stopping:
            self.share.hold(len(self._connections))

    def _busy(self, busy: bool) -> None:
        task = asyncio.current_task()
        if task in self._connections:
            self._connections[task] = busy

    async def _connection(self, raw: socket.socket, address: Any) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=_READ)
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol,
                raw,
                ssl=self.context,
                ssl_handshake_timeout=self.limits.handshake_seconds,
                ssl_shutdown_timeout=2.0,
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as exc:
            log.debug("TLS handshake with %s failed: %s", address[0], exc)
            raw.close()
            return
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        try:
            ssl_object = transport.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
            await _Exchange(self, reader, writer, address, der).run()
        except (_ClientGone, ConnectionError, ssl.SSLError, TimeoutError):
            pass
        finally:
            if transport.is_closing():
                transport.abort()  # the peer is gone: no TLS shutdown to wait for
            else:
                writer.close()


class _Exchange:
    """The requests of one connection, one after the other (HTTP/1.1 keep-alive)."""

    def __init__(
        self,
        front: Front,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        address: Any,
        der: bytes | None,
    ) -> None:
        self.front, self.limits = front, front.limits
        self.reader, self.writer = reader, writer
        self.address, self.der = address, der
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=front.limits.max_head_bytes)

    async def run(self) -> None:
        first = True
        while True:
            if not first and not await self._next_request_starts():
                return
            first = False
            try:
                async with asyncio.timeout(self.limits.header_seconds):
                    event = await self._event()
            except TimeoutError:
                self.writer.write(_TIMEOUT_ANSWER)
                return
            except h11.RemoteProtocolError as exc:
                await self._bad_request(exc)
                return
            if not isinstance(event, h11.Request):
                return  # the client closed between requests
            self.front._busy(True)
            try:
                if not await self._serve(event) or self.front.stopping:
                    return
            finally:
                self.front._busy(False)
            self.h11.start_next_cycle()

    async def _next_request_starts(self) -> bool:
        """Wait up to the keep-alive time for the next request's first bytes."""
        if self.h11.trailing_data[0]:
            return True
        try:
            async with asyncio.timeout(self.limits.keepalive_seconds):
                data = await self.reader.read(_READ)
        except TimeoutError:
            return False
        self.h11.receive_data(data)
        return bool(data)

    async def _event(self) -> Any:
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.h11.receive_data(await self.reader.read(_READ))

    async def _serve(self, request: h11.Request) -> bool:
        """Answer one request; whether the connection may carry another."""
        raw_path, _, query = request.target.decode("latin-1").partition("?")
        path = unquote(raw_path, "latin-1")
        charge = self._charge(request, path)
        if charge:
            try:
                # Waiting is silence to the client, as a stalled body is: the same deadline.
                async with asyncio.timeout(self.limits.body_seconds):
                    await self.front.budget.take(charge)
            except TimeoutError:
                await self._refuse_busy()
                return False
        try:
            body = await self._body(request, path, in_memory=bool(charge))
            environ = self._environ(request, path, query, body.stream)
            loop = asyncio.get_running_loop()
            status, headers, content = await loop.run_in_executor(
                self.front.pool, _call_app, self.front.app, environ
            )
        finally:
            if charge:
                self.front.budget.give_back(charge)
        closing = not body.complete or self.front.stopping
        if closing and not any(k.lower() == "connection" for k, _ in headers):
            headers.append(("Connection", "close"))
        code, _, reason = status.partition(" ")
        response = h11.Response(
            status_code=int(code),
            reason=reason.encode("latin-1"),
            headers=[(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        )
        self.writer.write(self.h11.send(response))
        if content:
            self.writer.write(self.h11.send(h11.Data(data=content)))
        self.writer.write(self.h11.send(h11.EndOfMessage()))
        async with asyncio.timeout(self.limits.body_seconds):
            await self.writer.drain()
        if body.linger:
            await self._linger()
        return self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE

    def _charge(self, request: h11.Request, path: str) -> int:
        """The bytes this request's body counts against the worker's budget: its declared
        length, or for a chunked body the most its route takes; 0 when it does not count (a
        small body, or one above the route's limit, which is refused unread)."""
        limit = self.front.body_limit(path)
        declared = _declared_length(request)
        if declared is not None and declared > limit:
            return 0
        size = limit + 1 if declared is None else declared  # the app reads 1 past its limit
        return size if self.front.budget.counts(size) else 0

    async def _refuse_busy(self) -> None:
        """503 to a request that waited too long for the budget: its body was never read, so
        it never reached the app; the sender may send it again later."""
        response = h11.Response(
            status_code=503,
            headers=[
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(_BUSY_TEXT)).encode()),
                (b"retry-after", str(math.ceil(self.limits.body_seconds)).encode()),
                (b"connection", b"close"),
            ],
        )
        self.writer.write(self.h11.send(response) + self.h11.send(h11.Data(data=_BUSY_TEXT)))
        self.writer.write(self.h11.send(h11.EndOfMessage()))
        async with asyncio.timeout(self.limits.body_seconds):
            await self.writer.drain()
        await self._linger()

    async def _body(self, request: h11.Request, path: str, in_memory: bool) -> _Body:
        limit = self.front.body_limit(path)
        declared = _declared_length(request)
        if declared is not None and declared > limit:
            return _Body(io.BytesIO(b""), complete=False, linger=True)
        if self.h11.they_are_waiting_for_100_continue:
            self.writer.write(self.h11.send(h11.InformationalResponse(status_code=100, headers=[])))
        # Closed by _call_app once the app has read it, or below when it never reaches the app.
        spool: _Spool = _InMemory() if in_memory else _InFile()
        size = 0
        while True:
            try:
                async with asyncio.timeout(self.limits.body_seconds):
                    event = await self._event()
            except TimeoutError:
                spool.close()
                seconds = self.limits.body_seconds
                reason = f"het bericht kwam niet verder binnen {seconds:g} s; het is onvolledig"
                return _Body(_Unreadable(reason), complete=False)
            except h11.RemoteProtocolError as exc:
                spool.close()
                if self.reader.at_eof():
                    raise _ClientGone from exc
                return _Body(_Unreadable(f"ongeldige HTTP-body: {exc}"), complete=False)
            if isinstance(event, h11.Data):
                size += len(event.data)
                spool.write(event.data)
                if size > limit:  # the app reads one byte past its limit to refuse it
                    return _Body(spool.readable(), complete=False, linger=True)
            elif isinstance(event, h11.EndOfMessage):
                return _Body(spool.readable(), complete=True)
            else:
                raise _ClientGone

    def _environ(
        self, request: h11.Request, path: str, query: str, stream: IO[bytes] | io.RawIOBase
    ) -> dict[str, Any]:
        sockname = self.writer.get_extra_info("sockname") or ("", 0)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": request.method.decode("ascii"),
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": str(sockname[0]),
            "SERVER_PORT": str(sockname[1]),
            "SERVER_PROTOCOL": "HTTP/" + request.http_version.decode("ascii"),
            "REMOTE_ADDR": str(self.address[0]),
            "REMOTE_PORT": str(self.address[1]),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https",
            "wsgi.input": stream,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            CLIENT_CERT_KEY: self.der,
        }
        for raw_name, raw_value in request.headers:
            name = raw_name.decode("latin-1")
            if "_" in name:
                continue  # X_Foo would become the same WSGI key as X-Foo: a smuggling shape
            value = raw_value.decode("latin-1")
            key = name.upper().replace("-", "_")
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                key = "HTTP_" + key
            environ[key] = f"{environ[key]}, {value}" if key in environ else value
        return environ

    async def _bad_request(self, exc: h11.RemoteProtocolError) -> None:
        status = exc.error_status_hint
        text = f"{status} ongeldig HTTP-verzoek: {exc}\n".encode()
        try:
            response = h11.Response(
                status_code=status,
                headers=[
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(text)).encode()),
                    (b"connection", b"close"),
                ],
            )
            self.writer.write(self.h11.send(response) + self.h11.send(h11.Data(data=text)))
        except h11.LocalProtocolError:  # h11 cannot answer in this state: write it raw
            self.writer.write(f"HTTP/1.1 {status} Bad Request\r\nConnection: close\r\n".encode())
            self.writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(text), text))
        async with asyncio.timeout(self.limits.body_seconds):
            await self.writer.drain()

    async def _linger(self) -> None:
        """Read and drop what the client still sends, so it can read our answer first."""
        loop = asyncio.get_running_loop()
        end = loop.time() + self.limits.linger_seconds
        dropped = 0
        while dropped < _LINGER_BYTES and (left := end - loop.time()) > 0:
            try:
                async with asyncio.timeout(left):
                    data = await self.reader.read(_READ)
            except TimeoutError:
                return
            if not data:
                return
            dropped += len(data)


async def _readable(loop: asyncio.AbstractEventLoop, listener: socket.socket) -> None:
    """Wait until `listener` has a connection to accept (or had: another worker may be first)."""
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(listener, wake)
    try:
        await ready
    finally:
        loop.remove_reader(listener)


def _declared_length(request: h11.Request) -> int | None:
    # h11 has checked that a Content-Length is one non-negative integer.
    return next((int(v) for k, v in request.headers if k == b"content-length"), None)


def _call_app(app: WsgiApp, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """Run the WSGI app in a pool thread; a crash is a 500, never a dropped connection."""
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], _exc: Any = None) -> Any:
        started[:] = [(status, list(headers))]
        return None

    try:
        result = app(environ, start_response)
        try:
            content = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, headers = started[0]
    except Exception:
        log.exception("the app failed on %s", environ.get("PATH_INFO"))
        status, content = "500 Internal Server Error", b"interne fout\n"
        headers = [("Content-Type", "text/plain; charset=utf-8")]
        headers.append(("Content-Length", str(len(content))))
    finally:
        environ["wsgi.input"].close()
    return status, headers, content

"""The gunicorn worker of the mTLS port: one asyncio front and a small pool of app threads.

gunicorn keeps what it is good at (the master: forking, replacing workers on SIGHUP, killing
a hung one, graceful stops); the worker's own loop is ours (adapter.transport.front), so TLS
handshakes and slow requests never occupy the threads that run the app.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import os
import ssl
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gunicorn.workers.base import Worker

from adapter.config import TlsConfig
from adapter.transport.balance import ConnectionShare, WorkerConnections
from adapter.transport.front import Front, FrontLimits
from adapter.transport.tls import server_context

log = logging.getLogger("adapter.server")

_HEARTBEAT_SECONDS = 1.0
_CRL_CHECK_BEATS = 2  # the CRL file is looked at every this many heartbeats
_DEFAULT_BODY_LIMIT = 65536  # a path the app does not name a limit for (GET, unknown paths)
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
_MMAP_THRESHOLD = 128 * 1024  # glibc's default, kept fixed
# Container objects allocated, less those freed, before a young collection (CPython: 700).
_YOUNG_COLLECTION_THRESHOLD = 10_000


def _fix_mmap_threshold() -> None:
    """Keep every allocation of 128 KiB or more a mapping of its own, unmapped when freed.

    glibc raises its mmap threshold to the size of each large block freed (up to 32 MiB), and
    from then on serves such blocks from the heap, where they stay when freed, fragmented: a
    worker that had read one 100 MiB batch (its text nodes of 340 KB each) took 100 MiB more
    for the next one. With the threshold fixed, its peak for two such batches is that of one.
    """
    if sys.platform != "linux":
        return
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:  # glibc's; elsewhere the allocator is left as it is
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)


def tune_collector() -> None:
    """Collect cycles less often, and never look again at what the app holds from the start.

    At CPython's threshold of 700 a 1000-Bericht batch set off some 28 young collections, 3 of
    the middle generation, and every six batches a full one, which walks every object the
    worker holds: 16 of a batch's 49 ms of CPU (with the collector off: 33 ms; at this
    threshold: 32 ms). What the worker built before serving (the app, its schemas and tables)
    is frozen: it lives as long as the worker, and no collection walks it again.
    """
    gc.set_threshold(_YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])
    gc.freeze()


class FrontWorker(Worker):  # type: ignore[misc]
    def run(self) -> None:
        _fix_mmap_threshold()
        tune_collector()
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        server = self.app.config.server
        limits = FrontLimits(
            handshake_seconds=server.handshake_timeout_seconds,
            header_seconds=server.header_timeout_seconds,
            body_seconds=server.body_timeout_seconds,
            keepalive_seconds=server.keepalive_seconds,
            per_address=server.max_connections_per_address,
            connections=server.max_connections,
            bytes_in_flight=server.max_body_bytes_in_flight,
        )
        body_limit = getattr(self.wsgi, "body_limit", lambda _path: _DEFAULT_BODY_LIMIT)
        with ThreadPoolExecutor(self.cfg.threads, thread_name_prefix="app") as pool:
            front = Front(
                self.wsgi, self.app.tls_context(), limits, pool, body_limit, self._share()
            )
            listeners: list[Any] = [listener.sock for listener in self.sockets]
            front.start(listeners)
            for listener in listeners:
                host, port = listener.getsockname()[:2]
                self.log.info("worker %s listening at https://%s:%s", self.pid, host, port)
            crl_watch = CrlWatch(self.app.config.tls)
            beats = 0
            # gunicorn's master kills a worker that stops notifying; SIGTERM only clears `alive`.
            while self.alive and self.ppid == os.getppid():
                self.notify()
                beats += 1
                if beats % _CRL_CHECK_BEATS == 0 and (context := crl_watch.new_context()):
                    front.replace_context(context)
                if self._too_big(server.max_worker_memory_mib):
                    break
                # SIGTERM is not made to cut this sleep short: on a reload (SIGHUP) the old
                # workers then closed their listeners before the new ones had bound theirs,
                # and connections arriving in between were dropped.
                await asyncio.sleep(_HEARTBEAT_SECONDS)
            await front.stop(self.cfg.graceful_timeout)

    def _share(self) -> ConnectionShare | None:
        """This worker's entry in its master's connection table (adapter.transport.balance),
        when the master keeps one."""
        table: WorkerConnections | None = getattr(self.app, "worker_connections", None)
        return None if table is None else table.share(getattr(self, "connections_slot", None))

    def _too_big(self, limit_mib: int) -> bool:
        """Whether this worker should make way for a fresh one, its memory being above the limit.

        Memory a large message took does not all come back (the allocator keeps it, and lxml
        keeps every element name it ever parsed in a per-thread dictionary), so a worker that
        stays above the limit finishes its requests and exits; gunicorn's master starts another,
        and the other workers serve meanwhile.
        """
        rss = _resident_bytes()
        if not limit_mib or rss is None or rss <= limit_mib << 20:
            return False
        log.warning(
            "worker %s holds %d MiB, above max_worker_memory_mib = %d: replacing it",
            self.pid,
            rss >> 20,
            limit_mib,
        )
        return True


def _resident_bytes() -> int | None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None  # not Linux: no recycling by memory
    return pages * os.sysconf("SC_PAGE_SIZE")


class CrlWatch:
    """Notices that `tls.crl` was replaced (the scheduler's CRL refresh, or an operator) and
    builds the TLS context anew, so a revocation counts without a restart or SIGHUP."""

    def __init__(self, tls: TlsConfig) -> None:
        self.tls = tls
        self.seen = self._signature(tls.crl)

    @staticmethod
    def _signature(path: Path | None) -> tuple[int, int, int] | None:
        # A rename into place gives a new inode even within one mtime tick.
        try:
            stat = path.stat() if path is not None else None
        except OSError:
            return None
        return None if stat is None else (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def new_context(self) -> ssl.SSLContext | None:
        """A context with the new CRLs when the file changed since last seen, else None."""
        signature = self._signature(self.tls.crl)
        if signature is None or signature == self.seen:
            return None
        self.seen = signature
        try:
            context = server_context(self.tls)
        except (OSError, ssl.SSLError) as exc:
            # The connections keep being checked against the CRLs loaded before.
            log.error("new CRL file %s not loaded, keeping the previous one: %s", self.tls.crl, exc)
            return None
        log.info("CRL file %s changed: new connections are checked against it", self.tls.crl)
        return context

"""Which worker accepts the next connection: the one that holds the fewest.

Organisations keep a few keep-alive connections open and send every request over them, so a
worker's share of the work is its share of the connections, fixed when they are accepted.
With a listening socket per worker (`SO_REUSEPORT`) the kernel spread them by a hash of the
addresses: 8 connections landed 6 and 2, or all 8 on one worker, which then did all the work
on its one core (its GIL) while the other worker idled; a replaced worker's socket also reset
the connections still queued on it. So all workers accept from the master's one socket, and a
worker that holds more connections than another lets that one accept first
(adapter.transport.front).

`WorkerConnections` is the table they compare: one slot per worker, in memory the master maps
before it forks them, so every worker sees every other's count without a message. The master
gives a worker its slot before the fork and frees it when the worker has exited; only the
worker writes its count. A slot is an aligned 32-bit integer, read and written whole, so a
reader sees a count that is at worst a moment old, which is all the balancing needs.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Callable
from typing import Any

# Workers that can be running at once: old and new ones side by side during a reload.
SLOTS = 128
_FREE = -1  # no worker has this slot
_NOT_ACCEPTING = -2  # its worker is stopping, or takes no connections
_SLOT = struct.Struct("=i")


class WorkerConnections:
    """Open connections per worker, shared by a gunicorn master and the workers it forks."""

    def __init__(self, slots: int = SLOTS) -> None:
        self._memory = mmap.mmap(-1, slots * _SLOT.size)  # anonymous and shared over fork
        self._counts = memoryview(self._memory).cast("i")
        for slot in range(slots):
            self._counts[slot] = _FREE

    def assign(self, worker: Any) -> None:
        """Master, before the fork: give `worker` a free slot as `worker.connections_slot`
        (None when all are taken: that worker then accepts without comparing)."""
        slot = next((s for s, count in enumerate(self._counts) if count == _FREE), None)
        if slot is not None:
            self._counts[slot] = 0
        worker.connections_slot = slot

    def release(self, worker: Any) -> None:
        """Master, once `worker` has exited: its slot is free for a new worker."""
        slot = getattr(worker, "connections_slot", None)
        if slot is not None:
            self._counts[slot] = _FREE

    def gunicorn_settings(
        self, on_exit: Callable[[Any, Any], None] | None = None
    ) -> dict[str, Any]:
        """The settings that make a gunicorn master serve through this table: one listening
        socket of its own, a slot given to each worker before its fork and freed once it has
        exited (then `on_exit(arbiter, worker)`, the master's other `child_exit` work)."""

        def exited(arbiter: Any, worker: Any) -> None:
            self.release(worker)
            if on_exit is not None:
                on_exit(arbiter, worker)

        return {
            "reuse_port": False,
            "pre_fork": lambda _arbiter, worker: self.assign(worker),
            "child_exit": exited,
        }

    def share(self, slot: int | None) -> ConnectionShare | None:
        """The worker's view: its own slot to write, the others to compare with."""
        return None if slot is None else ConnectionShare(self._counts, slot)


class ConnectionShare:
    """One worker's entry in `WorkerConnections`."""

    def __init__(self, counts: memoryview, slot: int) -> None:
        self._counts, self._slot = counts, slot

    def hold(self, connections: int) -> None:
        self._counts[self._slot] = connections

    def stop_accepting(self) -> None:
        """Others no longer wait for this worker to take a connection."""
        self._counts[self._slot] = _NOT_ACCEPTING

    def others_hold_fewer(self, connections: int) -> bool:
        """Whether another worker that accepts connections holds fewer than `connections`."""
        return any(
            0 <= count < connections
            for slot, count in enumerate(self._counts)
            if slot != self._slot
        )

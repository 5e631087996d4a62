"""`dk-adapter serve`'s side processes (scheduler, citizen listener) do not outlive it.

A master killed with SIGKILL cannot stop them itself; they are told by the kernel
(PR_SET_PDEATHSIG) and stop, so the ports are free for the next start.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

from tests.conftest import Pki, running_server
from tests.helpers import wait_until
from tests.hostile.wire import resident_mib


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _port_free(url: str) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", int(url.rsplit(":", 1)[1])))
        except OSError:
            return False
    return True


def test_the_side_processes_stop_when_the_master_is_killed(
    pki: Pki, database_url: str, tmp_path: Path
) -> None:
    with running_server(pki, database_url, tmp_path) as server:
        master = server.process.pid
        below = set(resident_mib(master)) - {master}
        assert len(below) >= 4, below  # two workers, the scheduler, the citizen listener (+ its)
        os.kill(master, signal.SIGKILL)
        server.process.wait(timeout=10)
        # SIGTERM from the kernel, then each process's own orderly shutdown (the scheduler
        # finishes a delivery in progress): slow on a loaded machine, but it must end.
        wait_until(lambda: not any(_alive(pid) for pid in below), timeout=60)
        assert _port_free(server.citizen_url)
        assert _port_free(server.admin_url)

"""Set-up shared by the benchmarks: a dev PKI, a database, a config, a running server, /proc,
and the load generator with its scenario runner and report pieces.

The pieces come from the test suite (`tests.conftest`); the ones that are pytest fixtures there
(PKI, database schema, server) are rebuilt here as plain functions and context managers.
Everything stays on loopback and in a temporary directory.

The load generator runs in other processes (spawned): `LOAD_PROCESSES` processes, each with
one thread per keep-alive `http.client.HTTPSConnection` carrying a client certificate. What a
connection sends and how an answer is judged is a `Workload` (picklable). Every connection
sends its untimed `Workload.setup` requests and one untimed warm-up request, then all send
back to back (closed loop, one request in flight per connection) for the scenario's seconds.
"""

from __future__ import annotations

import http.client
import math
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.context import SpawnContext
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event, Semaphore
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from adapter.config import load_organisations
from adapter.pki.devca import OrganisationSubject, PkiFiles, init_dev_pki
from tests.conftest import (
    CONF,
    GEMEENTE,
    POSTGRES_URL,
    ClientCert,
    Pki,
    _wait_for_port,
    free_port,
    import_example_accounts,
    write_config,
)

__all__ = [
    "CONF",
    "GEMEENTE",
    "LOAD_PROCESSES",
    "POSTGRES_URL",
    "WORKER_SPREAD_EXPLANATION",
    "LoadResult",
    "LoadRun",
    "Request",
    "RunningServer",
    "WorkerShare",
    "Workload",
    "build_pki",
    "children",
    "connections_per_process",
    "count_rows",
    "count_rows_of",
    "cpu_seconds",
    "database",
    "is_scheduler",
    "milliseconds",
    "peak_rss_kib",
    "percentile_ms",
    "redacted",
    "rss_line",
    "run_load",
    "running_server",
    "server_peak_rss",
    "side_process",
    "split_connections",
    "worker_spread_lines",
    "worker_spread_notes",
]

LOAD_PROCESSES = 2


# --- PKI, database, server ---------------------------------------------------------------


def build_pki(directory: Path) -> PkiFiles:
    """A dev PKI with a client certificate for every organisation in conf/organisations.toml."""
    organisations = load_organisations(CONF / "organisations.toml")
    return init_dev_pki(
        directory,
        [OrganisationSubject(o.oin, o.name, o.kvk) for o in organisations.by_oin.values()],
    )


def _config_pki(files: PkiFiles) -> Pki:
    """`tests.conftest.Pki` for `write_config`, which reads only its directory.

    The special certificates of the test PKI (expired, revoked, ...) are not made; the
    benchmark never uses them, so they point at the GEMEENTE client.
    """
    clients = {oin: ClientCert(c.certificate, c.private_key) for oin, c in files.clients.items()}
    gemeente = clients[GEMEENTE]
    return Pki(
        files=files,
        directory=files.directory,
        clients=clients,
        unknown_oin=gemeente,
        no_oin=gemeente,
        expired=gemeente,
        untrusted=gemeente,
        revoked=gemeente,
    )


@contextmanager
def database(kind: str, directory: Path) -> Iterator[str]:
    """A database URL: SQLite in `directory`, or a fresh PostgreSQL schema dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'adapter.db'}"
        return
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    url = make_url(POSTGRES_URL)
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def count_rows(database_url: str, table: str) -> int:
    return count_rows_of(database_url, table)[table]


def count_rows_of(database_url: str, *tables: str) -> dict[str, int]:
    """Rows in each of `tables`, read over one connection."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return {
                table: int(
                    conn.execute(
                        text(f"SELECT count(*) FROM {table}")  # noqa: S608 - literal table names
                    ).scalar_one()
                )
                for table in tables
            }
    finally:
        engine.dispose()


def redacted(url: str) -> str:
    """A database URL without its password."""
    return make_url(url).render_as_string(hide_password=True)


@dataclass(frozen=True)
class RunningServer:
    port: int
    pid: int
    config: Path
    database_url: str
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def running_server(
    directory: Path,
    files: PkiFiles,
    database_url: str,
    peer_port: int | None = None,
    adjust: Callable[[str], str] | None = None,
) -> Iterator[RunningServer]:
    """`python -m adapter.cli --config CFG serve` (2 workers x 4 threads) with the example
    accounts imported; stopped (SIGTERM, then SIGKILL after 15 s) however the block ends.

    The CPAs send organisations' ebMS messages to 127.0.0.1:`peer_port` (default: a free port
    nobody listens on). `adjust` may rewrite the configuration's text first."""
    port = free_port()
    config = write_config(directory, _config_pki(files), database_url, port, peer_port)
    if adjust is not None:
        config.write_text(adjust(config.read_text(encoding="utf-8")), encoding="utf-8")
    import_example_accounts(config, database_url)
    log = directory / "server.log"
    env = {**os.environ, "DATABASE_URL": database_url}
    with log.open("wb") as log_handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "adapter.cli", "--config", str(config), "serve"],
            env=env,
            stdout=log_handle,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_port(port, process, log)
        yield RunningServer(port, process.pid, config, database_url, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- /proc ---------------------------------------------------------------------------------

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def stat_fields(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name (which may hold spaces): state first."""
    data = Path(f"/proc/{pid}/stat").read_text()
    return data.rpartition(")")[2].split()


def children(pid: int) -> list[int]:
    """PIDs whose parent is `pid` (a scan of /proc/*/stat; /proc/PID/task/*/children needs
    CONFIG_PROC_CHILDREN, which this kernel may lack)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int(stat_fields(int(entry.name))[1]) == pid:
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return sorted(found)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def side_process(pid: int) -> str | None:
    """The role of one of the master's children beside its gunicorn workers: "scheduler"
    (`adapter.jobs.scheduler`) or "citizen" (the citizen pages' listener); None for a worker."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if b"adapter.jobs.scheduler" in command:
        return "scheduler"
    if b"adapter.citizen.server" in command:
        return "citizen"
    return None


def is_scheduler(pid: int) -> bool:
    return side_process(pid) == "scheduler"


def peak_rss_kib(pid: int) -> int:
    """VmHWM: the process's peak resident set size."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise ValueError(f"no VmHWM for {pid}")


def server_peak_rss(server: RunningServer) -> dict[str, int]:
    """KiB of VmHWM for the master and each current worker, and their "total"."""
    rss = {"master": peak_rss_kib(server.pid)}
    rss |= {f"worker {pid}": peak_rss_kib(pid) for pid in children(server.pid)}
    rss["total"] = sum(rss.values())
    return rss


def _established_inodes(port: int) -> set[int]:
    """Socket inodes of established TCP connections whose local port is `port`."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rpartition(":")[2], 16)
            if local_port == port and fields[3] == "01":  # 01 = TCP_ESTABLISHED
                inodes.add(int(fields[9]))
    return inodes


def connections_per_process(port: int, pids: list[int]) -> tuple[dict[int, int], int]:
    """How many established connections to `port` each process holds an fd of, and how many
    established connections no process in `pids` holds."""
    inodes = _established_inodes(port)
    held: dict[int, int] = {}
    seen: set[int] = set()
    for pid in pids:
        mine = set()
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inode = int(target[len("socket:[") : -1])
                    if inode in inodes:
                        mine.add(inode)
        except OSError:
            pass
        held[pid] = len(mine)
        seen |= mine
    return held, len(inodes - seen)


# --- load generator (runs in other processes) -------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One POST, and what its answer should say (read by the workload's `check`)."""

    path: str
    headers: dict[str, str]
    body: bytes
    expect: str = ""


class Workload:
    """What the connections of a scenario send and how an answer is judged.

    Connections are numbered 0..N-1 over all load processes; `n` counts the requests a
    connection has sent in the scenario before this one (0 is the untimed warm-up). Instances
    travel to spawned processes, so they must pickle and must not rely on shared state.
    """

    def setup(self, connection: int) -> list[Request]:
        """Untimed requests the connection sends first, before its warm-up."""
        return []

    def request(self, connection: int, n: int) -> Request:
        raise NotImplementedError

    def check(self, request: Request, status: int, data: bytes) -> str | None:
        """None for a good answer, else what is wrong with it."""
        raise NotImplementedError


@dataclass(frozen=True)
class LoadSpec:
    port: int
    certificate: str
    key: str
    root: str
    threads: int
    seconds: float
    workload: Workload
    first_connection: int
    min_requests: int = 0  # after `seconds`, go on until this many timed answers in all ...
    max_seconds: float = 0.0  # ... but not past this (0: `seconds`)
    timeout: float = 60.0  # per request, seconds


@dataclass
class LoadResult:
    """What one load process (or, added up, all of them) saw."""

    latencies: list[float] = field(default_factory=list)  # seconds, good responses only
    errors: list[str] = field(default_factory=list)
    requests: int = 0  # timed requests sent, good or not
    reconnects: int = 0  # timed requests that had to open a new connection first
    warmups: int = 0  # untimed first requests sent
    warmups_good: int = 0
    last_response: float = 0.0  # time.monotonic() of the last timed response
    cpu_seconds: float = 0.0
    setup_requests: int = 0
    setup_errors: list[str] = field(default_factory=list)
    sent: dict[int, int] = field(default_factory=dict)  # connection -> warm-up + timed requests
    body_bytes: int = 0  # request bodies of the good timed requests

    def add(self, other: LoadResult) -> None:
        self.latencies += other.latencies
        self.errors += other.errors
        self.requests += other.requests
        self.reconnects += other.reconnects
        self.warmups += other.warmups
        self.warmups_good += other.warmups_good
        self.last_response = max(self.last_response, other.last_response)
        self.cpu_seconds += other.cpu_seconds
        self.setup_requests += other.setup_requests
        self.setup_errors += other.setup_errors
        self.sent |= other.sent
        self.body_bytes += other.body_bytes


def exchange(conn: http.client.HTTPSConnection, workload: Workload, request: Request) -> str | None:
    try:
        conn.request("POST", request.path, body=request.body, headers=request.headers)
        response = conn.getresponse()
        problem = workload.check(request, response.status, response.read())
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        return f"{type(exc).__name__}: {exc}"
    if response.will_close:
        conn.close()
    return problem


def _connection(
    spec: LoadSpec,
    connection: int,
    ready: Semaphore,
    go: Event,
    start: Synchronized[float],
    answered: Synchronized[int],
    out: LoadResult,
) -> None:
    """One keep-alive connection: connect, set up, warm up, wait for `go`, send until the
    deadline (and, with `spec.min_requests`, until that many timed answers or the cap)."""
    workload = spec.workload
    context = ssl.create_default_context(cafile=spec.root)
    context.load_cert_chain(spec.certificate, spec.key)
    conn = http.client.HTTPSConnection(
        "127.0.0.1", spec.port, context=context, timeout=spec.timeout
    )
    sent = 0
    try:
        try:
            conn.connect()
            for request in workload.setup(connection):
                out.setup_requests += 1
                problem = exchange(conn, workload, request)
                if problem:
                    out.setup_errors.append(problem)
            out.warmups += 1
            problem = exchange(conn, workload, workload.request(connection, sent))
            sent += 1
            if problem:
                out.errors.append(f"warm-up: {problem}")
            else:
                out.warmups_good += 1
        except OSError as exc:
            out.errors.append(f"connect: {type(exc).__name__}: {exc}")
        finally:
            ready.release()
        go.wait()
        deadline = start.value + spec.seconds
        cap = start.value + max(spec.max_seconds, spec.seconds)
        while (now := time.monotonic()) < deadline or (
            now < cap and answered.value < spec.min_requests
        ):
            if conn.sock is None:
                out.reconnects += 1
            request = workload.request(connection, sent)
            began = time.monotonic()
            problem = exchange(conn, workload, request)
            ended = time.monotonic()
            sent += 1
            out.requests += 1
            out.last_response = ended
            with answered.get_lock():
                answered.value += 1
            if problem:
                out.errors.append(problem)
            else:
                out.latencies.append(ended - began)
                out.body_bytes += len(request.body)
    finally:
        out.sent[connection] = sent
        conn.close()


def _load_process(
    spec: LoadSpec,
    ready: Semaphore,
    go: Event,
    start: Synchronized[float],
    answered: Synchronized[int],
    results: Queue[LoadResult],
) -> None:
    # Ctrl-C is the parent's to handle: it stops these processes in its finally.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    outs = [LoadResult() for _ in range(spec.threads)]
    threads = [
        threading.Thread(
            target=_connection,
            args=(spec, spec.first_connection + i, ready, go, start, answered, out),
            daemon=True,
        )
        for i, out in enumerate(outs)
    ]
    cpu_before = time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = LoadResult(cpu_seconds=time.process_time() - cpu_before)
    for out in outs:
        total.add(out)
    results.put(total)


# --- one scenario ----------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerShare:
    pid: int
    connections: int
    cpu_seconds: float


@dataclass(frozen=True)
class LoadRun:
    """One scenario as the server's processes and the load generator saw it."""

    total: LoadResult
    seconds: float  # from start until the last response
    prepare_seconds: float  # from starting the load processes until all were set up and warm
    workers: list[WorkerShare]
    connections_held_by_no_worker: int
    master_cpu_seconds: float
    server_cpu_seconds: float
    worker_pids_changed: bool


def split_connections(connections: int) -> list[int]:
    """Connections per load process: as even as possible, no empty process."""
    return [
        connections // LOAD_PROCESSES + (1 if i < connections % LOAD_PROCESSES else 0)
        for i in range(min(LOAD_PROCESSES, connections))
    ]


def percentile_ms(ordered: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of sorted seconds, in ms."""
    if not ordered:
        return None
    rank = max(1, math.ceil(fraction * len(ordered) - 1e-9))  # tolerate 0.99 * 100 = 99.000..1
    return ordered[min(rank, len(ordered)) - 1] * 1000


def run_load(
    context: SpawnContext,
    server: RunningServer,
    client_cert: tuple[str, str],
    root: str,
    workload: Workload,
    connections: int,
    seconds: float,
    at_ready: Callable[[], None] | None = None,
    *,
    min_requests: int = 0,
    max_seconds: float = 0.0,
    timeout: float = 60.0,
) -> LoadRun:
    """Run `workload` over `connections` for `seconds`; `at_ready` is called once every
    connection is set up and warm, just before the clock starts.

    With `min_requests`, connections go on after `seconds` until that many timed answers
    (good or not) have come back in all, but start no request after `max_seconds`."""
    ready, go = context.Semaphore(0), context.Event()
    start = context.Value("d", 0.0)
    answered = context.Value("q", 0)
    results: Queue[LoadResult] = context.Queue()
    processes = []
    first = 0
    for i, threads in enumerate(split_connections(connections)):
        spec = LoadSpec(
            server.port,
            *client_cert,
            root,
            threads,
            seconds,
            workload,
            first,
            min_requests,
            max_seconds,
            timeout,
        )
        processes.append(
            context.Process(
                target=_load_process,
                args=(spec, ready, go, start, answered, results),
                name=f"load-{i}",
                daemon=True,
            )
        )
        first += threads
    launched = time.monotonic()
    for process in processes:
        process.start()
    try:
        for _ in range(connections):
            if not ready.acquire(timeout=600):
                raise RuntimeError("load generator did not get ready within 600 s")
        prepared = time.monotonic() - launched
        if at_ready is not None:
            at_ready()
        workers = children(server.pid)
        watched = [server.pid, *workers]
        cpu_before = {pid: cpu_seconds(pid) for pid in watched}
        start.value = time.monotonic()
        go.set()
        time.sleep(seconds / 2)
        held, unheld = connections_per_process(server.port, workers)
        total = LoadResult()
        for _ in processes:
            total.add(results.get(timeout=max(seconds, max_seconds) + timeout + 120))
        for process in processes:
            process.join(timeout=30)
        try:
            cpu_after = {pid: cpu_seconds(pid) for pid in watched}
        except FileNotFoundError:
            raise RuntimeError(
                f"a server process exited during the scenario; server log:\n{server.log_tail()}"
            ) from None
        workers_after = children(server.pid)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
    cpu = {pid: cpu_after[pid] - cpu_before[pid] for pid in watched}
    return LoadRun(
        total=total,
        seconds=max(total.last_response - start.value, 1e-9),
        prepare_seconds=prepared,
        workers=[WorkerShare(pid, held.get(pid, 0), cpu[pid]) for pid in workers],
        connections_held_by_no_worker=unheld,
        master_cpu_seconds=cpu[server.pid],
        server_cpu_seconds=sum(cpu.values()),
        worker_pids_changed=workers_after != workers,
    )


# --- report pieces ---------------------------------------------------------------------------


def milliseconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


WORKER_SPREAD_EXPLANATION = [
    "Spread over gunicorn workers: 'conns' = established connections whose socket the",
    "worker holds (/proc/net/tcp inodes vs /proc/PID/fd, sampled halfway); 'CPU' = the",
    "worker's utime+stime delta over the scenario (/proc/PID/stat), a proxy for its share",
    "of the requests.",
]


def worker_spread_lines(scenario: dict[str, Any], width: int = 12) -> list[str]:
    """The rows of one scenario (as `asdict` of a result with name, workers and
    master_cpu_seconds) under the header f"  {'scenario':<width}{'worker':>9}{'conns':>7}..."."""
    workers = scenario["workers"]
    worker_cpu = sum(w["cpu_seconds"] for w in workers) or 1e-9
    lines = []
    for i, w in enumerate(workers):
        label = scenario["name"] if i == 0 else ""
        lines.append(
            f"  {label:<{width}}{w['pid']:>9}{w['connections']:>7}{w['cpu_seconds']:>8.2f}"
            f"{w['cpu_seconds'] / worker_cpu:>10.0%}"
        )
    lines.append(f"  {'':<{width}}{'master':>9}{'':>7}{scenario['master_cpu_seconds']:>8.2f}")
    return lines


def worker_spread_notes(scenario: dict[str, Any]) -> list[str]:
    notes = []
    if scenario["connections_held_by_no_worker"]:
        notes.append(f"{scenario['connections_held_by_no_worker']} connections held by no worker")
    if scenario["worker_pids_changed"]:
        notes.append("worker PIDs changed during the scenario (a worker restarted)")
    return notes


def rss_line(rss: dict[str, int]) -> str:
    return (
        f"Server peak RSS (VmHWM, master + workers): {rss['total'] / 1024:.1f} MiB  ("
        + ", ".join(f"{k} {v / 1024:.1f}" for k, v in rss.items() if k != "total")
        + "; pages shared after fork are counted once per process)"
    )

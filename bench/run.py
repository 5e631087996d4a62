"""The whole benchmark set in one run: the adapter on SQLite and PostgreSQL against baseline
apps, with one load generator, printed as a table with ratios and goals, written as JSON and
plotted.

Run: `.venv/bin/python bench/run.py [--quick] [--out DIR] [--skip PART ...]`
(`make bench` runs it in full; PART is one of signing, abonnementen, berichtverwerk, sweep,
profile; `--profile abonnementen-1-klant` profiles that workload only).

What it does, all on loopback and in a temporary directory that is removed afterwards:

1. One dev PKI (bench._setup.build_pki) for every server and client.
2. Receipt signing, µs per receipt before (signxml) and now (`ReceiptSigner`), from
   bench/receipt_signing.py, in this process before any server runs.
3. ValidateAbonnementen against six servers, one at a time, each on its own free port:
   - `dk-adapter serve` started through the CLI (bench._setup.running_server: its config, a
     temp dir, the example accounts), on SQLite and on a PostgreSQL schema of its own in
     DATABASE_URL's database (default postgresql+psycopg://postgres@127.0.0.1:5432/test),
     dropped at the end: the full work (validation, lookup, signed and stored receipt, audit);
   - the baselines of bench/baselines/ served by gunicorn gthread 2 workers x 4 threads over
     the adapter's own TLS context (`adapter.transport.tls.server_context`): bare lxml (parse,
     answer), bare lxml + a signxml ECDSA receipt, and spyne doing the bare work; and bare
     lxml once more on the adapter's own worker (asyncio front, h11, its thread pool): the
     difference between the two bare rows is what the front costs, the rest is the work.
   Every scenario first warms up (closed loop, discarded), then measures a fixed window. The
   load generator is bench._setup's (2 processes, 8 keep-alive mTLS connections in all,
   one request in flight per connection): closed loop for throughput, and an open loop
   here, built on the same connections, that sends at a fixed total rate (each connection
   its share, on a fixed schedule) and measures latency from the time a request was due, so
   a slow server is not excused by sending less. Server CPU per request is the utime + stime
   of the server's whole process tree (/proc) over the window, per good answer.
4. BerichtVerwerk (bench/berichtverwerk.py's scenarios and checks) for batches of 1, 10, 100
   and 1000 Berichten, without and with attachments (two 10 KB personal PDFs per Bericht,
   one 1 MiB general PDF per batch), on both databases, with the workers' peak RSS after
   each scenario.
5. A sweep of attachment size up to the limits (SQLite): batches of 100 Berichten whose two
   personal PDFs grow from 10 KB to 250 KB each (together 500,000 bytes, within
   `limits.personal_attachments_bytes`) plus one 2 MiB general PDF (the general limit),
   so the largest message is ~70 MB of the 100 MiB allowed; throughput and worker peak RSS
   after each size, on a server of its own so the RSS is this sweep's.
6. Prints the tables, writes the figures as JSON to bench/results/run-<time>[-quick].json so
   runs can be compared, and a PNG beside it: throughput and worker peak RSS against batch
   size and against attachment / message size.

`--quick` uses short windows (a smoke run of a few minutes); the full run takes about 25
minutes. The server, the load generator and the peers share the machine's cores: the figures
are for comparing runs and apps on one machine. Nothing here asserts on timings; the goals
of issue 12 are printed beside the figures.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import platform
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.context import SpawnContext
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event, Semaphore
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from adapter.pki.devca import PkiFiles, new_hierarchy  # noqa: E402
from bench import berichtverwerk, receipt_signing  # noqa: E402
from bench._setup import (  # noqa: E402
    GEMEENTE,
    LOAD_PROCESSES,
    POSTGRES_URL,
    LoadResult,
    Request,
    RunningServer,
    Workload,
    build_pki,
    cpu_seconds,
    database,
    exchange,
    peak_rss_kib,
    percentile_ms,
    redacted,
    run_load,
    running_server,
    split_connections,
    stat_fields,
)
from bench.abonnementen import (  # noqa: E402
    BSN,
    MESSAGE_ID,
    Abonnementen,
    AbonnementenWithAddressing,
)
from tests.conftest import _wait_for_port, free_port  # noqa: E402
from tests.soap_helpers import aanvraag, addressing  # noqa: E402

WSA_TO = "https://127.0.0.1/abonnementen"  # wsa:To as a client addresses the service

RESULTS = ROOT / "bench" / "results"
CONNECTIONS = 8
OPEN_LOOP_RATE = 200.0  # requests per second, all connections together
MIB = 1024 * 1024


@dataclass(frozen=True)
class Windows:
    """How long each kind of measurement runs, in seconds (and batches)."""

    warmup: float
    window: float
    open_loop: float
    signing: float
    batch_seconds: float
    min_batches: int
    sweep_seconds: float
    sweep_min_batches: int
    sweep_sizes: tuple[int, ...]
    profile: float


FULL = Windows(5, 20, 20, 2, 10, 10, 8, 4, (10_000, 50_000, 100_000, 250_000), 20)
QUICK = Windows(1, 3, 3, 0.3, 2, 2, 2, 1, (10_000, 250_000), 3)

GOALS = {
    "1 klant over bare lxml": 0.5,
    "1 klant over spyne": 1.5,
    "250 klanten over bare lxml": 0.8,
    "250 klanten over spyne": 5.0,
    "open-loop p99 ms": 25.0,
    "berichten/s 1000": 20_000.0,
    "berichten/s 1000 + att": 5_000.0,
    "receipt µs": 100.0,
}


# --- the server's process tree (/proc) -------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants, whatever front or workers the server runs."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents.setdefault(int(stat_fields(int(entry.name))[1]), []).append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += parents.get(current, [])
    return tree


def tree_cpu_seconds(pid: int) -> float:
    total = 0.0
    for member in process_tree(pid):
        try:
            total += cpu_seconds(member)
        except OSError:
            continue
    return total


def worker_peak_rss_mib(pid: int) -> float:
    """The largest VmHWM among the server's descendants (its workers), in MiB."""
    peak = 0
    for member in process_tree(pid)[1:]:
        try:
            peak = max(peak, peak_rss_kib(member))
        except (OSError, ValueError):
            continue
    return peak / 1024


# --- servers ---------------------------------------------------------------------------------


@contextmanager
def baseline_server(
    app: str, files: PkiFiles, directory: Path, front: bool = False
) -> Iterator[RunningServer]:
    """`python -m bench.baselines.serve --app APP [--front]` on a free port; stopped however it
    ends."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = directory / f"{app}.log"
    port_and_pki = ("--port", str(port), "--pki", str(files.directory))
    with log.open("wb") as log_handle:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.baselines.serve",
                "--app",
                app,
                *port_and_pki,
                *(("--front",) if front else ()),
            ],
            cwd=ROOT,
            stdout=log_handle,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_port(port, process, log)
        yield RunningServer(port, process.pid, Path(), "", log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- open loop (the same connections and workloads as bench._setup's closed loop) ------------


@dataclass(frozen=True)
class OpenSpec:
    port: int
    certificate: str
    key: str
    root: str
    threads: int
    first_connection: int
    connections: int  # in all processes
    rate: float  # requests per second, all connections together
    seconds: float
    workload: Workload


def _open_connection(
    spec: OpenSpec,
    connection: int,
    ready: Semaphore,
    go: Event,
    start: Synchronized[float],
    out: LoadResult,
) -> None:
    """Connection i of N sends its k-th request at start + (i + k N) / rate, or at once when
    it is late; latency counts from that due time."""
    context = ssl.create_default_context(cafile=spec.root)
    context.load_cert_chain(spec.certificate, spec.key)
    conn = http.client.HTTPSConnection("127.0.0.1", spec.port, context=context, timeout=60)
    try:
        try:
            conn.connect()
            out.warmups += 1
            if exchange(conn, spec.workload, spec.workload.request(connection, 0)) is None:
                out.warmups_good += 1
        except OSError as exc:
            out.errors.append(f"connect: {type(exc).__name__}: {exc}")
        finally:
            ready.release()
        go.wait()
        period = spec.connections / spec.rate
        due = start.value + connection / spec.rate
        deadline = start.value + spec.seconds
        n = 1
        while due < deadline:
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            if conn.sock is None:
                out.reconnects += 1
            request = spec.workload.request(connection, n)
            problem = exchange(conn, spec.workload, request)
            ended = time.monotonic()
            n += 1
            out.requests += 1
            out.last_response = ended
            if problem:
                out.errors.append(problem)
            else:
                out.latencies.append(ended - due)
            due += period
    finally:
        out.sent[connection] = n
        conn.close()


def _open_process(
    spec: OpenSpec,
    ready: Semaphore,
    go: Event,
    start: Synchronized[float],
    results: Queue[LoadResult],
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    outs = [LoadResult() for _ in range(spec.threads)]
    threads = [
        threading.Thread(
            target=_open_connection,
            args=(spec, spec.first_connection + i, ready, go, start, out),
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


def run_open_loop(
    context: SpawnContext,
    server: RunningServer,
    client_cert: tuple[str, str],
    root: str,
    workload: Workload,
    rate: float,
    seconds: float,
) -> tuple[LoadResult, float, float]:
    """The load, its seconds (start to last answer) and the server tree's CPU seconds."""
    ready, go = context.Semaphore(0), context.Event()
    start = context.Value("d", 0.0)
    results: Queue[LoadResult] = context.Queue()
    processes, first = [], 0
    for i, threads in enumerate(split_connections(CONNECTIONS)):
        spec = OpenSpec(
            server.port, *client_cert, root, threads, first, CONNECTIONS, rate, seconds, workload
        )
        processes.append(
            context.Process(
                target=_open_process,
                args=(spec, ready, go, start, results),
                name=f"open-load-{i}",
                daemon=True,
            )
        )
        first += threads
    for process in processes:
        process.start()
    try:
        for _ in range(CONNECTIONS):
            if not ready.acquire(timeout=600):
                raise RuntimeError("load generator did not get ready within 600 s")
        cpu_before = tree_cpu_seconds(server.pid)
        start.value = time.monotonic()
        go.set()
        total = LoadResult()
        for _ in processes:
            total.add(results.get(timeout=seconds + 180))
        cpu = tree_cpu_seconds(server.pid) - cpu_before
        for process in processes:
            process.join(timeout=30)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
    return total, max(total.last_response - start.value, 1e-9), cpu


# --- ValidateAbonnementen ----------------------------------------------------------------------


def _figures(
    name: str, server: str, klanten: int, mode: str, total: LoadResult, seconds: float, cpu: float
) -> dict[str, Any]:
    good = len(total.latencies)
    ordered = sorted(total.latencies)
    return {
        "name": name,
        "server": server,
        "klanten": klanten,
        "mode": mode,
        "seconds": seconds,
        "requests": total.requests,
        "good": good,
        "errors": len(total.errors),
        "error_samples": Counter(total.errors).most_common(5),
        "requests_per_second": good / seconds if seconds else 0.0,
        "p50_ms": percentile_ms(ordered, 0.50),
        "p99_ms": percentile_ms(ordered, 0.99),
        "server_cpu_seconds": cpu,
        "server_cpu_ms_per_request": cpu / good * 1000 if good else None,
        "load_generator_cpu_seconds": total.cpu_seconds,
    }


def closed_loop(
    context: SpawnContext,
    server: RunningServer,
    client_cert: tuple[str, str],
    root: str,
    workload: Workload,
    windows: Windows,
) -> tuple[LoadResult, float, float]:
    """Warm up (discarded), then one window: the load, its seconds and the tree's CPU."""
    run_load(context, server, client_cert, root, workload, CONNECTIONS, windows.warmup)
    cpu: dict[str, float] = {}

    def at_ready() -> None:
        cpu["before"] = tree_cpu_seconds(server.pid)

    run = run_load(
        context, server, client_cert, root, workload, CONNECTIONS, windows.window, at_ready
    )
    return run.total, run.seconds, tree_cpu_seconds(server.pid) - cpu["before"]


SERVERS = (
    # (key, label, how it runs, scenarios: klanten per request, then whether open loop)
    ("bare_lxml", "bare lxml", "baseline", (1, 250), True),
    ("bare_lxml_signed", "bare lxml + signxml receipt", "baseline", (1,), False),
    # The same bare app on the adapter's worker (asyncio front, h11): what the front costs.
    ("bare_lxml_front", "bare lxml on the adapter's front", "baseline-front", (1,), False),
    ("spyne", "spyne 2.14, bare work", "baseline", (1, 250), False),
    ("adapter_sqlite", "adapter, SQLite", "sqlite", (1, 250), True),
    ("adapter_postgresql", "adapter, PostgreSQL", "postgresql", (1, 250), True),
)


def abonnementen(
    context: SpawnContext, files: PkiFiles, directory: Path, windows: Windows
) -> list[dict[str, Any]]:
    gemeente = files.clients[GEMEENTE]
    client_cert = (str(gemeente.certificate), str(gemeente.private_key))
    root = str(files.root_ca)
    rows: list[dict[str, Any]] = []
    for key, label, kind, klanten_list, open_loop in SERVERS:
        with _server(kind, key, files, directory) as server:
            for klanten in klanten_list:
                workload = Abonnementen(aanvraag([BSN] * klanten, GEMEENTE), klanten)
                total, seconds, cpu = closed_loop(
                    context, server, client_cert, root, workload, windows
                )
                rows.append(
                    _figures(
                        f"{label}, {klanten} klant{'en' if klanten > 1 else ''}",
                        key,
                        klanten,
                        "closed",
                        total,
                        seconds,
                        cpu,
                    )
                )
                _progress(rows[-1])
            if not kind.startswith("baseline"):
                # What WUS clients send on Digikoppeling: WS-Addressing, each request new.
                workload = AbonnementenWithAddressing(
                    aanvraag([BSN], GEMEENTE, headers=addressing(WSA_TO, MESSAGE_ID.decode())),
                    1,
                    run=uuid.uuid4().hex,
                )
                total, seconds, cpu = closed_loop(
                    context, server, client_cert, root, workload, windows
                )
                rows.append(
                    _figures(f"{label}, 1 klant, WS-Addressing", key, 1, "wsa", total, seconds, cpu)
                )
                _progress(rows[-1])
            if open_loop:
                workload = Abonnementen(aanvraag([BSN], GEMEENTE), 1)
                total, seconds, cpu = run_open_loop(
                    context, server, client_cert, root, workload, OPEN_LOOP_RATE, windows.open_loop
                )
                rows.append(
                    _figures(
                        f"{label}, 1 klant, open loop {OPEN_LOOP_RATE:g}/s",
                        key,
                        1,
                        "open",
                        total,
                        seconds,
                        cpu,
                    )
                )
                _progress(rows[-1])
            rss = worker_peak_rss_mib(server.pid)
            for row in rows:
                if row["server"] == key:
                    row["worker_peak_rss_mib"] = rss
    return rows


@contextmanager
def _server(kind: str, key: str, files: PkiFiles, directory: Path) -> Iterator[RunningServer]:
    if kind.startswith("baseline"):
        app = key.removesuffix("_front")
        with baseline_server(app, files, directory / key, kind == "baseline-front") as server:
            yield server
        return
    (directory / key).mkdir(parents=True, exist_ok=True)
    with (
        database(kind, directory / key) as database_url,
        running_server(directory / key, files, database_url) as server,
    ):
        yield server


def _progress(row: dict[str, Any]) -> None:
    print(
        f"  {row['name']}: {row['requests_per_second']:.0f} req/s, {row['errors']} errors",
        file=sys.stderr,
        flush=True,
    )


# --- BerichtVerwerk ------------------------------------------------------------------------------

BATCH_SCENARIOS = tuple(
    berichtverwerk.Scenario(f"{n}{'-att' if att else ''}", f"{n}{' + att' if att else ''}", n, att)
    for att in (False, True)
    for n in (1, 10, 100, 1000)
)


def berichtverwerk_runs(
    context: SpawnContext, files: PkiFiles, directory: Path, windows: Windows
) -> dict[str, dict[str, Any]]:
    args = argparse.Namespace(
        seconds=windows.batch_seconds,
        connections=CONNECTIONS,
        min_batches=windows.min_batches,
        personal="identical",
    )
    runs = {}
    for kind in ("sqlite", "postgresql"):
        (directory / f"bv-{kind}").mkdir(parents=True, exist_ok=True)
        runs[kind] = berichtverwerk.run_database(
            kind, args, context, directory / f"bv-{kind}", files, BATCH_SCENARIOS
        )
    return runs


@dataclass(frozen=True)
class SizedBatches(berichtverwerk.Batches):
    """Batches whose personal PDFs (two per Bericht) and general PDF have the given sizes;
    new BatchID and BerichtIDs every time, answers judged as `Batches` judges them."""

    personal_bytes: int = berichtverwerk.PERSONAL_BYTES
    general_bytes: int = berichtverwerk.GENERAL_BYTES

    def batch(self) -> tuple[Request, str]:
        return _sized_batch(self.berichten, self.personal_bytes, self.general_bytes)


_PDFS: dict[int, bytes] = {}


def _pdf(size: int) -> bytes:
    if size not in _PDFS:
        _PDFS[size] = berichtverwerk.minimal_pdf(size)
    return _PDFS[size]


def _sized_batch(berichten: int, personal_bytes: int, general_bytes: int) -> tuple[Request, str]:
    batch_id = str(uuid.uuid4())
    ids = [str(uuid.uuid4()) for _ in range(berichten)]
    personal = [(_pdf(personal_bytes), f"Bijlage {k}") for k in (1, 2)]
    specs = [
        {
            "BerichtID": bericht_id,
            "BerichtType": berichtverwerk.BERICHT_TYPE,
            "bijlagen": personal,
            "algemene": [(berichtverwerk.GENERAL_CID, "Algemene voorwaarden")],
        }
        for bericht_id in ids
    ]
    payload = berichtverwerk.batch_xml(specs, batch_id=batch_id, leverancier=GEMEENTE)
    general = _pdf(general_bytes)
    message_id, soap = berichtverwerk.batch_request(
        GEMEENTE,
        berichtverwerk.MIJNOVERHEID,
        berichtverwerk.CPA_ID,
        berichtverwerk.PAYLOAD_CID,
        [berichtverwerk.GENERAL_CID],
        datetime.now(UTC),
    )
    content_type, body = berichtverwerk.build_package(
        soap,
        [
            (berichtverwerk.PAYLOAD_CID, "text/xml; charset=UTF-8", payload),
            (berichtverwerk.GENERAL_CID, "application/pdf", general),
        ],
    )
    headers = {"Content-Type": content_type, "SOAPAction": '"ebXML"'}
    return Request(berichtverwerk.PATH, headers, body, " ".join([message_id, *ids])), batch_id


def attachment_sweep(
    context: SpawnContext, files: PkiFiles, directory: Path, windows: Windows
) -> list[dict[str, Any]]:
    """Batches of 100 with growing personal PDFs, SQLite, one server, sizes in rising order
    so each VmHWM after a size is what that size (or a smaller one) needed."""
    gemeente = files.clients[GEMEENTE]
    client_cert = (str(gemeente.certificate), str(gemeente.private_key))
    peer = berichtverwerk.Peer(files, free_port())
    rows = []
    general = 2 * MIB
    (directory / "sweep").mkdir(parents=True, exist_ok=True)
    with (
        peer.serving(),
        database("sqlite", directory / "sweep") as database_url,
        running_server(directory / "sweep", files, database_url, peer.receiver.port) as server,
    ):
        for size in windows.sweep_sizes:
            workload = SizedBatches(100, True, False, size, general)
            sample, _ = workload.batch()
            run = run_load(
                context,
                server,
                client_cert,
                str(files.root_ca),
                workload,
                CONNECTIONS,
                windows.sweep_seconds,
                min_requests=windows.sweep_min_batches,
                max_seconds=berichtverwerk.CAP_FACTOR * windows.sweep_seconds,
                timeout=berichtverwerk.REQUEST_TIMEOUT,
            )
            good = len(run.total.latencies)
            ordered = sorted(run.total.latencies)
            rows.append(
                {
                    "personal_pdf_bytes": size,
                    "general_pdf_bytes": general,
                    "berichten_per_batch": 100,
                    "message_bytes": len(sample.body),
                    "batches": run.total.requests,
                    "good": good,
                    "errors": len(run.total.errors),
                    "error_samples": Counter(run.total.errors).most_common(5),
                    "berichten_per_second": good * 100 / run.seconds,
                    "megabytes_per_second": run.total.body_bytes / run.seconds / 1e6,
                    "p50_ms": percentile_ms(ordered, 0.5),
                    "p99_ms": percentile_ms(ordered, 0.99),
                    "server_cpu_ms_per_batch": run.server_cpu_seconds / good * 1000
                    if good
                    else None,
                    "worker_peak_rss_mib": worker_peak_rss_mib(server.pid),
                }
            )
            peer.drain()
            print(
                f"  sweep {size} B personal PDFs: {good} batches, {rows[-1]['errors']} errors",
                file=sys.stderr,
                flush=True,
            )
    return rows


# --- profile -------------------------------------------------------------------------------------


def _py_spy(pid: int, seconds: float, output: Path, fmt: str) -> subprocess.Popen[bytes]:
    """py-spy sampling the server's process tree (workers included) for `seconds`.

    Only threads holding the GIL are sampled (`--gil`): what Python spends CPU on. Without it,
    a thread waiting for SQLite's write lock or an fsync counted as at work, and those waits
    were half the samples of a profile that was meant to show CPU.
    """
    binary = Path(sys.executable).with_name("py-spy")
    options = ("--rate", "200", "--duration", str(int(seconds)), "--format", fmt, "-o", str(output))
    options += ("--gil", "--nolineno")
    return subprocess.Popen(
        [str(binary), "record", "--pid", str(pid), "--subprocesses", *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )


# Threads parked in these count as busy to py-spy (their wait releases the GIL in C code it
# does not recognise as idle): the executor's idle threads, the event loop's select.
_WAITING = (
    "_worker (concurrent/futures/thread.py)",
    "wait (threading.py)",
    "select (selectors.py)",
    "accept (socket.py)",
    "sleep",
)


def top_frames(collapsed: str, count: int = 10) -> dict[str, Any]:
    """From py-spy's raw (collapsed) stacks: the frames with the most samples of their own
    (self) and those most often on the stack (inclusive), as shares of the samples of
    threads at work (stacks ending in a wait of `_WAITING` are counted apart)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = waiting = 0
    for line in collapsed.splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        if not frames:
            continue
        n = int(samples)
        if any(frames[-1].endswith(w) or frames[-1].startswith(w) for w in _WAITING):
            waiting += n
            continue
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    return {
        "samples": total,
        "waiting_samples": waiting,
        "self": [(frame, n / total) for frame, n in own.most_common(count)] if total else [],
        "inclusive": [(frame, n / total) for frame, n in inclusive.most_common(3 * count)]
        if total
        else [],
    }


def _profile_text(name: str, figures: dict[str, Any]) -> str:
    lines = [
        f"py-spy, {name}: {figures['samples']} samples of threads at work, "
        f"{figures['waiting_samples']} of waiting ones left out (200 samples/s per thread)",
        "",
    ]
    lines.append("Top frames by own time (self):")
    lines += [f"  {share:6.1%}  {frame}" for frame, share in figures["self"]]
    lines += ["", "Frames most often on the stack (inclusive):"]
    lines += [f"  {share:6.1%}  {frame}" for frame, share in figures["inclusive"]]
    return "\n".join(lines) + "\n"


PROFILED = ("abonnementen-1-klant", "berichtverwerk-1000")


def profiles(
    context: SpawnContext,
    files: PkiFiles,
    directory: Path,
    out: Path,
    seconds: float,
    stem: str,
    names: tuple[str, ...] = PROFILED,
) -> dict[str, Any]:
    """Profile the adapter (SQLite) under closed-loop load: ValidateAbonnementen with 1 Klant
    and BerichtVerwerk batches of 1000 Berichten (or those of `names`); a flame graph (SVG)
    and the top frames (text) per workload, from two passes of `seconds` each."""
    gemeente = files.clients[GEMEENTE]
    client_cert = (str(gemeente.certificate), str(gemeente.private_key))
    peer = berichtverwerk.Peer(files, free_port())
    found: dict[str, Any] = {}
    every: dict[str, Workload] = {
        "abonnementen-1-klant": Abonnementen(aanvraag([BSN], GEMEENTE), 1),
        "berichtverwerk-1000": berichtverwerk.Batches(1000, False, False),
    }
    workloads = tuple((name, every[name]) for name in names)
    (directory / "profile").mkdir(parents=True, exist_ok=True)
    with (
        peer.serving(),
        database("sqlite", directory / "profile") as database_url,
        running_server(directory / "profile", files, database_url, peer.receiver.port) as server,
    ):
        for name, workload in workloads:
            run_load(context, server, client_cert, str(files.root_ca), workload, CONNECTIONS, 2)
            for fmt, suffix in (("raw", "txt"), ("flamegraph", "svg")):
                output = out / f"{stem}-profile-{name}.{suffix}"
                spy = _py_spy(server.pid, seconds, output, fmt)
                run_load(
                    context,
                    server,
                    client_cert,
                    str(files.root_ca),
                    workload,
                    CONNECTIONS,
                    seconds + 1,
                    timeout=berichtverwerk.REQUEST_TIMEOUT,
                )
                spy.wait(timeout=seconds + 60)
                peer.drain()
            collapsed = out / f"{stem}-profile-{name}.txt"
            figures = top_frames(collapsed.read_text())
            collapsed.unlink()  # megabytes of raw stacks; the flame graph and top frames stay
            (out / f"{stem}-profile-{name}-top.txt").write_text(_profile_text(name, figures))
            found[name] = figures
            print(f"  profiled {name}: {figures['samples']} samples", file=sys.stderr, flush=True)
    return found


def profile_report(found: dict[str, Any]) -> str:
    lines = []
    for name, figures in found.items():
        lines += ["", f"Profile {name} (py-spy, self time, top 10)"]
        lines += [f"  {share:6.1%}  {frame}" for frame, share in figures["self"]]
    return "\n".join(lines)


# --- report ------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _met(value: float | None, goal: float, at_most: bool = False) -> str:
    if value is None:
        return "?"
    return "met" if (value <= goal if at_most else value >= goal) else "NOT met"


def ratios(rows: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Per closed-loop row (WS-Addressing ones too): req/s over bare lxml's and spyne's with
    as many klanten (the baselines ignore WS-A headers, so their plain rows are the measure)."""
    rate = {(r["server"], r["klanten"], r["mode"]): r["requests_per_second"] for r in rows}
    out: dict[str, dict[str, float | None]] = {}
    for r in rows:
        if r["mode"] not in ("closed", "wsa"):
            continue
        bare = rate.get(("bare_lxml", r["klanten"], "closed"))
        spyne = rate.get(("spyne", r["klanten"], "closed"))
        mine = r["requests_per_second"]
        out[r["name"]] = {
            "over_bare_lxml": mine / bare if bare else None,
            "over_spyne": mine / spyne if spyne else None,
        }
    return out


def report(figures: dict[str, Any]) -> str:
    meta = figures["setup"]
    lines = [
        f"bench/run.py{' --quick' if meta['quick'] else ''}, {meta['started']}",
        f"  {meta['cpus']} CPUs shared by servers and load generator, Python {meta['python']}, "
        f"{meta['platform']}",
        f"  servers: gunicorn {meta['workers']} x {meta['threads']} (the adapter's asyncio "
        "front, the baselines' gthread); load: "
        f"{meta['load']}, mTLS keep-alive; warm-up {meta['windows']['warmup']:g} s, window "
        f"{meta['windows']['window']:g} s; PostgreSQL {meta['postgresql']}",
    ]
    signing = figures.get("signing")
    if signing:
        ecdsa = signing["ecdsa-sha256"]
        rsa = signing["rsa-sha256"]
        us = ecdsa["receipt_signer_bytes"]["microseconds_per_receipt"]
        lines += [
            "",
            "Receipt signing (µs per receipt, one thread; verified by signxml and xmlsec1;",
            "  now: to bytes, as the store and a WUS answer take it; as an element in brackets)",
            f"  ECDSA P-256: signxml {ecdsa['signxml']['microseconds_per_receipt']:.0f} -> "
            f"{us:.0f} now ({ecdsa['receipt_signer']['microseconds_per_receipt']:.0f}; "
            f"{ecdsa['speed_up']:.1f}x; bare signature "
            f"{ecdsa['bare_signature']['microseconds']:.0f})   goal <= "
            f"{GOALS['receipt µs']:g}: {_met(us, GOALS['receipt µs'], at_most=True)}",
            f"  RSA-3072:    signxml {rsa['signxml']['microseconds_per_receipt']:.0f} -> "
            f"{rsa['receipt_signer_bytes']['microseconds_per_receipt']:.0f} now "
            f"({rsa['receipt_signer']['microseconds_per_receipt']:.0f}; bare signature "
            f"{rsa['bare_signature']['microseconds']:.0f})",
        ]
    rows = figures.get("abonnementen")
    if rows:
        ratio = ratios(rows)
        lines += [
            "",
            "ValidateAbonnementen (good answers only; CPU = server process tree per request)",
            f"  {'scenario':<48}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms':>8}"
            f"{'/bare':>8}{'/spyne':>8}{'RSS MiB':>9}{'errors':>8}",
        ]
        for r in rows:
            q = ratio.get(r["name"], {})
            lines.append(
                f"  {r['name']:<48}{r['requests_per_second']:>8.0f}{_ms(r['p50_ms']):>9}"
                f"{_ms(r['p99_ms']):>9}{_ms(r['server_cpu_ms_per_request']):>8}"
                f"{_ratio(q.get('over_bare_lxml')):>8}{_ratio(q.get('over_spyne')):>8}"
                f"{r.get('worker_peak_rss_mib', 0):>9.0f}{r['errors']:>8}"
            )
        lines += ["", "  Goals (issue 12)"]
        for db in ("SQLite", "PostgreSQL"):
            one = ratio.get(f"adapter, {db}, 1 klant", {})
            many = ratio.get(f"adapter, {db}, 250 klanten", {})
            open_row = next(
                (r for r in rows if r["name"].startswith(f"adapter, {db}, 1 klant, open")), None
            )
            p99 = open_row["p99_ms"] if open_row else None
            for label, value, goal in (
                ("1 klant / bare lxml", one.get("over_bare_lxml"), GOALS["1 klant over bare lxml"]),
                ("1 klant / spyne", one.get("over_spyne"), GOALS["1 klant over spyne"]),
                (
                    "250 klanten / bare lxml",
                    many.get("over_bare_lxml"),
                    GOALS["250 klanten over bare lxml"],
                ),
                ("250 klanten / spyne", many.get("over_spyne"), GOALS["250 klanten over spyne"]),
            ):
                lines.append(
                    f"  {db:<11}{label:<26}{_ratio(value):>9}  goal >= {goal:g}x: "
                    f"{_met(value, goal)}"
                )
            lines.append(
                f"  {db:<11}{f'p99 at {OPEN_LOOP_RATE:g}/s open loop':<26}{_ms(p99):>9}  goal "
                f"<= {GOALS['open-loop p99 ms']:g} ms: "
                f"{_met(p99, GOALS['open-loop p99 ms'], at_most=True)}"
            )
        errors = [r for r in rows if r["errors"]]
        for r in errors:
            lines.append(f"  errors in {r['name']}:")
            lines += [f"    {n} x {message[:150]}" for message, n in r["error_samples"]]
    runs = figures.get("berichtverwerk")
    if runs:
        lines += [
            "",
            "BerichtVerwerk (bench/berichtverwerk.py; att = two 10 KB personal PDFs per "
            "Bericht + one 1 MiB general PDF per batch)",
            f"  {'database':<12}{'batch':<10}{'MB/batch':>9}{'batches/s':>10}{'Ber./s':>9}"
            f"{'p50 ms':>10}{'p99 ms':>10}{'CPU ms/b':>10}{'RSS MiB':>9}{'errors':>8}",
        ]
        for kind, run in runs.items():
            for s in run["scenarios"]:
                good = s["good"]
                cpu = s["server_cpu_seconds"] / good * 1000 if good else None
                lines.append(
                    f"  {kind:<12}{s['name']:<10}{s['body_bytes_per_batch'] / 1e6:>9.2f}"
                    f"{s['batches_per_second']:>10.1f}{s['berichten_per_second']:>9.0f}"
                    f"{_ms(s['p50_ms']):>10}{_ms(s['p99_ms']):>10}{_ms(cpu):>10}"
                    f"{_worker_rss(s['server_peak_rss_kib_after']):>9.0f}{s['errors']:>8}"
                )
        lines.append("  Goals (issue 12)")
        for kind, run in runs.items():
            by_key = {s["key"]: s for s in run["scenarios"]}
            for key, goal in (("1000", "berichten/s 1000"), ("1000-att", "berichten/s 1000 + att")):
                value = by_key[key]["berichten_per_second"] if key in by_key else None
                lines.append(
                    f"  {kind:<12}{goal:<26}{_ms(value):>11}  goal >= {GOALS[goal]:,.0f}: "
                    f"{_met(value, GOALS[goal])}"
                )
            ok = berichtverwerk._rows_ok(run) and berichtverwerk._peer_ok(run)
            lines.append(
                f"  {kind:<12}rows and BerichtVerwerkResponses accounted for: "
                f"{'yes' if ok else 'NO'}"
            )
        for kind, run in runs.items():
            for s in run["scenarios"]:
                if s["errors"]:
                    lines.append(f"  errors in {kind} {s['name']}:")
                    lines += [f"    {n} x {message[:150]}" for message, n in s["error_samples"]]
    sweep = figures.get("sweep")
    if sweep:
        lines += [
            "",
            "Attachment size sweep (SQLite, 100 Berichten per batch, two personal PDFs each + "
            "one 2 MiB general PDF)",
            f"  {'personal PDF':<14}{'MB/batch':>9}{'Ber./s':>9}{'MB/s':>8}{'p50 ms':>10}"
            f"{'p99 ms':>10}{'RSS MiB':>9}{'goal MiB':>10}{'errors':>8}",
        ]
        for s in sweep:
            goal = 150 + 2 * s["message_bytes"] / MIB
            lines.append(
                f"  {s['personal_pdf_bytes']:>10,} B  {s['message_bytes'] / 1e6:>9.1f}"
                f"{s['berichten_per_second']:>9.0f}{s['megabytes_per_second']:>8.1f}"
                f"{_ms(s['p50_ms']):>10}{_ms(s['p99_ms']):>10}{s['worker_peak_rss_mib']:>9.0f}"
                f"{goal:>10.0f}{s['errors']:>8}"
            )
        lines.append(
            "  RSS = the largest worker VmHWM so far; goal = 150 MiB + 2 x the message "
            "(issue 12), for one message at a time: 8 connections put up to 4 in one worker"
        )
    return "\n".join(lines)


def _worker_rss(rss: dict[str, int]) -> float:
    workers = [v for k, v in rss.items() if k.startswith("worker ")]
    return max(workers, default=0) / 1024


# --- plot --------------------------------------------------------------------------------------


def plot(figures: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    (throughput, memory), (sweep_rate, sweep_memory) = axes
    for kind, run in figures.get("berichtverwerk", {}).items():
        for attachments, style in ((False, "-o"), (True, "--s")):
            points = [s for s in run["scenarios"] if s["attachments"] == attachments]
            sizes = [s["berichten_per_batch"] for s in points]
            label = f"{kind}{' + att' if attachments else ''}"
            throughput.plot(sizes, [s["berichten_per_second"] for s in points], style, label=label)
            memory.plot(
                sizes,
                [_worker_rss(s["server_peak_rss_kib_after"]) for s in points],
                style,
                label=label,
            )
    for axis, title, unit in (
        (throughput, "BerichtVerwerk throughput", "Berichten/s"),
        (memory, "Worker peak RSS after each batch size", "MiB"),
    ):
        axis.set_xscale("log")
        axis.set_xlabel("Berichten per batch")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
        axis.legend()
    throughput.axhline(GOALS["berichten/s 1000"], color="grey", linestyle=":", label="goal")
    sweep = figures.get("sweep", [])
    if sweep:
        sizes_kb = [s["personal_pdf_bytes"] / 1000 for s in sweep]
        sweep_rate.plot(sizes_kb, [s["megabytes_per_second"] for s in sweep], "-o", label="MB/s")
        sweep_rate.set_xlabel("personal PDF size, KB (two per Bericht, 100 Berichten)")
        sweep_rate.set_ylabel("MB/s of request bodies")
        sweep_rate.set_title("Throughput against attachment size (SQLite)")
        sweep_rate.grid(True, alpha=0.3)
        message_mib = [s["message_bytes"] / MIB for s in sweep]
        sweep_memory.plot(
            message_mib, [s["worker_peak_rss_mib"] for s in sweep], "-o", label="worker peak RSS"
        )
        sweep_memory.plot(
            message_mib, [150 + 2 * m for m in message_mib], ":", color="grey", label="goal"
        )
        sweep_memory.set_xlabel("message size, MiB")
        sweep_memory.set_ylabel("MiB")
        sweep_memory.set_title("Worker peak RSS against message size (SQLite)")
        sweep_memory.grid(True, alpha=0.3)
        sweep_memory.legend()
    fig.suptitle(f"dk-adapter bench/run.py, {figures['setup']['started']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --- main --------------------------------------------------------------------------------------

PARTS = ("signing", "abonnementen", "berichtverwerk", "sweep", "profile")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short windows: a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where JSON and PNG go")
    parser.add_argument("--skip", choices=PARTS, action="append", default=[], help="leave out")
    parser.add_argument(
        "--profile", choices=PROFILED, action="append", help="profile only this workload"
    )
    args = parser.parse_args(argv)
    windows = QUICK if args.quick else FULL
    started = datetime.now(UTC)
    context = multiprocessing.get_context("spawn")
    per_process = split_connections(CONNECTIONS)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"run-{started.strftime('%Y%m%d-%H%M%S')}{'-quick' if args.quick else ''}"
    figures: dict[str, Any] = {
        "setup": {
            "quick": args.quick,
            "started": started.strftime("%Y-%m-%d %H:%M UTC"),
            "windows": windows.__dict__ | {"sweep_sizes": list(windows.sweep_sizes)},
            "workers": 2,
            "threads": 4,
            "load": f"{LOAD_PROCESSES} processes x {'/'.join(map(str, per_process))} connections",
            "open_loop_rate": OPEN_LOOP_RATE,
            "postgresql": redacted(POSTGRES_URL),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "goals": GOALS,
    }
    with tempfile.TemporaryDirectory(prefix="bench-run-") as temp:
        directory = Path(temp)
        if "signing" not in args.skip:
            hierarchy = new_hierarchy("Bench")
            (directory / "root.pem").write_bytes(hierarchy.root_pem())
            figures["signing"] = {
                algorithm: receipt_signing.measure(
                    hierarchy,
                    algorithm,
                    key_type,
                    directory / "root.pem",
                    directory,
                    windows.signing,
                )
                for algorithm, key_type in (
                    ("ecdsa-sha256", "ecdsa-p256"),
                    ("rsa-sha256", "rsa-3072"),
                )
            }
        files = build_pki(directory / "pki")
        if "abonnementen" not in args.skip:
            figures["abonnementen"] = abonnementen(context, files, directory, windows)
            figures["ratios"] = ratios(figures["abonnementen"])
        if "berichtverwerk" not in args.skip:
            figures["berichtverwerk"] = berichtverwerk_runs(context, files, directory, windows)
        if "sweep" not in args.skip:
            figures["sweep"] = attachment_sweep(context, files, directory, windows)
        if "profile" not in args.skip:
            try:
                figures["profiles"] = profiles(
                    context,
                    files,
                    directory,
                    args.out,
                    windows.profile,
                    stem,
                    tuple(args.profile or PROFILED),
                )
            except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                print(f"profile failed: {exc}", file=sys.stderr)

    print(report(figures))
    if "profiles" in figures:
        print(profile_report(figures["profiles"]))
    (args.out / f"{stem}.json").write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n")
    print(f"\nfigures written to {args.out / f'{stem}.json'}")
    if "berichtverwerk" in figures or "sweep" in figures:
        plot(figures, args.out / f"{stem}.png")
        print(f"plot written to {args.out / f'{stem}.png'}")
    failures = [r["name"] for r in figures.get("abonnementen", []) if r["errors"]]
    failures += [s["personal_pdf_bytes"] for s in figures.get("sweep", []) if s["errors"]]
    for failure in failures:
        print(f"FAILED: requests with errors in {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; servers stopped, temporary files and schemas removed", file=sys.stderr)
        sys.exit(130)

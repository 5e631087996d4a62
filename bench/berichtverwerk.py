"""Throughput and latency of BerichtVerwerk (GLOBE-R-BV-Request over ebMS 2.0, mutual TLS), with
and without attachments, and whether every accepted Bericht, attachment and asynchronous
BerichtVerwerkResponse is accounted for.

Run: `.venv/bin/python bench/berichtverwerk.py [--seconds N] [--connections N]
[--database sqlite|postgresql|both] [--min-batches N] [--personal identical|distinct]
[--scenarios 1,100,1000,1-att,100-att,1000-att] [--json FILE]`.

What it does, all on loopback and in a temporary directory that is removed afterwards:

1. Builds the dev PKI, config, database and server as bench/abonnementen.py does (bench._setup:
   2 gunicorn workers (asyncio front) x 4 threads plus the scheduler process that delivers
   the outbox;
   SQLite in the temp dir, or a fresh schema in the PostgreSQL of DATABASE_URL that is dropped
   at the end; `--database both` runs SQLite first, then PostgreSQL, each on its own server).
   The CPAs point the organisations' endpoint at a peer in this process: an
   `adapter.kit.receiver.EbmsReceiver` serving Gemeente Voorbeeldstad's (00000099000000002000)
   client certificate, which acknowledges every message it gets and counts the
   BerichtVerwerkResponses (GLOBE-R-BV-Result) by the MessageId they answer.
2. Six scenarios: batches of 1, 100 and 1000 Berichten, without and then with attachments.
   Every request is a GLOBE-R-BV-Request from 00000099000000002000 (whose CPA has
   syncReplyMode mshSignalsOnly, so the HTTP answer carries the Acknowledgment with the signed
   Afleverbevestiging), built as tests/test_berichtverwerk.py does (`batch_request`,
   `build_package`, `batch_xml`): a new MessageId, BatchID and BerichtIDs (UUIDs) each time,
   BSN 999993653, BerichtType BESLUIT. "With attachments" is SPEC.md Part C's definition: two
   personal PDFs of 10 KB (10,000 bytes) each per Bericht (base64 in the batch XML) and one
   general PDF of 1 MiB per batch, sent once as a MIME part and referenced from every Bericht.
   The general PDF is distinct in every batch (a PDF comment with the BatchID in its content
   stream), so each accepted batch adds one `bijlagen` row. The personal PDFs are, by default
   (`--personal identical`), the same two PDFs in every Bericht of every batch, which shows the
   deduplication by SHA-256 (two `bijlagen` rows in all); `--personal distinct` puts the
   BerichtID in each, so every Bericht adds two rows and two blob files.
3. Load as in the other benchmarks (bench._setup: 2 processes x (connections / 2) threads, one
   keep-alive `http.client.HTTPSConnection` per thread, one untimed warm-up request per
   connection, then closed loop). A scenario runs for --seconds and then on until --min-batches
   timed batches have been answered, but starts no batch after 3 x --seconds. An answer is good
   only when it is HTTP 200, an Acknowledgment (not an ErrorList) of the MessageId sent, and its
   Afleverbevestiging lists exactly the BerichtIDs sent, every one Verwerkt.
4. Reports per scenario batches/s, Berichten/s (Verwerkt), MB/s of request bodies (good
   batches; 1 MB = 10^6 bytes), latency percentiles of good batches, errors, the spread over
   the gunicorn workers and the CPU of the server, its scheduler and the load generator. Then
   the rows added to berichten, bericht_bijlagen and bijlagen (and blob files) against what the
   accepted batches should have left, the server's peak RSS (VmHWM of master, workers and
   scheduler; pages shared after fork count once per process), the outbox (delivered, pending,
   failed) and the results at the peer right after each scenario, warnings and errors the
   server logged, and the BerichtVerwerkResponses the peer received against the batches
   acknowledged, after waiting up to 30 s for the outbox to drain. (The test CPAs give a
   result a PersistDuration of 60 s: one still undelivered by then is marked failed.)

Exit status 1 when any request failed, the rows do not match, or not every acknowledged batch's
BerichtVerwerkResponse reached the peer. The machine may have few cores, which the server, the
load generator and the peer share: the figures are for comparing runs on one machine, not a
capacity statement. Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import os
import platform
import re
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from multiprocessing.context import SpawnContext
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lxml import etree  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from adapter.ebms.message import EB, error_of  # noqa: E402
from adapter.ebms.mime import build_package  # noqa: E402
from adapter.kit.receiver import ACKNOWLEDGE, EbmsReceiver, ReceivedMessage, Reply  # noqa: E402
from adapter.kit.sender import RESULT_ACTION, batch_request  # noqa: E402
from adapter.pki.devca import PkiFiles  # noqa: E402
from adapter.receipts.model import NS as RECEIPT_NS  # noqa: E402
from bench._setup import (  # noqa: E402
    GEMEENTE,
    POSTGRES_URL,
    WORKER_SPREAD_EXPLANATION,
    Request,
    RunningServer,
    WorkerShare,
    Workload,
    build_pki,
    children,
    count_rows_of,
    database,
    is_scheduler,
    milliseconds,
    peak_rss_kib,
    percentile_ms,
    redacted,
    run_load,
    running_server,
    side_process,
    split_connections,
    worker_spread_lines,
    worker_spread_notes,
)
from tests.berichtverwerk_samples import batch_xml, minimal_pdf  # noqa: E402
from tests.conftest import free_port  # noqa: E402

MIJNOVERHEID = "00000004003214345001"
CPA_ID = f"MIJNOVERHEID-EBMS-BB-2-0_{GEMEENTE}_{MIJNOVERHEID}_1"
BSN = "999993653"  # active and subscribed to GEMEENTE in conf/accounts.example.csv
BERICHT_TYPE = "BESLUIT"
PATH = "/berichtenbox/ebms"
PAYLOAD_CID = f"batch@{GEMEENTE}"
GENERAL_CID = f"algemeen@{GEMEENTE}"
PERSONAL_BYTES = 10_000  # "10 KB" (SPEC.md Part C), as the attachment limit counts bytes
GENERAL_BYTES = 1_048_576  # 1 MiB
VERWERKT = "Verwerkt"
TABLES = ("berichten", "bericht_bijlagen", "bijlagen")
DRAIN_SECONDS = 30.0
CAP_FACTOR = 3  # a scenario starts no batch after CAP_FACTOR x --seconds
REQUEST_TIMEOUT = 300.0  # a 1000-Bericht batch with attachments is ~28 MB
_A = f"{{{RECEIPT_NS}}}"


@dataclass(frozen=True)
class Scenario:
    key: str
    name: str
    berichten: int
    attachments: bool


SCENARIOS = tuple(
    Scenario(f"{n}{'-att' if att else ''}", f"{n}{' + att' if att else ''}", n, att)
    for att in (False, True)
    for n in (1, 100, 1000)
)


# --- the batches (built in the load processes) ------------------------------------------------


def _tag(text: str) -> bytes:
    """48 bytes (a multiple of 3) for a PDF content stream: a comment line holding `text`."""
    line = f"%{text}".ljust(47).encode("ascii")
    if len(line) != 47:
        raise ValueError(f"tag text too long: {text!r}")
    return line + b"\n"


def _tag_offset(pdf: bytes) -> int:
    """Where a tag can replace padding in minimal_pdf's content stream without moving any
    offset: the first multiple of 3 inside the run of spaces, so that the tag's base64 is a
    whole stretch of the PDF's base64."""
    start = pdf.index(b"stream\n") + len(b"stream\n")
    offset = start + (-start) % 3
    if pdf[offset : offset + 48] != b" " * 48:
        raise ValueError("the PDF has no room for a tag")
    return offset


def _tagged(pdf: bytes, offset: int, text: str) -> bytes:
    return pdf[:offset] + _tag(text) + pdf[offset + 48 :]


@dataclass
class _Template:
    """A batch payload cut at everything that changes per request: static chunks between
    slots; slot kinds 'batch' (BatchID), 'id' (BerichtID i) and 'pdf' (base64 of the tag of
    personal PDF k of Bericht i, with --personal distinct)."""

    chunks: list[bytes]
    slots: list[tuple[str, int, int]]
    general: bytes | None  # the 1 MiB general PDF, tagged per batch
    general_offset: int


_TEMPLATES: dict[tuple[int, bool, bool], _Template] = {}
_TEMPLATES_LOCK = threading.Lock()


def _personal_text(bericht_id: str, k: int) -> str:
    return f"{bericht_id} p{k}"


def _build_template(berichten: int, attachments: bool, distinct: bool) -> _Template:
    personal = minimal_pdf(PERSONAL_BYTES)
    offset = _tag_offset(personal)
    batch_placeholder = str(uuid.uuid4())
    ids = [str(uuid.uuid4()) for _ in range(berichten)]
    specs: list[dict[str, Any]] = []
    for bericht_id in ids:
        spec: dict[str, Any] = {"BerichtID": bericht_id, "BerichtType": BERICHT_TYPE}
        if attachments:
            pdfs = [
                _tagged(
                    personal,
                    offset,
                    _personal_text(bericht_id, k) if distinct else f"persoonlijke bijlage {k}",
                )
                for k in (1, 2)
            ]
            spec["bijlagen"] = [(pdf, f"Bijlage {k}") for k, pdf in enumerate(pdfs, start=1)]
            spec["algemene"] = [(GENERAL_CID, "Algemene voorwaarden")]
        specs.append(spec)
    payload = batch_xml(specs, batch_id=batch_placeholder, leverancier=GEMEENTE)

    # Every placeholder in document order: the batch's BatchID, then per Bericht its BatchID,
    # BerichtID and (distinct personal PDFs) the base64 of each PDF's tag.
    wanted: list[tuple[bytes, tuple[str, int, int]]] = [
        (batch_placeholder.encode(), ("batch", 0, 0))
    ]
    for i, bericht_id in enumerate(ids):
        wanted += [
            (batch_placeholder.encode(), ("batch", 0, 0)),
            (bericht_id.encode(), ("id", i, 0)),
        ]
        if attachments and distinct:
            wanted += [
                (base64.b64encode(_tag(_personal_text(bericht_id, k))), ("pdf", i, k))
                for k in (1, 2)
            ]
    chunks, slots, position = [], [], 0
    for needle, slot in wanted:
        found = payload.find(needle, position)
        if found < 0:
            raise ValueError(f"placeholder {slot} not found in the batch template")
        chunks.append(payload[position:found])
        slots.append(slot)
        position = found + len(needle)
    chunks.append(payload[position:])
    general = minimal_pdf(GENERAL_BYTES) if attachments else None
    return _Template(chunks, slots, general, _tag_offset(general) if general else 0)


def _template(berichten: int, attachments: bool, distinct: bool) -> _Template:
    key = (berichten, attachments, distinct)
    with _TEMPLATES_LOCK:
        if key not in _TEMPLATES:
            _TEMPLATES[key] = _build_template(berichten, attachments, distinct)
        return _TEMPLATES[key]


@dataclass(frozen=True)
class Batches(Workload):
    """A new GLOBE-R-BV-Request of `berichten` Berichten for every request."""

    berichten: int
    attachments: bool
    distinct_personal: bool

    def batch(self) -> tuple[Request, str]:
        """The request, and its BatchID."""
        template = _template(self.berichten, self.attachments, self.distinct_personal)
        batch_id = str(uuid.uuid4())
        ids = [str(uuid.uuid4()) for _ in range(self.berichten)]
        values = {"batch": batch_id.encode()}
        pieces: list[bytes] = []
        for chunk, (kind, i, k) in zip(template.chunks[:-1], template.slots, strict=True):
            pieces.append(chunk)
            if kind == "id":
                pieces.append(ids[i].encode())
            elif kind == "pdf":
                pieces.append(base64.b64encode(_tag(_personal_text(ids[i], k))))
            else:
                pieces.append(values[kind])
        pieces.append(template.chunks[-1])
        parts = [(PAYLOAD_CID, "text/xml; charset=UTF-8", b"".join(pieces))]
        general_cids = []
        if template.general is not None:
            general = _tagged(template.general, template.general_offset, f"algemeen {batch_id}")
            parts.append((GENERAL_CID, "application/pdf", general))
            general_cids.append(GENERAL_CID)
        message_id, soap = batch_request(
            GEMEENTE, MIJNOVERHEID, CPA_ID, PAYLOAD_CID, general_cids, datetime.now(UTC)
        )
        content_type, body = build_package(soap, parts)
        headers = {"Content-Type": content_type, "SOAPAction": '"ebXML"'}
        return Request(PATH, headers, body, " ".join([message_id, *ids])), batch_id

    def request(self, connection: int, n: int) -> Request:
        return self.batch()[0]

    def check(self, request: Request, status: int, data: bytes) -> str | None:
        """Request-independent text for a bad answer (errors are counted by it)."""
        if status != 200:
            return f"HTTP {status}: {data[:200]!r}"
        try:
            document = etree.fromstring(data, etree.XMLParser(resolve_entities=False))
        except etree.XMLSyntaxError:
            return f"HTTP 200, not XML: {data[:200]!r}"
        error = error_of(document)
        if error is not None:
            return f"ErrorList {error[0]}: {error[1][:200]}"
        message_id, *sent = request.expect.split(" ")
        ref = document.findtext(f".//{{{EB}}}Acknowledgment/{{{EB}}}RefToMessageId")
        if ref is None:
            return "HTTP 200 without Acknowledgment or ErrorList"
        if ref != message_id:
            return "Acknowledgment of another MessageId"
        receipt = document.find(f".//{_A}Afleverbevestiging")
        if receipt is None:
            return "Acknowledgment without Afleverbevestiging"
        codes = {
            b.findtext(f"{_A}BerichtID"): b.findtext(f"{_A}VerwerkingsCode")
            for b in receipt.iterfind(f"{_A}Uitkomst/{_A}Bericht")
        }
        if set(codes) != set(sent):
            listed = len(set(codes) & set(sent))
            return f"receipt lists {len(codes)} BerichtIDs, {listed} of the {len(sent)} sent"
        refused = Counter(code for code in codes.values() if code != VERWERKT)
        if refused:
            return "receipt: " + ", ".join(f"{n} x {code}" for code, n in sorted(refused.items()))
        return None


# --- the peer -------------------------------------------------------------------------------


@dataclass
class PeerCounts:
    results: dict[str, int] = field(default_factory=dict)  # RefToMessageId -> Verwerkt in it
    totals: dict[str, int] = field(default_factory=dict)  # RefToMessageId -> Berichten in it
    repeats: int = 0  # a result for a MessageId already answered (an outbox retry)
    other: Counter[str] = field(default_factory=Counter)  # other actions received
    unreadable: int = 0


class Peer:
    """Gemeente Voorbeeldstad's ebMS endpoint: acknowledges everything, counts the results."""

    def __init__(self, files: PkiFiles, port: int) -> None:
        client = files.clients[GEMEENTE]
        self.counts = PeerCounts()
        self.lock = threading.Lock()
        self.receiver = EbmsReceiver(
            "127.0.0.1", port, client.certificate, client.private_key, files.root_ca, self.reply
        )

    def reply(self, message: ReceivedMessage) -> Reply:
        header = message.header
        if header.action != RESULT_ACTION:
            with self.lock:
                self.counts.other[header.action] += 1
            return ACKNOWLEDGE
        try:
            response = etree.fromstring(message.payload() or b"")
            total = int(response.findtext("BatchInformatie/TotaalAantalOntvangenBerichten") or 0)
            verwerkt = int(
                response.findtext("BatchInformatie/AantalBerichtenSuccesvolVerwerkt") or 0
            )
        except (etree.XMLSyntaxError, ValueError):
            with self.lock:
                self.counts.unreadable += 1
            return ACKNOWLEDGE
        with self.lock:
            ref = header.ref_to_message_id or ""
            if ref in self.counts.results:
                self.counts.repeats += 1
            self.counts.results[ref] = verwerkt
            self.counts.totals[ref] = total
        return ACKNOWLEDGE

    def drain(self) -> None:
        """Drop the queued messages (counted already), so they do not pile up in memory."""
        while not self.receiver.received.empty():
            self.receiver.received.get_nowait()

    def snapshot(self) -> tuple[int, int, int]:
        """(distinct results, Verwerkt in them, Berichten in them)."""
        with self.lock:
            return (
                len(self.counts.results),
                sum(self.counts.results.values()),
                sum(self.counts.totals.values()),
            )

    @contextmanager
    def serving(self) -> Iterator[Peer]:
        with self.receiver:
            yield self


# --- one scenario ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ScenarioResult:
    key: str
    name: str
    berichten_per_batch: int
    attachments: bool
    connections: int
    body_bytes_per_batch: int  # of the first batch built here; the others differ by a few bytes
    seconds: float  # from start until the last response
    batches: int  # timed, good or not
    good: int
    errors: int  # warm-up and timed
    error_samples: list[tuple[str, int]]
    reconnects: int
    warmups: int
    warmups_good: int
    batches_per_second: float
    berichten_per_second: float
    megabytes_per_second: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    workers: list[WorkerShare]
    connections_held_by_no_worker: int
    master_cpu_seconds: float
    scheduler_cpu_seconds: float
    server_cpu_seconds: float  # master, workers, scheduler, citizen listener
    load_generator_cpu_seconds: float
    worker_pids_changed: bool
    prepare_seconds: float
    batches_acknowledged: int  # good answers, warm-up included
    berichten_accepted: int  # Verwerkt in those answers
    rows: dict[str, int]  # added during the scenario, warm-up included
    expected: dict[str, int]
    blob_files: int  # added
    server_log: dict[str, int]  # problems the server logged during the scenario
    outbox_after: dict[str, int]  # outbox rows per action and status right after the scenario
    peer_results_after: int  # distinct results the peer had by then
    # VmHWM of the server's processes right after the scenario (bench/run.py plots it)
    server_peak_rss_kib_after: dict[str, int] = field(default_factory=dict)


_LOG_PROBLEMS = (
    (re.compile(r"request \w+: database error: (.*)"), "database error: {}"),
    (re.compile(r"request \w+: unexpected error"), "unexpected error (traceback in the log)"),
    (re.compile(r"(WORKER TIMEOUT|was sent SIG\w+|Worker exiting)"), "gunicorn: {}"),
    (re.compile(r"outbox \S+ to \S+ failed: (.*)"), "outbox failed: {}"),
    (re.compile(r"outbox \S+ to \S+: (\w+ \(.*\))"), "outbox attempt: {}"),
    (re.compile(r'Job "(\w+)[^"]*" raised an exception'), "scheduler job {} raised"),
    (re.compile(r'Execution of job "(\w+)[^"]*" skipped'), "scheduler job {} skipped (still busy)"),
    (re.compile(r'Run time of job "(\w+)[^"]*" was missed'), "scheduler job {} run missed"),
    (re.compile(r"^(sqlalchemy\.exc\.\w+: \(\S+\) [^\[]*)"), "traceback: {}"),
)


def log_problems(log: Path, offset: int) -> tuple[dict[str, int], int]:
    """What went wrong in the server log after byte `offset` (request ids left out, so that
    the same problem counts once), and the log's new end."""
    with log.open("rb") as handle:
        handle.seek(offset)
        data = handle.read()
    found: Counter[str] = Counter()
    for line in data.decode(errors="replace").splitlines():
        for pattern, label in _LOG_PROBLEMS:
            match = pattern.search(line)
            if match:
                found[label.format(*match.groups())[:200]] += 1
                break
    return dict(found.most_common(10)), offset + len(data)


def _count_blobs(directory: Path) -> int:
    return sum(1 for p in directory.rglob("*") if p.is_file() and not p.name.startswith("."))


def run_scenario(
    context: SpawnContext,
    server: RunningServer,
    blobs: Path,
    client_cert: tuple[str, str],
    root: str,
    peer: Peer,
    scenario: Scenario,
    distinct_personal: bool,
    personal_stored: bool,
    connections: int,
    seconds: float,
    min_batches: int,
) -> ScenarioResult:
    workload = Batches(scenario.berichten, scenario.attachments, distinct_personal)
    sample, _ = workload.batch()
    before = count_rows_of(server.database_url, *TABLES)
    blobs_before = _count_blobs(blobs)
    _, log_offset = log_problems(server.log, 0)
    run = run_load(
        context,
        server,
        client_cert,
        root,
        workload,
        connections,
        seconds,
        min_requests=min_batches,
        max_seconds=CAP_FACTOR * seconds,
        timeout=REQUEST_TIMEOUT,
    )
    after = count_rows_of(server.database_url, *TABLES)
    blobs_after = _count_blobs(blobs)
    problems, _ = log_problems(server.log, log_offset)
    outbox = outbox_status(server.database_url)

    total = run.total
    good = len(total.latencies)
    ordered = sorted(total.latencies)
    acknowledged = good + total.warmups_good
    berichten = acknowledged * scenario.berichten
    workers = [w for w in run.workers if side_process(w.pid) is None]
    scheduler_cpu = sum(w.cpu_seconds for w in run.workers if is_scheduler(w.pid))
    if scenario.attachments:
        personal = 2 * berichten if distinct_personal else (0 if personal_stored else 2)
        expected = {
            "berichten": berichten,
            "bericht_bijlagen": 3 * berichten,
            "bijlagen": acknowledged + (personal if acknowledged else 0),
        }
    else:
        expected = {"berichten": berichten, "bericht_bijlagen": 0, "bijlagen": 0}
    return ScenarioResult(
        key=scenario.key,
        name=scenario.name,
        berichten_per_batch=scenario.berichten,
        attachments=scenario.attachments,
        connections=connections,
        body_bytes_per_batch=len(sample.body),
        seconds=run.seconds,
        batches=total.requests,
        good=good,
        errors=len(total.errors),
        error_samples=Counter(total.errors).most_common(10),
        reconnects=total.reconnects,
        warmups=total.warmups,
        warmups_good=total.warmups_good,
        batches_per_second=good / run.seconds,
        berichten_per_second=good * scenario.berichten / run.seconds,
        megabytes_per_second=total.body_bytes / run.seconds / 1e6,
        p50_ms=percentile_ms(ordered, 0.50),
        p90_ms=percentile_ms(ordered, 0.90),
        p99_ms=percentile_ms(ordered, 0.99),
        workers=workers,
        connections_held_by_no_worker=run.connections_held_by_no_worker,
        master_cpu_seconds=run.master_cpu_seconds,
        scheduler_cpu_seconds=scheduler_cpu,
        server_cpu_seconds=run.server_cpu_seconds,
        load_generator_cpu_seconds=total.cpu_seconds,
        worker_pids_changed=run.worker_pids_changed,
        prepare_seconds=run.prepare_seconds,
        batches_acknowledged=acknowledged,
        berichten_accepted=berichten,
        rows={t: after[t] - before[t] for t in TABLES},
        expected=expected,
        blob_files=blobs_after - blobs_before,
        server_log=problems,
        outbox_after=outbox,
        peer_results_after=peer.snapshot()[0],
    )


# --- the outbox at the end ------------------------------------------------------------------


def outbox_status(database_url: str) -> dict[str, int]:
    """Rows of the outbox per action and status, e.g. 'GLOBE-R-BV-Result delivered'."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT action, status, count(*) FROM outbox GROUP BY action, status")
            ).all()
    finally:
        engine.dispose()
    return {f"{action} {status}": int(n) for action, status, n in sorted(rows)}


def wait_for_outbox(server: RunningServer, peer: Peer, batches: int) -> tuple[float, bool]:
    """Wait (up to DRAIN_SECONDS) until the peer has a result for every acknowledged batch and
    the outbox has nothing pending; returns (seconds waited, drained)."""
    started = time.monotonic()
    while True:
        pending = sum(
            n
            for key, n in outbox_status(server.database_url).items()
            if key.endswith((" pending", " sent"))
        )
        waited = time.monotonic() - started
        if pending == 0 and peer.snapshot()[0] >= batches:
            return waited, True
        if waited >= DRAIN_SECONDS:
            return waited, False
        time.sleep(0.25)


def server_rss(server: RunningServer) -> dict[str, int]:
    """KiB of VmHWM for the master, each worker, the scheduler and the citizen listener, and
    their "total"."""
    rss = {"master": peak_rss_kib(server.pid)}
    for pid in children(server.pid):
        rss[f"{side_process(pid) or 'worker'} {pid}"] = peak_rss_kib(pid)
    rss["total"] = sum(rss.values())
    return rss


# --- one database -------------------------------------------------------------------------


def run_database(
    kind: str,
    args: argparse.Namespace,
    context: SpawnContext,
    directory: Path,
    files: PkiFiles,
    scenarios_to_run: tuple[Scenario, ...] = SCENARIOS,
) -> dict[str, Any]:
    gemeente = files.clients[GEMEENTE]
    client_cert = (str(gemeente.certificate), str(gemeente.private_key))
    peer = Peer(files, free_port())
    scenarios: list[ScenarioResult] = []
    distinct = args.personal == "distinct"
    server_dir = directory / f"server-{kind}"
    with (
        peer.serving(),
        database(kind, directory) as database_url,
        running_server(server_dir, files, database_url, peer.receiver.port) as server,
    ):
        personal_stored = False
        for scenario in scenarios_to_run:
            result = run_scenario(
                context,
                server,
                server_dir / "blobs",
                client_cert,
                str(files.root_ca),
                peer,
                scenario,
                distinct,
                personal_stored,
                args.connections,
                args.seconds,
                args.min_batches,
            )
            scenarios.append(replace(result, server_peak_rss_kib_after=server_rss(server)))
            personal_stored = personal_stored or bool(
                scenario.attachments and result.rows["bijlagen"]
            )
            peer.drain()
            print(
                f"  [{kind}] {scenario.name}: {result.batches} batches, {result.errors} errors",
                file=sys.stderr,
                flush=True,
            )
        acknowledged = sum(s.batches_acknowledged for s in scenarios)
        waited, drained = wait_for_outbox(server, peer, acknowledged)
        rss = server_rss(server)
        outbox = outbox_status(server.database_url)
        rows = count_rows_of(server.database_url, *TABLES)
        problems, _ = log_problems(server.log, 0)
    results, verwerkt, in_results = peer.snapshot()
    accepted = sum(s.berichten_accepted for s in scenarios)
    per_process = split_connections(args.connections)
    return {
        "setup": {
            "database": kind if kind == "sqlite" else f"postgresql ({redacted(POSTGRES_URL)})",
            "workers": 2,
            "threads": 4,
            "load": f"{len(per_process)} processes x "
            f"{'/'.join(str(n) for n in per_process)} connections",
            "connections": args.connections,
            "seconds": args.seconds,
            "min_batches": args.min_batches,
            "cap_seconds": CAP_FACTOR * args.seconds,
            "personal": args.personal,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "scenarios": [asdict(s) for s in scenarios],
        "totals": {
            "batches_acknowledged": acknowledged,
            "berichten_accepted": accepted,
            "rows": {t: sum(s.rows[t] for s in scenarios) for t in TABLES},
            "expected": {t: sum(s.expected[t] for s in scenarios) for t in TABLES},
            "rows_at_end": rows,
            "blob_files": sum(s.blob_files for s in scenarios),
        },
        "peer": {
            "results": results,
            "verwerkt_in_results": verwerkt,
            "berichten_in_results": in_results,
            "repeated_results": peer.counts.repeats,
            "other_messages": dict(peer.counts.other),
            "unreadable": peer.counts.unreadable,
            "attempts": peer.receiver.attempts,
            "waited_seconds": waited,
            "drained": drained,
        },
        "outbox": outbox,
        "server_log": problems,
        "server_peak_rss_kib": rss,
    }


# --- report ----------------------------------------------------------------------------------

W = 12  # width of the scenario column


def _rows_ok(run: dict[str, Any]) -> bool:
    return all(s["rows"] == s["expected"] for s in run["scenarios"])


def _peer_ok(run: dict[str, Any]) -> bool:
    peer, totals = run["peer"], run["totals"]
    return (
        peer["results"] == totals["batches_acknowledged"]
        and peer["verwerkt_in_results"] == totals["berichten_accepted"]
    )


def _errors(run: dict[str, Any]) -> int:
    return sum(s["errors"] for s in run["scenarios"])


def _rss_line(rss: dict[str, int]) -> str:
    return (
        "Server peak RSS (VmHWM, master, workers, scheduler, citizen listener):"
        f" {rss['total'] / 1024:.1f} MiB  ("
        + ", ".join(f"{k} {v / 1024:.1f}" for k, v in rss.items() if k != "total")
        + "; pages shared after fork are counted once per process)"
    )


def report(run: dict[str, Any]) -> str:
    meta = run["setup"]
    scenarios = run["scenarios"]
    lines = [
        "BerichtVerwerk (GLOBE-R-BV-Request, ebMS 2.0) over mutual TLS (dk-adapter serve)",
        f"  database {meta['database']}, server {meta['workers']} workers x {meta['threads']} "
        f"threads + scheduler, load {meta['load']}",
        f"  {meta['seconds']:g} s per scenario, then on until {meta['min_batches']} timed batches "
        f"(no batch started after {meta['cap_seconds']:g} s); personal PDFs {meta['personal']}",
        f"  {meta['cpus']} CPUs shared by server, load generator and peer, Python "
        f"{meta['python']}, {meta['platform']}",
        "",
        "Load (good batches only in batches/s, Berichten/s, MB/s and latency; 'att' = two 10 KB",
        "personal PDFs per Bericht + one 1 MiB general PDF per batch)",
        f"  {'scenario':<{W}}{'body MB':>9}{'batches':>8}{'batch/s':>9}{'Ber./s':>9}{'MB/s':>7}"
        f"{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'errors':>7}{'secs':>6}",
    ]
    for s in scenarios:
        lines.append(
            f"  {s['name']:<{W}}{s['body_bytes_per_batch'] / 1e6:>9.3f}{s['batches']:>8}"
            f"{s['batches_per_second']:>9.2f}{s['berichten_per_second']:>9.0f}"
            f"{s['megabytes_per_second']:>7.1f}{milliseconds(s['p50_ms']):>9}"
            f"{milliseconds(s['p90_ms']):>9}{milliseconds(s['p99_ms']):>9}{s['errors']:>7}"
            f"{s['seconds']:>6.1f}"
        )
    lines += [
        "",
        *WORKER_SPREAD_EXPLANATION,
        "The scheduler (outbox delivery) is listed apart; 'server CPU' includes it.",
        f"  {'scenario':<{W}}{'worker':>9}{'conns':>7}{'CPU s':>8}{'CPU share':>11}",
    ]
    for s in scenarios:
        lines += worker_spread_lines(s, W)
        cpu_per_bericht = (
            s["server_cpu_seconds"] / (s["good"] * s["berichten_per_batch"]) * 1000
            if s["good"]
            else 0.0
        )
        lines.append(
            f"  {'':<{W}}server CPU {s['server_cpu_seconds']:.2f} s = "
            f"{s['server_cpu_seconds'] / s['seconds']:.2f} cores (scheduler "
            f"{s['scheduler_cpu_seconds']:.2f} s), {cpu_per_bericht:.2f} ms per Bericht; "
            f"load generator {s['load_generator_cpu_seconds']:.2f} s = "
            f"{s['load_generator_cpu_seconds'] / s['seconds']:.2f} cores"
        )
        lines += [f"  {'':<{W}}NOTE: {note}" for note in worker_spread_notes(s)]
    failed = [s for s in scenarios if s["errors"]]
    if failed:
        lines += ["", "Errors (most frequent first, at most 10 distinct per scenario)"]
        for s in failed:
            lines.append(f"  {s['name']}: {s['errors']} errors (warm-up and timed)")
            lines += [f"    {n:>6} x {m}" for m, n in s["error_samples"]]
    logged = [s for s in scenarios if s["server_log"]]
    if logged:
        lines += [
            "",
            "Server log during each scenario (warnings and errors, counted; 'skipped (still",
            "busy)' = an outbox round took longer than the 0.2 s poll interval)",
        ]
        for s in logged:
            lines += [f"  {s['name']:<{W}}{n:>6} x {m}" for m, n in s["server_log"].items()]

    personal = (
        "the same two PDFs in every Bericht (deduplicated: 2 bijlagen rows in all)"
        if meta["personal"] == "identical"
        else "distinct in every Bericht (2 bijlagen rows per Bericht)"
    )
    lines += [
        "",
        "Rows added / expected from the batches acknowledged (warm-up included; '!' marks a",
        "difference). Expected: 1 berichten row per Verwerkt Bericht; with attachments 3",
        "bericht_bijlagen rows per Bericht, 1 bijlagen row per batch for its distinct 1 MiB",
        f"general PDF, and personal PDFs {personal}.",
        f"  {'scenario':<{W}}{'batches':>8}{'Berichten':>10}"
        + "".join(f"{t:>20}" for t in TABLES)
        + f"{'blob files':>12}",
    ]

    def row(
        label: str,
        batches: int,
        berichten: int,
        rows: dict[str, int],
        exp: dict[str, int],
        blobs: int,
    ) -> str:
        cells = "".join(
            f"{f'{rows[t]}/{exp[t]}' + (' ' if rows[t] == exp[t] else '!'):>20}" for t in TABLES
        )
        return f"  {label:<{W}}{batches:>8}{berichten:>10}{cells}{blobs:>12}"

    for s in scenarios:
        lines.append(
            row(
                s["name"],
                s["batches_acknowledged"],
                s["berichten_accepted"],
                s["rows"],
                s["expected"],
                s["blob_files"],
            )
        )
    totals = run["totals"]
    lines.append(
        row(
            "total",
            totals["batches_acknowledged"],
            totals["berichten_accepted"],
            totals["rows"],
            totals["expected"],
            totals["blob_files"],
        )
    )
    at_end = totals["rows_at_end"]
    lines.append(
        f"  berichten rows {at_end['berichten']} vs Berichten accepted "
        f"{totals['berichten_accepted']}: "
        + ("match" if at_end["berichten"] == totals["berichten_accepted"] else "MISMATCH")
        + f"; bijlagen rows {at_end['bijlagen']}, blob files {totals['blob_files']}"
    )

    lines += [
        "",
        "Outbox right after each scenario (cumulative; a BerichtVerwerkResponse is 'delivered'",
        "once the peer acknowledged it, 'failed' after the CPA's retries or PersistDuration -",
        "60 s in the test CPAs)",
        f"  {'scenario':<{W}}{'acked':>8}{'at peer':>9}{'delivered':>11}{'pending':>9}"
        f"{'sent':>7}{'failed':>8}",
    ]
    acked = 0
    for s in scenarios:
        acked += s["batches_acknowledged"]
        status: Counter[str] = Counter()
        for key, n in s["outbox_after"].items():
            status[key.rsplit(" ", 1)[1]] += n
        lines.append(
            f"  {s['name']:<{W}}{acked:>8}{s['peer_results_after']:>9}"
            + "".join(
                f"{status.get(k, 0):>{w}}"
                for k, w in (("delivered", 11), ("pending", 9), ("sent", 7), ("failed", 8))
            )
        )

    peer = run["peer"]
    state = (
        f"outbox drained after {peer['waited_seconds']:.1f} s"
        if peer["drained"]
        else f"outbox NOT drained after {peer['waited_seconds']:.0f} s"
    )
    lines += [
        "",
        "BerichtVerwerkResponses at the peer (Gemeente Voorbeeldstad's EbmsReceiver)",
        f"  {peer['results']} distinct results for {totals['batches_acknowledged']} batches "
        f"acknowledged ({state}); Verwerkt in them {peer['verwerkt_in_results']} of "
        f"{totals['berichten_accepted']} Berichten accepted; "
        f"{peer['attempts']} deliveries received, {peer['repeated_results']} repeats, "
        f"{peer['unreadable']} unreadable"
        + (f", other messages {peer['other_messages']}" if peer["other_messages"] else ""),
        "  outbox rows: " + ", ".join(f"{k} {v}" for k, v in run["outbox"].items()),
        *(
            ["  server log, whole run: " + "; ".join(f"{n} x {m}" for m, n in problems.items())]
            if (problems := run["server_log"])
            else []
        ),
        "",
        _rss_line(run["server_peak_rss_kib"]),
    ]
    return "\n".join(lines)


def comparison(runs: dict[str, dict[str, Any]]) -> str:
    sqlite, postgresql = runs["sqlite"]["scenarios"], runs["postgresql"]["scenarios"]
    lines = [
        "SQLite vs PostgreSQL (good batches; ratio = PostgreSQL / SQLite Berichten/s)",
        f"  {'scenario':<{W}}{'SQLite Ber./s':>14}{'p50 ms':>9}{'PG Ber./s':>11}{'p50 ms':>9}"
        f"{'PG/SQLite':>11}",
    ]
    for lite, pg in zip(sqlite, postgresql, strict=True):
        ratio = (
            f"{pg['berichten_per_second'] / lite['berichten_per_second']:.2f}"
            if lite["berichten_per_second"]
            else "-"
        )
        lines.append(
            f"  {lite['name']:<{W}}{lite['berichten_per_second']:>14.0f}"
            f"{milliseconds(lite['p50_ms']):>9}{pg['berichten_per_second']:>11.0f}"
            f"{milliseconds(pg['p50_ms']):>9}{ratio:>11}"
        )
    for kind, run in runs.items():
        rss = run["server_peak_rss_kib"]["total"] / 1024
        lines.append(
            f"  {kind}: peak RSS {rss:.0f} MiB, errors {_errors(run)}, rows "
            + ("ok" if _rows_ok(run) else "MISMATCH")
            + f", results {run['peer']['results']}/{run['totals']['batches_acknowledged']}"
        )
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0, help="per scenario (default 10)")
    parser.add_argument(
        "--connections", type=int, default=8, help="keep-alive connections in all (default 8)"
    )
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument(
        "--min-batches",
        type=int,
        default=10,
        help="timed batches a scenario waits for after --seconds, within 3 x --seconds "
        "(default 10)",
    )
    parser.add_argument(
        "--personal",
        choices=("identical", "distinct"),
        default="identical",
        help="the two 10 KB personal PDFs: the same in every Bericht (default) or distinct",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(s.key for s in SCENARIOS),
        help="which to run, by key (default all: "
        + ", ".join(s.key for s in SCENARIOS)
        + "); the rows and outbox checks hold for any choice",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    by_key = {s.key: s for s in SCENARIOS}
    keys = args.scenarios.split(",")
    unknown = [key for key in keys if key not in by_key]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; known: {', '.join(by_key)}")
    chosen = tuple(by_key[key] for key in keys)
    if args.seconds <= 0 or args.connections < 1 or args.min_batches < 0:
        parser.error("--seconds and --connections must be positive, --min-batches not negative")

    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    context = multiprocessing.get_context("spawn")
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-berichtverwerk-") as temp:
        directory = Path(temp)
        files = build_pki(directory / "pki")
        for kind in kinds:
            runs[kind] = run_database(kind, args, context, directory, files, chosen)

    for i, run in enumerate(runs.values()):
        if i:
            print("\n" + "=" * 100 + "\n")
        print(report(run))
    if len(runs) == 2:
        print("\n" + "=" * 100 + "\n")
        print(comparison(runs))
    if args.json:
        figures = runs[kinds[0]] if len(runs) == 1 else {"runs": runs}
        args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n")
        print(f"\nfigures written to {args.json}")

    failures = []
    for kind, run in runs.items():
        if _errors(run):
            failures.append(f"{kind}: requests with errors")
        if (
            not _rows_ok(run)
            or run["totals"]["rows_at_end"]["berichten"] != run["totals"]["berichten_accepted"]
        ):
            failures.append(f"{kind}: rows do not match the batches acknowledged")
        if not _peer_ok(run):
            failures.append(
                f"{kind}: {run['peer']['results']} BerichtVerwerkResponses at the peer for "
                f"{run['totals']['batches_acknowledged']} batches acknowledged"
            )
    for failure in failures:
        print(f"\nFAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # The finally blocks have stopped the load generator, server and peer and cleaned up.
        print("interrupted; server stopped, temporary files and schema removed", file=sys.stderr)
        sys.exit(130)

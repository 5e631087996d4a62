"""Killing adapter nodes under load, and accounting for every message afterwards.

Shared by tests/test_crash_safety.py, tests/test_two_nodes.py and bench/soak_kill.py:

- `Node`: one `dk-adapter serve` in a process group of its own, so that `kill()` reaches
  every process it started (gunicorn master and workers, the scheduler, the citizen
  listener) with SIGKILL, as a power cut or the OOM killer would;
- `BatchStream`: organisations' MSHs sending a stream of BerichtVerwerk batches, each one
  retried with the same MessageId and bytes until it is acknowledged, as ebMS reliable
  messaging does; what each got acknowledged is kept;
- `ResultPeer`: the organisations' endpoint, acknowledging every BerichtVerwerkResponse and
  counting each arrival, repeats included;
- `tally()`: what the client saw acknowledged against what the database holds and what the
  peer received.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import requests
from lxml import etree
from sqlalchemy import create_engine, text

from adapter.config import load_config
from adapter.ebms import outbound
from adapter.ebms.cpa import CpaStore
from adapter.ebms.message import EB, Route, error_of
from adapter.ebms.mime import build_package
from adapter.kit.receiver import ACKNOWLEDGE, EbmsReceiver, ReceivedMessage, Reply
from adapter.kit.sender import batch_request
from adapter.receipts import verify
from adapter.store.db import Database
from tests.berichtverwerk_samples import batch_xml, minimal_pdf
from tests.conftest import GEMEENTE, ClientCert, _wait_for_port
from tests.ebms_helpers import MIJNOVERHEID, cpa_id

RESULT_ACTION = "GLOBE-R-BV-Result"
_ACK_REF = f".//{{{EB}}}Acknowledgment/{{{EB}}}RefToMessageId"


# --- a node ------------------------------------------------------------------------------------


def _stat(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name: state, ppid, pgrp, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def _alive(pid: int) -> bool:
    try:
        return _stat(pid)[0] != "Z"
    except (OSError, IndexError):
        return False


@dataclass
class Node:
    """`dk-adapter serve` on one configuration, started in a session (process group) of its
    own; `ports` are the listeners it must open before it counts as up."""

    config: Path
    database_url: str
    log: Path
    ports: tuple[int, ...]
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        # A metrics directory per start: samples of killed processes are not carried over.
        metrics = self.log.parent / f"metrics-{self.log.stem}-{self.starts}"
        metrics.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            **self.env,
            "DATABASE_URL": self.database_url,
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        }
        # Set as `serve` would set it, so it need not start itself a second time (execve).
        openssl_conf = load_config(self.config, environ=env).tls.openssl_conf
        if openssl_conf is not None:
            env["OPENSSL_CONF"] = str(openssl_conf)
        with self.log.open("ab") as handle:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "adapter.cli", "--config", str(self.config), "serve"],
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        for port in self.ports:
            _wait_for_port(port, self.process, self.log)

    def pids(self) -> list[int]:
        """Every live process of the node: its process group and any descendant."""
        if self.process is None:
            return []
        group, found = self.process.pid, set()
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = _stat(int(entry.name))
            except (OSError, IndexError):
                continue
            if fields[0] == "Z":
                continue
            parents[int(entry.name)] = int(fields[1])
            if int(fields[2]) == group:
                found.add(int(entry.name))
        frontier = {group}
        while frontier:  # descendants that left the group, should any
            frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
            found |= frontier
        return sorted(pid for pid in found if _alive(pid))

    def scheduler_pid(self) -> int | None:
        for pid in self.pids():
            try:
                if b"adapter.jobs.scheduler" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
            except OSError:
                continue
        return None

    def kill(self) -> int:
        """SIGKILL every process of the node at once; returns how many there were."""
        assert self.process is not None
        pids = self.pids()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=60)
        deadline = time.monotonic() + 60
        while any(_alive(pid) for pid in pids):
            assert time.monotonic() < deadline, f"processes {pids} survived SIGKILL"
            time.sleep(0.05)
        return len(pids)

    def stop(self) -> None:
        """A normal stop (SIGTERM to the group), SIGKILL for what is left after 20 s."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            return
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# --- the organisations' side -----------------------------------------------------------------


@dataclass
class Batch:
    message_id: str
    content_type: str
    body: bytes
    bericht_ids: list[str]


def new_batch(rng: random.Random, oin: str = GEMEENTE) -> Batch:
    """A GLOBE-R-BV-Request of 1 to 3 Berichten; a third of them with a PDF of their own."""
    berichten = []
    for _ in range(rng.randint(1, 3)):
        bericht: dict[str, object] = {"BerichtID": str(uuid.uuid4())}
        if rng.random() < 1 / 3:
            bericht["bijlagen"] = [(minimal_pdf(2000 + rng.randrange(100_000)), "Beschikking")]
        berichten.append(bericht)
    payload = batch_xml(berichten, leverancier=oin)
    message_id, soap = batch_request(
        oin, MIJNOVERHEID, cpa_id(oin), "batch@test", [], datetime.now(UTC)
    )
    content_type, body = build_package(soap, [("batch@test", "text/xml; charset=UTF-8", payload)])
    return Batch(message_id, content_type, body, [str(b["BerichtID"]) for b in berichten])


class BatchStream:
    """`senders` threads, each sending batches one after another to `url`; a batch is sent
    again (same MessageId, same bytes) after any failure until its Acknowledgment comes."""

    MAX_TRIES = 500  # per batch; far beyond any restart, short of forever

    def __init__(
        self,
        url: str,
        client: ClientCert,
        root: Path,
        senders: int = 3,
        seed: int = 0,
        pause: float = 0.0,
    ) -> None:
        self.url, self.client, self.root = url, client, root
        self.senders, self.seed = senders, seed
        self.pause = pause  # seconds each sender waits between two batches
        self.acknowledged: dict[str, dict[str, str]] = {}  # MessageId -> BerichtID -> code
        self.unanswered = 0  # requests that got no answer: refused, reset, timed out, 5xx
        self.message_errors: Counter[str] = Counter()  # ErrorList answers, by error code
        self.given_up: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.acknowledged)

    def start(self) -> None:
        for n in range(self.senders):
            thread = threading.Thread(target=self._run, args=(n,), name=f"sender-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 300) -> None:
        """No new batches; every batch under way is sent until acknowledged."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
            assert not thread.is_alive(), "a sender did not finish its batch"

    def _run(self, n: int) -> None:
        rng = random.Random(self.seed * 1000 + n)
        session = requests.Session()
        session.trust_env = False
        session.cert = self.client.pair
        session.verify = str(self.root)
        try:
            while not self._stop.is_set():
                self._deliver(session, new_batch(rng))
                self._stop.wait(self.pause)
        finally:
            session.close()

    def _deliver(self, session: requests.Session, batch: Batch) -> None:
        for _ in range(self.MAX_TRIES):
            codes = self._try(session, batch)
            if codes is not None:
                with self._lock:
                    self.acknowledged[batch.message_id] = codes
                return
            time.sleep(0.2)
        with self._lock:
            self.given_up.append(batch.message_id)

    def _try(self, session: requests.Session, batch: Batch) -> dict[str, str] | None:
        try:
            response = session.post(
                f"{self.url}/berichtenbox/ebms",
                data=batch.body,
                headers={"Content-Type": batch.content_type, "SOAPAction": '"ebXML"'},
                timeout=60,
            )
        except requests.RequestException:
            with self._lock:
                self.unanswered += 1
            return None
        if response.status_code != 200 or not response.content.strip():
            with self._lock:
                self.unanswered += 1
            return None
        document = etree.fromstring(response.content)
        error = error_of(document)
        if error is not None:
            with self._lock:
                self.message_errors[error[0]] += 1
            return None
        assert document.findtext(_ACK_REF) == batch.message_id
        receipt = verify(document, self.root).receipt
        return {b.bericht_id: b.verwerkingscode for b in receipt.outcome.berichten}


class ResultPeer:
    """The organisations' ebMS endpoint: acknowledges every message after `delay` seconds
    and counts the BerichtVerwerkResponses by the MessageId they answer."""

    def __init__(self, port: int, client: ClientCert, root: Path, delay: float = 0.0) -> None:
        self.delay = delay
        self.results: Counter[str] = Counter()  # RefToMessageId -> arrivals
        self._lock = threading.Lock()
        self.receiver = EbmsReceiver(
            "127.0.0.1", port, client.certificate, client.key, root, self._reply
        )

    def _reply(self, message: ReceivedMessage) -> Reply:
        if self.delay:
            time.sleep(self.delay)
        if message.header.action == RESULT_ACTION:
            with self._lock:
                self.results[message.header.ref_to_message_id or ""] += 1
        return ACKNOWLEDGE

    def __enter__(self) -> ResultPeer:
        self.receiver.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.receiver.__exit__(*exc)

    def arrivals(self) -> int:
        """Results received so far, repeats included."""
        with self._lock:
            return sum(self.results.values())

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.results)


# --- the account --------------------------------------------------------------------------------


def keep_results_longer(cpa_dir: Path, persist: str = "PT30M") -> None:
    """The test CPAs keep a message 60 s (tests.conftest.write_cpas); a run that kills its
    nodes again and again can take longer than that, and a result given up after its
    PersistDuration would be the CPA's doing, not a crash's."""
    for cpa in cpa_dir.glob("*.xml"):
        text_ = cpa.read_text(encoding="utf-8")
        assert "<tp:PersistDuration>PT60S<" in text_
        cpa.write_text(
            text_.replace("<tp:PersistDuration>PT60S<", f"<tp:PersistDuration>{persist}<"),
            encoding="utf-8",
        )


def queue_results(database_url: str, cpa_dir: Path, count: int, payload: bytes) -> None:
    """`count` BerichtVerwerkResponses to Gemeente Voorbeeldstad in the outbox, each answering
    a MessageId of its own, queued as the ebMS endpoint queues a batch's answer."""
    cpa = next(c for c in CpaStore.load(cpa_dir) if c.party(GEMEENTE) is not None)
    party = cpa.party(GEMEENTE)
    assert party is not None
    db = Database(database_url)
    db.create_schema()
    try:
        for start in range(0, count, 1000):
            with db.repositories() as repositories:
                for _ in range(min(1000, count - start)):
                    route = Route(
                        cpa_id=cpa.cpa_id,
                        conversation_id=str(uuid.uuid4()),
                        from_oin=MIJNOVERHEID,
                        from_role="SP",
                        to_oin=GEMEENTE,
                        to_role="SR",
                        service=party.service,
                        service_type=party.service_type,
                        action=RESULT_ACTION,
                    )
                    now = datetime.now(UTC)
                    result = outbound.business_message_for(
                        cpa, party, route, f"{uuid.uuid4()}@test", payload, [], now
                    )
                    repositories.outbox.add(result, now)
    finally:
        db.dispose()


def outbox_state(database_url: str) -> str:
    """The outbox by status, and the last errors of what is still open: for a failure's text."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            counts = dict(
                conn.execute(text("SELECT status, count(*) FROM outbox GROUP BY status")).all()
            )
            open_rows = conn.execute(
                text(
                    "SELECT message_id, status, attempts, next_attempt_at, last_error FROM outbox"
                    " WHERE status IN ('pending', 'sent') ORDER BY next_attempt_at LIMIT 5"
                )
            ).all()
    finally:
        engine.dispose()
    return f"outbox {counts}; first open: {[tuple(row) for row in open_rows]}"


def wait_for_drain(database_url: str, timeout: float) -> None:
    """Until no outbox message is pending or waiting for its Acknowledgment."""
    try:
        wait_for(lambda: outbox_open(database_url) == 0, timeout, "the outbox drained")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {outbox_state(database_url)}") from None


def outbox_open(database_url: str) -> int:
    """Outbox messages still to be delivered (pending or waiting for an Acknowledgment)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT count(*) FROM outbox WHERE status IN ('pending', 'sent')")
                ).scalar_one()
            )
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Tally:
    batches: int  # acknowledged to the client
    berichten: int  # of those, Verwerkt
    lost: int  # acknowledged Verwerkt, but not in the database (or the batch not recorded)
    doubled: int  # processed twice: BerichtBestaatAl, a second receipt or a second result
    stored_unacknowledged: int  # in the database, though no client saw it acknowledged
    delivered: int  # acknowledged batches whose result reached the peer
    undelivered: int  # acknowledged batches whose result never reached the peer
    peer_repeats: int  # results the peer received more than once (its duplicate elimination)
    outbox_not_delivered: int  # outbox rows not delivered (pending, sent or failed)
    refused: int  # ErrorList answers the client got (and then retried)
    unanswered: int  # requests the client sent that got no answer

    def line(self) -> str:
        return (
            f"batches acknowledged {self.batches} ({self.berichten} Berichten), "
            f"lost {self.lost}, doubled {self.doubled}, "
            f"stored unacknowledged {self.stored_unacknowledged}, delivered {self.delivered}, "
            f"undelivered {self.undelivered}, peer repeats {self.peer_repeats}, "
            f"outbox not delivered {self.outbox_not_delivered}, "
            f"refused then retried {self.refused}, unanswered requests {self.unanswered}"
        )


def tally(database_url: str, stream: BatchStream, peer: ResultPeer) -> Tally:
    acknowledged = dict(stream.acknowledged)
    verwerkt = {b for codes in acknowledged.values() for b, c in codes.items() if c == "Verwerkt"}
    bestaat_al = sum(
        1 for codes in acknowledged.values() for c in codes.values() if c == "BerichtBestaatAl"
    )
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            stored = {row[0] for row in conn.execute(text("SELECT bericht_id FROM berichten"))}
            received = Counter(
                row[0]
                for row in conn.execute(
                    text("SELECT message_id FROM ebms_messages WHERE from_oin = :oin"),
                    {"oin": GEMEENTE},
                )
            )
            accepted_receipts = Counter(
                row[0]
                for row in conn.execute(
                    text(
                        "SELECT message_ref FROM receipts WHERE sender_oin = :oin"
                        " AND operation = 'GLOBE-R-BV-Request' AND outcome = 'Berichten'"
                    ),
                    {"oin": GEMEENTE},
                )
            )
            results = Counter(
                row[0]
                for row in conn.execute(
                    text("SELECT ref_to_message_id FROM outbox WHERE action = :a"),
                    {"a": RESULT_ACTION},
                )
            )
            not_delivered = int(
                conn.execute(
                    text("SELECT count(*) FROM outbox WHERE status <> 'delivered'")
                ).scalar_one()
            )
    finally:
        engine.dispose()
    arrivals = peer.snapshot()
    lost_batches = sum(1 for m in acknowledged if received[m] == 0 or results[m] == 0)
    doubled = (
        bestaat_al
        + sum(n - 1 for n in accepted_receipts.values() if n > 1)
        + sum(n - 1 for n in results.values() if n > 1)
        + sum(n - 1 for n in received.values() if n > 1)
    )
    return Tally(
        batches=len(acknowledged),
        berichten=len(verwerkt),
        lost=len(verwerkt - stored) + lost_batches,
        doubled=doubled,
        stored_unacknowledged=len(stored - verwerkt),
        delivered=sum(1 for m in acknowledged if arrivals[m] > 0),
        undelivered=sum(1 for m in acknowledged if arrivals[m] == 0),
        peer_repeats=sum(n - 1 for m, n in arrivals.items() if n > 1),
        outbox_not_delivered=not_delivered,
        refused=sum(stream.message_errors.values()),
        unanswered=stream.unanswered,
    )


# --- the scenario -------------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


def kill_during_stream(
    node: Node,
    stream: BatchStream,
    kills: int,
    rng: random.Random,
    peer: ResultPeer,
    progress: int = 3,
    report: Callable[[str], None] | None = None,
) -> list[int]:
    """Kill every process of `node` `kills` times while `stream` sends, each time once
    `progress` more batches were acknowledged and a result more reached `peer` (intake and
    sending both under way), plus a random moment; then start it again. Returns how many
    processes each kill ended."""
    killed = []
    for n in range(kills):
        wanted, results = stream.count + progress, peer.arrivals() + 1
        # Generous: other test runs share the two cores; this is no speed assertion.
        wait_for(lambda w=wanted: stream.count >= w, 180, "batches after a restart")
        wait_for(lambda r=results: peer.arrivals() >= r, 180, "results after a restart")
        time.sleep(rng.uniform(0.05, 1.0))
        killed.append(node.kill())
        node.start()
        if report is not None:
            report(f"kill {n + 1}: {killed[-1]} processes, {stream.count} batches acknowledged")
    return killed

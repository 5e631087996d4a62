"""Outbound delivery: results per second to a local acknowledging peer, with one and two nodes,
and the time to drain a backlog after a restart.

Run: `.venv/bin/python bench/ebms_outbound.py [--backlog N] [--nodes 1 2]
[--peer-delay SECONDS] [--json FILE]` (backlog 10,000 by default; 1 and 2 nodes).

What it does, on loopback and in a temporary directory removed afterwards, once per node
count, each time in a fresh schema of the PostgreSQL of DATABASE_URL (dropped at the end):

1. Writes each node's configuration as the tests do (own ports, one schema, CPAs with the
   test's 1 s RetryInterval and a PersistDuration of a day so that nothing expires while it
   waits), migrates the schema, and while no node runs queues the backlog: N
   BerichtVerwerkResponses (GLOBE-R-BV-Result, a 1 KB payload) to Gemeente Voorbeeldstad
   made by `adapter.ebms.outbound.business_message_for`, as the endpoint does for each batch.
2. Starts the peer (an `adapter.kit.receiver.EbmsReceiver` with that organisation's
   certificate, acknowledging each message in its HTTP answer after --peer-delay seconds,
   default 0) and then the node(s) with `dk-adapter serve`; every node's scheduler delivers the
   outbox 8 at a time, claiming rows with FOR UPDATE SKIP LOCKED.
3. Reports the time from starting the nodes until the last of the N results reached the peer
   (start-up included: the drain after a restart), the delivery rate between the first and
   the last arrival (messages/s), how the deliveries split over the nodes (their "delivered"
   log lines), results the peer received more than once, and the outbox's end state.

The machine may have two cores that the nodes, their PostgreSQL and the peer share: the
figures compare runs on one machine; nothing here is asserted on timing. Exit status 1 when
a result did not arrive, arrived twice, or the outbox did not end with every row delivered.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from adapter.kit.receiver import ACKNOWLEDGE, EbmsReceiver, ReceivedMessage, Reply  # noqa: E402
from bench._setup import _config_pki, build_pki, database, redacted  # noqa: E402
from tests.conftest import GEMEENTE, free_port, write_config  # noqa: E402
from tests.kill_helpers import (  # noqa: E402
    Node,
    keep_results_longer,
    outbox_open,
    queue_results,
    wait_for,
)

PAYLOAD = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<BerichtVerwerkResponse>'
    + b"<Bericht><BerichtID>00000000-0000-0000-0000-000000000000</BerichtID>"
    + b"<VerwerkingsCode>Verwerkt</VerwerkingsCode></Bericht>" * 8
    + b"</BerichtVerwerkResponse>"
)


@dataclass
class Scenario:
    nodes: int
    backlog: int
    drain_seconds: float  # from starting the nodes until the last result arrived
    first_arrival_seconds: float  # from starting the nodes until the first result arrived
    messages_per_second: float  # between the first and the last arrival
    per_node: list[int]  # deliveries each node logged
    peer_repeats: int
    outbox: dict[str, int]


class CountingPeer:
    def __init__(self, port: int, certificate: Path, key: Path, root: Path, delay: float) -> None:
        self.delay = delay
        self.arrivals: Counter[str] = Counter()
        self.first = self.last = 0.0
        self.lock = threading.Lock()
        self.receiver = EbmsReceiver("127.0.0.1", port, certificate, key, root, self.reply)

    def reply(self, message: ReceivedMessage) -> Reply:
        if self.delay:
            time.sleep(self.delay)
        now = time.monotonic()
        with self.lock:
            self.arrivals[message.header.message_id] += 1
            self.first = self.first or now
            self.last = now
        return ACKNOWLEDGE

    def distinct(self) -> int:
        with self.lock:
            return len(self.arrivals)


def scenario(nodes: int, backlog: int, peer_delay: float, directory: Path) -> Scenario:
    files = build_pki(directory / "pki")
    pki = _config_pki(files)
    client = pki.clients[GEMEENTE]
    peer_port = free_port()
    with database("postgresql", directory) as url:
        print(f"{nodes} node(s), backlog {backlog}, database {redacted(url)}", flush=True)
        running = []
        for n in range(nodes):
            port, admin_port, citizen_port = free_port(), free_port(), free_port()
            node_dir = directory / f"node{n}"
            config = write_config(node_dir, pki, url, port, peer_port, admin_port, citizen_port)
            keep_results_longer(node_dir / "cpa", "P1D")
            running.append(
                Node(config, url, node_dir / "server.log", (port, admin_port, citizen_port))
            )
        queue_results(url, directory / "node0" / "cpa", backlog, PAYLOAD)
        peer = CountingPeer(peer_port, client.certificate, client.key, pki.root, peer_delay)
        with peer.receiver:
            started = time.monotonic()
            try:
                for node in running:
                    node.start()
                wait_for(lambda: peer.distinct() >= backlog, 3600, "the backlog delivered")
                wait_for(lambda: outbox_open(url) == 0, 600, "the outbox settled")
            finally:
                for node in running:
                    node.stop()
        outbox = count_outbox(url)
    return Scenario(
        nodes=nodes,
        backlog=backlog,
        drain_seconds=peer.last - started,
        first_arrival_seconds=peer.first - started,
        messages_per_second=(backlog - 1) / max(peer.last - peer.first, 1e-9),
        per_node=[n.log.read_text(errors="replace").count(" delivered to ") for n in running],
        peer_repeats=sum(c - 1 for c in peer.arrivals.values() if c > 1),
        outbox=outbox,
    )


def count_outbox(url: str) -> dict[str, int]:
    """Outbox rows by status."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT status, count(*) FROM outbox GROUP BY status"))
            counts = {"pending": 0, "sent": 0, "delivered": 0, "failed": 0}
            counts.update({str(status): int(n) for status, n in rows})
            return counts
    finally:
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--peer-delay", type=float, default=0.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = []
    for nodes in args.nodes:
        with tempfile.TemporaryDirectory(prefix="ebms-outbound-") as temporary:
            results.append(scenario(nodes, args.backlog, args.peer_delay, Path(temporary)))
    print()
    print(f"{'nodes':>5} {'backlog':>8} {'drain s':>8} {'first s':>8} {'msg/s':>8}  per node")
    for r in results:
        print(
            f"{r.nodes:>5} {r.backlog:>8} {r.drain_seconds:>8.1f} {r.first_arrival_seconds:>8.1f}"
            f" {r.messages_per_second:>8.1f}  {r.per_node}  repeats {r.peer_repeats}"
            f"  outbox {r.outbox}"
        )
    print(
        "drain s: from starting the node(s) until the last result reached the peer (start-up"
        " included); msg/s: between the first and the last arrival."
    )
    if len(results) == 2 and results[0].messages_per_second:
        ratio = results[1].messages_per_second / results[0].messages_per_second
        print(f"{results[1].nodes} nodes / {results[0].nodes} node: {ratio:.2f}x messages/s")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    bad = any(
        r.peer_repeats or r.outbox["delivered"] != r.backlog or r.outbox["failed"] for r in results
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

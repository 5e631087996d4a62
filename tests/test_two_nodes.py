"""Two adapter nodes on one PostgreSQL schema, attachments in S3, behind HAProxy; one is killed.

Two `dk-adapter serve` processes, each with its own ports, share a PostgreSQL schema and an
S3 bucket (moto's server mode over real HTTP). HAProxy (Debian's package) balances the mTLS
port in TCP mode, so TLS and the client certificate go through to the node untouched; it
checks each node's /health on the admin listener. Organisation MSHs send a stream of
BerichtVerwerk batches through it. The peer takes longer to answer each result (1.2 s) than
the CPA's retry interval (1 s), so a message that two nodes could both claim would be sent
twice. In the middle, the node that holds the job lock is killed with SIGKILL (every process):
the other carries on, takes over the periodic jobs, and nothing is lost or doubled.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from adapter.ebms.outbound import PARALLEL_DELIVERIES, Deliverer, OutboundTls
from adapter.store.db import Database
from adapter.store.locks import job_lock_holder
from tests.conftest import (
    GEMEENTE,
    Pki,
    _wait_for_port,
    free_port,
    import_example_accounts,
    postgres_schema,
    write_config,
)
from tests.kill_helpers import (
    BatchStream,
    Node,
    ResultPeer,
    keep_results_longer,
    outbox_open,
    queue_results,
    tally,
    wait_for,
    wait_for_drain,
)
from tests.s3_helpers import CREDENTIALS, S3Endpoint, moto_s3

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
TAKEN = "job lock taken: this node runs the periodic jobs"


@dataclass
class Cluster:
    nodes: list[Node]
    balancer_url: str
    database_url: str
    s3: S3Endpoint
    peer_port: int
    directory: Path


def haproxy_config(port: int, nodes: list[tuple[int, int]]) -> str:
    """TCP mode on `port`; each node its mTLS port, health-checked on its admin /health."""
    servers = "\n".join(
        f"  server node{n} 127.0.0.1:{tls} check port {admin} inter 300ms fall 2 rise 1"
        for n, (tls, admin) in enumerate(nodes)
    )
    return f"""
global
  maxconn 512
defaults
  mode tcp
  timeout connect 2s
  timeout client 120s
  timeout server 120s
  retries 3
  option redispatch
frontend ebms
  bind 127.0.0.1:{port}
  default_backend nodes
backend nodes
  balance roundrobin
  option httpchk
  http-check send meth GET uri /health
{servers}
"""


@pytest.fixture(scope="module")
def cluster(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("two-nodes")
    peer_port = free_port()
    with postgres_schema("two") as database_url, moto_s3(directory / "moto.log") as s3:
        nodes = []
        for name in ("a", "b"):
            port, admin_port, citizen_port = free_port(), free_port(), free_port()
            node_dir = directory / name
            config = write_config(
                node_dir, pki, database_url, port, peer_port, admin_port, citizen_port
            )
            keep_results_longer(node_dir / "cpa")
            with config.open("a", encoding="utf-8") as handle:
                # The periodic jobs often, so that which node runs them shows within seconds.
                handle.write(
                    s3.toml(prefix="bijlagen/") + "[notifications]\ninterval_seconds = 1\n"
                )
            nodes.append(
                Node(
                    config,
                    database_url,
                    node_dir / "server.log",
                    (port, admin_port, citizen_port),
                    env=CREDENTIALS,
                )
            )
        import_example_accounts(nodes[0].config, database_url)
        balancer_port = free_port()
        haproxy_cfg = directory / "haproxy.cfg"
        haproxy_cfg.write_text(
            haproxy_config(balancer_port, [(n.ports[0], n.ports[1]) for n in nodes])
        )
        haproxy_log = directory / "haproxy.log"
        try:
            for node in nodes:
                node.start()
            with haproxy_log.open("ab") as handle:
                balancer = subprocess.Popen(
                    [HAPROXY, "-db", "-f", str(haproxy_cfg)], stdout=handle, stderr=handle
                )
            try:
                _wait_for_port(balancer_port, balancer, haproxy_log)  # type: ignore[arg-type]
                yield Cluster(
                    nodes,
                    f"https://127.0.0.1:{balancer_port}",
                    database_url,
                    s3,
                    peer_port,
                    directory,
                )
            finally:
                balancer.terminate()
                balancer.wait(timeout=20)
        finally:
            for node in nodes:
                node.stop()


def log_of(node: Node) -> str:
    return node.log.read_text(errors="replace")


def holder(cluster: Cluster) -> Node | None:
    """The node whose scheduler holds the job lock, by the lock's session in PostgreSQL."""
    engine = create_engine(cluster.database_url)
    try:
        found = job_lock_holder(engine)
    finally:
        engine.dispose()
    if found is None:
        return None
    for node in cluster.nodes:
        if found[1].endswith(f":{node.scheduler_pid()}"):
            return node
    return None


def test_the_periodic_jobs_run_on_the_one_node_that_holds_the_job_lock(cluster: Cluster) -> None:
    wait_for(lambda: holder(cluster) is not None, 120, "a job lock holder")
    leader = holder(cluster)
    assert leader is not None
    other = next(n for n in cluster.nodes if n is not leader)
    wait_for(lambda: "retention: " in log_of(leader), 120, "retention on the holder")
    wait_for(lambda: "message purge: " in log_of(leader), 120, "purge on the holder")
    assert TAKEN in log_of(leader)
    assert TAKEN not in log_of(other)
    assert "retention: " not in log_of(other) and "message purge: " not in log_of(other)


def test_kill_9_of_one_node_under_load_loses_nothing_and_the_other_carries_on(
    cluster: Cluster, pki: Pki
) -> None:
    client = pki.clients[GEMEENTE]
    wait_for(lambda: holder(cluster) is not None, 120, "a job lock holder")
    victim = holder(cluster)
    assert victim is not None
    survivor = next(n for n in cluster.nodes if n is not victim)
    with ResultPeer(cluster.peer_port, client, pki.root, delay=1.2) as peer:
        # Paced: each result takes the peer 1.2 s, and the drain should not take minutes.
        stream = BatchStream(cluster.balancer_url, client, pki.root, senders=3, seed=5, pause=0.3)
        stream.start()
        try:
            wait_for(lambda: stream.count >= 30 and peer.arrivals() >= 15, 300, "traffic")
            # Both nodes take batches in and send results, and no result went out twice.
            for node in cluster.nodes:
                wait_for(lambda n=node: f" from {GEMEENTE}: " in log_of(n), 120, "intake")
                wait_for(lambda n=node: "delivered to" in log_of(n), 120, "deliveries")
            assert max(peer.snapshot().values()) == 1
            before_kill = stream.count
            killed = victim.kill()
            wanted = before_kill + 30
            wait_for(lambda: stream.count >= wanted, 300, "batches after the kill")
        finally:
            stream.stop()
        wait_for_drain(cluster.database_url, 300)
        result = tally(cluster.database_url, stream, peer)
    print(f"\nkilled {killed} processes of one node: {result.line()}")

    assert killed >= 3
    assert stream.given_up == []
    assert result.lost == 0
    assert result.doubled == 0
    assert result.stored_unacknowledged == 0
    assert result.undelivered == 0 and result.delivered == result.batches
    assert result.outbox_not_delivered == 0
    # Only what the killed node had in flight can reach the peer a second time.
    assert result.peer_repeats <= PARALLEL_DELIVERIES

    # The survivor took the job lock over and runs the periodic jobs now.
    try:
        wait_for(lambda: holder(cluster) is survivor, 120, "the survivor holding the job lock")
    except AssertionError as exc:
        engine = create_engine(cluster.database_url)
        try:
            found = job_lock_holder(engine)
        finally:
            engine.dispose()
        schedulers = [n.scheduler_pid() for n in cluster.nodes]
        raise AssertionError(f"{exc}: lock {found}, schedulers {schedulers}") from None
    wait_for(lambda: "retention: " in log_of(survivor), 120, "retention on the survivor")
    assert TAKEN in log_of(survivor)

    # Every attachment is in the shared bucket, none in a node's local directory.
    engine = create_engine(cluster.database_url)
    try:
        with engine.connect() as conn:
            hashes = {row[0] for row in conn.execute(text("SELECT sha256 FROM bijlagen"))}
    finally:
        engine.dispose()
    assert hashes, "the stream carried attachments"
    assert {f"bijlagen/{h}" for h in hashes} <= set(cluster.s3.object_names())
    for node in cluster.nodes:
        assert not (node.config.parent.parent / "blobs").exists()


def test_two_deliverers_never_send_one_message_at_the_same_time(pki: Pki, tmp_path: Path) -> None:
    """Two nodes' deliverers on one outbox, a peer slower (1.2 s) than the retry interval
    (1 s): a claim that lapsed while its message was still being sent would let the other
    node send it too. The row stays locked while it is sent, so none goes out twice."""
    client = pki.clients[GEMEENTE]
    tls = OutboundTls(pki.directory / "server.pem", pki.directory / "server.key", pki.root)
    peer_port = free_port()
    with postgres_schema("deliver") as database_url:
        write_config(tmp_path, pki, database_url, free_port(), peer_port)
        queue_results(database_url, tmp_path / "cpa", 24, b"<BerichtVerwerkResponse/>")
        databases = [Database(database_url), Database(database_url)]
        deliverers = [Deliverer(database, tls) for database in databases]
        try:
            with ResultPeer(peer_port, client, pki.root, delay=1.2) as peer:

                def rounds(deliverer: Deliverer) -> None:
                    while outbox_open(database_url) and peer.arrivals() < 48:
                        deliverer.deliver_due()
                        time.sleep(0.2)

                nodes = [threading.Thread(target=rounds, args=(d,)) for d in deliverers]
                for node in nodes:
                    node.start()
                for node in nodes:
                    node.join(timeout=300)
                arrivals = peer.snapshot()
        finally:
            for deliverer in deliverers:
                deliverer.close()
            for database in databases:
                database.dispose()
        assert outbox_open(database_url) == 0
    assert len(arrivals) == 24
    assert max(arrivals.values()) == 1, "a result was sent by both nodes"

"""Crash safety: kill -9 of every adapter process, five times, during a stream of batches.

Three organisation MSHs send BerichtVerwerk batches without pause, each retried with the same
MessageId until acknowledged. Five times, at a random moment while batches are being taken
in and results sent, every process of `dk-adapter serve` (gunicorn master and workers, the
scheduler, the citizen listener) is killed with SIGKILL and the server started again. The peer
answers each result after a short delay, so deliveries are in flight when the kill comes.
Afterwards: every Bericht the client saw acknowledged is stored, none twice, nothing is
stored that no client saw acknowledged, and every acknowledged batch's result reached the
peer; repeats the peer's duplicate elimination saw are counted, not failed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import GEMEENTE, Pki, free_port, import_example_accounts, write_config
from tests.kill_helpers import (
    BatchStream,
    Node,
    ResultPeer,
    keep_results_longer,
    kill_during_stream,
    tally,
    wait_for,
    wait_for_drain,
)

KILLS = 5
SEED = 11


@pytest.fixture(scope="module")
def node(
    pki: Pki, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Node, int]]:
    directory: Path = tmp_path_factory.mktemp("crash")
    port, peer_port, admin_port, citizen_port = (free_port() for _ in range(4))
    config = write_config(directory, pki, database_url, port, peer_port, admin_port, citizen_port)
    keep_results_longer(directory / "cpa")
    import_example_accounts(config, database_url)
    node = Node(config, database_url, directory / "server.log", (port, admin_port, citizen_port))
    node.start()
    try:
        yield node, peer_port
    finally:
        node.stop()


def test_kill_9_of_every_process_loses_no_acknowledged_message_and_stores_none_twice(
    node: tuple[Node, int], pki: Pki, database_url: str
) -> None:
    server, peer_port = node
    client = pki.clients[GEMEENTE]
    url = f"https://127.0.0.1:{server.ports[0]}"
    with ResultPeer(peer_port, client, pki.root, delay=0.05) as peer:
        stream = BatchStream(url, client, pki.root, senders=3, seed=SEED)
        stream.start()
        try:
            killed = kill_during_stream(server, stream, KILLS, random.Random(SEED), peer)
            # Traffic after the last restart too, then every batch under way to its end.
            wanted = stream.count + 3
            wait_for(lambda: stream.count >= wanted, 180, "batches after the last restart")
        finally:
            stream.stop()
        wait_for_drain(database_url, 180)
        result = tally(database_url, stream, peer)
    print(f"\n{KILLS} kills ({killed} processes): {result.line()}")

    assert len(killed) == KILLS and min(killed) >= 3  # master, a worker, the scheduler, ...
    assert result.unanswered > 0  # the kills did cut requests off
    assert stream.given_up == []
    assert result.batches >= 3 * (KILLS + 1)
    assert result.lost == 0
    assert result.doubled == 0
    assert result.stored_unacknowledged == 0
    assert result.undelivered == 0 and result.delivered == result.batches
    assert result.outbox_not_delivered == 0

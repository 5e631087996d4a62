"""Soak: kill -9 of every adapter process N times during a stream of batches, then account.

Run: `.venv/bin/python bench/soak_kill.py [N] [--database sqlite|postgresql] [--senders N]
[--seed N]` (N defaults to 100).

What tests/test_crash_safety.py does five times, N times over, on loopback and in a temporary
directory removed afterwards: a dev PKI, the database (SQLite in the directory, or a fresh
schema in the PostgreSQL of DATABASE_URL that is dropped at the end), `dk-adapter serve` in a
process group of its own, a peer acknowledging every BerichtVerwerkResponse after 50 ms, and
organisation MSHs sending BerichtVerwerk batches, each retried with its MessageId until
acknowledged. Each kill comes once three more batches were acknowledged and a result more
reached the peer since the last start, at a random moment after that; every process of the
server (gunicorn master and workers, scheduler, citizen listener) gets SIGKILL at once and the
server is started again. At the end the stream stops, the outbox drains, and it prints:

- lost: Berichten acknowledged Verwerkt but not stored, or batches without their stored
  message or queued result;
- doubled: a batch processed twice (BerichtBestaatAl in an acknowledgment, a second receipt,
  a second queued result, a second received-message row);
- delivered / undelivered: acknowledged batches whose result did or did not reach the peer;
- peer repeats: results the peer received more than once (after a kill mid-delivery; its
  duplicate elimination handles them);
- and what the client saw: requests without an answer, ErrorList answers retried.

Exit status 1 when anything was lost, doubled or undelivered. Nothing here is timed.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._setup import _config_pki, build_pki, database, redacted  # noqa: E402
from tests.conftest import (  # noqa: E402
    GEMEENTE,
    free_port,
    import_example_accounts,
    write_config,
)
from tests.kill_helpers import (  # noqa: E402
    BatchStream,
    Node,
    ResultPeer,
    keep_results_longer,
    kill_during_stream,
    tally,
    wait_for,
    wait_for_drain,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kills", nargs="?", type=int, default=100)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--senders", type=int, default=3)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="soak-kill-") as temporary:
        directory = Path(temporary)
        files = build_pki(directory / "pki")
        pki = _config_pki(files)
        client = pki.clients[GEMEENTE]
        with database(args.database, directory) as url:
            print(f"database: {redacted(url)}; {args.kills} kills, {args.senders} senders")
            port, peer_port, admin_port, citizen_port = (free_port() for _ in range(4))
            config = write_config(directory, pki, url, port, peer_port, admin_port, citizen_port)
            keep_results_longer(directory / "cpa", "P1D")
            try:
                import_example_accounts(config, url)
            except RuntimeError as failed:
                print(failed, file=sys.stderr)
                return 1
            node = Node(config, url, directory / "server.log", (port, admin_port, citizen_port))
            started = time.monotonic()
            node.start()
            try:
                with ResultPeer(peer_port, client, files.directory / "root-ca.pem", 0.05) as peer:
                    stream = BatchStream(
                        f"https://127.0.0.1:{port}",
                        client,
                        files.directory / "root-ca.pem",
                        senders=args.senders,
                        seed=args.seed,
                    )
                    stream.start()
                    try:
                        kill_during_stream(
                            node,
                            stream,
                            args.kills,
                            random.Random(args.seed),
                            peer,
                            report=lambda line: print(f"  {line}", flush=True),
                        )
                        wanted = stream.count + 3
                        wait_for(lambda: stream.count >= wanted, 300, "batches at the end")
                    finally:
                        stream.stop()
                    wait_for_drain(url, 600)
                    result = tally(url, stream, peer)
            finally:
                node.stop()
            seconds = time.monotonic() - started
    print()
    print(f"kills:                 {args.kills} (in {seconds:.0f} s)")
    print(f"batches acknowledged:  {result.batches} ({result.berichten} Berichten Verwerkt)")
    print(f"lost:                  {result.lost}")
    print(f"doubled:               {result.doubled}")
    print(f"stored unacknowledged: {result.stored_unacknowledged}")
    print(f"delivered:             {result.delivered}")
    print(f"undelivered:           {result.undelivered}")
    print(f"peer repeats:          {result.peer_repeats} (seen by its duplicate elimination)")
    print(f"outbox not delivered:  {result.outbox_not_delivered}")
    print(f"requests unanswered:   {result.unanswered}; ErrorList then retried: {result.refused}")
    bad = result.lost or result.doubled or result.undelivered or result.outbox_not_delivered
    return 1 if bad or stream.given_up else 0


if __name__ == "__main__":
    sys.exit(main())

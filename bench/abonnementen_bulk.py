"""AbonnementAanvraag in bulk: seconds and peak RSS from request to answer in the outbox.

Run: `.venv/bin/python bench/abonnementen_bulk.py [--sizes 100000,1000000]
[--database sqlite|postgresql] [--json FILE]`.

Per size, all on loopback and in a temporary directory removed afterwards (a PostgreSQL
schema of its own, dropped afterwards):

1. A dev PKI, a config (the test suite's `write_config`: 2 gunicorn workers (asyncio front) x 4
   threads), a database with the example accounts, and a fresh `dk-adapter serve`, so each
   size's peak RSS is its own.
2. Accounts for half of the request's BSNs (active), half of those opted in for Gemeente
   Voorbeeldstad, inserted directly (untimed). One BSN in a hundred fails the elfproef.
3. One GLOBE-R-A-Request with a BSNLijst of that size, POSTed over mutual TLS as Gemeente
   Voorbeeldstad (its CPA: syncReplyMode mshSignalsOnly, so the HTTP answer is the
   Acknowledgment). Timed from just before the POST until the GLOBE-R-A-Result is in the outbox
   (polled every 20 ms; nobody listens on the CPA's endpoint, so it stays there).
4. Reports the seconds, the request and answer sizes, and VmHWM (peak RSS) of every process
   of the server's tree: the gunicorn master, its two workers, the scheduler and the citizen
   listener, with their sum and with each one's RSS just before the request. Pages shared
   after fork count once per process, so the sum overstates real memory.

Goal (issue 11): 1,000,000 BSNs in at most 10 s with peak RSS at most 300 MB. Nothing here
asserts on the figures; they are for comparing runs on one machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, insert, text  # noqa: E402

from adapter.store.models import Account, Subscription  # noqa: E402
from bench._setup import (  # noqa: E402
    GEMEENTE,
    POSTGRES_URL,
    RunningServer,
    build_pki,
    children,
    database,
    peak_rss_kib,
    redacted,
    running_server,
    side_process,
)
from tests.abonnement_samples import (  # noqa: E402
    aanvraag_message,
    aanvraag_xml,
    invalid_bsn,
    post_aanvraag,
    valid_bsns,
)

SIZES = (100_000, 1_000_000)
RESULT = "GLOBE-R-A-Result"
SEED_CHUNK = 20_000


def request_bsns(size: int) -> list[str]:
    """`size` BSNs, every hundredth failing the elfproef."""
    bsns = list(valid_bsns(size, start=20_000_000))
    for index in range(99, size, 100):
        bsns[index] = invalid_bsn(bsns[index])
    return bsns


def seed(database_url: str, bsns: list[str]) -> tuple[int, int]:
    """Accounts for every second BSN (active), opt-ins for Gemeente for every fourth."""
    now = datetime.now(UTC)
    accounts = bsns[::2]
    subscribed = bsns[::4]
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            for start in range(0, len(accounts), SEED_CHUNK):
                conn.execute(
                    insert(Account),
                    [
                        {"bsn": b, "active": True, "email": None, "updated_at": now}
                        for b in accounts[start : start + SEED_CHUNK]
                    ],
                )
            for start in range(0, len(subscribed), SEED_CHUNK):
                conn.execute(
                    insert(Subscription),
                    [
                        {"bsn": b, "oin": GEMEENTE, "created_at": now}
                        for b in subscribed[start : start + SEED_CHUNK]
                    ],
                )
            if engine.dialect.name == "postgresql":
                conn.execute(text("ANALYZE accounts"))
                conn.execute(text("ANALYZE subscriptions"))
    finally:
        engine.dispose()
    return len(accounts), len(subscribed)


def _vm(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise ValueError(f"no {field} for {pid}")


def processes(server: RunningServer) -> dict[str, int]:
    """The server's process tree by role: master, workers, scheduler, citizen listener."""
    named = {"master": server.pid}
    workers = 0
    for pid in children(server.pid):
        role = side_process(pid)
        if role is None:
            workers += 1
            named[f"worker {workers}"] = pid
        else:
            named[role] = pid
    return named


def outbox_answer(database_url: str, ref: str) -> int | None:
    """The size of the queued GLOBE-R-A-Result for `ref`, once it is there."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            size = conn.execute(
                text(
                    "SELECT length(body) FROM outbox WHERE ref_to_message_id = :r AND action = :a"
                ),
                {"r": ref, "a": RESULT},
            ).scalar()
            return None if size is None else int(size)
    finally:
        engine.dispose()


def run_size(size: int, kind: str, directory: Path) -> dict[str, Any]:
    files = build_pki(directory / "pki")
    client = files.clients[GEMEENTE]
    bsns = request_bsns(size)
    payload = aanvraag_xml(GEMEENTE, f"bench-{size}", bsns=bsns)
    with (
        database(kind, directory) as database_url,
        running_server(directory / "server", files, database_url) as server,
    ):
        accounts, subscribed = seed(database_url, bsns)
        named = processes(server)
        before = {name: _vm(pid, "VmRSS") for name, pid in named.items()}
        message = aanvraag_message(GEMEENTE, datetime.now(UTC))
        started = time.perf_counter()
        response = post_aanvraag(
            f"https://127.0.0.1:{server.port}/berichtenbox/ebms",
            (str(client.certificate), str(client.private_key)),
            files.root_ca,
            payload,
            message,
            timeout=600,
        )
        http_seconds = time.perf_counter() - started
        answer_bytes = outbox_answer(database_url, message[0])
        while answer_bytes is None and time.perf_counter() - started < 600:
            time.sleep(0.02)
            answer_bytes = outbox_answer(database_url, message[0])
        seconds = time.perf_counter() - started
        peak = {name: peak_rss_kib(pid) for name, pid in named.items()}
        if response.status_code != 200 or b"Acknowledgment" not in response.content:
            raise RuntimeError(
                f"no Acknowledgment: HTTP {response.status_code}\n{response.text[:2000]}\n"
                + server.log_tail()
            )
        if answer_bytes is None:
            raise RuntimeError("no answer in the outbox\n" + server.log_tail())
    return {
        "bsns": size,
        "accounts_seeded": accounts,
        "opted_in_seeded": subscribed,
        "request_bytes": len(payload),
        "answer_message_bytes": answer_bytes,
        "seconds_request_to_outbox": seconds,
        "seconds_http_answer": http_seconds,
        "rss_before_kib": before,
        "peak_rss_kib": peak,
        "peak_rss_total_kib": sum(peak.values()),
        "peak_rss_largest_kib": max(peak.values()),
    }


def _mib(kib: int) -> str:
    return f"{kib / 1024:.0f}"


def report(figures: dict[str, Any]) -> str:
    setup = figures["setup"]
    lines = [
        "AbonnementAanvraag bulk (bench/abonnementen_bulk.py)",
        f"database {setup['database']}; {setup['cpus']} CPUs; Python {setup['python']}; "
        "2 workers x 4 threads",
        "",
    ]
    for size in figures["sizes"]:
        peak = size["peak_rss_kib"]
        lines += [
            f"{size['bsns']:,} BSNs ({size['request_bytes'] / 1e6:.1f} MB request, "
            f"{size['accounts_seeded']:,} accounts seeded):",
            f"  request to answer in the outbox: {size['seconds_request_to_outbox']:.2f} s "
            f"(HTTP Acknowledgment after {size['seconds_http_answer']:.2f} s); "
            f"answer message {size['answer_message_bytes'] / 1e6:.2f} MB (gzip payload)",
            f"  peak RSS (VmHWM) in MiB: largest process {_mib(size['peak_rss_largest_kib'])}, "
            f"sum of the tree {_mib(size['peak_rss_total_kib'])}",
            "    "
            + ", ".join(
                f"{name} {_mib(kib)} (before {_mib(size['rss_before_kib'][name])})"
                for name, kib in peak.items()
            ),
        ]
    lines += [
        "",
        "Goal: 1,000,000 BSNs in <= 10 s, peak RSS <= 300 MB. Pages shared after fork count",
        "once per process in the sum.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--sizes",
        default=",".join(str(s) for s in SIZES),
        help="BSNs per request, comma-separated (default 100000,1000000)",
    )
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if any(not 1 <= s <= 1_000_000 for s in sizes):
        parser.error("sizes must be 1 to 1,000,000")
    results = []
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-abonnementen-bulk-") as temp:
            results.append(run_size(size, args.database, Path(temp)))
    figures = {
        "setup": {
            "database": args.database
            if args.database == "sqlite"
            else f"postgresql ({redacted(POSTGRES_URL)})",
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "sizes": results,
    }
    print(report(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; server stopped, temporary files and schema removed", file=sys.stderr)
        sys.exit(130)

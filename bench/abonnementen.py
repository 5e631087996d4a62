"""Throughput and latency of ValidateAbonnementen over mutual TLS, and the receipt sign rate.

Run: `.venv/bin/python bench/abonnementen.py [--seconds N] [--connections N]
[--database sqlite|postgresql] [--json FILE]`.

What it does, all on loopback and in a temporary directory that is removed afterwards:

1. Builds a dev PKI (`init_dev_pki`, organisations from conf/organisations.toml), a config
   (the test suite's `write_config`: 2 gunicorn workers (asyncio front) x 4 threads, ECDSA P-256
   receipt key) and a database: SQLite in the temp dir, or a fresh schema in the PostgreSQL
   of DATABASE_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test) that is dropped
   at the end. Imports conf/accounts.example.csv with the CLI.
2. Measures the sign rate of the receipt key in this process, before the server starts:
   (a) the bare `cryptography` ECDSA P-256/SHA-256 sign of 1 KiB, (b) a whole receipt via
   `ReceiptSigner.from_files(...).signed_xml(Receipt(...))` (the canonical receipt, its digest,
   the signature, KeyInfo with the certificate chain), each for about 2 s.
3. Starts `python -m adapter.cli --config CFG serve` and, per scenario (1 and 250 klanten of
   BSN 999993653 per request, body as `tests.soap_helpers.aanvraag`), runs a load generator in
   other processes: 2 processes x (connections / 2) threads, each thread with its own keep-alive
   `http.client.HTTPSConnection` carrying the client certificate of 00000099000000002000. Every
   thread connects and sends one untimed warm-up request, then all send back to back (closed
   loop, one request in flight per connection) for --seconds. A response counts as good only
   when it is HTTP 200 and holds `isBerichtSturen>true<` once per klant; everything else is an
   error and is printed.
4. Reports per scenario requests/s and klanten/s (good responses / time from start until the
   last response), latency percentiles of good responses, errors, reconnects, and how the load
   spread over the gunicorn workers, measured two ways from /proc: the established connections
   each worker holds a socket of (/proc/net/tcp inodes matched against /proc/PID/fd, sampled
   halfway through), and each worker's CPU time (utime + stime from /proc/PID/stat) over the
   scenario - a proxy for the requests it served. Also the CPU time of the load generator, the
   receipts the server stored, and at the end the server's peak RSS (VmHWM of master + workers;
   pages shared after fork count once per process, so the sum overstates real memory).

The machine may have few cores, which the server and the load generator share: the figures are
for comparing runs on one machine, not a capacity statement. Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from multiprocessing.context import SpawnContext
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from adapter.berichtenbox.abonnementen import ACTION  # noqa: E402
from adapter.pki.devca import PkiFiles  # noqa: E402
from adapter.receipts import Outcome, Receipt, ReceiptSigner  # noqa: E402
from bench._setup import (  # noqa: E402
    GEMEENTE,
    POSTGRES_URL,
    WORKER_SPREAD_EXPLANATION,
    Request,
    RunningServer,
    WorkerShare,
    Workload,
    build_pki,
    count_rows,
    database,
    milliseconds,
    percentile_ms,
    redacted,
    rss_line,
    run_load,
    running_server,
    server_peak_rss,
    split_connections,
    worker_spread_lines,
    worker_spread_notes,
)
from tests.soap_helpers import aanvraag  # noqa: E402

BSN = "999993653"  # active, opted in for GEMEENTE in conf/accounts.example.csv
RECEIVER_OIN = "00000004003214345001"  # the receiver OIN of the dev PKI's receipt certificate
SCENARIOS = (("1 klant", 1), ("250 klanten", 250))
SIGN_SECONDS = 2.0
HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{ACTION}"'}


# --- receipt sign rate ----------------------------------------------------------------------


@dataclass(frozen=True)
class SignRate:
    signs: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.signs / self.seconds

    @property
    def microseconds(self) -> float:
        return self.seconds / self.signs * 1e6


def _rate(operation: Callable[[], object], seconds: float) -> SignRate:
    operation()  # first call outside the clock (lazy imports, caches)
    signs, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(20):
            operation()
        signs += 20
        now = time.perf_counter()
        if now >= deadline:
            return SignRate(signs, now - start)


def sign_rates(files: PkiFiles, body: bytes, seconds: float) -> tuple[SignRate, SignRate]:
    """(bare ECDSA P-256 sign of 1 KiB, full receipt signature), with the dev receipt key."""
    key = serialization.load_pem_private_key(files.receipt_signing_key.read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError("the dev receipt key is expected to be ECDSA")
    data = os.urandom(1024)
    algorithm = ec.ECDSA(hashes.SHA256())
    bare = _rate(lambda: key.sign(data, algorithm), seconds)

    signer = ReceiptSigner.from_files(
        files.receipt_signing_key, files.receipt_signing, files.chain, "ecdsa-sha256"
    )
    body_hash = base64.b64encode(hashlib.sha256(body).digest()).decode()

    def sign_receipt() -> object:
        return signer.signed_xml(
            Receipt(
                request_id=str(uuid.uuid4()),
                receiver_oin=RECEIVER_OIN,
                sender_oin=GEMEENTE,
                received_at=datetime.now(UTC),
                message_ref=None,
                service="ValidateAbonnementen",
                operation="ValidateAbonnementen",
                body_hash=body_hash,
                outcome=Outcome.accept(),
            )
        )

    return bare, _rate(sign_receipt, seconds)


# --- load (the generator itself is bench._setup's) ---------------------------------------------


@dataclass(frozen=True)
class Abonnementen(Workload):
    """The same ValidateAbonnementen request on every connection, every time."""

    body: bytes
    klanten: int

    def request(self, connection: int, n: int) -> Request:
        return Request("/abonnementen", HEADERS, self.body)

    def check(self, request: Request, status: int, data: bytes) -> str | None:
        if status != 200:
            return f"HTTP {status}: {data[:300]!r}"
        answers = data.count(b"isBerichtSturen>true<")
        if answers != self.klanten:
            return f"HTTP 200 with {answers} of {self.klanten} isBerichtSturen true: {data[:300]!r}"
        return None


@dataclass(frozen=True)
class AbonnementenWithAddressing(Abonnementen):
    """As `Abonnementen`, with the WS-Addressing headers Digikoppeling's WUS profile asks for:
    wsa:To, wsa:Action and a wsa:MessageID of its own per request, so every request is new to
    the replay protection (looked up, then claimed with its answer)."""

    run: str = ""  # makes the MessageIDs of one scenario differ from those of another

    def request(self, connection: int, n: int) -> Request:
        message_id = f"urn:uuid:{self.run}-{connection}-{n}".encode()
        return Request("/abonnementen", HEADERS, self.body.replace(MESSAGE_ID, message_id))


MESSAGE_ID = b"@message-id@"  # where AbonnementenWithAddressing puts each request's MessageID


# --- one scenario ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ScenarioResult:
    name: str
    klanten_per_request: int
    connections: int
    seconds: float  # from start until the last response
    requests: int
    good: int
    errors: int
    error_samples: list[tuple[str, int]]
    reconnects: int
    requests_per_second: float
    klanten_per_second: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    workers: list[WorkerShare]
    connections_held_by_no_worker: int
    master_cpu_seconds: float
    server_cpu_seconds: float
    load_generator_cpu_seconds: float
    receipts_stored: int
    requests_sent: int  # warm-up + timed: each should have left one stored receipt
    worker_pids_changed: bool


def run_scenario(
    context: SpawnContext,
    server: RunningServer,
    client_cert: tuple[str, str],
    root: str,
    name: str,
    klanten: int,
    connections: int,
    seconds: float,
) -> ScenarioResult:
    body = aanvraag([BSN] * klanten, GEMEENTE)
    receipts_before = count_rows(server.database_url, "receipts")
    run = run_load(
        context, server, client_cert, root, Abonnementen(body, klanten), connections, seconds
    )
    receipts_after = count_rows(server.database_url, "receipts")

    total = run.total
    good = len(total.latencies)
    ordered = sorted(total.latencies)
    return ScenarioResult(
        name=name,
        klanten_per_request=klanten,
        connections=connections,
        seconds=run.seconds,
        requests=total.requests,
        good=good,
        errors=len(total.errors),
        error_samples=Counter(total.errors).most_common(10),
        reconnects=total.reconnects,
        requests_per_second=good / run.seconds,
        klanten_per_second=good * klanten / run.seconds,
        p50_ms=percentile_ms(ordered, 0.50),
        p90_ms=percentile_ms(ordered, 0.90),
        p99_ms=percentile_ms(ordered, 0.99),
        workers=run.workers,
        connections_held_by_no_worker=run.connections_held_by_no_worker,
        master_cpu_seconds=run.master_cpu_seconds,
        server_cpu_seconds=run.server_cpu_seconds,
        load_generator_cpu_seconds=total.cpu_seconds,
        receipts_stored=receipts_after - receipts_before,
        requests_sent=total.requests + total.warmups,
        worker_pids_changed=run.worker_pids_changed,
    )


# --- report ----------------------------------------------------------------------------------


def report(figures: dict[str, Any]) -> str:
    meta = figures["setup"]
    bare, full = figures["sign"]["bare_ecdsa_p256"], figures["sign"]["full_receipt"]
    lines = [
        "ValidateAbonnementen over mutual TLS (dk-adapter serve)",
        f"  database {meta['database']}, server {meta['workers']} workers x "
        f"{meta['threads']} threads, load {meta['load']}, {meta['seconds']:g} s per scenario",
        f"  {meta['cpus']} CPUs shared by server and load generator, Python {meta['python']}, "
        f"{meta['platform']}",
        "",
        f"Receipt signing (this process, server not started yet, ~{SIGN_SECONDS:g} s each)",
        f"  {'bare ECDSA P-256 sign, 1 KiB, SHA-256':<44}"
        f"{bare['signs_per_second']:>9.0f} signs/s {bare['microseconds_per_sign']:>9.1f} µs/sign",
        f"  {'full receipt (ReceiptSigner.sign)':<44}"
        f"{full['signs_per_second']:>9.0f} signs/s {full['microseconds_per_sign']:>9.1f} µs/sign",
        "",
        "Load (good responses only in req/s, klanten/s and latency)",
        f"  {'scenario':<12}{'requests':>9}{'req/s':>9}{'klanten/s':>11}{'p50 ms':>9}"
        f"{'p90 ms':>9}{'p99 ms':>9}{'errors':>8}{'reconn':>8}",
    ]
    for s in figures["scenarios"]:
        lines.append(
            f"  {s['name']:<12}{s['requests']:>9}{s['requests_per_second']:>9.1f}"
            f"{s['klanten_per_second']:>11.0f}{milliseconds(s['p50_ms']):>9}{milliseconds(s['p90_ms']):>9}"
            f"{milliseconds(s['p99_ms']):>9}{s['errors']:>8}{s['reconnects']:>8}"
        )
    lines += [
        "",
        *WORKER_SPREAD_EXPLANATION,
        f"  {'scenario':<12}{'worker':>9}{'conns':>7}{'CPU s':>8}{'CPU share':>11}",
    ]
    for s in figures["scenarios"]:
        lines += worker_spread_lines(s)
        notes = worker_spread_notes(s)
        lines.append(
            f"  {'':<12}server CPU {s['server_cpu_seconds']:.2f} s = "
            f"{s['server_cpu_seconds'] / s['seconds']:.2f} cores, load generator CPU "
            f"{s['load_generator_cpu_seconds']:.2f} s = "
            f"{s['load_generator_cpu_seconds'] / s['seconds']:.2f} cores; receipts stored "
            f"{s['receipts_stored']} of {s['requests_sent']} requests sent (incl. warm-up)"
        )
        for note in notes:
            lines.append(f"  {'':<12}NOTE: {note}")
    errors = [s for s in figures["scenarios"] if s["errors"]]
    if errors:
        lines += ["", "Errors (most frequent first, at most 10 distinct per scenario)"]
        for s in errors:
            lines.append(f"  {s['name']}: {s['errors']} errors")
            for message, count in s["error_samples"]:
                lines.append(f"    {count:>6} x {message}")
    ratios = figures["ratios"]
    rss = figures["server_peak_rss_kib"]
    lines += [
        "",
        "Ratios",
        f"  full-receipt signs/s / bare ECDSA signs/s      "
        f"{ratios['full_receipt_over_bare_ecdsa']:.3f}",
        f"  requests/s (1 klant) / full-receipt signs/s    "
        f"{ratios['requests_1_klant_over_full_receipt']:.3f}"
        "  (share of one core's receipt-signing capacity;",
        f"  {'':<47}{meta['cpus']} cores, shared with the load generator)",
        "",
        rss_line(rss),
    ]
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0, help="per scenario (default 10)")
    parser.add_argument(
        "--connections", type=int, default=8, help="keep-alive connections in all (default 8)"
    )
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.connections < 1:
        parser.error("--seconds and --connections must be positive")

    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="bench-abonnementen-") as temp:
        directory = Path(temp)
        files = build_pki(directory / "pki")
        gemeente = files.clients[GEMEENTE]
        client_cert = (str(gemeente.certificate), str(gemeente.private_key))
        bare, full = sign_rates(files, aanvraag([BSN], GEMEENTE), SIGN_SECONDS)
        scenarios: list[ScenarioResult] = []
        with (
            database(args.database, directory) as database_url,
            running_server(directory / "server", files, database_url) as server,
        ):
            for name, klanten in SCENARIOS:
                scenarios.append(
                    run_scenario(
                        context,
                        server,
                        client_cert,
                        str(files.root_ca),
                        name,
                        klanten,
                        args.connections,
                        args.seconds,
                    )
                )
            rss = server_peak_rss(server)

    per_process = split_connections(args.connections)
    one = scenarios[0]
    figures: dict[str, Any] = {
        "setup": {
            "database": args.database
            if args.database == "sqlite"
            else f"postgresql ({redacted(POSTGRES_URL)})",
            "workers": 2,
            "threads": 4,
            "load": f"{len(per_process)} processes x "
            f"{'/'.join(str(n) for n in per_process)} connections",
            "connections": args.connections,
            "seconds": args.seconds,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "sign": {
            "bare_ecdsa_p256": _sign_figures(bare),
            "full_receipt": _sign_figures(full),
        },
        "scenarios": [asdict(s) for s in scenarios],
        "ratios": {
            "full_receipt_over_bare_ecdsa": full.per_second / bare.per_second,
            "requests_1_klant_over_full_receipt": one.requests_per_second / full.per_second,
        },
        "server_peak_rss_kib": rss,
    }
    print(report(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n")
        print(f"\nfigures written to {args.json}")
    return 1 if any(s.errors for s in scenarios) else 0


def _sign_figures(rate: SignRate) -> dict[str, float]:
    return {
        "signs": rate.signs,
        "seconds": rate.seconds,
        "signs_per_second": rate.per_second,
        "microseconds_per_sign": rate.microseconds,
    }


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # The finally blocks have stopped the load generator and the server and cleaned up.
        print("interrupted; server stopped, temporary files and schema removed", file=sys.stderr)
        sys.exit(130)

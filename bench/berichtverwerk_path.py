"""CPU per BerichtVerwerk batch (GLOBE-R-BV-Request over ebMS 2.0) inside one process, without
HTTP or TLS.

Run: `.venv/bin/python bench/berichtverwerk_path.py [--batches N] [--berichten N]
[--attachments] [--personal identical|distinct] [--database sqlite|postgresql|both]
[--profile N] [--profiler cprofile|pyinstrument]`.

The app is the one `dk-adapter serve` runs in a worker (`adapter.wiring.build_app` with the
test suite's `write_config`: a dev PKI, the example accounts, SQLite in a temporary directory
or a fresh PostgreSQL schema of DATABASE_URL, dropped afterwards). Each call is a WSGI call
with a prepared environ, as the connection front makes it: a batch that bench/berichtverwerk.py
builds (`Batches.batch`: a new MessageId, BatchID and BerichtIDs, BSN 999993653, and "with
attachments" two 10 KB personal PDFs per Bericht plus one 1 MiB general PDF per batch), the
SOAPAction, and the DER of the Gemeente's client certificate under the key the front sets. So
each call does the full work: identify, MIME, parse, XSD, the CPA checks, the rules, the rows
of the letters and attachments, the blobs, the signed Afleverbevestiging, the outbox entry and
audit, committed. The batches are built before the clock starts; each answer is checked as the
load benchmark checks it (every BerichtID Verwerkt) after the clock stops.

Per database: CPU (`time.process_time`) and wall time per batch and per Bericht over N calls
after a warm-up, then a profile of N further calls: cProfile's top entries by own and by
cumulative CPU time, or pyinstrument's call tree. One thread, no other load: the figures are
the floor of what a batch costs, to compare versions on one machine.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


from adapter.transport.identity import CLIENT_CERT_KEY  # noqa: E402
from bench.berichtverwerk import Batches  # noqa: E402
from bench.wus_path import WsgiApp, worker_app  # noqa: E402

Request = Any  # bench._setup.Request: path, headers, body, expect


def environ_for(request: Request, certificate_der: bytes) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": request.path,
        "QUERY_STRING": "",
        "CONTENT_TYPE": request.headers["Content-Type"],
        "CONTENT_LENGTH": str(len(request.body)),
        "HTTP_SOAPACTION": request.headers["SOAPAction"],
        "wsgi.input": io.BytesIO(request.body),
        CLIENT_CERT_KEY: certificate_der,
    }


Answer = tuple[Request, int, bytes]


def call(app: WsgiApp, request: Request, certificate_der: bytes) -> Answer:
    statuses: list[str] = []
    data = b"".join(
        app(environ_for(request, certificate_der), lambda status, headers: statuses.append(status))
    )
    return request, int(statuses[0].split()[0]) if statuses else 0, data


def checked(workload: Batches, answers: list[Answer]) -> None:
    """Every answer as the load benchmark checks it (after the clock: not the server's work)."""
    for request, status, data in answers:
        problem = workload.check(request, status, data)
        if problem is not None:
            raise RuntimeError(f"unexpected answer: {problem}")


def timed(operations: list[Callable[[], Answer]]) -> tuple[float, float, list[Answer]]:
    """(CPU ms, wall ms) per operation, and the answers."""
    cpu, wall = time.process_time(), time.perf_counter()
    answers = [operation() for operation in operations]
    n = len(operations)
    return (
        (time.process_time() - cpu) / n * 1000,
        (time.perf_counter() - wall) / n * 1000,
        answers,
    )


def cprofile(operations: list[Callable[[], Answer]], top: int) -> tuple[str, list[Answer]]:
    profiler = cProfile.Profile(time.process_time)  # CPU, not waiting for the database
    profiler.enable()
    answers = [operation() for operation in operations]
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue(), answers


def pyinstrument(operations: list[Callable[[], Answer]]) -> tuple[str, list[Answer]]:
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005)
    profiler.start()
    answers = [operation() for operation in operations]
    profiler.stop()
    return str(profiler.output_text(unicode=False, color=False, show_all=False)), answers


def run(kind: str, directory: Path, args: argparse.Namespace) -> None:
    workload = Batches(args.berichten, args.attachments, args.personal == "distinct")
    with worker_app(kind, directory) as (app, certificate_der):

        def prepared(n: int) -> list[Callable[[], Answer]]:
            requests = [workload.batch()[0] for _ in range(n)]
            return [
                lambda r=r: call(app, r, certificate_der)  # type: ignore[misc]
                for r in requests
            ]

        checked(workload, [operation() for operation in prepared(args.warmup)])
        cpu, wall, answers = timed(prepared(args.batches))
        checked(workload, answers)
        per = args.berichten
        print(
            f"== {kind}, batches of {per} Berichten"
            + (f" + attachments (personal {args.personal})" if args.attachments else "")
            + f", {args.batches} batches, one thread"
        )
        print(
            f"  CPU {cpu:8.2f} ms/batch = {cpu / per * 1000:7.1f} us/Bericht"
            f" ({per / cpu * 1000:7.0f} Berichten/s)"
        )
        print(
            f"  wall {wall:7.2f} ms/batch = {wall / per * 1000:7.1f} us/Bericht"
            f" ({per / wall * 1000:7.0f} Berichten/s)"
        )
        if args.profile:
            operations = prepared(args.batches)
            if args.profiler == "pyinstrument":
                text, answers = pyinstrument(operations)
            else:
                text, answers = cprofile(operations, args.profile)
            checked(workload, answers)
            print(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--berichten", type=int, default=1000, help="per batch (default 1000)")
    parser.add_argument("--attachments", action="store_true", help="as the load benchmark's")
    parser.add_argument("--personal", choices=("identical", "distinct"), default="identical")
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--profile", type=int, default=25, help="top N entries (0: no profile)")
    parser.add_argument("--profiler", choices=("cprofile", "pyinstrument"), default="cprofile")
    args = parser.parse_args(argv)
    if args.batches < 1 or args.berichten < 1 or args.warmup < 0:
        parser.error("--batches and --berichten must be positive, --warmup not negative")
    kinds = ("sqlite", "postgresql") if args.database == "both" else (args.database,)
    for kind in kinds:
        with tempfile.TemporaryDirectory(prefix="bench-berichtverwerk-path-") as temp:
            run(kind, Path(temp), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

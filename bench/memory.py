"""Peak memory of one gunicorn worker for large BerichtVerwerk messages (issue 12).

Run: `.venv/bin/python bench/memory.py [--database sqlite|postgresql] [--connections 1,4]
[--messages batch,max] [--repeat N] [--personal distinct|identical] [--budget BYTES]
[--body-timeout SECONDS]`. `--budget` sets `[server] max_body_bytes_in_flight` (0: no budget,
as before it existed; unset: the default, `[limits] max_ebms_message_bytes`);
`--body-timeout` sets `[server] body_timeout_seconds`, which is also how long a request may
wait for the budget before it gets 503 (default 10 s).

The goal it is measured against: a worker's peak RSS stays at or below 150 MiB plus twice the
largest message it has handled, and a 100 MiB message never needs more than 400 MiB.

For every (message, connections) pair it starts a fresh server with ONE worker (bench._setup's
server with `workers = 1`), sends a one-Bericht batch to warm the worker up (imports, schemas,
first connection), reads the worker's VmHWM, then sends `--repeat` messages on each of the
connections at once (one in flight per connection) and reads VmHWM again. VmHWM is the
worker's own peak RSS, read from /proc of the worker process, not of the master.

The messages:
- `batch`: 1000 Berichten, each with two personal PDFs of 10,000 bytes (base64 in the XML),
  and one general PDF of 1 MiB as a MIME part referred to by every Bericht (28.7 MB, the
  batch of bench/berichtverwerk.py);
- `max`: as close to `[limits] max_ebms_message_bytes` (100 MiB) as a legal batch gets: every
  Bericht at the SPEC limits (two personal PDFs of 256,000 bytes, 512,000 in all; three
  general PDFs of 699,050 bytes, just under 2 MiB in all, as MIME parts shared by every
  Bericht), and as many Berichten as fit.
`--personal distinct` (the default) makes every personal PDF different (the BerichtID in its
content stream), so every one is decoded, checked and stored on its own: the worst case.

Every answer must be an Acknowledgment whose receipt lists every BerichtID as Verwerkt.
"""

from __future__ import annotations

import argparse
import http.client
import re
import ssl
import sys
import tempfile
import threading
import time
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from adapter.ebms.mime import build_package  # noqa: E402
from adapter.kit.sender import batch_request  # noqa: E402
from adapter.pki.devca import PkiFiles  # noqa: E402
from bench._setup import (  # noqa: E402
    GEMEENTE,
    Request,
    RunningServer,
    build_pki,
    children,
    database,
    peak_rss_kib,
    running_server,
)
from bench.berichtverwerk import BERICHT_TYPE, CPA_ID, MIJNOVERHEID, PATH, Batches  # noqa: E402
from tests.berichtverwerk_samples import batch_xml, minimal_pdf  # noqa: E402

MIB = 1 << 20
MAX_MESSAGE_BYTES = 100 * MIB  # [limits] max_ebms_message_bytes, its default
GOAL_BASE_MIB = 150
GOAL_CAP_MIB = 400  # for a 100 MiB message
PAYLOAD_CID = f"batch@{GEMEENTE}"
REQUEST_TIMEOUT = 600.0


@dataclass(frozen=True)
class Shape:
    """What one message holds: Berichten, personal PDF sizes, general PDF sizes."""

    name: str
    berichten: int
    personal: tuple[int, ...]
    general: tuple[int, ...]


BATCH = Shape("batch", 1000, (10_000, 10_000), (MIB,))
# At most 2 personal (512,000 bytes together) and 3 general (2 MiB together) per Bericht.
_MAX_PERSONAL = (256_000, 256_000)
_MAX_GENERAL = (699_050, 699_050, 699_050)


def _distinct(pdf: bytes, text: str) -> bytes:
    """`pdf` with `text` written over padding spaces of its content stream (no offset moves)."""
    start = pdf.index(b"stream\n") + len(b"stream\n")
    tag = f"%{text}\n".encode("ascii")
    if pdf[start : start + len(tag)] != b" " * len(tag):
        raise ValueError("the PDF has no room for a tag")
    return pdf[:start] + tag + pdf[start + len(tag) :]


def build_message(shape: Shape, distinct: bool) -> Request:
    """A GLOBE-R-BV-Request of `shape`, new MessageId, BatchID and BerichtIDs."""
    personal = [minimal_pdf(size) for size in shape.personal]
    general = [
        (f"algemeen-{k}@{GEMEENTE}", _distinct(minimal_pdf(size), f"algemeen {k} {uuid.uuid4()}"))
        for k, size in enumerate(shape.general, start=1)
    ]
    ids = [str(uuid.uuid4()) for _ in range(shape.berichten)]
    specs: list[dict[str, Any]] = []
    for bericht_id in ids:
        pdfs = [
            _distinct(pdf, f"{bericht_id} {k}") if distinct else pdf
            for k, pdf in enumerate(personal)
        ]
        specs.append(
            {
                "BerichtID": bericht_id,
                "BerichtType": BERICHT_TYPE,
                "bijlagen": [(pdf, f"Bijlage {k}") for k, pdf in enumerate(pdfs, start=1)],
                "algemene": [(cid, f"Algemeen {k}") for k, (cid, _) in enumerate(general, 1)],
            }
        )
    payload = batch_xml(specs, leverancier=GEMEENTE)
    parts = [(PAYLOAD_CID, "text/xml; charset=UTF-8", payload)]
    parts += [(cid, "application/pdf", pdf) for cid, pdf in general]
    message_id, soap = batch_request(
        GEMEENTE, MIJNOVERHEID, CPA_ID, PAYLOAD_CID, [cid for cid, _ in general], datetime.now(UTC)
    )
    content_type, body = build_package(soap, parts)
    headers = {"Content-Type": content_type, "SOAPAction": '"ebXML"'}
    return Request(PATH, headers, body, " ".join([message_id, *ids]))


def largest_legal_shape(distinct: bool, limit: int = MAX_MESSAGE_BYTES) -> Shape:
    """The `max` shape: as many Berichten at the attachment limits as fit under `limit`."""
    probe = build_message(Shape("max", 10, _MAX_PERSONAL, _MAX_GENERAL), distinct)
    one = build_message(Shape("max", 11, _MAX_PERSONAL, _MAX_GENERAL), distinct)
    per_bericht = len(one.body) - len(probe.body)
    fixed = len(probe.body) - 10 * per_bericht
    return Shape("max", (limit - fixed) // per_bericht, _MAX_PERSONAL, _MAX_GENERAL)


# --- the server ------------------------------------------------------------------------------


def one_worker_server(
    directory: Path,
    files: PkiFiles,
    database_url: str,
    budget: int | None,
    body_timeout: float | None,
) -> AbstractContextManager[RunningServer]:
    """bench._setup's server, but with one gunicorn worker (4 threads) and the scheduler."""

    def adjust(text: str) -> str:
        text = re.sub(r"(?m)^workers = \d+$", "workers = 1", text)
        if budget is not None:
            text = text.replace("[server]\n", f"[server]\nmax_body_bytes_in_flight = {budget}\n", 1)
        if body_timeout is not None:
            text = text.replace(
                "[server]\n", f"[server]\nbody_timeout_seconds = {body_timeout}\n", 1
            )
        return text

    return running_server(directory, files, database_url, adjust=adjust)


def the_worker(server: RunningServer) -> int:
    """The gunicorn worker: a child forked from the master, so with the master's command line
    (the scheduler and the citizen pages are processes of their own)."""
    master = Path(f"/proc/{server.pid}/cmdline").read_bytes()
    workers = [
        pid for pid in children(server.pid) if Path(f"/proc/{pid}/cmdline").read_bytes() == master
    ]
    if len(workers) != 1:
        raise RuntimeError(f"expected one worker, found {workers}")
    return workers[0]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError(f"no VmRSS for {pid}")


def _connect(files: PkiFiles, port: int) -> http.client.HTTPSConnection:
    client = files.clients[GEMEENTE]
    context = ssl.create_default_context(cafile=str(files.root_ca))
    context.load_cert_chain(str(client.certificate), str(client.private_key))
    return http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=REQUEST_TIMEOUT)


def send(conn: http.client.HTTPSConnection, request: Request) -> str | None:
    """None when the answer acknowledges the message with every Bericht Verwerkt."""
    conn.request("POST", request.path, body=request.body, headers=request.headers)
    response = conn.getresponse()
    return Batches(1, True, True).check(request, response.status, response.read())


@dataclass
class Measurement:
    message: str
    message_bytes: int
    connections: int
    messages: int
    errors: list[str]
    hwm_before_kib: int
    hwm_after_kib: int
    rss_after_kib: int
    seconds: float

    @property
    def goal_mib(self) -> float:
        return GOAL_BASE_MIB + 2 * self.message_bytes / MIB

    def line(self) -> str:
        after = self.hwm_after_kib / 1024
        cap = f", cap {GOAL_CAP_MIB} MiB" if self.message_bytes > 90 * MIB else ""
        return (
            f"{self.message:>5} {self.message_bytes / MIB:6.1f} MiB x {self.messages:2d} on "
            f"{self.connections} conn: worker VmHWM {self.hwm_before_kib / 1024:5.0f} -> "
            f"{after:5.0f} MiB (RSS after {self.rss_after_kib / 1024:4.0f}); goal "
            f"{self.goal_mib:.0f} MiB{cap}: {after / self.goal_mib:.2f} x goal; "
            f"{self.seconds:.1f} s, {len(self.errors)} errors"
        )


def measure(
    files: PkiFiles,
    kind: str,
    database_kind: str,
    shape: Shape,
    connections: int,
    repeat: int,
    distinct: bool,
    budget: int | None,
    body_timeout: float | None,
) -> Measurement:
    requests = [[build_message(shape, distinct) for _ in range(repeat)] for _ in range(connections)]
    size = max(len(r.body) for rs in requests for r in rs)
    with (
        tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp,
        database(database_kind, Path(tmp)) as url,
        one_worker_server(Path(tmp), files, url, budget, body_timeout) as server,
    ):
        worker = the_worker(server)
        conns = [_connect(files, server.port) for _ in range(connections)]
        errors: list[str] = []
        for conn in conns:  # warm-up: imports, schemas, the connection itself
            problem = send(conn, build_message(Shape("warm", 1, (10_000,), ()), distinct))
            if problem:
                errors.append(f"warm-up: {problem}")
        before = peak_rss_kib(worker)

        def run(conn: http.client.HTTPSConnection, mine: list[Request]) -> None:
            for request in mine:
                try:
                    problem = send(conn, request)
                except (OSError, http.client.HTTPException) as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                if problem:
                    errors.append(problem)

        began = time.monotonic()
        threads = [
            threading.Thread(target=run, args=(conn, mine))
            for conn, mine in zip(conns, requests, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.monotonic() - began
        after, rss = peak_rss_kib(worker), rss_kib(worker)
        for conn in conns:
            conn.close()
        if errors:
            print(server.log_tail(20), file=sys.stderr)
    return Measurement(
        kind, size, connections, connections * repeat, errors, before, after, rss, seconds
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--connections", default="1,4", help="comma-separated, e.g. 1,4")
    parser.add_argument("--messages", default="batch,max", help="batch and/or max")
    parser.add_argument("--repeat", type=int, default=2, help="messages per connection")
    parser.add_argument("--personal", choices=("distinct", "identical"), default="distinct")
    parser.add_argument("--budget", type=int, default=None, help="max_body_bytes_in_flight")
    parser.add_argument("--body-timeout", type=float, default=None, help="body_timeout_seconds")
    args = parser.parse_args(argv)
    distinct = args.personal == "distinct"
    shapes = {"batch": BATCH, "max": largest_legal_shape(distinct)}
    print(
        f"max: {shapes['max'].berichten} Berichten x 2 x 256,000-byte personal PDFs, "
        f"3 x 699,050-byte general PDFs (personal {args.personal}, {args.database}, "
        f"max_body_bytes_in_flight {'default' if args.budget is None else args.budget}, "
        f"body_timeout_seconds {args.body_timeout or 'default'})"
    )
    failed = False
    with tempfile.TemporaryDirectory(prefix="bench-memory-pki-") as pki_dir:
        files = build_pki(Path(pki_dir))
        for kind in args.messages.split(","):
            for connections in (int(c) for c in args.connections.split(",")):
                result = measure(
                    files,
                    kind,
                    args.database,
                    shapes[kind],
                    connections,
                    args.repeat,
                    distinct,
                    args.budget,
                    args.body_timeout,
                )
                print(result.line(), flush=True)
                for error in sorted(set(result.errors)):
                    print(f"    error: {error[:300]}")
                failed = failed or bool(result.errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

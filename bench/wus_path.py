"""CPU per ValidateAbonnementen request inside one process, without HTTP or TLS.

Run: `.venv/bin/python bench/wus_path.py [--requests N] [--database sqlite|postgresql|both]
[--profile N] [--klanten N]`.

The app is the one `dk-adapter serve` runs in a worker (`adapter.wiring.build_app` with the
test suite's `write_config`: a dev PKI, the example accounts, SQLite in a temporary directory
or a fresh PostgreSQL schema of DATABASE_URL, dropped afterwards). Each request is a WSGI call
with a prepared environ, as the connection front makes it: the body of
`tests.soap_helpers.aanvraag`, the SOAPAction, and the DER of the Gemeente's client
certificate under the key the front sets. So each call does the full work: identify, parse,
XSD, the accounts lookup, a signed receipt, its row and audit entry, committed.

Per database: CPU (`time.process_time`) and wall time per request over N calls, after a
warm-up, beside bare lxml's parse + answer of the same body (`bench.baselines.bare_lxml.app`)
in the same process, and their ratio; then a cProfile of N/2 further calls, the top entries
by own CPU time and by cumulative CPU time. One thread, no other load: the figures are the floor of
what a request costs, to compare versions on one machine.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives.serialization import Encoding  # noqa: E402

from adapter.berichtenbox.abonnementen import ACTION  # noqa: E402
from adapter.config import Config, load_config  # noqa: E402
from adapter.logs import configure_logging  # noqa: E402
from adapter.transport.identity import CLIENT_CERT_KEY  # noqa: E402
from adapter.transport.worker import tune_collector  # noqa: E402
from adapter.wiring import build_app  # noqa: E402
from bench._setup import GEMEENTE, _config_pki, build_pki, database  # noqa: E402
from bench.baselines import bare_lxml  # noqa: E402
from tests.conftest import free_port, import_example_accounts, write_config  # noqa: E402
from tests.soap_helpers import aanvraag  # noqa: E402

BSN = "999993653"  # active, opted in for GEMEENTE in conf/accounts.example.csv
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def environ_for(body: bytes, certificate_der: bytes) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/abonnementen",
        "QUERY_STRING": "",
        "CONTENT_TYPE": "text/xml; charset=utf-8",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_SOAPACTION": f'"{ACTION}"',
        "wsgi.input": io.BytesIO(body),
        CLIENT_CERT_KEY: certificate_der,
    }


def quiet_logging(config: Config) -> None:
    """Logging as `serve` configures it (each request's line is formatted), written nowhere."""
    configure_logging(config.logging)
    handler = logging.getLogger().handlers[0]
    if isinstance(handler, logging.StreamHandler):
        handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 - open for the process


def call(app: WsgiApp, body: bytes, certificate_der: bytes, klanten: int) -> None:
    statuses: list[str] = []
    data = b"".join(
        app(environ_for(body, certificate_der), lambda status, headers: statuses.append(status))
    )
    if statuses != ["200 OK"] or data.count(b"isBerichtSturen>true<") != klanten:
        raise RuntimeError(f"unexpected answer {statuses}: {data[:400]!r}")


def per_request(operation: Callable[[], None], requests: int) -> tuple[float, float]:
    """(CPU ms, wall ms) per call of `operation`, over `requests` calls."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(requests):
        operation()
    return (
        (time.process_time() - cpu) / requests * 1000,
        (time.perf_counter() - wall) / requests * 1000,
    )


def profile(operation: Callable[[], None], requests: int, top: int) -> str:
    profiler = cProfile.Profile(time.process_time)  # CPU, not waiting for the database
    profiler.enable()
    for _ in range(requests):
        operation()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


@contextmanager
def worker_app(kind: str, directory: Path) -> Iterator[tuple[Any, bytes]]:
    """The app a worker of `dk-adapter serve` runs, on a new database of `kind`, and the DER of
    the Gemeente's client certificate, as the front hands it over; disposed afterwards."""
    files = build_pki(directory / "pki")
    certificate_der = x509.load_pem_x509_certificate(
        files.clients[GEMEENTE].certificate.read_bytes()
    ).public_bytes(Encoding.DER)
    with database(kind, directory) as database_url:
        config_file = write_config(
            directory / "server", _config_pki(files), database_url, free_port()
        )
        import_example_accounts(config_file, database_url)
        config = load_config(config_file, {**os.environ, "DATABASE_URL": database_url})
        quiet_logging(config)
        app = build_app(config)
        tune_collector()  # as the worker does before it serves
        try:
            yield app, certificate_der
        finally:
            app.database.dispose()


def run(kind: str, directory: Path, args: argparse.Namespace) -> None:
    body = aanvraag([BSN] * args.klanten, GEMEENTE)
    with worker_app(kind, directory) as (app, certificate_der):

        def adapter() -> None:
            call(app, body, certificate_der, args.klanten)

        def bare() -> None:
            call(bare_lxml.app, body, certificate_der, args.klanten)

        for _ in range(args.warmup):
            adapter()
            bare()
        adapter_cpu, adapter_wall = per_request(adapter, args.requests)
        bare_cpu, bare_wall = per_request(bare, args.requests)
        print(f"== {kind}, {args.klanten} Klant(en), {args.requests} requests, one thread")
        print(f"  adapter   CPU {adapter_cpu:7.3f} ms/request  wall {adapter_wall:7.3f} ms")
        print(f"  bare lxml CPU {bare_cpu:7.3f} ms/request  wall {bare_wall:7.3f} ms")
        print(
            f"  bare / adapter: CPU {bare_cpu / adapter_cpu:.3f}x, "
            f"wall {bare_wall / adapter_wall:.3f}x"
        )
        if args.profile:
            print(profile(adapter, args.requests // 2, args.profile))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--klanten", type=int, default=1)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--profile", type=int, default=20, help="top N entries (0: no profile)")
    args = parser.parse_args(argv)
    kinds = ("sqlite", "postgresql") if args.database == "both" else (args.database,)
    for kind in kinds:
        with tempfile.TemporaryDirectory(prefix="bench-wus-path-") as temp:
            run(kind, Path(temp), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Throughput and latency of Lopende Zaken status updates over mutual TLS (WUS and StUF), and
whether every new status left exactly one status row and one notification.

Run: `.venv/bin/python bench/lopende_zaken.py [--seconds N] [--connections N] [--pool N]
[--database sqlite|postgresql] [--json FILE] [--profile STEM]`.

What it does, all on loopback and in a temporary directory that is removed afterwards:

1. Builds the dev PKI, config, database and server as bench/abonnementen.py does (bench._setup:
   2 gunicorn workers (asyncio front) x 4 threads; SQLite in the temp dir, or a fresh schema in the
   PostgreSQL of DATABASE_URL that is dropped at the end). Every request carries the client
   certificate of Gemeente Voorbeeldstad (00000099000000002000), which has the LopendeZaken
   grant.
2. Setup, untimed: each connection of the first scenario creates its own pool of --pool zaken
   (default 200; identificatie LZB-<connection>-<i>, initiator BSN 999993653, first status
   "Aanvraag ontvangen" at 2026-01-10 09:00) with raw-SOAP ZaakAanleveren over its own
   keep-alive connection, before its warm-up request.
3. Three scenarios, each for --seconds, load generator in other processes (bench._setup:
   2 processes x (connections / 2) threads, one keep-alive `http.client.HTTPSConnection` per
   thread, one untimed warm-up request per connection, then closed loop):
   a. WUS StatusAanleveren with a new status each time; good = HTTP 200 and resultaat
      StatusToegevoegd for the identificatie sent.
   b. StUF zakLk01 (tests/data/stuf/zakLk01.xml with identificatie, referentienummer,
      status omschrijving and heeft/datumStatusGezet replaced) with a new status each time;
      good = HTTP 200 and a Bv01 whose crossRefnummer is the referentienummer sent.
   c. WUS StatusAanleveren re-sending a status stored in a or b; good = HTTP 200 and
      resultaat StatusAlBekend.
   Request k of a connection (numbered over a and b together) goes to zaak k mod pool of that
   connection, with omschrijving "Status k" and datumStatusGezet 2026-01-15 10:00:00 + k
   seconds, Dutch local time without an offset (the same in WUS and StUF): strictly increasing
   per zaak, so every one of them is the zaak's new current status. Scenario c re-sends
   request k = n mod (requests of a and b) of its connection. (The moments stay clear of the
   2026-03-29 DST change below 6 million requests per connection.)
4. Reports per scenario the good responses per second, latency percentiles of good responses,
   errors (every response is checked; the most frequent are printed), reconnects and the
   spread over the gunicorn workers (as bench/abonnementen.py). Then the rows added to
   zaak_statussen, notifications and receipts per phase (setup + warm-up, timed) against what
   the requests should have left: one status row and one notification per new status (setup
   zaak, StatusToegevoegd, new StUF status), none for a re-send; one receipt per request. And
   the server's peak RSS (VmHWM of master + workers; pages shared after fork count once per
   process).

With --profile, py-spy samples the server's process tree during the timed window of scenarios
a and b and the top frames go to STEM-<scenario>-top.txt (as bench/run.py's profiles).

Exit status 1 when any request failed or the zaak_statussen / notifications rows do not match.
The machine may have few cores, which the server and the load generator share: the figures are
for comparing runs on one machine, not a capacity statement. Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import re
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from multiprocessing.context import SpawnContext
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._setup import (  # noqa: E402
    GEMEENTE,
    POSTGRES_URL,
    WORKER_SPREAD_EXPLANATION,
    Request,
    RunningServer,
    WorkerShare,
    Workload,
    build_pki,
    count_rows_of,
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
from bench.run import _profile_text, _py_spy, top_frames  # noqa: E402

NS = "urn:mijnoverheid-adapter:lopende-zaken:1"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
BSN = "999993653"  # passes the elfproef; the zaak's initiator
WUS_PATH, STUF_PATH = "/lopende-zaken", "/lopende-zaken/stuf"
STUF_ACTION = "http://www.egem.nl/StUF/sector/zkn/0310/zakLk01"
FIRST_STATUS = ("Aanvraag ontvangen", "2026-01-10T09:00:00")  # given to each zaak at setup
BASE_MOMENT = datetime(2026, 1, 15, 10, 0, 0)  # naive: Dutch local time, as sent
TABLES = ("zaken", "zaak_statussen", "notifications", "receipts")
CHECKED = ("zaak_statussen", "notifications")  # the tables the exit status depends on
ROW_COLUMNS = ("zaak_statussen", "notifications", "receipts", "zaken")


def _headers(action: str) -> dict[str, str]:
    return {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'}


WUS_HEADERS = {op: _headers(f"{NS}/{op}") for op in ("ZaakAanleveren", "StatusAanleveren")}
STUF_HEADERS = _headers(STUF_ACTION)


def _envelope(payload: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<s:Envelope xmlns:s="{SOAP}"><s:Header/><s:Body>{payload}</s:Body></s:Envelope>'
    ).encode()


def _stuf_template() -> str:
    """The body of tests/data/stuf/zakLk01.xml as a str.format template."""
    sample = (ROOT / "tests" / "data" / "stuf" / "zakLk01.xml").read_text(encoding="utf-8")
    body = sample[sample.index("<zakLk01") :].replace("{", "{{").replace("}", "}}")
    for old, new in (
        ("190010457", "{identificatie}"),
        ("5b8f2c1e-7d3a-4e9b-a6f0-3c2d1e0f9a8b", "{referentie}"),
        (
            "<omschrijving>Aanvraag ontvangen</omschrijving>",
            "<omschrijving>{status}</omschrijving>",
        ),
        (
            "<datumStatusGezet>20260115093000</datumStatusGezet>",
            "<datumStatusGezet>{gezet}</datumStatusGezet>",
        ),
    ):
        if old not in body:
            raise ValueError(f"tests/data/stuf/zakLk01.xml no longer holds {old!r}")
        body = body.replace(old, new)
    return body


STUF_TEMPLATE = _stuf_template()


# --- what the connections send ----------------------------------------------------------------

_BODY = re.compile(rb"<(?:[\w.-]+:)?Body[^>]*>(.*)</(?:[\w.-]+:)?Body>", re.S)
_FAULTSTRING = re.compile(rb"<faultstring[^>]*>([^<]*)<")
_STUF_CODE = re.compile(rb"<(?:[\w.-]+:)?code>([^<]*)<")


def _field(body: bytes, name: str) -> str | None:
    found = re.search(rb"<(?:[\w.-]+:)?" + name.encode() + rb">([^<]*)<", body)
    return found.group(1).decode(errors="replace") if found else None


def _fault(status: int, data: bytes) -> str:
    """A short, request-independent description of a failed answer (errors are counted by it)."""
    faultstring = _FAULTSTRING.search(data)
    if faultstring is None:
        return f"HTTP {status}: {data[:200]!r}"
    text = faultstring.group(1).decode(errors="replace")
    code = _STUF_CODE.search(data)  # a StUF Fo01 names its code in the detail
    return f"HTTP {status}: {text}" + (f" ({code.group(1).decode()})" if code else "")


@dataclass(frozen=True)
class Scenario:
    key: str
    name: str
    unit: str  # what one good response is
    new_statuses: bool  # does every good response add a status?


SCENARIOS = (
    Scenario("wus", "a WUS new status", "status updates/s", True),
    Scenario("stuf", "b StUF zakLk01", "kennisgevingen/s", True),
    Scenario("resend", "c WUS re-send", "re-sends/s", False),
)


@dataclass(frozen=True)
class LopendeZaken(Workload):
    """Status updates on each connection's own pool of zaken (see the module docstring)."""

    scenario: str  # Scenario.key
    pool: int
    offsets: tuple[int, ...]  # per connection: requests it sent in earlier new-status scenarios
    create_pool: bool

    @staticmethod
    def identificatie(connection: int, i: int) -> str:
        return f"LZB-{connection:03d}-{i:05d}"

    def setup(self, connection: int) -> list[Request]:
        if not self.create_pool:
            return []
        omschrijving, moment = FIRST_STATUS
        requests = []
        for i in range(self.pool):
            identificatie = self.identificatie(connection, i)
            payload = (
                f'<ZaakAanleveren xmlns="{NS}"><zaak>'
                f"<identificatie>{identificatie}</identificatie>"
                "<omschrijving>Aanvraag omgevingsvergunning Dorpsstraat 1</omschrijving>"
                "<toelichting>Verbouwing van de woning</toelichting>"
                "<zaaktype><code>B1210</code><omschrijving>Omgevingsvergunning</omschrijving>"
                "</zaaktype><startdatum>2026-01-10</startdatum>"
                "<einddatumGepland>2026-03-01</einddatumGepland>"
                "<verwijzing>https://zaken.voorbeeldstad.example/zaak/"
                f"{identificatie}</verwijzing><initiator><bsn>{BSN}</bsn></initiator>"
                f"<status><omschrijving>{omschrijving}</omschrijving>"
                f"<datumStatusGezet>{moment}</datumStatusGezet></status>"
                "</zaak></ZaakAanleveren>"
            )
            requests.append(
                Request(
                    WUS_PATH,
                    WUS_HEADERS["ZaakAanleveren"],
                    _envelope(payload),
                    f"Aangemaakt {identificatie}",
                )
            )
        return requests

    def _status(self, connection: int, k: int, expect: str) -> Request:
        identificatie = self.identificatie(connection, k % self.pool)
        moment = (BASE_MOMENT + timedelta(seconds=k)).isoformat()
        payload = (
            f'<StatusAanleveren xmlns="{NS}"><identificatie>{identificatie}</identificatie>'
            f"<status><omschrijving>Status {k}</omschrijving>"
            f"<datumStatusGezet>{moment}</datumStatusGezet></status></StatusAanleveren>"
        )
        return Request(
            WUS_PATH,
            WUS_HEADERS["StatusAanleveren"],
            _envelope(payload),
            f"{expect} {identificatie}",
        )

    def _kennisgeving(self, connection: int, k: int) -> Request:
        referentie = str(uuid.uuid4())
        body = STUF_TEMPLATE.format(
            identificatie=self.identificatie(connection, k % self.pool),
            referentie=referentie,
            status=f"Status {k}",
            gezet=(BASE_MOMENT + timedelta(seconds=k)).strftime("%Y%m%d%H%M%S"),
        )
        return Request(STUF_PATH, STUF_HEADERS, _envelope(body), f"Bv01 {referentie}")

    def request(self, connection: int, n: int) -> Request:
        offset = self.offsets[connection]
        if self.scenario == "wus":
            return self._status(connection, offset + n, "StatusToegevoegd")
        if self.scenario == "stuf":
            return self._kennisgeving(connection, offset + n)
        return self._status(connection, n % offset if offset else 0, "StatusAlBekend")

    def check(self, request: Request, status: int, data: bytes) -> str | None:
        if status != 200:
            return _fault(status, data)
        found = _BODY.search(data)
        body = found.group(1) if found else b""
        expected, reference = request.expect.split(" ", 1)
        if expected == "Bv01":
            berichtcode = _field(body, "berichtcode")
            if berichtcode != "Bv01":
                return f"HTTP 200 with berichtcode {berichtcode} instead of Bv01: {body[:200]!r}"
            if _field(body, "crossRefnummer") != reference:
                return "HTTP 200, Bv01 with a crossRefnummer that is not the referentienummer"
            return None
        resultaat = _field(body, "resultaat")
        if resultaat != expected:
            return f"HTTP 200 with resultaat {resultaat} instead of {expected}"
        if _field(body, "identificatie") != reference:
            return "HTTP 200, answer about another identificatie"
        return None


# --- one scenario ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ScenarioResult:
    key: str
    name: str
    unit: str
    connections: int
    seconds: float  # from start until the last response
    requests: int
    good: int
    errors: int  # warm-up and timed
    error_samples: list[tuple[str, int]]
    reconnects: int
    good_per_second: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    workers: list[WorkerShare]
    connections_held_by_no_worker: int
    master_cpu_seconds: float
    server_cpu_seconds: float
    load_generator_cpu_seconds: float
    worker_pids_changed: bool
    prepare_seconds: float  # load processes started until all set up and warm
    setup_requests: int
    setup_errors: int
    setup_error_samples: list[tuple[str, int]]
    warmups: int
    warmups_good: int
    # Rows added, per phase ("prepare": setup + warm-up; "timed"), and what was expected.
    rows: dict[str, dict[str, int]]
    expected: dict[str, dict[str, int]]


def _expected(new_statuses: int, zaken: int, requests: int) -> dict[str, int]:
    return {
        "zaken": zaken,
        "zaak_statussen": new_statuses,
        "notifications": new_statuses,
        "receipts": requests,
    }


def _difference(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {table: after[table] - before[table] for table in TABLES}


def run_scenario(
    context: SpawnContext,
    server: RunningServer,
    client_cert: tuple[str, str],
    root: str,
    scenario: Scenario,
    workload: LopendeZaken,
    connections: int,
    seconds: float,
    profile: Path | None = None,
) -> tuple[ScenarioResult, dict[int, int]]:
    """The result, and per connection the requests it sent (warm-up included); with
    `profile`, py-spy's top frames of the timed window are written there."""
    before = count_rows_of(server.database_url, *TABLES)
    ready: dict[str, int] = {}
    spy: list[subprocess.Popen[bytes]] = []
    collapsed = profile.with_suffix(".collapsed") if profile else None

    def at_ready() -> None:
        ready.update(count_rows_of(server.database_url, *TABLES))
        if collapsed is not None:
            spy.append(_py_spy(server.pid, seconds, collapsed, "raw"))

    run = run_load(
        context, server, client_cert, root, workload, connections, seconds, at_ready=at_ready
    )
    after = count_rows_of(server.database_url, *TABLES)
    if profile is not None and collapsed is not None and spy:
        spy[0].wait(timeout=seconds + 60)
        figures = top_frames(collapsed.read_text())
        collapsed.unlink()  # megabytes of raw stacks; the top frames stay
        profile.write_text(_profile_text(f"Lopende Zaken {scenario.name}", figures))

    total = run.total
    good = len(total.latencies)
    ordered = sorted(total.latencies)
    setup_good = total.setup_requests - len(total.setup_errors)
    new = scenario.new_statuses
    result = ScenarioResult(
        key=scenario.key,
        name=scenario.name,
        unit=scenario.unit,
        connections=connections,
        seconds=run.seconds,
        requests=total.requests,
        good=good,
        errors=len(total.errors),
        error_samples=Counter(total.errors).most_common(10),
        reconnects=total.reconnects,
        good_per_second=good / run.seconds,
        p50_ms=percentile_ms(ordered, 0.50),
        p90_ms=percentile_ms(ordered, 0.90),
        p99_ms=percentile_ms(ordered, 0.99),
        workers=run.workers,
        connections_held_by_no_worker=run.connections_held_by_no_worker,
        master_cpu_seconds=run.master_cpu_seconds,
        server_cpu_seconds=run.server_cpu_seconds,
        load_generator_cpu_seconds=total.cpu_seconds,
        worker_pids_changed=run.worker_pids_changed,
        prepare_seconds=run.prepare_seconds,
        setup_requests=total.setup_requests,
        setup_errors=len(total.setup_errors),
        setup_error_samples=Counter(total.setup_errors).most_common(10),
        warmups=total.warmups,
        warmups_good=total.warmups_good,
        rows={"prepare": _difference(ready, before), "timed": _difference(after, ready)},
        expected={
            "prepare": _expected(
                setup_good + (total.warmups_good if new else 0),
                setup_good,
                total.setup_requests + total.warmups,
            ),
            "timed": _expected(good if new else 0, 0, total.requests),
        },
    )
    return result, total.sent


# --- report ----------------------------------------------------------------------------------

W = 18  # width of the scenario column


def _rows_ok(rows: dict[str, int], expected: dict[str, int], tables: tuple[str, ...]) -> bool:
    return all(rows[t] == expected[t] for t in tables)


def _row_lines(label: str, sent: int, rows: dict[str, int], expected: dict[str, int]) -> str:
    cells = "".join(
        f"{f'{rows[t]}/{expected[t]}' + (' ' if rows[t] == expected[t] else '!'):>16}"
        for t in ROW_COLUMNS
    )
    ok = "ok" if _rows_ok(rows, expected, CHECKED) else "MISMATCH"
    return f"  {label:<20}{sent:>9}{cells}  {ok}"


def report(figures: dict[str, Any]) -> str:
    meta = figures["setup"]
    scenarios = figures["scenarios"]
    first = scenarios[0]
    lines = [
        "Lopende Zaken status updates over mutual TLS (dk-adapter serve)",
        f"  database {meta['database']}, server {meta['workers']} workers x "
        f"{meta['threads']} threads, load {meta['load']}, {meta['seconds']:g} s per scenario",
        f"  {meta['cpus']} CPUs shared by server and load generator, Python {meta['python']}, "
        f"{meta['platform']}",
        "",
        f"Setup (untimed): {first['setup_requests']} ZaakAanleveren ({meta['pool']} zaken per "
        f"connection, {first['setup_errors']} errors) and {first['warmups']} warm-ups in "
        f"{first['prepare_seconds']:.1f} s, including starting the load processes",
        "",
        "Load (good responses only in rate and latency)",
        f"  {'scenario':<{W}}{'requests':>9}{'good/s':>9}  {'unit':<17}{'p50 ms':>8}"
        f"{'p90 ms':>8}{'p99 ms':>8}{'errors':>8}{'reconn':>8}",
    ]
    for s in scenarios:
        lines.append(
            f"  {s['name']:<{W}}{s['requests']:>9}{s['good_per_second']:>9.1f}  {s['unit']:<17}"
            f"{milliseconds(s['p50_ms']):>8}{milliseconds(s['p90_ms']):>8}"
            f"{milliseconds(s['p99_ms']):>8}{s['errors']:>8}{s['reconnects']:>8}"
        )
    lines += [
        "",
        *WORKER_SPREAD_EXPLANATION,
        f"  {'scenario':<{W}}{'worker':>9}{'conns':>7}{'CPU s':>8}{'CPU share':>11}",
    ]
    for s in scenarios:
        lines += worker_spread_lines(s, W)
        lines.append(
            f"  {'':<{W}}server CPU {s['server_cpu_seconds']:.2f} s = "
            f"{s['server_cpu_seconds'] / s['seconds']:.2f} cores, load generator CPU "
            f"{s['load_generator_cpu_seconds']:.2f} s = "
            f"{s['load_generator_cpu_seconds'] / s['seconds']:.2f} cores"
        )
        lines += [f"  {'':<{W}}NOTE: {note}" for note in worker_spread_notes(s)]
    failed = [s for s in scenarios if s["errors"] or s["setup_errors"]]
    if failed:
        lines += ["", "Errors (most frequent first, at most 10 distinct per scenario)"]
        for s in failed:
            if s["setup_errors"]:
                lines.append(f"  {s['name']} setup: {s['setup_errors']} errors")
                lines += [f"    {n:>6} x {m}" for m, n in s["setup_error_samples"]]
            if s["errors"]:
                lines.append(f"  {s['name']}: {s['errors']} errors (warm-up and timed)")
                lines += [f"    {n:>6} x {m}" for m, n in s["error_samples"]]
    lines += [
        "",
        "Rows added / expected from the requests sent ('!' marks a difference). A new status",
        "(setup zaak, StatusToegevoegd, new StUF status) = 1 zaak_statussen row + 1",
        "notification; a re-send = 0; every request = 1 receipt. ok / MISMATCH judges",
        "zaak_statussen and notifications.",
        f"  {'phase':<20}{'requests':>9}" + "".join(f"{t:>15} " for t in ROW_COLUMNS),
    ]
    for s in scenarios:
        letter = s["name"].split()[0]
        prepare = "setup + warm-up" if s["setup_requests"] else "warm-up"
        for label, sent, phase in (
            (f"{letter} {prepare}", s["setup_requests"] + s["warmups"], "prepare"),
            (f"{letter} timed", s["requests"], "timed"),
        ):
            lines.append(_row_lines(label, sent, s["rows"][phase], s["expected"][phase]))
    totals = figures["totals"]
    lines += [
        _row_lines("total", totals["requests"], totals["rows"], totals["expected"]),
        "",
        rss_line(figures["server_peak_rss_kib"]),
    ]
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0, help="per scenario (default 10)")
    parser.add_argument(
        "--connections", type=int, default=8, help="keep-alive connections in all (default 8)"
    )
    parser.add_argument("--pool", type=int, default=200, help="zaken per connection (default 200)")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--profile", help="py-spy scenarios a and b into PROFILE-<scenario>-top.txt"
    )
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.connections < 1 or args.pool < 1:
        parser.error("--seconds, --connections and --pool must be positive")

    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="bench-lopende-zaken-") as temp:
        directory = Path(temp)
        files = build_pki(directory / "pki")
        gemeente = files.clients[GEMEENTE]
        client_cert = (str(gemeente.certificate), str(gemeente.private_key))
        scenarios: list[ScenarioResult] = []
        offsets = [0] * args.connections  # per connection: new-status requests sent so far
        with (
            database(args.database, directory) as database_url,
            running_server(directory / "server", files, database_url) as server,
        ):
            for i, scenario in enumerate(SCENARIOS):
                workload = LopendeZaken(scenario.key, args.pool, tuple(offsets), i == 0)
                result, sent = run_scenario(
                    context,
                    server,
                    client_cert,
                    str(files.root_ca),
                    scenario,
                    workload,
                    args.connections,
                    args.seconds,
                    Path(f"{args.profile}-{scenario.key}-top.txt")
                    if args.profile and scenario.new_statuses
                    else None,
                )
                scenarios.append(result)
                if scenario.new_statuses:
                    for connection, count in sent.items():
                        offsets[connection] += count
            rss = server_peak_rss(server)

    per_process = split_connections(args.connections)
    total_rows = {t: sum(s.rows[p][t] for s in scenarios for p in s.rows) for t in TABLES}
    total_expected = {
        t: sum(s.expected[p][t] for s in scenarios for p in s.expected) for t in TABLES
    }
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
            "pool": args.pool,
            "seconds": args.seconds,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "scenarios": [asdict(s) for s in scenarios],
        "totals": {
            "requests": sum(s.setup_requests + s.warmups + s.requests for s in scenarios),
            "rows": total_rows,
            "expected": total_expected,
        },
        "server_peak_rss_kib": rss,
    }
    print(report(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n")
        print(f"\nfigures written to {args.json}")
    errors = any(s.errors or s.setup_errors for s in scenarios)
    rows_match = all(_rows_ok(s.rows[p], s.expected[p], CHECKED) for s in scenarios for p in s.rows)
    if not rows_match:
        print("\nFAILED: zaak_statussen / notifications rows do not match the requests sent")
    if errors:
        print("\nFAILED: requests with errors")
    return 1 if errors or not rows_match else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # The finally blocks have stopped the load generator and the server and cleaned up.
        print("interrupted; server stopped, temporary files and schema removed", file=sys.stderr)
        sys.exit(130)

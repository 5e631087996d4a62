"""The audit hash chain: appended with every receipt, verified, exported; SQLite and PostgreSQL.

The chain is checked here against the documented serialisation, recomputed with nothing but
json and hashlib, so the tests hold the code to what an auditor would do.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from adapter.cli.audit import register as add_commands
from adapter.config import Config, load_config
from adapter.ebms.message import error_of
from adapter.receipts import Outcome, Receipt, to_element, verify
from adapter.receipts.model import canonical
from adapter.store import audit
from adapter.store.db import Database
from adapter.store.models import StoredReceipt
from adapter.store.receipts import save_receipt
from tests.berichtverwerk_samples import batch_xml
from tests.conftest import (
    BELASTINGDIENST,
    GEMEENTE,
    Pki,
    Server,
    free_port,
    postgres_schema,
    write_config,
)
from tests.ebms_helpers import cpa_id, send
from tests.soap_helpers import aanvraag, post, receipt_text

GENESIS = "0" * 64
SUBSCRIBED = "999993653"


# --- fixtures and helpers -----------------------------------------------------------------


@pytest.fixture
def fresh_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty store of the module's kind, so a test may tamper with its chain at will."""
    if make_url(database_url).get_backend_name() == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
        return
    with postgres_schema() as url:
        yield url


@pytest.fixture
def database(fresh_url: str) -> Iterator[Database]:
    database = Database(fresh_url)
    database.create_schema()
    try:
        yield database
    finally:
        database.dispose()


def new_receipt(outcome: Outcome | None = None, sender: str = GEMEENTE) -> Receipt:
    return Receipt(
        request_id=uuid.uuid4().hex,
        receiver_oin="00000004003214345001",
        sender_oin=sender,
        received_at=datetime.now(UTC),
        message_ref=f"urn:uuid:{uuid.uuid4()}",
        service="ValidateAbonnementen",
        operation="ValidateAbonnementen",
        body_hash="47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        outcome=outcome or Outcome.accept(),
    )


def store(database: Database, outcome: Outcome | None = None, sender: str = GEMEENTE) -> str:
    """One receipt saved as the endpoints save it (unsigned: the store does not care)."""
    receipt = new_receipt(outcome, sender)
    with database.transaction() as session:
        save_receipt(session, receipt, canonical(receipt))
    return receipt.receipt_id


def store_at(database: Database, moment: datetime) -> str:
    """A receipt whose entry is recorded at `moment`, to build chains spanning several days."""
    receipt = new_receipt()
    with database.transaction() as session:
        stored = StoredReceipt(
            receipt_id=receipt.receipt_id,
            request_id=receipt.request_id,
            sender_oin=receipt.sender_oin,
            receiver_oin=receipt.receiver_oin,
            received_at=moment,
            message_ref=receipt.message_ref,
            service=receipt.service,
            operation=receipt.operation,
            outcome="Geaccepteerd",
            outcome_code=None,
            xml=etree.tostring(to_element(receipt), encoding="unicode"),
        )
        session.add(stored)
        audit.append(session, audit.Record.of(stored), now=moment)
    return receipt.receipt_id


def rows(source: Database | Engine, query: str, **params: Any) -> list[dict[str, Any]]:
    engine = source.engine if isinstance(source, Database) else source
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(text(query), params)]


def execute(database: Database, statement: str, **params: Any) -> None:
    with database.engine.begin() as conn:
        conn.execute(text(statement), params)


def entries(database: Database) -> list[dict[str, Any]]:
    return rows(database, "SELECT * FROM audit_log ORDER BY seq")


def check(database: Database) -> audit.VerifyResult:
    with database.transaction() as session:
        return audit.verify_chain(session, batch_size=3)  # small batches cross batch edges


def independent_hash(entry: dict[str, Any]) -> str:
    """entry_hash as the module documents it, computed without the adapter's code."""
    recorded_at = entry["recorded_at"]
    if isinstance(recorded_at, datetime):  # PostgreSQL: timestamptz
        utc = recorded_at.astimezone(UTC).replace(tzinfo=None)
        recorded_at = utc.isoformat(timespec="microseconds") + "Z"
    elif not recorded_at.endswith("Z"):  # SQLite keeps text: "YYYY-MM-DD HH:MM:SS.ffffff"
        recorded_at = recorded_at.replace(" ", "T") + "Z"
    document = {
        "seq": entry["seq"],
        "recorded_at": recorded_at,
        "kind": entry["kind"],
        "receipt_id": entry["receipt_id"],
        "sender_oin": entry["sender_oin"],
        "service": entry["service"],
        "operation": entry["operation"],
        "outcome": entry["outcome"],
        "outcome_code": entry["outcome_code"],
        "content_hash": entry["content_hash"],
        "prev_hash": entry["prev_hash"],
    }
    serialised = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(serialised.encode("utf-8")).hexdigest()


def assert_one_chain(database: Database, expected: int) -> None:
    """Seq 1..expected without gaps, each entry linked to the one before, no receipt twice."""
    chain = entries(database)
    assert [e["seq"] for e in chain] == list(range(1, expected + 1))
    previous = GENESIS
    for entry in chain:
        assert entry["prev_hash"] == previous, entry["seq"]
        assert independent_hash(entry) == entry["entry_hash"], entry["seq"]
        previous = entry["entry_hash"]
    assert len({e["receipt_id"] for e in chain}) == expected
    result = check(database)
    assert result.intact, result
    assert (result.entries, result.head_hash) == (expected, previous)


AuditCli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def audit_cli(
    pki: Pki, fresh_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> AuditCli:
    """Run `audit …` through a parser that `add_commands` filled, in this process."""
    config_file = write_config(tmp_path / "cli", pki, fresh_url, free_port())

    def loader(args: argparse.Namespace) -> Config:
        return load_config(args.config, environ={})

    parser = argparse.ArgumentParser(prog="dk-adapter")
    parser.add_argument("--config", default=str(config_file))
    add_commands(parser.add_subparsers(dest="command", required=True), loader)

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        args = parser.parse_args(argv)
        code: int = args.func(args)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


# --- appended with every receipt ------------------------------------------------------------


def test_every_answer_of_the_server_appends_one_entry_in_its_transaction(
    server: Server, pki: Pki
) -> None:
    before = server.count("audit_log")
    expected: dict[str, str] = {}
    accepted = post(
        f"{server.url}/abonnementen",
        aanvraag([SUBSCRIBED], GEMEENTE),
        pki.clients[GEMEENTE].pair,
        pki.root,
    )
    assert accepted.status_code == 200
    expected[receipt_text(etree.fromstring(accepted.content), "a:BevestigingID") or ""] = "receipt"
    invalid = aanvraag([SUBSCRIBED], GEMEENTE).replace(b">Burger<", b">Bedrijf<")
    refused = post(f"{server.url}/abonnementen", invalid, pki.clients[GEMEENTE].pair, pki.root)
    assert refused.status_code == 500
    expected[receipt_text(etree.fromstring(refused.content), "a:BevestigingID") or ""] = "refusal"
    batch = send(server, pki, batch_xml([{}]))
    assert batch.document is not None and error_of(batch.document) is None
    expected[verify(batch.document, pki.root).receipt.receipt_id] = "receipt"
    wrong_cpa = send(
        server, pki, batch_xml([{}]), soap_edit=(cpa_id(GEMEENTE).encode(), b"ONBEKENDE-CPA")
    )
    assert wrong_cpa.document is not None and error_of(wrong_cpa.document) is not None
    expected[verify(wrong_cpa.document, pki.root).receipt.receipt_id] = "refusal"

    assert server.count("audit_log") == before + 4
    for receipt_id, kind in expected.items():
        (entry,) = rows(
            server.engine, "SELECT * FROM audit_log WHERE receipt_id = :id", id=receipt_id
        )
        (stored,) = rows(
            server.engine, "SELECT * FROM receipts WHERE receipt_id = :id", id=receipt_id
        )
        assert entry["kind"] == kind
        assert entry["outcome"] == stored["outcome"]
        assert entry["content_hash"] == hashlib.sha256(stored["xml"].encode()).hexdigest()
    # Every receipt this server ever stored is in the chain, and the chain holds.
    assert server.count("receipts") == server.count("audit_log")
    with Session(server.engine) as session:
        result = audit.verify_chain(session)
    assert result.intact, result
    assert result.entries == server.count("audit_log") and result.unchained_receipts == 0


def test_a_rolled_back_transaction_leaves_neither_receipt_nor_entry(database: Database) -> None:
    store(database)
    receipt = new_receipt()
    with pytest.raises(RuntimeError), database.transaction() as session:
        save_receipt(session, receipt, canonical(receipt))
        raise RuntimeError("the business part failed after the receipt")
    for table in ("receipts", "audit_log"):
        query = f"SELECT 1 FROM {table} WHERE receipt_id = :id"  # noqa: S608 - literal names
        assert rows(database, query, id=receipt.receipt_id) == []
    store(database)  # the position the rolled-back entry had is taken by the next one
    assert_one_chain(database, 2)


def test_refusals_are_entries_of_their_own_kind(database: Database) -> None:
    store(database)
    store(database, Outcome.reject("0004", "0004 Niet conform xsd"), BELASTINGDIENST)
    first, second = entries(database)
    assert (first["kind"], first["outcome"], first["outcome_code"]) == (
        "receipt",
        "Geaccepteerd",
        None,
    )
    assert (second["kind"], second["outcome"], second["outcome_code"]) == (
        "refusal",
        "Geweigerd",
        "0004",
    )
    assert second["sender_oin"] == BELASTINGDIENST


# --- verify ---------------------------------------------------------------------------------


def test_an_intact_chain_verifies_and_names_its_head(
    database: Database, audit_cli: AuditCli
) -> None:
    code, out, _ = audit_cli("audit", "verify")
    assert (code, out) == (0, f"chain intact: 0 entries, head {GENESIS}\n")
    for n in range(7):
        store(database, None if n % 3 else Outcome.reject("0003", "0003 Invalide soapaction"))
    assert_one_chain(database, 7)
    head = entries(database)[-1]["entry_hash"]
    code, out, _ = audit_cli("audit", "verify")
    assert (code, out) == (0, f"chain intact: 7 entries, head {head}\n")


def test_an_edited_entry_is_named_by_its_seq(database: Database, audit_cli: AuditCli) -> None:
    for _ in range(5):
        store(database)
    execute(database, "UPDATE audit_log SET outcome = 'Geweigerd' WHERE seq = 4")
    result = check(database)
    assert (result.broken_at, result.entries) == (4, 3)
    assert "entry altered" in (result.reason or "")
    code, out, _ = audit_cli("audit", "verify")
    assert code == 1
    assert out.startswith("chain BROKEN at seq 4: entry altered")


def test_an_entry_rewritten_with_a_fresh_hash_is_still_found(database: Database) -> None:
    for _ in range(5):
        store(database)
    entry = entries(database)[1]
    # Recorded a day later: a field only the entry holds, so only the chain can tell.
    forged = {**entry, "recorded_at": "2030-01-01T00:00:00.000000Z"}
    execute(
        database,
        "UPDATE audit_log SET recorded_at = :moment, entry_hash = :hash WHERE seq = 2",
        moment=datetime(2030, 1, 1, tzinfo=UTC),
        hash=independent_hash(forged),
    )
    result = check(database)
    # Entry 2 hashes right now, but entry 3 still records its old hash.
    assert result.broken_at == 2
    assert "entry 2 was rewritten" in (result.reason or "")


def test_an_edited_receipt_is_named_by_the_seq_of_its_entry(
    database: Database, audit_cli: AuditCli
) -> None:
    ids = [store(database) for _ in range(4)]
    execute(
        database,
        "UPDATE receipts SET xml = replace(xml, 'Geaccepteerd', 'Geweigerd') "
        "WHERE receipt_id = :id",
        id=ids[2],
    )
    result = check(database)
    assert result.broken_at == 3
    assert result.reason == (
        f"receipt {ids[2]} altered: its stored XML does not match content_hash"
    )
    code, out, _ = audit_cli("audit", "verify")
    assert code == 1 and out.startswith(f"chain BROKEN at seq 3: receipt {ids[2]} altered")


def test_a_receipt_column_changed_behind_the_xml_is_found(database: Database) -> None:
    ids = [store(database) for _ in range(3)]
    execute(database, "UPDATE receipts SET outcome = 'Geweigerd' WHERE receipt_id = :id", id=ids[0])
    result = check(database)
    assert (
        result.broken_at == 1
        and "disagree (one was altered): outcome is 'Geweigerd' in receipts"
        in (result.reason or "")
    )


@pytest.mark.parametrize(("deleted", "broken_at"), [(4, 4), (1, 1)])
def test_a_deleted_entry_is_found_as_a_gap(
    database: Database, deleted: int, broken_at: int
) -> None:
    for _ in range(6):
        store(database)
    execute(database, "DELETE FROM audit_log WHERE seq = :seq", seq=deleted)
    result = check(database)
    assert result.broken_at == broken_at
    assert result.reason == f"entry {deleted} is missing (the next entry is {deleted + 1})"


def test_a_deleted_receipt_is_found(database: Database) -> None:
    ids = [store(database) for _ in range(3)]
    execute(database, "DELETE FROM receipts WHERE receipt_id = :id", id=ids[1])
    result = check(database)
    assert result.broken_at == 2
    assert result.reason == f"receipt {ids[1]} is missing from the receipts table"


def test_receipts_outside_the_chain_are_counted(database: Database, audit_cli: AuditCli) -> None:
    store(database)
    receipt = new_receipt()
    with database.transaction() as session:  # as before the audit trail existed
        session.add(
            StoredReceipt(
                receipt_id=receipt.receipt_id,
                request_id=receipt.request_id,
                sender_oin=receipt.sender_oin,
                receiver_oin=receipt.receiver_oin,
                received_at=receipt.received_at,
                service=receipt.service,
                operation=receipt.operation,
                outcome="Geaccepteerd",
                xml="<old/>",
            )
        )
    result = check(database)
    assert result.intact and result.unchained_receipts == 1
    code, out, _ = audit_cli("audit", "verify")
    assert code == 0 and "warning: 1 stored receipts are not in the chain" in out


# --- one writer at a time -------------------------------------------------------------------


def _append_many(url: str, count: int, threads: int) -> None:
    """A second node: its own process and engine, appending from several threads."""
    database = Database(url)
    try:
        _run_threads(database, count, threads)
    finally:
        database.dispose()


def _run_threads(database: Database, count: int, threads: int) -> None:
    failures: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(count):
                store(database)
        except BaseException as exc:  # reported by the caller
            failures.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if failures:
        raise failures[0]


def test_concurrent_writers_in_threads_and_processes_make_one_chain_without_forks(
    database: Database, fresh_url: str
) -> None:
    count, threads = 12, 4
    spawn = multiprocessing.get_context("spawn")
    processes = [
        spawn.Process(target=_append_many, args=(fresh_url, count, threads)) for _ in range(2)
    ]
    for process in processes:
        process.start()
    other = Database(fresh_url)  # a second engine in this process: another pool, other sessions
    try:
        local = [
            threading.Thread(target=_run_threads, args=(db, count, threads))
            for db in (database, other)
        ]
        for thread in local:
            thread.start()
        for thread in local:
            thread.join()
    finally:
        other.dispose()
    for process in processes:
        process.join(timeout=300)
        assert process.exitcode == 0
    total = 4 * count * threads
    assert rows(database, "SELECT count(*) AS n FROM receipts") == [{"n": total}]
    assert_one_chain(database, total)


# --- export ---------------------------------------------------------------------------------


def test_recorded_at_never_goes_back_along_the_chain(database: Database) -> None:
    later = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    store_at(database, later)
    store_at(database, later - timedelta(hours=1))  # a node whose clock is behind
    first, second = entries(database)
    assert first["recorded_at"] == second["recorded_at"]


def read_export(lines: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    documents = [json.loads(line) for line in lines]
    header, *body, end = documents
    assert header["record"] == "header" and end["record"] == "end"
    assert all(d["record"] == "entry" for d in body)
    return header, body, end


def check_slice(previous_hash: str, exported: list[dict[str, Any]]) -> str:
    """What an auditor does with an export: hashes, links and receipts, without our code."""
    for entry in exported:
        assert entry["prev_hash"] == previous_hash
        hashed = {
            k: v for k, v in entry.items() if k not in ("record", "entry_hash", "receipt_xml")
        }
        serialised = json.dumps(hashed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert hashlib.sha256(serialised.encode()).hexdigest() == entry["entry_hash"]
        assert hashlib.sha256(entry["receipt_xml"].encode()).hexdigest() == entry["content_hash"]
        previous_hash = entry["entry_hash"]
    return previous_hash


def test_export_writes_the_days_asked_for_with_the_hash_before_them(
    database: Database, audit_cli: AuditCli, tmp_path: Path
) -> None:
    day = datetime(2026, 3, 1, tzinfo=UTC)
    moments = [
        day + timedelta(hours=9),
        day + timedelta(hours=23, minutes=59),
        day + timedelta(days=1),  # 2 March 00:00 UTC
        day + timedelta(days=1, hours=12),
        day + timedelta(days=2, hours=23, minutes=59, seconds=59),
        day + timedelta(days=3, hours=1),
    ]
    ids = [store_at(database, moment) for moment in moments]
    chain = entries(database)
    out = tmp_path / "audit-2026-03-02.jsonl"
    code, summary, _ = audit_cli(
        "audit", "export", "--from", "2026-03-02", "--to", "2026-03-03", "--out", str(out)
    )
    assert code == 0
    assert summary.startswith(
        f"exported 3 entries (seq 3 to 5) recorded 2026-03-02 to 2026-03-03 (UTC) to {out}"
    )
    assert f"previous entry hash {chain[1]['entry_hash']}" in summary
    header, exported, end = read_export(out.read_text(encoding="utf-8").splitlines())
    assert (header["from"], header["to"]) == ("2026-03-02", "2026-03-03")
    assert header["previous_hash"] == chain[1]["entry_hash"]
    assert header["previous"]["seq"] == 2
    assert independent_hash(header["previous"]) == header["previous_hash"]
    assert [e["receipt_id"] for e in exported] == ids[2:5]
    assert [e["seq"] for e in exported] == [3, 4, 5]
    assert exported[0]["recorded_at"] == "2026-03-02T00:00:00.000000Z"
    last = check_slice(header["previous_hash"], exported)
    assert end == {
        "record": "end",
        "entries": 3,
        "first_seq": 3,
        "last_seq": 5,
        "last_hash": last,
    }
    assert last == chain[4]["entry_hash"]


def test_export_from_the_first_day_starts_at_the_genesis_hash_and_may_be_empty(
    database: Database, audit_cli: AuditCli
) -> None:
    for hour in (1, 2):
        store_at(database, datetime(2026, 4, 1, hour, tzinfo=UTC))
    code, out, err = audit_cli("audit", "export", "--from", "2026-01-01", "--to", "2026-04-01")
    assert code == 0 and "exported 2 entries (seq 1 to 2)" in err  # the file is on stdout
    header, exported, _ = read_export(out.splitlines())
    assert header["previous"] is None and header["previous_hash"] == GENESIS
    check_slice(GENESIS, exported)
    code, out, err = audit_cli("audit", "export", "--from", "2026-05-01", "--to", "2026-05-31")
    assert code == 0 and "exported 0 entries (no entries)" in err
    header, exported, end = read_export(out.splitlines())
    assert exported == [] and header["previous_hash"] == end["last_hash"]
    assert header["previous"]["seq"] == 2


def test_export_refuses_a_range_that_ends_before_it_starts(
    database: Database, audit_cli: AuditCli
) -> None:
    code, _, err = audit_cli("audit", "export", "--from", "2026-03-02", "--to", "2026-03-01")
    assert code == 2 and "before --from" in err
    with pytest.raises(SystemExit):
        audit_cli("audit", "export", "--from", "2 maart", "--to", "2026-03-01")


def test_export_as_a_function_streams_entries_with_their_receipts(database: Database) -> None:
    ids = [store(database) for _ in range(5)]
    today = datetime.now(UTC).date()
    with database.transaction() as session:
        exported = audit.export(session, today - timedelta(days=1), today, batch_size=2)
        items = list(exported)
        assert len(exported) == 5
    assert [item.fields["receipt_id"] for item in items] == ids
    assert all(item.receipt_xml and "Afleverbevestiging" in item.receipt_xml for item in items)
    assert exported.previous_hash == GENESIS

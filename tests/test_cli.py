"""The `dk-adapter` commands as an administrator runs them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import create_engine, text

from adapter.config import load_config
from adapter.lopende_zaken.zaken import StatusMelding, ZaakMelding, zaak_aanleveren
from adapter.receipts import Outcome, Receipt
from adapter.store.db import Database
from adapter.store.zaken import Zaken
from adapter.wiring import build_app
from tests.conftest import CONF, GEMEENTE, Pki, free_port, run_cli, write_config


@pytest.fixture(scope="module")
def config(pki: Pki, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_config(tmp_path_factory.mktemp("cli"), pki, database_url, free_port())


def rows(database_url: str, query: str) -> list[tuple[object, ...]]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(query))]
    finally:
        engine.dispose()


def test_accounts_import_loads_and_then_updates_accounts(
    config: Path, database_url: str, tmp_path: Path
) -> None:
    done = run_cli(
        "accounts",
        "import",
        str(CONF / "accounts.example.csv"),
        config=config,
        database_url=database_url,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(
        "6 lines imported from " + str(CONF / "accounts.example.csv")
    )
    assert "100%" in done.stderr  # the progress bar reached the end
    update = tmp_path / "update.csv"
    update.write_text(f"bsn,active,email,subscriptions\n999990019,false,,{GEMEENTE}\n")
    assert (
        run_cli(
            "accounts", "import", str(update), config=config, database_url=database_url
        ).returncode
        == 0
    )
    assert rows(database_url, "SELECT active, email FROM accounts WHERE bsn = '999990019'") == [
        (False, None)
    ]
    assert rows(database_url, "SELECT oin FROM subscriptions WHERE bsn = '999990019'") == [
        (GEMEENTE,)
    ]
    assert rows(database_url, "SELECT count(*) FROM accounts") == [(6,)]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("123456789,true,,", "update.csv:3: '123456789' is geen geldig BSN (elfproef)"),
        ("111222333,misschien,,", "update.csv:3: active moet true of false zijn"),
        ("111222333,true,,12345", "update.csv:3: '12345' is geen OIN van 20 cijfers"),
    ],
)
def test_a_bad_line_stops_the_import_and_stores_nothing_of_it(
    config: Path, database_url: str, tmp_path: Path, line: str, message: str
) -> None:
    run_cli(
        "accounts",
        "import",
        str(CONF / "accounts.example.csv"),
        config=config,
        database_url=database_url,
    )
    before = rows(database_url, "SELECT bsn, active FROM accounts ORDER BY bsn")
    update = tmp_path / "update.csv"
    update.write_text(f"bsn,active,email,subscriptions\n999990032,true,nieuw@example.nl,\n{line}\n")
    done = run_cli("accounts", "import", str(update), config=config, database_url=database_url)
    assert done.returncode == 2
    assert message in done.stderr
    assert rows(database_url, "SELECT bsn, active FROM accounts ORDER BY bsn") == before


def test_check_config_reports_what_it_checked(config: Path, database_url: str) -> None:
    done = run_cli("check-config", config=config, database_url=database_url)
    assert done.returncode == 0, done.stderr
    assert "3 organisations" in done.stdout


def test_check_config_names_a_missing_certificate(
    config: Path, database_url: str, tmp_path: Path
) -> None:
    broken = tmp_path / "adapter.toml"
    broken.write_text(config.read_text().replace("server.key", "missing.key"))
    done = run_cli("check-config", config=broken, database_url=database_url)
    assert done.returncode == 2
    assert f"{broken}: tls.private_key:" in done.stderr and "does not exist" in done.stderr


def test_pki_init_writes_a_hierarchy_once(tmp_path: Path, config: Path, database_url: str) -> None:
    target = tmp_path / "certs"
    first = run_cli(
        "pki",
        "init",
        "--dir",
        str(target),
        "--organisations",
        str(CONF / "organisations.toml"),
        config=config,
        database_url=database_url,
    )
    assert first.returncode == 0, first.stderr
    assert (target / "clients" / f"{GEMEENTE}.p12").is_file()
    assert oct((target / "root-ca.key").stat().st_mode & 0o777) == "0o600"
    again = run_cli(
        "pki",
        "init",
        "--dir",
        str(target),
        "--organisations",
        str(CONF / "organisations.toml"),
        config=config,
        database_url=database_url,
    )
    assert again.returncode == 2 and "already exists" in again.stderr
    if_missing = run_cli(
        "pki",
        "init",
        "--dir",
        str(target),
        "--if-missing",
        "--organisations",
        str(CONF / "organisations.toml"),
        config=config,
        database_url=database_url,
    )
    assert if_missing.returncode == 0 and "already present" in if_missing.stdout


def signed_receipt_file(config: Path, tmp_path: Path) -> Path:
    app = build_app(load_config(config, environ={}))
    receipt = Receipt(
        request_id="r-1",
        receiver_oin="00000004003214345001",
        sender_oin=GEMEENTE,
        received_at=datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
        message_ref="urn:uuid:1",
        service="ValidateAbonnementen",
        operation="ValidateAbonnementen",
        body_hash="47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        outcome=Outcome.reject("0004", "0004 Niet conform xsd"),
    )
    file = tmp_path / "receipt.xml"
    file.write_bytes(etree.tostring(app.signer.sign(receipt)))
    return file


def test_verify_receipt_says_what_a_receipt_proves(
    config: Path, database_url: str, tmp_path: Path
) -> None:
    file = signed_receipt_file(config, tmp_path)
    done = run_cli("verify-receipt", str(file), config=config, database_url=database_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("VALID")
    assert f"{GEMEENTE} → 00000004003214345001" in done.stdout
    assert "Geweigerd 0004" in done.stdout


def test_verify_receipt_refuses_an_altered_receipt(
    config: Path, database_url: str, tmp_path: Path
) -> None:
    file = signed_receipt_file(config, tmp_path)
    file.write_bytes(file.read_bytes().replace(b"<Code>0004</Code>", b"<Code>0000</Code>"))
    done = run_cli("verify-receipt", str(file), config=config, database_url=database_url)
    assert done.returncode == 1
    assert done.stdout.startswith("INVALID")


def test_verify_receipt_refuses_a_file_that_is_not_xml_with_the_parser_reason(
    config: Path, database_url: str, tmp_path: Path
) -> None:
    file = tmp_path / "receipt.xml"
    file.write_bytes(b"<Afleverbevestiging")
    done = run_cli("verify-receipt", str(file), config=config, database_url=database_url)
    assert done.returncode == 2
    assert done.stderr.startswith("error: geen well-formed XML"), done.stderr
    assert "Traceback" not in done.stderr


def test_retention_removes_only_zaken_closed_longer_ago_than_configured(
    config: Path, database_url: str
) -> None:
    database = Database(database_url)
    database.create_schema()
    now = datetime.now(UTC)
    today = now.date()
    with database.transaction() as session:
        for identificatie, einddatum in (
            ("R-OLD", today - timedelta(days=366)),
            ("R-RECENT", today - timedelta(days=10)),
            ("R-OPEN", None),
        ):
            melding = ZaakMelding(
                identificatie=identificatie,
                omschrijving="Bezwaar",
                startdatum=today - timedelta(days=400),
                initiator_bsn="999993653",
                einddatum=einddatum,
                status=StatusMelding("Ontvangen", now - timedelta(days=400)),
            )
            zaak_aanleveren(Zaken(session), GEMEENTE, melding, now)
    database.dispose()
    done = run_cli("retention", "run", config=config, database_url=database_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("1 closed zaken older than 365 days removed")
    remaining = rows(
        database_url,
        "SELECT identificatie FROM zaken WHERE identificatie LIKE 'R-%' ORDER BY identificatie",
    )
    assert remaining == [("R-OPEN",), ("R-RECENT",)]
    orphans = "SELECT count(*) FROM zaak_statussen WHERE zaak_id NOT IN (SELECT id FROM zaken)"
    assert rows(database_url, orphans) == [(0,)]

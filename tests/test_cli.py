"""The `dk-adapter` commands as an administrator runs them."""

from __future__ import annotations

import argparse
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from sqlalchemy import create_engine, text

from adapter.cli import build_parser
from adapter.config import load_config
from adapter.lopende_zaken.zaken import StatusMelding, ZaakMelding, zaak_aanleveren
from adapter.pki.identity import read_identity
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


def test_pki_init_refuses_to_replace_a_hierarchy_naming_the_options_that_would(
    tmp_path: Path, config: Path, database_url: str
) -> None:
    organisations = ("--organisations", str(CONF / "organisations.toml"))
    target = str(tmp_path / "certs")
    first = run_cli(
        "pki", "init", "--dir", target, *organisations, config=config, database_url=database_url
    )
    assert first.returncode == 0, first.stderr
    again = run_cli(
        "pki", "init", "--dir", target, *organisations, config=config, database_url=database_url
    )
    assert again.returncode == 2
    assert "dk-adapter pki init --force" in again.stderr
    assert "dk-adapter pki issue --oin OIN" in again.stderr
    assert "overwrite=True" not in again.stderr and "Traceback" not in again.stderr


def openssl_verify(root: Path, chain: Path, certificate: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "verify", "-CAfile", str(root), "-untrusted", str(chain), str(certificate)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_pki_issue_adds_a_client_certificate_for_a_newly_configured_organisation(
    tmp_path: Path, config: Path, database_url: str
) -> None:
    one = tmp_path / "one.toml"
    one.write_text(f'[[organisation]]\noin = "{GEMEENTE}"\nname = "Gemeente Voorbeeldstad"\n')
    target = tmp_path / "certs"
    init = run_cli(
        "pki",
        "init",
        "--dir",
        str(target),
        "--organisations",
        str(one),
        config=config,
        database_url=database_url,
    )
    assert init.returncode == 0, init.stderr
    untouched = {f.name: f.read_bytes() for f in target.iterdir() if f.is_file()}
    gemeente = (target / "clients" / f"{GEMEENTE}.pem").read_bytes()
    new_oin = "00000099000000004000"
    two = tmp_path / "two.toml"
    two.write_text(
        one.read_text()
        + f'[[organisation]]\noin = "{new_oin}"\nname = "Waterschap Nieuw"\nkvk = "87654321"\n'
    )

    issued = run_cli(
        "pki",
        "issue",
        "--oin",
        new_oin,
        "--dir",
        str(target),
        "--organisations",
        str(two),
        config=config,
        database_url=database_url,
    )

    assert issued.returncode == 0, issued.stderr
    assert f"client certificate for {new_oin} (Waterschap Nieuw) issued" in issued.stdout
    for suffix in (".pem", ".key", ".p12"):
        assert (target / "clients" / f"{new_oin}{suffix}").is_file()
    assert oct((target / "clients" / f"{new_oin}.key").stat().st_mode & 0o777) == "0o600"
    # The hierarchy and the other organisation's certificate are as they were.
    assert {f.name: f.read_bytes() for f in target.iterdir() if f.is_file()} == untouched
    assert (target / "clients" / f"{GEMEENTE}.pem").read_bytes() == gemeente
    certificate = target / "clients" / f"{new_oin}.pem"
    checked = openssl_verify(target / "root-ca.pem", target / "chain.pem", certificate)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    leaf = x509.load_pem_x509_certificates(certificate.read_bytes())[0]
    assert read_identity(leaf.public_bytes(Encoding.DER)).oin == new_oin

    again = run_cli(
        "pki",
        "issue",
        "--oin",
        new_oin,
        "--dir",
        str(target),
        "--organisations",
        str(two),
        config=config,
        database_url=database_url,
    )
    assert again.returncode == 2 and "--force" in again.stderr
    unknown = run_cli(
        "pki",
        "issue",
        "--oin",
        "00000099000000005000",
        "--dir",
        str(target),
        "--organisations",
        str(two),
        config=config,
        database_url=database_url,
    )
    assert unknown.returncode == 2
    assert f"00000099000000005000 is not an organisation in {two}" in unknown.stderr


def test_check_config_names_a_bad_organisation_by_its_place_from_one_and_its_oin(
    config: Path, database_url: str, tmp_path: Path
) -> None:
    organisations = tmp_path / "organisations.toml"
    organisations.write_text(
        (CONF / "organisations.toml").read_text()
        + '[[organisation]]\noin = "00000099000000004000"\nname = "Nieuw"\nservices = ["Fax"]\n'
    )
    broken = tmp_path / "adapter.toml"
    text_of_config = config.read_text()
    old_file = text_of_config.split("organisations = ")[1].split("\n")[0]
    broken.write_text(text_of_config.replace(old_file, f'"{organisations}"'))
    done = run_cli("check-config", config=broken, database_url=database_url)
    assert done.returncode == 2
    assert f"{organisations}: organisation #4 (00000099000000004000).services: 'Fax'" in (
        done.stderr
    )


def test_every_command_and_option_has_help_and_the_top_level_help_names_every_command() -> None:
    parser = build_parser()
    missing: list[str] = []

    def walk(command: argparse.ArgumentParser, path: str) -> None:
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {choice.dest: choice.help for choice in action._choices_actions}
                shown = command.format_help()
                for name, sub in action.choices.items():
                    if not helps.get(name):
                        missing.append(f"{path} {name}")
                    elif name not in shown:
                        missing.append(f"{path} {name} (not in the help of {path})")
                    walk(sub, f"{path} {name}")
            elif not isinstance(action, argparse._HelpAction) and not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")

    walk(parser, "dk-adapter")
    assert missing == []
    top = subprocess.run(
        [sys.executable, "-m", "adapter.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in commands.choices:
        assert f"\n    {name} " in top or f"\n    {name}\n" in top, name


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


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"<Afleverbevestiging", "is not an XML document (geen well-formed XML: "),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "is not an XML document (geen well-formed XML: "),
        ("<a/>".encode("utf-16"), "is not UTF-8 XML, as receipts and SOAP messages are"),
        (b'<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>', "holds markup a receipt never has"),
    ],
    ids=["truncated", "pdf", "utf-16", "dtd"],
)
def test_verify_receipt_answers_a_file_that_is_no_readable_xml_with_a_plain_error(
    config: Path, database_url: str, tmp_path: Path, content: bytes, says: str
) -> None:
    file = tmp_path / "receipt.xml"
    file.write_bytes(content)
    done = run_cli("verify-receipt", str(file), config=config, database_url=database_url)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {file} {says}"), done.stderr
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

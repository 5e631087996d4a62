"""Accounts and subscriptions on their own: reading the import file, replacing what is stored,
and who may receive post from whom, on SQLite and on PostgreSQL (no server involved)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from sqlalchemy import delete, select

from adapter.errors import AdapterError
from adapter.store.accounts import AccountImportError, AccountRow, read_accounts_csv
from adapter.store.db import Database
from adapter.store.models import Account, Subscription
from tests.helpers import migrated_database

GEMEENTE = "00000099000000002000"
BELASTINGDIENST = "00000099000000001000"
ACTIVE, INACTIVE, UNKNOWN = "999990007", "999990019", "999990020"
HEADER = "bsn,active,email,subscriptions\n"


def rows(text: str, source: str = "accounts.csv") -> list[AccountRow]:
    return list(read_accounts_csv(io.StringIO(text), source))


def import_error(text: str) -> str:
    with pytest.raises(AccountImportError) as raised:
        rows(text)
    return str(raised.value)


def row(bsn: str, active: bool = True, *oins: str, email: str | None = None) -> AccountRow:
    return AccountRow(bsn=bsn, active=active, email=email, subscriptions=frozenset(oins))


# --- reading the import file -------------------------------------------------------------------


def test_a_row_reads_into_a_compact_bsn_a_flag_an_email_and_its_subscriptions() -> None:
    [read] = rows(HEADER + f"9999.90.007,ja,a@example.org, {GEMEENTE} ;{BELASTINGDIENST}\n")
    assert read == AccountRow(
        bsn=ACTIVE,
        active=True,
        email="a@example.org",
        subscriptions=frozenset({GEMEENTE, BELASTINGDIENST}),
    )


@pytest.mark.parametrize(
    ("text", "active"),
    [("true", True), ("1", True), ("JA", True), ("false", False), ("nee", False), ("", False)],
)
def test_the_active_column_accepts_dutch_and_english_booleans(text: str, active: bool) -> None:
    assert rows(HEADER + f"{ACTIVE},{text},,\n")[0].active is active


def test_an_empty_email_and_no_subscriptions_read_as_none_and_empty() -> None:
    [read] = rows(HEADER + f"{ACTIVE},true,,\n")
    assert read.email is None
    assert read.subscriptions == frozenset()


def test_a_file_without_a_required_column_names_the_missing_columns() -> None:
    message = import_error("bsn,email\n999990007,\n")
    assert message == "accounts.csv: kolommen ontbreken: active, subscriptions"


def test_an_invalid_bsn_names_the_line_and_the_elfproef() -> None:
    message = import_error(HEADER + f"{ACTIVE},true,,\n123456789,true,,\n")
    assert message == "accounts.csv:3: '123456789' is geen geldig BSN (elfproef)"


def test_an_active_value_that_is_no_boolean_names_the_line_and_the_value() -> None:
    message = import_error(HEADER + f"{ACTIVE},misschien,,\n")
    assert message == "accounts.csv:2: active moet true of false zijn, niet 'misschien'"


def test_a_subscription_that_is_no_oin_names_the_line_and_the_value() -> None:
    message = import_error(HEADER + f"{ACTIVE},true,,{GEMEENTE};1234\n")
    assert message == "accounts.csv:2: '1234' is geen OIN van 20 cijfers"


def test_an_import_error_belongs_to_the_adapters_error_vocabulary() -> None:
    with pytest.raises(AdapterError):
        rows("bsn\n")


# --- the database ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def database(database_url: str) -> Iterator[Database]:
    """One migrated database per kind (SQLite in a temporary directory, a PostgreSQL schema)."""
    with migrated_database(database_url) as database:
        yield database


@pytest.fixture
def accounts(database: Database) -> Database:
    """The module's database with no accounts, so each test starts from nothing."""
    with database.transaction() as session:
        session.execute(delete(Subscription))
        session.execute(delete(Account))
    return database


def store(database: Database, *accounts: AccountRow) -> None:
    with database.repositories() as repositories:
        repositories.accounts.upsert(list(accounts))


def may_receive(database: Database, oin: str, by_law: bool = False) -> dict[str, bool]:
    with database.repositories() as repositories:
        return repositories.accounts.may_receive([ACTIVE, INACTIVE, UNKNOWN], oin, by_law)


def test_an_organisation_sending_by_law_reaches_every_existing_account(
    accounts: Database,
) -> None:
    store(accounts, row(ACTIVE), row(INACTIVE, False))
    assert may_receive(accounts, BELASTINGDIENST, by_law=True) == {
        ACTIVE: True,
        INACTIVE: True,
        UNKNOWN: False,
    }


def test_an_organisation_without_a_law_reaches_only_active_accounts_that_opted_in(
    accounts: Database,
) -> None:
    store(accounts, row(ACTIVE, True, GEMEENTE), row(INACTIVE, True))
    assert may_receive(accounts, GEMEENTE) == {ACTIVE: True, INACTIVE: False, UNKNOWN: False}


def test_an_inactive_account_receives_nothing_it_opted_in_for(accounts: Database) -> None:
    store(accounts, row(INACTIVE, False, GEMEENTE))
    assert may_receive(accounts, GEMEENTE)[INACTIVE] is False


def test_an_opt_in_for_one_organisation_is_not_one_for_another(accounts: Database) -> None:
    store(accounts, row(ACTIVE, True, BELASTINGDIENST))
    assert may_receive(accounts, GEMEENTE)[ACTIVE] is False


def test_may_receive_answers_once_for_each_bsn_asked(accounts: Database) -> None:
    store(accounts, row(ACTIVE, True, GEMEENTE))
    with accounts.repositories() as repositories:
        answer = repositories.accounts.may_receive([ACTIVE, ACTIVE, UNKNOWN], GEMEENTE, False)
    assert answer == {ACTIVE: True, UNKNOWN: False}


def test_upsert_replaces_the_subscriptions_of_an_account(accounts: Database) -> None:
    store(accounts, row(ACTIVE, True, GEMEENTE, BELASTINGDIENST))
    store(accounts, row(ACTIVE, True, BELASTINGDIENST))
    assert may_receive(accounts, GEMEENTE)[ACTIVE] is False
    assert may_receive(accounts, BELASTINGDIENST)[ACTIVE] is True


def test_upsert_replaces_the_flag_and_email_of_an_existing_account(accounts: Database) -> None:
    store(accounts, row(ACTIVE, True, GEMEENTE, email="oud@example.org"))
    store(accounts, row(ACTIVE, False, GEMEENTE, email="nieuw@example.org"))
    with accounts.transaction() as session:
        stored = session.scalars(select(Account)).all()
        assert [(a.bsn, a.active, a.email) for a in stored] == [
            (ACTIVE, False, "nieuw@example.org")
        ]


def test_upsert_leaves_accounts_it_is_not_given_alone(accounts: Database) -> None:
    store(accounts, row(ACTIVE, True, GEMEENTE))
    store(accounts, row(INACTIVE, True, GEMEENTE))
    assert may_receive(accounts, GEMEENTE) == {ACTIVE: True, INACTIVE: True, UNKNOWN: False}

"""PostgreSQL's connection pool without `pool_pre_ping`: a pooled connection whose backend the
server ended (a restart, pg_terminate_backend) is replaced at checkout, without a query to
find out and without an error for the transaction that gets the replacement."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from adapter.store.engine import create_database_engine
from tests.conftest import postgres_schema
from tests.helpers import wait_until


@pytest.fixture
def url() -> Iterator[str]:
    with postgres_schema() as schema_url:
        yield schema_url


def backend(engine: Engine) -> int:
    with engine.connect() as connection:
        pid: int = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        return pid


def test_a_pooled_connection_whose_backend_was_ended_is_replaced_at_checkout(url: str) -> None:
    engine = create_database_engine(url)
    admin = create_engine(url, poolclass=NullPool)
    try:
        assert engine.pool._pre_ping is False
        first = backend(engine)
        assert backend(engine) == first  # the pool hands out its idle connection again
        with admin.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})

        def ended() -> bool:
            with admin.connect() as connection:
                return not connection.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": first}
                ).scalar_one()

        wait_until(ended, timeout=10, interval=0.05)
        replacement = backend(engine)  # would raise OperationalError on the ended connection
        assert replacement != first
        assert backend(engine) == replacement
    finally:
        engine.dispose()
        admin.dispose()

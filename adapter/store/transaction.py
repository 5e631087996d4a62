"""One transaction as the repositories work in it: its connection, and an ORM session on it
made only when a repository needs one.

A repository is handed either this or a plain `Session` (by the store's own callers and the
tests); `session_of` and `connection_of` give it what it needs from either, and `InUnit` is
the base of the repositories that take both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session


class Transaction:
    """One transaction's connection, and a session on it made only when first asked for.

    A ValidateAbonnementen request runs Core statements only (the accounts lookup, its receipt
    and audit entry), and making a session, beginning and ending its transaction cost as much
    CPU as those statements. So the session is made when a repository that uses it (or a
    caller of `Database.transaction`) first asks. It works in the same transaction: begun by
    the session, when nothing ran on the connection yet, or else joined (then its commit
    only flushes, and `commit` here commits the connection). Either way the transaction
    begins at its first statement, as a session's does: on SQLite that is when the write
    lock is taken.
    """

    def __init__(self, connection: Connection, sessions: Callable[..., Session]) -> None:
        self.connection = connection
        # The transaction's notes (as `Session.info`); once a session exists, its `info`.
        self.info: dict[Any, Any] = {}
        self._sessions = sessions
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        if self._session is None:
            session = self._sessions(bind=self.connection)
            session.info.update(self.info)
            self._session, self.info = session, session.info
        return self._session

    def flush(self) -> None:
        """Write what the session holds, if there is a session."""
        if self._session is not None:
            self._session.flush()

    def commit(self) -> None:
        if self._session is not None:
            self._session.commit()  # commits the connection's transaction if it began it
        if self.connection.in_transaction():
            self.connection.commit()

    def close(self) -> None:
        """End the session, rolling back a transaction it began; the caller closes the
        connection, which rolls back any other."""
        if self._session is not None:
            self._session.close()


def session_of(unit: Session | Transaction) -> Session:
    """The ORM session of `unit` (a Transaction makes it on first use)."""
    return unit if isinstance(unit, Session) else unit.session


def connection_of(unit: Session | Transaction) -> Connection:
    """The connection `unit` works on; a Transaction's without making a session."""
    return unit.connection() if isinstance(unit, Session) else unit.connection


class InUnit:
    """A repository working in one unit: a `Transaction`, or a plain `Session`."""

    def __init__(self, unit: Session | Transaction) -> None:
        self._unit = unit

    @property
    def session(self) -> Session:
        """The unit's ORM session (a Transaction makes it on first use)."""
        return session_of(self._unit)

    @property
    def connection(self) -> Connection:
        """The unit's connection, without making a session."""
        return connection_of(self._unit)

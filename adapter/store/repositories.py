"""The repositories of one transaction, as the profiles and the business rooms see it.

Each repository owns the SQL of one concern; a handler receives this object (or the one
repository it needs) and never a raw session.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from adapter.store.accounts import Accounts
from adapter.store.berichten import Berichten
from adapter.store.blobs import BlobStore
from adapter.store.ebms_messages import EbmsMessages
from adapter.store.messages import Messages
from adapter.store.outbox import Outbox
from adapter.store.receipts import Receipts
from adapter.store.wus_messages import WusMessages
from adapter.store.zaken import Zaken


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


class Repositories:
    def __init__(
        self,
        transaction: Transaction,
        blobs: BlobStore | None = None,
    ) -> None:
        self._transaction = transaction
        self._blobs = blobs

    @property
    def _session(self) -> Session:
        return self._transaction.session

    @cached_property
    def accounts(self) -> Accounts:
        return Accounts(self._transaction)

    @cached_property
    def receipts(self) -> Receipts:
        return Receipts(self._transaction)

    @cached_property
    def zaken(self) -> Zaken:
        return Zaken(self._session)

    @cached_property
    def ebms_messages(self) -> EbmsMessages:
        return EbmsMessages(self._session)

    @cached_property
    def wus_messages(self) -> WusMessages:
        """WS-A MessageIDs used on the WUS services: replay protection."""
        return WusMessages(self._transaction)

    @cached_property
    def outbox(self) -> Outbox:
        return Outbox(self._session)

    @cached_property
    def messages(self) -> Messages:
        """Message administration (`dk-adapter messages`): both directions, and the purge."""
        return Messages(self._session)

    @cached_property
    def berichten(self) -> Berichten:
        if self._blobs is None:
            raise RuntimeError("this database handle was opened without a blob store")
        return Berichten(self._transaction, self._blobs)

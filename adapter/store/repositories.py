"""The repositories of one transaction, as the profiles and the business rooms see it.

Each repository owns the SQL of one concern; a handler receives this object (or the one
repository it needs) and never a raw session.
"""

from __future__ import annotations

from functools import cached_property

from sqlalchemy.orm import Session

from adapter.store.accounts import Accounts
from adapter.store.berichten import Berichten
from adapter.store.blobs import BlobStore
from adapter.store.ebms_messages import EbmsMessages
from adapter.store.messages import Messages
from adapter.store.outbox import Outbox
from adapter.store.receipts import Receipts
from adapter.store.transaction import Transaction
from adapter.store.wus_messages import WusMessages
from adapter.store.zaken import Zaken

__all__ = ["Repositories", "Transaction"]


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

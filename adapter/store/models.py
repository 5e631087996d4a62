"""The tables. Alembic migrations will follow these models (see the operations issue)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out; SQLite would otherwise hand back naive values."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the store keeps moments in UTC only")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime}


def table_of(model: type[Base]) -> Table:
    """The Core table of a model, for statements that bypass the ORM's unit of work."""
    table = model.__table__
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not mapped to a table")
    return table


class Account(Base):
    """A citizen's MijnOverheid account, found by BSN."""

    __tablename__ = "accounts"

    bsn: Mapped[str] = mapped_column(String(9), primary_key=True)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False)
    email: Mapped[str | None] = mapped_column(String(254))
    updated_at: Mapped[datetime] = mapped_column(nullable=False)


class Subscription(Base):
    """A citizen's opt-in for post from one organisation (by OIN)."""

    __tablename__ = "subscriptions"

    bsn: Mapped[str] = mapped_column(
        String(9), ForeignKey("accounts.bsn", ondelete="CASCADE"), primary_key=True
    )
    oin: Mapped[str] = mapped_column(String(20), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(nullable=False)


class ReceiptOutcome(StrEnum):
    """How a stored receipt ended: the request accepted, refused, or a batch judged per Bericht."""

    ACCEPTED = "Geaccepteerd"
    REFUSED = "Geweigerd"
    BERICHTEN = "Berichten"


class StoredReceipt(Base):
    """Every Afleverbevestiging sent, signed XML included, so delivery stays provable."""

    __tablename__ = "receipts"

    receipt_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), nullable=False)
    sender_oin: Mapped[str] = mapped_column(String(20), nullable=False)
    receiver_oin: Mapped[str] = mapped_column(String(20), nullable=False)
    received_at: Mapped[datetime] = mapped_column(nullable=False)
    message_ref: Mapped[str | None] = mapped_column(String(255))
    service: Mapped[str] = mapped_column(String(64), nullable=False)
    operation: Mapped[str] = mapped_column(String(64), nullable=False)
    outcome: Mapped[str] = mapped_column(String(32), nullable=False)  # a ReceiptOutcome
    outcome_code: Mapped[str | None] = mapped_column(String(64))
    xml: Mapped[str] = mapped_column(Text, nullable=False)

    __table_args__ = (
        Index("ix_receipts_sender_received", "sender_oin", "received_at"),
        Index("ix_receipts_request_id", "request_id"),
    )


class Zaak(Base):
    """A citizen's zaak as one organisation reports it; identificatie is unique per OIN."""

    __tablename__ = "zaken"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    oin: Mapped[str] = mapped_column(String(20), nullable=False)
    identificatie: Mapped[str] = mapped_column(String(40), nullable=False)
    omschrijving: Mapped[str] = mapped_column(String(80), nullable=False)
    toelichting: Mapped[str | None] = mapped_column(Text)
    zaaktype_code: Mapped[str | None] = mapped_column(String(20))
    zaaktype_omschrijving: Mapped[str | None] = mapped_column(String(80))
    startdatum: Mapped[date] = mapped_column(Date, nullable=False)
    einddatum_gepland: Mapped[date | None] = mapped_column(Date)
    einddatum: Mapped[date | None] = mapped_column(Date)
    resultaat: Mapped[str | None] = mapped_column(String(80))
    verwijzing: Mapped[str | None] = mapped_column(String(2000))
    initiator_bsn: Mapped[str] = mapped_column(String(9), nullable=False)
    # The current status: the one with the latest datumStatusGezet, denormalised for overviews.
    status_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(nullable=False)
    updated_at: Mapped[datetime] = mapped_column(nullable=False)

    __table_args__ = (
        UniqueConstraint("oin", "identificatie", name="uq_zaken_oin_identificatie"),
        Index("ix_zaken_bsn_oin", "initiator_bsn", "oin"),
    )


class ZaakStatus(Base):
    """One reported status; append-only, so the history stays as it was received."""

    __tablename__ = "zaak_statussen"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    zaak_id: Mapped[int] = mapped_column(ForeignKey("zaken.id", ondelete="CASCADE"), nullable=False)
    code: Mapped[str | None] = mapped_column(String(20))
    omschrijving: Mapped[str] = mapped_column(String(80), nullable=False)
    datum_status_gezet: Mapped[datetime] = mapped_column(nullable=False)
    received_at: Mapped[datetime] = mapped_column(nullable=False)

    __table_args__ = (
        # The same status sent twice is one status (idempotent delivery).
        UniqueConstraint(
            "zaak_id", "datum_status_gezet", "omschrijving", name="uq_zaak_statussen_same"
        ),
        Index("ix_zaak_statussen_received_at", "received_at"),  # for the usage report
    )


class Notification(Base):
    """A message to a citizen that is still to be sent (or was), e.g. a new zaak status."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bsn: Mapped[str] = mapped_column(String(9), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    zaak_status_id: Mapped[int | None] = mapped_column(
        ForeignKey("zaak_statussen.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = mapped_column(nullable=False)
    sent_at: Mapped[datetime | None] = mapped_column()  # handed to the mail server
    # A new letter ("bericht") or a reminder ("herinnering") names its letter; the unique key
    # makes queueing idempotent, so two schedulers never queue one letter twice.
    bericht_id: Mapped[str | None] = mapped_column(
        ForeignKey("berichten.bericht_id", ondelete="CASCADE")
    )
    # pending / sending / sent / skipped / failed / missed (see adapter.jobs.notifications)
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default="pending", server_default="pending"
    )
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    # While a scheduler sends, the row is leased to it; a crashed sender's lease runs out.
    claimed_until: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_notifications_unsent", "sent_at", "created_at"),
        Index("ix_notifications_due", "status", "next_attempt_at"),
        UniqueConstraint("kind", "bericht_id", name="uq_notifications_kind_bericht"),
    )


class Bericht(Base):
    """A letter accepted for a citizen's Berichtenbox; visible from `visible_from`."""

    __tablename__ = "berichten"

    bericht_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(36), nullable=False)
    leverancier_oin: Mapped[str] = mapped_column(String(20), nullable=False)
    bsn: Mapped[str] = mapped_column(String(9), nullable=False)
    bericht_type: Mapped[str] = mapped_column(String(8), nullable=False)
    onderwerp: Mapped[str] = mapped_column(String(50), nullable=False)
    tekst: Mapped[str | None] = mapped_column(Text)
    referentie: Mapped[str | None] = mapped_column(String(25))
    eind_datum_handelingstermijn: Mapped[datetime | None] = mapped_column()
    visible_from: Mapped[datetime] = mapped_column(nullable=False)
    received_at: Mapped[datetime] = mapped_column(nullable=False)
    ebms_message_id: Mapped[str] = mapped_column(String(255), nullable=False)
    # The citizen's side. `opened_at` serves only the reminder and is never shown to an
    # organisation. `folder` is postvak / archief / prullenbak / gewist; "gewist" means the
    # bin was emptied: the content is gone, the row stays for receipts and usage counts.
    opened_at: Mapped[datetime | None] = mapped_column()
    # No server default here (the migration has one, for rows that existed before): with a
    # server default the ORM fetches it back with RETURNING, which turns the executemany of a
    # 1000-letter batch into one huge uncached statement (PostgreSQL intake 60 % slower).
    folder: Mapped[str] = mapped_column(String(12), nullable=False, default="postvak")

    __table_args__ = (
        Index("ix_berichten_bsn_visible", "bsn", "visible_from"),
        Index("ix_berichten_visible_from", "visible_from"),  # the notification job's scan
        # The monthly usage report counts per leverancier by time of receipt.
        Index("ix_berichten_received_leverancier", "received_at", "leverancier_oin"),
    )


class Bijlage(Base):
    """An attachment's content, stored once by SHA-256 in the blob store; here its metadata."""

    __tablename__ = "bijlagen"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    media_type: Mapped[str] = mapped_column(String(100), nullable=False)
    stored_at: Mapped[datetime] = mapped_column(nullable=False)
    # The PDF/A part and conformance the file's XMP metadata declares ("2A"); NULL when it
    # declares none, and for contents stored before the PDF check recorded it.
    pdfa: Mapped[str | None] = mapped_column(String(8))


class BerichtBijlage(Base):
    """A Bericht's attachments: personal (inside the Bericht) or general (a shared MIME part)."""

    __tablename__ = "bericht_bijlagen"

    bericht_id: Mapped[str] = mapped_column(
        ForeignKey("berichten.bericht_id", ondelete="CASCADE"), primary_key=True
    )
    soort: Mapped[str] = mapped_column(String(12), primary_key=True)  # persoonlijk / algemeen
    volgorde: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("bijlagen.sha256"), nullable=False)
    omschrijving: Mapped[str] = mapped_column(String(128), nullable=False)


class EbmsMessage(Base):
    """Every ebMS message received, with the answer it got, for duplicate elimination."""

    __tablename__ = "ebms_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    from_oin: Mapped[str] = mapped_column(String(20), nullable=False)
    message_id: Mapped[str] = mapped_column(String(255), nullable=False)
    cpa_id: Mapped[str] = mapped_column(String(255), nullable=False)
    conversation_id: Mapped[str] = mapped_column(String(255), nullable=False)
    action: Mapped[str] = mapped_column(String(255), nullable=False)
    received_at: Mapped[datetime] = mapped_column(nullable=False)
    receipt_id: Mapped[str | None] = mapped_column(String(36))
    # The synchronous HTTP answer, sent again unchanged when the same MessageId comes back.
    answer_content_type: Mapped[str | None] = mapped_column(String(255))
    answer_body: Mapped[bytes | None] = mapped_column(LargeBinary)

    __table_args__ = (
        UniqueConstraint("from_oin", "message_id", name="uq_ebms_messages_sender_id"),
        # `dk-adapter messages list` by period, and the purge after PersistDuration.
        Index("ix_ebms_messages_received_at", "received_at"),
    )


class WusMessage(Base):
    """A WS-A MessageID an organisation used, with the answer its accepted request got.

    Replay protection of the WUS services (adapter.soap.replay): the unique (sender,
    MessageID) key lets only one of two concurrent copies in; a row older than the replay
    window is taken over by the next request that uses its MessageID.
    """

    __tablename__ = "wus_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sender_oin: Mapped[str] = mapped_column(String(20), nullable=False)
    message_id: Mapped[str] = mapped_column(String(255), nullable=False)
    service: Mapped[str] = mapped_column(String(64), nullable=False)
    body_hash: Mapped[str] = mapped_column(String(64), nullable=False)  # as in the receipt
    received_at: Mapped[datetime] = mapped_column(nullable=False)
    receipt_id: Mapped[str | None] = mapped_column(String(36))
    # The HTTP answer, sent again unchanged (same receipt) for a repeat within the window.
    answer: Mapped[bytes | None] = mapped_column(LargeBinary)

    __table_args__ = (
        UniqueConstraint("sender_oin", "message_id", name="uq_wus_messages_sender_id"),
        Index("ix_wus_messages_received_at", "received_at"),  # the purge past the window
    )


class OutboxMessage(Base):
    """An ebMS message to deliver, stored before its first attempt and retried per its CPA."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    ref_to_message_id: Mapped[str | None] = mapped_column(String(255), index=True)
    cpa_id: Mapped[str] = mapped_column(String(255), nullable=False)
    to_oin: Mapped[str] = mapped_column(String(20), nullable=False)
    endpoint: Mapped[str] = mapped_column(String(2000), nullable=False)
    action: Mapped[str] = mapped_column(String(255), nullable=False)
    content_type: Mapped[str] = mapped_column(String(255), nullable=False)
    body: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    # A signal (Acknowledgment, MessageError) is done once delivered; a business message only
    # once the peer acknowledged it.
    needs_ack: Mapped[bool] = mapped_column(Boolean, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # pending/sent/delivered/failed
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    retry_interval_seconds: Mapped[int] = mapped_column(Integer, nullable=False)
    next_attempt_at: Mapped[datetime] = mapped_column(nullable=False)
    expires_at: Mapped[datetime] = mapped_column(nullable=False)
    created_at: Mapped[datetime] = mapped_column(nullable=False)
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        # `dk-adapter messages list` by period, and the purge after PersistDuration.
        Index("ix_outbox_created_at", "created_at"),
    )


class OutboxAttempt(Base):
    """One delivery attempt of an outbox message and how it ended, for `messages show`.

    The outbox row keeps only the latest state; these rows keep the history an administrator
    needs to see why a message failed. They go with their message when it is purged.
    """

    __tablename__ = "outbox_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    outbox_id: Mapped[int] = mapped_column(
        ForeignKey("outbox.id", ondelete="CASCADE"), nullable=False
    )
    attempted_at: Mapped[datetime] = mapped_column(nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # the state it left
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_outbox_attempts_outbox", "outbox_id", "attempted_at"),)


class AuditEntry(Base):
    """One link of the audit hash chain: a receipt or refusal, committing to the one before.

    `seq` counts 1, 2, 3 … without gaps; `entry_hash` is SHA-256 over the canonical JSON of the
    other columns (see `adapter.store.audit.canonical`), so altering a row, or the receipt XML
    whose `content_hash` it holds, shows up in `dk-adapter audit verify`.
    """

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    recorded_at: Mapped[datetime] = mapped_column(nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # receipt / refusal
    receipt_id: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    sender_oin: Mapped[str] = mapped_column(String(20), nullable=False)
    service: Mapped[str] = mapped_column(String(64), nullable=False)
    operation: Mapped[str] = mapped_column(String(64), nullable=False)
    outcome: Mapped[str] = mapped_column(String(32), nullable=False)
    outcome_code: Mapped[str | None] = mapped_column(String(64))
    content_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    entry_hash: Mapped[str] = mapped_column(String(64), nullable=False)

    __table_args__ = (Index("ix_audit_log_recorded_at", "recorded_at", "seq"),)


class SubscriptionChange(Base):
    """Every change of who may receive post from whom, with its moment.

    With an OIN: an opt-in (`subscribed` true) or opt-out for that organisation, by the citizen
    or an account import. Without an OIN: a change of the account itself, which matters to
    every organisation: it was created or its activation changed (`subscribed` is then the
    account's `active` afterwards). The AbonnementAanvraag variant Mutatie reads this history.
    """

    __tablename__ = "subscription_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bsn: Mapped[str] = mapped_column(String(9), nullable=False)
    oin: Mapped[str | None] = mapped_column(String(20))  # None: the account itself
    subscribed: Mapped[bool] = mapped_column(Boolean, nullable=False)
    changed_at: Mapped[datetime] = mapped_column(nullable=False)
    # "instellingen", "api", "import", "activatie", "aanvang" (the state when history began)
    source: Mapped[str] = mapped_column(String(16), nullable=False)

    __table_args__ = (
        Index("ix_subscription_changes_bsn", "bsn", "changed_at"),
        Index("ix_subscription_changes_changed_at", "changed_at"),
    )


class CitizenSession(Base):
    """A logged-in citizen's session; the cookie holds a secret whose SHA-256 is the key."""

    __tablename__ = "citizen_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    bsn: Mapped[str] = mapped_column(String(9), nullable=False)
    csrf_token: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(nullable=False)

    __table_args__ = (Index("ix_citizen_sessions_last_seen", "last_seen_at"),)


class CitizenSettings(Base):
    """A citizen's own choices, kept apart from `accounts` (which the account import owns).

    Reminders are on unless turned off; `activated_at` records the first login, which is what
    activates the account.
    """

    __tablename__ = "citizen_settings"

    bsn: Mapped[str] = mapped_column(
        String(9), ForeignKey("accounts.bsn", ondelete="CASCADE"), primary_key=True
    )
    reminders: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    activated_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(nullable=False)

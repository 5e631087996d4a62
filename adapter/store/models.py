"""The tables. Alembic migrations will follow these models (see the operations issue)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Account(Base):
    """A citizen's MijnOverheid account, found by BSN."""

    __tablename__ = "accounts"

    bsn: Mapped[str] = mapped_column(String(9), primary_key=True)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False)
    email: Mapped[str | None] = mapped_column(String(254))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class Subscription(Base):
    """A citizen's opt-in for post from one organisation (by OIN)."""

    __tablename__ = "subscriptions"

    bsn: Mapped[str] = mapped_column(
        String(9), ForeignKey("accounts.bsn", ondelete="CASCADE"), primary_key=True
    )
    oin: Mapped[str] = mapped_column(String(20), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class StoredReceipt(Base):
    """Every Afleverbevestiging sent, signed XML included, so delivery stays provable."""

    __tablename__ = "receipts"

    receipt_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), nullable=False)
    sender_oin: Mapped[str] = mapped_column(String(20), nullable=False)
    receiver_oin: Mapped[str] = mapped_column(String(20), nullable=False)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    message_ref: Mapped[str | None] = mapped_column(String(255))
    service: Mapped[str] = mapped_column(String(64), nullable=False)
    operation: Mapped[str] = mapped_column(String(64), nullable=False)
    outcome: Mapped[str] = mapped_column(String(32), nullable=False)
    outcome_code: Mapped[str | None] = mapped_column(String(64))
    xml: Mapped[str] = mapped_column(Text, nullable=False)

    __table_args__ = (
        Index("ix_receipts_sender_received", "sender_oin", "received_at"),
        Index("ix_receipts_request_id", "request_id"),
    )

"""wus_messages: the WS-A MessageIDs organisations used, for replay protection (issue 14)

One row per (sender, MessageID) whose request was accepted, with the answer it got; the
unique key is what keeps two concurrent copies from both being processed.

Revision ID: e1f2a3b4c5d6
Revises: d7e8f9a0b1c2
Create Date: 2026-12-01 15:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "e1f2a3b4c5d6"
down_revision: str | Sequence[str] | None = "d7e8f9a0b1c2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "wus_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sender_oin", sa.String(length=20), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("body_hash", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("receipt_id", sa.String(length=36), nullable=True),
        sa.Column("answer", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sender_oin", "message_id", name="uq_wus_messages_sender_id"),
    )
    op.create_index("ix_wus_messages_received_at", "wus_messages", ["received_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_wus_messages_received_at", table_name="wus_messages")
    op.drop_table("wus_messages")

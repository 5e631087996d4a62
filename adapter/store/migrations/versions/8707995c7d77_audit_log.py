"""The audit hash chain: table audit_log (see adapter.store.audit).

Revision ID: 8707995c7d77
Revises: 4315adb302d6
Create Date: 2026-11-23 21:33:05.989851

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "8707995c7d77"
down_revision: str | Sequence[str] | None = "4315adb302d6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("receipt_id", sa.String(length=36), nullable=False),
        sa.Column("sender_oin", sa.String(length=20), nullable=False),
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("operation", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("outcome_code", sa.String(length=64), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("receipt_id"),
    )
    op.create_index("ix_audit_log_recorded_at", "audit_log", ["recorded_at", "seq"], unique=False)


def downgrade() -> None:
    op.drop_table("audit_log")

"""The citizen side (issue 10): opened/folder on berichten, the notification queue's state,
opt-in history, citizen settings and citizen sessions.

Every new column on an existing table has a server default, so rows stored before this
revision read as "in the inbox, unopened, notification pending".

Revision ID: c1d2e3f4a5b6
Revises: 125931d964f8
Create Date: 2026-12-01 11:30:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "c1d2e3f4a5b6"
down_revision: str | Sequence[str] | None = "125931d964f8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("berichten", schema=None) as batch_op:
        batch_op.add_column(sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("folder", sa.String(length=12), server_default="postvak", nullable=False)
        )
        batch_op.create_index("ix_berichten_visible_from", ["visible_from"], unique=False)

    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bericht_id", sa.String(length=36), nullable=True))
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), server_default="pending", nullable=False)
        )
        batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch_op.create_index("ix_notifications_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_unique_constraint("uq_notifications_kind_bericht", ["kind", "bericht_id"])
        batch_op.create_foreign_key(
            "fk_notifications_bericht_id",
            "berichten",
            ["bericht_id"],
            ["bericht_id"],
            ondelete="CASCADE",
        )

    op.create_table(
        "subscription_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("bsn", sa.String(length=9), nullable=False),
        sa.Column("oin", sa.String(length=20), nullable=False),
        sa.Column("subscribed", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_subscription_changes_bsn",
        "subscription_changes",
        ["bsn", "changed_at"],
        unique=False,
    )
    op.create_table(
        "citizen_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("bsn", sa.String(length=9), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index(
        "ix_citizen_sessions_last_seen", "citizen_sessions", ["last_seen_at"], unique=False
    )
    op.create_table(
        "citizen_settings",
        sa.Column("bsn", sa.String(length=9), nullable=False),
        sa.Column("reminders", sa.Boolean(), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["bsn"], ["accounts.bsn"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("bsn"),
    )


def downgrade() -> None:
    op.drop_table("citizen_settings")
    op.drop_index("ix_citizen_sessions_last_seen", table_name="citizen_sessions")
    op.drop_table("citizen_sessions")
    op.drop_index("ix_subscription_changes_bsn", table_name="subscription_changes")
    op.drop_table("subscription_changes")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_constraint("fk_notifications_bericht_id", type_="foreignkey")
        batch_op.drop_constraint("uq_notifications_kind_bericht", type_="unique")
        batch_op.drop_index("ix_notifications_due")
        for column in (
            "last_error",
            "claimed_until",
            "next_attempt_at",
            "attempts",
            "status",
            "bericht_id",
        ):
            batch_op.drop_column(column)
    with op.batch_alter_table("berichten", schema=None) as batch_op:
        batch_op.drop_index("ix_berichten_visible_from")
        batch_op.drop_column("folder")
        batch_op.drop_column("opened_at")

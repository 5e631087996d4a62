"""Subscription history for AbonnementAanvraag, and message administration (issue 11).

`subscription_changes.oin` becomes optional: a row without an OIN records a change of the
account itself (created, activated), which matters to every organisation. The history is
started with the state at this migration (source "aanvang"): one row per account and one per
subscription, so the Mutatie variant knows what everybody's state was from here on; a Mutatie
request for a moment before this migration therefore lists everybody (never too few).

Indexes for the Mutatie scan (changes by moment) and for listing and purging messages by
moment; and `outbox_attempts`, the history of each delivery attempt.

Revision ID: d4e5f6a7b8c9
Revises: c1d2e3f4a5b6
Create Date: 2026-12-01 12:00:00.000000

"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "d4e5f6a7b8c9"
down_revision: str | Sequence[str] | None = "c1d2e3f4a5b6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MOMENT = sa.DateTime(timezone=True)


def _start_history() -> None:
    # Plain table stand-ins: revisions never import the models (those change, revisions not).
    changes = sa.table(
        "subscription_changes",
        sa.column("bsn", sa.String),
        sa.column("oin", sa.String),
        sa.column("subscribed", sa.Boolean),
        sa.column("changed_at", _MOMENT),
        sa.column("source", sa.String),
    )
    accounts = sa.table("accounts", sa.column("bsn", sa.String), sa.column("active", sa.Boolean))
    subscriptions = sa.table("subscriptions", sa.column("bsn", sa.String), sa.column("oin"))
    now = sa.literal(datetime.now(UTC), _MOMENT)
    columns = ["bsn", "oin", "subscribed", "changed_at", "source"]
    op.execute(
        changes.insert().from_select(
            columns,
            sa.select(
                accounts.c.bsn,
                sa.null(),
                accounts.c.active,
                now,
                sa.literal("aanvang", sa.String),
            ),
        )
    )
    op.execute(
        changes.insert().from_select(
            columns,
            sa.select(
                subscriptions.c.bsn,
                subscriptions.c.oin,
                sa.true(),
                now,
                sa.literal("aanvang", sa.String),
            ),
        )
    )


def upgrade() -> None:
    with op.batch_alter_table("subscription_changes", schema=None) as batch_op:
        batch_op.alter_column("oin", existing_type=sa.String(length=20), nullable=True)
        batch_op.create_index("ix_subscription_changes_changed_at", ["changed_at"], unique=False)
    _start_history()
    with op.batch_alter_table("ebms_messages", schema=None) as batch_op:
        batch_op.create_index("ix_ebms_messages_received_at", ["received_at"], unique=False)
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_created_at", ["created_at"], unique=False)
    op.create_table(
        "outbox_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["outbox_id"], ["outbox.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_outbox_attempts_outbox", "outbox_attempts", ["outbox_id", "attempted_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_attempts_outbox", table_name="outbox_attempts")
    op.drop_table("outbox_attempts")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_created_at")
    with op.batch_alter_table("ebms_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_ebms_messages_received_at")
    # Account rows have no OIN to keep; the opt-in history stays.
    op.execute(sa.text("DELETE FROM subscription_changes WHERE oin IS NULL"))
    with op.batch_alter_table("subscription_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_subscription_changes_changed_at")
        batch_op.alter_column("oin", existing_type=sa.String(length=20), nullable=False)

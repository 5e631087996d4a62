"""bijlagen.pdfa: the PDF/A part and conformance an attachment's XMP metadata declares

Nullable: NULL is "declares no PDF/A", and also what contents stored before this revision
read as, since they were never parsed for it.

Revision ID: d7e8f9a0b1c2
Revises: d4e5f6a7b8c9
Create Date: 2026-12-01 12:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "d7e8f9a0b1c2"
down_revision: str | Sequence[str] | None = "d4e5f6a7b8c9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bijlagen", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pdfa", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bijlagen", schema=None) as batch_op:
        batch_op.drop_column("pdfa")

"""PostgreSQL: the large values are compressed with lz4 instead of pglz

Signed receipts, the answers stored for duplicates, outbox messages and letter texts go to
TOAST, compressed. A 1000-Bericht batch writes 570 KB of them: its receipt (128 KB, naming
every BerichtID), the Acknowledgment stored for a duplicate (129 KB, with a copy of the
receipt) and the BerichtVerwerkResponse in the outbox (313 KB, another copy); PostgreSQL's own
pglz is several times slower than lz4 at it, on a server whose CPU the adapter shares.
Measured over mutual TLS, batches of 1000, this migration against none (two runs each,
alternated): PostgreSQL's own CPU per batch 36-40 ms against 45-48 ms. Berichten/s stayed
within the noise of a machine whose two cores the server, PostgreSQL and the load share
(seven runs each: 9.2k-12.7k with lz4, mean 10.9k; 8.4k-13.2k with pglz, mean 10.2k).

Only where the server can (PostgreSQL 14 and newer, built with lz4, as Debian's packages and
the official images are); elsewhere, and on SQLite, nothing changes. Values stored before keep
their compression until they are written again; both read the same.

Revision ID: f2a3b4c5d6e7
Revises: e1f2a3b4c5d6
Create Date: 2026-12-03 11:30:00.000000

"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy.engine import Connection

# revision identifiers, used by Alembic.
revision: str = "f2a3b4c5d6e7"
down_revision: str | Sequence[str] | None = "e1f2a3b4c5d6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column): the values that grow with a batch or a message.
LARGE_VALUES = (
    ("receipts", "xml"),
    ("outbox", "body"),
    ("ebms_messages", "answer_body"),
    ("wus_messages", "answer"),
    ("berichten", "tekst"),
)


def _has_lz4(bind: Connection) -> bool:
    if bind.dialect.name != "postgresql":
        return False
    # No row before PostgreSQL 14, which has no choice of compression at all.
    found = bind.exec_driver_sql(
        "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
    ).scalar()
    return bool(found)


def _compress_with(method: str) -> None:
    if not _has_lz4(op.get_bind()):
        return
    for table, column in LARGE_VALUES:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {method}")


def upgrade() -> None:
    _compress_with("lz4")


def downgrade() -> None:
    _compress_with("default")

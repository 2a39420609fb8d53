"""A ritual directory: each household's own file, as the ledger keeps it (its content hash,
its last good version, and the hash its plan was last made from), and which layout the
synced file is (one file, or a directory's rituals.toml)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-15 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


# Plain ALTER TABLE, not a batch (as in 0007): on SQLite a batch copies the table, and
# dropping the old household table with partners and occurrences pointing at it breaks their
# foreign keys. SQLite adds and (since 3.35) drops a column in place.


def upgrade() -> None:
    op.add_column("household", sa.Column("config_hash", sa.String(length=64), nullable=True))
    op.add_column("household", sa.Column("config_json", sa.Text(), nullable=True))
    op.add_column("household", sa.Column("planned_hash", sa.String(length=64), nullable=True))
    op.add_column("config_state", sa.Column("layout", sa.String(length=16), nullable=True))


def downgrade() -> None:
    # A directory's households then have no file the ledger keeps: go back to one ritual
    # file (the directory stays as it is on disk).
    op.drop_column("config_state", "layout")
    op.drop_column("household", "planned_hash")
    op.drop_column("household", "config_json")
    op.drop_column("household", "config_hash")

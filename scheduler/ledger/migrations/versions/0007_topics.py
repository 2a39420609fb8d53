"""Topics: an occurrence records the deck its item was drawn from (occurrence.deck), since a
ritual may rotate a list of decks

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


# Plain ALTER TABLE, not a batch: on SQLite a batch copies the table, and dropping the old
# occurrence table with deliveries pointing at it breaks their foreign keys. SQLite adds a
# column in place, and drops one in place since 3.35 (2021).


def upgrade() -> None:
    op.add_column("occurrence", sa.Column("deck", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("occurrence", "deck")

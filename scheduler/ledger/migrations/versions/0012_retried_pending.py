"""Missed deliveries found without a scan: an index of the pending deliveries a failed try put
back (the only pending ones whose next attempt can come after their grace), so marking the
missed ones reads the due ones and these, not every pending delivery

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-16 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# As scheduler.ledger.rows.RETRIED_PENDING at this revision (a migration does not follow later
# changes of the models).
_RETRIED = sa.text("status = 'pending' AND attempts > 0")


def upgrade() -> None:
    op.create_index(
        "ix_delivery_retried_expires_at",
        "delivery",
        ["status", "expires_at"],
        sqlite_where=_RETRIED,
        postgresql_where=_RETRIED,
    )


def downgrade() -> None:
    op.drop_index("ix_delivery_retried_expires_at", table_name="delivery")

"""Strangers: an index of the messages from unknown numbers that were answered, so an
unknown number is answered at most once a day without a scan of its flood

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# As scheduler.ledger.rows.STRANGER_ANSWERED at this revision (a migration does not follow later
# changes of the models).
_ANSWERED = sa.text("household_id IS NULL AND answer <> ''")


def upgrade() -> None:
    op.create_index(
        "ix_inbound_message_stranger_answered",
        "inbound_message",
        ["sender", "received_at"],
        sqlite_where=_ANSWERED,
        postgresql_where=_ANSWERED,
    )


def downgrade() -> None:
    op.drop_index("ix_inbound_message_stranger_answered", table_name="inbound_message")

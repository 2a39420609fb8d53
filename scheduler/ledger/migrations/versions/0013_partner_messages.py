"""A partner's own messages found by their own index: counting the TELLs a partner passed on
today read every delivery of every household (SQLite put the delivery table first)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 19:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_inbound_message_partner_received_at",
        "inbound_message",
        ["household_id", "partner_key", "received_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_inbound_message_partner_received_at", table_name="inbound_message")

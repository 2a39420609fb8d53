"""Delivery receipts: the provider's later word on a sent message, found by its id, and
receipts that came before the id was recorded

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 16:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("provider_status", sa.String(length=16), nullable=True))
    op.create_index("ix_delivery_provider_id", "delivery", ["provider_id"])
    op.create_table(
        "provider_receipt",
        sa.Column("provider_id", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=16), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("provider_id", name=op.f("pk_provider_receipt")),
    )


def downgrade() -> None:
    op.drop_table("provider_receipt")
    op.drop_index("ix_delivery_provider_id", table_name="delivery")
    with op.batch_alter_table("delivery") as batch:
        batch.drop_column("provider_status")

"""TELL: a partner's appreciation passed on is a delivery about no occurrence, made once per
inbound message (delivery.inbound_id, unique with the recipient and the channel)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("inbound_id", sa.String(length=128), nullable=True))
        batch.alter_column(
            "occurrence_id",
            existing_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        )
        batch.create_unique_constraint(
            "uq_delivery_inbound_id", ["inbound_id", "partner_key", "channel"]
        )


def downgrade() -> None:
    # TELLs have no occurrence, which the older schema requires of every delivery.
    op.execute("DELETE FROM delivery WHERE occurrence_id IS NULL")
    with op.batch_alter_table("delivery") as batch:
        batch.drop_constraint("uq_delivery_inbound_id", type_="unique")
        batch.alter_column(
            "occurrence_id",
            existing_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        )
        batch.drop_column("inbound_id")

"""Replies and streaks: inbound messages deduplicated by Twilio's idempotency token and
counted per sender, partners found by phone, skips that used a freeze, pauses, and streak
checkpoints

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 18:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_message") as batch:
        batch.add_column(sa.Column("idempotency_token", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("command", sa.String(length=16), nullable=True))
        batch.create_unique_constraint(
            op.f("uq_inbound_message_idempotency_token"), ["idempotency_token"]
        )
    with op.batch_alter_table("completion") as batch:
        batch.add_column(
            sa.Column("froze", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_index(
        "ix_inbound_message_sender_received_at", "inbound_message", ["sender", "received_at"]
    )
    op.create_index("ix_partner_phone", "partner", ["phone"])
    op.create_index(
        "ix_delivery_partner_sent_at", "delivery", ["household_id", "partner_key", "sent_at"]
    )
    op.create_table(
        "pause",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("household_id", sa.String(length=64), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("ends_at", sa.DateTime(), nullable=False),
        sa.Column("partner_key", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["household_id"], ["household.id"], name=op.f("fk_pause_household_id_household")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pause")),
    )
    op.create_index("ix_pause_household_id", "pause", ["household_id"])
    op.create_table(
        "streak_checkpoint",
        sa.Column("household_id", sa.String(length=64), nullable=False),
        sa.Column("ritual_id", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=64), nullable=False),
        sa.Column("rules", sa.String(length=200), nullable=False),
        sa.Column("through", sa.DateTime(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint(
            "household_id", "ritual_id", "recipient", name=op.f("pk_streak_checkpoint")
        ),
    )


def downgrade() -> None:
    op.drop_table("streak_checkpoint")
    op.drop_index("ix_pause_household_id", table_name="pause")
    op.drop_table("pause")
    op.drop_index("ix_delivery_partner_sent_at", table_name="delivery")
    op.drop_index("ix_partner_phone", table_name="partner")
    op.drop_index("ix_inbound_message_sender_received_at", table_name="inbound_message")
    with op.batch_alter_table("completion") as batch:
        batch.drop_column("froze")
    with op.batch_alter_table("inbound_message") as batch:
        batch.drop_constraint(op.f("uq_inbound_message_idempotency_token"), type_="unique")
        batch.drop_column("command")
        batch.drop_column("idempotency_token")

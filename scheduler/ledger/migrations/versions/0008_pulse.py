"""The pulse: a partner's 1-5 rating of a check-in (rating, one per partner and occurrence),
how each pulse check-in went out (pulse_turn: the longer conversation, the support message),
and a pulse check-in's other wordings on its delivery (delivery.pulse)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("pulse", sa.JSON(), nullable=True))
    op.create_table(
        "rating",
        sa.Column("id", _ID, nullable=False),
        sa.Column("household_id", sa.String(length=64), nullable=False),
        sa.Column("partner_key", sa.String(length=64), nullable=False),
        sa.Column("occurrence_id", _ID, nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("rated_at", sa.DateTime(), nullable=False),
        sa.Column("inbound_id", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["occurrence_id"], ["occurrence.id"], name=op.f("fk_rating_occurrence_id_occurrence")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rating")),
        sa.UniqueConstraint("occurrence_id", "partner_key", name=op.f("uq_rating_occurrence_id")),
    )
    op.create_index("ix_rating_household_id_rated_at", "rating", ["household_id", "rated_at"])
    op.create_table(
        "pulse_turn",
        sa.Column("occurrence_id", _ID, nullable=False),
        sa.Column("household_id", sa.String(length=64), nullable=False),
        sa.Column("ritual_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("conversation", sa.Boolean(), nullable=False),
        sa.Column("support", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["occurrence.id"],
            name=op.f("fk_pulse_turn_occurrence_id_occurrence"),
        ),
        sa.PrimaryKeyConstraint("occurrence_id", name=op.f("pk_pulse_turn")),
    )
    op.create_index(
        "ix_pulse_turn_household_id_at", "pulse_turn", ["household_id", "ritual_id", "at"]
    )


def downgrade() -> None:
    op.drop_index("ix_pulse_turn_household_id_at", table_name="pulse_turn")
    op.drop_table("pulse_turn")
    op.drop_index("ix_rating_household_id_rated_at", table_name="rating")
    op.drop_table("rating")
    # A share_pulse line is about no occurrence, as a TELL is: kept, as the older schema can.
    with op.batch_alter_table("delivery") as batch:
        batch.drop_column("pulse")

"""The couple's page: each page URL's generation (page_token), which ``tend page-url
--rotate`` raises to revoke the URLs given before

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-14 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "page_token",
        sa.Column("household_id", sa.String(length=64), nullable=False),
        sa.Column("partner_key", sa.String(length=64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("rotated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("household_id", "partner_key", name=op.f("pk_page_token")),
    )


def downgrade() -> None:
    # Every page URL goes back to generation 0: the ones revoked work again. Said in
    # docs/deployment.md's note on going back a release.
    op.drop_table("page_token")

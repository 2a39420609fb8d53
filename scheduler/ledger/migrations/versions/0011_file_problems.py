"""The ritual file's problems as the planner last read it: what `tend status` shows while a
file (rituals.toml, a household's file, or the one ritual file) is broken and the worker
runs on its last good version

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-16 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("config_state", sa.Column("problems", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("config_state", "problems")

"""A job's confirmation runs as chunk jobs of its own (``confirm_chunk``), which read the
checkpoint and candidates its training attempt left (``staged_attempt``).

Revision ID: 0006_confirm_chunks
Revises: 0005_job_epochs
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_confirm_chunks"
down_revision = "0005_job_epochs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("confirm_chunk", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("staged_attempt", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("staged_attempt")
        batch.drop_column("confirm_chunk")

"""Every finished epoch of a running job, so its curves can be drawn while it trains.

Revision ID: 0005_job_epochs
Revises: 0004_job_replicas
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_job_epochs"
down_revision = "0004_job_replicas"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_epochs",
        sa.Column("job_id", sa.String(40), sa.ForeignKey("jobs.id"), primary_key=True),
        sa.Column("epoch", sa.Integer(), primary_key=True),
        sa.Column("record", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("job_epochs")

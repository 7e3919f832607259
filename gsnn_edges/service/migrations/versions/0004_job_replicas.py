"""Replicas of a job are jobs of their own, pointing at the job they belong to.

Revision ID: 0004_job_replicas
Revises: 0003_result_attempt
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_job_replicas"
down_revision = "0003_result_attempt"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("parent_id", sa.String(40), nullable=True))
        batch.add_column(sa.Column("replica", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_jobs_parent_id", "jobs", ["parent_id"], ["id"])
        batch.create_index("ix_jobs_parent_id", ["parent_id"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_parent_id")
        batch.drop_constraint("fk_jobs_parent_id", type_="foreignkey")
        batch.drop_column("replica")
        batch.drop_column("parent_id")

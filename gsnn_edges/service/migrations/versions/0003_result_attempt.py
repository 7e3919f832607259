"""Jobs name the attempt whose result files they publish (fencing).

Revision ID: 0003_result_attempt
Revises: 0002_job_sends
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_result_attempt"
down_revision = "0002_job_sends"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("result_attempt", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("result_attempt")

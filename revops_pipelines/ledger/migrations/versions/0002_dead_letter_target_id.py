"""Dead letters keep the record's id in the target, so a replayed update finds its record.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dead_letter") as batch:
        batch.add_column(sa.Column("target_id", sa.String(255)))


def downgrade() -> None:
    with op.batch_alter_table("dead_letter") as batch:
        batch.drop_column("target_id")

"""external runs: runs a researcher's own script trains and logs through the SDK, keyed by the SDK's run id

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("external_id", sa.String(64), nullable=True))
        batch_op.create_index("ix_runs_external_id", ["external_id"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_external_id")
        batch_op.drop_column("external_id")

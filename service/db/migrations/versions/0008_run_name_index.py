"""run names indexed: storing a run looks its name up among all the others (names are unique), and the runs
table sorts by name; both scanned the whole table

Revision ID: 0008
Revises: 0007
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_runs_name", "runs", ["name"])


def downgrade() -> None:
    op.drop_index("ix_runs_name", table_name="runs")

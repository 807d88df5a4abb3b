"""workspace: projects on runs and sweeps, each run's environment, and saved views of the dashboard's pages

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("project", sa.String(100), nullable=True))
        batch_op.add_column(sa.Column("environment", JSONType, nullable=True))
        batch_op.create_index("ix_runs_project", ["project"])
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("project", sa.String(100), nullable=True))
        batch_op.create_index("ix_sweeps_project", ["project"])
    op.create_table(
        "saved_views",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("page", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("query", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("page", "name", name="uq_saved_views_page_name"),
    )


def downgrade() -> None:
    op.drop_table("saved_views")
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.drop_index("ix_sweeps_project")
        batch_op.drop_column("project")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_project")
        batch_op.drop_column("environment")
        batch_op.drop_column("project")

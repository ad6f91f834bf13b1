"""rule files kept: each applied rule set's files, for the desk's diff of two versions

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 10:00:00

`rule_sets.files` maps each file of the rules folder to the SHA-256 of its text, and
`rule_files` holds each text once. Rule sets applied before this have no files kept.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rule_files",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_rule_files")),
    )
    with op.batch_alter_table("rule_sets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("files", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rule_sets", schema=None) as batch_op:
        batch_op.drop_column("files")
    op.drop_table("rule_files")

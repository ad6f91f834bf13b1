"""group life: reminders, closing, acknowledgements

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 04:45:00

A group now reminds after repeat_interval while nobody acknowledged it, and closes after
close_after without a report; its timers live in the row so that a restart resumes them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alert_groups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_report_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("repeat_interval_s", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("close_after_s", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("acked_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "group_acks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("group_id", sa.String(length=32), nullable=False),
        sa.Column("leader_id", sa.String(length=100), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("responding", sa.Boolean(), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["group_id"], ["alert_groups.id"], name="fk_group_acks_group_id_alert_groups"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_group_acks"),
    )
    with op.batch_alter_table("group_acks", schema=None) as batch_op:
        batch_op.create_index("ix_group_acks_group_id", ["group_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("group_acks", schema=None) as batch_op:
        batch_op.drop_index("ix_group_acks_group_id")
    op.drop_table("group_acks")
    with op.batch_alter_table("alert_groups", schema=None) as batch_op:
        batch_op.drop_column("acked_at")
        batch_op.drop_column("close_after_s")
        batch_op.drop_column("repeat_interval_s")
        batch_op.drop_column("last_report_at")

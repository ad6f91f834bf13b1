"""group hand-over: a route given to another receiver closes its open groups for a new one

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 10:00:00

A group's receiver is part of what it is: when an edit of the rules gives its route another
receiver, the open group is closed without a word to the old receiver and a new group takes
over its reports for the new one (dispatcher/store/writes.py, HAND_OVER). Why a group
closed, and which group took over from which, are kept for GET /v1/groups/{id}.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alert_groups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("closed_reason", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("handed_over_to", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("took_over_from", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alert_groups", schema=None) as batch_op:
        batch_op.drop_column("took_over_from")
        batch_op.drop_column("handed_over_to")
        batch_op.drop_column("closed_reason")

"""outbox: claims signed by their instance

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 10:00:00

On PostgreSQL a sender signs its claims with the id of the advisory lock it holds for as
long as it lives (store/claims.py): when it dies, the others take its claimed pushes over
at once instead of waiting out the lease.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("claimed_by")

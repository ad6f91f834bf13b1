"""outbox: expiry and claims

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 04:30:00

A push carries its route's time to live (a digest hours late misleads), and a sender claims
the rows it sends so that two service instances never send one push twice.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("claimed_until")
        batch_op.drop_column("expires_at")

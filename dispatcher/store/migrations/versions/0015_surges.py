"""surges: an alert group's open surge alert and the count it told

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 10:00:00

A surge route's group (dispatcher/surge.py) keeps whether its surge alert is open, since
when, and the count its last push told, so that a restart neither opens it again nor
forgets to say it subsided.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alert_groups") as batch:
        batch.add_column(sa.Column("surge_open_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("surge_told", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alert_groups") as batch:
        batch.drop_column("surge_told")
        batch.drop_column("surge_open_at")

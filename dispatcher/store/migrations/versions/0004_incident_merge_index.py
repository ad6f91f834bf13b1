"""incident merge index covers the whole candidate test

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 04:15:00

The merge lookup filters incidents by kind, a latitude band, a longitude band and a time
window. An index on (kind, lat) made SQLite read each row of the band to test the rest;
(kind, lat, lon, occurred_at) answers all four from the index.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index("ix_incidents_kind_lat")
        batch_op.create_index(
            "ix_incidents_kind_lat", ["kind", "lat", "lon", "occurred_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index("ix_incidents_kind_lat")
        batch_op.create_index("ix_incidents_kind_lat", ["kind", "lat"], unique=False)

"""SQLite keeps no spatial index of incidents: the writer holds recent ones in memory

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 09:00:00

Each new incident was added to (kind, lat, lon, occurred_at) at a random place, so every
one dirtied an index page that the commit wrote to the WAL: about a third of what a write
transaction cost. On SQLite the one writer answers the merge lookup from memory
(dispatcher/store/writes.py, IncidentMemory); PostgreSQL, where several instances may
write, keeps the index.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.drop_index("ix_incidents_kind_lat", table_name="incidents")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.create_index("ix_incidents_kind_lat", "incidents", ["kind", "lat", "lon", "occurred_at"])

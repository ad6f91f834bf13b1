"""indexes the write path paid for: SQLite's spatial index of incidents, group_reports by report

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 09:00:00

Each new incident was added to (kind, lat, lon, occurred_at) at a random place, so every
one dirtied an index page that the commit wrote to the WAL: about a third of what a write
transaction cost. On SQLite the one writer answers the merge lookup from memory
(dispatcher/store/writes.py, IncidentMemory); PostgreSQL, where several instances may
write, keeps the index.

group_reports had an index by report that nothing reads (a group's reports are read by
group, which its primary key answers) and every report's joins were added to.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_group_reports_report_pk", table_name="group_reports")
    if op.get_bind().dialect.name == "sqlite":
        op.drop_index("ix_incidents_kind_lat", table_name="incidents")


def downgrade() -> None:
    op.create_index("ix_group_reports_report_pk", "group_reports", ["report_pk"])
    if op.get_bind().dialect.name == "sqlite":
        op.create_index("ix_incidents_kind_lat", "incidents", ["kind", "lat", "lon", "occurred_at"])

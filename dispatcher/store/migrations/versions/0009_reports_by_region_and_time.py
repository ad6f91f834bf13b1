"""reports are found by region and time without reading them all

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 06:50:00

Every update counts today's live incidents in its region ("today: N") from the reports of
the region since midnight. Without an index on (region, occurred_at) that read every
report ever kept, at every flush: slower each day the service runs.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_reports_region_occurred_at", "reports", ["region", "occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_reports_region_occurred_at", table_name="reports")

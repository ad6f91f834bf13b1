"""reports keep their source's trust tier and the site they count

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-06 09:45:00

An incident's figures come from the highest tier of source that gives them
(dispatcher/counting.py). The tier is decided when a report is accepted, from the rules
then in force, and kept with it: counts can be told again from the stored reports, and a
change of tier applies to the reports received after it. Reports stored before this
migration are `other`, as every source was. `site` names the part of an incident a report
counts (one building of a strike), so that two teams' counts of two buildings add up.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reports") as batch:
        batch.add_column(
            sa.Column("tier", sa.String(10), nullable=False, server_default=sa.text("'other'"))
        )
        batch.add_column(sa.Column("site", sa.String(100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reports") as batch:
        batch.drop_column("site")
        batch.drop_column("tier")

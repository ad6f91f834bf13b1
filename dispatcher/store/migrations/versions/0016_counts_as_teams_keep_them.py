"""counts as the teams keep them: reports' tier and site, incidents merged into another

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 09:45:00

An incident's figures come from the highest tier of source that gives them
(dispatcher/counting.py). The tier is decided when a report is accepted, from the rules
then in force, and kept with it: counts can be told again from the stored reports, and a
change of tier applies to the reports received after it. Reports stored before this
migration are `other`, as every source was. `site` names the part of an incident a report
counts (one building of a strike), so that two teams' counts of two buildings add up.

When one of the organisation's own teams reports a strike between incidents that observers'
reports made apart (each observer states where they stood), those incidents are merged into
the team's: `incidents.merged_into` points there, and reports keep the incident they joined
(what was decided when is kept). Only merged incidents are in its index. An alert group
holding a merged incident's reports counts them again (`alert_groups.recount`).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reports") as batch:
        batch.add_column(
            sa.Column("tier", sa.String(10), nullable=False, server_default=sa.text("'other'"))
        )
        batch.add_column(sa.Column("site", sa.String(100), nullable=True))
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("merged_into", sa.String(200), nullable=True))
    op.create_index(
        "ix_incidents_merged_into",
        "incidents",
        ["merged_into"],
        sqlite_where=sa.text("merged_into IS NOT NULL"),
        postgresql_where=sa.text("merged_into IS NOT NULL"),
    )
    with op.batch_alter_table("alert_groups") as batch:
        batch.add_column(
            sa.Column("recount", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )


def downgrade() -> None:
    with op.batch_alter_table("alert_groups") as batch:
        batch.drop_column("recount")
    op.drop_index("ix_incidents_merged_into", table_name="incidents")
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("merged_into")
    with op.batch_alter_table("reports") as batch:
        batch.drop_column("site")
        batch.drop_column("tier")

"""web push: subscription keys on devices, and the service's own keys (VAPID)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 09:40:00

A Web Push subscription is a device of platform "web": its endpoint is the token, and the
browser's public key and auth secret (RFC 8291) are needed to encrypt each push. The VAPID
key pair (RFC 8292) that subscriptions are bound to is made once and kept in
`service_keys`: a new key would silently orphan every subscription.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("p256dh", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("auth", sa.String(length=40), nullable=True))
    op.create_table(
        "service_keys",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_service_keys"),
    )


def downgrade() -> None:
    op.drop_table("service_keys")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("auth")
        batch_op.drop_column("p256dh")

"""Posts remember a first send in flight (a resend after a crash looks first); RSVPs keep the
platform's zone of who answered, for their direct reminder.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("posts") as batch:
        batch.add_column(sa.Column("sending", sa.Integer, nullable=False, server_default="0"))
    with op.batch_alter_table("rsvps") as batch:
        batch.add_column(sa.Column("zone", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rsvps") as batch:
        batch.drop_column("zone")
    with op.batch_alter_table("posts") as batch:
        batch.drop_column("sending")

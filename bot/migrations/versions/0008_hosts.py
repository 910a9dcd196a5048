"""Hosts in charge: a huddle can be locked, have a waiting room and a passcode; a stay can end
in removal by a host, from a seat; a scheduled meeting can open with a waiting room.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("huddles") as batch:
        batch.add_column(
            sa.Column("locked", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("lobby", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("passcode", sa.String(64), nullable=True))
    with op.batch_alter_table("meetings") as batch:
        batch.add_column(
            sa.Column("lobby", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("attendance") as batch:
        batch.add_column(sa.Column("removed_by", sa.String(128), nullable=True))
        batch.add_column(sa.Column("seat", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attendance") as batch:
        batch.drop_column("seat")
        batch.drop_column("removed_by")
    with op.batch_alter_table("meetings") as batch:
        batch.drop_column("lobby")
    with op.batch_alter_table("huddles") as batch:
        batch.drop_column("passcode")
        batch.drop_column("lobby")
        batch.drop_column("locked")

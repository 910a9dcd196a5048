"""Scheduled meetings, their exceptions, RSVPs and time zone preferences.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from bot.schema import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("huddles") as batch:
        batch.add_column(sa.Column("meeting_id", sa.String(16), nullable=True))
    op.create_table(
        "user_prefs",
        sa.Column("platform", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("zone", sa.String(64), nullable=False),
    )
    op.create_table(
        "channel_prefs",
        sa.Column("platform", sa.String(32), primary_key=True),
        sa.Column("channel_id", sa.String(128), primary_key=True),
        sa.Column("zone", sa.String(64), nullable=False),
    )
    op.create_table(
        "meetings",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("channel_id", sa.String(128), nullable=False),
        sa.Column("host_id", sa.String(128), nullable=False),
        sa.Column("host_name", sa.String(128), nullable=False),
        sa.Column("zone", sa.String(64), nullable=False),
        sa.Column("local_start", sa.String(32), nullable=False),
        sa.Column("starts_at", UtcDateTime(), nullable=False),
        sa.Column("duration_s", sa.Integer, nullable=False),
        sa.Column("rrule", sa.String(200), nullable=True),
        sa.Column("agenda", sa.Text, nullable=False, server_default="[]"),
        sa.Column("remind_s", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_meetings_state", "meetings", ["state"])
    op.create_index("ix_meetings_updated", "meetings", ["updated_at"])
    op.create_table(
        "occurrences",
        sa.Column("meeting_id", sa.String(16), sa.ForeignKey("meetings.id"), primary_key=True),
        sa.Column("starts_at", UtcDateTime(), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("huddle_id", sa.String(16), nullable=True),
    )
    op.create_table(
        "rsvps",
        sa.Column("meeting_id", sa.String(16), sa.ForeignKey("meetings.id"), primary_key=True),
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("user_name", sa.String(128), nullable=False),
        sa.Column("answer", sa.String(8), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rsvps")
    op.drop_table("occurrences")
    op.drop_table("meetings")
    op.drop_table("channel_prefs")
    op.drop_table("user_prefs")
    with op.batch_alter_table("huddles") as batch:
        batch.drop_column("meeting_id")

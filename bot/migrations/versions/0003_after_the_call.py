"""Shared notes, action items and feedback.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from bot.schema import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "huddle_notes",
        sa.Column("huddle_id", sa.String(16), sa.ForeignKey("huddles.id"), primary_key=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "action_items",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("huddle_id", sa.String(16), sa.ForeignKey("huddles.id"), nullable=False),
        sa.Column("meeting_id", sa.String(16), nullable=True),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("channel_id", sa.String(128), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("due_at", UtcDateTime(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_action_items_updated", "action_items", ["updated_at"])
    op.create_index("ix_action_items_meeting", "action_items", ["meeting_id", "state"])
    op.create_table(
        "feedback",
        sa.Column("huddle_id", sa.String(16), sa.ForeignKey("huddles.id"), primary_key=True),
        sa.Column("participant_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("action_items")
    op.drop_table("huddle_notes")

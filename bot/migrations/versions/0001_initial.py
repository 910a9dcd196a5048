"""Huddles, attendance, the post outbox and the web chat history.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from bot.schema import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "huddles",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("host_id", sa.String(128), nullable=False),
        sa.Column("host_name", sa.String(128), nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("channel_id", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("first_joined_at", UtcDateTime(), nullable=True),
        sa.Column("ended_at", UtcDateTime(), nullable=True),
        sa.Column("end_reason", sa.String(64), nullable=True),
    )
    op.create_index("ix_huddles_state", "huddles", ["state"])
    op.create_table(
        "attendance",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("huddle_id", sa.String(16), sa.ForeignKey("huddles.id"), nullable=False),
        sa.Column("participant_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("joined_at", UtcDateTime(), nullable=False),
        sa.Column("left_at", UtcDateTime(), nullable=True),
    )
    op.create_index("ix_attendance_huddle", "attendance", ["huddle_id"])
    op.create_table(
        "posts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(200), nullable=False, unique=True),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("channel_id", sa.String(128), nullable=False),
        sa.Column("thread_of", sa.String(200), nullable=True),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("delivered_version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("ref", sa.String(128), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
        sa.Column("lease_until", UtcDateTime(), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("delivered_at", UtcDateTime(), nullable=True),
    )
    op.create_index("ix_posts_pending", "posts", ["delivered_version", "version"])
    op.create_table(
        "chat_messages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(80), nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("is_bot", sa.Integer, nullable=False, server_default="0"),
        sa.Column("title", sa.String(200), nullable=False, server_default=""),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("buttons", sa.Text, nullable=False, server_default="[]"),
        sa.Column("thread_of", sa.Integer, sa.ForeignKey("chat_messages.id"), nullable=True),
        sa.Column("visible_to", sa.String(64), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("edited_at", UtcDateTime(), nullable=True),
    )
    op.create_index("ix_chat_messages_channel", "chat_messages", ["channel", "id"])


def downgrade() -> None:
    op.drop_table("chat_messages")
    op.drop_table("posts")
    op.drop_table("attendance")
    op.drop_table("huddles")

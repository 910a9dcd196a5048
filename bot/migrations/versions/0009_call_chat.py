"""The in-call chat: its messages, and whether the log goes into the notes thread.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

from bot.schema import UtcDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("huddles") as batch:
        batch.add_column(
            sa.Column("chat_to_notes", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    op.create_table(
        "call_chat",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("huddle_id", sa.String(16), sa.ForeignKey("huddles.id"), nullable=False),
        sa.Column("participant_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_call_chat_huddle", "call_chat", ["huddle_id"])


def downgrade() -> None:
    op.drop_index("ix_call_chat_huddle", table_name="call_chat")
    op.drop_table("call_chat")
    with op.batch_alter_table("huddles") as batch:
        batch.drop_column("chat_to_notes")

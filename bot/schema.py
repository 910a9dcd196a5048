"""The database tables (SQLAlchemy Core); a change here needs a migration in bot/migrations/."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.expression import false, true


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike.

    SQLite has no time zones, so values are stored as naive UTC and tagged UTC on the way out.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use datetime.now(UTC)")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


metadata = MetaData()

huddles = Table(
    "huddles",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("title", String(200), nullable=False),
    Column("host_id", String(128), nullable=False),
    Column("host_name", String(128), nullable=False),
    Column("platform", String(32), nullable=False),
    Column("channel_id", String(128), nullable=False),
    Column("state", String(16), nullable=False),  # "open" | "ended"
    Column("created_at", UtcDateTime(), nullable=False),
    Column("first_joined_at", UtcDateTime(), nullable=True),
    Column("ended_at", UtcDateTime(), nullable=True),
    Column("end_reason", String(64), nullable=True),
    Column("meeting_id", String(16), nullable=True),  # migration 0002
    # Locked by a host (0008): only host links get in.
    Column("locked", Boolean, nullable=False, server_default=false()),
    # Waiting room on (0008), and the passcode's digest (media.passcodes), if any.
    Column("lobby", Boolean, nullable=False, server_default=false()),
    Column("passcode", String(64), nullable=True),
    # Whether the in-call chat goes into the notes thread (0009).
    Column("chat_to_notes", Boolean, nullable=False, server_default=true()),
    Index("ix_huddles_state", "state"),
)

attendance = Table(
    "attendance",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("huddle_id", String(16), ForeignKey("huddles.id"), nullable=False),
    Column("participant_id", String(64), nullable=False),
    Column("name", String(128), nullable=False),
    Column("joined_at", UtcDateTime(), nullable=False),
    Column("left_at", UtcDateTime(), nullable=True),
    # The process whose media server holds the participant (0005): a restarting process closes
    # only its own stale stays, never those of a sibling sharing the database.
    Column("node", String(128), nullable=True),
    # Who removed them, and the seat (browser) they were in, which stays barred (0008).
    Column("removed_by", String(128), nullable=True),
    Column("seat", String(64), nullable=True),
    Index("ix_attendance_huddle", "huddle_id"),
)

# The durable outbox: every core post, what it should say now (``payload`` at ``version``), what
# the platform last acknowledged (``delivered_version``) and where it landed (``ref``). Edits of
# one post coalesce; a post is sent once, then only edited.
posts = Table(
    "posts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(200), nullable=False, unique=True),
    Column("platform", String(32), nullable=False),
    Column("channel_id", String(128), nullable=False),
    Column("thread_of", String(200), nullable=True),
    Column("payload", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("delivered_version", Integer, nullable=False, default=0),
    Column("ref", String(128), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("lease_until", UtcDateTime(), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("delivered_at", UtcDateTime(), nullable=True),
    # Set while a first send is in flight (0006): still set when the post is claimed again means
    # a process died mid-send, and the adapter must look before sending again.
    Column("sending", Integer, nullable=False, server_default="0"),
    Index("ix_posts_pending", "delivered_version", "version"),
)

# The built-in web chat's own history (it is a platform, and this is its server side).
chat_messages = Table(
    "chat_messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel", String(80), nullable=False),
    Column("author", String(64), nullable=False),
    Column("is_bot", Integer, nullable=False, default=0),
    Column("title", String(200), nullable=False, default=""),
    Column("text", Text, nullable=False),
    Column("buttons", Text, nullable=False, default="[]"),  # JSON [{"label", "url"}]
    Column("thread_of", Integer, ForeignKey("chat_messages.id"), nullable=True),
    Column("visible_to", String(64), nullable=True),  # ephemeral: only this user sees it
    Column("created_at", UtcDateTime(), nullable=False),
    Column("edited_at", UtcDateTime(), nullable=True),
    Index("ix_chat_messages_channel", "channel", "id"),
)

# Scheduling (migration 0002).

user_prefs = Table(
    "user_prefs",
    metadata,
    Column("platform", String(32), primary_key=True),
    Column("user_id", String(128), primary_key=True),
    Column("zone", String(64), nullable=False),
)

channel_prefs = Table(
    "channel_prefs",
    metadata,
    Column("platform", String(32), primary_key=True),
    Column("channel_id", String(128), primary_key=True),
    Column("zone", String(64), nullable=False),
)

# A scheduled meeting: one-off or recurring. ``local_start`` is the wall-clock start in ``zone``
# (the RRULE's DTSTART); ``starts_at`` is the first occurrence in UTC.
meetings = Table(
    "meetings",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("title", String(200), nullable=False),
    Column("platform", String(32), nullable=False),
    Column("channel_id", String(128), nullable=False),
    Column("host_id", String(128), nullable=False),
    Column("host_name", String(128), nullable=False),
    Column("zone", String(64), nullable=False),
    Column("local_start", String(32), nullable=False),
    Column("starts_at", UtcDateTime(), nullable=False),
    Column("duration_s", Integer, nullable=False),
    Column("rrule", String(200), nullable=True),
    Column("agenda", Text, nullable=False, default="[]"),
    Column("remind_s", Integer, nullable=False),
    Column("state", String(16), nullable=False),  # "scheduled" | "cancelled"
    Column("created_at", UtcDateTime(), nullable=False),
    # Bumped whenever what the scheduler must do changes; the scheduler polls for it.
    Column("updated_at", UtcDateTime(), nullable=False),
    # Its huddles open with the waiting room on (0008).
    Column("lobby", Boolean, nullable=False, server_default=false()),
    Index("ix_meetings_state", "state"),
    Index("ix_meetings_updated", "updated_at"),
)

# Occurrences that differ from the rule: cancelled ones, and started ones (with their huddle).
occurrences = Table(
    "occurrences",
    metadata,
    Column("meeting_id", String(16), ForeignKey("meetings.id"), primary_key=True),
    Column("starts_at", UtcDateTime(), primary_key=True),
    Column("state", String(16), nullable=False),  # "cancelled" | "started"
    Column("huddle_id", String(16), nullable=True),
)

rsvps = Table(
    "rsvps",
    metadata,
    Column("meeting_id", String(16), ForeignKey("meetings.id"), primary_key=True),
    Column("user_id", String(128), primary_key=True),
    Column("user_name", String(128), nullable=False),
    Column("answer", String(8), nullable=False),  # "yes" | "no"
    Column("at", UtcDateTime(), nullable=False),
    # The zone the platform gave for whoever answered (0006): their direct reminder reads in it.
    Column("zone", String(64), nullable=True),
)

# After the call (migration 0003).

# The in-call chat, message by message (0009).
call_chat = Table(
    "call_chat",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("huddle_id", String(16), ForeignKey("huddles.id"), nullable=False),
    Column("participant_id", String(64), nullable=False),
    Column("name", String(128), nullable=False),
    Column("text", Text, nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Index("ix_call_chat_huddle", "huddle_id"),
)

huddle_notes = Table(
    "huddle_notes",
    metadata,
    Column("huddle_id", String(16), ForeignKey("huddles.id"), primary_key=True),
    Column("text", Text, nullable=False),
    Column("updated_by", String(128), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

action_items = Table(
    "action_items",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("huddle_id", String(16), ForeignKey("huddles.id"), nullable=False),
    Column("meeting_id", String(16), nullable=True),
    Column("platform", String(32), nullable=False),
    Column("channel_id", String(128), nullable=False),
    Column("owner", String(128), nullable=False),
    Column("text", Text, nullable=False),
    Column("due_at", UtcDateTime(), nullable=False),
    Column("state", String(16), nullable=False),  # "open" | "done"
    Column("created_at", UtcDateTime(), nullable=False),
    # Bumped whenever the scheduler must re-plan its follow-up (it polls this).
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_action_items_updated", "updated_at"),
    Index("ix_action_items_meeting", "meeting_id", "state"),
)

feedback = Table(
    "feedback",
    metadata,
    Column("huddle_id", String(16), ForeignKey("huddles.id"), primary_key=True),
    Column("participant_id", String(64), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("score", Integer, nullable=False),
    Column("at", UtcDateTime(), nullable=False),
)

# One huddle posted in several channels (migration 0004).

huddle_shares = Table(
    "huddle_shares",
    metadata,
    Column("huddle_id", String(16), ForeignKey("huddles.id"), primary_key=True),
    Column("platform", String(32), primary_key=True),
    Column("channel_id", String(128), primary_key=True),
    Column("shared_by", String(128), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
)

# Web chat accounts (migration 0007): who may use the web chat once it is reachable beyond
# loopback. Secrets are never stored: a password as its Argon2id hash, a session, API token or
# invite as the SHA-256 of a random value only its holder has.

web_users = Table(
    "web_users",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("password_hash", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(64), nullable=False),  # "cli" or the invite's code id
)

web_credentials = Table(
    "web_credentials",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_name", String(64), ForeignKey("web_users.name"), nullable=False),
    Column("kind", String(16), nullable=False),  # "session" (a cookie) | "token" (an API bearer)
    Column("label", String(64), nullable=False, default=""),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=True),  # None: until revoked
    Index("ix_web_credentials_user", "user_name"),
)

web_invites = Table(
    "web_invites",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("used_at", UtcDateTime(), nullable=True),
    Column("used_by", String(64), nullable=True),
)

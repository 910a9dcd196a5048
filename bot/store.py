"""Storage through SQLAlchemy 2 (async): SQLite by default, PostgreSQL with the same code.

On SQLite the store keeps one connection (aiosqlite, through ``bot/sqlite.py``): SQLite has one
writer at a time anyway, and each connection costs a thread contending for the GIL.

The schema is created and upgraded by Alembic migrations when the store opens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Table,
    bindparam,
    case,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import PoolResetState
from sqlalchemy.sql import Executable

from bot import sqlite
from bot.records import (
    ActionItem,
    Attendance,
    ChatLine,
    ChatMessage,
    Huddle,
    Meeting,
    OutboxEntry,
    PostRef,
    Rsvp,
)
from bot.schema import (
    action_items,
    attendance,
    call_chat,
    channel_prefs,
    chat_messages,
    feedback,
    huddle_notes,
    huddle_shares,
    huddles,
    meetings,
    occurrences,
    posts,
    rsvps,
    user_prefs,
)
from bot.types import ChannelRef

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    # WAL: readers never wait for the writer, so live pages and the outbox don't stall each other.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # With WAL, NORMAL loses nothing when the process is killed (only on power loss, the last
    # commits) and saves an fsync per transaction: the outbox and web chat write a lot.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _rollback_if_open(dbapi_connection: Any, record: Any, state: PoolResetState) -> None:
    # SQLAlchemy rolls back every connection it takes back into the pool, though most come back
    # committed with nothing to roll back, and on aiosqlite each rollback is a trip to the
    # connection's thread: only what is still open is rolled back (pool_reset_on_return=None).
    if state.asyncio_safe and not state.transaction_was_reset:
        if record.driver_connection.in_transaction:
            dbapi_connection.rollback()


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


@dataclass(frozen=True)
class OutboxPost:
    """What a post should say now, as the outbox records it (``Publisher.outgoing`` makes one)."""

    key: str
    channel: ChannelRef
    thread_of: str | None
    payload: str
    at: datetime
    #: Set by a writer that delivers a new post itself at once: it is leased to the writer from
    #: the start, so the outbox worker leaves it alone unless the writer dies or fails.
    lease_until: datetime | None = None


# The statements run for every `/meet` are built once: SQLAlchemy then finds their compiled form
# by a key it computed once too, instead of building, hashing and looking up a new statement
# each time (a tenth of a millisecond each, a third of one for the upsert).
_ADD_HUDDLE = insert(huddles)
_MARK_DELIVERED = (
    update(posts)
    .where(posts.c.id == bindparam("entry_id"))
    .values(
        ref=bindparam("delivered_ref"),
        delivered_version=bindparam("delivered"),
        delivered_at=bindparam("at"),
        lease_until=None,
        sending=0,
        attempts=0,
        last_error=None,
    )
)


def _queue_post_statement(dialect: str) -> Executable:
    """``Store.queue_post``'s upsert (its form depends on the database)."""
    insert_on_conflict = postgresql.insert if dialect == "postgresql" else sqlite_dialect.insert
    new = insert_on_conflict(posts).values(
        key=bindparam("key"),
        platform=bindparam("platform"),
        channel_id=bindparam("channel_id"),
        thread_of=bindparam("thread_of"),
        payload=bindparam("payload"),
        version=1,
        delivered_version=0,
        attempts=0,
        next_attempt_at=bindparam("at"),
        created_at=bindparam("at"),
        lease_until=bindparam("lease_until"),
        # Leased to its writer, it counts as being sent (see ``Store.claim_due_posts``).
        sending=bindparam("sending"),
    )
    # A new key comes in at version 1; a known one takes the new text at the next version and
    # keeps its lease (whoever holds it delivers the version it has; the new one stays due).
    # Atomic on both databases, so two writers racing on one key both land, in turn.
    return new.on_conflict_do_update(
        index_elements=[posts.c.key],
        set_={
            "payload": new.excluded.payload,
            "version": posts.c.version + 1,
            "next_attempt_at": new.excluded.next_attempt_at,
            "attempts": 0,
        },
    ).returning(*posts.c)


class Store:
    """The one door to the database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._queue_post = _queue_post_statement(engine.dialect.name)

    @classmethod
    async def open(cls, url: str) -> Store:
        """Connect to ``url`` and bring the schema up to date."""
        options: dict[str, Any] = {}
        if url.startswith("sqlite"):
            path = make_url(url).database or ""
            # Other processes (and the job store's thread) write too: wait for the file lock
            # rather than fail.
            options["async_creator"] = partial(sqlite.connect, path, timeout=30)
            # SQLite has one writer at a time, so one connection per process: tasks queue for
            # it in the pool, instead of several connections taking the file lock in turns with
            # busy-wait sleeps, each with an aiosqlite thread contending for the GIL. Every
            # statement here is short; measured in bench/commands.py, a quarter less CPU.
            options["pool_size"] = 1
            options["max_overflow"] = 0
            options["pool_reset_on_return"] = None  # see _rollback_if_open
        else:
            options["pool_pre_ping"] = True
        engine = create_async_engine(url, **options)
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(engine.sync_engine, "reset", _rollback_if_open)
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade)
        return cls(engine)

    async def close(self) -> None:
        """Release every connection."""
        await self.engine.dispose()

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    async def _upsert(self, table: Table, keys: dict[str, Any], values: dict[str, Any]) -> None:
        """Update the row with ``keys`` or insert it; portable across SQLite and PostgreSQL.

        Two writers racing to insert the same new row: the loser's insert fails on the primary
        key and it updates instead.
        """
        match = [table.c[name] == value for name, value in keys.items()]
        for _ in range(2):
            try:
                async with self.engine.begin() as conn:
                    result = await conn.execute(update(table).where(*match).values(**values))
                    if not result.rowcount:
                        await conn.execute(insert(table).values(**keys, **values))
                return
            except IntegrityError:
                continue
        raise RuntimeError(f"could not write {table.name} {keys}")

    # Huddles

    async def add_huddle(
        self, huddle: Huddle, card: OutboxPost | None = None
    ) -> tuple[int, OutboxEntry | None] | None:
        """Insert a new huddle and queue its first card, in one transaction (so no crash leaves
        a huddle whose card was never queued). Returns what :meth:`queue_post` returns for the
        card ((0, None) without one), or None if a huddle has that id already."""
        try:
            return await self._add_huddle(huddle, card)
        except IntegrityError:
            if await self.huddle(huddle.id) is None:
                raise
            return None

    async def _add_huddle(
        self, huddle: Huddle, card: OutboxPost | None
    ) -> tuple[int, OutboxEntry | None]:
        async with self.engine.begin() as conn:
            # The huddle first: if its id is taken, nothing else is written.
            await conn.execute(
                _ADD_HUDDLE,
                {
                    "id": huddle.id,
                    "title": huddle.title,
                    "host_id": huddle.host_id,
                    "host_name": huddle.host_name,
                    "platform": huddle.channel.platform,
                    "channel_id": huddle.channel.channel_id,
                    "state": huddle.state,
                    "created_at": huddle.created_at,
                    "meeting_id": huddle.meeting_id,
                    "lobby": huddle.lobby,
                },
            )
            return await self._queue(conn, card) if card is not None else (0, None)

    async def huddle(self, huddle_id: str) -> Huddle | None:
        """The huddle with that id, or None."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(huddles).where(huddles.c.id == huddle_id))).first()
        return _huddle(row) if row else None

    async def open_huddles(self, channel: ChannelRef | None = None) -> list[Huddle]:
        """Huddles not yet ended, oldest first, optionally only those of one channel."""
        query = select(huddles).where(huddles.c.state == "open")
        if channel is not None:
            query = query.where(
                huddles.c.platform == channel.platform, huddles.c.channel_id == channel.channel_id
            )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query.order_by(huddles.c.created_at))).all()
        return [_huddle(row) for row in rows]

    async def mark_first_joined(self, huddle_id: str, at: datetime) -> None:
        """Remember when the call really started (first person in)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(huddles)
                .where(huddles.c.id == huddle_id, huddles.c.first_joined_at.is_(None))
                .values(first_joined_at=at)
            )

    async def end_huddle(self, huddle_id: str, at: datetime, reason: str) -> bool:
        """Mark the huddle ended; False if it already was (so only one caller ends it)."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(huddles)
                .where(huddles.c.id == huddle_id, huddles.c.state == "open")
                .values(state="ended", ended_at=at, end_reason=reason)
            )
            await conn.execute(
                update(attendance)
                .where(attendance.c.huddle_id == huddle_id, attendance.c.left_at.is_(None))
                .values(left_at=at)
            )
        return bool(result.rowcount)

    # Attendance

    async def record_join(
        self, huddle_id: str, participant_id: str, name: str, at: datetime, node: str = ""
    ) -> None:
        """Log that a participant came in (on the media server of process ``node``)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(attendance).values(
                    huddle_id=huddle_id,
                    participant_id=participant_id,
                    name=name,
                    joined_at=at,
                    node=node or None,
                )
            )

    async def record_leave(self, huddle_id: str, participant_id: str, at: datetime) -> None:
        """Log that a participant went out."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(attendance)
                .where(
                    attendance.c.huddle_id == huddle_id,
                    attendance.c.participant_id == participant_id,
                    attendance.c.left_at.is_(None),
                )
                .values(left_at=at)
            )

    async def attendance(self, huddle_id: str) -> list[Attendance]:
        """Every stay in the huddle, in order of arrival."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(attendance)
                    .where(attendance.c.huddle_id == huddle_id)
                    .order_by(attendance.c.joined_at, attendance.c.id)
                )
            ).all()
        return [
            Attendance(
                huddle_id=row.huddle_id,
                participant_id=row.participant_id,
                name=row.name,
                joined_at=row.joined_at,
                left_at=row.left_at,
                removed_by=row.removed_by,
            )
            for row in rows
        ]

    async def record_removed(
        self, huddle_id: str, participant_id: str, seat: str, by: str, at: datetime
    ) -> None:
        """A host removed the participant: their stay ends, their seat stays barred."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(attendance)
                .where(
                    attendance.c.huddle_id == huddle_id,
                    attendance.c.participant_id == participant_id,
                )
                .values(
                    removed_by=by,
                    seat=seat or None,
                    left_at=func.coalesce(attendance.c.left_at, at),
                )
            )

    async def removed_seats(self, huddle_id: str) -> frozenset[str]:
        """The seats hosts removed from the huddle."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(attendance.c.seat).where(
                    attendance.c.huddle_id == huddle_id, attendance.c.seat.is_not(None)
                )
            )
            return frozenset(row.seat for row in rows)

    async def set_room(
        self, huddle_id: str, *, locked: bool, lobby: bool, chat_to_notes: bool | None = None
    ) -> None:
        """Lock or unlock the huddle; turn its waiting room on or off; keep its chat or not."""
        values: dict[str, bool] = {"locked": locked, "lobby": lobby}
        if chat_to_notes is not None:
            values["chat_to_notes"] = chat_to_notes
        async with self.engine.begin() as conn:
            await conn.execute(update(huddles).where(huddles.c.id == huddle_id).values(**values))

    async def add_chat_line(
        self, huddle_id: str, participant_id: str, name: str, text: str, at: datetime
    ) -> None:
        """Keep one message of the call's chat."""
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(call_chat).values(
                    huddle_id=huddle_id, participant_id=participant_id, name=name, text=text, at=at
                )
            )

    async def chat_log(self, huddle_id: str) -> list[ChatLine]:
        """The call's chat, oldest first."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(call_chat)
                .where(call_chat.c.huddle_id == huddle_id)
                .order_by(call_chat.c.at, call_chat.c.id)
            )
            return [ChatLine(row.name, row.text, row.at) for row in rows]

    async def set_passcode(self, huddle_id: str, digest: str | None) -> None:
        """Set the huddle's passcode digest (None: no passcode)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(huddles).where(huddles.c.id == huddle_id).values(passcode=digest)
            )

    async def close_stale_attendance(self, at: datetime, node: str = "") -> int:
        """After a restart nobody is connected here: close stays this ``node`` left open.

        Stays held by other processes sharing the database are left alone.
        """
        query = update(attendance).where(attendance.c.left_at.is_(None))
        if node:
            query = query.where(or_(attendance.c.node == node, attendance.c.node.is_(None)))
        async with self.engine.begin() as conn:
            result = await conn.execute(query.values(left_at=at))
        return int(result.rowcount)

    # The outbox of posts

    async def put_post(
        self,
        key: str,
        channel: ChannelRef,
        thread_of: str | None,
        payload: str,
        at: datetime,
    ) -> int:
        """Record what post ``key`` should say now; return its new version (1 = first time)."""
        version, _ = await self.queue_post(OutboxPost(key, channel, thread_of, payload, at))
        return version

    async def queue_post(self, post: OutboxPost) -> tuple[int, OutboxEntry | None]:
        """Record what ``post`` should say now: its new version (1 = first time), and its entry
        if the caller now holds its lease (a new post with ``lease_until``) and must deliver it."""
        async with self.engine.begin() as conn:
            return await self._queue(conn, post)

    async def _queue(
        self, conn: AsyncConnection, post: OutboxPost
    ) -> tuple[int, OutboxEntry | None]:
        leased = post.lease_until is not None
        row = (
            await conn.execute(
                self._queue_post,
                {
                    "key": post.key,
                    "platform": post.channel.platform,
                    "channel_id": post.channel.channel_id,
                    "thread_of": post.thread_of,
                    "payload": post.payload,
                    "at": post.at,
                    "lease_until": post.lease_until,
                    "sending": int(leased),
                },
            )
        ).one()
        entry = _outbox(row)
        # Version 1 was inserted just now, with this writer's lease; a known key keeps its own.
        return entry.version, entry if leased and entry.version == 1 else None

    async def claim_due_posts(
        self, now: datetime, lease_until: datetime, limit: int = 50
    ) -> list[OutboxEntry]:
        """Take a lease on posts due for delivery, oldest first, so no other process sends them.

        A post not yet on its platform is marked as being sent in the same statement:
        ``sending`` counts the claims that began a first send and have not recorded how it
        ended, so a count above one means an earlier process died mid-send (``entry.sending``).
        """
        due = (
            select(posts.c.id)
            .where(
                posts.c.delivered_version < posts.c.version,
                posts.c.next_attempt_at <= now,
                or_(posts.c.lease_until.is_(None), posts.c.lease_until < now),
            )
            .order_by(posts.c.id)
            .limit(limit)
        )
        # One statement: the lease condition is checked again on each row as it is updated, so two
        # processes claiming at once never get the same post (PostgreSQL re-reads locked rows
        # under READ COMMITTED; SQLite has one writer).
        claim = (
            update(posts)
            .where(
                posts.c.id.in_(due.scalar_subquery()),
                or_(posts.c.lease_until.is_(None), posts.c.lease_until < now),
            )
            .values(
                lease_until=lease_until,
                sending=case((posts.c.ref.is_(None), posts.c.sending + 1), else_=posts.c.sending),
            )
            .returning(*posts.c)
        )
        async with self.engine.begin() as conn:
            rows = (await conn.execute(claim)).all()
        return sorted((_outbox(row) for row in rows), key=lambda entry: entry.id)

    async def undelivered_before(self, entry: OutboxEntry) -> bool:
        """True if an older post of the same thread (or its parent) has not landed yet."""
        if entry.thread_of is None:
            return False
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(posts.c.id)
                    .where(
                        posts.c.ref.is_(None),
                        posts.c.delivered_version < posts.c.version,
                        or_(
                            posts.c.key == entry.thread_of,
                            (posts.c.thread_of == entry.thread_of) & (posts.c.id < entry.id),
                        ),
                    )
                    .limit(1)
                )
            ).first()
        return row is not None

    async def mark_post_delivered(self, entry: OutboxEntry, ref: str, at: datetime) -> None:
        """The platform has ``entry`` at its version; release the lease."""
        async with self.engine.begin() as conn:
            await conn.execute(
                _MARK_DELIVERED,
                {"entry_id": entry.id, "delivered_ref": ref, "delivered": entry.version, "at": at},
            )

    async def mark_post_failed(
        self, entry: OutboxEntry, error: str, retry_at: datetime, *, attempt: bool = True
    ) -> None:
        """Delivery failed (or had to wait, ``attempt=False``); try again at ``retry_at``."""
        # A post that only waited was not sent by this claim: take back the claim's count, so
        # that an earlier process's unfinished send is still known at the next claim.
        waited = case((posts.c.sending > 0, posts.c.sending - 1), else_=0)
        async with self.engine.begin() as conn:
            await conn.execute(
                update(posts)
                .where(posts.c.id == entry.id)
                .values(
                    attempts=posts.c.attempts + int(attempt),
                    next_attempt_at=retry_at,
                    lease_until=None,
                    sending=0 if attempt or entry.ref is not None else waited,
                    last_error=error[:2000],
                )
            )

    async def give_up_post(self, entry: OutboxEntry, reason: str, at: datetime) -> None:
        """Stop delivering a post the platform can never take (it stays, marked, for the record)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(posts)
                .where(posts.c.id == entry.id)
                .values(
                    delivered_version=entry.version,
                    lease_until=None,
                    sending=0,
                    last_error=reason[:2000],
                    delivered_at=at,
                )
            )

    async def post_ref(self, key: str) -> PostRef | None:
        """Where the post with this key landed, if it was delivered."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(posts).where(posts.c.key == key))).first()
        if row is None or row.ref is None:
            return None
        return PostRef(key=row.key, channel=ChannelRef(row.platform, row.channel_id), ref=row.ref)

    async def post_progress(self, key: str) -> tuple[int, str | None]:
        """(delivered version, platform ref) of a post; (0, None) if unknown."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(posts.c.delivered_version, posts.c.ref).where(posts.c.key == key)
                )
            ).first()
        return (int(row.delivered_version), row.ref) if row else (0, None)

    async def outbox_backlog(self) -> int:
        """Posts whose latest version has not reached the platform."""
        async with self.engine.connect() as conn:
            count = await conn.scalar(
                select(func.count()).where(posts.c.delivered_version < posts.c.version)
            )
        return int(count or 0)

    # Scheduled meetings

    async def add_meeting(self, meeting: Meeting) -> None:
        """Insert a scheduled meeting."""
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(meetings).values(
                    id=meeting.id,
                    title=meeting.title,
                    platform=meeting.channel.platform,
                    channel_id=meeting.channel.channel_id,
                    host_id=meeting.host_id,
                    host_name=meeting.host_name,
                    zone=meeting.zone,
                    local_start=meeting.local_start.isoformat(),
                    starts_at=meeting.starts_at,
                    duration_s=meeting.duration_s,
                    rrule=meeting.rrule,
                    agenda=json.dumps(list(meeting.agenda)),
                    remind_s=meeting.remind_s,
                    state=meeting.state,
                    created_at=meeting.created_at,
                    updated_at=meeting.created_at,
                    lobby=meeting.lobby,
                )
            )

    async def touch_meeting(self, meeting_id: str, at: datetime) -> None:
        """Tell the scheduler (which polls ``updated_at``) to re-plan this meeting."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(meetings).where(meetings.c.id == meeting_id).values(updated_at=at)
            )

    async def meetings_changed_since(self, since: datetime) -> list[tuple[str, datetime]]:
        """(id, updated_at) of meetings changed at or after ``since``, oldest change first."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(meetings.c.id, meetings.c.updated_at)
                    .where(meetings.c.updated_at >= since)
                    .order_by(meetings.c.updated_at)
                )
            ).all()
        return [(row.id, row.updated_at) for row in rows]

    async def meeting(self, meeting_id: str) -> Meeting | None:
        """The meeting with that id, or None."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(meetings).where(meetings.c.id == meeting_id))).first()
        return _meeting(row) if row else None

    async def scheduled_meetings(self, channel: ChannelRef | None = None) -> list[Meeting]:
        """Meetings not cancelled, optionally of one channel, by first start."""
        query = select(meetings).where(meetings.c.state == "scheduled")
        if channel is not None:
            query = query.where(
                meetings.c.platform == channel.platform,
                meetings.c.channel_id == channel.channel_id,
            )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query.order_by(meetings.c.starts_at))).all()
        return [_meeting(row) for row in rows]

    async def set_meeting_state(self, meeting_id: str, state: str) -> None:
        """Cancel (or restore) a whole meeting series."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(meetings).where(meetings.c.id == meeting_id).values(state=state)
            )

    async def set_agenda(self, meeting_id: str, agenda: tuple[str, ...]) -> None:
        """Replace a meeting's agenda."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(meetings)
                .where(meetings.c.id == meeting_id)
                .values(agenda=json.dumps(list(agenda)))
            )

    async def set_occurrence(
        self, meeting_id: str, starts_at: datetime, state: str, huddle_id: str | None = None
    ) -> bool:
        """Mark one occurrence cancelled or started; False if it already had that state."""
        async with self.engine.begin() as conn:
            existing = (
                await conn.execute(
                    select(occurrences.c.state).where(
                        occurrences.c.meeting_id == meeting_id,
                        occurrences.c.starts_at == starts_at,
                    )
                )
            ).first()
            if existing is not None:
                if existing.state == state:
                    return False
                await conn.execute(
                    update(occurrences)
                    .where(
                        occurrences.c.meeting_id == meeting_id,
                        occurrences.c.starts_at == starts_at,
                    )
                    .values(state=state, huddle_id=huddle_id)
                )
                return True
            try:
                await conn.execute(
                    insert(occurrences).values(
                        meeting_id=meeting_id, starts_at=starts_at, state=state, huddle_id=huddle_id
                    )
                )
            except IntegrityError:
                return False  # another process recorded it first
        return True

    async def occurrence_states(self, meeting_id: str) -> dict[datetime, tuple[str, str | None]]:
        """Occurrences that differ from the rule: start -> (state, huddle id)."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(occurrences).where(occurrences.c.meeting_id == meeting_id)
                )
            ).all()
        return {row.starts_at: (row.state, row.huddle_id) for row in rows}

    async def set_rsvp(self, rsvp: Rsvp, at: datetime) -> None:
        """Record (or change) someone's answer."""
        await self._upsert(
            rsvps,
            {"meeting_id": rsvp.meeting_id, "user_id": rsvp.user_id},
            {"answer": rsvp.answer, "user_name": rsvp.user_name, "zone": rsvp.zone, "at": at},
        )

    async def rsvps(self, meeting_id: str) -> list[Rsvp]:
        """Every answer to a meeting, in the order given."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(rsvps).where(rsvps.c.meeting_id == meeting_id).order_by(rsvps.c.at)
                )
            ).all()
        return [Rsvp(r.meeting_id, r.user_id, r.user_name, r.answer, r.zone) for r in rows]

    # Notes, action items, feedback

    async def save_notes(self, huddle_id: str, text: str, by: str, at: datetime) -> None:
        """Replace a huddle's shared notes."""
        await self._upsert(
            huddle_notes,
            {"huddle_id": huddle_id},
            {"text": text, "updated_by": by, "updated_at": at},
        )

    async def notes(self, huddle_id: str) -> str:
        """A huddle's shared notes ("" if nobody wrote any)."""
        async with self.engine.connect() as conn:
            text = await conn.scalar(
                select(huddle_notes.c.text).where(huddle_notes.c.huddle_id == huddle_id)
            )
        return str(text or "")

    async def add_action_item(self, item: ActionItem, at: datetime) -> None:
        """Store an action item read from the notes."""
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(action_items).values(
                    id=item.id,
                    huddle_id=item.huddle_id,
                    meeting_id=item.meeting_id,
                    platform=item.channel.platform,
                    channel_id=item.channel.channel_id,
                    owner=item.owner,
                    text=item.text,
                    due_at=item.due_at,
                    state=item.state,
                    created_at=at,
                    updated_at=at,
                )
            )

    async def action_item(self, item_id: str) -> ActionItem | None:
        """One action item by id."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(action_items).where(action_items.c.id == item_id))
            ).first()
        return _action(row) if row else None

    async def action_items_of(
        self, *, huddle_id: str | None = None, meeting_id: str | None = None
    ) -> list[ActionItem]:
        """Action items of one huddle, or of every huddle of a (recurring) meeting."""
        query = select(action_items).order_by(action_items.c.created_at, action_items.c.id)
        if huddle_id is not None:
            query = query.where(action_items.c.huddle_id == huddle_id)
        if meeting_id is not None:
            query = query.where(action_items.c.meeting_id == meeting_id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_action(row) for row in rows]

    async def set_action_state(self, item_id: str, state: str, at: datetime) -> None:
        """Close (or reopen) an action item."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(action_items)
                .where(action_items.c.id == item_id)
                .values(state=state, updated_at=at)
            )

    async def action_items_changed_since(self, since: datetime) -> list[tuple[str, datetime]]:
        """(id, updated_at) of action items changed at or after ``since``."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(action_items.c.id, action_items.c.updated_at)
                    .where(action_items.c.updated_at >= since)
                    .order_by(action_items.c.updated_at)
                )
            ).all()
        return [(row.id, row.updated_at) for row in rows]

    async def save_feedback(
        self, huddle_id: str, participant_id: str, name: str, score: int, at: datetime
    ) -> None:
        """Record (or change) one participant's 1-5 rating of a call."""
        await self._upsert(
            feedback,
            {"huddle_id": huddle_id, "participant_id": participant_id},
            {"score": score, "name": name, "at": at},
        )

    async def feedback_scores(self, huddle_id: str) -> list[int]:
        """Every rating given for a huddle."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(feedback.c.score).where(feedback.c.huddle_id == huddle_id)
                )
            ).all()
        return [int(row.score) for row in rows]

    # Shares

    async def add_share(self, huddle_id: str, channel: ChannelRef, by: str, at: datetime) -> bool:
        """Post the huddle in another channel too; False if it already was."""
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    insert(huddle_shares).values(
                        huddle_id=huddle_id,
                        platform=channel.platform,
                        channel_id=channel.channel_id,
                        shared_by=by,
                        at=at,
                    )
                )
        except IntegrityError:
            return False
        return True

    async def shares(self, huddle_id: str) -> list[ChannelRef]:
        """The other channels a huddle was shared into, in order."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(huddle_shares.c.platform, huddle_shares.c.channel_id)
                    .where(huddle_shares.c.huddle_id == huddle_id)
                    .order_by(huddle_shares.c.at)
                )
            ).all()
        return [ChannelRef(row.platform, row.channel_id) for row in rows]

    # Time zone preferences

    async def set_zone(self, table: str, platform: str, key: str, zone: str) -> None:
        """Remember a user's (``table="user"``) or channel's (``"channel"``) time zone."""
        target = user_prefs if table == "user" else channel_prefs
        column = "user_id" if table == "user" else "channel_id"
        await self._upsert(target, {"platform": platform, column: key}, {"zone": zone})

    async def zone_of(self, table: str, platform: str, key: str) -> str | None:
        """A user's or channel's stored time zone."""
        target = user_prefs if table == "user" else channel_prefs
        column = target.c.user_id if table == "user" else target.c.channel_id
        async with self.engine.connect() as conn:
            zone = await conn.scalar(
                select(target.c.zone).where(target.c.platform == platform, column == key)
            )
        return str(zone) if zone else None

    # The built-in web chat

    async def add_chat_message(
        self,
        *,
        channel: str,
        author: str,
        is_bot: bool,
        text: str,
        at: datetime,
        title: str = "",
        buttons: list[dict[str, str]] | None = None,
        thread_of: int | None = None,
        visible_to: str | None = None,
    ) -> ChatMessage:
        """Append a message to a web chat channel and return it with its id."""
        values = {
            "channel": channel,
            "author": author,
            "is_bot": int(is_bot),
            "title": title,
            "text": text,
            "buttons": json.dumps(buttons or []),
            "thread_of": thread_of,
            "visible_to": visible_to,
            "created_at": at,
        }
        async with self.engine.begin() as conn:
            result = await conn.execute(insert(chat_messages).values(**values))
            message_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
        assert message_id is not None
        return _chat({**values, "id": message_id, "edited_at": None})

    async def edit_chat_message(
        self, message_id: int, *, title: str, text: str, buttons: list[dict[str, str]], at: datetime
    ) -> ChatMessage | None:
        """Replace a message's content; None if there is no such message."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(chat_messages)
                .where(chat_messages.c.id == message_id)
                .values(title=title, text=text, buttons=json.dumps(buttons), edited_at=at)
            )
            row = (
                await conn.execute(select(chat_messages).where(chat_messages.c.id == message_id))
            ).first()
        return _chat(row._asdict()) if row else None

    async def chat_message(self, message_id: int) -> ChatMessage | None:
        """One web chat message by id."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(chat_messages).where(chat_messages.c.id == message_id))
            ).first()
        return _chat(row._asdict()) if row else None

    async def chat_history(
        self, channel: str, viewer: str | None, limit: int = 200
    ) -> list[ChatMessage]:
        """The last ``limit`` messages of a channel that ``viewer`` may see, oldest first."""
        visible: ColumnElement[bool] = chat_messages.c.visible_to.is_(None)
        if viewer is not None:
            visible = visible | (chat_messages.c.visible_to == viewer)
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(chat_messages)
                    .where(chat_messages.c.channel == channel, visible)
                    .order_by(chat_messages.c.id.desc())
                    .limit(limit)
                )
            ).all()
        return [_chat(row._asdict()) for row in reversed(rows)]

    async def chat_channels(self) -> list[str]:
        """Channels that have at least one message, by name."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(chat_messages.c.channel).distinct().order_by(chat_messages.c.channel)
                )
            ).all()
        return [row.channel for row in rows]


def _huddle(row: Row[Any]) -> Huddle:
    return Huddle(
        id=row.id,
        title=row.title,
        host_id=row.host_id,
        host_name=row.host_name,
        channel=ChannelRef(row.platform, row.channel_id),
        state=row.state,
        created_at=row.created_at,
        first_joined_at=row.first_joined_at,
        ended_at=row.ended_at,
        end_reason=row.end_reason,
        meeting_id=row.meeting_id,
        locked=bool(row.locked),
        lobby=bool(row.lobby),
        passcode=row.passcode,
        chat_to_notes=bool(row.chat_to_notes),
    )


def _action(row: Row[Any]) -> ActionItem:
    return ActionItem(
        id=row.id,
        huddle_id=row.huddle_id,
        meeting_id=row.meeting_id,
        channel=ChannelRef(row.platform, row.channel_id),
        owner=row.owner,
        text=row.text,
        due_at=row.due_at,
        state=row.state,
    )


def _meeting(row: Row[Any]) -> Meeting:
    return Meeting(
        id=row.id,
        title=row.title,
        channel=ChannelRef(row.platform, row.channel_id),
        host_id=row.host_id,
        host_name=row.host_name,
        zone=row.zone,
        local_start=datetime.fromisoformat(row.local_start),
        starts_at=row.starts_at,
        duration_s=row.duration_s,
        rrule=row.rrule,
        agenda=tuple(json.loads(row.agenda or "[]")),
        remind_s=row.remind_s,
        state=row.state,
        created_at=row.created_at,
        lobby=bool(row.lobby),
    )


def _outbox(row: Row[Any]) -> OutboxEntry:
    return OutboxEntry(
        id=row.id,
        key=row.key,
        channel=ChannelRef(row.platform, row.channel_id),
        thread_of=row.thread_of,
        payload=row.payload,
        version=row.version,
        delivered_version=row.delivered_version,
        ref=row.ref,
        attempts=row.attempts,
        # This claim counted itself (see ``claim_due_posts``): more than one means another.
        sending=row.ref is None and row.sending > 1,
    )


def _chat(values: dict[str, Any]) -> ChatMessage:
    return ChatMessage(
        id=int(values["id"]),
        channel=values["channel"],
        author=values["author"],
        is_bot=bool(values["is_bot"]),
        title=values["title"] or "",
        text=values["text"],
        buttons=json.loads(values["buttons"] or "[]"),
        thread_of=values["thread_of"],
        visible_to=values["visible_to"],
        created_at=values["created_at"],
        edited_at=values["edited_at"],
    )

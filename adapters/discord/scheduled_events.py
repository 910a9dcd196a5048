"""Scheduled meetings as Discord scheduled events, and their subscriber counts as RSVPs.

Each meeting gets one external event (its location is the meeting's page) for its next
occurrence. discord.py 2.7 cannot send Discord's ``recurrence_rule``, so a series is one event at a
time: Discord starts an external event at its start time by itself, and once the core says the
occurrence started the event for the following one is created. The event is found again by its
location (``/m/<meeting id>``), so nothing is stored on huddle's side.

Snapshots are applied in the background, one at a time, only the latest of each meeting: a command
never waits on Discord, a burst of changes costs one update, snapshots wait for the bot to be
logged in, and one that failed for a passing reason (Discord or the network down) is tried again
with backoff.

People marking an event "interested" reach the core as ``Interested on discord: N`` on the agenda
card (:meth:`MeetingService.set_external_interest`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import aiohttp
import discord

from adapters.discord.client import DiscordNotConnected, HuddleClient
from bot.meetings import MeetingService
from bot.types import MeetingSnapshot

log = logging.getLogger("huddle.discord")

PLATFORM = "discord"

#: Discord's limits (https://discord.com/developers/docs/resources/guild-scheduled-event).
NAME_LIMIT = 100
DESCRIPTION_LIMIT = 1000
LOCATION_LIMIT = 100

#: Waits between attempts while Discord cannot take a snapshot.
RETRY_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
#: Subscriptions are counted this long after the first change: a burst costs one request.
RECOUNT_DELAY = 1.0

_MEETING_IN_LOCATION = re.compile(r"/m/([A-Za-z0-9]+)(?:\?|$)")


def event_location(url: str) -> str:
    """Where the event happens: the meeting's page, or as much as fits of it without its key.

    Discord allows 100 characters; a longer ``HUDDLE_PUBLIC_URL`` loses the signature (the
    description still carries the whole link) and then its start, keeping ``/m/<id>`` to find it by.
    """
    if len(url) <= LOCATION_LIMIT:
        return url
    bare = url.partition("?")[0]
    return bare if len(bare) <= LOCATION_LIMIT else "…" + bare[-(LOCATION_LIMIT - 1) :]


def meeting_of(location: str | None) -> str | None:
    """The meeting id an event's location names, if it is a meeting page."""
    match = _MEETING_IN_LOCATION.search(location or "")
    return match.group(1) if match else None


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _transient(exc: Exception) -> bool:
    """Worth trying again: Discord or the network failing, or the bot not logged in yet."""
    if isinstance(exc, discord.HTTPException):
        return exc.status >= 500 or exc.status == 429
    return isinstance(exc, DiscordNotConnected | OSError | aiohttp.ClientError | TimeoutError)


@dataclass(frozen=True)
class EventFields:
    """What huddle sets on a meeting's scheduled event."""

    name: str
    description: str
    start_time: datetime
    end_time: datetime
    location: str

    @classmethod
    def of(cls, snapshot: MeetingSnapshot) -> EventFields | None:
        """The event a snapshot calls for; None when it calls for none (cancelled, or over)."""
        if snapshot.cancelled or snapshot.starts_at is None or snapshot.ends_at is None:
            return None
        return cls(
            name=_clip(snapshot.title, NAME_LIMIT),
            description=_clip(snapshot.description, DESCRIPTION_LIMIT),
            start_time=snapshot.starts_at,
            end_time=snapshot.ends_at,
            location=event_location(snapshot.url),
        )

    @classmethod
    def from_event(cls, event: discord.ScheduledEvent) -> EventFields | None:
        """What the event on Discord has now."""
        if event.end_time is None:
            return None
        return cls(
            name=event.name,
            description=event.description or "",
            start_time=event.start_time,
            end_time=event.end_time,
            location=event.location or "",
        )


class MeetingEvents:
    """Keeps one Discord scheduled event per meeting in step with the core's snapshots."""

    def __init__(
        self, meetings: MeetingService, client: Callable[[], Awaitable[HuddleClient]]
    ) -> None:
        self.meetings = meetings
        #: Waits for the client to be logged in and ready; raises :class:`DiscordNotConnected`
        #: if it has been closed since.
        self._client = client
        self._pending: dict[str, MeetingSnapshot] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._worker: asyncio.Task[None] | None = None
        self._recounts: dict[tuple[int, int], asyncio.Task[None]] = {}

    def start(self) -> None:
        """Start applying snapshots (they wait while the bot is not logged in)."""
        if self._worker is None:
            self._worker = asyncio.create_task(self._run(), name="discord-events")

    async def stop(self) -> None:
        """Stop; snapshots not yet applied are dropped (the next change brings a new one)."""
        tasks = [*self._recounts.values(), *([self._worker] if self._worker else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._worker = None

    def mirror(self, snapshot: MeetingSnapshot) -> None:
        """Bring the meeting's event in line with ``snapshot`` soon (replacing an older one)."""
        self._pending[snapshot.meeting_id] = snapshot
        self._idle.clear()
        self._wake.set()

    async def wait_idle(self) -> None:
        """Wait until every snapshot so far is applied or given up (tests use it)."""
        await self._idle.wait()

    # Applying snapshots

    async def _run(self) -> None:
        failures = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                snapshot = next(iter(self._pending.values()))
                try:
                    await self._apply(snapshot)
                except Exception as exc:
                    if not _transient(exc):
                        log.exception("scheduled event not updated meeting=%s", snapshot.meeting_id)
                    else:
                        delay = RETRY_BACKOFF[min(failures, len(RETRY_BACKOFF) - 1)]
                        failures += 1
                        log.warning(
                            "scheduled event update failed, retrying in %.0fs meeting=%s error=%r",
                            delay,
                            snapshot.meeting_id,
                            exc,
                        )
                        await asyncio.sleep(delay)
                        continue
                else:
                    failures = 0
                if self._pending.get(snapshot.meeting_id) is snapshot:
                    del self._pending[snapshot.meeting_id]
            self._idle.set()

    async def _apply(self, snapshot: MeetingSnapshot) -> None:
        client = await self._client()
        guild = await self._guild_of(client, snapshot)
        if guild is None:
            return
        ours = [
            event
            for event in await guild.fetch_scheduled_events(with_counts=True)
            if self._is_ours(client, event) and meeting_of(event.location) == snapshot.meeting_id
        ]
        # An event whose time has come is the occurrence under way (Discord starts external events
        # at their start time, give or take a moment): it ends by itself and is left alone.
        now = self.meetings.clock()
        upcoming = [
            e for e in ours if e.status is discord.EventStatus.scheduled and e.start_time > now
        ]
        wanted = EventFields.of(snapshot)
        try:
            if wanted is None:
                for event in upcoming:
                    await event.delete(reason="huddle: meeting cancelled or over")
                    log.info(
                        "scheduled event deleted meeting=%s event=%s", snapshot.meeting_id, event.id
                    )
                return
            if wanted.start_time <= now:
                return  # stale: the core sends the next occurrence once this one has started
            for duplicate in upcoming[1:]:
                await duplicate.delete(reason="huddle: one event per meeting")
            count = await self._put(guild, upcoming[0] if upcoming else None, wanted, snapshot)
        except discord.Forbidden as exc:
            log.error(
                "discord refused the scheduled event of meeting=%s: give the bot Manage Events "
                "(or Create Events) in guild=%s error=%s",
                snapshot.meeting_id,
                guild.id,
                exc,
            )
            return
        await self._show_interest(snapshot.meeting_id, count)

    async def _put(
        self,
        guild: discord.Guild,
        event: discord.ScheduledEvent | None,
        wanted: EventFields,
        snapshot: MeetingSnapshot,
    ) -> int:
        """Create or edit the event; return how many people are interested in it."""
        if event is None:
            created = await guild.create_scheduled_event(
                name=wanted.name,
                description=wanted.description,
                start_time=wanted.start_time,
                end_time=wanted.end_time,
                location=wanted.location,
                entity_type=discord.EntityType.external,
                privacy_level=discord.PrivacyLevel.guild_only,
                reason="huddle: meeting scheduled",
            )
            log.info("scheduled event created meeting=%s event=%s", snapshot.meeting_id, created.id)
            return 0
        if EventFields.from_event(event) != wanted:
            # Discord's answer to an edit carries no count: the listed one is current.
            await event.edit(
                name=wanted.name,
                description=wanted.description,
                start_time=wanted.start_time,
                end_time=wanted.end_time,
                location=wanted.location,
                reason="huddle: meeting changed",
            )
            log.info("scheduled event updated meeting=%s event=%s", snapshot.meeting_id, event.id)
        return event.user_count

    async def _guild_of(
        self, client: HuddleClient, snapshot: MeetingSnapshot
    ) -> discord.Guild | None:
        """The guild of the meeting's channel (or thread): from the cache, else from Discord."""
        channel_id = int(snapshot.channel.channel_id)
        channel = client.get_channel(channel_id)
        if channel is None:
            try:
                channel = await client.fetch_channel(channel_id)
            except (discord.NotFound, discord.Forbidden) as exc:
                log.warning(
                    "no scheduled event for meeting=%s: channel=%s is gone error=%s",
                    snapshot.meeting_id,
                    channel_id,
                    exc,
                )
                return None
        guild = getattr(channel, "guild", None)
        if not isinstance(guild, discord.Guild):
            log.warning(
                "no scheduled event for meeting=%s: channel=%s is not in a guild the bot is in",
                snapshot.meeting_id,
                channel_id,
            )
            return None
        return guild

    # Interest

    async def interest_changed(self, guild_id: int, event_id: int) -> None:
        """Someone marked an event interested or not: count its subscribers again, shortly."""
        key = (guild_id, event_id)
        if key not in self._recounts:
            self._recounts[key] = asyncio.create_task(self._recount(key), name="discord-recount")

    async def _recount(self, key: tuple[int, int]) -> None:
        guild_id, event_id = key
        try:
            await asyncio.sleep(RECOUNT_DELAY)
        finally:
            # A change from now on needs a count of its own: this one may have missed it.
            del self._recounts[key]
        try:
            client = await self._client()
            guild = client.get_guild(guild_id)
            cached = guild.get_scheduled_event(event_id) if guild else None
            if guild is None or client.user is None:
                return
            if cached is not None and not self._is_ours(client, cached):
                return  # someone else's event: no request needed
            event = await guild.fetch_scheduled_event(event_id, with_counts=True)
            meeting_id = meeting_of(event.location)
            if self._is_ours(client, event) and meeting_id is not None:
                if event.status is discord.EventStatus.scheduled:
                    await self._show_interest(meeting_id, event.user_count)
        except Exception:
            log.warning(
                "could not count interest guild=%s event=%s", guild_id, event_id, exc_info=True
            )

    async def recount_all(self) -> None:
        """Count the subscribers of every meeting's event (a new session may have missed some)."""
        try:
            client = await self._client()
            for guild in client.guilds:
                for event in await guild.fetch_scheduled_events(with_counts=True):
                    meeting_id = meeting_of(event.location)
                    if meeting_id is None or not self._is_ours(client, event):
                        continue
                    if event.status is discord.EventStatus.scheduled:
                        await self._show_interest(meeting_id, event.user_count)
        except Exception:
            log.warning("could not count interest in scheduled events", exc_info=True)

    @staticmethod
    def _is_ours(client: HuddleClient, event: discord.ScheduledEvent) -> bool:
        return client.user is not None and event.creator_id == client.user.id

    async def _show_interest(self, meeting_id: str, count: int) -> None:
        # Only a change edits the agenda card; no subscriber yet is as good as unknown.
        shown = self.meetings.external_interest.get(meeting_id, {}).get(PLATFORM, 0)
        if count != shown:
            await self.meetings.set_external_interest(meeting_id, PLATFORM, count)

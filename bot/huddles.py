"""The life of a huddle: created by `/meet`, fed by the media core's join/leave events, ended.

A huddle ends when its host ends it, when everyone has left and nobody came back within the grace
period, or when nobody joined at all within the unused timeout.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import replace
from typing import Any, Protocol

from bot.cards import huddle_card
from bot.config import Settings
from bot.delivery import Publisher
from bot.public_url import LinkBase
from bot.records import Attendance, Huddle
from bot.store import Store
from bot.types import (
    Button,
    ChannelRef,
    Clock,
    Delivered,
    HuddleSnapshot,
    Post,
    Reply,
    User,
    utc_now,
)
from media import passcodes
from media.events import (
    ChatPosted,
    EndRequested,
    HuddleAccess,
    MediaEvent,
    MediaListener,
    NotesChanged,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantRemoved,
    RoomChanged,
)
from media.tokens import Role

log = logging.getLogger("huddle.huddles")

_ID_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no 0/o, 1/l: ids are typed by people
#: New ids drawn for a huddle before giving up (a taken id is rare, two in a row rarer still).
ID_DRAWS = 5


def new_huddle_id() -> str:
    """A short id people can type: 6 characters, ~1e9 values."""
    # 32 letters, so every random byte maps to one evenly; one system call for all six.
    return "".join(_ID_ALPHABET[byte % 32] for byte in secrets.token_bytes(6))


class Media(Protocol):
    """What the core needs from the media core (``media.server.MediaServer`` provides it)."""

    def join_url(self, huddle_id: str, expires_at: float, role: Role = "participant") -> str: ...

    def subscribe(self, listener: MediaListener) -> None: ...

    async def end_huddle(self, huddle_id: str, reason: str) -> None: ...

    async def set_room(self, huddle_id: str, *, locked: bool, lobby: bool, by: str) -> None: ...


class HuddleService:
    """Creates huddles, keeps their cards true, and ends them."""

    def __init__(
        self,
        store: Store,
        media: Media,
        publisher: Publisher,
        settings: Settings,
        clock: Clock = utc_now,
        link_base: LinkBase | None = None,
    ) -> None:
        self.store = store
        self.media = media
        self.publisher = publisher
        self.settings = settings
        self.clock = clock
        #: Where Join links point now (None: where the media server makes them).
        self.link_base = link_base
        self._end_timers: dict[str, asyncio.TimerHandle] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        #: Called with the ended huddle (the notes thread, follow-ups).
        self.on_ended: list[Callable[[Huddle], Awaitable[None]]] = []

    async def start(self) -> None:
        """Listen to the media core and pick up huddles left open by a previous process."""
        self.media.subscribe(self.on_media_event)
        now = self.clock()
        closed = await self.store.close_stale_attendance(now, self.settings.node)
        for huddle in await self.store.open_huddles():
            stays = await self.store.attendance(huddle.id)
            if any(stay.left_at is None for stay in stays):
                continue  # people are in it on another process; that one keeps its timers
            # Nobody is connected after a restart: give people the grace period to come back.
            delay = (
                self.settings.empty_grace
                if huddle.first_joined_at
                else self.settings.unused_timeout
            )
            self._schedule_end(huddle.id, delay, "empty")
            self.refresh_card(huddle.id)
        if closed:
            log.info("closed stale attendance rows=%d", closed)

    async def stop(self) -> None:
        """Cancel timers and wait for card updates in flight."""
        for handle in self._end_timers.values():
            handle.cancel()
        self._end_timers.clear()
        pending = list(self._refreshing.values()) + list(self._tasks)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    # Creating and ending

    async def create(
        self,
        channel: ChannelRef,
        host: User,
        title: str | None,
        *,
        huddle_id: str | None = None,
        meeting_id: str | None = None,
        lobby: bool = False,
    ) -> tuple[Huddle, Delivered | None]:
        """Start a huddle in ``channel`` and post its card there (None: the card is queued)."""
        for _ in range(ID_DRAWS):
            huddle = Huddle(
                id=huddle_id or new_huddle_id(),
                title=title or f"{host.name}'s huddle",
                host_id=host.id,
                host_name=host.name,
                channel=channel,
                state="open",
                created_at=self.clock(),
                meeting_id=meeting_id,
                lobby=lobby,
            )
            url = self.join_url(huddle.id)
            card = huddle_card(huddle, [], url)
            # The huddle and its card in one transaction (never one without the other), the
            # card leased to this process to be sent at once.
            added = await self.store.add_huddle(huddle, self.publisher.outgoing(card, now=True))
            if added is not None:
                break
            if huddle_id is not None:
                raise ValueError(f"huddle {huddle_id} exists already")
            # Short ids are taken now and then (1 in ~1e9 per huddle kept): draw another.
            log.info("huddle id taken id=%s; drawing another", huddle.id)
        else:
            raise RuntimeError(f"no free huddle id in {ID_DRAWS} draws")
        version, leased = added
        log.info("huddle created id=%s channel=%s host=%s", huddle.id, channel, host.id)
        self._schedule_end(huddle.id, self.settings.unused_timeout, "unused")
        delivered = await self.publisher.delivered(card, version, leased)
        # Platforms that mirror calls natively (Slack's Calls API) register it now.
        await self.publisher.notify(
            _snapshot(huddle, [], url, delivered.ref if delivered else None)
        )
        return huddle, delivered

    async def end(self, huddle_id: str, reason: str) -> bool:
        """End the huddle now: close the call, update the card. False if it was not open."""
        ended = await self.store.end_huddle(huddle_id, self.clock(), reason)
        handle = self._end_timers.pop(huddle_id, None)
        if handle:
            handle.cancel()
        if not ended:
            return False
        log.info("huddle ended id=%s reason=%s", huddle_id, reason)
        await self.media.end_huddle(huddle_id, reason)
        self.refresh_card(huddle_id)
        huddle = await self.store.huddle(huddle_id)
        if huddle is not None:
            for callback in self.on_ended:
                try:
                    await callback(huddle)
                except Exception:
                    log.exception("after-end step failed huddle=%s", huddle_id)
        return True

    async def channels(self, huddle: Huddle) -> list[ChannelRef]:
        """Every channel the huddle is posted in: its home first, then where it was shared."""
        return [huddle.channel, *await self.store.shares(huddle.id)]

    async def share(
        self, huddle: Huddle, channel: ChannelRef, by: User
    ) -> tuple[bool, Delivered | None]:
        """Post the huddle's card in another channel too; it updates there like at home.

        Returns whether it was newly shared, and the card if it landed already.
        """
        if channel == huddle.channel or not await self.store.add_share(
            huddle.id, channel, f"{by.name} ({channel.platform})", self.clock()
        ):
            return False, None
        log.info("huddle shared id=%s to=%s by=%s", huddle.id, channel, by.id)
        stays = await self.store.attendance(huddle.id)
        delivered = await self.publisher.publish(
            huddle_card(huddle, stays, self.join_url(huddle.id), channel)
        )
        await self.publisher.publish(
            Post(
                key=f"{huddle.card_key}/shared/{channel.platform}:{channel.channel_id}",
                channel=huddle.channel,
                text=f"{by.name} shared this huddle to #{channel.channel_id}"
                f" on {channel.platform}.",
                thread_of=huddle.card_key,
            ),
            wait=0,
        )
        return True, delivered

    def join_url(self, huddle_id: str, role: Role = "participant") -> str:
        """A fresh signed link to the huddle's page (the card's; ``host`` for the host's own)."""
        expires = self.clock().timestamp() + self.settings.link_ttl
        url = self.media.join_url(huddle_id, expires, role)
        return self.link_base.rebase(url) if self.link_base else url

    def host_reply(self, huddle: Huddle) -> Reply:
        """The host's own link, for their eyes only (ephemeral, or a direct message)."""
        return Reply(
            f"You host “{huddle.title}” (`{huddle.id}`). Join with your host link to mute, "
            "remove, lock or end for everyone; keep it to yourself (the card's link makes "
            f"participants). From here: `/meet lock {huddle.id}`, `/meet end {huddle.id}`.",
            (Button("Join as host", self.join_url(huddle.id, "host")),),
        )

    async def share_hosting(self, huddle: Huddle, user_id: str, by: str) -> None:
        """Make ``user_id`` a host too: their own host link, by direct message."""
        link = self.host_reply(huddle)
        await self.publisher.publish(
            Post(
                key=f"{huddle.card_key}/host-link/{user_id}",
                channel=huddle.channel,
                title=f"You host: {huddle.title}",
                text=f"{by} made you a host. {link.text}",
                buttons=link.buttons,
                to_user=user_id,
            ),
            wait=0,
        )
        log.info("hosting shared huddle=%s to=%s by=%s", huddle.id, user_id, by)

    async def set_passcode(self, huddle: Huddle, code: str | None) -> None:
        """Ask for ``code`` on the join page from now on (None: no passcode)."""
        digest = passcodes.digest(huddle.id, code) if code else None
        await self.store.set_passcode(huddle.id, digest)

    async def set_room(
        self, huddle: Huddle, by: str, *, locked: bool | None = None, lobby: bool | None = None
    ) -> Huddle:
        """Lock or unlock the huddle, turn its waiting room on or off, from the channel; the
        call follows at once. Returns the huddle as it is now."""
        locked = huddle.locked if locked is None else locked
        lobby = huddle.lobby if lobby is None else lobby
        await self.store.set_room(huddle.id, locked=locked, lobby=lobby)
        await self.media.set_room(huddle.id, locked=locked, lobby=lobby, by=by)
        self.refresh_card(huddle.id)
        return replace(huddle, locked=locked, lobby=lobby)

    async def gate(self, huddle_id: str) -> HuddleAccess | None:
        """Asked by the media core before letting anyone in."""
        huddle = await self.store.huddle(huddle_id)
        if huddle is None:
            return None
        reason = ""
        if not huddle.is_open and huddle.ended_at:
            reason = f"This huddle ended at {huddle.ended_at:%H:%M} UTC on {huddle.ended_at:%d %b}."
        if not huddle.is_open:
            return HuddleAccess(huddle_id, huddle.title, False, reason)
        return HuddleAccess(
            huddle_id,
            huddle.title,
            True,
            reason,
            await self.store.notes(huddle_id),
            locked=huddle.locked,
            removed_seats=await self.store.removed_seats(huddle_id),
            lobby=huddle.lobby,
            passcode=huddle.passcode or "",
            chat_to_notes=huddle.chat_to_notes,
        )

    # Events from the media core

    async def on_media_event(self, event: MediaEvent) -> None:
        """Log attendance and keep the card and the end timer right."""
        huddle = await self.store.huddle(event.huddle_id)
        if huddle is None or not huddle.is_open:
            return
        if isinstance(event, NotesChanged):
            return  # the minutes keep the notes
        if isinstance(event, ChatPosted):
            await self.store.add_chat_line(
                event.huddle_id, event.participant_id, event.name, event.text, event.at
            )
            return
        if isinstance(event, RoomChanged):
            await self.store.set_room(
                event.huddle_id,
                locked=event.locked,
                lobby=event.lobby,
                chat_to_notes=event.chat_to_notes,
            )
            self.refresh_card(event.huddle_id)
            return
        if isinstance(event, EndRequested):
            # Not awaited here: ending waits for the media core, whose next events (everyone
            # leaving) come through this same listener.
            # The name is the one the host typed on the join page: it fits the column.
            self._spawn(self._end_logged(event.huddle_id, f"ended by {event.by}"[:64]))
            return
        if isinstance(event, ParticipantRemoved):
            await self.store.record_removed(
                event.huddle_id, event.participant_id, event.seat, event.by, event.at
            )
            log.info("participant removed huddle=%s by=%s", event.huddle_id, event.by)
        elif isinstance(event, ParticipantJoined):
            await self.store.record_join(
                event.huddle_id, event.participant_id, event.name, event.at, self.settings.node
            )
            await self.store.mark_first_joined(event.huddle_id, event.at)
            handle = self._end_timers.pop(event.huddle_id, None)
            if handle:
                handle.cancel()
        elif isinstance(event, ParticipantLeft):
            await self.store.record_leave(event.huddle_id, event.participant_id, event.at)
            stays = await self.store.attendance(event.huddle_id)
            if all(s.left_at is not None for s in stays):
                self._schedule_end(event.huddle_id, self.settings.empty_grace, "empty")
        self.refresh_card(event.huddle_id)

    # Timers and card refresh

    def _schedule_end(self, huddle_id: str, delay: float, reason: str) -> None:
        old = self._end_timers.pop(huddle_id, None)
        if old:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._end_timers[huddle_id] = loop.call_later(delay, self._end_later, huddle_id, reason)

    def _end_later(self, huddle_id: str, reason: str) -> None:
        self._end_timers.pop(huddle_id, None)
        self._spawn(self._end_logged(huddle_id, reason))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _end_logged(self, huddle_id: str, reason: str) -> None:
        try:
            await self.end(huddle_id, reason)
        except Exception:
            log.exception("could not end huddle id=%s", huddle_id)

    def refresh_card(self, huddle_id: str) -> None:
        """Bring the card up to date soon; bursts of changes become one edit (plus one trailing)."""
        self._dirty.add(huddle_id)
        if huddle_id not in self._refreshing:
            task = asyncio.get_running_loop().create_task(self._refresh(huddle_id))
            self._refreshing[huddle_id] = task

    async def wait_idle(self) -> None:
        """Wait until every pending card update has been delivered (tests, shutdown)."""
        while self._refreshing:
            await asyncio.gather(*list(self._refreshing.values()), return_exceptions=True)
        async with asyncio.timeout(10):
            await self.publisher.flush()

    async def _refresh(self, huddle_id: str) -> None:
        try:
            while huddle_id in self._dirty:
                self._dirty.discard(huddle_id)
                huddle = await self.store.huddle(huddle_id)
                if huddle is None:
                    return
                stays = await self.store.attendance(huddle_id)
                url = self.join_url(huddle_id) if huddle.is_open else None
                for channel in await self.channels(huddle):
                    # Queued durably; a platform that is down gets the latest card when back.
                    await self.publisher.publish(huddle_card(huddle, stays, url, channel), wait=0)
                    card = await self.store.post_ref(huddle.card_key_in(channel))
                    await self.publisher.notify(
                        _snapshot(huddle, stays, url, card.ref if card else None, channel)
                    )
        finally:
            self._refreshing.pop(huddle_id, None)


def _snapshot(
    huddle: Huddle,
    stays: Sequence[Attendance],
    url: str | None,
    card_ref: str | None,
    channel: ChannelRef | None = None,
) -> HuddleSnapshot:
    return HuddleSnapshot(
        huddle_id=huddle.id,
        title=huddle.title,
        channel=channel or huddle.channel,
        host=User(huddle.host_id, huddle.host_name),
        join_url=url,
        is_open=huddle.is_open,
        present=tuple((s.participant_id, s.name) for s in stays if s.left_at is None),
        card_ref=card_ref,
    )

"""Events the media core emits for whoever listens (the bot core subscribes to them)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

log = logging.getLogger(__name__)

#: Seconds a closing media core waits for its listeners to take the last events.
DRAIN_SECONDS = 5.0


@dataclass(frozen=True)
class ParticipantJoined:
    """A participant entered a huddle (after `join`, before media flows)."""

    huddle_id: str
    participant_id: str
    name: str
    at: datetime


@dataclass(frozen=True)
class ParticipantLeft:
    """A participant left a huddle: said `leave`, closed the page, or lost the connection."""

    huddle_id: str
    participant_id: str
    name: str
    at: datetime


@dataclass(frozen=True)
class NotesChanged:
    """Someone edited the huddle's shared notes; ``text`` is the whole new text."""

    huddle_id: str
    text: str
    by: str
    at: datetime


@dataclass(frozen=True)
class ParticipantRemoved:
    """A host removed someone (their :class:`ParticipantLeft` follows).

    ``seat`` names the browser they joined from (the join page's cookie): the same link opened
    there again is refused for the rest of the huddle.
    """

    huddle_id: str
    participant_id: str
    name: str
    seat: str
    by: str
    at: datetime


@dataclass(frozen=True)
class RoomChanged:
    """A host changed the huddle's settings from the call: locked, waiting room on, whether the
    chat log goes into the notes."""

    huddle_id: str
    locked: bool
    lobby: bool
    by: str
    at: datetime
    chat_to_notes: bool = True


@dataclass(frozen=True)
class ChatPosted:
    """Someone wrote in the call's chat."""

    huddle_id: str
    participant_id: str
    name: str
    text: str
    at: datetime


@dataclass(frozen=True)
class EndRequested:
    """A host pressed "End for all": the bot ends the huddle as for any end."""

    huddle_id: str
    by: str
    at: datetime


MediaEvent = (
    ParticipantJoined
    | ParticipantLeft
    | NotesChanged
    | ParticipantRemoved
    | RoomChanged
    | EndRequested
    | ChatPosted
)
MediaListener = Callable[[MediaEvent], Awaitable[None]]


@dataclass(frozen=True)
class HuddleAccess:
    """What the media core needs to know about a huddle before letting someone in."""

    huddle_id: str
    title: str
    open: bool
    #: Shown on the refusal page when ``open`` is false ("This huddle ended at 14:05 UTC.").
    closed_reason: str = ""
    #: The shared notes so far (they outlive the room: a reload or a rejoin finds them).
    notes: str = ""
    #: Locked by a host: only host links get in.
    locked: bool = False
    #: Waiting room on: a host lets each newcomer in (guests wait whatever this says).
    lobby: bool = False
    #: The passcode's digest (:func:`media.passcodes.digest`), empty when there is none.
    passcode: str = ""
    #: The chat log goes into the notes thread when the huddle ends.
    chat_to_notes: bool = True
    #: Seats (browsers) a host removed: refused for the rest of the huddle.
    removed_seats: frozenset[str] = frozenset()


#: Asked before every join page and signaling connection; ``None`` means "no such huddle".
HuddleGate = Callable[[str], Awaitable[HuddleAccess | None]]


class Subscribers:
    """A media core's listeners: every event goes to each of them, in order, from one task.

    One task means a slow listener never holds up signaling, and events reach a listener in the
    order they happened.
    """

    def __init__(self) -> None:
        self._listeners: list[MediaListener] = []
        self._events: asyncio.Queue[MediaEvent] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def add(self, listener: MediaListener) -> None:
        """Call ``listener`` with every event emitted from now on."""
        self._listeners.append(listener)

    def emit(self, event: MediaEvent) -> None:
        """Queue ``event`` for every listener (never blocks)."""
        self._events.put_nowait(event)
        if self._task is None:
            self._task = asyncio.ensure_future(self._deliver())

    async def close(self) -> None:
        """Deliver what is queued (waiting at most DRAIN_SECONDS), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._events.join(), timeout=DRAIN_SECONDS)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _deliver(self) -> None:
        while True:
            event = await self._events.get()
            for listener in list(self._listeners):
                try:
                    await listener(event)
                except Exception:
                    log.exception("listener_failed event=%s", type(event).__name__)
            self._events.task_done()

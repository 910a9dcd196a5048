"""Who is in a room as the room sees them: participants, the slots that carry others' tracks to
them, and the people in the waiting room."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aiortc import RTCPeerConnection, RTCRtpTransceiver

from media.forwarding import TrackForwarder
from media.messages import (
    SCREEN_TRACKS,
    CallRole,
    MediaKind,
    ParticipantInfo,
    PublishInfo,
    ServerMessage,
    StreamInfo,
    Track,
    WaiterInfo,
)


class Connection(Protocol):
    """The participant's signaling channel, as rooms see it: fire-and-forget, never blocking."""

    def send(self, message: ServerMessage) -> None:
        """Queue ``message`` for the client; a slow client never holds up the caller."""

    def close(self) -> None:
        """Close the channel once the queued messages are sent."""


class Detached:
    """The channel of someone whose socket dropped: what they miss, ``welcome`` brings back."""

    def send(self, message: ServerMessage) -> None:
        """Dropped."""

    def close(self) -> None:
        """Nothing to close."""


DETACHED = Detached()


@dataclass(eq=False)
class Slot:
    """A sendonly transceiver on a subscriber's connection: one publisher's track, or idle."""

    transceiver: RTCRtpTransceiver
    kind: MediaKind
    #: Whose track it carries (a participant id), and which of theirs.
    source: str | None = None
    track: Track | None = None
    forwarder: TrackForwarder | None = None

    def release(self) -> None:
        """Stop forwarding into this slot; it stays negotiated, ready for the next publisher."""
        if self.forwarder is not None:
            self.forwarder.remove_subscriber(self.transceiver.sender)
        self.source = None
        self.track = None
        self.forwarder = None


class Participant:
    """Someone in a room: their name and media state, their connection, what they publish."""

    def __init__(
        self,
        participant_id: str,
        name: str,
        connection: Connection,
        role: CallRole = "participant",
        seat: str = "",
    ) -> None:
        self.id = participant_id
        self.name = name
        self.audio = True
        self.video = True
        #: Their role now (the join link's, or what a host made them since).
        self.role: CallRole = role
        #: What they are when not (or no longer) a co-host.
        self.link_role: CallRole = "participant" if role in ("host", "cohost") else role
        #: The browser they joined from (the join page's cookie): what a removal bars.
        self.seat = seat
        #: False while a host keeps them muted: nobody is sent their audio (:meth:`Room.sync`).
        self.may_speak = True
        #: When they raised their hand (orders raised hands), or None.
        self.hand: int | None = None
        self.connection = connection
        self.pc: RTCPeerConnection | None = None
        #: Their own tracks, tapped for forwarding: the first offer's microphone and camera, and
        #: a screen share's once they presented (kept, idle, between presentations).
        self.taps: dict[Track, TrackForwarder] = {}
        #: The sections the server added to receive their screen share, by track.
        self.receiving: dict[Track, RTCRtpTransceiver] = {}
        #: The screen-share tracks they present now (none, the screen, or it and its audio).
        self.sharing: frozenset[Track] = frozenset()
        #: Transceivers the server added to carry others' tracks to them.
        self.slots: list[Slot] = []
        #: True once their publishing offer is answered: from then on the server makes the offers.
        self.ready = False
        self.offer_outstanding = False
        self.sent_streams: list[StreamInfo] = []
        #: RTP header extension IDs from their first offer; every server offer reuses them.
        self.extension_ids: dict[str, int] = {}
        #: Their camera's simulcast layers (smallest first), by the mid of its section.
        self.simulcast: dict[str, list[str]] = {}
        #: The layers they were last told to send (``layers``); None: not told yet.
        self.sent_layers: list[str] | None = None
        #: Layers still sent that nobody receives, and since when (event loop time).
        self.unwanted: dict[str, float] = {}
        #: What their page shows of each video it receives, by mid: (height in device pixels,
        #: visible). From their ``view`` messages; what decides the layer each one gets.
        self.view: dict[str, tuple[int, bool]] = {}
        self.left = False
        self.negotiation = asyncio.Lock()
        #: Proves it is them when a new socket resumes their place (sent only to them).
        self.resume_token = secrets.token_urlsafe(18)
        #: Their media connection has been up once (losing it then is an outage, not a refusal).
        self.connected_once = False
        #: While their connection is down: the timer that gives their place up.
        self.suspended: asyncio.TimerHandle | None = None

    @property
    def published(self) -> dict[Track, TrackForwarder]:
        """The tracks forwarded to others now: microphone, camera, and the screen while shared."""
        return {
            track: forwarder
            for track, forwarder in self.taps.items()
            if track in self.sharing or track not in SCREEN_TRACKS
        }

    def publish_sections(self) -> list[PublishInfo]:
        """The ``publish`` list of a server offer: every negotiated screen-share section."""
        return [
            {"mid": transceiver.mid, "track": track}
            for track, transceiver in self.receiving.items()
            if transceiver.mid is not None
        ]

    @property
    def is_host(self) -> bool:
        """Whether they have a host's powers (the host, or a co-host)."""
        return self.role in ("host", "cohost")

    def info(self) -> ParticipantInfo:
        """The participant object of the protocol."""
        return {
            "id": self.id,
            "name": self.name,
            "audio": self.audio,
            "video": self.video,
            "role": self.role,
            "speak": self.may_speak,
            "hand": self.hand,
            "screen": "screen" in self.sharing,
        }

    def streams(self) -> list[StreamInfo]:
        """The ``streams`` map: every negotiated slot that carries something now."""
        return [
            {
                "mid": slot.transceiver.mid,
                "participant": slot.source,
                "kind": slot.kind,
                "track": slot.track,
            }
            for slot in self.slots
            if slot.source is not None
            and slot.track is not None
            and slot.transceiver.mid is not None
        ]


@dataclass(eq=False)
class Waiter:
    """Someone in the waiting room: not a participant, sends and receives no media, sees nobody.

    ``admitted`` is called with their :class:`Participant` once a host lets them in.
    """

    id: str
    name: str
    connection: Connection
    role: CallRole
    seat: str
    admitted: Callable[[Participant], None]

    def info(self) -> WaiterInfo:
        """As hosts see them in the queue."""
        return {"id": self.id, "name": self.name, "role": self.role}

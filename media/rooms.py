"""Rooms and participants: who is in a huddle, and which transceiver carries whose tracks to whom.

Each participant has one server-side :class:`RTCPeerConnection`. Its first offer (the client's)
publishes at most one audio and one video track, which are tapped by :mod:`media.forwarding` (no
decoding). For every other participant's published track the server adds a sendonly *slot*
(transceiver) to this participant's connection and renegotiates; a slot freed when someone leaves is
reused for the next publisher of the same kind without renegotiation.

Negotiation is serialized per participant: at most one server offer is outstanding, and whatever
changes while waiting for the answer is applied when the answer arrives (:meth:`Room.sync` brings a
participant's slots in line with who is publishing, whenever it is called). Nothing here runs per
packet.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hmac
import itertools
import logging
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime
from typing import Any

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpHeaderExtensionParameters,
    RTCSessionDescription,
)

from media.errors import ProtocolError
from media.events import (
    ChatPosted,
    MediaEvent,
    NotesChanged,
    ParticipantJoined,
    ParticipantLeft,
)
from media.forwarding import (
    ForwardingStats,
    add_forwarding_transceiver,
    share_payload_types,
    tap_publisher,
)
from media.ice import drop_empty_datagrams, skip_stun_parsing_for_media
from media.limits import RateLimit
from media.messages import (
    MAX_NOTES,
    SCREEN_TRACKS,
    TRACK_KINDS,
    CallRole,
    ChatEntry,
    MediaKind,
    RoomInfo,
    ServerMessage,
    Track,
)
from media.network import MediaNetwork, PortsExhausted
from media.notes import BadUpdate, SharedNotes
from media.participants import DETACHED, Connection, Participant, Slot, Waiter
from media.sdp import (
    REPAIRED_RID_URI,
    RID_URI,
    extension_ids,
    keep_extension_ids,
    parse_sdp,
    simulcast_layers,
    use_extension_ids,
    with_simulcast,
)
from media.simulcast import SimulcastForwarder, tap_simulcast
from media.speakers import WINDOW_SECONDS, ActiveSpeaker

log = logging.getLogger(__name__)

MEDIA_KINDS: tuple[MediaKind, ...] = ("audio", "video")

#: A simulcast layer nobody receives is paused in the publisher's browser after this long.
PAUSE_AFTER_SECONDS = 3.0

#: Chat messages kept in the room (new joiners get them).
CHAT_KEPT = 200
#: One participant's allowance: chat messages and reactions at once, then one a second each.
CHAT_BURST = 10
REACTION_BURST = 5

#: How long someone whose socket or media path dropped keeps their place, waiting for ``resume``.
RESUME_GRACE_SECONDS = 60.0

#: SDP directions (the client's view) in which the client publishes.
SENDING = ("sendonly", "sendrecv")


#: What someone whose audio and video found no way to the server is told.
MEDIA_UNREACHABLE = (
    "Audio and video could not get through between your network and the huddle server "
    "(a firewall may block it). Try another network, or ask whoever runs huddle to set up TURN."
)


def _within(limit: RateLimit, participant: Participant, what: str) -> None:
    """Spend one of ``participant``'s ``limit``, or refuse with ``rate_limited``."""
    if limit.take(participant.id):
        burst = int(limit.burst)
        raise ProtocolError(
            "rate_limited", f"At most {burst} {what} in {burst / limit.per_second:g} seconds."
        )


class Room:
    """The live side of one huddle: its participants and their forwarding."""

    def __init__(
        self,
        huddle_id: str,
        title: str,
        *,
        stats: ForwardingStats,
        ice_servers: list[str],
        network: MediaNetwork | None = None,
        emit: Callable[[MediaEvent], None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_empty: Callable[[Room], None],
        ids: Iterator[int],
        notes: str = "",
        locked: bool = False,
        lobby: bool = False,
        max_participants: int = 100,
        chat_to_notes: bool = True,
        resume_grace: float = RESUME_GRACE_SECONDS,
    ) -> None:
        self.id = huddle_id
        self.title = title
        #: The shared notes, merged from everyone's edits (:mod:`media.notes`).
        self.shared_notes = SharedNotes(notes, max_chars=MAX_NOTES)
        self.participants: dict[str, Participant] = {}
        #: Locked by a host: nobody new gets in but hosts.
        self.locked = locked
        #: Whether people a host muted may unmute themselves.
        self.unmute_allowed = True
        #: Seats a host removed: refused for as long as this room lives (the bot's gate after).
        self.removed_seats: set[str] = set()
        #: Waiting room on: newcomers without a host link wait for a host (guests always do).
        self.lobby = lobby
        #: Who waits, in arrival order, by waiter id.
        self.waiting: dict[str, Waiter] = {}
        #: No one is admitted past this many participants.
        self.max_participants = max_participants
        #: The chat's latest messages, and whether the log goes into the notes at the end.
        self.chat: collections.deque[ChatEntry] = collections.deque(maxlen=CHAT_KEPT)
        self.chat_to_notes = chat_to_notes
        self._chat_ids = itertools.count(1)
        # Per participant id, never exempt: everyone here came through the same front.
        self._chat_limit = RateLimit(CHAT_BURST, 1.0, exempt_loopback=False)
        self._reaction_limit = RateLimit(REACTION_BURST, 1.0, exempt_loopback=False)
        #: Who is speaking, watched while anyone is in (:mod:`media.speakers`).
        self.speakers = ActiveSpeaker()
        self._speaker_watch: asyncio.Task[None] | None = None
        self._stats = stats
        self._ice_servers = ice_servers
        self._network = network or MediaNetwork()
        self._emit = emit
        #: When events happen: the product's clock (tests set it to fixed instants).
        self._clock = clock
        self._on_empty = on_empty
        #: Shared by every room of the server: an id is never reused, even if the room empties.
        self._ids = ids
        self._tasks: set[asyncio.Task[None]] = set()
        self._ending = False
        self._resume_grace = resume_grace

    # -- membership ---------------------------------------------------------------------------

    def add(
        self, name: str, connection: Connection, role: CallRole = "participant", seat: str = ""
    ) -> Participant:
        """Let ``name`` in: welcome them, tell the others, emit :class:`ParticipantJoined`."""
        participant = Participant(f"p-{next(self._ids)}", name, connection, role, seat)
        others = list(self.participants.values())
        if not self.unmute_allowed and not participant.is_host:
            participant.may_speak = False
            participant.audio = False
        self.participants[participant.id] = participant
        self._welcome(participant, others, resumed=False)
        self._broadcast(
            {"type": "participant-joined", "participant": participant.info()}, participant
        )
        log.info(
            "participant_joined huddle=%s participant=%s name=%r count=%d",
            self.id,
            participant.id,
            name,
            len(self.participants),
        )
        self._emit(ParticipantJoined(self.id, participant.id, name, self._clock()))
        if participant.is_host and self.waiting:
            self.tell_lobby()
        if self._speaker_watch is None:
            self._speaker_watch = asyncio.ensure_future(self._watch_speakers())
        return participant

    def _welcome(
        self, participant: Participant, others: list[Participant], *, resumed: bool
    ) -> None:
        participant.connection.send(
            {
                "type": "welcome",
                "you": participant.info(),
                "participants": [other.info() for other in others],
                "huddle": {"id": self.id, "title": self.title},
                "notes": self.shared_notes.text,
                "notesState": base64.b64encode(self.shared_notes.state()).decode(),
                "room": self.room_info(),
                "chat": list(self.chat),
                "resume": participant.resume_token,
                "resumed": resumed,
            }
        )

    # -- dropped and resumed -------------------------------------------------------------------

    def suspend(self, participant: Participant, why: str) -> None:
        """``participant``'s socket or media path dropped: keep their place for the grace period.

        Nobody is told they left (the card and attendance see one stay); a ``resume`` on a new
        socket takes the place back, otherwise they leave when the grace period ends.
        """
        if participant.left or participant.suspended is not None:
            return
        participant.connection = DETACHED
        participant.suspended = asyncio.get_running_loop().call_later(
            self._resume_grace,
            lambda: self._spawn(self.remove(participant, f"did not come back ({why})")),
        )
        log.info(
            "participant_suspended huddle=%s participant=%s why=%s grace=%gs",
            self.id,
            participant.id,
            why,
            self._resume_grace,
        )

    def forget_if_empty(self) -> None:
        """Let the server forget this room if nobody is in it or waiting."""
        if not self.participants and not self.waiting:
            self._on_empty(self)

    def resumable(self, token: str) -> Participant | None:
        """The participant whose resume token is ``token``, if they are still here."""
        for participant in self.participants.values():
            if hmac.compare_digest(participant.resume_token, token):
                return participant
        return None

    async def resume(self, participant: Participant, connection: Connection) -> None:
        """Give ``participant`` back their place on ``connection``, with a fresh media connection.

        Their old socket (if the server still holds it) is closed; their old peer connection
        goes, and what they published is forwarded again once their new offer is answered. The
        others see no leave and no join: only their tracks come back.
        """
        if participant.suspended is not None:
            participant.suspended.cancel()
            participant.suspended = None
        old = participant.connection
        participant.connection = connection
        old.close()
        was_sharing = bool(participant.sharing)
        async with participant.negotiation:
            pc = participant.pc
            self._drop_media(participant)
        if pc is not None:
            self._spawn(pc.close())
        others = [other for other in self.participants.values() if other is not participant]
        self._welcome(participant, others, resumed=True)
        if was_sharing:
            self.updated(participant)
        for other in others:
            self._spawn(self.sync(other))
        log.info("participant_resumed huddle=%s participant=%s", self.id, participant.id)

    def _drop_media(self, participant: Participant) -> None:
        """Forget ``participant``'s peer connection: their slots, their taps, others' copies."""
        for slot in participant.slots:
            slot.release()
        participant.slots.clear()
        for forwarder in participant.taps.values():
            for other in self.participants.values():
                for slot in other.slots:
                    if slot.forwarder is forwarder:
                        slot.release()
            forwarder.close()
        participant.taps.clear()
        participant.receiving.clear()
        participant.sharing = frozenset()
        participant.pc = None
        participant.ready = False
        participant.offer_outstanding = False
        participant.sent_streams = []
        participant.extension_ids = {}
        participant.simulcast = {}
        participant.sent_layers = None
        participant.unwanted = {}
        participant.view = {}

    async def remove(self, participant: Participant, why: str) -> None:
        """Take ``participant`` out (idempotent): stop forwarding, tell the others, free slots."""
        if participant.left:
            return
        participant.left = True
        if participant.suspended is not None:
            participant.suspended.cancel()
            participant.suspended = None
        self.participants.pop(participant.id, None)
        pc = participant.pc
        self._drop_media(participant)
        self._broadcast({"type": "participant-left", "id": participant.id}, participant)
        log.info(
            "participant_left huddle=%s participant=%s why=%s count=%d",
            self.id,
            participant.id,
            why,
            len(self.participants),
        )
        self._emit(ParticipantLeft(self.id, participant.id, participant.name, self._clock()))
        if self.speakers.forget(participant.id) and not self._ending:
            self.tell_everyone(self._speaker_message())
        if not self._ending:
            if participant.is_host:
                self.pass_host()
            for other in self.participants.values():
                self._spawn(self.sync(other))
        if not self.participants and not self.waiting:
            self._on_empty(self)
        if pc is not None:
            await pc.close()

    async def end(self, reason: str) -> None:
        """Tell everyone the huddle ended, close their sockets and connections."""
        log.info(
            "huddle_ended huddle=%s reason=%r count=%d", self.id, reason, len(self.participants)
        )
        self._ending = True
        if self._speaker_watch is not None:
            self._speaker_watch.cancel()
        waiting = list(self.waiting.values())
        self.waiting.clear()
        connections = [p.connection for p in self.participants.values()]
        for connection in [*connections, *(waiter.connection for waiter in waiting)]:
            connection.send({"type": "ended", "reason": reason})
            connection.close()
        await asyncio.gather(
            *(self.remove(p, "ended") for p in list(self.participants.values())),
            return_exceptions=True,
        )

    @property
    def notes(self) -> str:
        """The shared notes' merged text."""
        return self.shared_notes.text

    def update_notes(self, participant: Participant, text: str) -> None:
        """A client that sends whole texts changed the notes: merge it as the edit it makes."""
        update = self.shared_notes.replace(text)
        if update is not None:
            self._notes_changed(participant, update)

    def merge_notes(self, participant: Participant, update: bytes) -> None:
        """Merge a client's Yjs update into the notes, pass it on, let the core save the text."""
        try:
            changed = self.shared_notes.apply(update)
        except BadUpdate as exc:
            raise ProtocolError("bad_field", str(exc)) from exc
        if changed:
            self._notes_changed(participant, update)

    def _notes_changed(self, participant: Participant, update: bytes) -> None:
        encoded = base64.b64encode(update).decode()
        self._broadcast(
            {"type": "notes-update", "update": encoded, "by": participant.name}, participant
        )
        self._emit(NotesChanged(self.id, self.notes, participant.name, self._clock()))

    def update_state(self, participant: Participant, *, audio: bool, video: bool) -> None:
        """Record a mute/camera change and tell the others.

        Unmuting is refused while a host keeps the participant muted; their audio is not
        forwarded then anyway (:meth:`sync`), whatever their client does.
        """
        if audio and not participant.audio and not participant.may_speak:
            raise ProtocolError(
                "forbidden",
                "A host muted you and has not let participants unmute themselves; "
                "raise your hand or ask in the chat.",
            )
        if (participant.audio, participant.video) == (audio, video):
            return
        participant.audio = audio
        participant.video = video
        self._broadcast(
            {"type": "participant-updated", "participant": participant.info()}, participant
        )

    # -- who is speaking -----------------------------------------------------------------------

    async def _watch_speakers(self) -> None:
        """Every window, who is loud enough; tell everyone when the speaker or speaking change."""
        try:
            while self.participants and not self._ending:
                await asyncio.sleep(WINDOW_SECONDS)
                loudness: dict[str, float] = {}
                for participant in self.participants.values():
                    audio = participant.published.get("audio")
                    loud = audio.take_loudness() if audio is not None else None
                    # Muted (or kept muted) people are not speaking, whatever their level says.
                    if loud is not None and participant.audio and participant.may_speak:
                        loudness[participant.id] = loud
                if self.speakers.update(loudness):
                    self.tell_everyone(self._speaker_message())
                # Simulcast layers the browser stopped sending: their viewers get another.
                now = asyncio.get_running_loop().time()
                for participant in self.participants.values():
                    camera = participant.taps.get("video")
                    if isinstance(camera, SimulcastForwarder):
                        camera.tick(now)
                        self._dynacast(participant)
        finally:
            self._speaker_watch = None

    def _speaker_message(self) -> ServerMessage:
        return {
            "type": "speaker",
            "participant": self.speakers.speaker,
            "speaking": sorted(self.speakers.speaking),
        }

    # -- hands and reactions --------------------------------------------------------------------

    def raise_hand(self, participant: Participant, raised: bool) -> None:
        """Raise or lower ``participant``'s hand; everyone sees it, in the order raised."""
        if raised == (participant.hand is not None):
            return
        participant.hand = next(self._ids) if raised else None
        self.updated(participant)

    def post_chat(self, participant: Participant, text: str) -> None:
        """``participant`` wrote ``text`` in the chat: everyone gets it, the bot keeps it."""
        _within(self._chat_limit, participant, "chat messages")
        at = self._clock()
        entry: ChatEntry = {
            "type": "chat",
            "id": next(self._chat_ids),
            "participant": participant.id,
            "name": participant.name,
            "text": text,
            "at": at.astimezone(UTC).isoformat(timespec="seconds"),
        }
        self.chat.append(entry)
        self.tell_everyone(entry)
        self._emit(ChatPosted(self.id, participant.id, participant.name, text, at))

    def react(self, participant: Participant, emoji: str) -> None:
        """Show ``emoji`` over ``participant``'s tile for everyone (a few per few seconds)."""
        _within(self._reaction_limit, participant, "reactions")
        self.tell_everyone({"type": "reaction", "participant": participant.id, "emoji": emoji})

    # -- what hosts change ---------------------------------------------------------------------

    def room_info(self) -> RoomInfo:
        """The room's settings as the protocol tells them."""
        return {
            "locked": self.locked,
            "unmuteAllowed": self.unmute_allowed,
            "lobby": self.lobby,
            "chatToNotes": self.chat_to_notes,
        }

    # -- the waiting room ----------------------------------------------------------------------

    def must_wait(self, role: CallRole) -> bool:
        """Whether someone joining with ``role`` waits for a host (hosts never do)."""
        return role != "host" and (self.lobby or role == "guest")

    def enqueue(
        self,
        name: str,
        connection: Connection,
        role: CallRole,
        seat: str,
        admitted: Callable[[Participant], None],
    ) -> Waiter:
        """Put ``name`` in the waiting room: they are told to wait, hosts are told they came."""
        waiter = Waiter(f"w-{next(self._ids)}", name, connection, role, seat, admitted)
        self.waiting[waiter.id] = waiter
        connection.send({"type": "waiting", "huddle": {"id": self.id, "title": self.title}})
        log.info("participant_waiting huddle=%s waiter=%s", self.id, waiter.id)
        self.tell_lobby(arrived=waiter)
        return waiter

    def admit(self, waiter: Waiter) -> Participant | None:
        """Let ``waiter`` in as a participant (None if they are gone)."""
        if waiter.id not in self.waiting:
            return None
        if waiter.seat and waiter.seat in self.removed_seats:
            del self.waiting[waiter.id]
            waiter.connection.send(
                {
                    "type": "error",
                    "code": "removed",
                    "message": "A host removed you from this huddle.",
                    "fatal": True,
                }
            )
            waiter.connection.close()
            self.tell_lobby()
            return None
        if len(self.participants) >= self.max_participants:
            raise ProtocolError(
                "huddle_full",
                f"The huddle is full ({self.max_participants} people): nobody more can be let in.",
            )
        del self.waiting[waiter.id]
        participant = self.add(waiter.name, waiter.connection, waiter.role, waiter.seat)
        waiter.admitted(participant)
        self.tell_lobby()
        return participant

    def deny(self, waiter: Waiter, by: str) -> None:
        """Turn ``waiter`` away: they are told why, their socket closes."""
        if self.waiting.pop(waiter.id, None) is None:
            return
        waiter.connection.send(
            {
                "type": "error",
                "code": "denied",
                "message": f"{by}, a host, did not let you into this huddle.",
                "fatal": True,
            }
        )
        waiter.connection.close()
        self.tell_lobby()

    def drop_waiter(self, waiter: Waiter) -> None:
        """``waiter`` left the waiting room (closed the page): hosts' queue shrinks."""
        if self.waiting.pop(waiter.id, None) is not None:
            self.tell_lobby()
        if not self.participants and not self.waiting:
            self._on_empty(self)

    def tell_lobby(self, arrived: Waiter | None = None) -> None:
        """Send every host the waiting room's queue (``arrived``: who just came)."""
        queue = [waiter.info() for waiter in self.waiting.values()]
        for host in self.hosts():
            host.connection.send(
                {
                    "type": "lobby",
                    "waiting": queue,
                    "arrived": arrived.info() if arrived else None,
                }
            )

    def hosts(self) -> list[Participant]:
        """Everyone with a host's powers, in joining order."""
        return [p for p in self.participants.values() if p.is_host]

    def tell_everyone(self, message: ServerMessage) -> None:
        """Send ``message`` to every participant."""
        for participant in self.participants.values():
            participant.connection.send(message)

    def updated(self, participant: Participant) -> None:
        """Tell everyone (them too) that ``participant``'s state or role changed."""
        self.tell_everyone({"type": "participant-updated", "participant": participant.info()})

    def resync_all(self) -> None:
        """Bring everyone's slots in line (after a change of who may be heard)."""
        for participant in list(self.participants.values()):
            self._spawn(self.sync(participant))

    def emit(self, event: MediaEvent) -> None:
        """Pass ``event`` to the media core's listeners."""
        self._emit(event)

    def now(self) -> datetime:
        """The product's clock."""
        return self._clock()

    def silence(self, participant: Participant) -> None:
        """Stop forwarding ``participant``'s audio to anyone, now (not at the next sync, which
        waits while someone's offer is outstanding); :meth:`sync` then keeps it so."""
        audio = [participant.taps.get(track) for track in ("audio", "screen-audio")]
        for other in self.participants.values():
            for slot in other.slots:
                if slot.forwarder is not None and slot.forwarder in audio:
                    slot.release()

    def pass_host(self) -> None:
        """The last host left: the co-host or participant who joined first becomes host."""
        if not self.participants or self.hosts():
            return
        everyone = list(self.participants.values())
        heir = next((p for p in everyone if p.role != "guest"), everyone[0])
        heir.role = "host"
        heir.may_speak = True
        log.info("host_passed huddle=%s participant=%s", self.id, heir.id)
        self.updated(heir)
        self.tell_everyone({"type": "notice", "text": f"{heir.name} is now the host."})
        if self.waiting:
            self.tell_lobby()

    # -- negotiation ---------------------------------------------------------------------------

    async def publish(self, participant: Participant, sdp: str) -> None:
        """Answer the client's publishing offer, tap its tracks, and start forwarding both ways."""
        if participant.pc is not None:
            raise ProtocolError(
                "bad_state",
                "You already sent your offer; from then on the server offers and you answer.",
            )
        description = parse_sdp(sdp, "offer")
        async with participant.negotiation:
            pc = self._new_peer_connection(participant)
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            except Exception as exc:
                await pc.close()
                raise ProtocolError("bad_sdp", f"The offer could not be applied: {exc}.") from exc
            if participant.left:
                await pc.close()
                return
            drop_empty_datagrams(pc)
            participant.pc = pc
            participant.extension_ids = ids = extension_ids(description)
            layers = simulcast_layers(sdp) if RID_URI in ids else {}
            by_mid = {tr.mid: tr for tr in pc.getTransceivers()}
            for kind in MEDIA_KINDS:
                # The first section of each kind that the client sends on; any others are ignored.
                section = next(
                    (
                        media
                        for media in description.media
                        if media.kind == kind and (media.direction or "sendrecv") in SENDING
                    ),
                    None,
                )
                transceiver = by_mid.get(section.rtp.muxId) if section is not None else None
                if transceiver is None:
                    continue
                rids = layers.get(transceiver.mid or "") if kind == "video" else None
                if rids:
                    # Its layers' streams name themselves by rid: aiortc must parse that.
                    transceiver._headerExtensions += [
                        RTCRtpHeaderExtensionParameters(id=ids[uri], uri=uri)
                        for uri in (RID_URI, REPAIRED_RID_URI)
                        if uri in ids
                    ]
                    camera = tap_simulcast(transceiver.receiver, self._stats, rids, ids)
                    camera.on_change = lambda: self._layers_changed(participant)
                    participant.taps[kind] = camera
                    participant.simulcast[transceiver.mid or ""] = rids
                else:
                    participant.taps[kind] = tap_publisher(
                        transceiver.receiver, kind=kind, stats=self._stats
                    )
            try:
                await pc.setLocalDescription(await pc.createAnswer())
            except PortsExhausted as exc:
                participant.pc = None
                self._spawn(pc.close())
                raise ProtocolError(
                    "no_media_port",
                    "The server has no free media port for you right now. Try again in a "
                    "minute, or tell whoever runs it.",
                    fatal=True,
                ) from exc
            skip_stun_parsing_for_media(pc)
            if participant.left:
                return
            answer = with_simulcast(pc.localDescription.sdp, participant.simulcast, ids)
            participant.connection.send({"type": "answer", "sdp": answer})
            participant.ready = True
        log.info(
            "participant_published huddle=%s participant=%s kinds=%s",
            self.id,
            participant.id,
            ",".join(sorted(participant.published)) or "none",
        )
        for other in list(self.participants.values()):
            if other is not participant:
                self._spawn(self.sync(other))
        await self.sync(participant)

    async def share(self, participant: Participant, on: bool, *, audio: bool = False) -> None:
        """Start or stop presenting ``participant``'s screen (with its audio, if ``audio``).

        The first time, the server adds receiving sections for the screen to their connection
        and offers them (listed in the offer's ``publish``); later shares reuse those sections,
        so starting again needs no renegotiation. Everyone is told (``participant-updated``) and
        gets the screen as a track of its own.
        """
        if participant.pc is None or not participant.ready:
            raise ProtocolError(
                "bad_state", "Your call is still being set up: present once you are in."
            )
        tracks: frozenset[Track] = frozenset()
        if on:
            tracks = frozenset(SCREEN_TRACKS if audio else ("screen",))
            async with participant.negotiation:
                pc = participant.pc
                for track in tracks - participant.receiving.keys():
                    kind = TRACK_KINDS[track]
                    transceiver = pc.addTransceiver(kind, direction="recvonly")
                    participant.receiving[track] = transceiver
                    forwarder = tap_publisher(transceiver.receiver, kind=kind, stats=self._stats)
                    participant.taps[track] = forwarder
                    sibling = participant.taps.get(kind)  # the microphone or camera
                    if sibling is not None:
                        share_payload_types(forwarder, sibling)
        if participant.left or tracks == participant.sharing:
            return
        participant.sharing = tracks
        log.info(
            "screen_share huddle=%s participant=%s tracks=%s",
            self.id,
            participant.id,
            ",".join(sorted(tracks)) or "none",
        )
        self.updated(participant)
        await self.sync(participant)  # offers the new sections, if any
        for other in list(self.participants.values()):
            if other is not participant:
                self._spawn(self.sync(other))

    async def accept_answer(self, participant: Participant, sdp: str) -> None:
        """Apply the client's answer to the outstanding server offer, then catch up on changes."""
        if not participant.offer_outstanding or participant.pc is None:
            raise ProtocolError("bad_state", "There is no offer from the server to answer.")
        parse_sdp(sdp, "answer")
        async with participant.negotiation:
            try:
                await participant.pc.setRemoteDescription(
                    RTCSessionDescription(sdp=sdp, type="answer")
                )
            except Exception as exc:
                raise ProtocolError("bad_sdp", f"The answer could not be applied: {exc}.") from exc
            participant.offer_outstanding = False
        await self.sync(participant)

    async def sync(self, participant: Participant) -> None:
        """Bring ``participant``'s slots in line with who publishes; offer or send ``streams``.

        Safe to call any time and as often as wanted: it does nothing while an offer is
        outstanding (the answer calls it again) or before the participant's own offer is answered.
        """
        async with participant.negotiation:
            pc = participant.pc
            if participant.left or pc is None or not participant.ready:
                return
            if participant.offer_outstanding:
                return
            # Someone a host keeps muted is heard by nobody: their audio is not forwarded at all
            # (a change of slots, not a check per packet).
            wanted = [
                (other.id, track, forwarder)
                for other in self.participants.values()
                if other is not participant
                for track, forwarder in other.published.items()
                if TRACK_KINDS[track] != "audio" or other.may_speak
            ]
            wanted_ids = {id(forwarder) for _, _, forwarder in wanted}
            for slot in participant.slots:
                if slot.forwarder is not None and id(slot.forwarder) not in wanted_ids:
                    slot.release()
            carried = {id(slot.forwarder) for slot in participant.slots if slot.forwarder}
            for source, track, forwarder in wanted:
                if id(forwarder) in carried:
                    continue
                kind = TRACK_KINDS[track]
                free = (s for s in participant.slots if s.forwarder is None and s.kind == kind)
                slot = next(free, None) or Slot(add_forwarding_transceiver(pc, kind), kind)
                if slot not in participant.slots:
                    participant.slots.append(slot)
                forwarder.add_subscriber(slot.transceiver.sender)
                slot.source = source
                slot.track = track
                slot.forwarder = forwarder
            sections = [slot.transceiver for slot in participant.slots]
            sections += participant.receiving.values()
            if any(transceiver.mid is None for transceiver in sections):
                offer = await pc.createOffer()
                keep_extension_ids(pc, participant.extension_ids, participant.simulcast)
                sdp = use_extension_ids(offer.sdp, participant.extension_ids)
                await pc.setLocalDescription(RTCSessionDescription(sdp=sdp, type="offer"))
                if participant.left:
                    return
                participant.offer_outstanding = True
                # Computed after the awaits: slots freed meanwhile must not be announced.
                streams = participant.streams()
                participant.sent_streams = streams
                # The camera's layers stay negotiated (aiortc would offer them away).
                sdp = with_simulcast(
                    pc.localDescription.sdp,
                    participant.simulcast,
                    participant.extension_ids,
                    active=participant.sent_layers,
                )
                participant.connection.send(
                    {
                        "type": "offer",
                        "sdp": sdp,
                        "streams": streams,
                        "publish": participant.publish_sections(),
                    }
                )
                log.info(
                    "offer_sent huddle=%s participant=%s slots=%d streams=%d",
                    self.id,
                    participant.id,
                    len(participant.slots),
                    len(streams),
                )
            else:
                streams = participant.streams()
                if streams != participant.sent_streams:
                    participant.sent_streams = streams
                    participant.connection.send({"type": "streams", "streams": streams})
        self._choose_layers(participant)
        self._dynacast(participant)

    # -- simulcast: the layer each viewer gets, the layers each publisher sends --------------------

    def set_view(self, participant: Participant, view: dict[str, tuple[int, bool]]) -> None:
        """What ``participant``'s page shows of the videos it receives (``view``, by mid):
        each camera then gets the layer that fills its tile, or none when it is not seen."""
        # Merged: a mid not in this message keeps what it had (PROTOCOL.md); only the mids of
        # sections it has are kept.
        mids = {slot.transceiver.mid for slot in participant.slots}
        participant.view = {
            mid: seen for mid, seen in {**participant.view, **view}.items() if mid in mids
        }
        self._choose_layers(participant)

    def _choose_layers(self, viewer: Participant) -> None:
        publishers: set[str] = set()
        for slot in viewer.slots:
            forwarder = slot.forwarder
            if not isinstance(forwarder, SimulcastForwarder) or slot.source is None:
                continue
            sender = slot.transceiver.sender
            seen = viewer.view.get(slot.transceiver.mid or "")
            if seen is None:
                rid: str | None = forwarder.rids[-1]  # not reported yet: as without simulcast
            elif not seen[1]:
                rid = None
            else:
                rid = forwarder.layer_for(seen[0])
            forwarder.choose(sender, rid)
            publishers.add(slot.source)
        for publisher_id in publishers:
            publisher = self.participants.get(publisher_id)
            if publisher is not None:
                self._dynacast(publisher)

    def _dynacast(self, publisher: Participant) -> None:
        """Tell ``publisher`` which of their camera's layers anybody receives; the others are
        paused in their browser (``layers``): nobody's bandwidth or CPU goes on them."""
        camera = publisher.taps.get("video")
        if not isinstance(camera, SimulcastForwarder) or not publisher.ready:
            return
        wanted = camera.wanted()
        now = asyncio.get_running_loop().time()
        active = []
        for rid in camera.rids:
            if rid in wanted:
                publisher.unwanted.pop(rid, None)
                active.append(rid)
            elif publisher.sent_layers and rid in publisher.sent_layers:
                # Paused only once unwanted for a moment: a tile that shrinks and grows back, a
                # glance at another tab, do not make the browser stop and restart the layer.
                since = publisher.unwanted.setdefault(rid, now)
                if now - since < PAUSE_AFTER_SECONDS:
                    active.append(rid)
                else:
                    del publisher.unwanted[rid]
        if active == publisher.sent_layers:
            return
        publisher.sent_layers = active
        publisher.connection.send({"type": "layers", "track": "video", "active": active})
        log.info(
            "layers huddle=%s participant=%s active=%s",
            self.id,
            publisher.id,
            ",".join(active) or "none",
        )

    def _layers_changed(self, publisher: Participant) -> None:
        """A layer's size became known, or a viewer's switch completed: choose again."""
        for viewer in list(self.participants.values()):
            if viewer is not publisher and any(
                slot.source == publisher.id for slot in viewer.slots
            ):
                self._choose_layers(viewer)
        self._dynacast(publisher)

    # -- helpers -------------------------------------------------------------------------------

    async def answer_check(self, sdp: str) -> tuple[RTCPeerConnection, str]:
        """A connectivity check before joining: a peer connection that only does ICE and DTLS.

        The pre-join page offers one receive-only section; once it connects, the page knows
        whether (and how: directly, or through TURN) media can reach this server. The caller
        closes the connection.
        """
        parse_sdp(sdp, "offer")
        pc = self._peer_connection()
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except PortsExhausted as exc:
            await pc.close()
            raise ProtocolError(
                "no_media_port", "The server has no free media port for a check right now."
            ) from exc
        except Exception as exc:
            await pc.close()
            raise ProtocolError("bad_sdp", f"The check offer could not be applied: {exc}.") from exc
        return pc, pc.localDescription.sdp

    def _peer_connection(self) -> RTCPeerConnection:
        # max-bundle: every slot added later shares the one ICE/DTLS transport, so renegotiation
        # gathers nothing new. An empty iceServers list, not None: None means Google's STUN.
        pc = RTCPeerConnection(
            RTCConfiguration(
                iceServers=[RTCIceServer(urls=url) for url in self._ice_servers],
                bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
            )
        )
        self._network.apply(pc)
        return pc

    def _new_peer_connection(self, participant: Participant) -> RTCPeerConnection:
        pc = self._peer_connection()

        @pc.on("connectionstatechange")
        def on_state() -> None:
            state = pc.connectionState
            log.info(
                "peer_connection huddle=%s participant=%s state=%s", self.id, participant.id, state
            )
            if state == "connected":
                participant.connected_once = True
            # `participant.pc is pc`: a connection dropped after a refused offer (or replaced by
            # a resume) is no reason to go.
            if state in ("failed", "closed") and participant.pc is pc and not participant.left:
                if participant.connected_once:
                    # The path worked and was lost (Wi-Fi changed, a long outage): the client
                    # comes back with `resume` on a new socket and a new connection. A closed
                    # one is the client's doing (resuming, or leaving): its socket says which.
                    if state == "failed":
                        participant.connection.close()
                        self.suspend(participant, "media path lost")
                    return
                if state == "failed":
                    # ICE found no path (or lost it): say so, rather than just hanging up.
                    participant.connection.send(
                        {
                            "type": "error",
                            "code": "media_unreachable",
                            "message": MEDIA_UNREACHABLE,
                            "fatal": True,
                        }
                    )
                participant.connection.close()
                self._spawn(self.remove(participant, f"connection {state}"))

        return pc

    def _broadcast(self, message: ServerMessage, sender: Participant) -> None:
        for other in self.participants.values():
            if other is not sender:
                other.connection.send(message)

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` in the background; a failure is logged with the huddle."""
        self._spawn(coroutine)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("room_task_failed huddle=%s", self.id, exc_info=task.exception())

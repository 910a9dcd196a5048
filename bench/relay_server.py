"""The baseline for ``bench/sfu.py``: huddle's signaling protocol in front of aiortc's MediaRelay.

It speaks media/PROTOCOL.md as far as the benchmark's clients use it (``join``/``welcome``, the
client's publishing ``offer`` and the server's ``answer``, server ``offer`` with ``streams`` and the
client's ``answer``, ``ping``, ``leave``), so the same scripted participants drive both servers. The
media path is the one the SFU replaces: each publisher's track is decoded once and handed by
:class:`aiortc.contrib.media.MediaRelay` to every subscriber's ``RTCRtpSender``, which re-encodes
it. Relayed tracks are unbuffered (a slow encoder skips frames rather than queueing them without
bound), which is how a live relay has to run.

Bench-only: no join tokens, no limits, no error replies beyond what the benchmark needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc.contrib.media import MediaRelay

log = logging.getLogger(__name__)


@dataclass(eq=False)
class RelaySlot:
    """A sendonly transceiver carrying one publisher's relayed track to one subscriber."""

    transceiver: RTCRtpTransceiver
    source: str
    kind: str


@dataclass(eq=False)
class RelayParticipant:
    """One participant's socket, connection, published tracks and receiving slots."""

    id: str
    name: str
    ws: web.WebSocketResponse
    pc: RTCPeerConnection | None = None
    published: dict[str, MediaStreamTrack] = field(default_factory=dict)
    slots: list[RelaySlot] = field(default_factory=list)
    ready: bool = False
    offer_outstanding: bool = False
    negotiation: asyncio.Lock = field(default_factory=asyncio.Lock)

    def info(self) -> dict[str, Any]:
        """The participant object of the protocol."""
        return {"id": self.id, "name": self.name, "audio": True, "video": True}

    def streams(self) -> list[dict[str, str]]:
        """The ``streams`` map of the protocol."""
        return [
            {"mid": slot.transceiver.mid, "participant": slot.source, "kind": slot.kind}
            for slot in self.slots
            if slot.transceiver.mid is not None
        ]


class RelayRoom:
    """One huddle on the relay server."""

    def __init__(self, huddle_id: str) -> None:
        self.id = huddle_id
        self.participants: dict[str, RelayParticipant] = {}
        self.relay = MediaRelay()
        self._ids = itertools.count(1)

    def new_id(self) -> str:
        """The next participant id, ``p-1``, ``p-2``..."""
        return f"p-{next(self._ids)}"


class RelayServer:
    """PROTOCOL.md signaling with MediaRelay media; to the bench it looks like ``MediaServer``."""

    def __init__(self, *, public_url: str) -> None:
        self._public_url = public_url.rstrip("/")
        self._rooms: dict[str, RelayRoom] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def add_routes(self, app: web.Application) -> None:
        """Serve the signaling socket on ``app``."""
        app.router.add_get("/h/{huddle_id}/ws", self._signaling)

    def join_url(self, huddle_id: str, expires_at: float) -> str:
        """A join link of the same shape as ``MediaServer``'s (the token is not checked)."""
        return f"{self._public_url}/h/{huddle_id}?t=relay-{int(expires_at)}"

    def stats(self) -> dict[str, int]:
        """RTP packets and payload bytes sent to subscribers since start (from aiortc's senders)."""
        packets = octets = 0
        for room in self._rooms.values():
            for participant in room.participants.values():
                for slot in participant.slots:
                    sender = slot.transceiver.sender
                    # aiortc's own sender-report counters (private: aiortc is pinned exactly).
                    packets += int(getattr(sender, "_RTCRtpSender__packet_count"))  # noqa: B009
                    octets += int(getattr(sender, "_RTCRtpSender__octet_count"))  # noqa: B009
        return {"packets_forwarded": packets, "bytes_forwarded": octets}

    async def close(self) -> None:
        """Close every peer connection."""
        for room in list(self._rooms.values()):
            for participant in list(room.participants.values()):
                await self._remove(room, participant)

    # -- signaling --------------------------------------------------------------------------

    async def _signaling(self, request: web.Request) -> web.StreamResponse:
        huddle_id = request.match_info["huddle_id"]
        room = self._rooms.setdefault(huddle_id, RelayRoom(huddle_id))
        ws = web.WebSocketResponse(max_msg_size=1024 * 1024)
        await ws.prepare(request)
        participant: RelayParticipant | None = None
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    break
                message = json.loads(frame.data)
                kind = message.get("type")
                if kind == "join" and participant is None:
                    participant = RelayParticipant(room.new_id(), str(message["name"]), ws)
                    others = list(room.participants.values())
                    room.participants[participant.id] = participant
                    await self._send(
                        participant,
                        {
                            "type": "welcome",
                            "you": participant.info(),
                            "participants": [other.info() for other in others],
                            "huddle": {"id": room.id, "title": "relay baseline"},
                        },
                    )
                    for other in others:
                        await self._send(
                            other, {"type": "participant-joined", "participant": participant.info()}
                        )
                elif kind == "offer" and participant is not None:
                    await self._publish(room, participant, str(message["sdp"]))
                elif kind == "answer" and participant is not None and participant.pc is not None:
                    async with participant.negotiation:
                        await participant.pc.setRemoteDescription(
                            RTCSessionDescription(sdp=str(message["sdp"]), type="answer")
                        )
                        participant.offer_outstanding = False
                    await self._sync(room, participant)
                elif kind == "ping":
                    await ws.send_str(json.dumps({"type": "pong"}))
                elif kind == "leave":
                    break
        finally:
            if participant is not None:
                await self._remove(room, participant)
            await ws.close()
        return ws

    async def _publish(self, room: RelayRoom, participant: RelayParticipant, sdp: str) -> None:
        async with participant.negotiation:
            pc = RTCPeerConnection()
            participant.pc = pc

            @pc.on("track")
            def on_track(track: MediaStreamTrack) -> None:
                participant.published.setdefault(track.kind, track)

            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            await self._send(participant, {"type": "answer", "sdp": pc.localDescription.sdp})
            participant.ready = True
        for other in list(room.participants.values()):
            if other is not participant:
                self._spawn(self._sync(room, other))
        await self._sync(room, participant)

    async def _sync(self, room: RelayRoom, participant: RelayParticipant) -> None:
        """Give ``participant`` a relayed copy of every track published by someone else."""
        async with participant.negotiation:
            pc = participant.pc
            if pc is None or not participant.ready or participant.offer_outstanding:
                return
            carried = {(slot.source, slot.kind) for slot in participant.slots}
            added = False
            for other in list(room.participants.values()):
                if other is participant:
                    continue
                for kind, track in other.published.items():
                    if (other.id, kind) in carried:
                        continue
                    transceiver = pc.addTransceiver(kind, direction="sendonly")
                    transceiver.sender.replaceTrack(room.relay.subscribe(track, buffered=False))
                    participant.slots.append(RelaySlot(transceiver, other.id, kind))
                    added = True
            if not added:
                return
            await pc.setLocalDescription(await pc.createOffer())
            participant.offer_outstanding = True
            await self._send(
                participant,
                {"type": "offer", "sdp": pc.localDescription.sdp, "streams": participant.streams()},
            )

    async def _remove(self, room: RelayRoom, participant: RelayParticipant) -> None:
        if room.participants.pop(participant.id, None) is None:
            return
        for other in room.participants.values():
            kept = []
            for slot in other.slots:
                if slot.source == participant.id:
                    slot.transceiver.sender.replaceTrack(None)
                else:
                    kept.append(slot)
            other.slots = kept
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._send(other, {"type": "participant-left", "id": participant.id})
        for track in participant.published.values():
            track.stop()
        if participant.pc is not None:
            await participant.pc.close()
        if not room.participants:
            self._rooms.pop(room.id, None)

    async def _send(self, participant: RelayParticipant, message: dict[str, Any]) -> None:
        if not participant.ws.closed:
            await participant.ws.send_str(json.dumps(message))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("relay_task_failed", exc_info=task.exception())

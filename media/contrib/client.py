"""A scripted huddle participant on aiortc: the browser client's protocol, without a browser.

Tests and ``bench/`` use it to fill a huddle with synthetic people::

    bob = HuddleClient(server.join_url("h1", time.time() + 600), "Bob", width=320, height=240)
    await bob.join()                     # connect, join, publish, wait for the server's answer
    alice = bob.participants["p-1"]      # the others, by id (from welcome / participant-*)
    await bob.wait_for(lambda: bob.received_from("p-1").frames_decoded > 10, within=5)
    print(bob.received)                  # participant id -> ReceivedMedia counters
    await bob.leave()                    # or `async with HuddleClient(...) as bob:`

Options: ``publish_audio`` / ``publish_video`` (both false: a viewer that only receives), the
synthetic video's ``width``, ``height`` and ``fps`` (a bar sweeping across, encoded by aiortc's
VP8 encoder; the audio is a 500 Hz tone in Opus), ``decode`` and ``ice_servers`` (none by default:
host candidates only).

It answers every server offer, keeps :attr:`HuddleClient.streams` (mid -> participant) and counts
what arrives from each remote participant in a :class:`ReceivedMedia`: RTP packets and bytes per
kind, video frames completed on the wire (RTP marker bit), and, when ``decode`` is true, frames
actually decoded. With ``decode=False`` received RTP is counted and dropped before aiortc's jitter
buffer and decoder, so a benchmark can run many subscribers on one core; such a client sends no
NACK, PLI or receiver report for what it gets.

Every server message is kept, once handled, in :attr:`HuddleClient.messages`; tests wait for one
with :meth:`HuddleClient.expect`. To speak to the server step by step, including things a
well-behaved client would not send: :meth:`HuddleClient.connect` (the socket only),
:meth:`HuddleClient.send` and :meth:`HuddleClient.send_raw`, then :meth:`HuddleClient.publish`
after a ``join`` sent by hand. :meth:`HuddleClient.close` drops the connection without a
``leave``, like a crashed tab.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import logging
import math
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket

log = logging.getLogger(__name__)

VIDEO_CLOCK_RATE = 90_000
AUDIO_RATE = 48_000
AUDIO_PTIME = 0.020


class JoinError(Exception):
    """The server refused the connection or the join; ``str(error)`` says why."""


@dataclass
class ReceivedMedia:
    """What arrived from one remote participant (over whichever transceivers carried it)."""

    audio_packets: int = 0
    audio_bytes: int = 0
    video_packets: int = 0
    video_bytes: int = 0
    #: Video frames completed on the wire (RTP marker bit), whether decoded or not.
    video_frames: int = 0
    #: Video frames decoded (only with ``decode=True``).
    frames_decoded: int = 0
    #: Audio frames decoded (only with ``decode=True``).
    audio_frames_decoded: int = 0
    #: ``time.monotonic()`` of the first decoded (or, without decoding, completed) video frame.
    first_video_at: float | None = None
    #: Screen-share video packets and frames on the wire (not counted as ``video_*`` above).
    screen_packets: int = 0
    screen_frames: int = 0


# -- synthetic media ------------------------------------------------------------------------------

_PATTERNS: dict[tuple[int, int], list[bytes]] = {}
PATTERN_FRAMES = 12


def _luma_patterns(width: int, height: int) -> list[bytes]:
    """Luma planes of a bar sweeping left to right, shared by every client of the same size."""
    key = (width, height)
    if key not in _PATTERNS:
        bar = max(8, width // 10)
        planes = []
        for i in range(PATTERN_FRAMES):
            x = (width - bar) * i // (PATTERN_FRAMES - 1)
            row = b"\x40" * x + b"\xeb" * bar + b"\x40" * (width - x - bar)
            planes.append(row * height)
        _PATTERNS[key] = planes
    return _PATTERNS[key]


def _fill_plane(plane: Any, data: bytes, width: int, height: int) -> None:
    # Planes may be padded to an aligned line size.
    if plane.line_size == width:
        plane.update(data)
        return
    pad = b"\x00" * (plane.line_size - width)
    plane.update(b"".join(data[y * width : (y + 1) * width] + pad for y in range(height)))


class SyntheticVideoTrack(MediaStreamTrack):
    """A moving bar at ``width`` x ``height``, ``fps`` frames per second, in real time."""

    kind = "video"

    def __init__(self, width: int = 640, height: int = 480, fps: float = 30.0) -> None:
        super().__init__()
        self._width = width - width % 2
        self._height = height - height % 2
        self._fps = fps
        self._lumas = _luma_patterns(self._width, self._height)
        self._chroma = b"\x80" * ((self._width // 2) * (self._height // 2))
        self._start: float | None = None
        self._count = 0

    async def recv(self) -> av.VideoFrame:
        """The next frame, on time."""
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        else:
            delay = self._start + self._count / self._fps - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        frame = av.VideoFrame(self._width, self._height, "yuv420p")
        _fill_plane(
            frame.planes[0], self._lumas[self._count % len(self._lumas)], self._width, self._height
        )
        half_w, half_h = self._width // 2, self._height // 2
        _fill_plane(frame.planes[1], self._chroma, half_w, half_h)
        _fill_plane(frame.planes[2], self._chroma, half_w, half_h)
        frame.pts = int(self._count * VIDEO_CLOCK_RATE / self._fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK_RATE)
        self._count += 1
        return frame


_TONE: bytes | None = None


class SyntheticAudioTrack(MediaStreamTrack):
    """A 500 Hz tone (exactly 10 periods per 20 ms frame, so frames join without clicks)."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        global _TONE
        samples = int(AUDIO_RATE * AUDIO_PTIME)
        if _TONE is None:
            _TONE = struct.pack(
                f"<{samples}h",
                *(int(8000 * math.sin(2 * math.pi * 500 * n / AUDIO_RATE)) for n in range(samples)),
            )
        self._samples = samples
        self._start: float | None = None
        self._count = 0

    async def recv(self) -> av.AudioFrame:
        """The next 20 ms of tone, on time."""
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        else:
            delay = self._start + self._count * AUDIO_PTIME - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        frame = av.AudioFrame(format="s16", layout="mono", samples=self._samples)
        assert _TONE is not None
        frame.planes[0].update(_TONE)
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._count * self._samples
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self._count += 1
        return frame


# -- the participant ----------------------------------------------------------------------------


def signaling_url(join_url: str) -> str:
    """``http(s)://host/h/ID?t=TOKEN`` (the Join link) -> ``ws(s)://host/h/ID/ws?t=TOKEN``."""
    parts = urlsplit(join_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/ws", parts.query, ""))


class HuddleClient:
    """One scripted participant: join, publish synthetic media, receive and count, leave."""

    def __init__(
        self,
        join_url: str,
        name: str,
        *,
        publish_audio: bool = True,
        publish_video: bool = True,
        width: int = 640,
        height: int = 480,
        fps: float = 30.0,
        decode: bool = True,
        ice_servers: list[str] | None = None,
        seat: str | None = None,
    ) -> None:
        self.join_url = join_url
        self.name = name
        #: The browser this client pretends to be (the join page's seat cookie), if any.
        self.seat = seat
        self.decode = decode
        self._publish_audio = publish_audio
        self._publish_video = publish_video
        self._video_size = (width, height, fps)
        #: This participant as the server knows it (after :meth:`join`).
        self.you: dict[str, Any] | None = None
        #: The others now in the huddle, by id.
        self.participants: dict[str, dict[str, Any]] = {}
        #: mid -> the ``streams`` entry it carries now.
        self.streams: dict[str, dict[str, Any]] = {}
        #: Counters per remote participant id.
        self.received: dict[str, ReceivedMedia] = {}
        #: Every message the server sent, in order.
        self.messages: list[dict[str, Any]] = []
        #: Set when the server sent ``ended``.
        self.ended: str | None = None
        # No STUN unless asked: aiortc's default is Google's server, useless on a test machine.
        self._ice_servers = [RTCIceServer(urls=url) for url in ice_servers or []]
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=self._ice_servers))
        #: From ``welcome``: what :meth:`resume` sends to take this place back.
        self.resume_token: str | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self._instrumented: set[int] = set()
        self._closed = False
        #: The synthetic screen presented now (:meth:`share`), and the sections it goes out on.
        self._screen: MediaStreamTrack | None = None
        self._publish: dict[str, str] = {}

    # -- lifecycle -------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the signaling socket only (tests use this to misbehave before joining)."""
        self._session = aiohttp.ClientSession()
        headers = {"Cookie": f"huddle_seat={self.seat}"} if self.seat else None
        try:
            self._ws = await self._session.ws_connect(
                signaling_url(self.join_url), max_msg_size=0, headers=headers
            )
        except aiohttp.WSServerHandshakeError as exc:
            await self._session.close()
            raise JoinError(f"signaling refused: HTTP {exc.status}") from exc
        self._reader = asyncio.ensure_future(self._read())

    async def join(self, within: float = 10.0) -> None:
        """Connect, join under :attr:`name`, publish, and return once the server answered."""
        if self._ws is None:
            await self.connect()
        await self._enter({"type": "join", "name": self.name}, within)

    async def _enter(self, message: dict[str, Any], within: float) -> None:
        """Send ``join`` or ``resume``, wait for ``welcome``, publish."""
        mark = len(self.messages)
        await self.send(message)
        welcome = await self.expect("welcome", after=mark, within=within)
        if welcome["type"] != "welcome":
            refused = welcome.get("message") or welcome.get("reason")
            raise JoinError(f"{message['type']} refused: {refused}")
        await self.publish(within=within)

    async def publish(self, within: float = 10.0) -> None:
        """Send the publishing offer (after ``welcome``) and wait for the server's answer."""
        width, height, fps = self._video_size
        if self._publish_audio:
            self.pc.addTransceiver(SyntheticAudioTrack(), direction="sendonly")
        if self._publish_video:
            self.pc.addTransceiver(SyntheticVideoTrack(width, height, fps), direction="sendonly")
        if not (self._publish_audio or self._publish_video):
            # The first offer needs a media section; a silent viewer offers to receive audio.
            self.pc.addTransceiver("audio", direction="recvonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        mark = len(self.messages)
        await self.send({"type": "offer", "sdp": self.pc.localDescription.sdp})
        answer = await self.expect("answer", after=mark, within=within)
        if answer["type"] != "answer":
            raise JoinError(f"offer refused: {answer.get('message')}")

    async def share(
        self,
        on: bool = True,
        *,
        width: int = 1280,
        height: int = 720,
        fps: float = 5.0,
        within: float = 10.0,
    ) -> None:
        """Present a synthetic screen (or stop), and return once the server says so."""
        self._screen = SyntheticVideoTrack(width, height, fps) if on else None
        self._attach_screen()
        mark = len(self.messages)
        await self.send({"type": "share", "on": on})
        mine = self.you["id"] if self.you else None
        await self.expect(
            "participant-updated",
            after=mark,
            within=within,
            where=lambda m: m["participant"]["id"] == mine and m["participant"]["screen"] == on,
        )

    def _attach_screen(self) -> None:
        for transceiver in self.pc.getTransceivers():
            if self._publish.get(transceiver.mid or "") == "screen":
                transceiver.direction = "sendonly"
                transceiver.sender.replaceTrack(self._screen)

    async def drop_socket(self) -> None:
        """Lose the signaling socket only (a network change): the media connection stays.

        Closed with code 4000, as a client about to resume does (a clean close means leaving).
        """
        if self._ws is not None:
            await self._ws.close(code=4000)
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._session is not None:
            await self._session.close()
        self._ws = self._reader = self._session = None

    async def resume(self, within: float = 10.0, *, close_old: bool = True) -> None:
        """Come back on a new socket and a new media connection, as the same participant.

        With ``close_old=False`` the old socket stays open, as when the server has not yet
        noticed the network change.
        """
        assert self.you is not None and self.resume_token, "join() first"
        if close_old:
            await self.drop_socket()
        else:
            self._ws = None
        await self.pc.close()
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=self._ice_servers))
        self._instrumented.clear()
        self.streams = {}
        self._publish = {}
        await self.connect()
        await self._enter({"type": "resume", "token": self.resume_token}, within)

    async def leave(self) -> None:
        """Say ``leave`` and close everything."""
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.send({"type": "leave"})
        await self.close()

    async def close(self) -> None:
        """Close the socket and the peer connection without saying goodbye (a dropped client)."""
        if self._closed:
            return
        self._closed = True
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        for task in list(self._tasks):
            task.cancel()
        await self.pc.close()
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> HuddleClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- talking to the server -----------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        """Send one JSON message."""
        await self.send_raw(json.dumps(message))

    async def send_raw(self, data: str | bytes) -> None:
        """Send one frame as is: text for ``str``, binary for ``bytes``."""
        assert self._ws is not None, "connect() first"
        if isinstance(data, bytes):
            await self._ws.send_bytes(data)
        else:
            await self._ws.send_str(data)

    async def expect(
        self,
        kind: str,
        *,
        after: int = 0,
        within: float = 5.0,
        where: Callable[[dict[str, Any]], bool] = lambda _: True,
    ) -> dict[str, Any]:
        """The first message of type ``kind`` at index >= ``after`` in :attr:`messages`.

        A fatal ``error`` or ``ended`` arriving first is returned instead, so a caller waiting
        for ``welcome`` learns at once that it will not come.
        """
        found: dict[str, Any] | None = None

        def seen() -> bool:
            nonlocal found
            for message in self.messages[after:]:
                if message["type"] == kind and where(message):
                    found = message
                    return True
                if message["type"] == "ended" or (
                    message["type"] == "error" and message.get("fatal")
                ):
                    found = message
                    return True
            return False

        await self.wait_for(seen, within=within)
        assert found is not None
        return found

    async def wait_first(self, *, after: int = 0, within: float = 10.0) -> dict[str, Any]:
        """The first message at index >= ``after`` that is not a ``pong``."""
        found: list[dict[str, Any]] = []

        def seen() -> bool:
            found[:] = [m for m in self.messages[after:] if m["type"] != "pong"][:1]
            return bool(found)

        await self.wait_for(seen, within=within)
        return found[0]

    async def wait_for(self, condition: Callable[[], bool], within: float = 10.0) -> None:
        """Wait until ``condition()`` holds (checked on each message and every 50 ms)."""
        deadline = time.monotonic() + within
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.name}: condition not met within {within} s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(0.05, remaining))

    def disconnected(self) -> bool:
        """Whether the signaling socket is closed (by either side)."""
        return self._ws is not None and self._ws.closed

    def received_from(self, participant_id: str) -> ReceivedMedia:
        """Counters for one remote participant (zeros if nothing arrived yet)."""
        return self.received.setdefault(participant_id, ReceivedMedia())

    def errors(self) -> list[dict[str, Any]]:
        """Every ``error`` message received so far."""
        return [m for m in self.messages if m["type"] == "error"]

    # -- incoming -------------------------------------------------------------------------------

    async def _read(self) -> None:
        assert self._ws is not None
        async for frame in self._ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            message = json.loads(frame.data)
            try:
                await self._handle(message)
            except Exception:
                log.exception("%s: handling %s failed", self.name, message.get("type"))
            # Listed once handled: whoever waits for an `answer` finds it applied.
            self.messages.append(message)
            self._changed.set()
        self._changed.set()

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "welcome":
            self.you = message["you"]
            self.resume_token = message.get("resume")
            self.participants = {p["id"]: p for p in message["participants"]}
        elif kind == "answer":
            await self.pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "answer"))
        elif kind == "offer":
            self._set_streams(message["streams"])
            await self.pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "offer"))
            self._publish = {p["mid"]: p["track"] for p in message.get("publish", [])}
            self._attach_screen()
            self._instrument()
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            await self.send({"type": "answer", "sdp": self.pc.localDescription.sdp})
        elif kind == "streams":
            self._set_streams(message["streams"])
        elif kind in ("participant-joined", "participant-updated"):
            self.participants[message["participant"]["id"]] = message["participant"]
        elif kind == "participant-left":
            self.participants.pop(message["id"], None)
        elif kind == "ended":
            self.ended = message["reason"]

    def _set_streams(self, streams: list[dict[str, Any]]) -> None:
        self.streams = {s["mid"]: s for s in streams}

    def _owner(self, mid: str | None) -> ReceivedMedia | None:
        stream = self.streams.get(mid) if mid is not None else None
        return None if stream is None else self.received_from(stream["participant"])

    def _instrument(self) -> None:
        """Count RTP on every new receiving transceiver; read its track if decoding."""
        for transceiver in self.pc.getTransceivers():
            receiver = transceiver.receiver
            if id(receiver) in self._instrumented or transceiver.direction == "sendonly":
                continue
            self._instrumented.add(id(receiver))
            self._count_rtp(transceiver, receiver)
            if self.decode and receiver.track is not None:
                task = asyncio.ensure_future(self._read_track(transceiver, receiver.track))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _count_rtp(self, transceiver: RTCRtpTransceiver, receiver: RTCRtpReceiver) -> None:
        # aiortc routes each RTP packet to the receiver's (private) _handle_rtp_packet: the one
        # place to see packets before the jitter buffer and the decoder.
        handle = receiver._handle_rtp_packet
        video = transceiver.kind == "video"
        decode = self.decode

        async def counting(packet: RtpPacket, arrival_time_ms: int) -> None:
            counters = self._owner(transceiver.mid)
            stream = self.streams.get(transceiver.mid or "")
            if counters is not None and stream is not None and stream["track"] == "screen":
                counters.screen_packets += 1
                counters.screen_frames += packet.marker
            elif counters is not None:
                size = len(packet.payload)
                if video:
                    counters.video_packets += 1
                    counters.video_bytes += size
                    if packet.marker:
                        counters.video_frames += 1
                        if not decode and counters.first_video_at is None:
                            counters.first_video_at = time.monotonic()
                else:
                    counters.audio_packets += 1
                    counters.audio_bytes += size
            if decode:
                await handle(packet, arrival_time_ms)

        receiver._handle_rtp_packet = counting  # type: ignore[method-assign]

    async def _read_track(self, transceiver: RTCRtpTransceiver, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                counters = self._owner(transceiver.mid)
                stream = self.streams.get(transceiver.mid or "")
                if counters is None or stream is None or stream["track"] == "screen":
                    continue
                if transceiver.kind == "video":
                    counters.frames_decoded += 1
                    if counters.first_video_at is None:
                        counters.first_video_at = time.monotonic()
                else:
                    counters.audio_frames_decoded += 1

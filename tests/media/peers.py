"""Real aiortc peers on this machine's interface for the forwarding tests: publishers, subscribers.

Every connection is a genuine aiortc pair (ICE, DTLS, SRTP) over UDP. Client-side peers are
observed, never replaced: the publisher's camera encodes VP8 itself and emits a keyframe only at
start and when asked by a PLI (so the tests know exactly where keyframes come from), and a
subscriber records every RTP packet its video receiver gets before aiortc handles it.

The server side of these pairs is the forwarding unit alone, set up by hand as
:mod:`media.rooms` would (:func:`start_publisher` taps, :func:`start_subscriber` adds forwarding
transceivers): unit tests of one mechanism at a time. A person's path through
:class:`media.server.MediaServer` and its signaling is :mod:`media.contrib.client` against
``tests/media/media_app.py`` (test_signaling.py, test_loss.py, test_codecs.py).

:class:`CapturingTransport` is the one exception, for byte-level tests without a network: a DTLS
transport that never connects, whose ``_send_rtp`` records what would have been encrypted and sent.
"""

from __future__ import annotations

import asyncio
import fractions
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsTransport
from aiortc.rtcicetransport import RTCIceGatherer, RTCIceTransport
from aiortc.rtp import RtcpPacket, RtpPacket

from media.forwarding import (
    ForwardingStats,
    TrackForwarder,
    add_forwarding_transceiver,
    tap_publisher,
)
from media.keyframes import is_h264_keyframe_start, is_vp8_keyframe_start


class CapturingTransport:
    """An unconnected DTLS transport whose ``_send_rtp`` records instead of encrypting."""

    def __init__(self) -> None:
        ice = RTCIceTransport(RTCIceGatherer(iceServers=[]))
        self.dtls = RTCDtlsTransport(ice, [RTCCertificate.generateCertificate()])
        self.sent: list[bytes] = []

        async def send_rtp(data: bytes) -> None:
            self.sent.append(data)

        self.dtls._send_rtp = send_rtp  # type: ignore[method-assign]

    def rtcp(self) -> list[Any]:
        return [packet for data in self.sent for packet in RtcpPacket.parse(data)]


#: No STUN server: aiortc's default (Google's) is unreachable here; host candidates suffice.
NO_ICE_SERVERS = RTCConfiguration(iceServers=[])
VIDEO_CLOCK = 90000


async def wait_for(
    predicate: Callable[[], bool], within: float, what: str, interval: float = 0.01
) -> float:
    """Poll ``predicate`` until true; return the seconds it took, or fail saying ``what``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > within:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(interval)
    return time.monotonic() - start


class Camera(MediaStreamTrack):
    """A 30 fps camera that yields VP8 or H264 packets, with keyframes only at start and on request.

    aiortc's own encoder also makes a keyframe whenever REMB moves its bitrate; this one does not,
    like a publisher that never emits spontaneous keyframes.
    """

    kind = "video"

    def __init__(
        self,
        width: int,
        height: int,
        codec: str = "vp8",
        fps: int = 30,
        noisy_rows: int = 0,
        skip_late: bool = False,
    ) -> None:
        super().__init__()
        self.width = width
        self.height = height
        self._period = 1 / fps
        self._codec = av.CodecContext.create("libvpx" if codec == "vp8" else "libx264", "w")
        self._codec.width = width
        self._codec.height = height
        self._codec.pix_fmt = "yuv420p"
        self._codec.bit_rate = 300_000
        self._codec.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self._codec.gop_size = 100_000
        if codec == "vp8":
            self._codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        else:
            self._codec.options = {"preset": "ultrafast", "tune": "zerolatency"}
            self._codec.profile = "Baseline"
        # A moving gradient gives the encoder real deltas to code.
        self._lumas = [
            bytes((x * 2 + shift * 9) & 0xFF for x in range(width)) * height for shift in range(32)
        ]
        if noisy_rows:
            # Noise costs bits as a real picture does: 60 rows of 320 make ~0.8 Mbit/s, about
            # 100 packets a second, where the gradient alone makes one small packet per frame.
            noise = random.Random(noisy_rows)
            self._lumas = [
                noise.randbytes(width * noisy_rows) + luma[width * noisy_rows :]
                for luma in self._lumas
            ]
        self._chroma = bytes([128]) * (width * height // 4)
        self._keyframe_wanted = True
        self._count = 0
        self._start: float | None = None
        self._skip_late = skip_late
        self.keyframes_sent = 0

    def request_keyframe(self) -> None:
        """Make the next frame a keyframe."""
        self._keyframe_wanted = True

    async def recv(self) -> av.Packet:
        """The next encoded frame, paced to the frame rate."""
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        elif self._skip_late:
            # A real camera captures on time: after a stall it has missed frames, not queued
            # them to send in one burst.
            self._count = max(self._count, int((loop.time() - self._start) / self._period))
        await asyncio.sleep(max(0.0, self._start + self._count * self._period - loop.time()))
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        frame.planes[0].update(self._lumas[self._count % len(self._lumas)])
        frame.planes[1].update(self._chroma)
        frame.planes[2].update(self._chroma)
        frame.pts = round(self._count * self._period * VIDEO_CLOCK)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        if self._keyframe_wanted:
            self._keyframe_wanted = False
            frame.pict_type = av.video.frame.PictureType.I
        self._count += 1
        packets = self._codec.encode(frame)
        assert len(packets) == 1, "no lookahead: one packet per frame"
        packet = packets[0]
        packet.pts = frame.pts
        packet.time_base = frame.time_base
        if packet.is_keyframe:
            self.keyframes_sent += 1
        return packet


@dataclass
class Publisher:
    """A client publishing camera and microphone, and the server-side connection tapping it."""

    client: RTCPeerConnection
    server: RTCPeerConnection
    camera: Camera
    forwarders: dict[str, TrackForwarder]
    #: Loop times at which the publisher received a PLI (answered or not).
    plis: list[float] = field(default_factory=list)
    #: Loop times at which the server sent the publisher a PLI (arrival may lag under load).
    plis_sent: list[float] = field(default_factory=list)
    #: How many of the next PLIs to ignore, as a publisher that loses them would.
    ignore_plis: int = 0

    @property
    def video(self) -> TrackForwarder:
        return self.forwarders["video"]

    @property
    def audio(self) -> TrackForwarder:
        return self.forwarders["audio"]

    def _on_pli(self) -> None:
        self.plis.append(asyncio.get_running_loop().time())
        if self.ignore_plis > 0:
            self.ignore_plis -= 1
        else:
            self.camera.request_keyframe()

    async def close(self) -> None:
        for forwarder in self.forwarders.values():
            forwarder.close()
        await self.client.close()
        await self.server.close()


#: Browsers number payload types their own way (Chromium: VP8 96, Opus 111); aiortc's defaults
#: are Opus 96, VP8 97 with RTX 98, H264 99 and 101. Publishers' offers are renumbered so that
#: every test forwards between different payload types, as with browsers.
PUBLISHER_PAYLOAD_TYPES = {"audio": {96: 111}, "video": {97: 120, 98: 121, 99: 122, 100: 123}}


def renumber_payload_types(sdp: str, numbers: dict[str, dict[int, int]]) -> str:
    """Rewrite the payload type numbers of each media section of ``sdp``."""
    lines = []
    mapping: dict[int, int] = {}

    def number(match: re.Match[str]) -> str:
        value = int(match.group(0))
        return str(mapping.get(value, value))

    for line in sdp.split("\r\n"):
        if line.startswith("m="):
            mapping = numbers.get(line[2:].split(" ")[0], {})
            head, formats = line.split(" ", 3)[:3], line.split(" ", 3)[3]
            line = " ".join([*head, re.sub(r"\d+", number, formats)])
        elif line.startswith(("a=rtpmap:", "a=rtcp-fb:", "a=fmtp:")):
            line = re.sub(r"(?<=:)\d+", number, line, count=1)
            line = re.sub(r"(?<=apt=)\d+", number, line)
        lines.append(line)
    return "\r\n".join(lines)


async def start_publisher(
    stats: ForwardingStats,
    width: int = 320,
    height: int = 240,
    ignore_plis: int = 0,
    codec: str = "vp8",
) -> Publisher:
    """Connect a publishing client to a server-side connection that taps both its tracks."""
    client = RTCPeerConnection(NO_ICE_SERVERS)
    camera = Camera(width, height, codec)
    video_sender = client.addTrack(camera)
    client.addTrack(AudioStreamTrack())
    if codec == "h264":
        video = next(t for t in client.getTransceivers() if t.kind == "video")
        video.setCodecPreferences(
            [
                c
                for c in RTCRtpSender.getCapabilities("video").codecs
                if c.mimeType in ("video/H264", "video/rtx")
            ]
        )
    await client.setLocalDescription(await client.createOffer())
    offer = RTCSessionDescription(
        sdp=renumber_payload_types(client.localDescription.sdp, PUBLISHER_PAYLOAD_TYPES),
        type="offer",
    )

    server = RTCPeerConnection(NO_ICE_SERVERS)
    await server.setRemoteDescription(offer)
    forwarders = {
        t.kind: tap_publisher(t.receiver, kind=t.kind, stats=stats)  # type: ignore[arg-type]
        for t in server.getTransceivers()
    }
    await server.setLocalDescription(await server.createAnswer())
    publisher = Publisher(client, server, camera, forwarders, ignore_plis=ignore_plis)
    # Observe PLIs where aiortc sends them from the server and delivers them to the publisher.
    video_sender._send_keyframe = publisher._on_pli  # type: ignore[method-assign]
    tapped: Any = forwarders["video"].receiver
    send_pli: Callable[[int], Awaitable[None]] = tapped._send_rtcp_pli

    def record_pli(media_ssrc: int) -> Awaitable[None]:
        # Noted when the forwarder decides to send, not when the sending task gets to run.
        publisher.plis_sent.append(asyncio.get_running_loop().time())
        return send_pli(media_ssrc)

    tapped._send_rtcp_pli = record_pli
    await client.setRemoteDescription(server.localDescription)
    await wait_for(
        lambda: client.connectionState == "connected" == server.connectionState,
        20,
        "the publisher to connect",
    )
    return publisher


@dataclass
class Received:
    """One RTP packet as the subscriber's video receiver got it."""

    at: float
    sequence_number: int
    timestamp: int
    ssrc: int
    payload_type: int
    mid: str | None
    keyframe_start: bool
    #: The payload's first two bytes: an RTX packet's original sequence number.
    head: bytes


@dataclass
class Subscriber:
    """A client receiving forwarded tracks, and its server-side connection with the senders."""

    server: RTCPeerConnection
    client: RTCPeerConnection
    video: RTCRtpTransceiver
    audio: RTCRtpTransceiver
    #: Video RTP packets (including RTX) the client received, in arrival order.
    packets: list[Received] = field(default_factory=list)
    #: Loop time and size of every video frame the client decoded.
    frames: list[tuple[float, int, int]] = field(default_factory=list)
    audio_frames: int = 0
    #: Return True to drop a video packet before aiortc's receiver sees it (simulated loss).
    drop: Callable[[RtpPacket], bool] | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def client_transceiver(self, kind: str) -> RTCRtpTransceiver:
        return next(t for t in self.client.getTransceivers() if t.kind == kind)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.client.close()
        await self.server.close()


async def start_subscriber(
    before_negotiation: Callable[[Subscriber], None] | None = None, codec: str = "vp8"
) -> Subscriber:
    """Connect a receiving client to a server-side connection with two forwarding senders.

    ``before_negotiation`` runs after the forwarding transceivers exist and before the offer.
    """
    server = RTCPeerConnection(NO_ICE_SERVERS)
    video = add_forwarding_transceiver(server, "video")
    audio = add_forwarding_transceiver(server, "audio")
    client = RTCPeerConnection(NO_ICE_SERVERS)
    subscriber = Subscriber(server, client, video, audio)
    if before_negotiation is not None:
        before_negotiation(subscriber)
    await server.setLocalDescription(await server.createOffer())
    await client.setRemoteDescription(server.localDescription)
    _record_video_rtp(
        subscriber, is_vp8_keyframe_start if codec == "vp8" else is_h264_keyframe_start
    )
    await client.setLocalDescription(await client.createAnswer())
    await server.setRemoteDescription(client.localDescription)
    subscriber._tasks.append(asyncio.ensure_future(_read_video(subscriber)))
    subscriber._tasks.append(asyncio.ensure_future(_read_audio(subscriber)))
    await wait_for(
        lambda: client.connectionState == "connected" == server.connectionState,
        20,
        "the subscriber to connect",
    )
    return subscriber


def _record_video_rtp(subscriber: Subscriber, keyframe_start: Callable[[bytes], bool]) -> None:
    receiver: Any = subscriber.client_transceiver("video").receiver
    handle: Callable[..., Awaitable[None]] = receiver._handle_rtp_packet

    async def observe(packet: RtpPacket, arrival_time_ms: int) -> None:
        if subscriber.drop is not None and subscriber.drop(packet):
            return
        subscriber.packets.append(
            Received(
                at=asyncio.get_running_loop().time(),
                sequence_number=packet.sequence_number,
                timestamp=packet.timestamp,
                ssrc=packet.ssrc,
                payload_type=packet.payload_type,
                mid=packet.extensions.mid,
                keyframe_start=keyframe_start(packet.payload),
                head=packet.payload[:2],
            )
        )
        await handle(packet, arrival_time_ms)

    receiver._handle_rtp_packet = observe


async def _read_video(subscriber: Subscriber) -> None:
    track = subscriber.client_transceiver("video").receiver.track
    loop = asyncio.get_running_loop()
    try:
        while True:
            frame = await track.recv()
            subscriber.frames.append((loop.time(), frame.width, frame.height))
    except MediaStreamError:
        pass


async def _read_audio(subscriber: Subscriber) -> None:
    track = subscriber.client_transceiver("audio").receiver.track
    try:
        while True:
            await track.recv()
            subscriber.audio_frames += 1
    except MediaStreamError:
        pass

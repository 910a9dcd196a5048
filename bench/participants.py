"""The client side of one benchmark run: one publisher and N subscribers, in one process.

``python -m bench.participants --join-url URL --subscribers N --server-pid PID --stats-url URL``
joins a synthetic publisher (640x480 at 30 fps VP8 at a pinned bitrate, plus Opus), then N
subscribers that publish nothing, waits until every subscriber receives video, lets it settle, and
measures one window: the server's CPU time (from /proc/PID/stat), the server's own forwarded-packet
count, and per subscriber the video frames that arrived *complete* (every RTP packet from the
frame's first to its marker, no sequence gap) per second. It prints one JSON object on stdout.
With ``--signaling janus`` the same participants join a Janus VideoRoom instead (bench/janus.py).

Most subscribers count RTP where it enters the process, without decrypting or decoding it (see
:class:`Subscriber`): 64 subscribers taking aiortc's whole receive path, let alone decoding, would
saturate the client core and measure the client, not the server. The first ``--decoders``
subscribers take the whole path and decode, as a check that what is forwarded is watchable.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpTransceiver
from aiortc.rtp import RtpPacket
from aiortc.sdp import SessionDescription

from bench.synthetic import SyntheticCamera, pin_vp8_bitrate
from media.contrib.client import HuddleClient

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        # Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def core_busy_seconds(cores: set[int]) -> float:
    """CPU time spent by anything (not idle, not waiting for I/O) on ``cores``, from /proc/stat."""
    busy = 0
    with open("/proc/stat", encoding="ascii") as stat:
        for line in stat:
            name, *ticks = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cores:
                user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, ticks[:8])
                busy += user + nice + system + irq + softirq + steal
    return busy / CLOCK_TICKS


@dataclass
class WireCounts:
    """What arrived from the publisher at one subscriber, counted per RTP packet.

    A video frame is *complete* when its packets, from the first one after the previous frame's
    marker packet to its own marker packet, arrived with consecutive sequence numbers: what a
    decoder could have used without waiting for a retransmission.
    """

    video_packets: int = 0
    video_bytes: int = 0
    lost: int = 0
    frames: int = 0
    complete_frames: int = 0
    audio_packets: int = 0
    first_frame_at: float | None = None
    _last_seq: int | None = None
    _intact: bool = False

    def video(self, seq: int, marker: bool, payload_bytes: int) -> None:
        """Count one video RTP packet."""
        if self._last_seq is not None:
            gap = (seq - self._last_seq - 1) & 0xFFFF
            if gap >= 0x8000 and 0x10000 - gap <= 512:
                return  # late or duplicate
            if gap >= 0x8000:
                # A jump far back: a new sequence space (the sender was switched); start over.
                self._intact = False
            elif gap:
                self.lost += gap
                self._intact = False
        self._last_seq = seq
        self.video_packets += 1
        self.video_bytes += payload_bytes
        if marker:
            self.frames += 1
            if self._intact:
                self.complete_frames += 1
                if self.first_frame_at is None:
                    self.first_frame_at = time.monotonic()
            self._intact = True  # the next packet starts a new frame


def _media_payload_types(pc: RTCPeerConnection, kind: str) -> set[int]:
    """Payload types of ``kind`` media (not RTX) in the remote description."""
    if pc.remoteDescription is None:
        return set()
    description = SessionDescription.parse(pc.remoteDescription.sdp)
    return {
        codec.payloadType
        for media in description.media
        if media.kind == kind
        for codec in media.rtp.codecs
        if codec.payloadType is not None and not codec.mimeType.lower().endswith("/rtx")
    }


class Subscriber(HuddleClient):
    """A participant that publishes nothing and counts the video frames that arrive complete.

    With ``decode=False`` it counts RTP where it enters the process, in aioice's datagram
    callback, and drops it there. SRTP leaves the RTP header in the clear, so sequence number,
    marker bit and payload type are readable without decrypting; skipping decryption, aiortc's
    per-packet task hops, parsing and routing keeps 64 subscribers well inside one client core.
    Such a subscriber sends no receiver reports, NACKs or PLIs. With ``decode=True`` packets take
    aiortc's whole path (media.contrib.client decodes them) and are counted on the way.
    """

    def __init__(self, join_url: str, name: str, *, decode: bool) -> None:
        super().__init__(join_url, name, publish_audio=False, publish_video=False, decode=decode)
        self.wire = WireCounts()
        self.tapped = False
        self.join_started = 0.0
        self._video_pts: set[int] = set()
        self._audio_pts: set[int] = set()

    def tap(self) -> bool:
        """Start counting, once the server's offer gave this subscriber the publisher's tracks."""
        if self.tapped:
            return True
        video_pts = _media_payload_types(self.pc, "video")
        if self.pc.signalingState != "stable" or not video_pts:
            return False  # the server's offer is not applied yet
        receiving = [
            transceiver
            for transceiver in self.pc.getTransceivers()
            if transceiver.mid in self.streams and transceiver.receiver.transport is not None
        ]
        if not any(transceiver.kind == "video" for transceiver in receiving):
            return False
        if self.decode:
            for transceiver in receiving:
                self._count_decoded_path(transceiver, transceiver.receiver)
        else:
            self._video_pts = video_pts
            self._audio_pts = _media_payload_types(self.pc, "audio")
            connections = {id(t.receiver.transport.transport._connection): t for t in receiving}
            for transceiver in connections.values():
                self._tap_datagrams(transceiver.receiver.transport.transport._connection)
        self.tapped = True
        return True

    def _count_decoded_path(self, transceiver: RTCRtpTransceiver, receiver: RTCRtpReceiver) -> None:
        inner = receiver._handle_rtp_packet
        wire = self.wire
        video = transceiver.kind == "video"

        async def counting(packet: RtpPacket, arrival_time_ms: int) -> None:
            if video:
                wire.video(packet.sequence_number, bool(packet.marker), len(packet.payload))
            else:
                wire.audio_packets += 1
            await inner(packet, arrival_time_ms)

        receiver._handle_rtp_packet = counting  # type: ignore[method-assign]

    def _tap_datagrams(self, connection: Any) -> None:
        """Count and drop RTP in ``connection``'s (an aioice Connection) datagram callback."""
        deliver = connection.data_received
        wire = self.wire

        def data_received(data: bytes, component: int) -> None:
            # RTP version 2 and not RTCP (RTCP packet types 192-223 sit in the second byte).
            if len(data) >= 12 and 128 <= data[0] < 192 and not 192 <= data[1] <= 223:
                payload_type = data[1] & 0x7F
                if payload_type in self._video_pts:
                    header = 12 + 4 * (data[0] & 0x0F)
                    if data[0] & 0x10:  # header extension
                        header += 4 + 4 * int.from_bytes(data[header + 2 : header + 4])
                    wire.video(int.from_bytes(data[2:4]), bool(data[1] & 0x80), len(data) - header)
                    return
                if payload_type in self._audio_pts:
                    wire.audio_packets += 1
                    return
            deliver(data, component)

        connection.data_received = data_received


@dataclass
class Snapshot:
    """Every counter the window needs, read at one instant."""

    at: float
    server_cpu: float
    client_cpu: float
    #: Busy time of the server's core(s), whoever used it: the server's CPU and any intruder's.
    server_core_busy: float
    packets_forwarded: int
    camera_frames: int
    complete: list[int]
    frames: list[int]
    lost: list[int]
    video_bytes: list[int]
    audio_packets: list[int]
    #: RTP packets (video and audio) that reached each subscriber from the server.
    received: list[int]
    decoded: list[int]


async def _snapshot(
    http: aiohttp.ClientSession,
    stats_url: str,
    server_pid: int,
    camera: SyntheticCamera,
    subscribers: list[Subscriber],
    publisher_id: str,
) -> Snapshot:
    async with http.get(stats_url) as response:
        stats = await response.json()
    times = os.times()
    return Snapshot(
        at=time.monotonic(),
        server_cpu=cpu_seconds(server_pid),
        client_cpu=times.user + times.system,
        server_core_busy=core_busy_seconds(os.sched_getaffinity(server_pid)),
        packets_forwarded=int(stats["packets_forwarded"]),
        camera_frames=camera.frames_produced,
        complete=[s.wire.complete_frames for s in subscribers],
        frames=[s.wire.frames for s in subscribers],
        lost=[s.wire.lost for s in subscribers],
        video_bytes=[s.wire.video_bytes for s in subscribers],
        audio_packets=[s.wire.audio_packets for s in subscribers],
        received=[s.wire.video_packets + s.wire.audio_packets for s in subscribers],
        decoded=[s.received_from(publisher_id).frames_decoded for s in subscribers if s.decode],
    )


def _first_video_s(subscriber: Subscriber) -> float | None:
    """Seconds from starting to join to the first complete video frame (or the first decoded)."""
    seen = [
        at for media in subscriber.received.values() if (at := media.first_video_at) is not None
    ]
    if subscriber.wire.first_frame_at is not None:
        seen.append(subscriber.wire.first_frame_at)
    return min(seen) - subscriber.join_started if seen else None


def _rates(before: list[int], after: list[int], seconds: float) -> list[float]:
    return [(b - a) / seconds for a, b in zip(before, after, strict=True)]


def _summary(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"min": None, "median": None, "max": None}
    return {
        "min": round(min(values), 2),
        "median": round(statistics.median(values), 2),
        "max": round(max(values), 2),
    }


async def run(
    *,
    join_url: str,
    subscribers: int,
    decoders: int,
    warmup: float,
    duration: float,
    server_pid: int,
    stats_url: str,
    bitrate: int,
    join_concurrency: int = 8,
    signaling: str = "huddle",
) -> dict[str, Any]:
    """Join everyone, measure one window, leave; the measurements as a JSON-ready dict.

    ``signaling`` is how the participants speak to the server: ``huddle`` (huddle's WebSocket
    protocol, which bench/relay_server.py speaks too) or ``janus`` (Janus VideoRoom's HTTP API).
    """
    pin_vp8_bitrate(bitrate)
    started = time.monotonic()
    camera = SyntheticCamera()
    publisher_class: type[HuddleClient] = HuddleClient
    subscriber_class: type[Subscriber] = Subscriber
    if signaling == "janus":
        # Imported here: bench.janus builds its subscriber on this module's Subscriber.
        from bench.janus import JanusPublisher, JanusSubscriber

        publisher_class, subscriber_class = JanusPublisher, JanusSubscriber
    publisher = publisher_class(
        join_url, "publisher", publish_audio=True, publish_video=False, decode=False
    )
    # Added before join(): the publishing offer then carries this camera and the client's tone.
    publisher.pc.addTransceiver(camera, direction="sendonly")
    await publisher.join(within=30.0)
    assert publisher.you is not None
    publisher_id = str(publisher.you["id"])

    audience = [
        subscriber_class(join_url, f"sub-{i}", decode=i < decoders) for i in range(subscribers)
    ]
    gate = asyncio.Semaphore(join_concurrency)

    async def join(subscriber: Subscriber) -> None:
        async with gate:
            subscriber.join_started = time.monotonic()
            await subscriber.join(within=60.0)

    await asyncio.gather(*(join(s) for s in audience))

    def all_receiving() -> bool:
        # tap() each one as soon as its server offer is applied; then 1 s of complete video.
        tapped = [s.tap() for s in audience]
        return all(tapped) and all(s.wire.complete_frames >= 30 for s in audience)

    joined_s = time.monotonic() - started
    # Everyone receiving video (or a deadline): from here on the set of flows is steady.
    with contextlib.suppress(TimeoutError):
        await audience[0].wait_for(all_receiving, within=20.0 + 0.5 * subscribers)
    receiving_s = time.monotonic() - started
    await asyncio.sleep(warmup)

    # Tells bench/sfu.py the window starts (it may attach a profiler to the server now).
    print(json.dumps({"event": "window"}), flush=True)
    async with aiohttp.ClientSession() as http:
        first = await _snapshot(http, stats_url, server_pid, camera, audience, publisher_id)
        await asyncio.sleep(duration)
        last = await _snapshot(http, stats_url, server_pid, camera, audience, publisher_id)
    window = last.at - first.at
    fps = _rates(first.complete, last.complete, window)
    result: dict[str, Any] = {
        "subscribers": subscribers,
        "window_s": round(window, 2),
        "joined_s": round(joined_s, 2),
        "receiving_s": round(receiving_s, 2),
        "server_cpu_s": round(last.server_cpu - first.server_cpu, 3),
        "client_cpu_s": round(last.client_cpu - first.client_cpu, 3),
        # Other processes on the server's core during the window (the machine may be shared).
        "server_core_others_s": round(
            (last.server_core_busy - first.server_core_busy) - (last.server_cpu - first.server_cpu),
            3,
        ),
        "packets_forwarded": last.packets_forwarded - first.packets_forwarded,
        # What the subscribers got, to hold the server's own count against.
        "packets_received": sum(last.received) - sum(first.received),
        "publisher_fps": round((last.camera_frames - first.camera_frames) / window, 2),
        "fps": _summary(fps),
        "fps_marker": _summary(_rates(first.frames, last.frames, window)),
        "fps_decoded": _summary(_rates(first.decoded, last.decoded, window)),
        "video_kbps": _summary(
            [8 * r / 1000 for r in _rates(first.video_bytes, last.video_bytes, window)]
        ),
        "audio_pps": _summary(_rates(first.audio_packets, last.audio_packets, window)),
        "lost_packets": sum(last.lost) - sum(first.lost),
        "subscribers_receiving": sum(1 for value in fps if value > 0),
        "first_video_s": _summary([t for t in map(_first_video_s, audience) if t is not None]),
        "per_subscriber": {
            "fps": [round(value, 2) for value in fps],
            "lost": [b - a for a, b in zip(first.lost, last.lost, strict=True)],
        },
    }
    return result


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, run, print the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--join-url", required=True)
    parser.add_argument("--stats-url", required=True)
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--subscribers", type=int, required=True)
    parser.add_argument("--decoders", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--bitrate", type=int, default=1_000_000)
    parser.add_argument("--core", type=int, help="pin this process (and its threads) to one CPU")
    parser.add_argument(
        "--signaling",
        choices=("huddle", "janus"),
        default="huddle",
        help="huddle's WebSocket protocol (huddle, relay) or Janus VideoRoom's HTTP API",
    )
    args = parser.parse_args(argv)
    if args.core is not None:
        # First thing: threads started later (aiortc's decoders, encoders) inherit the pinning.
        os.sched_setaffinity(0, {args.core})
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)

    async def measure_and_exit() -> None:
        result = await run(
            join_url=args.join_url,
            subscribers=args.subscribers,
            decoders=args.decoders,
            warmup=args.warmup,
            duration=args.duration,
            server_pid=args.server_pid,
            stats_url=args.stats_url,
            bitrate=args.bitrate,
            signaling=args.signaling,
        )
        print(json.dumps(result), flush=True)
        # The server under test is stopped next: tearing down 2N peer connections (and joining
        # aiortc's non-daemon decoder threads) would only add time to the run.
        os._exit(0)

    asyncio.run(measure_and_exit())


if __name__ == "__main__":
    main()

"""CPU per forwarded packet of huddle's forwarding path, with and without the audio-level sums.

Issue #14 bounds what active-speaker detection may add to ``bench/sfu.py``'s CPU per forwarded
packet at N=64 (5%). End-to-end runs of ``bench/sfu.py`` scatter by far more than that from run to
run, so this bench measures the forwarding path itself, in one process, with both variants built
from the same code and measured alternately.

What runs is the real thing, set up as ``media/rooms.py`` sets it up: one publisher connection
(aiortc, ICE + DTLS + SRTP on this machine's address) whose audio and video receivers are tapped
by :func:`media.forwarding.tap_publisher` (:func:`media.ice.skip_stun_parsing_for_media`, so
packets take :class:`media.ingress.Ingress`), and N subscriber connections with two forwarding
senders each (:func:`media.forwarding.add_forwarding_transceiver`), sending through the C fan-out
(``media/_fanout.c``: SRTP protect and ``sendto`` per copy). The publisher's client sends nothing
itself; instead the bench builds, for every sample, one second of what ``bench/sfu.py``'s aiortc
publisher sends (VP8 at ``--video-kbps`` in packets of at most 1,300 bytes at 30 fps, with mid
and abs-send-time; Opus at 50 packets/s of ``--audio-bytes``, with mid and the RFC 6464 audio
level), serialized with the client's extension map and SRTP-protected with the client's own
session, outside the timed part. The timed part hands each datagram to the publisher's
:meth:`Ingress.receive` as the socket callback would: SRTP unprotect, parse, RTCP statistics,
REMB estimate, NACK tracking, the level, and the fan-out of every copy to the N subscribers. Not
timed: the publisher's ``recvfrom`` and asyncio's read callback (once per publisher packet,
1/N of the copies), and the event loop's other work between samples. The subscribers' clients
read their sockets (so the kernel delivers as to a real receiver) and drop the RTP unread, between
samples; every copy is counted there, so a copy the kernel dropped would show as ``lost``.

The variants differ by exactly the work the speaker detection added to the per-packet path
(commit abc5b51): two statements in ``TrackForwarder._forward``, ``self._loudness += 127 -
level[1]`` and ``self._loud_packets += 1``, run once per publisher audio packet. Each variant is
a code object for ``_forward``, compiled from media/forwarding.py as it is on disk:

- ``shipped``: the file as it is (checked: equal to the module's own code object);
- ``no_level_sums``: the file with those two lines removed (checked: exactly two). All else
  stays, the reading of the level included: it was there before, since the level is copied into
  every forwarded audio packet. Feeding packets without the extension instead would remove that
  too, and change what the fan-out writes;
- ``shipped_copy``: the file as it is, compiled a second time: a control. Its ratio to
  ``shipped`` is what this bench reports for two identical codes (its resolution and bias).

Before each sample the function's ``__code__`` is set to the variant's. The class and the
forwarder instances stay as they are (changing a class would invalidate every specialization
keyed on it; changing an instance's class would turn its attributes into a dict), each code
object keeps its own warm specializations, and only the call site of ``_forward`` re-specializes.
Between samples the room's work is done by hand: ``take_loudness()`` starts the sums again.

Samples: one second of publisher traffic each (168 packets by default, times N copies), CPU of this
thread (``time.thread_time_ns``: the kernel's send path included, the clients' idle decoder
threads not), in groups of one sample per variant, the six orders taken in turn (ABC ACB BAC
BCA CAB CBA ...: drift and position fall on all alike). Output, one JSON line each: a line per
variant (CPU us per forwarded packet: median, quartiles, min, max), the ratio shipped /
no_level_sums and the control shipped_copy / shipped (ratio of medians with a 95% bootstrap
interval over groups; min / min; median of the ratios within groups), and two finer checks: the
added nanoseconds per audio packet measured alone (audio through the same path with no
subscriber attached, so the two statements are a larger share of what is timed), and the cost of
one speaker window (the real ``Room._watch_speakers`` loop over N + 1 stand-in participants),
both turned into a share of the CPU per forwarded packet. Progress goes to stderr.

    python -m bench.forward_cost                     # N=64, 200 groups (about a minute)
    python -m bench.forward_cost --groups 12 --n 8   # a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import inspect
import itertools
import json
import os
import random
import socket
import statistics
import sys
import time
from dataclasses import dataclass
from importlib.metadata import version
from types import CodeType, FunctionType, SimpleNamespace
from typing import Any, cast

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpTransceiver,
)
from aiortc.rtp import RtpPacket
from av.frame import Frame

import media.rooms
from media import forwarding
from media.fanout import forward as c_forward
from media.forwarding import (
    ForwardingStats,
    TrackForwarder,
    add_forwarding_transceiver,
    tap_publisher,
)
from media.ice import drop_empty_datagrams, skip_stun_parsing_for_media
from media.ingress import Ingress
from media.rooms import Room
from media.speakers import WINDOW_SECONDS, ActiveSpeaker

#: The function the variants swap the code of.
_FORWARD = cast(FunctionType, vars(TrackForwarder)["_forward"])

#: What the speaker detection added per packet (commit abc5b51), as lines of ``_forward``.
LEVEL_SUMS = ("self._loudness += 127 - level[1]", "self._loud_packets += 1")
#: The 5% bound of issue #14 on the increase of CPU per forwarded packet at N=64.
BOUND = 1.05
#: The variants, each a code object for ``TrackForwarder._forward`` (see the module docstring).
VARIANTS = ("shipped", "no_level_sums", "shipped_copy")

NO_ICE_SERVERS = RTCConfiguration(iceServers=[])
#: aiortc's VP8 payloader: packets of at most this many payload bytes, descriptor included.
VP8_PACKET_MAX = 1300
VP8_DESCRIPTOR = 4  # X=1, I=1 with a 15-bit picture id: as aiortc writes it
VIDEO_CLOCK = 90000
AUDIO_CLOCK = 48000
#: Client sockets hold a whole sample's copies until read (the kernel doubles the value).
SINK_RCVBUF = 2 * 1024 * 1024


def _progress(message: str) -> None:
    print(f"[forward_cost] {message}", file=sys.stderr, flush=True)


def _emit(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


# -- the two variants ----------------------------------------------------------------------------


def _compile_forward(drop: tuple[str, ...]) -> tuple[CodeType, int]:
    """``TrackForwarder._forward``'s code, compiled anew from media/forwarding.py.

    The whole file is compiled, as Python compiles the module (the compiler's choices depend on
    the names around a function: ``fanout.forward`` is not called as a method because ``fanout``
    is an import), with the lines in ``drop`` removed from ``_forward`` only. Returns the code
    and how many lines were removed.
    """
    path = inspect.getsourcefile(forwarding)
    assert path is not None
    with open(path) as file:
        lines = file.readlines()
    body, first = inspect.getsourcelines(TrackForwarder._forward)
    start, end = first - 1, first - 1 + len(body)
    kept = [line for line in lines[start:end] if line.strip() not in drop]
    source = "".join(lines[:start] + kept + lines[end:])
    module = compile(source, path, "exec", dont_inherit=True)
    (cls,) = (
        c for c in module.co_consts if isinstance(c, CodeType) and c.co_name == "TrackForwarder"
    )
    (code,) = (c for c in cls.co_consts if isinstance(c, CodeType) and c.co_name == "_forward")
    return code, (end - start) - len(kept)


def build_variants() -> dict[str, CodeType]:
    """``_forward``'s code for each variant: ``shipped`` and ``shipped_copy`` (two compilations
    of the file as it is, equal to the module's: checked), ``no_level_sums`` (the same less the
    two lines: checked)."""
    variants: dict[str, CodeType] = {}
    for name in ("shipped", "shipped_copy"):
        code, none_dropped = _compile_forward(())
        assert none_dropped == 0 and code == TrackForwarder._forward.__code__, "not as shipped"
        variants[name] = code
    stripped, dropped = _compile_forward(LEVEL_SUMS)
    assert dropped == len(LEVEL_SUMS), f"{dropped} lines removed, expected {len(LEVEL_SUMS)}"
    variants["no_level_sums"] = stripped
    return variants


# -- connections ---------------------------------------------------------------------------------


class _SilentTrack(MediaStreamTrack):
    """A track that never yields: the publisher's client negotiates but sends no media itself."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    async def recv(self) -> Frame:
        """Wait for ever (cancelled when the sender stops)."""
        await asyncio.get_running_loop().create_future()
        raise AssertionError("unreachable")


async def _connected(*pcs: RTCPeerConnection, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while any(pc.connectionState != "connected" for pc in pcs):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not connected: {[pc.connectionState for pc in pcs]}")
        await asyncio.sleep(0.02)


@dataclass
class Publisher:
    """The publisher's client and the server side tapping it."""

    client: RTCPeerConnection
    server: RTCPeerConnection
    forwarders: dict[str, TrackForwarder]
    senders: dict[str, Any]
    ingress: Ingress


async def start_publisher(stats: ForwardingStats) -> Publisher:
    """A client offering audio and video, answered as ``Room.publish`` does (tapped, ingress)."""
    client = RTCPeerConnection(NO_ICE_SERVERS)
    senders: dict[str, Any] = {}
    for kind in ("audio", "video"):
        transceiver = client.addTransceiver(_SilentTrack(kind), direction="sendonly")
        senders[kind] = transceiver.sender
    await client.setLocalDescription(await client.createOffer())
    server = RTCPeerConnection(NO_ICE_SERVERS)
    await server.setRemoteDescription(client.localDescription)
    drop_empty_datagrams(server)
    forwarders = {
        t.kind: tap_publisher(t.receiver, kind=cast(Any, t.kind), stats=stats)
        for t in server.getTransceivers()
    }
    await server.setLocalDescription(await server.createAnswer())
    skip_stun_parsing_for_media(server)
    await client.setRemoteDescription(server.localDescription)
    await _connected(client, server)
    dtls: Any = server.getTransceivers()[0].receiver.transport
    ingress = getattr(dtls, "_huddle_ingress", None)
    assert isinstance(ingress, Ingress), "skip_stun_parsing_for_media made no ingress"
    return Publisher(client, server, forwarders, senders, ingress)


class Sinks:
    """Subscribers' clients: their sockets are read, their RTP counted and dropped unread."""

    def __init__(self) -> None:
        self.received = 0

    def attach(self, client: RTCPeerConnection) -> None:
        """Wrap every ICE socket of ``client``: RTP is counted, everything else goes on as usual."""
        transport: Any = client.getTransceivers()[0].receiver.transport
        connection: Any = transport.transport._connection  # aioice.Connection (private)
        for protocol in connection._protocols:
            sock = protocol.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SINK_RCVBUF)
            original = protocol.datagram_received

            def datagram_received(
                data: bytes, addr: tuple[str, int], _original: Any = original
            ) -> None:
                # RTP (RFC 7983: first byte 128-191; RTCP packet types are 192-223).
                if data and 127 < data[0] < 192 and not 191 < data[1] < 224:
                    self.received += 1
                else:
                    _original(data, addr)

            protocol.datagram_received = datagram_received


async def start_subscriber(sinks: Sinks) -> tuple[RTCPeerConnection, RTCPeerConnection]:
    """A server connection with a video and an audio forwarding sender, offered to a client."""
    server = RTCPeerConnection(NO_ICE_SERVERS)
    add_forwarding_transceiver(server, "video")
    add_forwarding_transceiver(server, "audio")
    client = RTCPeerConnection(NO_ICE_SERVERS)
    await server.setLocalDescription(await server.createOffer())
    await client.setRemoteDescription(server.localDescription)
    await client.setLocalDescription(await client.createAnswer())
    await server.setRemoteDescription(client.localDescription)
    await _connected(client, server)
    sinks.attach(client)
    return server, client


def _sender(server: RTCPeerConnection, kind: str) -> Any:
    transceiver: RTCRtpTransceiver = next(t for t in server.getTransceivers() if t.kind == kind)
    return transceiver.sender


# -- the synthetic publisher ---------------------------------------------------------------------


@dataclass
class Stream:
    """One of the publisher's RTP streams, as its aiortc sender numbers and extends it."""

    ssrc: int
    payload_type: int
    mid: str
    extensions_map: Any
    seq: int = 1000
    timestamp: int = 0

    def packet(self, payload: bytes, marker: int, level: int | None, send_ntp: int) -> bytes:
        """The next packet, serialized as aiortc's sender does (plain RTP)."""
        packet = RtpPacket(
            payload_type=self.payload_type,
            sequence_number=self.seq,
            timestamp=self.timestamp,
            ssrc=self.ssrc,
            marker=marker,
            payload=payload,
        )
        packet.extensions.mid = self.mid
        packet.extensions.abs_send_time = (send_ntp >> 14) & 0xFFFFFF
        if level is not None:
            packet.extensions.audio_level = (False, level)
        self.seq = (self.seq + 1) & 0xFFFF
        data: bytes = packet.serialize(self.extensions_map)
        return data


def _payload_type(forwarder: TrackForwarder, mime_type: str) -> int:
    codecs = forwarder._codecs  # the publisher's negotiated codecs (private)
    return next(pt for pt, codec in codecs.items() if codec.mimeType.lower() == mime_type)


class SyntheticPublisher:
    """One second of ``bench/sfu.py``'s publisher at a time: VP8 and Opus, SRTP-protected.

    Every second has the same packets (sizes, order, counts; new numbers), so samples differ only
    by when they ran.
    """

    def __init__(self, publisher: Publisher, options: Options) -> None:
        self._srtp: Any = cast(Any, publisher.senders["video"].transport)._tx_srtp
        self.streams: dict[str, Stream] = {}
        for kind, mime in (("video", "video/vp8"), ("audio", "audio/opus")):
            sender: Any = publisher.senders[kind]
            self.streams[kind] = Stream(
                ssrc=sender._ssrc,
                payload_type=_payload_type(publisher.forwarders[kind], mime),
                mid=next(
                    t.mid or "" for t in publisher.client.getTransceivers() if t.sender is sender
                ),
                extensions_map=sender._RTCRtpSender__rtp_header_extensions_map,
            )
        rng = random.Random(options.seed)
        frame_bytes = options.video_kbps * 1000 / 8 / options.fps
        # Frames vary in size as an encoder's do (+-40%), the same ones every second.
        sizes = [round(frame_bytes * rng.uniform(0.6, 1.4)) for _ in range(options.fps)]
        events = [(i / options.fps, "video", i) for i in range(options.fps)]
        events += [(i / options.audio_pps, "audio", i) for i in range(options.audio_pps)]
        self._events = sorted(events)
        self._frame_sizes = sizes
        self._noise = rng.randbytes(VP8_PACKET_MAX)
        self._audio = rng.randbytes(options.audio_bytes)
        self._fps = options.fps
        self._audio_pps = options.audio_pps
        self._picture_id = 0
        self._seconds = 0
        self.video_packets = sum(-(-size // (VP8_PACKET_MAX - VP8_DESCRIPTOR)) for size in sizes)
        self.audio_packets = options.audio_pps

    def _frame(self, size: int, keyframe: bool, send_ntp: int) -> list[bytes]:
        """One VP8 frame in packets, as aiortc's payloader cuts it."""
        stream = self.streams["video"]
        pid = self._picture_id
        self._picture_id = (pid + 1) & 0x7FFF
        chunk = VP8_PACKET_MAX - VP8_DESCRIPTOR
        count = -(-size // chunk)
        packets = []
        for i in range(count):
            data = self._noise[: min(chunk, size - i * chunk)]
            if i == 0:
                # VP8 payload header: bit 0 is P, the inverse key frame flag.
                data = bytes([0x10 if keyframe else 0x11]) + data[1:]
            head = bytes([0x90 if i == 0 else 0x80, 0x80, 0x80 | (pid >> 8), pid & 0xFF])
            packets.append(stream.packet(head + data, int(i == count - 1), None, send_ntp))
        stream.timestamp = (stream.timestamp + VIDEO_CLOCK // self._fps) & 0xFFFFFFFF
        return packets

    def second(self, keyframe_first: bool = False) -> list[bytes]:
        """The next second of traffic in sending order, SRTP-protected as the client would."""
        plain: list[bytes] = []
        audio = self.streams["audio"]
        base = self._seconds
        self._seconds += 1
        for at, kind, index in self._events:
            ntp = round((base + at) * 2**32)
            if kind == "video":
                keyframe = keyframe_first and index == 0
                plain += self._frame(self._frame_sizes[index], keyframe, ntp)
            else:
                level = 10 + index % 5  # a voice near -12 dBov, as the bench's 500 Hz tone
                plain.append(audio.packet(self._audio, 0, level, ntp))
                audio.timestamp = (audio.timestamp + AUDIO_CLOCK // self._audio_pps) & 0xFFFFFFFF
        protect = self._srtp.protect
        return [protect(data) for data in plain]

    def audio_only(self, count: int, extensions_map: Any) -> list[RtpPacket]:
        """``count`` audio packets, already parsed with the server's map (for the isolated test)."""
        audio = self.streams["audio"]
        packets = []
        for index in range(count):
            data = audio.packet(self._audio, 0, 10 + index % 5, 0)
            audio.timestamp = (audio.timestamp + AUDIO_CLOCK // self._audio_pps) & 0xFFFFFFFF
            packets.append(RtpPacket.parse(data, extensions_map))
        return packets


# -- measuring -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """The command line."""

    n: int
    groups: int
    video_kbps: int
    fps: int
    audio_pps: int
    audio_bytes: int
    isolated_packets: int
    windows: int
    bootstrap: int
    seed: int
    core: int | None


class Bench:
    """The connections, the variants, and one sample at a time."""

    def __init__(
        self,
        options: Options,
        publisher: Publisher,
        sinks: Sinks,
        stats: ForwardingStats,
        variants: dict[str, CodeType],
    ) -> None:
        self.options = options
        self.publisher = publisher
        self.sinks = sinks
        self.stats = stats
        self.variants = variants
        self.source = SyntheticPublisher(publisher, options)
        self.lost = 0

    def use(self, variant: str) -> None:
        """Make the forwarders run ``variant``'s ``_forward``.

        The function keeps its identity and the class is not modified (which would invalidate
        every specialization keyed on it); each code object keeps its own warm specializations.
        Only the call site in ``_take`` re-specializes after a switch (the function's version
        changes), alike for every variant.
        """
        _FORWARD.__code__ = self.variants[variant]

    async def drain(self) -> None:
        """Let the event loop run until the clients read every copy sent and the ingress's queue
        is empty (RTCP goes through it), so that each sample starts from a quiet loop."""
        # What the room does every 250 ms: the sums start again from 0 (as they grow, their ints
        # would cost more than in a room, where a window's sums stay small).
        self.publisher.forwarders["audio"].take_loudness()
        queue = self.publisher.ingress._queue
        deadline = time.monotonic() + 10
        while True:
            for _ in range(3):
                await asyncio.sleep(0)  # timers and tasks the sample left (REMB, RTCP)
            # Checked last: from here to the timed part the loop does not run, so nothing can
            # queue a datagram (with one queued, the ingress would leave every packet to
            # aiortc's path, to keep them in order).
            target = self.stats.packets_forwarded
            if self.sinks.received >= target and not queue.qsize():
                return
            if time.monotonic() > deadline:
                break
        if self.sinks.received < target:
            self.lost += target - self.sinks.received
            self.sinks.received = target

    async def sample(self, variant: str, keyframe_first: bool = False) -> dict[str, int]:
        """One second of publisher traffic through ``variant``: CPU ns and copies sent."""
        self.use(variant)
        datagrams = self.source.second(keyframe_first)
        await self.drain()
        stats = self.stats
        forwarded, dropped = stats.packets_forwarded, stats.packets_dropped
        taken = self.publisher.ingress.packets
        receive = self.publisher.ingress.receive
        start = time.thread_time_ns()
        for data in datagrams:
            receive(data, 1)
        elapsed = time.thread_time_ns() - start
        return {
            "ns": elapsed,
            "copies": stats.packets_forwarded - forwarded,
            "dropped": stats.packets_dropped - dropped,
            "taken": self.publisher.ingress.packets - taken,
            "datagrams": len(datagrams),
        }

    async def isolated(self, variant: str) -> float:
        """ns per audio packet through the same path with no subscriber attached.

        The forwarder returns right after the level (and the sums), before the fan-out, so the
        two variants differ by the two statements against a far smaller total.
        """
        self.use(variant)
        forwarder = self.publisher.forwarders["audio"]
        dtls: Any = self.publisher.server.getTransceivers()[0].receiver.transport
        packets = self.source.audio_only(
            self.options.isolated_packets, dtls._rtp_header_extensions_map
        )
        await self.drain()
        active = forwarder._active
        forwarder._set_active(())  # detached for the sample only (private: restored below)
        try:
            receive = forwarder.receive_rtp
            arrival = int(time.time() * 1000)
            start = time.thread_time_ns()
            for packet in packets:
                receive(packet, arrival)
            elapsed = time.thread_time_ns() - start
        finally:
            forwarder._set_active(active)
        return elapsed / len(packets)


def speaker_window_us(bench: Bench, n: int, windows: int) -> float:
    """CPU us of one window of the real ``Room._watch_speakers`` loop over N + 1 participants.

    Stand-ins for the room and its participants (the loop reads ``published``, ``audio``,
    ``may_speak``, ``id``); the publisher's is the real audio forwarder, which gets a window's
    worth of levels (12 packets) before each window. The window's sleep is made 0 for the
    measurement, so each step of the coroutine is one window.
    """
    forwarder = bench.publisher.forwarders["audio"]
    participants = {
        f"p{i}": SimpleNamespace(
            id=f"p{i}", published={"audio": forwarder} if i == 0 else {}, audio=True, may_speak=True
        )
        for i in range(n + 1)
    }
    told: list[Any] = []
    room = SimpleNamespace(
        participants=participants,
        _ending=False,
        speakers=ActiveSpeaker(),
        tell_everyone=told.append,
        _speaker_watch=None,
    )
    room._speaker_message = lambda: Room._speaker_message(cast(Any, room))
    media.rooms.WINDOW_SECONDS = 0  # type: ignore[attr-defined]
    watch = Room._watch_speakers(cast(Any, room))
    try:
        watch.send(None)  # up to the first (now zero) sleep
        elapsed = 0
        for i in range(windows):
            # A window's audio: what the forwarder's sums hold when the room looks.
            forwarder._loudness, forwarder._loud_packets = 12 * (117 - i % 5), 12
            start = time.thread_time_ns()
            watch.send(None)
            elapsed += time.thread_time_ns() - start
    finally:
        watch.close()
        media.rooms.WINDOW_SECONDS = WINDOW_SECONDS  # type: ignore[attr-defined]
    return elapsed / windows / 1000


# -- statistics ----------------------------------------------------------------------------------


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def bootstrap_ratio(
    a: list[float], b: list[float], rounds: int, rng: random.Random
) -> tuple[float, float]:
    """95% interval of median(a) / median(b), resampling groups (a[i], b[i]) with replacement."""
    indices = range(len(a))
    ratios = []
    for _ in range(rounds):
        chosen = rng.choices(indices, k=len(a))
        ratios.append(
            statistics.median(a[i] for i in chosen) / statistics.median(b[i] for i in chosen)
        )
    return _quantile(ratios, 0.025), _quantile(ratios, 0.975)


def _cpu_busy() -> tuple[dict[str, float], float]:
    """Busy seconds per CPU (``/proc/stat``: all but idle and iowait) and this process's CPU s."""
    busy: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as stat:
        for line in stat:
            if line.startswith("cpu"):
                name, *fields = line.split()
                values = [int(v) for v in fields[:8]]
                busy[name] = (sum(values) - values[3] - values[4]) / tick
    times = os.times()
    return busy, times.user + times.system


def _others_pct(
    before: tuple[dict[str, float], float], after: tuple[dict[str, float], float], wall: float
) -> dict[str, float]:
    """What other processes used meanwhile: % of the machine's cores, and of ours if pinned."""
    ours = after[1] - before[1]
    cores = len(before[0]) - 1
    total = after[0]["cpu"] - before[0]["cpu"]
    line = {"others_cpu_pct_of_machine": round(100 * max(0.0, total - ours) / wall / cores, 1)}
    pinned = sorted(os.sched_getaffinity(0))
    if len(pinned) == 1:
        name = f"cpu{pinned[0]}"
        core = after[0][name] - before[0][name]
        line["others_on_our_core_pct"] = round(100 * max(0.0, core - ours) / wall, 1)
    return line


# -- the run -------------------------------------------------------------------------------------


async def run(options: Options) -> int:
    """Connect, warm up, measure the groups and the finer checks; print the JSON lines."""
    if c_forward is None:
        _progress("warning: media._fanout is not built (or HUDDLE_FANOUT=python): Python fan-out")
    variants = build_variants()
    shipped_code = _FORWARD.__code__
    stats = ForwardingStats()
    started = time.monotonic()
    publisher = await start_publisher(stats)
    sinks = Sinks()
    subscribers: list[tuple[RTCPeerConnection, RTCPeerConnection]] = []
    while len(subscribers) < options.n:
        batch = min(8, options.n - len(subscribers))
        subscribers += await asyncio.gather(*(start_subscriber(sinks) for _ in range(batch)))
    for server, _ in subscribers:
        publisher.forwarders["video"].add_subscriber(_sender(server, "video"))
        publisher.forwarders["audio"].add_subscriber(_sender(server, "audio"))
    _progress(f"{options.n} subscribers connected in {time.monotonic() - started:.0f} s")
    bench = Bench(options, publisher, sinks, stats, variants)
    try:
        # Warm-up: a keyframe starts the video subscribers; the first copies go through Python
        # and lend the C lanes their wires; then both variants' code warms up.
        await bench.sample("shipped", keyframe_first=True)
        for forwarder in publisher.forwarders.values():
            active = len(forwarder._active)
            assert active == options.n, f"{forwarder.kind}: {active} of {options.n} started"
        for variant in VARIANTS * 2:
            await bench.sample(variant)
        # As `huddle serve` and bench/serve.py do after start-up.
        gc.collect()
        gc.freeze()
        bench.lost = 0

        # Each group: one sample of every variant, in the six orders in turn (ABC ACB BAC ...),
        # so that drift and position in the group fall on all alike.
        orders = list(itertools.permutations(VARIANTS))
        per_copy: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        counts: dict[str, int] = {}
        before, wall_start = _cpu_busy(), time.monotonic()
        for group in range(options.groups):
            for variant in orders[group % len(orders)]:
                result = await bench.sample(variant)
                expected = result["datagrams"] * options.n
                assert result["taken"] == result["datagrams"], result
                assert result["copies"] == expected and result["dropped"] == 0, result
                per_copy[variant].append(result["ns"] / result["copies"] / 1000)
                counts = result
            if (group + 1) % 50 == 0:
                _progress(f"{group + 1} of {options.groups} groups")
        await bench.drain()
        others = _others_pct(before, _cpu_busy(), time.monotonic() - wall_start)

        isolated: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        for group in range(options.groups):
            for variant in orders[group % len(orders)]:
                isolated[variant].append(await bench.isolated(variant))
        window_us = speaker_window_us(bench, options.n, options.windows)
    finally:
        _FORWARD.__code__ = shipped_code
        for server, client in subscribers:
            await client.close()
            await server.close()
        for forwarder in publisher.forwarders.values():
            forwarder.close()
        await publisher.client.close()
        await publisher.server.close()

    common = {
        "bench": "forward_cost",
        "n": options.n,
        "python": sys.version.split()[0],
        "aiortc": version("aiortc"),
        "fanout": "c" if c_forward is not None else "python",
    }
    source = bench.source
    for variant in VARIANTS:
        values = per_copy[variant]
        _emit(
            {
                **common,
                "variant": variant,
                "samples": len(values),
                "publisher_packets_per_sample": counts["datagrams"],
                "audio_packets_per_sample": source.audio_packets,
                "video_packets_per_sample": source.video_packets,
                "copies_per_sample": counts["copies"],
                "us_per_fwd_packet_median": round(statistics.median(values), 4),
                "us_per_fwd_packet_p25": round(_quantile(values, 0.25), 4),
                "us_per_fwd_packet_p75": round(_quantile(values, 0.75), 4),
                "us_per_fwd_packet_min": round(min(values), 4),
                "us_per_fwd_packet_max": round(max(values), 4),
            }
        )
    rng = random.Random(options.seed)
    # The result, then the control: two identical codes, whose ratio shows what this bench
    # tells apart at all.
    for variant, baseline in (("shipped", "no_level_sums"), ("shipped_copy", "shipped")):
        a, b = per_copy[variant], per_copy[baseline]
        low, high = bootstrap_ratio(a, b, options.bootstrap, rng)
        line = {
            **common,
            "result": "ratio" if baseline == "no_level_sums" else "control_ratio",
            "variant": variant,
            "baseline": baseline,
            "ratio_of_medians": round(statistics.median(a) / statistics.median(b), 4),
            "ratio_bootstrap_95": [round(low, 4), round(high, 4)],
            "ratio_of_mins": round(min(a) / min(b), 4),
            "group_ratio_median": round(
                statistics.median(x / y for x, y in zip(a, b, strict=True)), 4
            ),
        }
        if baseline == "no_level_sums":
            line |= {"bound": BOUND, "within_bound": high <= BOUND, "lost_copies": bench.lost}
            line |= others
        _emit(line)
    baseline_us = statistics.median(per_copy["no_level_sums"])
    ns = {variant: statistics.median(isolated[variant]) for variant in VARIANTS}
    added_ns = ns["shipped"] - ns["no_level_sums"]
    # The added ns per audio packet, spread over every copy forwarded (N per publisher packet).
    copies_per_audio = (
        options.n * (source.audio_packets + source.video_packets) / source.audio_packets
    )
    _emit(
        {
            **common,
            "result": "level_sums_isolated",
            "samples": len(isolated["shipped"]),
            "audio_packets_per_sample": options.isolated_packets,
            **{f"{variant}_ns_per_audio_packet": round(ns[variant], 1) for variant in VARIANTS},
            "added_ns_per_audio_packet": round(added_ns, 1),
            "added_share_of_us_per_fwd_packet": round(
                added_ns / copies_per_audio / (1000 * baseline_us), 6
            ),
        }
    )
    windows_per_s = 1 / WINDOW_SECONDS
    copies_per_s = options.n * (source.audio_packets + source.video_packets)
    _emit(
        {
            **common,
            "result": "speaker_windows",
            "participants": options.n + 1,
            "windows": options.windows,
            "us_per_window": round(window_us, 2),
            "ns_per_fwd_packet": round(1000 * window_us * windows_per_s / copies_per_s, 3),
            "share_of_us_per_fwd_packet": round(
                window_us * windows_per_s / copies_per_s / baseline_us, 6
            ),
        }
    )
    if bench.lost:
        _progress(f"warning: {bench.lost} copies never reached the clients (kernel drops?)")
    _progress(f"done in {time.monotonic() - started:.0f} s")
    return 0


def parse_options(argv: list[str] | None = None) -> Options:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--n", type=int, default=64, help="subscribers (64)")
    parser.add_argument(
        "--groups", type=int, default=200, help="sample groups, one sample per variant (200)"
    )
    parser.add_argument("--video-kbps", type=int, default=1100, help="publisher VP8 (1100)")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--audio-pps", type=int, default=50, help="Opus packets/s (50)")
    parser.add_argument(
        "--audio-bytes", type=int, default=240, help="Opus payload (240: aiortc's 96 kbit/s)"
    )
    parser.add_argument(
        "--isolated-packets", type=int, default=5000, help="audio packets per isolated sample"
    )
    parser.add_argument("--windows", type=int, default=2000, help="speaker windows timed")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--core", type=int, help="pin this process (and its threads) to one CPU")
    args = parser.parse_args(argv)
    return Options(
        n=args.n,
        groups=args.groups,
        video_kbps=args.video_kbps,
        fps=args.fps,
        audio_pps=args.audio_pps,
        audio_bytes=args.audio_bytes,
        isolated_packets=args.isolated_packets,
        windows=args.windows,
        bootstrap=args.bootstrap,
        seed=args.seed,
        core=args.core,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the bench; exit status 0."""
    options = parse_options(argv)
    if options.core is not None:
        # First thing: aiortc's threads started later inherit the pinning.
        os.sched_setaffinity(0, {options.core})
    return asyncio.run(run(options))


if __name__ == "__main__":
    sys.exit(main())

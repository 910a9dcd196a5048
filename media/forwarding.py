"""The selective forwarding unit's data path: RTP from each publisher to its subscribers, as is.

Nothing is decoded or encoded on the server. A publisher's packets are tapped where aiortc's
receiver would start depacketizing them, and copied to every subscriber's sender with that sender's
SSRC, payload type, sequence numbers, timestamps and header extensions. aiortc keeps doing what it
does well around that: SRTP, RTCP receiver and sender reports, NACK generation towards publishers,
and answering subscribers' NACKs with RTX from the sender's history.

This leans on aiortc 1.16 internals (pinned exactly in pyproject.toml; each one has a test in
``tests/media/test_aiortc_internals.py``):

- ingress: a tapped receiver's ``receive()`` is replaced by one that registers it with the
  transport and starts its RTCP loop but starts no decoder thread, and its ``_handle_rtp_packet``
  by :meth:`TrackForwarder._on_rtp`, which keeps aiortc's RTCP statistics, REMB estimate, RTX
  unwrapping and NACK generation, then forwards;
- egress: a forwarding sender holds a track that never yields (aiortc's send loop sleeps on it: no
  encoder, no 20 ms polling of a sender without a track); packets are built from a per-sender
  header template, encrypted with the DTLS transport's SRTP session and sent on the nominated ICE
  pair: all copies of a packet in one call to the C fan-out (:mod:`media.fanout`), or one by one
  through the connection's :class:`media.wire.Wire` where a lane cannot (yet); either way without
  a coroutine per copy, counted on the sender's lane for sender reports and statistics; a NACKed
  packet is put into the sender's RTP history from the forwarder's one copy of the publisher's
  recent packets, and aiortc's ``_retransmit`` resends it;
- reports: a forwarding sender's RTCP task is replaced by one that registers it with the event
  loop's :class:`media.reports.ReportClock`, which sends its SR + SDES on aiortc's schedule from
  aiortc's own counters;
- keyframes: a subscriber's PLI/FIR reaches the sender's ``_send_keyframe``, which is redirected to
  the publisher as a rate-limited PLI (:mod:`media.keyframes`).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, cast

from aiortc import (
    MediaStreamTrack,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
)
from aiortc.codecs import is_rtx
from aiortc.rate import RemoteBitrateEstimator
from aiortc.rtcpeerconnection import is_codec_compatible
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpReceiveParameters,
    RTCRtpSendParameters,
)
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtcrtpsender import random_sequence_number
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTP_HISTORY_SIZE,
    HeaderExtensions,
    HeaderExtensionsMap,
    RtcpByePacket,
    RtcpPsfbPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
    unwrap_rtx,
)
from aiortc.utils import random32
from av.frame import Frame

from media import fanout, vp8
from media.keyframes import KeyframeRequests, KeyframeStartTest, keyframe_start_test
from media.nacks import RETRY_SECONDS, MissingPackets
from media.reports import ReportClock
from media.wire import MAX_PLAIN_RTP, Wire

__all__ = [
    "ForwardingStats",
    "MediaKind",
    "TrackForwarder",
    "add_forwarding_transceiver",
    "forwarder_of",
    "forwarding_source",
    "tap_publisher",
]

logger = logging.getLogger(__name__)

MediaKind = Literal["audio", "video"]

MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

_NTP_UNIX_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01
_ONE_BYTE_PROFILE = 0xBEDE  # RFC 8285 one-byte header extensions
_RTP_V2_WITH_EXTENSION = 0x90

#: A forwarded packet's CSRC list (aiortc serializes it): always empty, shared by every slot.
_NO_CSRC: list[int] = []

#: The attribute under which a forwarding sender keeps its egress state.
_EGRESS_ATTR = "_huddle_egress"
#: The attribute under which a tapped receiver keeps its forwarder.
_TAP_ATTR = "_huddle_forwarder"


@dataclass(slots=True)
class ForwardingStats:
    """Counters for one media server, shared by all its forwarders; plain ints, cheap to bump.

    Each copy of a packet sent to a subscriber counts once in ``packets_forwarded``.
    """

    #: RTP packets tapped from publishers (retransmissions unwrapped), and their payload bytes.
    packets_received: int = 0
    bytes_received: int = 0
    #: RTP packets sent to subscribers, and their RTP bytes (header and payload, before SRTP).
    packets_forwarded: int = 0
    bytes_forwarded: int = 0
    #: Copies not sent: unknown payload type, codec not negotiated by the subscriber, sender
    #: disabled, stopped or not connected.
    packets_dropped: int = 0
    #: PLI/FIR received from subscribers, and PLIs sent to publishers.
    keyframe_requests_received: int = 0
    keyframe_requests_sent: int = 0
    #: Keyframes seen starting in publishers' video.
    keyframes_received: int = 0
    #: Sequence numbers subscribers asked for (NACK), and how many were resent from the history.
    nacks_received: int = 0
    retransmits: int = 0
    #: Simulcast: switches of a subscriber from one layer to another, and the bytes of the
    #: largest layer not sent to subscribers who get a smaller one or none.
    layer_switches: int = 0
    bytes_saved: int = 0


class _SentPacket:
    """One slot of a forwarding sender's RTP history, filled in place when a subscriber NACKs.

    aiortc's ``RTCRtpSender._retransmit`` reads these attributes (through ``wrap_rtx`` or
    ``serialize``). The fan-out writes no history per copy: the forwarder keeps the publisher's
    packets once, and a NACKed one is rewritten for this sender into its slot just before aiortc
    looks it up.
    """

    __slots__ = (
        "csrc",
        "extensions",
        "marker",
        "padding_size",
        "payload",
        "payload_type",
        "sequence_number",
        "ssrc",
        "timestamp",
        "version",
    )

    def __init__(self, ssrc: int, extensions: HeaderExtensions) -> None:
        self.version = 2
        self.marker = 0
        self.payload_type = 0
        self.sequence_number = -1  # matches no sequence number until written
        self.timestamp = 0
        self.ssrc = ssrc
        self.csrc = _NO_CSRC
        self.extensions = extensions
        self.payload = b""
        self.padding_size = 0

    def serialize(self, extensions_map: HeaderExtensionsMap) -> bytes:
        """Serialize as aiortc would (used to retransmit when RTX was not negotiated)."""
        return RtpPacket.serialize(cast(RtpPacket, self), extensions_map)


class _ForwardingTrack(MediaStreamTrack):
    """The track of a forwarding sender: it never yields a frame.

    aiortc's sender loop then waits on it forever: it creates no encoder and does not poll every
    20 ms as it does for a sender without a track.
    """

    def __init__(self, kind: MediaKind) -> None:
        super().__init__()
        self.kind = kind

    async def recv(self) -> Frame:
        """Wait until the sender stops (the wait is cancelled then)."""
        await asyncio.get_running_loop().create_future()
        raise AssertionError("unreachable: nothing completes this future")


class _SenderEgress:
    """What a forwarding sender needs to send someone else's RTP as its own.

    It outlives any one publisher: when the sender is reused, sequence numbers and timestamps
    continue from here.
    """

    __slots__ = (
        "_aiortc_get_stats",
        "_aiortc_retransmit",
        "_aiortc_run_rtcp",
        "_aiortc_send",
        "_aiortc_stop",
        "_flushed",
        "binding",
        "codecs",
        "ext_words",
        "extensions",
        "header",
        "kind",
        "lane",
        "mid_block",
        "pending",
        "ring",
        "rtx_payload_types",
        "send_rtp",
        "sender",
        "ssrc",
        "stats",
        "wire",
        "word_hi",
    )

    def __init__(self, sender: RTCRtpSender, kind: MediaKind) -> None:
        self.sender: Any = cast(Any, sender)
        self.kind = kind
        self.ssrc: int = sender._ssrc
        self.binding: _Binding | None = None
        #: A seamless switch under way: the binding that takes over at its first keyframe.
        self.pending: _Binding | None = None
        self.stats = ForwardingStats()  # replaced by the forwarder's on binding
        self.codecs: list[RTCRtpCodecParameters] = []
        self.rtx_payload_types: dict[int, int] = {}
        #: What the fan-out keeps and counts for this sender (in C when built).
        self.lane: Any = fanout.new_lane(sender)
        self._flushed = (0, 0)
        self.send_rtp: Any = None
        self.wire: Wire | None = None
        self.header = struct.Struct("!BBHIIHHI")
        self.mid_block = b""
        self.ext_words = 1
        self.word_hi = 0
        # aiortc's _retransmit looks packets up in this dict by sequence number modulo its size.
        # Its slots are made when a NACK first needs one (a sender nobody NACKs keeps none:
        # 128 objects per sender held for nothing would be most of what the collector walks).
        self.ring: dict[int, _SentPacket] = self.sender._RTCRtpSender__rtp_history
        self.ring.clear()
        self.extensions = HeaderExtensions()

        self._aiortc_send = sender.send
        self._aiortc_stop = sender.stop
        self._aiortc_retransmit = self.sender._retransmit
        self._aiortc_run_rtcp = self.sender._run_rtcp
        self._aiortc_get_stats = sender.getStats
        self.sender._run_rtcp = self._run_rtcp
        self.sender.getStats = self._get_stats
        self.sender.send = self._send
        self.sender.stop = self._stop
        self.sender._retransmit = self._retransmit
        self.sender._send_keyframe = self._keyframe_requested
        setattr(sender, _EGRESS_ATTR, self)

    async def _send(self, parameters: RTCRtpSendParameters) -> None:
        # aiortc calls send() after every negotiation; its own send() only acts the first time,
        # but the negotiated payload types, extension ids and transport are re-read each time.
        await self._aiortc_send(parameters)
        self._configure(parameters)
        binding = self.binding
        if binding is not None:
            binding.forwarder._egress_ready(binding)
        pending = self.pending
        if pending is not None:
            pending.forwarder._egress_ready(pending)  # its keyframe is asked for now

    async def _stop(self) -> None:
        self.lane.ready = 0
        self.lane.drop()
        await self._aiortc_stop()

    @property
    def ready(self) -> bool:
        """Negotiated (send() ran) and not stopped: the lane's flag, which the C fan-out reads."""
        return bool(self.lane.ready)

    @property
    def seq(self) -> int | None:
        """Highest sequence number sent; None until the first packet."""
        seq: int = self.lane.seq
        return None if seq < 0 else seq

    def flush_counters(self) -> None:
        """Copy what the lane counted into aiortc's sender and transport counters.

        aiortc's getStats() and sender reports read those; the fan-out counts on the lane.
        """
        lane = self.lane
        sender = self.sender
        sender._RTCRtpSender__packet_count = lane.packets
        sender._RTCRtpSender__octet_count = lane.octets
        sender._RTCRtpSender__rtp_timestamp = lane.rtp_timestamp
        sender._RTCRtpSender__ntp_timestamp = lane.ntp
        # Datagrams the C fan-out sent went past the transport's own counters: add them.
        packets, octets = lane.wire_packets, lane.wire_bytes
        flushed_packets, flushed_bytes = self._flushed
        if packets != flushed_packets:
            dtls = sender.transport
            dtls._RTCDtlsTransport__tx_packets += packets - flushed_packets
            dtls._RTCDtlsTransport__tx_bytes += octets - flushed_bytes
            self._flushed = (packets, octets)

    async def _get_stats(self) -> Any:
        self.flush_counters()
        return await self._aiortc_get_stats()

    async def _retransmit(self, sequence_number: int) -> None:
        stats = self.stats
        stats.nacks_received += 1
        binding = self.binding
        if binding is not None:
            binding.forwarder._recall(binding, sequence_number)
        slot = self.ring.get(sequence_number % RTP_HISTORY_SIZE)
        if slot is not None and slot.sequence_number == sequence_number:
            stats.retransmits += 1
        await self._aiortc_retransmit(sequence_number)

    async def _run_rtcp(self) -> None:
        """Replaces aiortc's per-sender RTCP task: reports come from the shared clock."""
        sender = self.sender
        transport = sender.transport
        if "_send_rtp" in vars(transport):
            await self._aiortc_run_rtcp()  # an instrumented transport (tests): aiortc's own loop
            return
        sender._RTCRtpSender__rtcp_started.set()
        clock = ReportClock.current()
        clock.add(self)
        try:
            await asyncio.get_running_loop().create_future()  # until stop() cancels it
        except asyncio.CancelledError:
            pass
        finally:
            clock.remove(self)
        await sender._send_rtcp([RtcpByePacket(sources=[self.ssrc])])
        sender._RTCRtpSender__rtcp_exited.set()

    def send_report(self) -> None:
        """Send this sender's RTCP SR + SDES now, as aiortc's RTCP task would."""
        self.flush_counters()
        sender = self.sender
        ntp: int = sender._RTCRtpSender__ntp_timestamp
        packets: list[RtcpSrPacket | RtcpSdesPacket] = [
            RtcpSrPacket(
                ssrc=self.ssrc,
                sender_info=RtcpSenderInfo(
                    ntp_timestamp=ntp,
                    rtp_timestamp=sender._RTCRtpSender__rtp_timestamp,
                    packet_count=sender._RTCRtpSender__packet_count & 0xFFFFFFFF,
                    octet_count=sender._RTCRtpSender__octet_count & 0xFFFFFFFF,
                ),
            )
        ]
        # What aiortc keeps to turn the subscriber's next receiver report into a round-trip time.
        sender._RTCRtpSender__lsr = (ntp >> 16) & 0xFFFFFFFF
        sender._RTCRtpSender__lsr_time = time.time()
        cname: str | None = sender._RTCRtpSender__cname
        if cname is not None:
            packets.append(
                RtcpSdesPacket(
                    chunks=[RtcpSourceInfo(ssrc=self.ssrc, items=[(1, cname.encode("utf8"))])]
                )
            )
        Wire.of(sender.transport).send_rtcp(b"".join(bytes(packet) for packet in packets))

    def _keyframe_requested(self) -> None:
        self.stats.keyframe_requests_received += 1
        binding = self.binding
        if binding is not None:
            binding.forwarder._subscriber_requested_keyframe(binding)

    def _configure(self, parameters: RTCRtpSendParameters) -> None:
        self.codecs = [codec for codec in parameters.codecs if not is_rtx(codec)]
        self.rtx_payload_types = {}
        for codec in parameters.codecs:
            apt = codec.parameters.get("apt")
            if is_rtx(codec) and isinstance(apt, int) and codec.payloadType is not None:
                self.rtx_payload_types[apt] = codec.payloadType

        # Layout after the 12-byte header: one-byte extension header, one word holding
        # abs-send-time (video) or the audio level (audio) or padding, then the mid padded to a
        # word. Fixed per sender, so a packet is one struct pack plus the payload.
        ids = {ext.uri: ext.id for ext in parameters.headerExtensions}
        if self.kind == "video":
            word_id, word_length = ids.get(ABS_SEND_TIME_URI), 3
        else:
            word_id, word_length = ids.get(AUDIO_LEVEL_URI), 1
        self.word_hi = 0
        if word_id is not None and 1 <= word_id <= 14:
            self.word_hi = ((word_id << 4) | (word_length - 1)) << 24
        mid_block = b""
        mid_id = ids.get(MID_URI)
        mid = parameters.muxId.encode()
        if mid_id is not None and 1 <= mid_id <= 14 and 1 <= len(mid) <= 16:
            mid_block = bytes([(mid_id << 4) | (len(mid) - 1)]) + mid
            mid_block += bytes(-len(mid_block) % 4)
        self.mid_block = mid_block
        self.ext_words = 1 + len(mid_block) // 4
        self.header = struct.Struct(f"!BBHIIHHI{len(mid_block)}s")
        self.lane.configure(
            self.header.pack(
                _RTP_V2_WITH_EXTENSION,
                0,
                0,
                0,
                self.ssrc,
                _ONE_BYTE_PROFILE,
                self.ext_words,
                0,
                mid_block,
            ),
            self.word_hi,
        )

        self.extensions = HeaderExtensions(mid=parameters.muxId or None)
        for slot in self.ring.values():
            slot.ssrc = self.ssrc
            slot.extensions = self.extensions
        transport = self.sender.transport
        self.send_rtp = transport._send_rtp
        # A transport whose _send_rtp was replaced on the instance is instrumented (tests
        # capture what would be sent there): respect that and send through it.
        self.wire = None if "_send_rtp" in vars(transport) else Wire.of(transport)
        self.lane.drop()  # the transport may be new: the next copy goes through the wire first
        self.lane.ready = 1


class _Binding:
    """One subscriber's sender attached to one publisher's track."""

    __slots__ = (
        "egress",
        "forwarder",
        "payload_types",
        "pid_offset",
        "replaces",
        "seq_offset",
        "start_seq",
        "tl0_offset",
        "ts_offset",
    )

    def __init__(self, forwarder: TrackForwarder, egress: _SenderEgress) -> None:
        self.forwarder = forwarder
        self.egress = egress
        #: Publisher payload type -> this subscriber's payload type for the same codec.
        self.payload_types: dict[int, int] = {}
        self.seq_offset = 0
        self.ts_offset = 0
        #: VP8 picture ID and TL0PICIDX offsets, so that they continue the sender's last source.
        self.pid_offset = 0
        self.tl0_offset = 0
        #: The publisher's sequence number of the first packet sent; older ones are not sent.
        self.start_seq = 0
        #: The binding (of another forwarder) still sending until this one starts.
        self.replaces: _Binding | None = None

    def sync(self) -> None:
        """Tell the sender's lane (the C fan-out) this binding's offsets and payload types."""
        self.egress.lane.bind(
            self.seq_offset,
            self.ts_offset,
            self.start_seq,
            fanout.payload_type_map(self.payload_types),
            self.pid_offset,
            self.tl0_offset,
        )


def _egress_of(sender: RTCRtpSender) -> _SenderEgress:
    egress = getattr(sender, _EGRESS_ATTR, None)
    if not isinstance(egress, _SenderEgress):
        raise ValueError("not a forwarding sender: create it with add_forwarding_transceiver()")
    return egress


def _ntp_now() -> int:
    return int((time.time() + _NTP_UNIX_OFFSET) * 4294967296.0)


async def _discard_rtp(packet: RtpPacket, arrival_time_ms: int) -> None:
    """Drops RTP of a closed forwarder, which must never reach aiortc's decoding path again."""


class TrackForwarder:
    """Forwards one publisher track (audio or video) to any number of subscribers' senders.

    Created by :func:`tap_publisher`. Subscribers are attached and detached by their sender; video
    subscribers start at a keyframe, audio ones at the next packet.
    """

    def __init__(
        self,
        receiver: RTCRtpReceiver,
        kind: MediaKind,
        stats: ForwardingStats,
        *,
        layer_of: TrackForwarder | None = None,
    ) -> None:
        """``layer_of``: this forwards one simulcast layer of that (tapping) forwarder's
        publisher; it taps nothing itself and is fed by it (:mod:`media.simulcast`)."""
        self.kind: MediaKind = kind
        self.stats = stats
        self._receiver: Any = cast(Any, receiver)
        self._video = kind == "video"
        self._closed = False
        self._bindings: dict[RTCRtpSender, _Binding] = {}
        # A tuple, replaced on change: the fan-out loop iterates it while others may attach.
        self._active: tuple[_Binding, ...] = ()
        #: The active bindings' lanes, in the same order, for the C fan-out (None: Python).
        self._lanes: tuple[Any, ...] | None = () if fanout.forward is not None else None
        self._waiting: list[_Binding] = []
        self._tasks: set[asyncio.Task[None]] = set()
        #: What the packet being received left to await (sends that need a transport's await).
        self._pending: list[Coroutine[Any, Any, None]] = (
            layer_of._pending if layer_of is not None else []
        )

        self._codecs: dict[int, RTCRtpCodecParameters] = {}
        #: Payload types whose packets carry a VP8 descriptor (picture IDs to keep continuous).
        self._vp8: frozenset[int] = frozenset()
        self._rtx_apt: dict[int, int] = {}
        self._rtx_ssrc: dict[int, int] = {}
        self._keyframe_tests: dict[int, KeyframeStartTest | None] = {}
        #: The publisher's last video packets (seq, timestamp, marker, payload, payload type),
        #: by sequence number modulo the size. One history serves every subscriber: a NACK is
        #: mapped back through the subscriber's offsets (:meth:`_recall`), so the fan-out writes
        #: no per-copy history.
        self._history: list[tuple[int, int, int, bytes, int] | None] = [None] * RTP_HISTORY_SIZE
        self._media_ssrc: int | None = None
        self._max_seq: int | None = None
        self._audio_level: tuple[bool, int] | None = None
        #: Loudness (127 - level) summed over the audio packets since :meth:`take_loudness`.
        self._loudness = 0
        self._loud_packets = 0
        self._error_logged = False
        # RTCP receiver reports to the publisher are built by aiortc from these statistics.
        self._streams: dict[int, StreamStatistics] = self._receiver._RTCRtpReceiver__remote_streams
        self._nacks = MissingPackets() if self._video else None
        self._nack_timer: asyncio.TimerHandle | None = None
        self._keyframes = (
            KeyframeRequests(self._send_pli, self._has_waiters) if self._video else None
        )
        #: Called with a binding that took over from one of another forwarder (seamless).
        self.on_switched: Callable[[RTCRtpSender], None] | None = None
        if layer_of is not None:
            # A layer: the tapping forwarder keeps the bandwidth estimate and RTCP statistics.
            self._bitrate = None
            self._learn_codecs(list(layer_of._codecs.values()))
            return
        # One estimate per publisher connection, for all its video (camera, layers, screen):
        # the browser takes each REMB as the whole connection's budget.
        self._bitrate = _shared_estimate(receiver) if self._video else None
        _drop_bitrate_estimator(receiver)  # the forwarder keeps its own (above)

        if self._receiver._RTCRtpReceiver__started:
            self._adopt_running_receiver()
        self._receiver.receive = self._receive
        self._receiver._handle_rtp_packet = self._on_rtp
        setattr(receiver, _TAP_ATTR, self)

    @property
    def receiver(self) -> RTCRtpReceiver:
        """The publisher's receiver this forwarder taps."""
        return cast(RTCRtpReceiver, self._receiver)

    @property
    def subscribers(self) -> list[RTCRtpSender]:
        """The senders currently attached (forwarding, or waiting for a keyframe)."""
        return list(self._bindings)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def audio_level(self) -> tuple[bool, int] | None:
        """The publisher's last ``ssrc-audio-level``: (voice activity, level in -dBov, 0 = loudest).

        ``None`` for video, or until an audio packet carrying the extension arrived.
        """
        return self._audio_level

    def take_loudness(self) -> float | None:
        """Mean loudness (127 - level: 0 is silence) of the audio since the last call; None if
        no packet carried a level meanwhile (video, a silent or stalled publisher)."""
        packets, self._loud_packets = self._loud_packets, 0
        loudness, self._loudness = self._loudness, 0
        return loudness / packets if packets else None

    def add_subscriber(self, sender: RTCRtpSender, *, seamless: bool = False) -> None:
        """Start forwarding to ``sender`` (from :func:`add_forwarding_transceiver`).

        May be called before the sender's connection is negotiated: forwarding starts once it is.
        Video waits for a keyframe, which is requested at once. A sender attached to another
        forwarder is moved here; its sequence numbers, timestamps and VP8 picture IDs continue.
        ``seamless``: the other forwarder goes on sending to it until this one starts (a switch
        of simulcast layer: no frozen picture meanwhile). Does nothing on a closed forwarder.
        """
        egress = _egress_of(sender)
        if egress.kind != self.kind:
            raise ValueError(f"cannot forward {self.kind} to a {egress.kind} sender")
        if self._closed:
            return
        pending = egress.pending
        if pending is not None and pending.forwarder is self:
            return
        current = egress.binding
        if pending is not None:
            pending.forwarder.remove_subscriber(sender)  # a switch elsewhere, called off
        if current is not None:
            if current.forwarder is self:
                return
            if not seamless:
                current.forwarder.remove_subscriber(sender)
                current = None
        binding = _Binding(self, egress)
        if current is not None:
            binding.replaces = current
            egress.pending = binding
        else:
            egress.binding = binding
            egress.stats = self.stats
        self._bindings[sender] = binding
        self._waiting.append(binding)
        if egress.ready and self._keyframes is not None:
            self._keyframes.waiter_added()

    def remove_subscriber(self, sender: RTCRtpSender) -> None:
        """Stop forwarding to ``sender``; it may then be attached to another forwarder."""
        binding = self._bindings.pop(sender, None)
        if binding is None:
            return
        if binding in self._waiting:
            self._waiting.remove(binding)
        else:
            self._set_active(tuple(b for b in self._active if b is not binding))
        if binding.egress.binding is binding:
            binding.egress.binding = None
        if binding.egress.pending is binding:
            binding.egress.pending = None

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe, subject to the same rate limit as subscribers' PLIs."""
        if self._keyframes is not None and not self._closed:
            self._keyframes.subscriber_request()

    def close(self) -> None:
        """The publisher left: detach every subscriber and drop the publisher's packets."""
        if self._closed:
            return
        for sender in list(self._bindings):
            self.remove_subscriber(sender)
        self._closed = True
        if self._keyframes is not None:
            self._keyframes.close()
        if self._nack_timer is not None:
            self._nack_timer.cancel()
            self._nack_timer = None
        self._receiver._handle_rtp_packet = _discard_rtp

    # -- ingress ----------------------------------------------------------------------------

    async def _receive(self, parameters: RTCRtpReceiveParameters) -> None:
        """aiortc's ``RTCRtpReceiver.receive`` without the decoder thread.

        aiortc calls it after every description change, with the payload types of the latest
        one: a server re-offer resets them to aiortc's defaults, and the client goes on using its
        old ones until it has applied the answer. So old payload types stay known (the new ones
        win where they clash) and the router is told about all of them.
        """
        receiver = self._receiver
        started: bool = receiver._RTCRtpReceiver__started
        if started:
            codecs = dict(self._codecs)
            codecs.update(
                (c.payloadType, c) for c in parameters.codecs if c.payloadType is not None
            )
            parameters = RTCRtpReceiveParameters(
                codecs=list(codecs.values()),
                headerExtensions=parameters.headerExtensions,
                muxId=parameters.muxId,
                rtcp=parameters.rtcp,
                encodings=parameters.encodings,
            )
        self._learn_codecs(parameters.codecs)
        for encoding in parameters.encodings:
            if encoding.rtx:
                self._rtx_ssrc[encoding.rtx.ssrc] = encoding.ssrc
        if parameters.encodings:
            ssrc = parameters.encodings[0].ssrc
            if ssrc != self._media_ssrc:
                # Numbering seen so far (if any) belongs to another stream: start over.
                self._source_changed(ssrc)
        transport = receiver.transport
        router = transport._rtp_router
        known: list[int] = []
        if started:
            # Streams no description names (simulcast layers, learnt from their first packets'
            # mid) would be forgotten with the rest: their packets no longer carry the mid.
            known = [ssrc for ssrc, routed in router.ssrc_table.items() if routed is receiver]
            transport._unregister_rtp_receiver(receiver)
        transport._register_rtp_receiver(receiver, parameters)
        for ssrc in known:
            router.ssrc_table.setdefault(ssrc, receiver)
        # aiortc routes retransmissions by payload type alone, which is ambiguous once two
        # receivers of a kind share a connection (a camera and a shared screen): by SSRC, then.
        for encoding in parameters.encodings:
            if encoding.rtx:
                router.ssrc_table[encoding.rtx.ssrc] = receiver
        _route_by_mid(router)
        if not started:
            receiver._RTCRtpReceiver__rtcp_task = asyncio.ensure_future(receiver._run_rtcp())
            receiver._RTCRtpReceiver__started = True

    def _adopt_running_receiver(self) -> None:
        """Tapped after aiortc's own receive() ran: take its codecs and stop its decoder."""
        receiver = self._receiver
        logger.warning("tap_publisher: receiver already started; stopping its decoder thread")
        codecs: dict[int, RTCRtpCodecParameters] = receiver._RTCRtpReceiver__codecs
        self._learn_codecs(list(codecs.values()))
        self._rtx_ssrc = dict(receiver._RTCRtpReceiver__rtx_ssrc)
        receiver._RTCRtpReceiver__stop_decoder()

    def _learn_codecs(self, codecs: list[RTCRtpCodecParameters]) -> None:
        self._codecs = {c.payloadType: c for c in codecs if c.payloadType is not None}
        self._vp8 = frozenset(
            pt for pt, c in self._codecs.items() if c.mimeType.lower() == "video/vp8"
        )
        self._rtx_apt = {}
        self._keyframe_tests = {}
        for pt, codec in self._codecs.items():
            apt = codec.parameters.get("apt")
            if is_rtx(codec):
                if isinstance(apt, int):
                    self._rtx_apt[pt] = apt
            elif self._video:
                self._keyframe_tests[pt] = keyframe_start_test(codec.mimeType)
            else:
                self._keyframe_tests[pt] = None
        for binding in self._bindings.values():
            binding.payload_types = self._map_payload_types(binding.egress)
            # A switch under way shares the lane with the binding still sending: that one's
            # offsets stay in the lane until the switch (its start syncs the new ones).
            if binding.egress.binding is binding:
                binding.sync()

    async def _on_rtp(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        """Replaces ``RTCRtpReceiver._handle_rtp_packet`` (aiortc's queued receive path).

        What the packet made wait for a transport is awaited here, in order, as aiortc would.
        """
        self._take(packet, arrival_time_ms)
        while self._pending:
            # Emptied in place: a simulcast publisher's layers share this list.
            pending = self._pending[:]
            self._pending.clear()
            for coro in pending:
                await coro

    def receive_rtp(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        """One RTP packet from the publisher, taken synchronously (by :mod:`media.ingress`).

        What has to wait for a transport (a REMB or NACK towards the publisher, a copy for an
        instrumented transport) is sent by one task, in order.
        """
        self._take(packet, arrival_time_ms)
        if self._pending:
            pending = self._pending[:]
            self._pending.clear()
            self._spawn(_in_order(pending))

    def _take(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        """Bookkeeping, then fan-out; anything to await is left in :attr:`_pending`."""
        if self._closed:
            return
        try:
            receiver = self._receiver
            if not receiver._enabled:
                return
            stats = self.stats
            codec = self._codecs.get(packet.payload_type)
            if codec is None:
                stats.packets_dropped += 1
                return
            ssrc = packet.ssrc
            stream = self._streams.get(ssrc)
            if stream is None:
                stream = self._streams[ssrc] = StreamStatistics(codec.clockRate)
            stream.add(packet)

            estimate = self._bitrate
            if estimate is not None and packet.extensions.abs_send_time is not None:
                remb = estimate.estimator.add(
                    abs_send_time=packet.extensions.abs_send_time,
                    arrival_time_ms=arrival_time_ms,
                    payload_size=len(packet.payload) + packet.padding_size,
                    ssrc=ssrc,
                )
                if remb is not None:
                    self._pending.append(self._send_remb(*remb))

            apt = self._rtx_apt.get(packet.payload_type)
            if apt is not None:
                original_ssrc = self._rtx_ssrc.get(ssrc)
                # Padding-only RTX packets (bandwidth probes) carry nothing to forward.
                if original_ssrc is None or len(packet.payload) < 2 or apt not in self._codecs:
                    return
                packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
                ssrc = original_ssrc
            elif ssrc in self._rtx_ssrc:
                return  # a retransmission whose payload type a renegotiation gave to media

            self._media(packet, ssrc)
        except Exception:
            # An exception here would end the publisher's whole transport loop.
            if not self._error_logged:
                self._error_logged = True
                logger.exception("forwarding a %s packet failed (logged once)", self.kind)

    def _media(self, packet: RtpPacket, ssrc: int) -> None:
        """A media packet of this stream (retransmissions unwrapped): NACK the gaps, forward.

        A simulcast publisher's forwarder hands each layer's packets to that layer's forwarder
        here (:class:`media.simulcast.SimulcastForwarder`).
        """
        if ssrc != self._media_ssrc:
            self._source_changed(ssrc)
        if self._nacks is not None and self._nacks.add(packet.sequence_number):
            due = self._missing_due()
            if due:
                self._pending.append(self._receiver._send_rtcp_nack(ssrc, due))
        self._forward(packet)

    def _missing_due(self) -> list[int]:
        """What to NACK now (new gaps at once, then again until they come); retries scheduled.

        A packet given up after every try is lost for good: subscribers cannot decode on
        without a keyframe, so one is asked for (rate-limited like subscribers' own requests).
        """
        if self._nack_timer is not None:
            self._nack_timer.cancel()  # a new gap: asked now, and the next round rescheduled
            self._nack_timer = None
        nacks = self._nacks
        if nacks is None or self._closed:
            return []
        loop = asyncio.get_running_loop()
        due = nacks.due(loop.time())
        if nacks.take_given_up() and self._keyframes is not None:
            self._keyframes.subscriber_request()
        if nacks:
            self._nack_timer = loop.call_later(RETRY_SECONDS, self._retry_missing)
        return due

    def _retry_missing(self) -> None:
        due = self._missing_due()
        ssrc = self._media_ssrc
        if due and ssrc is not None:
            self._spawn(self._receiver._send_rtcp_nack(ssrc, due))

    async def _send_remb(self, bitrate: int, ssrcs: list[int]) -> None:
        rtcp_ssrc = self._receiver._RTCRtpReceiver__rtcp_ssrc
        if rtcp_ssrc is not None:
            await self._receiver._send_rtcp(
                RtcpPsfbPacket(
                    fmt=RTCP_PSFB_APP,
                    ssrc=rtcp_ssrc,
                    media_ssrc=0,
                    fci=pack_remb_fci(bitrate, ssrcs),
                )
            )

    # -- fan-out ----------------------------------------------------------------------------

    def _forward(self, packet: RtpPacket) -> None:
        stats = self.stats
        payload = packet.payload
        pt = packet.payload_type
        seq = packet.sequence_number
        ts = packet.timestamp
        stats.packets_received += 1
        stats.bytes_received += len(payload)

        max_seq = self._max_seq
        in_order = max_seq is None or 0 < ((seq - max_seq) & 0xFFFF) < 0x8000
        if in_order:
            self._max_seq = seq

        video = self._video
        found = vp8.NO_DESCRIPTOR
        if video:
            ext_value = -1
            if pt in self._vp8:
                found = vp8.descriptor(payload)
            keyframe_test = self._keyframe_tests.get(pt)
            starts = keyframe_test is None or (in_order and keyframe_test(payload))
            if starts and keyframe_test is not None:
                stats.keyframes_received += 1
                if self._keyframes is not None:
                    self._keyframes.keyframe_started()
        else:
            level = packet.extensions.audio_level
            if level is not None:
                self._audio_level = level
                self._loudness += 127 - level[1]
                self._loud_packets += 1
                ext_value = ((0x80 if level[0] else 0) | (level[1] & 0x7F)) << 16
            else:
                ext_value = -1
            starts = True

        ntp = 0
        if self._waiting and in_order and starts:
            ntp = _ntp_now()
            self._start_waiting(seq, ts, pt, ntp, found)

        active = self._active
        if not active:
            return
        if video:
            self._history[seq % RTP_HISTORY_SIZE] = (seq, ts, packet.marker, payload, pt)
        if not ntp:
            ntp = _ntp_now()
        if video:
            ext_value = (ntp >> 14) & 0xFFFFFF  # abs-send-time, 6.18 fixed point seconds
        marker = packet.marker
        lanes = self._lanes
        if lanes is not None and fanout.forward is not None:
            # Every copy in C; what it leaves (no wire yet, a changed one, too long) in Python.
            sent, sent_bytes, dropped, left = fanout.forward(
                lanes,
                payload,
                pt,
                seq,
                ts,
                marker,
                ext_value,
                ntp,
                in_order,
                found.pid_at,
                found.pid_long,
                found.pid,
                found.tl0_at,
                found.tl0,
            )
            if left is not None:
                more = self._send_copies(
                    tuple(active[i] for i in left),
                    payload,
                    pt,
                    seq,
                    ts,
                    marker,
                    ext_value,
                    ntp,
                    in_order,
                    found,
                )
                sent, sent_bytes, dropped = sent + more[0], sent_bytes + more[1], dropped + more[2]
        else:
            sent, sent_bytes, dropped = self._send_copies(
                active, payload, pt, seq, ts, marker, ext_value, ntp, in_order, found
            )
        stats.packets_forwarded += sent
        stats.bytes_forwarded += sent_bytes
        stats.packets_dropped += dropped

    def _send_copies(
        self,
        bindings: tuple[_Binding, ...],
        payload: bytes,
        pt: int,
        seq: int,
        ts: int,
        marker: int,
        ext_value: int,
        ntp: int,
        in_order: bool,
        found: vp8.Descriptor = vp8.NO_DESCRIPTOR,
    ) -> tuple[int, int, int]:
        """Send one packet's copies in Python: (sent, bytes sent, dropped).

        The C fan-out leaves copies here when a lane cannot send (yet); once a copy went out
        through a wire, the lane is lent that wire and sends the next ones itself.
        """
        lend = self._lanes is not None
        marker_bit = 0x80 if marker else 0
        payload_size = len(payload)
        original = payload
        numbered = found.pid_at >= 0 or found.tl0_at >= 0
        sent = 0
        sent_bytes = 0
        dropped = 0
        for binding in bindings:
            egress = binding.egress
            sender = egress.sender
            if not egress.ready or not sender._enabled:
                dropped += 1
                continue
            if not in_order and ((seq - binding.start_seq) & 0xFFFF) >= 0x8000:
                continue  # from before this subscriber's start
            out_pt = binding.payload_types.get(pt)
            if out_pt is None:
                dropped += 1
                continue
            out_seq = (seq + binding.seq_offset) & 0xFFFF
            out_ts = (ts + binding.ts_offset) & 0xFFFFFFFF
            word_hi = egress.word_hi
            header = egress.header
            ext_word = word_hi | ext_value if word_hi and ext_value >= 0 else 0
            size = header.size + payload_size
            wire = egress.wire
            # The common case: built in the wire's buffer, encrypted and sent in place. A
            # transport without a wire (instrumented), or a packet too big for it, gets bytes.
            fast = wire is not None and size <= MAX_PLAIN_RTP
            buffer = wire.buffer if wire is not None and fast else bytearray(size)
            header.pack_into(
                buffer,
                0,
                _RTP_V2_WITH_EXTENSION,
                marker_bit | out_pt,
                out_seq,
                out_ts,
                egress.ssrc,
                _ONE_BYTE_PROFILE,
                egress.ext_words,
                ext_word,
                egress.mid_block,
            )
            payload = original
            if numbered:
                payload = vp8.rewrite(original, found, binding.pid_offset, binding.tl0_offset)
            buffer[header.size : size] = payload
            if wire is not None and fast:
                if not wire.send(size):
                    dropped += 1
                    continue
                if lend:
                    wire.lend(egress.lane)
            else:
                # Awaited after the fan-out, in order; one that fails is counted as dropped then.
                self._pending.append(self._send_later(egress, bytes(buffer)))
            # What aiortc's sender reports put in RTCP SR and getStats() (see flush_counters).
            lane = egress.lane
            lane.packets += 1
            lane.octets += payload_size
            if in_order:
                lane.seq = out_seq
                lane.rtp_timestamp = out_ts
                lane.ntp = ntp
                if found.pid_at >= 0:
                    mask = 0x7FFF if found.pid_long else 0x7F
                    lane.pid = (found.pid + binding.pid_offset) & mask
                if found.tl0_at >= 0:
                    lane.tl0 = (found.tl0 + binding.tl0_offset) & 0xFF
            sent += 1
            sent_bytes += size
        return sent, sent_bytes, dropped

    async def _send_later(self, egress: _SenderEgress, packet: bytes) -> None:
        try:
            await egress.send_rtp(packet)
        except (ConnectionError, ValueError):
            self.stats.packets_forwarded -= 1
            self.stats.packets_dropped += 1

    def _set_active(self, active: tuple[_Binding, ...]) -> None:
        self._active = active
        if self._lanes is not None:
            self._lanes = tuple(binding.egress.lane for binding in active)

    def _recall(self, binding: _Binding, out_seq: int) -> None:
        """Put the packet a subscriber NACKed into its sender's RTP history, if still known.

        aiortc's ``_retransmit`` then resends it (as RTX where negotiated) from that history.
        """
        seq = (out_seq - binding.seq_offset) & 0xFFFF
        entry = self._history[seq % RTP_HISTORY_SIZE]
        if entry is None or entry[0] != seq or binding in self._waiting:
            return
        if ((seq - binding.start_seq) & 0xFFFF) >= 0x8000:
            return  # from before this subscriber's start
        _, ts, marker, payload, pt = entry
        out_pt = binding.payload_types.get(pt)
        if out_pt is None:
            return
        egress = binding.egress
        index = out_seq % RTP_HISTORY_SIZE
        slot = egress.ring.get(index)
        if slot is None:
            slot = egress.ring[index] = _SentPacket(egress.ssrc, egress.extensions)
        slot.sequence_number = out_seq
        slot.timestamp = (ts + binding.ts_offset) & 0xFFFFFFFF
        slot.marker = marker
        if pt in self._vp8:
            payload = vp8.rewrite(
                payload, vp8.descriptor(payload), binding.pid_offset, binding.tl0_offset
            )
        slot.payload = payload
        slot.payload_type = out_pt

    def _source_changed(self, ssrc: int) -> None:
        """The publisher's stream has a new SSRC: its numbering starts over, so do subscribers.

        They wait again (video for a keyframe) and restart with their senders' numbering intact.
        """
        first = self._media_ssrc is None and self._max_seq is None
        self._media_ssrc = ssrc
        self._max_seq = None
        self._history = [None] * RTP_HISTORY_SIZE
        if self._nacks is not None:
            self._nacks = MissingPackets()
        if first or not self._active:
            return
        self._waiting.extend(self._active)
        self._set_active(())
        if self._keyframes is not None:
            self._keyframes.waiter_added()

    def _start_waiting(
        self, seq: int, ts: int, pt: int, ntp: int, found: vp8.Descriptor = vp8.NO_DESCRIPTOR
    ) -> None:
        """Start every waiting subscriber whose sender is connected at this packet."""
        codec = self._codecs.get(pt)
        clock_rate = codec.clockRate if codec is not None else 90000
        started = [b for b in self._waiting if b.egress.ready]
        if not started:
            return
        switched = []
        for binding in started:
            self._waiting.remove(binding)
            old = binding.replaces
            if old is not None:
                # The switch happens here, between the old source's last packet and this one.
                binding.replaces = None
                egress = binding.egress
                old.forwarder.remove_subscriber(egress.sender)
                egress.pending = None
                egress.binding = binding
                egress.stats = self.stats
                switched.append(egress.sender)
            self._start(binding, seq, ts, pt, ntp, clock_rate, found)
        self._set_active(self._active + tuple(started))
        if self.on_switched is not None:
            for sender in switched:
                self.on_switched(sender)

    def _start(
        self,
        binding: _Binding,
        seq: int,
        ts: int,
        pt: int,
        ntp: int,
        clock_rate: int,
        found: vp8.Descriptor = vp8.NO_DESCRIPTOR,
    ) -> None:
        egress = binding.egress
        sender = egress.sender
        binding.payload_types = self._map_payload_types(egress)
        if egress.seq is None:
            first_seq = random_sequence_number()
            first_ts = random32()
        else:
            # Continue where the sender's previous stream stopped, the gap in time included,
            # so that the subscriber sees one stream whose source changed.
            first_seq = (egress.seq + 1) & 0xFFFF
            lane = egress.lane
            elapsed = max(0, ntp - lane.ntp) / 4294967296.0
            first_ts = (lane.rtp_timestamp + max(1, round(elapsed * clock_rate))) & 0xFFFFFFFF
        binding.seq_offset = (first_seq - seq) & 0xFFFF
        binding.ts_offset = (first_ts - ts) & 0xFFFFFFFF
        # The first frame from here follows the sender's last one: no jump a decoder would
        # take for lost frames (a new sender just takes the publisher's own numbering).
        lane = egress.lane
        binding.pid_offset = 0
        binding.tl0_offset = 0
        if found.pid_at >= 0 and lane.pid >= 0:
            binding.pid_offset = (lane.pid + 1 - found.pid) & 0x7FFF
        if found.tl0_at >= 0 and lane.tl0 >= 0:
            binding.tl0_offset = (lane.tl0 + 1 - found.tl0) & 0xFF
        binding.start_seq = seq
        binding.sync()
        out_pt = binding.payload_types.get(pt)
        if out_pt is not None:
            # aiortc's _retransmit wraps history packets in RTX with this payload type, which
            # must be the one paired with the codec forwarded (None: resend without RTX).
            sender._RTCRtpSender__rtx_payload_type = egress.rtx_payload_types.get(out_pt)

    def _map_payload_types(self, egress: _SenderEgress) -> dict[int, int]:
        mapping: dict[int, int] = {}
        for pt, codec in self._codecs.items():
            if pt in self._rtx_apt:
                continue
            for theirs in egress.codecs:
                if theirs.payloadType is not None and is_codec_compatible(codec, theirs):
                    mapping[pt] = theirs.payloadType
                    break
        return mapping

    # -- keyframes ----------------------------------------------------------------------------

    def _egress_ready(self, binding: _Binding) -> None:
        if self._bindings.get(binding.egress.sender) is not binding:
            return
        if binding in self._waiting:
            if self._keyframes is not None:
                self._keyframes.waiter_added()
        else:
            binding.payload_types = self._map_payload_types(binding.egress)
            binding.sync()

    def _subscriber_requested_keyframe(self, binding: _Binding) -> None:
        # A waiting subscriber is already being served by the retrying request.
        if self._keyframes is not None and binding not in self._waiting and not self._closed:
            self._keyframes.subscriber_request()

    def _has_waiters(self) -> bool:
        return any(b.egress.ready for b in self._waiting)

    def _send_pli(self) -> bool:
        ssrc = self._media_ssrc
        if ssrc is None or self._closed:
            return False
        self._spawn(self._receiver._send_rtcp_pli(ssrc))
        self.stats.keyframe_requests_sent += 1
        return True

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _in_order(coros: list[Coroutine[Any, Any, None]]) -> None:
    for coro in coros:
        await coro


def _route_by_mid(router: Any) -> None:
    """Route a packet of unknown SSRC by the mid header extension it carries, where aiortc
    would go by payload type alone (once per connection's router).

    A simulcast publisher declares no SSRC in its offer (rid simulcast has no ``a=ssrc``), and
    beside a shared screen's receiver the payload types are ambiguous: aiortc would drop every
    one of its packets. The first packets of each stream carry their section's mid, which names
    the receiver; aiortc keeps the SSRC from then on.
    """
    if getattr(router, "_huddle_routes_by_mid", False):
        return
    route = router.route_rtp
    known = router.ssrc_table
    by_mid = router.mid_table

    def route_rtp(packet: RtpPacket) -> Any:
        if packet.ssrc not in known:
            mid = packet.extensions.mid
            receiver = by_mid.get(mid) if mid is not None else None
            if receiver is not None:
                known[packet.ssrc] = receiver
        return route(packet)

    router.route_rtp = route_rtp
    router._huddle_routes_by_mid = True


def forwarding_source(sender: RTCRtpSender) -> TrackForwarder | None:
    """The forwarder ``sender`` is attached to (sending its packets, or waiting for its first
    keyframe); None when it is attached to none."""
    egress = getattr(sender, _EGRESS_ATTR, None)
    binding = egress.binding if isinstance(egress, _SenderEgress) else None
    return binding.forwarder if binding is not None else None


def forwarder_of(receiver: object) -> TrackForwarder | None:
    """The forwarder tapping ``receiver`` (from :func:`tap_publisher`), if any."""
    forwarder = getattr(receiver, _TAP_ATTR, None)
    return forwarder if isinstance(forwarder, TrackForwarder) else None


def tap_publisher(
    receiver: RTCRtpReceiver, kind: MediaKind, stats: ForwardingStats
) -> TrackForwarder:
    """Take over a publisher's receiver: its RTP is forwarded from now on, never decoded.

    Call it right after ``await pc.setRemoteDescription(offer)`` (or from the ``track`` event),
    before the connection is established: aiortc starts the receiver, and would start its decoder
    thread, only once DTLS is up. Tapping a receiver that already started works too, but stops a
    decoder thread that ran until then. RTCP towards the publisher (receiver reports, REMB, NACK)
    carries on as in aiortc, also across renegotiations of the publisher's connection.

    The receiver's track never yields frames and does not end when the publisher leaves: watch
    the connection state instead.
    """
    if kind not in ("audio", "video"):
        raise ValueError(f"unknown media kind {kind!r}")
    track = receiver.track
    if track is not None and track.kind != kind:
        raise ValueError(f"receiver carries {track.kind}, not {kind}")
    if getattr(receiver, _TAP_ATTR, None) is not None:
        raise ValueError("receiver is already tapped")
    return TrackForwarder(receiver, kind, stats)


def share_payload_types(forwarder: TrackForwarder, sibling: TrackForwarder) -> None:
    """Route no packet of unknown SSRC with ``sibling``'s payload types until ``forwarder``'s
    receiver is negotiated (call it when adding a second receiver of a kind to a connection).

    A new section's first packets may come before the answer that names their SSRC is applied.
    aiortc routes a packet of unknown SSRC by payload type when exactly one receiver has it, and
    then keeps that SSRC on that receiver: a shared screen's first packets would become the
    camera's. With both receivers registered for those payload types the packets are dropped
    instead (the keyframe is asked for again), until the answer routes them by SSRC.
    """
    transport: Any = sibling.receiver.transport
    transport._rtp_router.register_receiver(
        forwarder.receiver, ssrcs=[], payload_types=list(sibling._codecs)
    )


def add_forwarding_transceiver(pc: RTCPeerConnection, kind: MediaKind) -> RTCRtpTransceiver:
    """Add a sendonly transceiver whose sender forwards a publisher's RTP (no encoder).

    Call it before ``createOffer()``. Attach the sender to a publisher with
    :meth:`TrackForwarder.add_subscriber`; it can be moved to another publisher later. Do not
    call ``replaceTrack`` on it.
    """
    if kind not in ("audio", "video"):
        raise ValueError(f"unknown media kind {kind!r}")
    transceiver = pc.addTransceiver(_ForwardingTrack(kind), direction="sendonly")
    _SenderEgress(transceiver.sender, kind)
    _drop_bitrate_estimator(transceiver.receiver)  # a sendonly slot's receiver gets no media
    return transceiver


class SharedEstimate:
    """The bandwidth estimate of one publisher connection (REMB), shared by its forwarders."""

    __slots__ = ("estimator",)

    def __init__(self) -> None:
        self.estimator = RemoteBitrateEstimator()


#: The attribute under which a DTLS transport keeps its publisher's :class:`SharedEstimate`.
_ESTIMATE_ATTR = "_huddle_estimate"


def _shared_estimate(receiver: RTCRtpReceiver) -> SharedEstimate:
    transport = cast(Any, receiver).transport
    estimate = getattr(transport, _ESTIMATE_ATTR, None)
    if not isinstance(estimate, SharedEstimate):
        estimate = SharedEstimate()
        setattr(transport, _ESTIMATE_ATTR, estimate)
    return estimate


def _drop_bitrate_estimator(receiver: RTCRtpReceiver) -> None:
    """Free what aiortc's video receiver keeps for a REMB estimate nobody will ask of it.

    Its RateCounter holds 1,000 small objects: one per forwarding slot adds up to most of
    what the cyclic collector walks in a big room. aiortc skips the estimate when it is None.
    """
    cast(Any, receiver)._RTCRtpReceiver__remote_bitrate_estimator = None

"""What a forwarded packet looks like on the wire, byte for byte, without a network.

A publisher's receiver and a subscriber's forwarding sender sit on DTLS transports that never
connect (:class:`tests.media.peers.CapturingTransport`); packets are handed to the receiver the
way aiortc's transport hands them over, and what the sender would have encrypted is parsed back
with aiortc's own parser and the subscriber's negotiated extension map.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpTransceiver
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpDecodingParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpReceiveParameters,
    RTCRtpRtxParameters,
    RTCRtpSendParameters,
)
from aiortc.rtcrtpreceiver import RemoteStreamTrack
from aiortc.rtp import HeaderExtensionsMap, RtcpRtpfbPacket, RtpPacket, is_rtcp, wrap_rtx

from media.forwarding import (
    ForwardingStats,
    TrackForwarder,
    add_forwarding_transceiver,
    share_payload_types,
    tap_publisher,
)
from media.vp8 import descriptor
from tests.media.peers import NO_ICE_SERVERS, CapturingTransport

pytestmark = pytest.mark.timeout(10)

MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

# The publisher numbers things its own way (as Chromium does)...
THEIR_VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
THEIR_RTX = RTCRtpCodecParameters(
    mimeType="video/rtx", clockRate=90000, payloadType=97, parameters={"apt": 96}
)
THEIR_OPUS = RTCRtpCodecParameters(
    mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111
)
THEIR_EXTENSIONS = [
    RTCRtpHeaderExtensionParameters(id=1, uri=AUDIO_LEVEL),
    RTCRtpHeaderExtensionParameters(id=2, uri=ABS_SEND_TIME),
    RTCRtpHeaderExtensionParameters(id=4, uri=MID),
]
# ...and the subscriber as aiortc offered.
OUR_VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)
OUR_RTX = RTCRtpCodecParameters(
    mimeType="video/rtx", clockRate=90000, payloadType=98, parameters={"apt": 97}
)
OUR_OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=96)
OUR_EXTENSIONS = {
    "video": [
        RTCRtpHeaderExtensionParameters(id=1, uri=MID),
        RTCRtpHeaderExtensionParameters(id=3, uri=ABS_SEND_TIME),
    ],
    "audio": [
        RTCRtpHeaderExtensionParameters(id=1, uri=MID),
        RTCRtpHeaderExtensionParameters(id=2, uri=AUDIO_LEVEL),
    ],
}

PUBLISHER_SSRC = 0x1111
PUBLISHER_RTX_SSRC = 0x2222
KEYFRAME = b"\x90\x80\x81\x2c\x10\x02\x00\x9d\x01\x2a" + bytes(100)  # S=1, PID=0, P=0
DELTA = b"\x90\x80\x81\x2d\x11\x02\x00" + bytes(100)
CONTINUATION = b"\x80\x80\x81\x2c" + bytes(100)  # S=0


@dataclass
class Rig:
    """One tapped publisher receiver and one forwarding sender, both on capturing transports."""

    kind: str
    stats: ForwardingStats
    source: CapturingTransport
    receiver: Any
    forwarder: TrackForwarder
    transceiver: RTCRtpTransceiver
    out: CapturingTransport
    pc: RTCPeerConnection
    #: What the publisher's description says (a renegotiation passes it again).
    receiver_parameters: RTCRtpReceiveParameters

    async def publish(self, packet: RtpPacket) -> None:
        """Deliver a packet from the publisher as aiortc's transport would."""
        await self.receiver._handle_rtp_packet(packet, arrival_time_ms=0)

    async def connect_sender(self, mid: str = "7") -> None:
        """What aiortc does once the subscriber's DTLS is up: start the sender."""
        codecs = [OUR_VP8, OUR_RTX] if self.kind == "video" else [OUR_OPUS]
        await self.transceiver.sender.send(
            RTCRtpSendParameters(
                codecs=codecs, headerExtensions=OUR_EXTENSIONS[self.kind], muxId=mid
            )
        )

    def sent(self) -> list[RtpPacket]:
        """The RTP the sender sent, parsed with the subscriber's extension map."""
        extensions = HeaderExtensionsMap()
        extensions.configure(RTCRtpSendParameters(headerExtensions=OUR_EXTENSIONS[self.kind]))
        return [RtpPacket.parse(d, extensions) for d in self.out.sent if not is_rtcp(d)]


async def make_rig(kind: str, tap_after_start: bool = False) -> Rig:
    source = CapturingTransport()
    receiver: Any = RTCRtpReceiver(kind, source.dtls)
    receiver._track = RemoteStreamTrack(kind=kind)
    receiver._set_rtcp_ssrc(0x5555)
    stats = ForwardingStats()
    video = kind == "video"
    parameters = RTCRtpReceiveParameters(
        codecs=[THEIR_VP8, THEIR_RTX] if video else [THEIR_OPUS],
        headerExtensions=THEIR_EXTENSIONS,
        muxId="0",
        encodings=[
            RTCRtpDecodingParameters(
                ssrc=PUBLISHER_SSRC,
                payloadType=96 if video else 111,
                rtx=RTCRtpRtxParameters(ssrc=PUBLISHER_RTX_SSRC) if video else None,
            )
        ],
    )
    if tap_after_start:
        await receiver.receive(parameters)
    forwarder = tap_publisher(receiver, kind=kind, stats=stats)  # type: ignore[arg-type]
    if not tap_after_start:
        await receiver.receive(parameters)
    pc = RTCPeerConnection(NO_ICE_SERVERS)
    transceiver = add_forwarding_transceiver(pc, kind)  # type: ignore[arg-type]
    out = CapturingTransport()
    transceiver.sender.setTransport(out.dtls)
    return Rig(kind, stats, source, receiver, forwarder, transceiver, out, pc, parameters)


@pytest.fixture
async def video() -> AsyncIterator[Rig]:
    rig = await make_rig("video")
    yield rig
    await rig.pc.close()


@pytest.fixture
async def audio() -> AsyncIterator[Rig]:
    rig = await make_rig("audio")
    yield rig
    await rig.pc.close()


def vp8(seq: int, payload: bytes, ts: int | None = None, ssrc: int = PUBLISHER_SSRC) -> RtpPacket:
    packet = RtpPacket(
        payload_type=96,
        sequence_number=seq & 0xFFFF,
        timestamp=seq * 1000 if ts is None else ts,
        ssrc=ssrc,
        payload=payload,
        marker=1,
    )
    packet.extensions.abs_send_time = 0x123456
    packet.extensions.mid = "0"
    return packet


async def test_video_is_rewritten_to_the_senders_identity_and_extensions(video: Rig) -> None:
    video.forwarder.add_subscriber(video.transceiver.sender)
    await video.connect_sender(mid="7")
    for seq, payload in [(10, DELTA), (11, KEYFRAME), (12, CONTINUATION), (13, DELTA)]:
        await video.publish(vp8(seq, payload))

    sent = video.sent()
    assert [p.payload for p in sent] == [KEYFRAME, CONTINUATION, DELTA]  # from the keyframe on
    first = sent[0]
    assert first.ssrc == video.transceiver.sender._ssrc
    assert first.payload_type == 97
    assert first.marker == 1
    assert first.extensions.mid == "7"
    assert first.extensions.abs_send_time is not None  # stamped at sending, ours
    assert [p.sequence_number for p in sent] == [
        (first.sequence_number + i) & 0xFFFF for i in range(3)
    ]
    assert [(p.timestamp - first.timestamp) & 0xFFFFFFFF for p in sent] == [0, 1000, 2000]
    stats = video.stats
    assert (stats.packets_received, stats.packets_forwarded) == (4, 3)
    assert stats.bytes_forwarded == sum(len(d) for d in video.out.sent if not is_rtcp(d))


async def test_audio_keeps_its_level_and_starts_at_once(audio: Rig) -> None:
    audio.forwarder.add_subscriber(audio.transceiver.sender)
    await audio.connect_sender(mid="12")
    packet = RtpPacket(payload_type=111, sequence_number=5, timestamp=960, ssrc=PUBLISHER_SSRC)
    packet.payload = b"opus"
    packet.extensions.audio_level = (True, 42)
    await audio.publish(packet)
    quiet = RtpPacket(payload_type=111, sequence_number=6, timestamp=1920, ssrc=PUBLISHER_SSRC)
    quiet.payload = b"opus"
    await audio.publish(quiet)

    loud, silent = audio.sent()
    assert (loud.payload_type, loud.payload, loud.extensions.mid) == (96, b"opus", "12")
    assert loud.extensions.audio_level == (True, 42)
    assert silent.extensions.audio_level is None
    assert audio.forwarder.audio_level == (True, 42)


async def test_nothing_is_sent_before_the_sender_is_connected(video: Rig) -> None:
    video.forwarder.add_subscriber(video.transceiver.sender)
    await video.publish(vp8(1, KEYFRAME))
    assert video.sent() == []
    await video.connect_sender()
    await video.publish(vp8(2, DELTA))
    assert video.sent() == []  # held until the next keyframe
    await video.publish(vp8(3, KEYFRAME))
    assert [p.payload for p in video.sent()] == [KEYFRAME]


async def test_publisher_retransmissions_are_unwrapped_and_fill_the_gap(video: Rig) -> None:
    video.forwarder.add_subscriber(video.transceiver.sender)
    await video.connect_sender()
    await video.publish(vp8(100, KEYFRAME))
    await video.publish(vp8(102, DELTA))  # 101 lost on the way in
    await video.publish(
        wrap_rtx(vp8(101, CONTINUATION), payload_type=97, sequence_number=7, ssrc=0x2222)
    )
    await video.publish(wrap_rtx(vp8(99, DELTA), payload_type=97, sequence_number=8, ssrc=0x2222))

    sent = video.sent()
    assert [p.payload for p in sent] == [KEYFRAME, DELTA, CONTINUATION]  # not 99: before start
    start = sent[0].sequence_number
    assert [(p.sequence_number - start) & 0xFFFF for p in sent] == [0, 2, 1]
    # The gap was noticed, and the publisher was asked for the missing packet.
    nacks = [p for p in video.source.rtcp() if isinstance(p, RtcpRtpfbPacket)]
    assert [(n.media_ssrc, n.lost) for n in nacks] == [(PUBLISHER_SSRC, [101])]


async def test_a_new_publisher_ssrc_restarts_subscribers_at_a_keyframe(video: Rig) -> None:
    video.forwarder.add_subscriber(video.transceiver.sender)
    await video.connect_sender()
    await video.publish(vp8(40000, KEYFRAME))
    await video.publish(vp8(40001, DELTA))
    # The publisher's stream starts over with another SSRC and unrelated numbering.
    await video.publish(vp8(7, DELTA, ssrc=0x9999))
    await video.publish(vp8(8, KEYFRAME, ssrc=0x9999))
    await video.publish(vp8(9, DELTA, ssrc=0x9999))

    sent = video.sent()
    # The same frames, their picture IDs continuing across the restart (300, 301, then 302).
    assert [p.payload[4:] for p in sent] == [KEYFRAME[4:], DELTA[4:], KEYFRAME[4:], DELTA[4:]]
    assert [descriptor(p.payload).pid for p in sent] == [300, 301, 302, 303]
    assert {p.ssrc for p in sent} == {video.transceiver.sender._ssrc}
    start = sent[0].sequence_number
    assert [(p.sequence_number - start) & 0xFFFF for p in sent] == [0, 1, 2, 3]


async def test_unknown_payload_types_and_rtx_are_not_forwarded_as_media(video: Rig) -> None:
    video.forwarder.add_subscriber(video.transceiver.sender)
    await video.connect_sender()
    await video.publish(vp8(1, KEYFRAME))
    unknown = vp8(2, DELTA)
    unknown.payload_type = 45
    await video.publish(unknown)
    # A retransmission whose payload type means media (after a renegotiation) is not media.
    await video.publish(vp8(3, DELTA, ssrc=PUBLISHER_RTX_SSRC))
    await video.publish(vp8(4, CONTINUATION))

    assert [p.payload for p in video.sent()] == [KEYFRAME, CONTINUATION]
    assert video.stats.packets_dropped == 1


async def test_tapping_a_started_receiver_stops_its_decoder_and_forwards() -> None:
    rig = await make_rig("video", tap_after_start=True)
    try:
        assert rig.receiver._RTCRtpReceiver__decoder_thread is None
        rig.forwarder.add_subscriber(rig.transceiver.sender)
        await rig.connect_sender()
        await rig.publish(vp8(1, KEYFRAME))
        assert [p.payload for p in rig.sent()] == [KEYFRAME]
    finally:
        await rig.receiver.stop()
        await rig.pc.close()


# -- a second receiver of a kind on one connection (a shared screen beside the camera) -----------


async def test_a_renegotiation_naming_the_publishers_ssrc_restarts_its_numbering(
    video: Rig,
) -> None:
    video.forwarder.add_subscriber(video.transceiver.sender)
    await video.connect_sender()
    # Another stream's packets (a shared screen's, before its answer was applied) came first.
    await video.publish(vp8(100, KEYFRAME, ssrc=0x9999))
    # The answer names the publisher's SSRC again: its numbering, far from the other's, counts.
    await video.receiver.receive(video.receiver_parameters)
    await video.publish(vp8(40000, KEYFRAME))
    await video.publish(vp8(40001, DELTA))
    sent = video.sent()
    assert [p.payload[4:] for p in sent] == [KEYFRAME[4:], KEYFRAME[4:], DELTA[4:]]
    assert [descriptor(p.payload).pid for p in sent] == [300, 301, 302]


async def test_a_second_receivers_first_packets_are_not_taken_for_the_firsts(video: Rig) -> None:
    router = video.source.dtls._rtp_router
    screen: Any = RTCRtpReceiver("video", video.source.dtls)
    screen_forwarder = tap_publisher(screen, kind="video", stats=video.stats)
    unknown = vp8(5, KEYFRAME, ssrc=0x7777)
    unknown.extensions.mid = "2"  # the screen's section, not negotiated yet
    assert router.route_rtp(unknown) is video.receiver  # aiortc alone: by payload type
    router.ssrc_table.pop(0x7777)
    share_payload_types(screen_forwarder, video.forwarder)
    assert router.route_rtp(unknown) is None  # ambiguous until the answer names the SSRC
    # A stream no SDP declared (a simulcast layer) is known by the mid it carries...
    layer = vp8(7, KEYFRAME, ssrc=0x8888)
    assert router.route_rtp(layer) is video.receiver
    # ...and stays known through a renegotiation, when its packets no longer carry the mid.
    await video.receiver.receive(video.receiver_parameters)
    later = vp8(8, DELTA, ssrc=0x8888)
    later.extensions.mid = None
    assert router.route_rtp(later) is video.receiver
    # The publisher's retransmissions stay theirs, by SSRC, although the payload type is shared.
    rtx = wrap_rtx(vp8(6, DELTA), payload_type=97, sequence_number=1, ssrc=PUBLISHER_RTX_SSRC)
    assert router.route_rtp(rtx) is video.receiver


def frame(picture_id: int, tl0: int, *, key: bool) -> bytes:
    """A one-packet VP8 frame with a 15-bit picture ID and TL0PICIDX (as Chromium sends L1T3)."""
    descriptor = bytes([0x90, 0xE0, 0x80 | (picture_id >> 8), picture_id & 0xFF, tl0, 0x00])
    header = b"\x10\x02\x00\x9d\x01\x2a" if key else b"\x11\x02\x00"
    return descriptor + header + bytes(50)


async def test_a_sender_moved_to_another_source_continues_its_picture_ids(video: Rig) -> None:
    """Switching a subscriber's source (another publisher, later another simulcast layer) must
    not make VP8 picture IDs or TL0PICIDX jump: Chromium would wait for the "lost" frames."""
    other = await make_rig("video")
    try:
        sender = video.transceiver.sender
        video.forwarder.add_subscriber(sender)
        await video.connect_sender()
        await video.publish(vp8(100, frame(300, 40, key=True)))
        await video.publish(vp8(101, frame(301, 41, key=False)))
        # The sender now forwards the other publisher, whose numbering is its own.
        other.forwarder.add_subscriber(sender)
        await other.publish(vp8(5000, frame(9000, 7, key=False)))  # waits for a keyframe
        await other.publish(vp8(5001, frame(9001, 8, key=True)))
        await other.publish(vp8(5002, frame(9002, 9, key=False)))
        # A retransmission from the new source is rewritten the same way.
        await other.receiver._handle_rtp_packet(vp8(5002, frame(9002, 9, key=False)), 0)

        sent = video.sent()
        seen = [(descriptor(p.payload).pid, descriptor(p.payload).tl0) for p in sent]
        assert seen[:4] == [(300, 40), (301, 41), (302, 42), (303, 43)], seen
        start = sent[0].sequence_number
        assert [(p.sequence_number - start) & 0xFFFF for p in sent[:4]] == [0, 1, 2, 3]
    finally:
        await other.pc.close()


async def test_a_publishers_video_tracks_share_one_bandwidth_estimate(video: Rig) -> None:
    """The browser takes each REMB as its whole connection's budget: a camera and a shared
    screen on one connection must report one estimate, not two that contradict each other."""
    screen: Any = RTCRtpReceiver("video", video.source.dtls)
    screen_forwarder = tap_publisher(screen, kind="video", stats=video.stats)
    assert screen_forwarder._bitrate is video.forwarder._bitrate is not None
    elsewhere = await make_rig("video")
    try:
        assert elsewhere.forwarder._bitrate is not video.forwarder._bitrate
    finally:
        await elsewhere.pc.close()

"""The aiortc 1.16 internals the forwarding unit relies on, one test each.

``media/forwarding.py`` reaches into private attributes and methods of aiortc's receiver, sender
and DTLS transport. aiortc is pinned exactly; when it is bumped, these tests say precisely which
assumption broke. They run without a network: a DTLS transport that never connects, whose
``_send_rtp`` is replaced to capture what would be sent.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from typing import Any

import pytest
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.rate import RemoteBitrateEstimator
from aiortc.rtcpeerconnection import is_codec_compatible
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpDecodingParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpReceiveParameters,
    RTCRtpRtxParameters,
    RTCRtpSendParameters,
)
from aiortc.rtcrtpreceiver import NackGenerator, RemoteStreamTrack, StreamStatistics
from aiortc.rtcrtpsender import random_sequence_number
from aiortc.rtp import (
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RTP_HISTORY_SIZE,
    HeaderExtensions,
    HeaderExtensionsMap,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    RtpPacket,
    unwrap_rtx,
    wrap_rtx,
)

from media.forwarding import _ForwardingTrack, _SentPacket
from tests.media.peers import NO_ICE_SERVERS, CapturingTransport
from tests.media.virtual_time import run

pytestmark = pytest.mark.timeout(30)

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)
VP8_RTX = RTCRtpCodecParameters(
    mimeType="video/rtx", clockRate=90000, payloadType=98, parameters={"apt": 97}
)
MID = RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid")


@pytest.fixture
def transport() -> CapturingTransport:
    return CapturingTransport()


def private(thing: object, name: str) -> Any:
    """``thing.__name`` as the class that defined it spells it."""
    return getattr(thing, f"_{type(thing).__name__}__{name}")


def receive_parameters() -> RTCRtpReceiveParameters:
    return RTCRtpReceiveParameters(
        codecs=[VP8, VP8_RTX],
        headerExtensions=[MID],
        muxId="0",
        encodings=[
            RTCRtpDecodingParameters(ssrc=1111, payloadType=97, rtx=RTCRtpRtxParameters(ssrc=2222))
        ],
    )


def send_parameters() -> RTCRtpSendParameters:
    return RTCRtpSendParameters(codecs=[VP8, VP8_RTX], headerExtensions=[MID], muxId="0")


def rtp(sequence_number: int, payload: bytes = b"\x10\x00\x9d\x01\x2a") -> RtpPacket:
    return RtpPacket(
        payload_type=97, sequence_number=sequence_number, timestamp=3000, ssrc=1111, payload=payload
    )


# -- receiver --------------------------------------------------------------------------------


async def test_receiver_receive_is_what_starts_the_decoder_thread(
    transport: CapturingTransport,
) -> None:
    # The tap replaces receive(): it must be the only place the decoder thread starts, and what
    # it does besides (register with the transport, start RTCP) must be what the tap redoes.
    receiver = RTCRtpReceiver("video", transport.dtls)
    receiver._track = RemoteStreamTrack(kind="video")
    assert private(receiver, "decoder_thread") is None
    assert private(receiver, "started") is False

    await receiver.receive(receive_parameters())

    assert isinstance(private(receiver, "decoder_thread"), threading.Thread)
    assert private(receiver, "started") is True
    assert isinstance(private(receiver, "rtcp_task"), asyncio.Future)
    assert receiver in transport.dtls._rtp_router.receivers
    assert set(private(receiver, "codecs")) == {97, 98}
    assert private(receiver, "rtx_ssrc") == {2222: 1111}
    await receiver.stop()
    assert receiver not in transport.dtls._rtp_router.receivers


async def test_receiver_stops_cleanly_when_started_without_a_decoder(
    transport: CapturingTransport,
) -> None:
    # What the tap's receive() does, by hand: stop() must still end the RTCP task.
    receiver: Any = RTCRtpReceiver("video", transport.dtls)
    transport.dtls._register_rtp_receiver(receiver, receive_parameters())
    task = asyncio.ensure_future(receiver._run_rtcp())
    receiver._RTCRtpReceiver__rtcp_task = task
    receiver._RTCRtpReceiver__started = True
    await asyncio.sleep(0)

    await asyncio.wait_for(receiver.stop(), 10)
    assert task.done()


async def test_receiver_stop_decoder_stops_a_running_decoder_thread(
    transport: CapturingTransport,
) -> None:
    receiver = RTCRtpReceiver("video", transport.dtls)
    receiver._track = RemoteStreamTrack(kind="video")
    await receiver.receive(receive_parameters())
    thread = private(receiver, "decoder_thread")

    receiver._RTCRtpReceiver__stop_decoder()  # type: ignore[attr-defined]

    assert not thread.is_alive()
    assert private(receiver, "decoder_thread") is None
    await receiver.stop()


async def test_transport_routes_rtp_to_the_receivers_instance_handler(
    transport: CapturingTransport,
) -> None:
    receiver: Any = RTCRtpReceiver("video", transport.dtls)
    transport.dtls._register_rtp_receiver(receiver, receive_parameters())
    seen: list[tuple[int, int]] = []

    async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
        seen.append((packet.sequence_number, arrival_time_ms))

    receiver._handle_rtp_packet = handle
    assert list(inspect.signature(RTCRtpReceiver._handle_rtp_packet).parameters) == [
        "self",
        "packet",
        "arrival_time_ms",
    ]

    await transport.dtls._handle_rtp_data(rtp(7).serialize(), arrival_time_ms=1234)

    assert seen == [(7, 1234)]
    transport.dtls._unregister_rtp_receiver(receiver)
    await transport.dtls._handle_rtp_data(rtp(8).serialize(), arrival_time_ms=1235)
    assert seen == [(7, 1234)]


async def test_receiver_sends_pli_and_nack_from_its_rtcp_ssrc(
    transport: CapturingTransport,
) -> None:
    receiver = RTCRtpReceiver("video", transport.dtls)
    receiver._set_rtcp_ssrc(4444)
    assert private(receiver, "rtcp_ssrc") == 4444

    await receiver._send_rtcp_pli(1111)
    await receiver._send_rtcp_nack(1111, [5, 6])
    await receiver._send_rtcp(RtcpPsfbPacket(fmt=15, ssrc=4444, media_ssrc=0, fci=b"REMB1234"))

    pli, nack, remb = transport.rtcp()
    assert isinstance(pli, RtcpPsfbPacket)
    assert (pli.fmt, pli.ssrc, pli.media_ssrc) == (RTCP_PSFB_PLI, 4444, 1111)
    assert isinstance(nack, RtcpRtpfbPacket)
    assert (nack.fmt, nack.media_ssrc, nack.lost) == (RTCP_RTPFB_NACK, 1111, [5, 6])
    assert isinstance(remb, RtcpPsfbPacket) and remb.fci == b"REMB1234"


async def test_receiver_reports_statistics_from_its_remote_streams_dict(
    transport: CapturingTransport,
) -> None:
    receiver = RTCRtpReceiver("video", transport.dtls)
    streams = private(receiver, "remote_streams")
    assert streams == {}
    stream = streams[1111] = StreamStatistics(90000)
    stream.add(rtp(1))
    stream.add(rtp(2))

    report = await receiver.getStats()

    inbound = next(s for s in report.values() if s.type == "inbound-rtp")
    assert (inbound.ssrc, inbound.packetsReceived) == (1111, 2)
    assert receiver._enabled is True


def test_nack_generator_reports_missing_sequence_numbers() -> None:
    nacks = NackGenerator()
    assert nacks.add(rtp(10)) is False
    assert nacks.add(rtp(13)) is True
    assert nacks.missing == {11, 12}
    assert nacks.add(rtp(11)) is False
    assert nacks.missing == {12}


def test_remote_bitrate_estimator_takes_keyword_arguments() -> None:
    estimator = RemoteBitrateEstimator()
    results = [
        estimator.add(
            arrival_time_ms=1000 + i * 10, abs_send_time=i * 2621, payload_size=1000, ssrc=1
        )
        for i in range(1, 500)
    ]
    remb = next(r for r in results if r is not None)
    assert isinstance(remb[0], int) and remb[1] == [1]


def test_rtx_unwraps_to_the_original_packet() -> None:
    original = rtp(321, b"payload")
    rtx = wrap_rtx(original, payload_type=98, sequence_number=5, ssrc=2222)
    unwrapped = unwrap_rtx(rtx, payload_type=97, ssrc=1111)
    assert (unwrapped.sequence_number, unwrapped.ssrc, unwrapped.payload) == (321, 1111, b"payload")


async def test_set_remote_description_does_not_start_receivers_yet() -> None:
    # tap_publisher() runs right after setRemoteDescription(): aiortc must not have started the
    # receiver (and its decoder thread) by then; it does so once DTLS is connected.
    client = RTCPeerConnection(NO_ICE_SERVERS)
    server = RTCPeerConnection(NO_ICE_SERVERS)
    try:
        client.addTransceiver("video", direction="sendonly")
        await client.setLocalDescription(await client.createOffer())
        await server.setRemoteDescription(client.localDescription)
        (transceiver,) = server.getTransceivers()
        assert private(transceiver.receiver, "started") is False
        assert private(transceiver.receiver, "decoder_thread") is None
        assert isinstance(transceiver.receiver.track, RemoteStreamTrack)
    finally:
        await client.close()
        await server.close()


# -- sender ----------------------------------------------------------------------------------


def test_sender_with_a_silent_track_neither_encodes_nor_polls() -> None:
    async def scenario() -> None:
        transport = CapturingTransport()
        calls = 0

        class CountingTrack(_ForwardingTrack):
            async def recv(self) -> Any:
                nonlocal calls
                calls += 1
                return await super().recv()

        sender = RTCRtpSender(CountingTrack("video"), transport.dtls)
        await sender.send(send_parameters())
        # A minute on the fake clock: a send loop polling every 20 ms would call recv 3,000 times.
        await asyncio.sleep(60)

        assert calls == 1, "aiortc's send loop waits on the track instead of polling"
        assert private(sender, "encoder") is None
        assert private(sender, "rtx_payload_type") == 98
        assert transport.dtls._rtp_router.senders[sender._ssrc] is sender
        await sender.stop()

    run(scenario)


async def test_sender_retransmits_from_its_history_as_rtx(transport: CapturingTransport) -> None:
    sender = RTCRtpSender("video", transport.dtls)
    await sender.send(send_parameters())
    history = private(sender, "rtp_history")
    assert isinstance(history, dict) and RTP_HISTORY_SIZE == 128
    slot = _SentPacket(sender._ssrc, HeaderExtensions())
    slot.sequence_number, slot.timestamp, slot.payload = 1000, 90000, b"frame"
    slot.payload_type = 97
    history[1000 % RTP_HISTORY_SIZE] = slot

    await sender._retransmit(1000)
    await sender._retransmit(1000 + RTP_HISTORY_SIZE)  # same slot, other number: ignored
    sender._RTCRtpSender__rtx_payload_type = None  # type: ignore[attr-defined]
    await sender._retransmit(1000)

    rtx, plain = (RtpPacket.parse(data) for data in transport.sent if data[1] & 0x7F in (97, 98))
    assert (rtx.payload_type, rtx.ssrc, rtx.payload) == (98, sender._rtx_ssrc, b"\x03\xe8frame")
    assert (plain.payload_type, plain.ssrc, plain.sequence_number) == (97, sender._ssrc, 1000)
    assert plain.payload == b"frame"
    await sender.stop()


async def test_sender_hands_pli_fir_and_nack_to_its_instance_methods(
    transport: CapturingTransport,
) -> None:
    sender: Any = RTCRtpSender("video", transport.dtls)
    keyframes: list[str] = []
    retransmits: list[int] = []

    async def retransmit(sequence_number: int) -> None:
        retransmits.append(sequence_number)

    sender._send_keyframe = lambda: keyframes.append("keyframe")
    sender._retransmit = retransmit

    for fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
        await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=fmt, ssrc=1, media_ssrc=sender._ssrc))
    nack = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=sender._ssrc, lost=[3, 4])
    await sender._handle_rtcp_packet(nack)

    assert keyframes == ["keyframe", "keyframe"]
    assert retransmits == [3, 4]


def test_sender_reports_carry_its_counters() -> None:
    async def scenario() -> None:
        transport = CapturingTransport()
        sender: Any = RTCRtpSender("video", transport.dtls)
        sender._RTCRtpSender__packet_count = 10
        sender._RTCRtpSender__octet_count = 12000
        sender._RTCRtpSender__rtp_timestamp = 123456
        sender._RTCRtpSender__ntp_timestamp = 0xE000000080000000

        stats = await sender.getStats()
        outbound = next(s for s in stats.values() if s.type == "outbound-rtp")
        assert (outbound.packetsSent, outbound.bytesSent) == (10, 12000)

        task = asyncio.ensure_future(sender._run_rtcp())
        await asyncio.sleep(1.5)  # on the fake clock: aiortc's first report comes within 1.5 s
        assert transport.sent, "a sender report"
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        report = next(p for p in transport.rtcp() if isinstance(p, RtcpSrPacket))
        info = report.sender_info
        assert report.ssrc == sender._ssrc
        assert (info.packet_count, info.octet_count) == (10, 12000)
        assert (info.rtp_timestamp, info.ntp_timestamp) == (123456, 0xE000000080000000)

    run(scenario)


async def test_sender_identity_and_helpers() -> None:
    transport = CapturingTransport()
    sender = RTCRtpSender("audio", transport.dtls)
    assert isinstance(sender._ssrc, int) and isinstance(sender._rtx_ssrc, int)
    assert sender._enabled is True
    assert 0 <= random_sequence_number() < 32768
    opus = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2)
    assert is_codec_compatible(VP8, RTCRtpCodecParameters(mimeType="video/vp8", clockRate=90000))
    assert not is_codec_compatible(VP8, opus)


def test_sent_packet_serializes_like_an_rtp_packet() -> None:
    slot = _SentPacket(999, HeaderExtensions())
    slot.sequence_number, slot.timestamp = 9, 99
    slot.payload_type, slot.marker, slot.payload = 97, 1, b"abc"
    reference = RtpPacket(
        payload_type=97, marker=1, sequence_number=9, timestamp=99, ssrc=999, payload=b"abc"
    )
    assert slot.serialize(HeaderExtensionsMap()) == reference.serialize(HeaderExtensionsMap())


def test_aioice_connection_queues_data_through_data_received() -> None:
    # media/ice.py wraps Connection.data_received per instance to drop empty datagrams, which
    # aiortc's DTLS transport would index (data[0]) and die on.
    import inspect

    from aioice.ice import Connection

    assert list(inspect.signature(Connection.data_received).parameters) == [
        "self",
        "data",
        "component",
    ]
    from aiortc.rtcdtlstransport import RTCDtlsTransport

    assert "first_byte = data[0]" in inspect.getsource(RTCDtlsTransport._recv_next)

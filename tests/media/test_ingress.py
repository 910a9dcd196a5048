"""The SFU's ingress: a publisher's SRTP packet from the socket to its forwarder, in one call.

:class:`media.ingress.Ingress` must take exactly what aiortc's queued receive path would have
taken, with the same session, counters and parser, and hand everything else to that path: RTCP,
packets before the transport is connected, SSRCs not routed yet, and anything arriving while
earlier datagrams still wait in aioice's queue.
"""

from __future__ import annotations

import os
import struct
from typing import Any

from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceGatherer, RTCIceTransport
from aiortc.rtcdtlstransport import State
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket
from pylibsrtp import Policy, Session

from media.forwarding import ForwardingStats, tap_publisher
from media.ingress import Ingress
from tests.media.media_app import media_app
from tests.media.test_signaling import all_keep_receiving, people

KEY = os.urandom(28)  # AES-128-GCM: 16-byte key + 12-byte salt
SSRC = 0x1234


def srtp_session(direction: int) -> Session:
    return Session(
        Policy(key=KEY, ssrc_type=direction, srtp_profile=Policy.SRTP_PROFILE_AEAD_AES_128_GCM)
    )


class Rig:
    """A connected DTLS transport whose receiver for SSRC is tapped, and what reached whom."""

    def __init__(self) -> None:
        ice = RTCIceTransport(RTCIceGatherer(iceServers=[]))
        self.dtls: Any = RTCDtlsTransport(ice, [RTCCertificate.generateCertificate()])
        self.dtls._rx_srtp = srtp_session(Policy.SSRC_ANY_INBOUND)
        self.dtls._state = State.CONNECTED
        self.publisher = srtp_session(Policy.SSRC_ANY_OUTBOUND)
        receiver = RTCRtpReceiver("video", self.dtls)
        self.forwarder = tap_publisher(receiver, "video", ForwardingStats())
        self.dtls._rtp_router.register_receiver(receiver, ssrcs=[SSRC], payload_types=[96])
        self.forwarded: list[tuple[RtpPacket, int]] = []
        self.forwarder.receive_rtp = lambda packet, ms: self.forwarded.append((packet, ms))  # type: ignore[method-assign]
        self.delivered: list[bytes] = []
        self.ingress = Ingress.of(self.dtls, lambda data, component: self.delivered.append(data))

    def rtp(self, seq: int, payload: bytes, ssrc: int = SSRC) -> bytes:
        plain = struct.pack("!BBHII", 0x80, 96, seq, seq * 3000, ssrc) + payload
        return self.publisher.protect(plain)

    def seqs(self) -> list[int]:
        return [packet.sequence_number for packet, _ in self.forwarded]


async def test_publisher_rtp_is_unprotected_parsed_and_forwarded_at_once() -> None:
    from aiortc import clock

    rig = Rig()
    assert Ingress.of(rig.dtls, lambda data, component: None) is rig.ingress, "one per transport"
    datagrams = [rig.rtp(seq, os.urandom(1000)) for seq in (1, 2, 3)]
    before_ms = clock.current_ms()
    for datagram in datagrams:
        rig.ingress.receive(datagram, 1)
    after_ms = clock.current_ms()
    assert rig.seqs() == [1, 2, 3] and rig.delivered == []
    assert rig.ingress.packets == 3
    packet, arrival_ms = rig.forwarded[0]
    assert (packet.ssrc, packet.payload_type, len(packet.payload)) == (SSRC, 96, 1000)
    # aiortc's clock counts milliseconds from 1900; the REMB estimator is fed the same (read
    # between the two readings, give or take the millisecond the two roundings may differ by).
    assert before_ms - 1 <= arrival_ms <= after_ms + 1
    (stats,) = rig.dtls._get_stats().values()
    assert stats.packetsReceived == 3
    assert stats.bytesReceived == sum(len(datagram) for datagram in datagrams)


async def test_everything_else_takes_aiortcs_path() -> None:
    rig = Rig()
    rtcp = struct.pack("!BBHI", 0x80, 200, 1, SSRC)
    unknown = rig.rtp(1, b"x" * 100, ssrc=0x9999)
    short = b"\x80\x60\x00\x01"
    for datagram in (rtcp, unknown, short):
        rig.ingress.receive(datagram, 1)
    assert rig.delivered == [rtcp, unknown, short] and rig.forwarded == []

    rig.dtls._state = State.CONNECTING  # before DTLS has keys
    early = rig.rtp(2, b"x" * 100)
    rig.ingress.receive(early, 1)
    assert rig.delivered[-1] == early and rig.forwarded == []


async def test_nothing_overtakes_datagrams_still_in_aioices_queue() -> None:
    rig = Rig()
    queue = rig.dtls.transport._connection._queue
    queue.put_nowait((b"queued", 1))
    behind = rig.rtp(1, b"x" * 100)
    rig.ingress.receive(behind, 1)
    assert rig.delivered == [behind] and rig.forwarded == []
    queue.get_nowait()
    rig.ingress.receive(rig.rtp(2, b"x" * 100), 1)
    assert rig.seqs() == [2]


async def test_forged_and_replayed_packets_are_dropped_and_the_stream_goes_on() -> None:
    rig = Rig()
    good = rig.rtp(1, os.urandom(500))
    forged = bytearray(rig.rtp(2, os.urandom(500)))
    forged[-1] ^= 0xFF  # the authentication tag no longer matches
    rig.ingress.receive(good, 1)
    rig.ingress.receive(bytes(forged), 1)
    rig.ingress.receive(good, 1)  # replayed
    rig.ingress.receive(rig.rtp(3, os.urandom(500)), 1)
    assert rig.seqs() == [1, 3] and rig.delivered == []


async def test_a_real_call_forwards_through_the_ingress() -> None:
    async with media_app() as app, people(app, "Alice", "Bob") as clients:
        await all_keep_receiving(clients)
        room = app.server._rooms["h1"]
        taken = [
            participant.pc.getTransceivers()[0].receiver.transport._huddle_ingress
            for participant in room.participants.values()
            if participant.pc is not None
        ]
        assert len(taken) == 2
        # Nearly every datagram the server received from a publisher was its RTP, taken at once
        # (the rest: the DTLS handshake, RTCP, and RTP before the SSRC was routed).
        for ingress in taken:
            received = ingress._dtls._RTCDtlsTransport__rx_packets
            assert ingress.packets > 20 and ingress.packets > 0.8 * received

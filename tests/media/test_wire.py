"""The SFU's egress wire and ingress demux: aiortc's bytes on the wire, without aiortc's layers.

:class:`media.wire.Wire` encrypts with the DTLS transport's own SRTP session and writes to the
nominated ICE pair; :func:`media.ice.skip_stun_parsing_for_media` hands RTP/RTCP to aioice's
connection without the STUN parser. Both must be indistinguishable from aiortc's own paths for
what they carry, and step aside for everything else.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import Any

import pytest
from aioice import stun
from aioice.ice import Connection, StunProtocol
from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceGatherer, RTCIceTransport
from aiortc.rtcdtlstransport import State
from pylibsrtp import Policy, Session

from media.ice import skip_stun_parsing_for_media
from media.wire import MAX_PLAIN_RTP, Wire
from tests.media.media_app import media_app
from tests.media.test_signaling import all_keep_receiving, people

KEY = os.urandom(28)  # AES-128-GCM: 16-byte key + 12-byte salt


def srtp_session(direction: int) -> Session:
    return Session(
        Policy(key=KEY, ssrc_type=direction, srtp_profile=Policy.SRTP_PROFILE_AEAD_AES_128_GCM)
    )


@dataclass
class FakeUdp:
    """Stands in for the asyncio datagram transport of an aioice protocol."""

    sent: list[tuple[bytes, tuple[str, int]]] = field(default_factory=list)

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((bytes(data), addr))


@dataclass
class FakePair:
    """The two attributes of aioice's CandidatePair that a wire reads."""

    protocol: Any
    remote_addr: tuple[str, int]


def connected_transport() -> tuple[Any, FakeUdp]:
    ice = RTCIceTransport(RTCIceGatherer(iceServers=[]))
    dtls: Any = RTCDtlsTransport(ice, [RTCCertificate.generateCertificate()])
    dtls._tx_srtp = srtp_session(Policy.SSRC_ANY_OUTBOUND)
    dtls._state = State.CONNECTED
    udp = FakeUdp()
    protocol = type("Protocol", (), {"transport": udp})()
    ice._connection._nominated[1] = FakePair(protocol, ("192.0.2.1", 5000))
    return dtls, udp


def rtp(sequence_number: int, payload: bytes) -> bytes:
    return struct.pack("!BBHII", 0x80, 96, sequence_number, 1000, 0x1234) + payload


def put(wire: Wire, packet: bytes) -> int:
    wire.buffer[0 : len(packet)] = packet
    return len(packet)


def test_wire_sends_what_the_transports_srtp_session_makes_to_the_nominated_pair() -> None:
    dtls, udp = connected_transport()
    wire = Wire.of(dtls)
    assert Wire.of(dtls) is wire, "audio and video of one bundle share the wire"
    receiver = srtp_session(Policy.SSRC_ANY_INBOUND)
    packets = [rtp(seq, os.urandom(1100)) for seq in range(1, 4)]
    for packet in packets:
        assert wire.send(put(wire, packet))
    assert [addr for _, addr in udp.sent] == [("192.0.2.1", 5000)] * 3
    assert [receiver.unprotect(data) for data, _ in udp.sent] == packets
    # aiortc's own sends (RTCP here) share the session and stay in step with the wire's.
    rtcp = struct.pack("!BBHI", 0x80, 201, 1, 0x1234)
    assert receiver.unprotect_rtcp(dtls._tx_srtp.protect_rtcp(rtcp)) == rtcp
    (stats,) = dtls._get_stats().values()
    assert stats.packetsSent == 3
    assert stats.bytesSent == sum(len(data) for data, _ in udp.sent)


def test_wire_follows_a_new_nominated_pair_and_drops_while_not_connected() -> None:
    dtls, udp = connected_transport()
    wire = Wire.of(dtls)
    assert wire.send(put(wire, rtp(1, b"x" * 100)))
    other = FakeUdp()
    protocol = type("Protocol", (), {"transport": other})()
    dtls.transport._connection._nominated[1] = FakePair(protocol, ("192.0.2.2", 6000))
    assert wire.send(put(wire, rtp(2, b"x" * 100)))
    assert [addr for _, addr in other.sent] == [("192.0.2.2", 6000)]

    dtls.transport._connection._nominated.clear()
    assert not wire.send(put(wire, rtp(3, b"x" * 100)))
    dtls.transport._connection._nominated[1] = FakePair(protocol, ("192.0.2.2", 6000))
    dtls._state = State.CLOSED
    assert not wire.send(put(wire, rtp(4, b"x" * 100)))
    assert len(udp.sent) == 1 and len(other.sent) == 1


def test_wire_takes_the_largest_packet_it_announces() -> None:
    dtls, udp = connected_transport()
    wire = Wire.of(dtls)
    packet = rtp(1, os.urandom(MAX_PLAIN_RTP - 12))
    assert wire.send(put(wire, packet))
    assert srtp_session(Policy.SSRC_ANY_INBOUND).unprotect(udp.sent[0][0]) == packet


class RecordingConnection:
    """What an aioice protocol tells its connection about."""

    def __init__(self) -> None:
        self.data: list[tuple[bytes, int]] = []
        self.requests: list[stun.Message] = []

    def data_received(self, data: bytes, component: int) -> None:
        self.data.append((data, component))

    def request_received(self, message: stun.Message, addr: Any, protocol: Any) -> None:
        self.requests.append(message)


@pytest.fixture
async def demuxed(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[StunProtocol, RecordingConnection, list[int]]:
    connection = RecordingConnection()
    protocol = StunProtocol(connection)  # type: ignore[arg-type]
    protocol.local_candidate = type("Candidate", (), {"component": 1})()  # type: ignore[assignment]
    parsed: list[int] = []
    parse = stun.parse_message

    def counting_parse(data: bytes, **kwargs: Any) -> stun.Message:
        parsed.append(len(data))
        return parse(data, **kwargs)

    monkeypatch.setattr(stun, "parse_message", counting_parse)
    fake_pc = type("PC", (), {})()
    transceiver = type("T", (), {})()
    transceiver.receiver = type("R", (), {})()
    transceiver.receiver.transport = type("D", (), {})()
    transceiver.receiver.transport.transport = type("I", (), {})()
    transceiver.receiver.transport.transport._connection = type("C", (), {})()
    transceiver.receiver.transport.transport._connection._protocols = [protocol]
    fake_pc.getTransceivers = lambda: [transceiver, transceiver]  # twice: patched once
    skip_stun_parsing_for_media(fake_pc)
    return protocol, connection, parsed


async def test_rtp_and_rtcp_skip_the_stun_parser(
    demuxed: tuple[StunProtocol, RecordingConnection, list[int]],
) -> None:
    protocol, connection, parsed = demuxed
    media = [rtp(1, b"payload"), struct.pack("!BBHI", 0x80, 200, 1, 0x1234)]
    for datagram in media:
        protocol.datagram_received(datagram, ("192.0.2.1", 5000))
    assert connection.data == [(datagram, 1) for datagram in media]
    assert parsed == []


async def test_stun_and_other_datagrams_still_go_through_aioice(
    demuxed: tuple[StunProtocol, RecordingConnection, list[int]],
) -> None:
    protocol, connection, parsed = demuxed
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    dtls_record = b"\x16\xfe\xfd" + os.urandom(40)
    protocol.datagram_received(bytes(request), ("192.0.2.1", 5000))
    protocol.datagram_received(dtls_record, ("192.0.2.1", 5000))
    protocol.datagram_received(b"", ("192.0.2.1", 5000))
    assert [m.transaction_id for m in connection.requests] == [request.transaction_id]
    assert connection.data == [(dtls_record, 1), (b"", 1)]
    assert len(parsed) == 3


async def test_every_server_ice_socket_demuxes_media_first_in_a_real_call() -> None:
    async with media_app() as app, people(app, "Alice", "Bob") as clients:
        room = app.server._rooms["h1"]
        protocols = [
            protocol
            for participant in room.participants.values()
            if participant.pc is not None
            for transceiver in participant.pc.getTransceivers()
            for protocol in transceiver.receiver.transport.transport._connection._protocols
        ]
        assert protocols and all(getattr(p, "_huddle_demux", False) for p in protocols)
        await all_keep_receiving(clients)


def test_aioice_internals_the_demux_relies_on() -> None:
    import inspect

    source = inspect.getsource(StunProtocol.datagram_received)
    assert "parse_message(data)" in source
    assert "self.receiver.data_received(data, self.local_candidate.component)" in source
    assert "_protocols" in inspect.getsource(Connection.__init__)


def test_aiortc_sender_internals_the_report_clock_relies_on() -> None:
    # media/forwarding.py replaces a forwarding sender's _run_rtcp and does its job: it must
    # signal the same events, and keep the LSR bookkeeping aiortc's RTT estimate reads.
    import inspect

    from aiortc import RTCRtpSender

    run = inspect.getsource(RTCRtpSender._run_rtcp)
    for name in (
        "__rtcp_started.set()",
        "__rtcp_exited.set()",
        "__lsr =",
        "__lsr_time =",
        "__cname",
    ):
        assert name in run, name
    stop = inspect.getsource(RTCRtpSender.stop)
    assert "__rtcp_started.wait()" in stop and "__rtcp_exited.wait()" in stop
    assert "self.__lsr == report.lsr" in inspect.getsource(RTCRtpSender._handle_rtcp_packet)


class CloggedSocket:
    """A real UDP socket whose first ``clogged`` sends fail as a full send buffer would."""

    def __init__(self, sock: Any, clogged: int) -> None:
        self._sock = sock
        self.clogged = clogged

    def sendto(self, data: bytes, addr: tuple[str, int]) -> int:
        if self.clogged:
            self.clogged -= 1
            raise BlockingIOError
        return int(self._sock.sendto(data, addr))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


async def test_wire_keeps_order_when_the_socket_is_momentarily_full() -> None:
    import asyncio
    import socket

    loop = asyncio.get_running_loop()
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    try:
        clogged = CloggedSocket(transport._sock, clogged=2)  # type: ignore[attr-defined]
        transport._sock = clogged  # type: ignore[attr-defined]
        dtls, _ = connected_transport()
        protocol = type("Protocol", (), {"transport": transport})()
        dtls.transport._connection._nominated[1] = FakePair(protocol, receiver.getsockname())
        wire = Wire.of(dtls)
        packets = [rtp(seq, bytes([seq]) * 50) for seq in range(1, 6)]
        for packet in packets:
            assert wire.send(put(wire, packet))  # the first two are queued by asyncio
        assert transport.get_write_buffer_size() > 0
        session = srtp_session(Policy.SSRC_ANY_INBOUND)
        got: list[bytes] = []
        deadline = loop.time() + 15
        while len(got) < len(packets) and loop.time() < deadline:
            try:
                got.append(session.unprotect(receiver.recv(2048)))
            except BlockingIOError:
                await asyncio.sleep(0.01)
        assert got == packets, "every packet arrives, in the order sent"
    finally:
        transport.close()
        receiver.close()

"""The C fan-out (media/_fanout.c): byte for byte what the Python path sends, and it steps aside.

A lane sends a copy only while the wire it was lent still holds: the DTLS transport connected
with the same SRTP session, the same nominated ICE pair, nothing queued on the socket, the
socket open. Anything else is left to Python (which sends through :class:`media.wire.Wire` and
lends the lane the new state). Real calls are run on both paths.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceGatherer, RTCIceTransport
from aiortc.rtcdtlstransport import State
from pylibsrtp import Policy, Session
from pylibsrtp._binding import ffi, lib

from media import _fanout, fanout
from media.fanout import NO_PAYLOAD_TYPE, PyLane, payload_type_map
from media.forwarding import _ONE_BYTE_PROFILE, _RTP_V2_WITH_EXTENSION
from media.wire import MAX_PLAIN_RTP, Wire
from tests.media.media_app import media_app
from tests.media.test_signaling import all_keep_receiving, people

# What media/fanout.py does on import, unless HUDDLE_FANOUT=python: these tests drive the C
# module itself either way.
_fanout.setup(int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_protect"))), State.CONNECTED)

KEY = os.urandom(28)  # AES-128-GCM: 16-byte key + 12-byte salt
SENDER_SSRC = 0xCAFE
MID_BLOCK = bytes([(3 << 4) | 0]) + b"7" + b"\x00\x00"  # mid "7" as extension id 3, padded
WORD_HI = ((2 << 4) | 2) << 24  # abs-send-time as extension id 2, 3 bytes
HEADER = struct.Struct(f"!BBHIIHHI{len(MID_BLOCK)}s")


def session(direction: int) -> Session:
    return Session(
        Policy(key=KEY, ssrc_type=direction, srtp_profile=Policy.SRTP_PROFILE_AEAD_AES_128_GCM)
    )


@dataclass
class Pair:
    """The two attributes of aioice's CandidatePair that a wire reads."""

    protocol: Any
    remote_addr: tuple[str, int]


@dataclass
class Sender:
    _enabled: bool = True


class Rig:
    """A connected DTLS transport on a real UDP socket, a lane lent its wire, a receiving socket."""

    def __init__(self, transport: asyncio.DatagramTransport) -> None:
        self.peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.peer.bind(("127.0.0.1", 0))
        self.peer.settimeout(2)
        self.inbound = session(Policy.SSRC_ANY_INBOUND)
        ice = RTCIceTransport(RTCIceGatherer(iceServers=[]))
        self.dtls: Any = RTCDtlsTransport(ice, [RTCCertificate.generateCertificate()])
        self.dtls._tx_srtp = session(Policy.SSRC_ANY_OUTBOUND)
        self.dtls._state = State.CONNECTED
        self.transport = transport
        self.nominated = ice._connection._nominated
        self.nominated[1] = Pair(type("P", (), {"transport": transport})(), self.peer.getsockname())
        self.wire = Wire.of(self.dtls)
        self.sender = Sender()
        self.lane = _fanout.Lane(self.sender)
        template = HEADER.pack(
            _RTP_V2_WITH_EXTENSION, 0, 0, 0, SENDER_SSRC, _ONE_BYTE_PROFILE, 2, 0, MID_BLOCK
        )
        self.lane.configure(template, WORD_HI)
        # Publisher payload type 96 -> 97; offsets as a binding's.
        self.lane.bind(1000, 5_000_000, 10, payload_type_map({96: 97}))
        self.lane.ready = 1
        self.lent = 0

    def expected(self, seq: int, ts: int, marker: int, ext: int, payload: bytes) -> bytes:
        """What the Python path builds for this copy (media.forwarding._send_copies)."""
        return (
            HEADER.pack(
                _RTP_V2_WITH_EXTENSION,
                (0x80 if marker else 0) | 97,
                (seq + 1000) & 0xFFFF,
                (ts + 5_000_000) & 0xFFFFFFFF,
                SENDER_SSRC,
                _ONE_BYTE_PROFILE,
                2,
                WORD_HI | ext,
                MID_BLOCK,
            )
            + payload
        )

    def lend(self) -> None:
        """Send one copy through the wire, as Python does first, and lend the lane its state."""
        self.lent += 1  # each its own sequence number: the receiver's replay check sees them all
        packet = self.expected(self.lent - 100, 0, 0, 0, b"first")
        self.wire.buffer[0 : len(packet)] = packet
        assert self.wire.send(len(packet))
        assert self.wire.lend(self.lane)
        assert self.received() == packet

    def forward(
        self, seq: int, payload: bytes, *, pt: int = 96, in_order: bool = True
    ) -> tuple[int, int, int, list[int] | None]:
        return _fanout.forward((self.lane,), payload, pt, seq, seq * 10, 1, 0x123456, 77, in_order)

    def received(self) -> bytes:
        data, _ = self.peer.recvfrom(2048)
        return self.inbound.unprotect(data)

    def nothing_received(self) -> bool:
        self.peer.setblocking(False)
        try:
            self.peer.recvfrom(2048)
        except BlockingIOError:
            return True
        finally:
            self.peer.settimeout(2)
        return False


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    made = Rig(transport)
    yield made
    transport.close()
    made.peer.close()


async def test_a_lane_sends_byte_for_byte_what_python_sends_and_counts_it(rig: Rig) -> None:
    rig.lend()
    payload = os.urandom(1000)
    sent, sent_bytes, dropped, left = rig.forward(20, payload)
    assert (sent, dropped, left) == (1, 0, None)
    expected = rig.expected(20, 200, 1, 0x123456, payload)
    assert sent_bytes == len(expected)
    assert rig.received() == expected
    assert (rig.lane.packets, rig.lane.octets, rig.lane.seq) == (1, 1000, 1020)
    assert (rig.lane.rtp_timestamp, rig.lane.ntp) == (5_000_200, 77)
    assert rig.lane.wire_packets == 1 and rig.lane.wire_bytes > sent_bytes  # + the SRTP tag


async def test_a_lane_without_a_wire_or_whose_wire_changed_leaves_the_copy_to_python(
    rig: Rig,
) -> None:
    assert rig.forward(20, b"x")[3] == [0], "no wire lent yet"
    rig.lend()
    assert rig.forward(21, b"x" * (MAX_PLAIN_RTP - HEADER.size + 1))[3] == [0], "too long"
    rig.dtls._tx_srtp = session(Policy.SSRC_ANY_OUTBOUND)
    assert rig.forward(22, b"x")[3] == [0], "new SRTP session"
    rig.lend()
    rig.nominated[1] = Pair(rig.nominated[1].protocol, rig.peer.getsockname())
    assert rig.forward(23, b"x")[3] == [0], "another pair nominated"
    rig.lend()
    rig.dtls._state = State.CLOSED
    assert rig.forward(24, b"x")[3] == [0], "transport closed"
    rig.dtls._state = State.CONNECTED
    rig.lane.drop()
    assert rig.forward(25, b"x")[3] == [0], "wire dropped"
    assert rig.nothing_received()


async def test_a_lane_leaves_a_closing_socket_alone(rig: Rig) -> None:
    rig.lend()
    rig.transport.close()  # its descriptor may be reused by another socket from now on
    assert rig.forward(20, b"x")[3] == [0]
    assert rig.nothing_received()


async def test_a_lane_keeps_order_behind_datagrams_asyncio_queued(rig: Rig) -> None:
    rig.lend()
    backlog: Any = rig.transport._buffer  # type: ignore[attr-defined]
    backlog.append((b"queued", rig.peer.getsockname()))
    try:
        assert rig.forward(20, b"x")[3] == [0]
    finally:
        backlog.clear()
    assert rig.forward(21, b"x")[:3] == (1, HEADER.size + 1, 0)


async def test_what_a_lane_does_not_send(rig: Rig) -> None:
    rig.lend()
    assert rig.forward(20, b"x", pt=100)[:3] == (0, 0, 1), "payload type not negotiated"
    rig.sender._enabled = False
    assert rig.forward(21, b"x")[:3] == (0, 0, 1), "sender disabled"
    rig.sender._enabled = True
    rig.lane.ready = 0
    assert rig.forward(22, b"x")[:3] == (0, 0, 1), "sender stopped"
    rig.lane.ready = 1
    # A late packet from before the subscriber's start (publisher seq 10) is not sent at all.
    assert rig.forward(5, b"x", in_order=False)[:3] == (0, 0, 0)
    assert rig.nothing_received()
    assert rig.forward(11, b"x", in_order=False)[:3] == (1, HEADER.size + 1, 0)
    assert rig.received()[:4] == rig.expected(11, 110, 1, 0x123456, b"x")[:4]
    assert rig.lane.seq == -1, "an out-of-order copy does not move the highest sequence number"


def test_payload_type_map_marks_what_is_not_forwarded() -> None:
    mapping = payload_type_map({96: 97, 111: 96})
    assert len(mapping) == 128 and mapping[96] == 97 and mapping[111] == 96
    assert mapping[0] == NO_PAYLOAD_TYPE


@pytest.fixture(params=["c", "python"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run on the C fan-out and on the Python one (as without the extension)."""
    c = request.param == "c"
    monkeypatch.setattr(fanout, "forward", _fanout.forward if c else None)
    monkeypatch.setattr(fanout, "Lane", _fanout.Lane if c else PyLane)
    yield request.param


async def test_a_real_call_on_either_path(path: str) -> None:
    async with media_app() as app, people(app, "Alice", "Bob", "Carol") as clients:
        await all_keep_receiving(clients)
        room = app.server._rooms["h1"]
        lanes = [
            forwarder._lanes
            for participant in room.participants.values()
            for forwarder in participant.published.values()
        ]
        assert len(lanes) == 6  # three people, audio and video each
        if path == "c":
            sent_from_c = [lane.wire_packets for group in lanes if group for lane in group]
            assert len(sent_from_c) == 12 and all(count > 0 for count in sent_from_c)
        else:
            assert all(group is None for group in lanes)
        # What the senders report (sender reports, getStats) is what they sent, either way.
        participant = next(iter(room.participants.values()))
        for transceiver in participant.pc.getTransceivers():
            if transceiver.direction != "sendonly":
                continue
            report = await transceiver.sender.getStats()
            outbound = next(s for s in report.values() if s.type == "outbound-rtp")
            assert outbound.packetsSent > 0


async def test_a_lane_moves_vp8_picture_ids_as_python_does(rig: Rig) -> None:
    from media.vp8 import descriptor, rewrite

    rig.lend()
    rig.lane.bind(1000, 5_000_000, 10, payload_type_map({96: 97}), 0x7FFF - 0x1230 + 1, 250)
    payload = bytes([0x90, 0xE0, 0x80 | 0x12, 0x34, 200, 0x40]) + os.urandom(200)
    found = descriptor(payload)
    sent = _fanout.forward((rig.lane,), payload, 96, 20, 200, 1, 0x123456, 77, True, *found[:5])
    assert sent[:3] == (1, HEADER.size + len(payload), 0)
    moved = rewrite(payload, found, 0x7FFF - 0x1230 + 1, 250)
    assert rig.received() == rig.expected(20, 200, 1, 0x123456, moved)
    assert (descriptor(moved).pid, descriptor(moved).tl0) == (4, 194)
    assert (rig.lane.pid, rig.lane.tl0) == (4, 194), "what the next source continues from"
    # A descriptor past the payload's end (a lying caller) is not written.
    assert _fanout.forward((rig.lane,), b"\x90", 96, 21, 210, 1, 0, 78, True, 5, True, 1, 9, 1)[0]
    assert rig.received()[-1:] == b"\x90"

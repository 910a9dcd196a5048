"""A simulcast publisher's layers, taken apart by rid and sent one per subscriber, byte for byte
as a subscriber would receive them (no network: capturing transports, as in
``test_forwarding_rewrite``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpTransceiver
from aiortc.rtcrtpparameters import (
    RTCRtpHeaderExtensionParameters,
    RTCRtpReceiveParameters,
    RTCRtpSendParameters,
)
from aiortc.rtcrtpreceiver import RemoteStreamTrack
from aiortc.rtp import HeaderExtensionsMap, RtpPacket, is_rtcp, wrap_rtx

from media.forwarding import ForwardingStats, add_forwarding_transceiver
from media.simulcast import REPAIRED_RID_URI, RID_URI, SimulcastForwarder, tap_simulcast
from media.vp8 import descriptor
from tests.media.peers import NO_ICE_SERVERS, CapturingTransport
from tests.media.test_forwarding_rewrite import (
    ABS_SEND_TIME,
    MID,
    OUR_EXTENSIONS,
    OUR_RTX,
    OUR_VP8,
    THEIR_RTX,
    THEIR_VP8,
)

pytestmark = pytest.mark.timeout(10)

SSRC = {"q": 0x1001, "h": 0x1002, "f": 0x1003}
RTX_SSRC = {"q": 0x2001, "h": 0x2002, "f": 0x2003}
HEIGHT = {"q": 120, "h": 240, "f": 480}


def frame(rid: str, n: int, *, key: bool) -> bytes:
    """Frame ``n`` of layer ``rid``: each layer numbers its pictures its own way."""
    picture_id = {"q": 100, "h": 5000, "f": 20000}[rid] + n
    described = bytes([0x90, 0xE0, 0x80 | (picture_id >> 8), picture_id & 0xFF, n & 0xFF, 0])
    body = rid.encode() * 40  # which layer it is, for the test to tell
    if not key:
        return described + b"\x11\x02\x00" + body
    size = (HEIGHT[rid] * 4 // 3).to_bytes(2, "little") + HEIGHT[rid].to_bytes(2, "little")
    return described + b"\x10\x02\x00\x9d\x01\x2a" + size + body


def packet(rid: str, n: int, *, key: bool = False, named: bool = True) -> RtpPacket:
    out = RtpPacket(
        payload_type=96,
        sequence_number=(1000 * (1 + list(SSRC).index(rid)) + n) & 0xFFFF,
        timestamp=3000 * n + 7 * list(SSRC).index(rid),
        ssrc=SSRC[rid],
        payload=frame(rid, n, key=key),
        marker=1,
    )
    out.extensions.abs_send_time = 0x123456
    if named:  # Chromium names the stream on its first packets only
        out.extensions.mid = "0"
        out.extensions.rtp_stream_id = rid
    return out


@dataclass
class Rig:
    receiver: Any
    forwarder: SimulcastForwarder
    transceiver: RTCRtpTransceiver
    out: CapturingTransport
    pc: RTCPeerConnection

    async def publish(self, *packets: RtpPacket) -> None:
        for p in packets:
            await self.receiver._handle_rtp_packet(p, arrival_time_ms=0)

    def sent(self) -> list[RtpPacket]:
        extensions = HeaderExtensionsMap()
        extensions.configure(RTCRtpSendParameters(headerExtensions=OUR_EXTENSIONS["video"]))
        return [RtpPacket.parse(d, extensions) for d in self.out.sent if not is_rtcp(d)]

    def layers_sent(self) -> list[str]:
        """Which layer each packet sent came from (its last byte says)."""
        return [chr(p.payload[-1]) for p in self.sent()]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    source = CapturingTransport()
    receiver: Any = RTCRtpReceiver("video", source.dtls)
    receiver._track = RemoteStreamTrack(kind="video")
    receiver._set_rtcp_ssrc(0x5555)
    forwarder = tap_simulcast(
        receiver, ForwardingStats(), ["q", "h", "f"], {RID_URI: 10, REPAIRED_RID_URI: 11}
    )
    await receiver.receive(
        RTCRtpReceiveParameters(
            codecs=[THEIR_VP8, THEIR_RTX],
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=2, uri=ABS_SEND_TIME),
                RTCRtpHeaderExtensionParameters(id=4, uri=MID),
                RTCRtpHeaderExtensionParameters(id=10, uri=RID_URI),
                RTCRtpHeaderExtensionParameters(id=11, uri=REPAIRED_RID_URI),
            ],
            muxId="0",
            encodings=[],
        )
    )
    pc = RTCPeerConnection(NO_ICE_SERVERS)
    transceiver = add_forwarding_transceiver(pc, "video")
    out = CapturingTransport()
    transceiver.sender.setTransport(out.dtls)
    await transceiver.sender.send(
        RTCRtpSendParameters(
            codecs=[OUR_VP8, OUR_RTX], headerExtensions=OUR_EXTENSIONS["video"], muxId="7"
        )
    )
    yield Rig(receiver, forwarder, transceiver, out, pc)
    await pc.close()


async def test_a_subscriber_gets_one_layer_and_switches_without_a_gap(rig: Rig) -> None:
    sender = rig.transceiver.sender
    rig.forwarder.add_subscriber(sender)
    for rid in ("q", "h", "f"):
        await rig.publish(packet(rid, 0, key=True))
    await rig.publish(packet("q", 1, named=False), packet("f", 1, named=False))
    assert rig.layers_sent() == ["f", "f"], "the largest layer by default, one layer only"
    assert rig.forwarder.sizes == {"q": (160, 120), "h": (320, 240), "f": (640, 480)}
    assert rig.forwarder.layer_for(100) == "q" and rig.forwarder.layer_for(480) == "f"
    assert rig.forwarder.layer_for(230) == "h" and rig.forwarder.layer_for(2000) == "f"

    # To the small layer: the large one goes on until the small one's keyframe.
    rig.forwarder.choose(sender, "q")
    await rig.publish(packet("q", 2, named=False), packet("f", 2, named=False))
    assert rig.forwarder.wanted() == {"q", "f"}, "both sent while switching"
    await rig.publish(packet("q", 3, key=True, named=False), packet("f", 3, named=False))
    await rig.publish(packet("q", 4, named=False), packet("f", 4, named=False))
    assert rig.layers_sent() == ["f", "f", "f", "q", "q"]
    assert rig.forwarder.layer_of(sender) == "q" and rig.forwarder.wanted() == {"q"}
    sent = rig.sent()
    start = sent[0].sequence_number
    assert [(p.sequence_number - start) & 0xFFFF for p in sent] == [0, 1, 2, 3, 4]
    pids = [descriptor(p.payload).pid for p in sent]
    assert pids == [pids[0] + n for n in range(5)], "picture IDs contiguous across the switch"
    assert len({p.ssrc for p in sent}) == 1

    # Paused (a tile nobody sees): nothing; shown again: from the next keyframe.
    rig.forwarder.choose(sender, None)
    await rig.publish(packet("q", 5, key=True, named=False))
    assert len(rig.sent()) == 5 and rig.forwarder.wanted() == set()
    assert sender in rig.forwarder.subscribers
    rig.forwarder.choose(sender, "h")
    await rig.publish(packet("h", 6, named=False), packet("h", 7, key=True, named=False))
    assert rig.layers_sent()[5:] == ["h"]
    assert descriptor(rig.sent()[-1].payload).pid == pids[-1] + 1

    rig.forwarder.remove_subscriber(sender)
    assert rig.forwarder.subscribers == [] and rig.forwarder.wanted() == set()


async def test_a_layers_retransmissions_are_known_by_their_repaired_rid(rig: Rig) -> None:
    sender = rig.transceiver.sender
    rig.forwarder.add_subscriber(sender)
    # The RTX stream names its layer before the layer's media has been seen: kept for later.
    probe = wrap_rtx(
        packet("f", 9, named=False), payload_type=97, sequence_number=1, ssrc=RTX_SSRC["f"]
    )
    probe.extensions.repaired_rtp_stream_id = "f"
    await rig.publish(probe, packet("f", 0, key=True), packet("f", 2, named=False))
    missing = packet("f", 1, named=False)
    rtx = wrap_rtx(missing, payload_type=97, sequence_number=2, ssrc=RTX_SSRC["f"])
    await rig.publish(rtx)
    sent = rig.sent()
    assert [descriptor(p.payload).pid for p in sent] == [20000, 20002, 20001]


async def test_a_stream_that_never_named_its_layer_is_not_forwarded(rig: Rig) -> None:
    rig.forwarder.add_subscriber(rig.transceiver.sender)
    await rig.publish(packet("f", 0, key=True, named=False), packet("f", 1, named=False))
    assert rig.sent() == []
    assert rig.forwarder.stats.packets_dropped >= 2

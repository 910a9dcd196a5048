"""Packet loss in a real call: video survives it, repaired by NACK and RTX, or by a keyframe.

A publisher (an aiortc client whose camera makes keyframes only at start and on PLI) sends VP8
through a real :class:`media.server.MediaServer` to aiortc subscribers that decode. Loss is made in
the clients, where a packet leaves or enters them: a dropped packet never reaches the wire (on the
publisher) or never reaches the receiver (on a subscriber), exactly as if the network lost it. The
server is untouched.

Outcomes are asserted, and the order of events, never how long anything took (that is bench/'s):
repaired video goes on decoding with no keyframe; unrepairable video comes back from one the
server asked for before any viewer did.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiortc import RTCRtpSender
from aiortc.codecs import is_rtx
from aiortc.rtp import RtpPacket, is_rtcp

from media.contrib.client import HuddleClient
from media.keyframes import is_vp8_keyframe_start
from media.server import MediaStats
from tests.media.media_app import MediaApp, media_app
from tests.media.peers import Camera, wait_for

pytestmark = pytest.mark.timeout(120)

#: Seconds any awaited outcome may take: generous, so that a loaded machine is slow, not red.
WITHIN = 20.0
#: Alice's camera's frame rate. Lower than a real camera's 30, so that her ~35 packets a second
#: leave the 128-packet RTP histories (hers, and the server's for each viewer) only after ~3.5 s:
#: on a loaded machine a NACK's round trip can take over a second, and a packet gone from the
#: history can no longer be resent (then only a keyframe helps, which these tests tell apart).
FPS = 10
#: Consecutive video packets lost in an outage (about 0.9 s of Alice's video).
OUTAGE = 30


class PublisherLeg:
    """The publisher's video on its way to the server, losing what :attr:`lose` picks.

    ``lose(sequence_number, retransmission)`` decides for every video packet the publisher sends:
    original packets by their sequence number, RTX ones by the sequence number they carry.
    """

    def __init__(self, sender: RTCRtpSender, camera: Camera) -> None:
        self.lose: Callable[[int, bool], bool] | None = None
        #: Original video packets sent, and those lost (by sequence number).
        self.sent: list[int] = []
        self.dropped: list[int] = []
        #: Sequence numbers the server asked for again (NACK); those resent and delivered, and
        #: those resent and lost again.
        self.nacked: list[int] = []
        self.resent: list[int] = []
        self.resent_lost: list[int] = []
        #: Loop times of the PLIs the publisher received.
        self.plis: list[float] = []
        self._ssrc = sender._ssrc
        self._rtx_ssrc = sender._rtx_ssrc
        any_sender: Any = sender
        dtls: Any = sender.transport
        send_rtp = dtls._send_rtp
        retransmit = any_sender._retransmit

        async def lossy_send_rtp(data: bytes) -> None:
            if not is_rtcp(data) and self._lost(RtpPacket.parse(data)):
                return
            await send_rtp(data)

        async def observed_retransmit(sequence_number: int) -> None:
            self.nacked.append(sequence_number)
            await retransmit(sequence_number)

        def keyframe_requested() -> None:
            self.plis.append(asyncio.get_running_loop().time())
            camera.request_keyframe()

        dtls._send_rtp = lossy_send_rtp
        any_sender._retransmit = observed_retransmit
        any_sender._send_keyframe = keyframe_requested

    def _lost(self, packet: RtpPacket) -> bool:
        if packet.ssrc == self._ssrc:
            seq, retransmission = packet.sequence_number, False
            self.sent.append(seq)
        elif packet.ssrc == self._rtx_ssrc and len(packet.payload) >= 2:
            seq, retransmission = int.from_bytes(packet.payload[:2], "big"), True
        else:
            return False
        lost = self.lose is not None and self.lose(seq, retransmission)
        if retransmission:
            (self.resent_lost if lost else self.resent).append(seq)
        elif lost:
            self.dropped.append(seq)
        return lost


class SubscriberLeg:
    """The publisher's video as one viewer's client receives it, losing what :attr:`lose` picks.

    ``lose(sequence_number)`` decides for every original video packet (retransmissions always
    arrive). The leg also notes when the client's count of decoded frames grows.
    """

    def __init__(self, client: HuddleClient, source: str) -> None:
        self.client = client
        self.source = source
        self.lose: Callable[[int], bool] | None = None
        #: Sequence numbers received in original packets, in retransmissions (RTX), and lost.
        self.received: list[int] = []
        self.resent: list[int] = []
        self.dropped: list[int] = []
        #: Loop times at which a keyframe started arriving, and at which the count of decoded
        #: frames was seen to grow.
        self.keyframes: list[float] = []
        self.frame_times: list[float] = []
        # Every transceiver of the client shares the first one's transport (BUNDLE).
        dtls: Any = client.pc.getTransceivers()[0].receiver.transport
        handle_rtp_data = dtls._handle_rtp_data
        self._extensions = dtls._rtp_header_extensions_map
        self._rtx_types: dict[str, set[int]] = {}

        async def lossy_handle_rtp_data(data: bytes, arrival_time_ms: int) -> None:
            if not self._lost(data):
                await handle_rtp_data(data, arrival_time_ms)

        dtls._handle_rtp_data = lossy_handle_rtp_data
        #: Loop times at which the viewer asked for a keyframe (PLI) itself.
        self.plis: list[float] = []
        for transceiver in client.pc.getTransceivers():
            if transceiver.kind == "video":
                self._record_plis(transceiver.receiver)
        self._watch = asyncio.ensure_future(self._watch_frames())

    def _record_plis(self, receiver: Any) -> None:
        send_pli = receiver._send_rtcp_pli

        async def recorded(media_ssrc: int) -> None:
            self.plis.append(asyncio.get_running_loop().time())
            await send_pli(media_ssrc)

        receiver._send_rtcp_pli = recorded

    @property
    def frames(self) -> int:
        """Video frames from the publisher decoded so far."""
        return self.client.received_from(self.source).frames_decoded

    def frames_after(self, moment: float) -> int:
        return sum(1 for at in self.frame_times if at > moment)

    def decoding_since(self, moment: float, frames: int = 30) -> Callable[[], bool]:
        """For ``wait_for``: whether ``frames`` frames were decoded after ``moment``."""
        return lambda: self.frames_after(moment) >= frames

    def holes(self) -> list[int]:
        """Sequence numbers never received, original or resent, since the first one received."""
        if not self.received:
            return []
        first = self.received[0]
        offsets = {(seq - first) & 0xFFFF for seq in [*self.received, *self.resent]}
        offsets = {offset for offset in offsets if offset < 0x8000}
        return [(first + o) & 0xFFFF for o in range(max(offsets)) if o not in offsets]

    def close(self) -> None:
        self._watch.cancel()

    async def _watch_frames(self) -> None:
        loop = asyncio.get_running_loop()
        seen = self.frames
        while True:
            count = self.frames
            now = loop.time()
            if count > seen:
                seen = count
                self.frame_times.append(now)
            await asyncio.sleep(0.005)

    def _lost(self, data: bytes) -> bool:
        packet = RtpPacket.parse(data, self._extensions)
        mid = packet.extensions.mid
        stream = self.client.streams.get(mid) if mid is not None else None
        if stream is None or stream["participant"] != self.source or stream["kind"] != "video":
            return False
        assert mid is not None
        if packet.payload_type in self._rtx_payload_types(mid):
            if len(packet.payload) >= 2:
                self.resent.append(int.from_bytes(packet.payload[:2], "big"))
            return False
        seq = packet.sequence_number
        if self.lose is not None and self.lose(seq):
            self.dropped.append(seq)
            return True
        self.received.append(seq)
        if is_vp8_keyframe_start(packet.payload):
            self.keyframes.append(asyncio.get_running_loop().time())
        return False

    def _rtx_payload_types(self, mid: str) -> set[int]:
        types = self._rtx_types.get(mid)
        if types is None:
            transceiver: Any = next(t for t in self.client.pc.getTransceivers() if t.mid == mid)
            types = {codec.payloadType for codec in transceiver._codecs if is_rtx(codec)}
            self._rtx_types[mid] = types
        return types


@dataclass
class Call:
    """Alice publishes in huddle h1 of a real media server; the viewers only watch her."""

    app: MediaApp
    alice: HuddleClient
    camera: Camera
    upstream: PublisherLeg
    viewers: list[SubscriberLeg] = field(default_factory=list)
    #: Loop times at which the server sent Alice a PLI (before it reaches her).
    server_plis: list[float] = field(default_factory=list)

    def stats(self) -> MediaStats:
        return self.app.server.stats()

    def now(self) -> float:
        return asyncio.get_running_loop().time()


@asynccontextmanager
async def call(viewers: int = 2) -> AsyncIterator[Call]:
    """Alice and ``viewers`` people who only watch; everyone decodes her video on return.

    Her camera's picture costs about 3.5 packets a frame, as a real camera's does (~0.8 Mbit/s at
    30 fps); at :data:`FPS` that is ~35 packets a second.
    """
    async with media_app() as app, AsyncExitStack() as stack:
        alice = await stack.enter_async_context(
            HuddleClient(app.join_url(), "Alice", publish_video=False)
        )
        camera = Camera(320, 240, fps=FPS, noisy_rows=60, skip_late=True)
        transceiver = alice.pc.addTransceiver(camera, direction="sendonly")
        await alice.join()
        assert alice.you is not None
        the_call = Call(app, alice, camera, PublisherLeg(transceiver.sender, camera))
        _record_server_plis(app, alice.you["id"], the_call.server_plis)
        for number in range(1, viewers + 1):
            viewer = HuddleClient(
                app.join_url(), f"Viewer {number}", publish_audio=False, publish_video=False
            )
            await stack.enter_async_context(viewer)
            await viewer.join()
            leg = SubscriberLeg(viewer, alice.you["id"])
            stack.callback(leg.close)
            the_call.viewers.append(leg)
        for leg in the_call.viewers:
            await wait_for(lambda leg=leg: leg.frames >= 10, WITHIN, "video at every viewer")
        yield the_call


def _record_server_plis(app: MediaApp, publisher_id: str, into: list[float]) -> None:
    """Note when the server's forwarder sends the publisher's video a PLI."""
    forwarder = app.server._rooms["h1"].participants[publisher_id].published["video"]
    tapped: Any = forwarder.receiver
    send_pli = tapped._send_rtcp_pli

    def recorded(media_ssrc: int) -> Any:
        into.append(asyncio.get_running_loop().time())  # when decided, not when sent
        return send_pli(media_ssrc)

    tapped._send_rtcp_pli = recorded


def lose_next(count: int, lost: list[int]) -> Callable[[int, bool], bool]:
    """An outage: every packet (retransmissions too) until ``count`` more originals are lost."""
    until = len(lost) + count
    return lambda seq, retransmission: len(lost) < until


@pytest.fixture
def decode_errors(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """aiortc's complaints about frames it could not decode (logged by its decoder threads)."""
    caplog.set_level(logging.WARNING, logger="aiortc.rtcrtpreceiver")

    def errors() -> list[str]:
        return [r.getMessage() for r in caplog.records if "failed to decode" in r.getMessage()]

    return errors


# -- loss between the publisher and the server ---------------------------------------------------


async def test_lost_publisher_packets_are_nacked_resent_and_forwarded_so_no_keyframe_is_needed(
    decode_errors: Callable[[], list[str]],
) -> None:
    async with call() as c:
        before = c.stats()
        start = c.now()

        # One in twelve of Alice's video packets is lost on the way (8%), and so is the first
        # retransmission of every third of those; later all of them for about a second (an outage
        # her 128-packet history still covers): NACK alone can repair everything.
        def lose(seq: int, retransmission: bool) -> bool:
            if not retransmission:
                return seq % 12 == 0
            dropped = c.upstream.dropped
            return (
                seq in dropped and dropped.index(seq) % 3 == 0 and seq not in c.upstream.resent_lost
            )

        c.upstream.lose = lose
        await wait_for(lambda: len(c.upstream.dropped) >= 30, WITHIN, "30 lost packets")
        # The outage comes once those are back: one lost just before it would have its retries
        # lost in it too, and be given up (as it should: that is the next test's case).
        c.upstream.lose = None
        scattered = set(c.upstream.dropped)
        await wait_for(lambda: scattered <= set(c.upstream.resent), WITHIN, "those resent")
        outage = len(c.upstream.dropped) + OUTAGE
        c.upstream.lose = lose_next(OUTAGE, c.upstream.dropped)
        await wait_for(lambda: len(c.upstream.dropped) >= outage, WITHIN, "the outage")
        c.upstream.lose = None
        lost = set(c.upstream.dropped)
        repaired = c.now()

        # The server asked Alice again for every lost packet (again when a retransmission was
        # lost), she resent each, and the server forwarded them: every viewer has them all.
        await wait_for(lambda: lost <= set(c.upstream.resent), WITHIN, "every lost packet resent")
        for viewer in c.viewers:
            await wait_for(lambda v=viewer: not v.holes(), WITHIN, "every packet at every viewer")
        assert lost <= set(c.upstream.nacked)
        assert len(c.upstream.resent_lost) >= 5

        # Video goes on decoding past every hole, and no keyframe was needed for it: without
        # the repair a viewer could not decode on until a new keyframe.
        for viewer in c.viewers:
            await wait_for(viewer.decoding_since(repaired), WITHIN, "video after the loss")
            assert not [at for at in viewer.keyframes if at > start]
        assert not [at for at in c.upstream.plis if at > start]
        assert c.stats().keyframe_requests == before.keyframe_requests
        assert decode_errors() == []


async def test_a_packet_whose_retransmission_was_lost_too_is_asked_for_again() -> None:
    async with call() as c:
        # One packet of Alice's video is lost, and so is its first retransmission; nothing else.
        target: list[int] = []

        def lose(seq: int, retransmission: bool) -> bool:
            if not retransmission:
                if not target:
                    target.append(seq)
                return seq in target
            return seq in target and seq not in c.upstream.resent_lost

        c.upstream.lose = lose
        await wait_for(lambda: bool(c.upstream.resent_lost), WITHIN, "the retransmission lost")
        await wait_for(lambda: target[0] in c.upstream.resent, WITHIN, "the packet asked for again")
        for viewer in c.viewers:
            await wait_for(lambda v=viewer: not v.holes(), WITHIN, "the packet at every viewer")


async def test_a_frame_lost_beyond_repair_is_replaced_by_a_keyframe_on_request() -> None:
    async with call() as c:
        before = c.stats()
        keyframes_before = c.camera.keyframes_sent
        # An outage of Alice's video on the way, and every retransmission of it lost too.
        gone: set[int] = set()

        def lose(seq: int, retransmission: bool) -> bool:
            if not retransmission and len(gone) < OUTAGE:
                gone.add(seq)
            return seq in gone

        start = c.now()
        c.upstream.lose = lose
        await wait_for(lambda: len(gone) >= OUTAGE, WITHIN, "the outage")
        burst = c.now()
        # The server asked for each lost packet, in vain (each retransmission Alice still had is
        # lost too; on a loaded machine some have left her 128-packet history before the ask).
        await wait_for(
            lambda: gone <= set(c.upstream.nacked), WITHIN, "every lost packet asked for"
        )
        assert not gone & set(c.upstream.resent)

        # The server gives the packets up after its last try and asks Alice for a keyframe
        # itself, before any viewer stuck on the hole does (an aiortc viewer asks only when its
        # jitter buffer overflows, hundreds of packets on); Alice makes a keyframe, and every
        # viewer decodes again from it.
        def decoding_from_a_new_keyframe(viewer: SubscriberLeg) -> bool:
            keyframes = [at for at in viewer.keyframes if at > burst]
            return bool(keyframes) and viewer.frames_after(keyframes[0]) >= 10

        for viewer in c.viewers:
            await wait_for(
                lambda v=viewer: decoding_from_a_new_keyframe(v),
                WITHIN,
                "video from a new keyframe",
            )
        asked = [at for at in c.server_plis if at > start]
        assert asked, "the server asked Alice for a keyframe"
        viewers_asked = [at for viewer in c.viewers for at in viewer.plis if at > start]
        assert all(asked[0] < at for at in viewers_asked), (asked, viewers_asked)
        assert [at for at in c.upstream.plis if at > start], "and the PLI reached her"
        assert c.camera.keyframes_sent > keyframes_before
        after = c.stats()
        assert after.keyframe_requests > before.keyframe_requests
        assert after.keyframes_received > before.keyframes_received


# -- loss between the server and a subscriber ----------------------------------------------------


async def test_packets_lost_on_the_way_to_one_viewer_are_resent_by_the_server(
    decode_errors: Callable[[], list[str]],
) -> None:
    async with call() as c:
        lossy, other = c.viewers
        before = c.stats()
        nacked_before = len(c.upstream.nacked)
        start = c.now()
        # One viewer loses 10% of the video on its way to it (first transmissions only).
        chance = random.Random(10)
        lossy.lose = lambda seq: seq not in lossy.dropped and chance.random() < 0.1
        await wait_for(lambda: len(lossy.dropped) >= 30, WITHIN, "30 lost packets")
        lossy.lose = None
        repaired = c.now()

        # The viewer asked the server for each, and the server resent them from its own history.
        lost = set(lossy.dropped)
        await wait_for(lambda: lost <= set(lossy.resent), WITHIN, "every lost packet resent")
        await wait_for(lambda: not lossy.holes(), WITHIN, "every packet at the lossy viewer")
        after = c.stats()
        assert after.retransmits - before.retransmits >= len(lost)
        assert after.nacks_received - before.nacks_received >= len(lost)

        # The viewer's NACKs were not passed on to Alice (the machine may lose a packet of hers
        # for real now and then, hence no exact count).
        assert len(c.upstream.nacked) - nacked_before < len(lost) // 2

        # Video goes on decoding for both viewers, the lossy one past every hole, and no
        # keyframe was needed for it.
        for viewer in (lossy, other):
            await wait_for(viewer.decoding_since(repaired), WITHIN, "video after the loss")
            assert not [at for at in viewer.keyframes if at > start]
        assert not [at for at in c.upstream.plis if at > start]
        assert after.keyframe_requests == before.keyframe_requests
        assert decode_errors() == []

"""The forwarding unit on its own, with real aiortc peers: publishers, subscribers, no server.

Each publisher is an aiortc client sending VP8 (keyframes only at start and on PLI) and Opus to a
server-side connection tapped by :func:`media.forwarding.tap_publisher`; each subscriber is an
aiortc client answering a server-side connection whose senders come from
:func:`media.forwarding.add_forwarding_transceiver`. Subscribers decode what they get.

These attach subscribers by hand (as :mod:`media.rooms` does) so that a test can watch one
mechanism at a time: when a PLI is sent, what a sender's numbering does. The path a user takes,
through :class:`media.server.MediaServer` and its signaling, is in test_signaling.py, test_loss.py
and test_codecs.py. Timing is never asserted (bench/ measures it): outcomes within generous
deadlines, and the order of events, which load cannot change.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiortc.rtp import RtpPacket

from media.forwarding import ForwardingStats, add_forwarding_transceiver
from media.keyframes import PLI_MIN_INTERVAL, WAITING_RETRY_INTERVAL
from tests.media.peers import (
    Publisher,
    Received,
    Subscriber,
    start_publisher,
    start_subscriber,
    wait_for,
)

pytestmark = pytest.mark.timeout(90)

#: Seconds any awaited outcome may take: generous, so that a loaded machine is slow, not red.
WITHIN = 15.0


class Session:
    """Publishers and subscribers of one test, closed at its end."""

    def __init__(self) -> None:
        self.stats = ForwardingStats()
        self.publishers: list[Publisher] = []
        self.subscribers: list[Subscriber] = []

    async def publisher(self, **options: Any) -> Publisher:
        publisher = await start_publisher(self.stats, **options)
        self.publishers.append(publisher)
        return publisher

    async def subscriber(
        self, attach_to: Publisher | None = None, codec: str = "vp8"
    ) -> Subscriber:
        """A connected subscriber; attached to ``attach_to`` before negotiation if given."""

        def attach(subscriber: Subscriber) -> None:
            if attach_to is not None:
                attach_to.video.add_subscriber(subscriber.video.sender)
                attach_to.audio.add_subscriber(subscriber.audio.sender)

        subscriber = await start_subscriber(attach, codec=codec)
        self.subscribers.append(subscriber)
        return subscriber

    async def close(self) -> None:
        for peer in [*self.subscribers, *self.publishers]:
            await peer.close()


@pytest.fixture
async def session() -> AsyncIterator[Session]:
    session = Session()
    try:
        yield session
    finally:
        await session.close()


#: Seconds of silence between two publishers on one sender.
GAP = 0.2


def media_packets(subscriber: Subscriber) -> list[Received]:
    """The video packets received on the sender's own SSRC (not retransmissions)."""
    return [p for p in subscriber.packets if p.ssrc == subscriber.video.sender._ssrc]


async def packets_sent(subscriber: Subscriber) -> int:
    """How many video packets the server says it sent to ``subscriber`` (its sender's stats)."""
    report = await subscriber.video.sender.getStats()
    return int(next(s for s in report.values() if s.type == "outbound-rtp").packetsSent)


def frames_after(subscriber: Subscriber, moment: float) -> int:
    return sum(1 for at, _, _ in subscriber.frames if at > moment)


async def test_two_subscribers_decode_audio_and_video_forwarded_untouched(
    session: Session,
) -> None:
    publisher = await session.publisher()
    alice = await session.subscriber(attach_to=publisher)
    bob = await session.subscriber(attach_to=publisher)

    for subscriber in (alice, bob):
        await wait_for(lambda s=subscriber: len(s.frames) >= 20, WITHIN, "20 decoded frames")
        await wait_for(lambda s=subscriber: s.audio_frames >= 10, WITHIN, "10 audio frames")
        assert {(w, h) for _, w, h in subscriber.frames} == {(320, 240)}
        # The stream starts at a keyframe and is the sender's own: its SSRC and mid.
        first = subscriber.packets[0]
        assert first.keyframe_start
        sender = subscriber.video.sender
        assert {p.ssrc for p in subscriber.packets} <= {sender._ssrc, sender._rtx_ssrc}
        assert {p.mid for p in subscriber.packets} == {subscriber.video.mid}

    # The publisher numbered VP8 120 (as browsers number theirs); the subscribers got aiortc's 97.
    assert "a=rtpmap:120 VP8/90000" in publisher.server.remoteDescription.sdp
    assert {p.payload_type for p in media_packets(alice)} == {97}
    assert session.stats.packets_forwarded > 0
    assert session.stats.bytes_forwarded > session.stats.packets_forwarded * 12
    assert session.stats.keyframes_received >= 1
    # The server-side senders' own statistics (what RTCP sender reports carry) are true.
    report = await alice.video.sender.getStats()
    outbound = next(s for s in report.values() if s.type == "outbound-rtp")
    assert outbound.packetsSent >= len(alice.packets) > 0
    # The publisher's audio level extension is readable at the tap.
    assert publisher.audio.audio_level is not None


async def test_late_joiner_asks_for_a_keyframe_at_once_again_and_starts_with_it(
    session: Session,
) -> None:
    publisher = await session.publisher()
    early = await session.subscriber(attach_to=publisher)
    await wait_for(lambda: len(early.frames) >= 30, WITHIN, "the early subscriber's video")
    keyframes_before = publisher.camera.keyframes_sent

    late = await session.subscriber()
    # The first PLI is lost on the way: delta frames go by until the retry's keyframe comes.
    publisher.ignore_plis = 1
    asked_before = len(publisher.plis_sent)
    publisher.video.add_subscriber(late.video.sender)
    # At once: the PLI is on its way before add_subscriber returns, not after a timer.
    assert len(publisher.plis_sent) == asked_before + 1, "the late joiner asks at once"
    publisher.audio.add_subscriber(late.audio.sender)

    await wait_for(lambda: len(late.frames) > 0, WITHIN, "the late joiner's first frame")
    assert publisher.camera.keyframes_sent > keyframes_before
    assert late.packets[0].keyframe_start, "nothing is forwarded before the keyframe"
    assert late.packets[0].at > publisher.plis[asked_before + 1], "it answers the retry"
    await wait_for(lambda: late.audio_frames > 0, WITHIN, "the late joiner's audio")


async def test_subscriber_attached_before_connecting_starts_once_connected(
    session: Session,
) -> None:
    publisher = await session.publisher()
    # The publisher's first keyframe has gone by: the subscriber needs one made for it. Its
    # first PLI is lost, so delta frames go by until the retry's keyframe.
    await wait_for(lambda: session.stats.keyframes_received >= 1, WITHIN, "the first keyframe")
    publisher.ignore_plis = 1
    subscriber = await session.subscriber(attach_to=publisher)
    await wait_for(lambda: len(subscriber.frames) > 0, WITHIN, "video once connected")
    assert subscriber.packets[0].keyframe_start
    assert publisher.camera.keyframes_sent >= 2, "started from a keyframe asked for it"


async def test_removed_subscriber_stops_receiving(session: Session) -> None:
    publisher = await session.publisher()
    staying = await session.subscriber(attach_to=publisher)
    leaving = await session.subscriber(attach_to=publisher)
    await wait_for(lambda: len(leaving.frames) >= 10, WITHIN, "video before removal")

    publisher.video.remove_subscriber(leaving.video.sender)
    publisher.audio.remove_subscriber(leaving.audio.sender)
    assert publisher.video.subscribers == [staying.video.sender]
    sent = await packets_sent(leaving)
    moment = asyncio.get_running_loop().time()
    await wait_for(lambda: frames_after(staying, moment) >= 10, WITHIN, "video for the one staying")

    # Nothing more was sent, and the client got what was in flight and no more.
    assert await packets_sent(leaving) == sent
    assert len(media_packets(leaving)) <= sent


async def test_reused_sender_continues_its_sequence_numbers_and_timestamps(
    session: Session,
) -> None:
    first = await session.publisher(width=320, height=240)
    second = await session.publisher(width=160, height=120)
    subscriber = await session.subscriber(attach_to=first)
    await wait_for(lambda: len(subscriber.frames) >= 10, WITHIN, "the first publisher's video")

    # The first publisher leaves; the same senders now carry the second one.
    first.video.remove_subscriber(subscriber.video.sender)
    first.audio.remove_subscriber(subscriber.audio.sender)
    sent = await packets_sent(subscriber)
    await wait_for(lambda: len(media_packets(subscriber)) >= sent, WITHIN, "what was in flight")
    switched = len(media_packets(subscriber))
    # A pause in the stream (not a wait for anything): its length must show in the timestamps.
    await asyncio.sleep(GAP)
    second.video.add_subscriber(subscriber.video.sender)
    second.audio.add_subscriber(subscriber.audio.sender)
    await wait_for(
        lambda: any(w == 160 for _, w, _ in subscriber.frames),
        WITHIN,
        "the second publisher's video",
    )

    sender = subscriber.video.sender
    assert {p.ssrc for p in subscriber.packets} <= {sender._ssrc, sender._rtx_ssrc}
    media = media_packets(subscriber)
    assert media[switched].keyframe_start
    # One stream for the subscriber: consecutive numbers, timestamps moving forward.
    for before, after in itertools.pairwise(media):
        assert after.sequence_number == (before.sequence_number + 1) & 0xFFFF
        assert 0 <= (after.timestamp - before.timestamp) & 0xFFFFFFFF < 0x80000000
    # The gap in time shows in the timestamps (GAP at 90 kHz at least; load only adds to it).
    gap = (media[switched].timestamp - media[switched - 1].timestamp) & 0xFFFFFFFF
    assert gap >= GAP * 90000


async def test_lost_packets_are_resent_as_rtx_from_the_senders_history(
    session: Session,
) -> None:
    publisher = await session.publisher()
    subscriber = await session.subscriber(attach_to=publisher)
    await wait_for(lambda: len(subscriber.frames) >= 5, WITHIN, "video before the loss")
    media_pt = subscriber.packets[0].payload_type
    dropped: set[int] = set()
    loss_started = asyncio.get_running_loop().time()

    def lose_every_fifth(packet: RtpPacket) -> bool:
        if packet.payload_type != media_pt or len(dropped) >= 10:
            return False
        if packet.sequence_number % 5 == 0 and packet.sequence_number not in dropped:
            dropped.add(packet.sequence_number)
            return True
        return False

    subscriber.drop = lose_every_fifth
    await wait_for(lambda: len(dropped) >= 10, WITHIN, "ten lost packets")
    moment = asyncio.get_running_loop().time()
    rtx_ssrc = subscriber.video.sender._rtx_ssrc

    def resent() -> set[int]:
        return {int.from_bytes(p.head, "big") for p in subscriber.packets if p.ssrc == rtx_ssrc}

    await wait_for(lambda: dropped <= resent(), WITHIN, "every lost packet resent")
    assert {p.payload_type for p in subscriber.packets if p.ssrc == rtx_ssrc} != {media_pt}
    assert session.stats.retransmits >= 10
    assert session.stats.nacks_received >= session.stats.retransmits
    # Video keeps decoding; nothing was asked of the publisher since the loss began.
    await wait_for(lambda: frames_after(subscriber, moment) >= 10, WITHIN, "video after the loss")
    assert [at for at in publisher.plis_sent if at >= loss_started] == []


async def test_subscriber_plis_reach_the_publisher_rate_limited_and_each_is_answered(
    session: Session,
) -> None:
    # The exact schedule (one at once, the rest deferred to one more a second later) is
    # KeyframeRequests' on a fake clock, in test_keyframes.py; here, the real path end to end.
    publisher = await session.publisher()
    subscriber = await session.subscriber(attach_to=publisher)
    await wait_for(lambda: len(subscriber.frames) >= 5, WITHIN, "video")
    requests_before = session.stats.keyframe_requests_received
    receiver = subscriber.client_transceiver("video").receiver
    media_ssrc = subscriber.packets[-1].ssrc
    loop = asyncio.get_running_loop()
    start = loop.time()

    # The subscriber asks for a keyframe ten times, 50 ms apart.
    last_asked = start
    for _ in range(10):
        last_asked = loop.time()
        await receiver._send_rtcp_pli(media_ssrc)  # type: ignore[attr-defined]
        await asyncio.sleep(0.05)
    await wait_for(
        lambda: session.stats.keyframe_requests_received - requests_before >= 10,
        5,
        "the ten requests at the server",
    )

    # Not dropped: a keyframe starts at the subscriber after its last request...
    def keyframe_after_the_last_request() -> bool:
        return any(p.keyframe_start and p.at > last_asked for p in media_packets(subscriber))

    await wait_for(keyframe_after_the_last_request, WITHIN, "a keyframe after the last PLI")
    # ...from far fewer PLIs upstream, never two within the minimum interval (a lower bound:
    # load can only spread them further apart).
    upstream = [at for at in publisher.plis_sent if at >= start]
    assert 1 <= len(upstream) < 10, upstream
    before = [at for at in publisher.plis_sent if at < start][-1:]  # the joining one's
    gaps = [b - a for a, b in itertools.pairwise(before + upstream)]
    assert all(gap >= PLI_MIN_INTERVAL * 0.99 for gap in gaps), publisher.plis_sent
    await wait_for(
        lambda: len(publisher.plis) >= len(publisher.plis_sent), WITHIN, "PLIs to arrive"
    )


async def test_waiting_subscribers_keyframe_request_is_retried_until_answered(
    session: Session,
) -> None:
    # This publisher loses the first two PLIs after the start and never sends keyframes itself.
    publisher = await session.publisher(ignore_plis=2)
    subscriber = await session.subscriber()
    await wait_for(lambda: session.stats.keyframes_received >= 1, WITHIN, "the first keyframe")
    asked_before = len(publisher.plis_sent)
    publisher.video.add_subscriber(subscriber.video.sender)
    assert len(publisher.plis_sent) == asked_before + 1, "asked at once, not after a timer"

    await wait_for(lambda: len(subscriber.frames) > 0, WITHIN, "video after retries")
    # Two lost, then retried until one was answered (a loaded machine may retry once more).
    assert len(publisher.plis) >= 3
    # Retried, not spammed: a retry interval apart, or more when timers run late under load.
    gaps = [b - a for a, b in itertools.pairwise(publisher.plis_sent)]
    assert all(gap >= WAITING_RETRY_INTERVAL * 0.97 for gap in gaps), gaps
    # Held until the keyframe: the first packet forwarded is its first packet, made after the
    # first PLI the publisher answered.
    assert subscriber.packets[0].keyframe_start
    assert subscriber.packets[0].at > publisher.plis[2]
    # No more retries once it started: none sent after its first packet, while a second of
    # video (two retry intervals and more) goes by.
    started = subscriber.packets[0].at
    await wait_for(lambda: frames_after(subscriber, started) >= 30, WITHIN, "a second of video")
    assert all(at < started for at in publisher.plis_sent), (publisher.plis_sent, started)


async def test_closed_forwarder_detaches_subscribers_and_stops(session: Session) -> None:
    publisher = await session.publisher()
    subscriber = await session.subscriber(attach_to=publisher)
    await wait_for(lambda: len(subscriber.frames) >= 5, WITHIN, "video")

    publisher.video.close()
    forwarded = session.stats.packets_forwarded
    sent = await packets_sent(subscriber)
    # Audio still flows; only the closed video forwarder stopped.
    await wait_for(lambda: session.stats.packets_forwarded > forwarded + 10, WITHIN, "audio")

    assert publisher.video.subscribers == []
    assert await packets_sent(subscriber) == sent
    # Its senders are free for another publisher.
    other = await session.publisher(width=160, height=120)
    other.video.add_subscriber(subscriber.video.sender)
    await wait_for(lambda: subscriber.frames[-1][1] == 160, WITHIN, "the other publisher's video")


async def test_h264_is_forwarded_from_an_idr_and_decoded(session: Session) -> None:
    publisher = await session.publisher(codec="h264")
    early = await session.subscriber(attach_to=publisher, codec="h264")
    await wait_for(lambda: len(early.frames) >= 10, WITHIN, "H264 video")
    late = await session.subscriber(codec="h264")
    publisher.video.add_subscriber(late.video.sender)

    await wait_for(lambda: len(late.frames) >= 5, WITHIN, "the late joiner's H264 video")
    for subscriber in (early, late):
        assert subscriber.packets[0].keyframe_start
        assert {p.payload_type for p in media_packets(subscriber)} == {99}  # publisher's: 122
    assert {(w, h) for _, w, h in late.frames} == {(320, 240)}


async def test_publishing_survives_the_renegotiation_of_its_own_connection(
    session: Session,
) -> None:
    # One connection per participant, as in huddle: the server adds transceivers to Bob's
    # publishing connection so that he receives Alice. The re-offer gives Bob's own m-lines
    # aiortc's payload types (VP8 97, no longer 120), while his client goes on sending 120.
    alice = await session.publisher()
    bob = await session.publisher()
    watcher = await session.subscriber(attach_to=bob)
    await wait_for(lambda: len(watcher.frames) >= 5, WITHIN, "Bob's video")

    video = add_forwarding_transceiver(bob.server, "video")
    audio = add_forwarding_transceiver(bob.server, "audio")
    alice.video.add_subscriber(video.sender)
    alice.audio.add_subscriber(audio.sender)
    await bob.server.setLocalDescription(await bob.server.createOffer())
    await bob.client.setRemoteDescription(bob.server.localDescription)
    await bob.client.setLocalDescription(await bob.client.createAnswer())
    await bob.server.setRemoteDescription(bob.client.localDescription)
    moment = asyncio.get_running_loop().time()

    received = next(t for t in bob.client.getTransceivers() if t.mid == video.mid)
    frame = await asyncio.wait_for(received.receiver.track.recv(), WITHIN)
    assert (frame.width, frame.height) == (320, 240)
    await wait_for(lambda: frames_after(watcher, moment) >= 20, WITHIN, "Bob's video, still")


async def test_subscribers_get_sender_reports_with_true_counts_and_the_server_measures_rtt(
    session: Session,
) -> None:
    publisher = await session.publisher()
    subscriber = await session.subscriber(attach_to=publisher)
    await wait_for(lambda: len(subscriber.frames) >= 5, WITHIN, "video")
    sender = subscriber.video.sender

    async def remote_outbound() -> Any:
        report = await subscriber.client_transceiver("video").receiver.getStats()
        return next((s for s in report.values() if s.type == "remote-outbound-rtp"), None)

    async def rtt() -> float | None:
        report = await sender.getStats()
        inbound = next((s for s in report.values() if s.type == "remote-inbound-rtp"), None)
        return None if inbound is None else inbound.roundTripTime

    # A report comes every 0.5-1.5 s and keeps coming: the client's view of what was sent
    # (from the SR) trails the server's own count only by what was sent since the report.
    deadline = asyncio.get_running_loop().time() + WITHIN
    seen: list[int] = []
    while asyncio.get_running_loop().time() < deadline and len(set(seen)) < 3:
        stats = await remote_outbound()
        if stats is not None:
            seen.append(stats.packetsSent)
            assert 0 < stats.packetsSent <= await packets_sent(subscriber)
        await asyncio.sleep(0.2)
    assert len(set(seen)) >= 3, f"sender reports stopped coming: {seen}"
    # The client's receiver reports echo the SR (LSR/DLSR): the server's sender turns that into
    # a round-trip time, which only works if the SR bookkeeping (LSR and its send time) is right.
    await wait_for_value(rtt, WITHIN, "a round-trip time from the subscriber's receiver reports")


async def wait_for_value(probe: Any, within: float, what: str) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        value = await probe()
        if value is not None:
            # One machine: bad SR bookkeeping gives no value at all, or seconds to years.
            assert 0 <= value < 5.0, f"{what}: {value}"
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_the_publisher_gets_the_servers_bandwidth_estimate(session: Session) -> None:
    """REMB from the forwarder's own estimator (the tapped receiver's is dropped, unused)."""
    from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, unpack_remb_fci

    publisher = await session.publisher()
    sender = next(t.sender for t in publisher.client.getTransceivers() if t.kind == "video")
    estimates: list[int] = []
    handle = sender._handle_rtcp_packet

    async def recording(packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            bitrate, ssrcs = unpack_remb_fci(packet.fci)
            if sender._ssrc in ssrcs:
                estimates.append(bitrate)
        await handle(packet)

    sender._handle_rtcp_packet = recording
    await wait_for(lambda: len(estimates) >= 1, WITHIN, "a REMB at the publisher")
    assert all(bitrate > 0 for bitrate in estimates)
    tapped = publisher.video.receiver
    assert tapped._RTCRtpReceiver__remote_bitrate_estimator is None  # type: ignore[attr-defined]

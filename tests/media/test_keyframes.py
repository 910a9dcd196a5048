"""Where keyframes start in RTP, and when the forwarding unit asks a publisher for one."""

from __future__ import annotations

import asyncio
import fractions
import os

import av
import pytest
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder, VpxPayloadDescriptor

from media.keyframes import (
    KeyframeRequests,
    is_h264_keyframe_start,
    is_vp8_keyframe_start,
    keyframe_start_test,
)
from tests.media.virtual_time import run

pytestmark = pytest.mark.timeout(10)

KEY = b"\x10\x02\x00\x9d\x01\x2a"  # VP8 frame tag with P=0, then the keyframe start code
DELTA = b"\x11\x02\x00"  # P=1


def vp8(descriptor: VpxPayloadDescriptor, frame: bytes) -> bytes:
    return bytes(descriptor) + frame


@pytest.mark.parametrize(
    ("descriptor", "frame", "expected"),
    [
        (VpxPayloadDescriptor(partition_start=1, partition_id=0), KEY, True),
        (VpxPayloadDescriptor(partition_start=1, partition_id=0, picture_id=5), KEY, True),
        (VpxPayloadDescriptor(partition_start=1, partition_id=0, picture_id=300), KEY, True),
        (
            VpxPayloadDescriptor(
                partition_start=1, partition_id=0, picture_id=300, tl0picidx=7, tid=(1, 1)
            ),
            KEY,
            True,
        ),
        (VpxPayloadDescriptor(partition_start=1, partition_id=0, keyidx=3), KEY, True),
        (VpxPayloadDescriptor(partition_start=1, partition_id=0, picture_id=300), DELTA, False),
        (VpxPayloadDescriptor(partition_start=0, partition_id=0, picture_id=300), KEY, False),
        (VpxPayloadDescriptor(partition_start=1, partition_id=1, picture_id=300), KEY, False),
    ],
)
def test_vp8_keyframe_start_reads_the_descriptor_then_the_p_bit(
    descriptor: VpxPayloadDescriptor, frame: bytes, expected: bool
) -> None:
    assert is_vp8_keyframe_start(vp8(descriptor, frame)) is expected


def test_vp8_keyframe_start_refuses_truncated_payloads() -> None:
    whole = vp8(VpxPayloadDescriptor(partition_start=1, partition_id=0, picture_id=300), KEY)
    # Four bytes of descriptor (X, I, 15-bit picture id), then the VP8 payload header.
    assert not any(is_vp8_keyframe_start(whole[:n]) for n in range(5))
    assert is_vp8_keyframe_start(whole[:5])


def nal(nal_type: int, body: bytes = b"\x88\x84") -> bytes:
    return bytes([0x60 | nal_type]) + body


def stap_a(*units: bytes) -> bytes:
    return b"\x78" + b"".join(len(u).to_bytes(2, "big") + u for u in units)


def fu_a(nal_type: int, start: bool) -> bytes:
    return bytes([0x60 | 28, (0x80 if start else 0) | nal_type]) + b"\x88"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (nal(7), True),  # SPS
        (nal(5), True),  # IDR slice
        (nal(1), False),  # non-IDR slice
        (nal(8), False),  # PPS alone
        (stap_a(nal(7), nal(8), nal(5)), True),
        (stap_a(nal(8), nal(5)), True),
        (stap_a(nal(9), nal(1)), False),
        (fu_a(5, start=True), True),
        (fu_a(5, start=False), False),
        (fu_a(1, start=True), False),
        (b"", False),
        (b"\x7c", False),  # FU-A without its header
    ],
)
def test_h264_keyframe_start(payload: bytes, expected: bool) -> None:
    assert is_h264_keyframe_start(payload) is expected


def encoded_frames(codec_name: str, options: dict[str, str]) -> list[av.Packet]:
    """A keyframe then a delta frame, from a real encoder."""
    codec = av.CodecContext.create(codec_name, "w")
    codec.width, codec.height, codec.pix_fmt = 64, 48, "yuv420p"
    codec.time_base = fractions.Fraction(1, 30)
    codec.options = options
    packets = []
    noise = [os.urandom(plane.buffer_size) for plane in av.VideoFrame(64, 48, "yuv420p").planes]
    for index in range(2):
        frame = av.VideoFrame(64, 48, "yuv420p")
        for plane, pixels in zip(frame.planes, noise, strict=True):
            # Noise makes the keyframe span several packets; the delta frame adds a little.
            plane.update(pixels[: plane.buffer_size - index] + bytes(index))
        frame.pts = index
        packets += codec.encode(frame)
    packets += codec.encode(None)
    assert [p.is_keyframe for p in packets] == [True, False]
    return packets


def test_real_vp8_packetization_starts_keyframes_only_at_their_first_packet() -> None:
    key, delta = encoded_frames("libvpx", {"deadline": "realtime", "lag-in-frames": "0"})
    key_payloads = Vp8Encoder._packetize(bytes(key), picture_id=300)
    assert len(key_payloads) > 1
    assert [is_vp8_keyframe_start(p) for p in key_payloads] == [True] + [False] * (
        len(key_payloads) - 1
    )
    assert not is_vp8_keyframe_start(Vp8Encoder._packetize(bytes(delta), picture_id=301)[0])


def test_real_h264_packetization_starts_keyframes_at_their_first_packet() -> None:
    key, delta = encoded_frames("libx264", {"preset": "ultrafast", "tune": "zerolatency"})
    key_payloads = H264Encoder._packetize(H264Encoder._split_bitstream(bytes(key)))
    delta_payloads = H264Encoder._packetize(H264Encoder._split_bitstream(bytes(delta)))
    assert len(key_payloads) > 1
    assert is_h264_keyframe_start(key_payloads[0])
    assert not any(is_h264_keyframe_start(p) for p in delta_payloads)


def test_keyframe_start_test_by_codec() -> None:
    assert keyframe_start_test("video/VP8") is is_vp8_keyframe_start
    assert keyframe_start_test("video/H264") is is_h264_keyframe_start
    assert keyframe_start_test("audio/opus") is None


class Publisher:
    """Records the (virtual) time of every PLI as a forwarder would send it."""

    def __init__(self, reachable: bool = True) -> None:
        self.plis: list[float] = []
        self.reachable = reachable
        self.waiting = False

    def send_pli(self) -> bool:
        if self.reachable:
            self.plis.append(asyncio.get_running_loop().time())
        return self.reachable


# The timers run on a fake clock (tests/media/virtual_time.py): every PLI is counted and timed
# exactly, however loaded the machine; a long sleep shows that nothing more comes, ever.
MIN = 0.3
RETRY = 0.1
FOREVER = 3600.0


def requests_for(publisher: Publisher) -> KeyframeRequests:
    return KeyframeRequests(
        publisher.send_pli, lambda: publisher.waiting, min_interval=MIN, retry_interval=RETRY
    )


def test_subscriber_requests_are_coalesced_and_deferred_not_dropped() -> None:
    async def scenario() -> None:
        publisher = Publisher()
        requests = requests_for(publisher)
        for _ in range(5):
            requests.subscriber_request()
            await asyncio.sleep(0.02)
        assert publisher.plis == [0.0], "the first at once, the others held back"
        await asyncio.sleep(FOREVER)
        assert publisher.plis == [0.0, pytest.approx(MIN)], "one more, at the end of the interval"
        requests.close()

    run(scenario)


def test_a_keyframe_answers_deferred_requests() -> None:
    async def scenario() -> None:
        publisher = Publisher()
        requests = requests_for(publisher)
        requests.subscriber_request()
        requests.subscriber_request()
        requests.keyframe_started()
        await asyncio.sleep(FOREVER)
        assert publisher.plis == [0.0]
        requests.close()

    run(scenario)


def test_a_waiting_subscriber_asks_at_once_and_again_until_a_keyframe() -> None:
    async def scenario() -> None:
        publisher = Publisher()
        requests = requests_for(publisher)
        requests.subscriber_request()  # the rate limit does not hold a waiting subscriber back
        publisher.waiting = True
        requests.keyframe_started()
        requests.waiter_added()
        assert publisher.plis == [0.0, 0.0]
        await asyncio.sleep(RETRY * 3.5)
        assert publisher.plis == pytest.approx([0.0, 0.0, RETRY, 2 * RETRY, 3 * RETRY])
        publisher.waiting = False
        requests.keyframe_started()
        await asyncio.sleep(FOREVER)
        assert len(publisher.plis) == 5, "no retry once the keyframe came"
        requests.close()

    run(scenario)


def test_waiters_share_a_fresh_request() -> None:
    async def scenario() -> None:
        publisher = Publisher()
        requests = requests_for(publisher)
        publisher.waiting = True
        for _ in range(10):
            requests.waiter_added()
        assert publisher.plis == [0.0]
        requests.close()
        await asyncio.sleep(FOREVER)
        assert publisher.plis == [0.0], "nothing after close()"

    run(scenario)


def test_requests_wait_for_a_reachable_publisher() -> None:
    async def scenario() -> None:
        publisher = Publisher(reachable=False)
        requests = requests_for(publisher)
        publisher.waiting = True
        requests.waiter_added()
        await asyncio.sleep(RETRY * 1.5)
        assert publisher.plis == []
        publisher.reachable = True
        await asyncio.sleep(RETRY)
        assert publisher.plis == [pytest.approx(2 * RETRY)], "the next retry reaches it"
        requests.close()

    run(scenario)


def test_retries_slow_down_when_no_keyframe_comes() -> None:
    async def scenario() -> None:
        publisher = Publisher()
        requests = KeyframeRequests(
            publisher.send_pli,
            lambda: publisher.waiting,
            retry_interval=0.05,
            fast_retries=2,
            backoff_interval=0.4,
        )
        publisher.waiting = True
        requests.waiter_added()
        await asyncio.sleep(1.8)
        # At once, then two fast retries, then one per backoff interval.
        assert publisher.plis == pytest.approx([0.0, 0.05, 0.1, 0.5, 0.9, 1.3, 1.7])
        requests.close()

    run(scenario)

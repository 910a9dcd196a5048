"""A synthetic camera for the publisher: busy enough to cost what a real one costs.

A noise texture pans behind a moving bar, with a patch of fresh noise each frame, so VP8 at 640x480
spends its whole rate budget (~1.1 Mbit/s, ~120 packets/s) as a webcam would; media.contrib.client's
moving bar alone compresses to far less. Frames are precomputed (plain bytes, no numpy): producing
them must cost the client core next to nothing.
"""

from __future__ import annotations

import random

from aiortc import VideoStreamTrack
from aiortc.codecs import vpx
from av import VideoFrame

WIDTH = 640
HEIGHT = 480
FPS = 30
#: Frames in one loop of the synthetic video (4 s: far longer than the encoder's memory).
LOOP_FRAMES = 120


def pin_vp8_bitrate(bits_per_second: int) -> None:
    """Make every VP8 encoder in this process run at ``bits_per_second``, ignoring REMB.

    The publisher (and the MediaRelay baseline's per-subscriber encoders) then send the same rate
    whatever the far end estimates, so both servers carry the same traffic.
    """
    vpx.DEFAULT_BITRATE = bits_per_second  # read by Vp8Encoder.__init__ (its rate-control buffer)

    def _get(_encoder: vpx.Vp8Encoder) -> int:
        return bits_per_second

    def _set(_encoder: vpx.Vp8Encoder, _value: int) -> None:
        return None

    setattr(vpx.Vp8Encoder, "target_bitrate", property(_get, _set))  # noqa: B010


def _video_loop(seed: int = 1) -> list[tuple[bytes, bytes, bytes]]:
    """Precompute LOOP_FRAMES frames as (Y, U, V) plane bytes."""
    rng = random.Random(seed)
    # Texture with structure the encoder can predict: noise doubled horizontally and vertically.
    rows: list[bytes] = []
    for _ in range(HEIGHT // 2):
        coarse = rng.randbytes(WIDTH)  # two screen widths of pixel pairs, for panning
        row = bytes(b for b in coarse for _ in (0, 1))
        rows.extend((row, row))
    v_plane = bytes([150]) * (WIDTH // 2 * HEIGHT // 2)
    frames = []
    for i in range(LOOP_FRAMES):
        shift = (i * 4) % WIDTH
        bar = (i * 9) % (WIDTH - 80)
        y0 = (i * 37) % (HEIGHT - 48)
        x0 = (i * 53) % (WIDTH - 64)
        luma = bytearray()
        for y, row in enumerate(rows):
            line = bytearray(row[shift : shift + WIDTH])
            line[bar : bar + 80] = b"\xeb" * 80
            if y0 <= y < y0 + 48:
                line[x0 : x0 + 64] = rng.randbytes(64)
            luma += line
        u_row = bytearray([110]) * (WIDTH // 2)
        u_row[bar // 2 : bar // 2 + 40] = bytes([60 + (i * 3) % 120]) * 40
        frames.append((bytes(luma), bytes(u_row) * (HEIGHT // 2), v_plane))
    return frames


class SyntheticCamera(VideoStreamTrack):
    """640x480 at 30 fps of moving, textured video; counts the frames it produced."""

    def __init__(self) -> None:
        super().__init__()
        self._frames = _video_loop()
        self.frames_produced = 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(WIDTH, HEIGHT, "yuv420p")
        for plane, data in zip(
            frame.planes, self._frames[self.frames_produced % LOOP_FRAMES], strict=True
        ):
            plane.update(data)
        frame.pts = pts
        frame.time_base = time_base
        self.frames_produced += 1
        return frame

"""The VP8 payload descriptor (RFC 7741 section 4.2): where a packet's picture ID and TL0PICIDX
sit, and which temporal layer it belongs to; read once per packet, never decoded.

A subscriber whose sender switches source (another publisher, another simulcast layer) must see
one stream: its picture IDs and TL0PICIDX continue where the last source's stopped, or Chromium's
frame buffer takes the jump for lost frames and freezes for seconds
(``../shared/research/simulcast.md`` section 5.3). The fan-out rewrites those bytes per copy,
at the offsets found here.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["NO_DESCRIPTOR", "Descriptor", "descriptor", "keyframe_size", "rewrite"]

_X = 0x80  # extended control bits present
_I = 0x80  # picture ID present
_L = 0x40  # TL0PICIDX present
_T = 0x20  # TID present
_K = 0x10  # KEYIDX present
_M = 0x80  # 15-bit picture ID


class Descriptor(NamedTuple):
    """What the fan-out needs of one packet's descriptor; offsets into the RTP payload."""

    #: Offset of the picture ID, -1 when the packet has none.
    pid_at: int
    #: Whether it is the 15-bit form (two bytes, M set) rather than 7 bits.
    pid_long: bool
    pid: int
    #: Offset of TL0PICIDX, -1 when absent.
    tl0_at: int
    tl0: int
    #: Temporal layer (0 when the packet says none).
    tid: int


#: A packet without picture ID or TL0PICIDX: nothing to rewrite.
NO_DESCRIPTOR = Descriptor(-1, False, 0, -1, 0, 0)


def descriptor(payload: bytes) -> Descriptor:
    """The picture ID, TL0PICIDX and TID of a VP8 RTP payload; :data:`NO_DESCRIPTOR` when it
    carries neither (or is too short to say: such a packet is forwarded untouched)."""
    size = len(payload)
    if size < 2 or not payload[0] & _X:
        return NO_DESCRIPTOR
    control = payload[1]
    at = 2
    pid_at, pid_long, pid = -1, False, 0
    if control & _I:
        if at >= size:
            return NO_DESCRIPTOR
        if payload[at] & _M:
            if at + 1 >= size:
                return NO_DESCRIPTOR
            pid_at, pid_long, pid = at, True, ((payload[at] & 0x7F) << 8) | payload[at + 1]
            at += 2
        else:
            pid_at, pid = at, payload[at] & 0x7F
            at += 1
    tl0_at, tl0 = -1, 0
    if control & _L:
        if at >= size:
            return NO_DESCRIPTOR
        tl0_at, tl0 = at, payload[at]
        at += 1
    tid = 0
    if control & (_T | _K):
        if at >= size:
            return NO_DESCRIPTOR
        if control & _T:
            tid = payload[at] >> 6
    return Descriptor(pid_at, pid_long, pid, tl0_at, tl0, tid)


def rewrite(payload: bytes, found: Descriptor, pid_offset: int, tl0_offset: int) -> bytes:
    """``payload`` with its picture ID and TL0PICIDX moved by the offsets (as the fan-out does;
    used for the rare copies Python builds from history, such as a retransmission)."""
    if (found.pid_at < 0 and found.tl0_at < 0) or (pid_offset == 0 and tl0_offset == 0):
        return payload
    out = bytearray(payload)
    if found.pid_at >= 0:
        if found.pid_long:
            pid = (found.pid + pid_offset) & 0x7FFF
            out[found.pid_at] = _M | (pid >> 8)
            out[found.pid_at + 1] = pid & 0xFF
        else:
            out[found.pid_at] = (found.pid + pid_offset) & 0x7F
    if found.tl0_at >= 0:
        out[found.tl0_at] = (found.tl0 + tl0_offset) & 0xFF
    return bytes(out)


def keyframe_size(payload: bytes) -> tuple[int, int] | None:
    """(width, height) of the frame when ``payload`` starts a VP8 keyframe (the frame header
    says so: RFC 6386 section 9.1), else None. How the server knows each simulcast layer's size
    without decoding anything."""
    size = len(payload)
    if size < 1 or not payload[0] & 0x10 or payload[0] & 0x07:
        return None  # not the start of partition 0
    at = 1
    if payload[0] & _X:
        if size < 2:
            return None
        control = payload[1]
        at = 2
        if control & _I:
            at += 2 if size > at and payload[at] & _M else 1
        if control & _L:
            at += 1
        if control & (_T | _K):
            at += 1
    header = payload[at : at + 10]
    if len(header) < 10 or header[0] & 0x01 or header[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(header[6:8], "little") & 0x3FFF
    height = int.from_bytes(header[8:10], "little") & 0x3FFF
    return (width, height) if width and height else None

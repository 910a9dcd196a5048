"""The VP8 payload descriptor: found where RFC 7741 puts it, rewritten without touching the rest."""

from __future__ import annotations

from media.vp8 import NO_DESCRIPTOR, descriptor, keyframe_size, rewrite

#: X I L T: 15-bit picture ID 0x1234, TL0PICIDX 200, TID 2 (Y set), then the VP8 payload.
FULL = bytes([0x90, 0xE0, 0x80 | 0x12, 0x34, 200, 0b10_1_00000]) + b"\x10\x02\x00frame"
#: X I: 7-bit picture ID 5.
SHORT = bytes([0x80, 0x80, 0x05]) + b"\x11rest"


def test_the_fields_are_found_in_their_places() -> None:
    found = descriptor(FULL)
    assert (found.pid_at, found.pid_long, found.pid) == (2, True, 0x1234)
    assert (found.tl0_at, found.tl0, found.tid) == (4, 200, 2)
    short = descriptor(SHORT)
    assert (short.pid_at, short.pid_long, short.pid, short.tl0_at) == (2, False, 5, -1)


def test_packets_without_the_fields_or_cut_short_are_left_alone() -> None:
    assert descriptor(b"\x10\x02\x00") == NO_DESCRIPTOR  # no X: no extension at all
    assert descriptor(bytes([0x90, 0x80, 0x81])) == NO_DESCRIPTOR  # 15-bit ID cut short
    assert descriptor(bytes([0x90, 0x40])) == NO_DESCRIPTOR  # TL0PICIDX promised, missing
    assert descriptor(b"") == NO_DESCRIPTOR
    assert rewrite(b"\x10\x02\x00", NO_DESCRIPTOR, 7, 7) == b"\x10\x02\x00"


def test_rewriting_moves_the_numbers_and_wraps_them() -> None:
    out = rewrite(FULL, descriptor(FULL), 0x7FFF - 0x1234 + 1, 60)  # to 0, and 200 + 60 - 256
    moved = descriptor(out)
    assert (moved.pid, moved.pid_long, moved.tl0, moved.tid) == (0, True, 4, 2)
    assert out[:2] == FULL[:2] and out[6:] == FULL[6:], "nothing else changes"
    short = descriptor(rewrite(SHORT, descriptor(SHORT), 0x7FFF, 0))
    assert (short.pid, short.pid_long) == (4, False)


def test_a_keyframe_says_its_size_and_nothing_else_does() -> None:
    key = bytes([0x90, 0xE0, 0x81, 0x2C, 7, 0x00]) + b"\x10\x02\x00\x9d\x01\x2a"
    key += (640).to_bytes(2, "little") + (480 | 0x4000).to_bytes(2, "little") + bytes(20)
    assert keyframe_size(key) == (640, 480), "the scaling bits are not the size"
    assert keyframe_size(bytes([0x90, 0xE0, 0x81, 0x2D, 8, 0x00]) + b"\x11\x02\x00") is None
    assert keyframe_size(bytes([0x80, 0x80, 0x81, 0x2C]) + key[6:]) is None, "not a start"
    assert keyframe_size(key[:12]) is None, "cut short"

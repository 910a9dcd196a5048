"""Which of a publisher's packets are missing, and when to ask for them again.

aiortc's ``NackGenerator`` asks for a lost packet once, when the gap appears. If that NACK or the
retransmission it asked for is lost too, nothing asks again until another packet goes missing: on
an otherwise clean link the hole stays, and every subscriber's video freezes until someone asks
for a keyframe. Like libwebrtc and mediasoup, this asks again every :data:`RETRY_SECONDS` up to
:data:`MAX_TRIES` times, then gives the packet up, so that the forwarder asks for a keyframe.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_TRIES", "RETRY_SECONDS", "MissingPackets"]

#: Seconds between two requests for the same packet: a round trip on a slow link, and still well
#: inside a publisher's retransmission history (about a second).
RETRY_SECONDS = 0.1
#: Requests for one packet before it is given up.
MAX_TRIES = 10
#: Packets further behind the newest than this are given up: the publisher's RTX history (aiortc:
#: 128 packets) no longer has them.
WINDOW = 128


@dataclass(slots=True)
class _Missing:
    tries: int = 0
    next_at: float = 0.0


def _newer(a: int, b: int) -> bool:
    """Whether sequence number ``a`` is after ``b`` (16-bit wrap-around)."""
    return a != b and ((a - b) & 0xFFFF) < 0x8000


class MissingPackets:
    """The sequence numbers missing from one publisher stream, each with its NACK schedule."""

    def __init__(self) -> None:
        self._newest: int | None = None
        self._missing: dict[int, _Missing] = {}
        #: Sequence numbers given up since the last :meth:`take_given_up`.
        self._given_up = 0

    def __bool__(self) -> bool:
        return bool(self._missing)

    @property
    def missing(self) -> set[int]:
        """The sequence numbers still asked for."""
        return set(self._missing)

    def add(self, seq: int) -> bool:
        """Note a received packet; True if it revealed a new gap (ask at once: :meth:`due`)."""
        newest = self._newest
        if newest is None:
            self._newest = seq
            return False
        if not _newer(seq, newest):
            self._missing.pop(seq, None)
            return False
        gap = False
        following = (newest + 1) & 0xFFFF
        if seq != following:
            gap = True
            count = (seq - following) & 0xFFFF
            # A jump larger than the window is a restart, not loss worth asking for.
            for offset in range(max(0, count - WINDOW), count):
                self._missing[(following + offset) & 0xFFFF] = _Missing()
        self._newest = seq
        if self._missing:
            self._forget_old(seq)
        return gap

    def due(self, now: float) -> list[int]:
        """The sequence numbers to NACK now, in order; counts the try and schedules the next."""
        asked: list[int] = []
        for seq, entry in list(self._missing.items()):
            if entry.next_at > now:
                continue
            if entry.tries >= MAX_TRIES:
                del self._missing[seq]
                self._given_up += 1
                continue
            entry.tries += 1
            entry.next_at = now + RETRY_SECONDS
            asked.append(seq)
        newest = self._newest if self._newest is not None else 0
        asked.sort(key=lambda s: (s - newest) & 0xFFFF)
        return asked

    def take_given_up(self) -> int:
        """How many packets were given up since the last call (they are lost for good)."""
        given_up, self._given_up = self._given_up, 0
        return given_up

    def _forget_old(self, newest: int) -> None:
        for seq in [s for s in self._missing if ((newest - s) & 0xFFFF) > WINDOW]:
            del self._missing[seq]
            self._given_up += 1

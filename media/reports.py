"""Sender reports for forwarding senders, from one timer per event loop instead of a task each.

aiortc gives every sender a task that wakes every 0.5-1.5 s to send an RTCP sender report (SR)
and source description (SDES). A room of 64 subscribers has 128 forwarding senders, so 128 task
wake-ups a second, each through aiortc's awaited send path. Here one timer ticks ten times a
second and sends whatever reports are due, synchronously through each connection's
:class:`media.wire.Wire`. Each sender keeps aiortc's spacing (0.5-1.5 s, randomised) and aiortc's
bookkeeping for round-trip times (the LSR of its last report and when it was sent).
"""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from typing import Protocol

__all__ = ["ReportClock", "Reporting"]

log = logging.getLogger(__name__)

#: Seconds between ticks: a report is at most this late against aiortc's own schedule.
TICK_SECONDS = 0.1


class Reporting(Protocol):
    """A sender that can send its report now (a forwarding sender's egress)."""

    def send_report(self) -> None:
        """Build and send this sender's SR + SDES."""
        ...


def _next_interval() -> float:
    # RFC 3550 6.2: the interval is varied randomly over 0.5-1.5 times the nominal one.
    return 0.5 + random.random()


class ReportClock:
    """The reports of every forwarding sender on one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._due: dict[Reporting, float] = {}
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    def current(cls) -> ReportClock:
        """The clock of the running event loop."""
        loop = asyncio.get_running_loop()
        clock = _CLOCKS.get(loop)
        if clock is None:
            clock = _CLOCKS[loop] = cls(loop)
        return clock

    def __len__(self) -> int:
        return len(self._due)

    def add(self, sender: Reporting) -> None:
        """Report for ``sender`` from now on, the first time within 0.5-1.5 s (as aiortc does)."""
        self._due[sender] = self._loop.time() + _next_interval()
        if self._timer is None:
            self._timer = self._loop.call_later(TICK_SECONDS, self._tick)

    def remove(self, sender: Reporting) -> None:
        """Stop reporting for ``sender``."""
        self._due.pop(sender, None)
        if not self._due and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        now = self._loop.time()
        due = self._due
        for sender, at in list(due.items()):
            if at <= now and sender in due:
                due[sender] = now + _next_interval()
                try:
                    sender.send_report()
                except Exception:
                    # One sender's failure must not stop everyone else's reports.
                    log.exception("sender report failed")
        self._timer = self._loop.call_later(TICK_SECONDS, self._tick) if due else None


_CLOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ReportClock] = (
    weakref.WeakKeyDictionary()
)

"""An asyncio event loop on a fake clock, for timer logic whose exact counts matter.

The loop's ``time()`` starts at 0 and moves only when nothing is ready to run: it then jumps to
the next timer, so ``await asyncio.sleep(3600)`` returns at once, and every ``call_at`` fires in
order, at exactly its time, however loaded the machine. Sockets still work (they are polled
without waiting); a loop with nothing scheduled and nothing ready fails instead of hanging.

    def test_something() -> None:
        run(scenario)   # scenario: an async function, run to completion on the fake clock
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _SkippingSelector(selectors.DefaultSelector):
    """Polls without blocking; instead of waiting ``timeout`` it moves the loop's clock on."""

    loop: VirtualTimeLoop | None = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            raise RuntimeError("virtual time: nothing is scheduled and nothing can happen")
        assert self.loop is not None
        self.loop.advance(timeout)
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose clock only the loop itself moves (see the module)."""

    def __init__(self) -> None:
        selector = _SkippingSelector()
        super().__init__(selector)
        selector.loop = self
        self._now = 0.0

    def time(self) -> float:
        """Seconds of virtual time since the loop was made."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock on (the loop does it whenever it would otherwise wait)."""
        self._now += seconds


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main()`` to completion on a fresh :class:`VirtualTimeLoop`."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main())

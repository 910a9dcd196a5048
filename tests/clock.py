"""The product's clock in tests: set to a fixed instant, then moving at the real rate.

Every date the product decides ("today", "tomorrow 10:00", the next working day, a recurrence)
comes from the clock ``adapters.server.build`` is given, so a test can run the whole product at
the instants where date handling breaks: just after and before midnight UTC, when most of the
world is on another date, and on the days New York and Berlin change their clocks.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

#: Where the date-sensitive tests run. A Friday, so that "tomorrow" and "the next working day"
#: differ, and on each side of midnight in some zone.
INSTANTS: dict[str, datetime] = {
    "fri-00:30Z": datetime(2027, 1, 15, 0, 30, tzinfo=UTC),
    "fri-04:20Z": datetime(2027, 1, 15, 4, 20, tzinfo=UTC),
    "fri-11:00Z": datetime(2027, 1, 15, 11, 0, tzinfo=UTC),
    "fri-23:30Z": datetime(2027, 1, 15, 23, 30, tzinfo=UTC),
    # 01:30 EST on Sunday 14 March 2027: at 02:00 New York springs forward to 03:00 EDT.
    "new-york-dst": datetime(2027, 3, 14, 6, 30, tzinfo=UTC),
    # 01:30 CET on Sunday 28 March 2027: at 02:00 Berlin springs forward to 03:00 CEST.
    "berlin-dst": datetime(2027, 3, 28, 0, 30, tzinfo=UTC),
}


class ShiftedClock:
    """``now()`` starts at ``start`` and advances with the system's monotonic clock."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("the product's clock is aware (UTC)")
        self.start = start
        self._origin = time.monotonic()

    def set(self, moment: datetime) -> None:
        """Jump to ``moment`` (before anything that depends on the time was made)."""
        self.start = moment
        self._origin = time.monotonic()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self._origin)

    def __repr__(self) -> str:
        return f"ShiftedClock({self.start.isoformat()})"

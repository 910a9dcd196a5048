"""Rate limits per client address: token buckets, on an injectable monotonic clock.

Used wherever the network can make the server work: joins (each one is a peer connection),
sign-in attempts (each one an Argon2 hash), the chat API. Requests from this machine itself
(loopback: the admin's scripts, a local reverse proxy whose clients are told apart only once
``HUDDLE_TRUST_PROXY`` is set) are not limited.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

#: Buckets kept at most; the least recently used go first (a flood of addresses costs memory
#: only up to this, and a forgotten address starts again with a full bucket).
MAX_KEYS = 20_000


def is_loopback(address: str | None) -> bool:
    """Whether ``address`` (``request.remote``) is this machine itself."""
    if not address:
        return False
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimit:
    """Up to ``burst`` events at once per key, then one every ``1 / per_second`` seconds."""

    def __init__(
        self,
        burst: int,
        per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        exempt_loopback: bool = True,
    ) -> None:
        if burst < 1 or per_second <= 0:
            raise ValueError("a rate limit needs burst >= 1 and a positive rate")
        self.burst = float(burst)
        self.per_second = per_second
        self.clock = clock
        self.exempt_loopback = exempt_loopback
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def _bucket(self, key: str) -> _Bucket:
        now = self.clock()
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(self.burst, now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.per_second)
            bucket.at = now
        self._buckets[key] = bucket
        while len(self._buckets) > MAX_KEYS:
            self._buckets.popitem(last=False)
        return bucket

    def wait(self, key: str) -> int:
        """Seconds until ``key`` may act again (0: now), without spending anything."""
        if self.exempt_loopback and is_loopback(key):
            return 0
        bucket = self._bucket(key)
        if bucket.tokens >= 1:
            return 0
        return max(1, math.ceil((1 - bucket.tokens) / self.per_second))

    def spend(self, key: str) -> None:
        """Count one event of ``key`` (the bucket may go empty, never below)."""
        if self.exempt_loopback and is_loopback(key):
            return
        bucket = self._bucket(key)
        bucket.tokens = max(0.0, bucket.tokens - 1)

    def take(self, key: str) -> int:
        """Spend one event if allowed: 0, else the seconds to wait (nothing spent)."""
        retry = self.wait(key)
        if retry == 0:
            self.spend(key)
        return retry


def retry_text(seconds: int) -> str:
    """``"in 1 second"``, ``"in 3 minutes"``: when to try again, for a person."""
    if seconds < 90:
        return f"in {seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"in {minutes} minutes"

"""Rate limits per address on a manual clock: a burst, then a steady rate; loopback exempt."""

from __future__ import annotations

from media.limits import MAX_KEYS, RateLimit, is_loopback, retry_text


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_one_per_interval_and_the_wait_is_said() -> None:
    clock = Clock()
    limit = RateLimit(3, 0.5, clock=clock)
    assert [limit.take("198.18.0.9") for _ in range(3)] == [0, 0, 0]
    assert limit.take("198.18.0.9") == 2  # one token every 2 s
    assert limit.take("198.18.0.10") == 0  # another address has its own bucket
    clock.now += 1.0
    assert limit.wait("198.18.0.9") == 1
    clock.now += 1.0
    assert limit.take("198.18.0.9") == 0
    assert limit.take("198.18.0.9") == 2
    clock.now += 3600
    assert [limit.take("198.18.0.9") for _ in range(4)] == [0, 0, 0, 2]  # refills to the burst


def test_wait_looks_without_spending_and_spend_counts_failures_only() -> None:
    clock = Clock()
    limit = RateLimit(2, 1 / 30, clock=clock)
    for _ in range(5):
        assert limit.wait("198.18.0.9") == 0
    limit.spend("198.18.0.9")
    limit.spend("198.18.0.9")
    limit.spend("198.18.0.9")  # never below empty: the wait stays one interval
    assert limit.wait("198.18.0.9") == 30


def test_loopback_is_not_limited_and_garbage_is_not_loopback() -> None:
    limit = RateLimit(1, 0.001, clock=Clock())
    for address in ("127.0.0.1", "::1", "127.3.4.5"):
        assert [limit.take(address) for _ in range(5)] == [0] * 5
    assert is_loopback("::1") and not is_loopback("198.18.0.1")
    assert not is_loopback(None) and not is_loopback("?") and not is_loopback("")
    assert limit.take("?") == 0 and limit.take("?") > 0  # an unknown peer is one bucket


def test_many_addresses_cost_bounded_memory() -> None:
    clock = Clock()
    limit = RateLimit(1, 0.001, clock=clock)
    limit.take("198.18.0.1")
    for n in range(MAX_KEYS + 10):
        limit.take(f"198.{18 + (n >> 16)}.{n >> 8 & 255}.{n & 255}")
    assert len(limit._buckets) == MAX_KEYS
    assert limit.take("198.18.0.1") == 0  # forgotten, so it starts again full


def test_retry_text() -> None:
    assert retry_text(1) == "in 1 second"
    assert retry_text(30) == "in 30 seconds"
    assert retry_text(600) == "in 10 minutes"

"""The whole product runs on one clock: set to another instant, every part agrees on the time."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from media.contrib.client import HuddleClient
from tests.clock import ShiftedClock
from tests.product import RunningHuddle, running_huddle

pytestmark = pytest.mark.timeout(120)


async def thread_post(huddle: RunningHuddle, channel: str, title: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for post in await huddle.history(channel):
            if post["title"] == title:
                return post
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {title!r} post in #{channel}")


@pytest.mark.parametrize("workers", [0, 1], ids=["in-process", "media-worker"])
async def test_a_call_held_at_another_instant_is_timed_by_that_instant(
    tmp_path: Path, workers: int
) -> None:
    # Two days in the past: a join link made by the core's clock has expired by the system's
    # (links last a day), so the media server, in this process or in a worker, must use the
    # product's clock to let anyone in; the notes are timed by it too.
    clock = ShiftedClock(datetime(2026, 11, 30, 12, 0, tzinfo=UTC))
    async with running_huddle(
        tmp_path / "data", clock=clock, empty_grace=1.0, media_workers=workers
    ) as huddle:
        card, _host_link = (await huddle.say("general", "alice", "/meet Retro"))["posts"]
        async with HuddleClient(card["buttons"][0]["url"], "Alice", width=160, height=120) as alice:
            await alice.join(within=30)
        notes = await thread_post(huddle, "general", "Meeting notes: Retro")
    assert notes["text"].startswith("Mon 30 Nov 12:00–12:00 UTC")
    assert "Attendees: Alice" in notes["text"]

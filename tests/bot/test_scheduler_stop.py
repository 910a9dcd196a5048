"""Stopping (or losing the lead) lets a job under way finish instead of cutting it mid-query."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

from tests.product import running_huddle


async def test_a_start_under_way_when_the_server_stops_finishes_and_the_store_closes(
    tmp_path: Path,
) -> None:
    async with running_huddle(tmp_path / "data") as huddle:
        parts = huddle.parts
        for _ in range(300):  # up to 30 s on a loaded machine
            if parts.scheduler.is_leader:
                break
            await asyncio.sleep(0.1)
        assert parts.scheduler.is_leader
        entered, release = asyncio.Event(), asyncio.Event()
        real_start = parts.meetings.start
        finished: list[str | None] = []

        async def held_start(meeting_id: str, occurrence: datetime) -> str | None:
            # The job is under way (APScheduler has handed it out) when the stop comes.
            entered.set()
            await release.wait()
            finished.append(await real_start(meeting_id, occurrence))
            return finished[-1]

        parts.meetings.start = held_start  # type: ignore[method-assign]
        body = await huddle.say("team", "alice", "/meet schedule in 2 seconds Standup")
        meeting_id = body["posts"][0]["text"].split("id `")[1].split("`")[0]
        await asyncio.wait_for(entered.wait(), timeout=60)

        stopping = asyncio.create_task(parts.scheduler.stop())
        await asyncio.sleep(0)  # the stop has begun: no new jobs, waiting for this one
        assert not stopping.done()
        release.set()
        await asyncio.wait_for(stopping, timeout=60)

        # The start ran to the end: the meeting's occurrence opened its huddle.
        assert finished and finished[0] is not None
        states = await parts.store.occurrence_states(meeting_id)
        assert [state for state, _ in states.values()] == ["started"]
    # Leaving the context closed the store and the server (a hung close fails by timeout).

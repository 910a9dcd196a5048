"""Reminders survive kill -9, and exactly one of several processes sharing PostgreSQL sends them."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from bot.scheduler import JOB_TABLE
from tests.processes import ServeProcess

pytestmark = pytest.mark.timeout(240)

#: The first scenario's clock, in seconds. The first reminders fall due FIRST_DUE after their
#: meetings are scheduled, and the leader must be dead by then; nothing leads until they are
#: DOWN late (more than the product's 5 s: posted "late"), and then the next leader gets
#: TAKE_OVER to lead before the first thing it must do on time.
FIRST_DUE, DOWN, TAKE_OVER = 10, 6, 15


async def say(url: str, channel: str, user: str, text: str) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/api/chat/{channel}/messages", json={"user": user, "text": text}) as r,
    ):
        assert r.status == 200
        posts: list[dict[str, Any]] = (await r.json())["posts"]
        return posts


async def history(url: str, channel: str) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{url}/api/chat/{channel}/messages", params={"user": "observer"}) as r,
    ):
        posts: list[dict[str, Any]] = (await r.json())["posts"]
        return posts


async def schedule(url: str, channel: str, text: str) -> str:
    card = (await say(url, channel, "alice", f"/meet schedule {text}"))[0]
    assert card["title"].startswith("Scheduled: "), card
    meeting_id: str = card["text"].split("id `")[1].split("`")[0]
    return meeting_id


def posts_titled(posts: list[dict[str, Any]], title: str) -> list[dict[str, Any]]:
    return [p for p in posts if p["title"] == title]


def started_titles(posts: list[dict[str, Any]]) -> list[str]:
    """Titles of the huddle cards (a started meeting's card has a Join link to its huddle)."""
    return [p["title"] for p in posts if p["buttons"] and "/h/" in p["buttons"][0].get("url", "")]


async def wait_until(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


async def settle(url: str, channel: str) -> None:
    """Schedule one more meeting, due after everything else, and wait until it has started.

    The scheduler runs jobs in the order they fall due: once this one has run, every job due
    before it has too, so anything one of them would have posted twice is in the channel.
    """
    await schedule(url, channel, "in 3 seconds Last of the day")
    await wait_until(
        lambda: _has_started(url, channel, "Last of the day"), 60, "the last meeting to start"
    )


async def _has_started(url: str, channel: str, title: str) -> bool:
    return title in started_titles(await history(url, channel))


async def test_kill_9_with_pending_reminders_then_the_next_process_fires_them(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    first = await ServeProcess(data, name="first").start()
    # The process that takes over, started now and frozen: its cold start (tens of seconds on a
    # loaded machine) is not on the meetings' clock, and nothing leads until it is let go.
    second = await ServeProcess(data, name="second").start()
    try:

        async def roles() -> bool:
            return [(await p.health())["scheduler"] for p in (first, second)] == [
                "leader",
                "standby",
            ]

        await wait_until(roles, 60, "the first to lead and the second to stand by")
        t0 = time.monotonic()
        # Reminder and start both missed while nothing leads: the reminder is skipped, the
        # start still runs.
        await schedule(first.url, "ops", f"in {FIRST_DUE + 3} seconds remind 3s Started while down")
        # Reminder missed, the meeting not started yet: posted, marked late.
        later = FIRST_DUE + DOWN + TAKE_OVER + 3
        await schedule(first.url, "ops", f"in {later} seconds remind {later - FIRST_DUE}s Late one")
        scheduled = time.monotonic()
        # Due once the next process leads: posted on time.
        await schedule(first.url, "ops", f"in {later} seconds remind 3s On time")
        assert second.process is not None
        second.process.send_signal(signal.SIGSTOP)
        first.kill9()
        await first.wait_dead()
        assert time.monotonic() - t0 < FIRST_DUE, "too slow to schedule: the test proves nothing"
        # Not a guess at how long something takes: the time that must pass with nobody leading.
        await asyncio.sleep(max(0.0, scheduled + FIRST_DUE + DOWN - time.monotonic()))
        second.process.send_signal(signal.SIGCONT)

        async def all_started() -> bool:
            titles = started_titles(await history(second.url, "ops"))
            return {"Late one", "On time", "Started while down"} <= set(titles)

        await wait_until(all_started, 60, "every meeting to start")
        await settle(second.url, "ops")
        posts = await history(second.url, "ops")
        late = posts_titled(posts, "Reminder: Late one")
        on_time = posts_titled(posts, "Reminder: On time")
        assert len(late) == 1 and "late: the bot was offline" in late[0]["text"]
        assert len(on_time) == 1 and "late" not in on_time[0]["text"]
        assert posts_titled(posts, "Reminder: Started while down") == []
        for title in ("Late one", "On time", "Started while down"):
            assert len(posts_titled(posts, title)) == 1, title
        assert "reminder skipped: meeting already started" in second.log()
    finally:
        if second.process is not None and second.process.returncode is None:
            second.process.send_signal(signal.SIGCONT)
        await first.stop()
        await second.stop()


async def test_two_processes_on_postgresql_one_killed_no_duplicate_no_loss(
    tmp_path: Path, postgres_url: str
) -> None:
    env = {"HUDDLE_DATABASE_URL": postgres_url, "HUDDLE_SECRET": "shared-secret-for-both"}
    one = await ServeProcess(tmp_path / "one", env, name="one").start()
    two = await ServeProcess(tmp_path / "two", env, name="two").start()
    processes = [one, two]
    try:

        async def one_leader() -> bool:
            roles = [(await p.health())["scheduler"] for p in processes]
            return sorted(roles) == ["leader", "standby"]

        await wait_until(one_leader, 60, "one leader and one standby")
        roles = [(await p.health())["scheduler"] for p in processes]
        leader = processes[roles.index("leader")]
        standby = two if leader is one else one
        titles = [f"Meeting {n}" for n in range(4)]
        # Scheduled through the standby: the leader must pick them up from the database. The
        # starts are well after the reminders, so that a takeover on a loaded machine is in
        # time for them (a reminder after its start would be skipped).
        meeting_ids = [
            await schedule(standby.url, "team", f"in {20 + n} seconds remind {14 + n}s {title}")
            for n, title in enumerate(titles)
        ]
        jobs = postgres_url.replace("postgresql+asyncpg://", "postgresql://")

        async def planned() -> bool:
            # The leader's poll has planned them: their jobs are in its table.
            connection = await asyncpg.connect(jobs)
            try:
                ids = {row["id"] for row in await connection.fetch(f"SELECT id FROM {JOB_TABLE}")}
            finally:
                await connection.close()
            return all(
                any(i.startswith(f"{kind}:{meeting}:") for i in ids)
                for meeting in meeting_ids
                for kind in ("remind", "start")
            )

        await wait_until(planned, 30, "the leader to plan the meetings")
        leader.kill9()
        await leader.wait_dead()

        async def took_over() -> bool:
            return bool((await standby.health())["scheduler"] == "leader")

        await wait_until(took_over, 30, "the standby to lead")

        async def all_fired() -> bool:
            posts = await history(standby.url, "team")
            return all(
                posts_titled(posts, title) and posts_titled(posts, f"Reminder: {title}")
                for title in titles
            )

        # A post the dead leader was sending is the next one's once its lease runs out (30 s).
        await wait_until(all_fired, 90, "every reminder and start")
        await settle(standby.url, "team")
        posts = await history(standby.url, "team")
        for title in titles:
            assert len(posts_titled(posts, f"Reminder: {title}")) == 1, title
            assert len(posts_titled(posts, title)) == 1, title
    finally:
        for process in processes:
            await process.stop()

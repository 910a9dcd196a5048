"""Reminders survive kill -9, and exactly one of several processes sharing PostgreSQL sends them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.processes import ServeProcess

pytestmark = pytest.mark.timeout(120)


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


async def wait_until(check: Any, within: float, every: float = 0.25) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(every)
    raise AssertionError("condition not met in time")


async def test_kill_9_with_pending_reminders_then_restart_fires_them(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = await ServeProcess(data, name="first").start()
    t0 = time.monotonic()
    # Missed while down and the meeting not started yet: posted, marked late.
    await schedule(first.url, "ops", "in 14 seconds remind 11s Late one")
    # Due after the restart: posted on time.
    await schedule(first.url, "ops", "in 17 seconds remind 4s On time")
    # Reminder and start both missed while down: the reminder is skipped, the start still runs.
    await schedule(first.url, "ops", "in 6 seconds remind 3s Started while down")
    first.kill9()
    await first.wait_dead()
    await asyncio.sleep(max(0.0, 8.5 - (time.monotonic() - t0)))

    second = await ServeProcess(data, name="second").start()
    try:

        async def all_started() -> bool:
            posts = await history(second.url, "ops")
            titles = [
                p["title"]
                for p in posts
                if p["buttons"] and "/h/" in p["buttons"][0].get("url", "")
            ]
            return {"Late one", "On time", "Started while down"} <= set(titles)

        await wait_until(all_started, within=30)
        await asyncio.sleep(1.0)  # anything duplicated would land by now
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

        await wait_until(one_leader, within=15)
        roles = [(await p.health())["scheduler"] for p in processes]
        leader = processes[roles.index("leader")]
        standby = two if leader is one else one
        titles = [f"Meeting {n}" for n in range(4)]
        # Scheduled through the standby: the leader must pick them up from the database.
        for n, title in enumerate(titles):
            await schedule(standby.url, "team", f"in {10 + n} seconds remind {6 + n}s {title}")
        await asyncio.sleep(1.5)  # the leader's poll has planned them
        leader.kill9()
        await leader.wait_dead()

        async def took_over() -> bool:
            return bool((await standby.health())["scheduler"] == "leader")

        await wait_until(took_over, within=10)

        async def all_fired() -> bool:
            posts = await history(standby.url, "team")
            started = [p for p in posts if p["buttons"] and "/h/" in p["buttons"][0].get("url", "")]
            return len(started) >= len(titles)

        await wait_until(all_fired, within=40)
        await asyncio.sleep(1.5)
        posts = await history(standby.url, "team")
        for title in titles:
            assert len(posts_titled(posts, f"Reminder: {title}")) == 1, title
            assert len(posts_titled(posts, title)) == 1, title
    finally:
        for process in processes:
            await process.stop()

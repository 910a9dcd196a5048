"""The outbox: posts reach their platform once, in thread order, even after it was down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.delivery import Publisher, Undeliverable
from bot.store import Store
from bot.types import ChannelRef, HuddleSnapshot, MeetingSnapshot, Post, utc_now

GENERAL = ChannelRef("chat", "general")


class FlakyChat:
    """An in-memory platform that can be 'down' (every call raises) for a while."""

    name = "chat"

    def __init__(self) -> None:
        self.down = False
        #: Keys of posts whose sends fail while the rest go through.
        self.refusing: set[str] = set()
        self.hang = False
        self.messages: dict[str, Post] = {}
        self.threads: dict[str, str | None] = {}
        self.log: list[tuple[str, str]] = []
        self.resends: list[bool] = []

    async def send(self, post: Post, thread_ref: str | None) -> str:
        if self.hang:
            await asyncio.sleep(3600)
        if self.down or post.key in self.refusing:
            self.log.append(("send-failed", post.key))
            raise ConnectionError("platform unavailable")
        ref = f"m{len(self.messages) + 1}"
        self.messages[ref] = post
        self.resends.append(post.resend)
        self.threads[ref] = thread_ref
        self.log.append(("send", post.key))
        return ref

    async def edit(self, ref: str, post: Post) -> None:
        if self.down:
            self.log.append(("edit-failed", post.key))
            raise ConnectionError("platform unavailable")
        self.messages[ref] = post
        self.log.append(("edit", post.key))

    async def on_huddle(self, snapshot: HuddleSnapshot) -> None:
        return None

    async def on_meeting(self, snapshot: MeetingSnapshot) -> None:
        return None


class ManualClock:
    """The publisher's clock, moved only by the test: nothing falls due on its own."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/outbox.db")
    yield store
    await store.close()


def _publisher(
    store: Store, chat: FlakyChat, lease: float = 30.0, clock: ManualClock | None = None
) -> Publisher:
    publisher = Publisher(store, max_backoff=0.2, poll=0.05, lease=lease, clock=clock or utc_now)
    publisher.register(chat)
    publisher.start()
    return publisher


async def test_a_post_lands_and_later_versions_edit_it(store: Store) -> None:
    chat = FlakyChat()
    publisher = _publisher(store, chat)
    try:
        first = await publisher.publish(Post("card", GENERAL, "nobody in"))
        assert first is not None and chat.messages[first.ref].text == "nobody in"
        second = await publisher.publish(Post("card", GENERAL, "1 in the huddle"))
        assert second is not None and second.ref == first.ref
        assert chat.log == [("send", "card"), ("edit", "card")]
    finally:
        await publisher.stop()


async def test_a_post_someone_waits_for_is_sent_at_once_without_the_worker(
    store: Store,
) -> None:
    chat = FlakyChat()
    publisher = Publisher(store, poll=0.05)
    publisher.register(chat)  # never started: no worker claims anything
    try:
        landed = await publisher.publish(Post("card", GENERAL, "nobody in"), wait=2)
        assert landed is not None and chat.messages[landed.ref].text == "nobody in"
        assert await store.post_progress("card") == (1, landed.ref)
        # A post nobody waits for is the worker's: queued, not leased to this process nor sent,
        # so the next claim (a worker's, here the test's) takes it as never tried.
        assert await publisher.publish(Post("other", GENERAL, "later"), wait=0) is None
        now = utc_now()
        [queued] = await store.claim_due_posts(now, now + timedelta(seconds=30))
        assert (queued.key, queued.sending) == ("other", False)
        assert chat.log == [("send", "card")]
    finally:
        await publisher.stop()


async def test_platform_down_then_back_delivers_once_with_the_latest_text(store: Store) -> None:
    chat = FlakyChat()
    chat.down = True
    publisher = _publisher(store, chat)
    try:
        assert await publisher.publish(Post("card", GENERAL, "v1"), wait=0.3) is None
        await publisher.publish(Post("card", GENERAL, "v2"), wait=0)
        await publisher.publish(Post("card", GENERAL, "v3"), wait=0)
        async with asyncio.timeout(30):
            while True:  # the worker has tried (and failed) at least once
                if ("send-failed", "card") in chat.log:
                    break
                await asyncio.sleep(0.05)
        assert not chat.messages
        chat.down = False
        async with asyncio.timeout(30):
            await publisher.flush()
        assert [m.text for m in chat.messages.values()] == ["v3"]
        assert [entry for entry in chat.log if not entry[0].endswith("failed")] == [
            ("send", "card")
        ]
    finally:
        await publisher.stop()


async def test_replies_wait_for_their_thread_and_land_in_order(store: Store) -> None:
    chat = FlakyChat()
    chat.refusing.add("card")  # the card cannot land for now; its replies could
    publisher = _publisher(store, chat)
    try:
        await publisher.publish(Post("card", GENERAL, "card"), wait=0)
        for n in range(3):
            await publisher.publish(Post(f"note-{n}", GENERAL, f"note {n}", thread_of="card"), 0)
        # A post of no thread, after them: the worker takes posts oldest first, so once it has
        # landed, the worker has been past every reply at least once, each after the card's
        # first failed send.
        await publisher.publish(Post("elsewhere", GENERAL, "other news"), wait=0)
        async with asyncio.timeout(30):
            while True:
                if ("send", "elsewhere") in chat.log:
                    break
                await asyncio.sleep(0.01)
        assert ("send-failed", "card") in chat.log
        assert [key for kind, key in chat.log if kind == "send"] == ["elsewhere"]
        chat.refusing.clear()
        async with asyncio.timeout(30):
            await publisher.flush()
        sent = [key for kind, key in chat.log if kind == "send"]
        assert sent == ["elsewhere", "card", "note-0", "note-1", "note-2"]
        card_ref = next(ref for ref, post in chat.messages.items() if post.key == "card")
        assert all(
            chat.threads[ref] == card_ref for ref, post in chat.messages.items() if post.thread_of
        )
    finally:
        await publisher.stop()


async def test_a_process_that_dies_mid_send_leaves_the_post_for_the_next_one(
    store: Store,
) -> None:
    chat = FlakyChat()
    chat.hang = True
    dying = _publisher(store, chat, lease=0.5)
    await dying.publish(Post("card", GENERAL, "hello"), wait=0.2)
    await dying.stop()  # "killed" while the platform call hung: nothing was recorded
    chat.hang = False
    successor = _publisher(store, chat, lease=0.5)
    try:
        async with asyncio.timeout(30):
            await successor.flush()
        assert chat.log == [("send", "card")]
        # The successor is told the first send's outcome is unknown: look before posting.
        assert chat.resends == [True]
        ref = await store.post_ref("card")
        assert ref is not None and chat.messages[ref.ref].text == "hello"
    finally:
        await successor.stop()


async def test_posts_survive_a_restart_with_the_platform_down(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/restart.db"
    chat = FlakyChat()
    chat.down = True
    store = await Store.open(url)
    publisher = _publisher(store, chat)
    await publisher.publish(Post("card", GENERAL, "queued"), wait=0.1)
    await publisher.stop()
    await store.close()

    chat.down = False
    store = await Store.open(url)
    publisher = _publisher(store, chat)
    try:
        async with asyncio.timeout(30):
            await publisher.flush()
        assert [(kind, key) for kind, key in chat.log if kind == "send"] == [("send", "card")]
    finally:
        await publisher.stop()
        await store.close()


async def test_an_undeliverable_post_is_given_up_and_its_thread_still_flows(
    store: Store,
) -> None:
    chat = FlakyChat()
    attempts = 0
    original = chat.send

    async def refuse_dms(post: Post, thread_ref: str | None) -> str:
        nonlocal attempts
        if post.key == "dm":
            attempts += 1
            raise Undeliverable("the user does not accept direct messages")
        return await original(post, thread_ref)

    chat.send = refuse_dms  # type: ignore[method-assign]
    clock = ManualClock()
    publisher = _publisher(store, chat, clock=clock)
    try:
        assert await publisher.publish(Post("dm", GENERAL, "psst", to_user="bob"), wait=0.5) is None
        await publisher.publish(Post("after", GENERAL, "reply", thread_of="dm"), wait=0)
        async with asyncio.timeout(30):
            await publisher.flush()
        # An hour on, far past any backoff, the worker takes a later post: a retry of the dm
        # would have been due, and taken first.
        clock.advance(timedelta(hours=1))
        await publisher.publish(Post("later", GENERAL, "an hour on"), wait=0)
        async with asyncio.timeout(30):
            await publisher.flush()
        assert attempts == 1
        assert [key for kind, key in chat.log if kind == "send"] == ["after", "later"]
    finally:
        await publisher.stop()

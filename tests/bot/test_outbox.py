"""The outbox: posts reach their platform once, in thread order, even after it was down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.delivery import Publisher, Undeliverable
from bot.store import Store
from bot.types import ChannelRef, HuddleSnapshot, Post

GENERAL = ChannelRef("chat", "general")


class FlakyChat:
    """An in-memory platform that can be 'down' (every call raises) for a while."""

    name = "chat"

    def __init__(self) -> None:
        self.down = False
        self.hang = False
        self.messages: dict[str, Post] = {}
        self.threads: dict[str, str | None] = {}
        self.log: list[tuple[str, str]] = []
        self.resends: list[bool] = []

    async def send(self, post: Post, thread_ref: str | None) -> str:
        if self.hang:
            await asyncio.sleep(3600)
        if self.down:
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


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/outbox.db")
    yield store
    await store.close()


def _publisher(store: Store, chat: FlakyChat, lease: float = 30.0) -> Publisher:
    publisher = Publisher(store, max_backoff=0.2, poll=0.05, lease=lease)
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
        # A post nobody waits for is the worker's: queued, not sent.
        assert await publisher.publish(Post("other", GENERAL, "later"), wait=0) is None
        await asyncio.sleep(0.2)
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
        async with asyncio.timeout(10):
            while True:  # the worker has tried (and failed) at least once
                if ("send-failed", "card") in chat.log:
                    break
                await asyncio.sleep(0.05)
        assert not chat.messages
        chat.down = False
        async with asyncio.timeout(5):
            await publisher.flush()
        assert [m.text for m in chat.messages.values()] == ["v3"]
        assert [entry for entry in chat.log if not entry[0].endswith("failed")] == [
            ("send", "card")
        ]
    finally:
        await publisher.stop()


async def test_replies_wait_for_their_thread_and_land_in_order(store: Store) -> None:
    chat = FlakyChat()
    chat.down = True
    publisher = _publisher(store, chat)
    try:
        await publisher.publish(Post("card", GENERAL, "card"), wait=0)
        for n in range(3):
            await publisher.publish(Post(f"note-{n}", GENERAL, f"note {n}", thread_of="card"), 0)
        await asyncio.sleep(0.2)
        chat.down = False
        async with asyncio.timeout(5):
            await publisher.flush()
        sent = [key for kind, key in chat.log if kind == "send"]
        assert sent == ["card", "note-0", "note-1", "note-2"]
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
        async with asyncio.timeout(5):
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
        async with asyncio.timeout(5):
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
    publisher = _publisher(store, chat)
    try:
        assert await publisher.publish(Post("dm", GENERAL, "psst", to_user="bob"), wait=0.5) is None
        await publisher.publish(Post("after", GENERAL, "reply", thread_of="dm"), wait=0)
        async with asyncio.timeout(5):
            await publisher.flush()
        await asyncio.sleep(0.3)  # a retry would have happened by now (backoff 0.2 s at most)
        assert attempts == 1
        assert [key for kind, key in chat.log if kind == "send"] == ["after"]
    finally:
        await publisher.stop()

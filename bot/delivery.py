"""Putting core posts on platforms: first send, later edits in place, threads under parents.

Each adapter registers a :class:`Platform`; the :class:`Publisher` remembers where every post landed
(in the store) so the core can edit a card or reply in its thread by key alone.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Protocol

from bot.records import PostRef
from bot.store import Store
from bot.types import Delivered, Post

log = logging.getLogger("huddle.delivery")


class Platform(Protocol):
    """What an adapter offers the core for output."""

    name: str

    async def send(self, post: Post, thread_ref: str | None) -> str:
        """Post a new message (in the thread of ``thread_ref`` if given); return its platform id."""
        ...

    async def edit(self, ref: str, post: Post) -> None:
        """Replace the content of the message ``ref`` with ``post``."""
        ...


class DeliveryError(Exception):
    """A post could not be delivered even after retries."""


class Publisher:
    """Routes posts to their platform; sends the first time a key is seen, edits after that."""

    def __init__(self, store: Store, attempts: int = 4, backoff: float = 0.5) -> None:
        self.store = store
        self.platforms: dict[str, Platform] = {}
        self.attempts = attempts
        self.backoff = backoff
        self._locks: dict[str, asyncio.Lock] = {}

    def register(self, platform: Platform) -> None:
        """Make a platform available for posts to its channels."""
        self.platforms[platform.name] = platform

    async def publish(self, post: Post) -> Delivered:
        """Send or edit ``post`` on its channel's platform, retrying transient failures."""
        platform = self.platforms.get(post.channel.platform)
        if platform is None:
            raise DeliveryError(f"no adapter for platform {post.channel.platform!r}")
        # One delivery per key at a time, so two quick updates never both "send" a new message.
        lock = self._locks.setdefault(post.key, asyncio.Lock())
        async with lock:
            existing = await self.store.post_ref(post.key)
            thread_ref = None
            if post.thread_of is not None:
                parent = await self.store.post_ref(post.thread_of)
                thread_ref = parent.ref if parent else None
            for attempt in range(1, self.attempts + 1):
                try:
                    if existing is not None:
                        await platform.edit(existing.ref, post)
                        return Delivered(post=post, ref=existing.ref, thread_ref=thread_ref)
                    ref = await platform.send(post, thread_ref)
                    await self.store.save_post_ref(
                        PostRef(key=post.key, channel=post.channel, ref=ref), datetime.now(UTC)
                    )
                    return Delivered(post=post, ref=ref, thread_ref=thread_ref)
                except Exception as exc:
                    log.warning(
                        "delivery failed key=%s platform=%s attempt=%d error=%r",
                        post.key,
                        platform.name,
                        attempt,
                        exc,
                    )
                    if attempt == self.attempts:
                        raise DeliveryError(f"could not deliver {post.key}: {exc}") from exc
                    await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

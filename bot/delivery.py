"""Putting core posts on platforms, durably: a post is sent once, then edited in place.

Every post goes through the outbox (the ``posts`` table) before any platform sees it. A worker
delivers what is due; a failure is retried with backoff until the platform is back, and a process
that dies mid-send leaves the post due, so the next process (or this one, restarted) delivers it.
Edits of one post coalesce (only the latest text is sent), and posts in one thread land in order.

A new post that its publisher waits for (a `/meet` card) is recorded already leased to this
process and sent at once by the publisher itself: one transaction to record it and one to mark it
delivered, rather than also waiting for the worker's next claim. Should that send fail, or the
process die, the post is the worker's like any other.

A post that reached the platform just before a crash, with its ref not yet recorded, is sent again:
adapters pass ``post.key`` to the platform as an idempotency key where it has one.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta
from typing import Protocol

from bot.records import OutboxEntry
from bot.store import OutboxPost, Store
from bot.types import Button, Clock, Delivered, HuddleSnapshot, MeetingSnapshot, Post, utc_now

log = logging.getLogger("huddle.delivery")


class Platform(Protocol):
    """What an adapter offers the core for output."""

    name: str

    async def send(self, post: Post, thread_ref: str | None) -> str:
        """Post a new message (in the thread of ``thread_ref`` if given); return its platform id.

        Raise on failure: the outbox retries. ``post.key`` is stable across retries.
        """
        ...

    async def edit(self, ref: str, post: Post) -> None:
        """Replace the content of the message ``ref`` with ``post``."""
        ...

    async def on_huddle(self, snapshot: HuddleSnapshot) -> None:
        """Mirror a huddle natively where the platform can (no-op elsewhere)."""
        ...

    async def on_meeting(self, snapshot: MeetingSnapshot) -> None:
        """Mirror a scheduled meeting natively (Discord scheduled events; no-op elsewhere)."""
        ...


class Undeliverable(Exception):
    """Raised by a platform when a post can never land (user refuses DMs, channel gone).

    The outbox stops retrying it and logs why; replies in its thread go to the channel instead.
    """


def _encode(post: Post) -> str:
    return json.dumps(
        {
            "title": post.title,
            "text": post.text,
            "buttons": [[b.label, b.url, b.action] for b in post.buttons],
            "to_user": post.to_user,
        }
    )


def _decode(entry: OutboxEntry) -> Post:
    # ``resend``: a process began sending this and died before recording the outcome.
    data = json.loads(entry.payload)
    return Post(
        key=entry.key,
        channel=entry.channel,
        title=data["title"],
        text=data["text"],
        buttons=tuple(Button(label, url, action) for label, url, action in data["buttons"]),
        thread_of=entry.thread_of,
        to_user=data.get("to_user"),
        resend=entry.sending,
    )


class Publisher:
    """The outbox: ``publish`` records a post; it or a background worker delivers it."""

    def __init__(
        self,
        store: Store,
        *,
        max_backoff: float = 60.0,
        lease: float = 30.0,
        poll: float = 1.0,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.platforms: dict[str, Platform] = {}
        self.max_backoff = max_backoff
        self.lease = lease
        self.poll = poll
        self.clock = clock
        self._wake = asyncio.Event()
        #: Publishers waiting for a post to land: key -> [(version, future of its ref)].
        self._waiters: dict[str, list[tuple[int, asyncio.Future[str]]]] = {}
        self._worker: asyncio.Task[None] | None = None
        #: New posts this process leased to itself and is sending now (see ``outgoing``).
        self._sending: set[asyncio.Task[None]] = set()

    def register(self, platform: Platform) -> None:
        """Make a platform available for posts to its channels."""
        self.platforms[platform.name] = platform

    def start(self) -> None:
        """Start delivering (and pick up whatever a previous process left due)."""
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the worker; undelivered posts stay in the outbox for the next start."""
        tasks = list(self._sending)
        if self._worker is not None:
            tasks.append(self._worker)
            self._worker = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def publish(self, post: Post, wait: float = 5.0) -> Delivered | None:
        """Record ``post`` durably and wait up to ``wait`` s for it to land.

        Returns where it landed, or None if it is still queued (it will be delivered later).
        """
        version, leased = await self.store.queue_post(self.outgoing(post, now=wait > 0))
        return await self.delivered(post, version, leased, wait)

    def outgoing(self, post: Post, *, now: bool = False) -> OutboxPost:
        """``post`` as the outbox records it (``Store.queue_post``, or with other rows in one
        transaction, ``Store.add_huddle``); then :meth:`delivered` sends it.

        ``now``: if the post is new, lease it to this process in the same statement, so that
        :meth:`delivered` sends it at once rather than after the worker's next claim.
        """
        at = self.clock()
        lease = at + timedelta(seconds=self.lease) if now else None
        return OutboxPost(post.key, post.channel, post.thread_of, _encode(post), at, lease)

    async def delivered(
        self, post: Post, version: int, leased: OutboxEntry | None, wait: float = 5.0
    ) -> Delivered | None:
        """Deliver ``version`` of ``post``, just recorded (sent at once if it was ``leased`` to
        this process, else by the worker); wait up to ``wait`` s for it to land.

        Returns where it landed, or None if it is still queued (it will be delivered later).
        """
        if leased is not None:
            task = asyncio.get_running_loop().create_task(self._deliver_leased(leased))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        else:
            self._wake.set()
        if wait <= 0:
            return None
        # Resolved when this process delivers the version. The database is asked only when a
        # poll goes by without it (another process may have delivered it): a version just
        # recorded has not landed anywhere yet, so asking at once would only cost a round trip.
        landed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(post.key, [])
        waiters.append((version, landed))
        try:
            async with asyncio.timeout(wait):
                while True:
                    try:
                        ref = await asyncio.wait_for(asyncio.shield(landed), timeout=self.poll)
                        return Delivered(post=post, ref=ref)
                    except TimeoutError:
                        pass
                    delivered_version, known = await self.store.post_progress(post.key)
                    if delivered_version >= version and known is not None:
                        return Delivered(post=post, ref=known)
        except TimeoutError:
            log.warning("post queued key=%s (platform slow or down; it will be retried)", post.key)
            return None
        finally:
            waiters.remove((version, landed))
            if not waiters:
                self._waiters.pop(post.key, None)

    async def flush(self) -> None:
        """Wait until nothing is left to deliver (wrap in ``asyncio.timeout`` to bound it)."""
        while await self.store.outbox_backlog():
            self._wake.set()
            await asyncio.sleep(0.02)

    async def notify(self, snapshot: HuddleSnapshot | MeetingSnapshot) -> None:
        """Tell the channel's platform a huddle's or meeting's state; failures are only logged."""
        platform = self.platforms.get(snapshot.channel.platform)
        if platform is None:
            return
        try:
            if isinstance(snapshot, HuddleSnapshot):
                await platform.on_huddle(snapshot)
            else:
                await platform.on_meeting(snapshot)
        except Exception:
            log.exception("mirror failed %r platform=%s", snapshot, platform.name)

    async def _run(self) -> None:
        while True:
            try:
                delivered_any = await self._deliver_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The database itself failing (restarting, say): keep trying, never die.
                log.exception("outbox pass failed")
                delivered_any = False
            if not delivered_any:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll)
                except TimeoutError:
                    pass

    async def _deliver_due(self) -> bool:
        now = self.clock()
        entries = await self.store.claim_due_posts(
            now, now + timedelta(seconds=self.lease), limit=50
        )
        for entry in entries:
            await self._deliver(entry)
        return bool(entries)

    async def _deliver_leased(self, entry: OutboxEntry) -> None:
        try:
            await self._deliver(entry)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The database failing: the lease runs out and the worker takes the post over.
            log.exception("direct delivery failed key=%s", entry.key)

    async def _deliver(self, entry: OutboxEntry) -> None:
        platform = self.platforms.get(entry.channel.platform)
        now = self.clock()
        if platform is None:
            await self._failed(entry, f"no adapter for platform {entry.channel.platform!r}")
            return
        if entry.ref is None and await self.store.undelivered_before(entry):
            # Its thread parent or an older reply has not landed yet: keep thread order.
            later = now + timedelta(seconds=self.poll)
            await self.store.mark_post_failed(
                entry, "waiting for thread order", later, attempt=False
            )
            return
        post = _decode(entry)
        try:
            if entry.ref is not None:
                await platform.edit(entry.ref, post)
                ref = entry.ref
            else:
                thread_ref = None
                if entry.thread_of is not None:
                    parent = await self.store.post_ref(entry.thread_of)
                    thread_ref = parent.ref if parent else None
                # Its claim (or its lease when it was recorded) counted it as being sent: a
                # crash from here on leaves it to be looked for before it is sent again.
                ref = await platform.send(post, thread_ref)
        except Undeliverable as exc:
            log.error(
                "post undeliverable key=%s platform=%s reason=%s",
                entry.key,
                entry.channel.platform,
                exc,
            )
            await self.store.give_up_post(entry, f"undeliverable: {exc}", self.clock())
            return
        except Exception as exc:
            await self._failed(entry, repr(exc))
            return
        await self.store.mark_post_delivered(entry, ref, self.clock())
        for version, landed in self._waiters.get(entry.key, ()):
            if version <= entry.version and not landed.done():
                landed.set_result(ref)
        if entry.attempts:
            log.info("post delivered after retries key=%s attempts=%d", entry.key, entry.attempts)

    async def _failed(self, entry: OutboxEntry, error: str) -> None:
        delay = min(self.max_backoff, 0.5 * 2**entry.attempts)
        level = logging.WARNING if entry.attempts < 5 else logging.ERROR
        log.log(
            level,
            "delivery failed key=%s platform=%s attempt=%d retry_in=%.1fs error=%s",
            entry.key,
            entry.channel.platform,
            entry.attempts + 1,
            delay,
            error[:300],
        )
        await self.store.mark_post_failed(entry, error, self.clock() + timedelta(seconds=delay))

"""The core's posts as Slack messages: sent once per post key, then edited in place.

The core's outbox retries a failed :meth:`SlackPosts.send`, so a send must be safe to repeat.
Every message carries the post key in its metadata (``event_type: huddle_post``). When a
``chat.postMessage`` ends without a clear answer (a 5xx, a dropped connection, a timeout), Slack
may have posted it anyway; the next send of that key first looks for a bot message carrying the
key (``conversations.history``, or ``conversations.replies`` in a thread) and returns it if found.
A clear refusal (``ok: false``, a 429) means nothing was posted, so it is simply tried again.

A post with ``to_user`` goes to that person's direct message with the bot (``conversations.open``).
Its ref then names the DM too (``D024BE91L:1700000000.000100``), since the core edits by ref and
the post's own channel is not where it landed; a channel post's ref is its bare ``ts``.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import cast

from slack_sdk.web.async_slack_response import AsyncSlackResponse

from adapters.slack.api import SlackApi, slack_error
from adapters.slack.blocks import POST_EVENT_TYPE, post_blocks, post_metadata, post_text
from adapters.slack.payloads import HistoryMessage
from bot.delivery import Undeliverable
from bot.types import Post

log = logging.getLogger("huddle.slack.posts")

#: Slack's timestamps come from Slack's clock; look back far enough to forgive skew.
LOOKBACK = 600.0
#: Pages of 200 messages searched for a key: a busy channel gets ~1000 messages in minutes.
MAX_PAGES = 5
REMEMBERED = 4096
#: How long a channel's refusal explains a missing card to the person who typed `/meet`.
TROUBLE_TTL = 120.0
#: Refusals that mean "the bot cannot post here" until someone invites it (retried meanwhile).
CHANNEL_ERRORS = frozenset({"not_in_channel", "channel_not_found"})
#: Refusals that no retry can cure: the outbox gives the post up (``Undeliverable``).
#: Token and scope errors are not among them: fixing the app's config makes the posts go out.
FINAL_ERRORS = frozenset(
    {
        "is_archived",
        "restricted_action",
        "restricted_action_read_only_channel",
        "restricted_action_thread_only_channel",
        "restricted_action_non_threadable_channel",
        "ekm_access_denied",
        "invalid_blocks",
        "invalid_metadata_format",
        "invalid_metadata_schema",
        "msg_too_long",
        "no_text",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "user_not_found",
        "user_disabled",
        "cannot_dm_bot",
        "messages_tab_disabled",
    }
)


def split_ref(ref: str, channel: str) -> tuple[str, str]:
    """``(channel, ts)`` of a ref this module returned for a post whose channel is ``channel``."""
    where, _, ts = ref.rpartition(":")
    return (where or channel), ts


class SlackPosts:
    """``chat.postMessage`` with an idempotency key, and ``chat.update``."""

    def __init__(self, api: SlackApi, clock: Callable[[], float] = time.time) -> None:
        self.api = api
        self.clock = clock
        #: Set from ``auth.test``; narrows the search to messages this bot posted.
        self.bot_id: str | None = None
        self._sent: OrderedDict[str, str] = OrderedDict()
        self._uncertain: dict[str, float] = {}
        self._trouble: dict[str, tuple[str, float]] = {}
        self._history_refused: set[str] = set()
        self._dms: dict[str, str] = {}

    async def send(self, post: Post, thread_ref: str | None) -> str:
        """Post ``post`` once; return its ``ts``. Raises when Slack did not take it."""
        known = self._sent.get(post.key)
        if known is not None:
            # Delivered by this process already (the outbox lost our answer): same message.
            return known
        home = post.channel.channel_id
        channel = await self._direct(post.to_user) if post.to_user else home
        thread_ts = split_ref(thread_ref, home)[1] if thread_ref else None
        first_try = self._uncertain.get(post.key)
        if first_try is None and post.resend:
            # Another process began this send and died: look back a day for what it may have sent.
            first_try = self.clock() - 86_400
        if first_try is not None:
            found = await self._find(channel, post.key, thread_ts, first_try)
            if found is not None:
                log.info("post found after unclear failure key=%s ts=%s", post.key, found)
                return self._delivered(post, channel, found)
        started = self.clock()
        try:
            response = await self.api.web_once.chat_postMessage(
                channel=channel,
                text=post_text(post),
                blocks=post_blocks(post),
                metadata=post_metadata(post.key),
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
            )
        except Exception as exc:
            error = slack_error(exc)
            if error is None:
                self._uncertain.setdefault(post.key, started)
            elif error in CHANNEL_ERRORS:
                if post.to_user:
                    raise Undeliverable(f"Slack said {error} for the DM") from exc
                self._trouble[channel] = (error, time.monotonic())
            elif error in FINAL_ERRORS:
                raise Undeliverable(f"Slack said {error}") from exc
            raise
        return self._delivered(post, channel, str(response["ts"]))

    async def edit(self, ref: str, post: Post) -> None:
        """Replace the message ``ref`` (idempotent, so every failure is simply retried)."""
        channel, ts = split_ref(ref, post.channel.channel_id)
        try:
            await self.api.web.chat_update(
                channel=channel,
                ts=ts,
                text=post_text(post),
                blocks=post_blocks(post),
                metadata=post_metadata(post.key),
            )
        except Exception as exc:
            error = slack_error(exc)
            # A deleted card (or archived channel) cannot be edited any more: stop trying.
            if error in FINAL_ERRORS or error == "channel_not_found":
                raise Undeliverable(f"Slack said {error}") from exc
            raise

    def trouble(self, channel: str) -> str | None:
        """Slack's recent reason for refusing posts in ``channel`` (``not_in_channel``...)."""
        entry = self._trouble.get(channel)
        if entry is None or time.monotonic() - entry[1] > TROUBLE_TTL:
            return None
        return entry[0]

    def _delivered(self, post: Post, channel: str, ts: str) -> str:
        ref = ts if channel == post.channel.channel_id else f"{channel}:{ts}"
        self._uncertain.pop(post.key, None)
        self._trouble.pop(channel, None)
        self._sent[post.key] = ref
        if len(self._sent) > REMEMBERED:
            self._sent.popitem(last=False)
        return ref

    async def _direct(self, user_id: str) -> str:
        """The bot's DM channel with ``user_id`` (``conversations.open`` is idempotent)."""
        channel = self._dms.get(user_id)
        if channel is None:
            try:
                response = await self.api.web.conversations_open(users=user_id)
            except Exception as exc:
                error = slack_error(exc)
                if error in FINAL_ERRORS or error in CHANNEL_ERRORS:
                    raise Undeliverable(f"cannot open a DM with {user_id}: {error}") from exc
                raise
            channel = str(response["channel"]["id"])
            self._dms[user_id] = channel
        return channel

    async def _find(
        self, channel: str, key: str, thread_ts: str | None, since: float
    ) -> str | None:
        """The ``ts`` of this bot's message carrying ``key``, posted since ``since``.

        Raises when Slack cannot answer now (the outbox retries); returns None when Slack refuses
        to show the history (a missing scope, say): then the post is sent, with a warning.
        """
        cursor: str | None = None
        oldest = f"{since - LOOKBACK:.6f}"
        for _ in range(MAX_PAGES):
            try:
                response = await self._history_page(channel, thread_ts, oldest, cursor)
            except Exception as exc:
                error = slack_error(exc)
                if error is None or error == "ratelimited":
                    raise
                if channel not in self._history_refused:
                    self._history_refused.add(channel)
                    log.warning(
                        "cannot check channel=%s for an earlier copy of key=%s (Slack said %s; "
                        "grant channels:history, groups:history, im:history); posting, a "
                        "duplicate is possible",
                        channel,
                        key,
                        error,
                    )
                return None
            for message in cast(list[HistoryMessage], response.get("messages") or []):
                if self._carries(message, key):
                    return message.get("ts")
            metadata = response.get("response_metadata") or {}
            cursor = metadata.get("next_cursor") or None
            if not cursor:
                return None
        return None

    async def _history_page(
        self, channel: str, thread_ts: str | None, oldest: str, cursor: str | None
    ) -> AsyncSlackResponse:
        if thread_ts is not None:
            return await self.api.web.conversations_replies(
                channel=channel,
                ts=thread_ts,
                oldest=oldest,
                cursor=cursor,
                limit=200,
                include_all_metadata=True,
            )
        return await self.api.web.conversations_history(
            channel=channel, oldest=oldest, cursor=cursor, limit=200, include_all_metadata=True
        )

    def _carries(self, message: HistoryMessage, key: str) -> bool:
        metadata = message.get("metadata") or {}
        if metadata.get("event_type") != POST_EVENT_TYPE:
            return False
        if (metadata.get("event_payload") or {}).get("key") != key:
            return False
        return self.bot_id is None or message.get("bot_id") in (None, self.bot_id)

"""Who typed: display names and time zones from ``users.info``, cached.

Slack's slash command payload carries only the legacy ``user_name`` handle; people know each other
by their display name, and times read right only in their own zone, so both come from
``users.info`` (scope ``users:read``). A failed lookup never blocks a command: it falls back to the
handle and is tried again a minute later.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.payloads import UserInfo

log = logging.getLogger("huddle.slack.users")

#: Names change rarely; an hour keeps ``users.info`` (Tier 4) far below its limit.
TTL = 3600.0
#: After a failed lookup, use the fallback for this long before asking again.
FAILED_TTL = 60.0
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class SlackUser:
    """A Slack user as the adapter shows them: the name people know, and their time zone."""

    id: str
    name: str
    #: IANA zone name (``Europe/Paris``), or None when unknown.
    tz: str | None = None
    #: Seconds east of UTC at lookup time (Slack's ``tz_offset``).
    tz_offset: int | None = None


def display_name(user: UserInfo, fallback: str) -> str:
    """Slack's own order: the display name, else the real name, else the handle."""
    profile = user.get("profile") or {}
    for candidate in (
        profile.get("display_name_normalized"),
        profile.get("display_name"),
        profile.get("real_name_normalized"),
        profile.get("real_name"),
        user.get("real_name"),
        user.get("name"),
    ):
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return fallback


class UserDirectory:
    """``users.info`` behind a cache; concurrent lookups of one user share one request."""

    def __init__(self, client: AsyncWebClient, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.clock = clock
        self._cache: dict[str, tuple[float, SlackUser]] = {}
        self._pending: dict[str, asyncio.Future[SlackUser]] = {}

    def cached(self, user_id: str) -> SlackUser | None:
        """The user if known and fresh (the time zone, say, for formatting a time)."""
        entry = self._cache.get(user_id)
        if entry is None or entry[0] < self.clock():
            return None
        return entry[1]

    async def get(self, user_id: str, fallback_name: str = "") -> SlackUser:
        """The user, from the cache or Slack; never raises."""
        known = self.cached(user_id)
        if known is not None:
            return known
        pending = self._pending.get(user_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[SlackUser] = asyncio.get_running_loop().create_future()
        self._pending[user_id] = future
        try:
            user = await self._lookup(user_id, fallback_name or user_id)
        except BaseException:
            # Cancelled mid-lookup: whoever shares this lookup must not wait forever.
            future.cancel()
            raise
        finally:
            del self._pending[user_id]
        future.set_result(user)
        return user

    async def _lookup(self, user_id: str, fallback: str) -> SlackUser:
        try:
            response = await self.client.users_info(user=user_id)
            info = cast(UserInfo, response.get("user") or {})
        except Exception as exc:
            log.warning("users.info failed user=%s error=%r; using %r", user_id, exc, fallback)
            user = SlackUser(user_id, fallback)
            self._remember(user, FAILED_TTL)
            return user
        offset = info.get("tz_offset")
        user = SlackUser(
            id=user_id,
            name=display_name(info, fallback),
            tz=info.get("tz") or None,
            tz_offset=offset if isinstance(offset, int) else None,
        )
        self._remember(user, TTL)
        return user

    def _remember(self, user: SlackUser, ttl: float) -> None:
        if len(self._cache) >= MAX_ENTRIES:
            # Oldest insertion first: dicts keep order, and a full workspace still fits.
            self._cache.pop(next(iter(self._cache)))
        self._cache[user.id] = (self.clock() + ttl, user)

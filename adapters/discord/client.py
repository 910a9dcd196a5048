"""The discord.py client huddle runs: two intents, no caches it does not use, the `/meet` tree."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import discord
import yarl
from discord import app_commands

from adapters.discord.components import ActionButton, ActionHandler

log = logging.getLogger("huddle.discord")


#: Called with ``(guild_id, event_id)`` when someone marks a scheduled event interested or not.
InterestHandler = Callable[[int, int], Awaitable[None]]
#: Called once a gateway session (not a resume) is ready.
ReadyHandler = Callable[[], Awaitable[None]]

#: Gateway events saying who is interested in a scheduled event.
_INTEREST_EVENTS = ("GUILD_SCHEDULED_EVENT_USER_ADD", "GUILD_SCHEDULED_EVENT_USER_REMOVE")


class DiscordNotConnected(Exception):
    """Discord was needed before the bot logged in; the caller tries again later."""


def intents() -> discord.Intents:
    """``guilds`` and ``guild_scheduled_events``; slash commands arrive regardless of intents.

    Neither is privileged. The second brings who marks a meeting's scheduled event interested.
    """
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_scheduled_events = True
    return wanted


class HuddleClient(discord.Client):
    """A gateway and REST connection with the `/meet` command tree attached."""

    def __init__(
        self,
        commands: Sequence[app_commands.Command[Any, ..., None]],
        action_handler: ActionHandler,
        *,
        interest_handler: InterestHandler | None = None,
        ready_handler: ReadyHandler | None = None,
        gateway_override: yarl.URL | None = None,
    ) -> None:
        # huddle never joins voice channels (calls live on its own page): spare the log two
        # warnings about voice libraries it does not need.
        discord.VoiceClient.warn_nacl = False
        discord.VoiceClient.warn_dave = False
        super().__init__(
            intents=intents(),
            member_cache_flags=discord.MemberCacheFlags.none(),
            chunk_guilds_at_startup=False,
            max_messages=None,
            # discord.py drops GUILD_SCHEDULED_EVENT_USER_ADD/REMOVE for users it has not cached
            # (it caches none here); the raw gateway messages are the only public way to see them.
            enable_debug_events=interest_handler is not None,
        )
        self.tree = app_commands.CommandTree(self)
        for command in commands:
            self.tree.add_command(command)
        #: Runs action-button clicks (:class:`ActionButton` finds it here).
        self.action_handler = action_handler
        self._interest_handler = interest_handler
        self._ready_handler = ready_handler
        self._gateway_override = gateway_override

    async def setup_hook(self) -> None:
        """Route clicks on action buttons, including those on messages sent before a restart."""
        self.add_dynamic_items(ActionButton)

    async def sync_commands(self, guild_ids: Sequence[int]) -> list[dict[str, Any]]:
        """Register the commands: in each guild (instant) when given, else globally (up to 1 h).

        A bulk overwrite: re-sending unchanged commands does not count against Discord's daily
        limit on creating commands, so doing it on every start is safe. Returns what was sent.
        """
        if not guild_ids:
            await self.tree.sync()
            log.info("discord commands synced globally")
            return self.schema()
        for guild_id in guild_ids:
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)
            log.info("discord commands synced guild=%s", guild_id)
        return self.schema()

    def schema(self) -> list[dict[str, Any]]:
        """The commands as Discord's JSON, exactly as a sync sends them."""
        return [command.to_dict(self.tree) for command in self.tree.get_commands()]

    async def on_connect(self) -> None:
        """After READY: keep resumes on the configured gateway (a proxy) rather than Discord's."""
        if self._gateway_override is not None and self.ws is not None:
            self.ws.gateway = self._gateway_override

    async def on_ready(self) -> None:
        """Logged once the gateway session and the guilds it names have arrived."""
        user = self.user
        log.info("discord ready user=%s guilds=%d", user.id if user else "?", len(self.guilds))
        if self._ready_handler is not None:
            await self._ready_handler()

    async def on_socket_raw_receive(self, message: str) -> None:
        """Pass on who marked a scheduled event interested (or not) to the interest handler."""
        if self._interest_handler is None or not isinstance(message, str):
            return
        # A substring test first: every gateway message comes through here, few are these.
        if "GUILD_SCHEDULED_EVENT_USER_" not in message:
            return
        payload = json.loads(message)
        if payload.get("t") not in _INTEREST_EVENTS:
            return
        data = payload["d"]
        await self._interest_handler(int(data["guild_id"]), int(data["guild_scheduled_event_id"]))

    async def on_resumed(self) -> None:
        """A dropped gateway connection was resumed: no event was lost."""
        log.info("discord gateway resumed")

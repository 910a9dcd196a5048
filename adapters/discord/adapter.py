"""The ``discord`` platform: `/meet` in, cards and thread posts out, on discord.py.

Posts are ordinary channel messages sent with the bot token, not interaction responses (whose
token dies after 15 minutes): a card must stay editable for as long as its huddle lasts. Each
top-level post gets a thread under it for the meeting's notes; a post the core puts in that thread
goes there, creating the thread first if it is missing.

Delivery is safe to retry. A send carries a nonce derived from the post's key and discord.py sets
``enforce_nonce``, so if Discord created the message but the answer was lost (a 5xx, a dropped
connection) the retry gets the same message back instead of a second one. Failures raise; the core
decides when to try again, except for those that can never succeed (a user who takes no direct
messages, a channel that is gone or closed to the bot): they raise ``Undeliverable`` and the core
gives the post up.

Scheduled meetings are mirrored as Discord scheduled events (:mod:`.scheduled_events`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from typing import Literal

import aiohttp
import discord
from aiohttp import web

from adapters.discord import endpoints
from adapters.discord.client import DiscordNotConnected, HuddleClient
from adapters.discord.interactions import Interactions
from adapters.discord.meet import meet_command
from adapters.discord.messages import (
    NO_MENTIONS,
    MessageRef,
    Rendered,
    nonce_for,
    render_post,
    thread_name,
)
from adapters.discord.scheduled_events import MeetingEvents
from bot.commands import Commands
from bot.config import Settings
from bot.delivery import Undeliverable
from bot.types import HuddleSnapshot, MeetingSnapshot, Post

log = logging.getLogger("huddle.discord")

#: Discord's error codes (https://discord.com/developers/docs/topics/opcodes-and-status-codes).
UNKNOWN_CHANNEL = 10003
UNKNOWN_MESSAGE = 10008
UNKNOWN_USER = 10013
MISSING_ACCESS = 50001
CANNOT_MESSAGE_USER = 50007
MISSING_PERMISSIONS = 50013
INVALID_RECIPIENTS = 50033
THREAD_ALREADY_CREATED = 160004

#: Refusals that no retry can change: the post is given up (an admin fixing permissions later
#: gets the next post, not this one).
NEVER_DELIVERABLE = frozenset(
    {
        UNKNOWN_CHANNEL,
        UNKNOWN_MESSAGE,  # a thread's parent card was deleted before its thread was opened
        UNKNOWN_USER,
        MISSING_ACCESS,
        CANNOT_MESSAGE_USER,
        MISSING_PERMISSIONS,
        INVALID_RECIPIENTS,
    }
)

#: Notes threads stay open a week after the last message (Discord's longest auto-archive).
THREAD_ARCHIVE_MINUTES: Literal[10080] = 10080

#: Waits between attempts to log in or sync while Discord (or the network) is unreachable.
RETRY_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class DiscordAdapter:
    """Runs the Discord bot inside `huddle serve` and delivers the core's posts to Discord."""

    name = "discord"

    def __init__(self, settings: Settings, commands: Commands) -> None:
        self.settings = settings
        self.interactions = Interactions(commands)
        self.events = MeetingEvents(commands.meetings, self._ready_client)
        self._client: HuddleClient | None = None
        self._runner: asyncio.Task[None] | None = None
        self._logged_in = asyncio.Event()
        #: What the last command sync sent, as Discord's JSON (tests compare it with the manifest).
        self.synced: list[dict[str, object]] | None = None

    # Lifecycle

    def add_routes(self, app: web.Application) -> None:
        """Discord reaches the bot over the gateway: no HTTP routes."""

    async def start(self) -> None:
        """Connect in the background: the rest of the server runs while Discord is unreachable."""
        gateway = endpoints.point_at(
            self.settings.discord_api_url, self.settings.discord_gateway_url
        )
        self._client = HuddleClient(
            [meet_command(self.interactions.meet)],
            self.interactions.action,
            interest_handler=self.events.interest_changed,
            ready_handler=self.events.recount_all,
            gateway_override=gateway,
        )
        self._runner = asyncio.create_task(self._run(self._client), name="discord")
        self.events.start()

    async def stop(self) -> None:
        """Close the gateway and the HTTP session; give up on a login still being retried."""
        await self.events.stop()
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)

    @property
    def client(self) -> HuddleClient:
        """The logged-in client; raises while it is not."""
        if self._client is None or not self._logged_in.is_set() or self._client.is_closed():
            raise DiscordNotConnected("the Discord bot is not logged in (yet)")
        return self._client

    async def _ready_client(self) -> HuddleClient:
        """The client once logged in and its guilds have arrived (events need the guild cache)."""
        await self._logged_in.wait()
        client = self.client
        await client.wait_until_ready()
        return client

    async def _run(self, client: HuddleClient) -> None:
        try:
            if not await self._login(client):
                return
            self._logged_in.set()
            await self._sync(client)
            # discord.py reconnects by itself (resuming the session) until the client is closed.
            await client.connect(reconnect=True)
        except discord.PrivilegedIntentsRequired:
            log.error("discord refused the gateway: an intent is not enabled for this bot")
        except discord.ConnectionClosed as exc:
            log.error("discord closed the gateway for good code=%s", exc.code)
        except Exception:
            log.exception("discord bot stopped")

    async def _login(self, client: HuddleClient) -> bool:
        for attempt in itertools.count():
            try:
                await client.login(self.settings.discord_token)
                return True
            except discord.LoginFailure:
                log.error(
                    "DISCORD_TOKEN was rejected by Discord: copy the bot token from the "
                    "Developer Portal (Bot > Reset Token); the Discord bot stays off"
                )
                return False
            except (OSError, aiohttp.ClientError, discord.HTTPException) as exc:
                delay = RETRY_BACKOFF[min(attempt, len(RETRY_BACKOFF) - 1)]
                log.warning("discord login failed, retrying in %.0fs error=%r", delay, exc)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
        raise AssertionError("unreachable")

    async def _sync(self, client: HuddleClient) -> None:
        for attempt in range(len(RETRY_BACKOFF) + 1):
            try:
                self.synced = await client.sync_commands(self.settings.discord_guild_ids)
                return
            except discord.Forbidden:
                log.error(
                    "discord refused the command sync: invite the bot with the "
                    "applications.commands scope to guilds=%s",
                    list(self.settings.discord_guild_ids),
                )
                return
            except (OSError, aiohttp.ClientError, discord.HTTPException) as exc:
                if attempt == len(RETRY_BACKOFF):
                    log.error("discord command sync gave up error=%r", exc)
                    return
                log.warning("discord command sync failed, retrying error=%r", exc)
                await asyncio.sleep(RETRY_BACKOFF[attempt])

    # Output: the core's posts

    async def send(self, post: Post, thread_ref: str | None) -> str:
        """Post a new message; return its ref (``channel_id/message_id``).

        In the thread under ``thread_ref`` if given, as a direct message if ``post.to_user`` is set,
        else in the post's channel, with a notes thread opened under it.
        """
        try:
            return await self._send(post, thread_ref)
        except discord.HTTPException as exc:
            if exc.code in NEVER_DELIVERABLE:
                raise Undeliverable(f"discord refused for good: {exc}") from exc
            raise

    async def _send(self, post: Post, thread_ref: str | None) -> str:
        client = self.client
        rendered = render_post(post)
        nonce = nonce_for(post.key)
        if post.to_user is not None:
            # Private to one person: a direct message (no thread; DMs have none).
            dm = await client.create_dm(discord.Object(id=int(post.to_user)))
            return str(await self._send_to(client, dm.id, rendered, nonce))
        if thread_ref is not None:
            parent = MessageRef.parse(thread_ref)
            return str(await self._send_in_thread(client, parent, rendered, nonce, post))
        ref = await self._send_to(client, int(post.channel.channel_id), rendered, nonce)
        try:
            # Eagerly, so people can take notes from the start; the card matters more, so a
            # failure here is logged and the thread gets another chance on its first post.
            await self._open_thread(client, ref, thread_name(post.title, post.text))
        except discord.HTTPException as exc:
            log.warning(
                "could not open notes thread message=%s key=%s error=%r", ref, post.key, exc
            )
        return str(ref)

    async def edit(self, ref: str, post: Post) -> None:
        """Replace the message's content, embed and buttons with ``post``'s.

        A message someone deleted (or whose channel went) stays gone: retrying cannot bring it
        back and posting it again would undo a moderator, so that edit is dropped with a warning.
        One the bot may no longer edit (permissions taken away) is given up.
        """
        where = MessageRef.parse(ref)
        rendered = render_post(post)
        message = self.client.get_partial_messageable(where.channel_id).get_partial_message(
            where.message_id
        )
        try:
            await message.edit(
                content=rendered.content,
                embeds=rendered.embeds,
                view=rendered.view,
                allowed_mentions=NO_MENTIONS,
            )
        except discord.NotFound as exc:
            if exc.code not in (UNKNOWN_MESSAGE, UNKNOWN_CHANNEL):
                raise
            log.warning("edit dropped: message deleted on Discord ref=%s key=%s", ref, post.key)
        except discord.HTTPException as exc:
            if exc.code in NEVER_DELIVERABLE:
                raise Undeliverable(f"discord refused for good: {exc}") from exc
            raise

    async def on_huddle(self, snapshot: HuddleSnapshot) -> None:
        """Discord has no native call to mirror; the card carries everything."""

    async def on_meeting(self, snapshot: MeetingSnapshot) -> None:
        """Keep the meeting's Discord scheduled event in step, in the background (never raises)."""
        self.events.mirror(snapshot)

    async def _send_to(
        self, client: HuddleClient, channel_id: int, rendered: Rendered, nonce: str
    ) -> MessageRef:
        channel = client.get_partial_messageable(channel_id)
        message = await channel.send(
            content=rendered.content,
            embeds=rendered.embeds,
            view=rendered.view,
            nonce=nonce,
            allowed_mentions=NO_MENTIONS,
        )
        return MessageRef(channel_id, message.id)

    async def _send_in_thread(
        self,
        client: HuddleClient,
        parent: MessageRef,
        rendered: Rendered,
        nonce: str,
        post: Post,
    ) -> MessageRef:
        try:
            return await self._send_to(client, parent.thread_id, rendered, nonce)
        except discord.NotFound as exc:
            if exc.code != UNKNOWN_CHANNEL:
                raise
        # No thread under the parent yet (the eager attempt failed): open it, then post.
        await self._open_thread(client, parent, await self._parent_name(client, parent, post))
        return await self._send_to(client, parent.thread_id, rendered, nonce)

    async def _parent_name(self, client: HuddleClient, parent: MessageRef, post: Post) -> str:
        """Name the thread after the card it hangs off, as the eager attempt would have."""
        try:
            message = await client.get_partial_messageable(parent.channel_id).fetch_message(
                parent.message_id
            )
        except discord.HTTPException as exc:
            log.info("could not read thread parent message=%s error=%r", parent, exc)
            return thread_name(post.title, post.text)
        embed = message.embeds[0] if message.embeds else None
        if embed is not None:
            return thread_name(embed.title or "", embed.description or "")
        return thread_name("", message.content)

    async def _open_thread(self, client: HuddleClient, parent: MessageRef, name: str) -> None:
        try:
            await client.http.start_thread_with_message(
                parent.channel_id,
                parent.message_id,
                name=name,
                auto_archive_duration=THREAD_ARCHIVE_MINUTES,
            )
        except discord.HTTPException as exc:
            # A retried send, or a race with the eager attempt: the thread is there, all good.
            if exc.code != THREAD_ALREADY_CREATED:
                raise

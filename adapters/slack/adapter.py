"""The Slack platform: `/meet` in, cards and Calls out, on slack-bolt's ``AsyncApp``.

Two ways in, one Bolt app:

* Socket Mode (``SLACK_APP_TOKEN``, ``xapp-``): a websocket that huddle opens to Slack. No public
  URL, no signature: the default for self-hosting.
* HTTP mode (``SLACK_SIGNING_SECRET``): Slack posts to ``/slack/events`` on huddle's own server.

Slack wants every command acknowledged within 3 seconds. The listener acks first and does the work
(``users.info``, the core, the card) in a task afterwards, so the ack never waits on the network;
Bolt's authorization is answered from memory for the same reason (no ``auth.test`` per request).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

from aiohttp import web
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.context.ack.async_ack import AsyncAck

from adapters.slack.api import SlackApi, slack_error
from adapters.slack.blocks import (
    CORE_ACTION_PREFIX,
    LINK_ACTION_PREFIX,
    reply_blocks,
    reply_text,
)
from adapters.slack.calls import CallMirror
from adapters.slack.endpoint import EventsEndpoint
from adapters.slack.escaping import readable
from adapters.slack.payloads import BlockActions, SlashCommand
from adapters.slack.posts import SlackPosts
from adapters.slack.users import UserDirectory
from bot.commands import Commands
from bot.config import Settings
from bot.types import (
    Action,
    ChannelRef,
    Command,
    HuddleSnapshot,
    MeetingSnapshot,
    Post,
    Reply,
    User,
)

log = logging.getLogger("huddle.slack")

COMMAND = "/meet"
#: How long `huddle serve` waits at start for Slack to answer before carrying on without it.
STARTUP_WAIT = 5.0
#: How long a stopping adapter lets commands in flight finish.
STOP_WAIT = 3.0
#: Commands worked on at once. The rest wait their turn without touching the event loop, so a
#: burst (or a slow store) delays cards, never acks: each ack needs only a short loop turn.
MAX_WORKING = 16
TOKEN_REFUSED = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked"})


class _ExpectedBoltWarnings(logging.Filter):
    """Drop Bolt's warnings about the token being unused: giving ``authorize`` is deliberate."""

    QUIET = ("`token` will be unused", "`token` (or SLACK_BOT_TOKEN env variable) will be ignored")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(quiet in message for quiet in self.QUIET)


_EXPECTED_BOLT_WARNINGS = _ExpectedBoltWarnings()


def cannot_post(error: str) -> str:
    """What to tell someone whose `/meet` card Slack refuses to post in their channel."""
    return (
        f"I can't post in this conversation yet (Slack says `{error}`). Add me with "
        "`/invite @huddle` and the card will appear here, or type `/meet` in a channel I'm in."
    )


class SlackAdapter:
    """The ``slack`` platform for the core (send, edit, on_huddle) and its own lifecycle."""

    name = "slack"

    def __init__(self, settings: Settings, commands: Commands) -> None:
        if not settings.slack_bot_token:
            raise ValueError("SLACK_BOT_TOKEN is required for Slack (the xoxb- Bot User token)")
        if settings.slack_app_token:
            if not settings.slack_app_token.startswith("xapp-"):
                raise ValueError(
                    "SLACK_APP_TOKEN must be an app-level token (xapp-...) with the "
                    "connections:write scope, from the app's Basic Information page"
                )
            self.mode = "socket"
        elif settings.slack_signing_secret:
            self.mode = "http"
        else:
            raise ValueError(
                "Slack needs SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode) "
                "beside SLACK_BOT_TOKEN"
            )
        self.commands = commands
        self.bot_token = settings.slack_bot_token
        self.app_token = settings.slack_app_token
        self.api = SlackApi(settings.slack_bot_token, settings.slack_api_url)
        self.users = UserDirectory(self.api.web)
        self.posts = SlackPosts(self.api)
        self.calls = CallMirror(self.api)
        self.bot_user_id: str | None = None
        self.bot_id: str | None = None
        bolt_log = logging.getLogger("huddle.slack.bolt")
        bolt_log.addFilter(_EXPECTED_BOLT_WARNINGS)  # one instance: added once per process
        self.app = AsyncApp(
            name="huddle",
            logger=bolt_log,
            client=self.api.bolt,
            signing_secret=settings.slack_signing_secret or "unused-in-socket-mode",
            authorize=self._authorizer(),
            # The listeners below only ack and start a task: Bolt can answer when they return.
            process_before_response=True,
            request_verification_enabled=self.mode == "http",
        )
        self.app.command(COMMAND)(self._on_meet)
        # Link buttons open their URL in the browser, but Slack still reports the click and
        # shows an error unless it is acknowledged.
        self.app.action(re.compile(f"^{LINK_ACTION_PREFIX}"))(self._on_link)
        self.app.action(re.compile(f"^{CORE_ACTION_PREFIX}"))(self._on_action)
        self.endpoint = EventsEndpoint(self.app) if self.mode == "http" else None
        self.socket: AsyncSocketModeHandler | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._working = asyncio.Semaphore(MAX_WORKING)

    # Lifecycle

    def add_routes(self, app: web.Application) -> None:
        """Mount ``/slack/events`` in HTTP mode; close the HTTP pool after the core's last edit."""
        if self.endpoint is not None:
            self.endpoint.add_routes(app)

        async def close_api(_: web.Application) -> None:
            await self.calls.drain(STOP_WAIT)
            await self.api.close()

        # on_cleanup runs after every on_shutdown hook, including the outbox's last deliveries.
        app.on_cleanup.append(close_api)

    async def start(self) -> None:
        """Learn who the bot is and what it may do; connect Socket Mode. Never blocks for long."""
        await self.api.open()
        introduced = self._spawn(self._introduce(), "auth.test")
        waits: set[asyncio.Task[None]] = {introduced}
        if self.mode == "socket":
            self.socket = AsyncSocketModeHandler(
                self.app,
                app_token=self.app_token,
                web_client=self.api.bolt,
                logger=logging.getLogger("huddle.slack.socket"),
            )
            # slack-bolt leaves these two untyped; both return None.
            connect = self.socket.connect_async()  # type: ignore[no-untyped-call]
            waits.add(self._spawn(connect, "socket mode connect"))
        _, pending = await asyncio.wait(waits, timeout=STARTUP_WAIT)
        if pending:
            log.warning("slack not answering yet; huddle carries on and keeps trying")
        log.info("slack adapter started mode=%s", self.mode)

    async def stop(self) -> None:
        """Stop taking commands; let the ones in flight finish briefly."""
        if self.socket is not None:
            await self.socket.close_async()  # type: ignore[no-untyped-call]
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=STOP_WAIT)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _introduce(self) -> None:
        try:
            response = await self.api.web.auth_test()
        except Exception as exc:
            error = slack_error(exc)
            if error in TOKEN_REFUSED:
                log.error(
                    "Slack refused SLACK_BOT_TOKEN (%s): use the Bot User OAuth Token (xoxb-...) "
                    "from the app's OAuth & Permissions page",
                    error,
                )
            else:
                log.warning("auth.test failed error=%r; carrying on", exc)
            return
        self.bot_user_id = response.get("user_id")
        self.bot_id = response.get("bot_id")
        self.posts.bot_id = self.bot_id
        scopes = next(
            (v for k, v in response.headers.items() if k.lower() == "x-oauth-scopes"), None
        )
        if scopes is not None:
            self.calls.scopes_seen(frozenset(s.strip() for s in scopes.split(",") if s.strip()))
        log.info(
            "slack bot team=%s user=%s calls=%s",
            response.get("team_id"),
            self.bot_user_id,
            {True: "on", False: "off", None: "unknown"}[self.calls.enabled],
        )

    # Output for the core

    async def send(self, post: Post, thread_ref: str | None) -> str:
        """Post a new message; its ``ts`` is the platform ref. Safe to retry (see posts.py)."""
        return await self.posts.send(post, thread_ref)

    async def edit(self, ref: str, post: Post) -> None:
        """Replace the message ``ref`` in place (``chat.update``)."""
        await self.posts.edit(ref, post)

    async def on_huddle(self, snapshot: HuddleSnapshot) -> None:
        """Mirror the huddle as a Slack Call (when the token has ``calls:write``), in the
        background: the core's card updates never wait on the Calls API."""
        self.calls.submit(snapshot)

    async def on_meeting(self, snapshot: MeetingSnapshot) -> None:
        """Slack has no channel calendar an app can write to: the agenda card is the mirror."""

    # Input from Slack

    def _authorizer(self) -> Callable[..., Awaitable[AuthorizeResult]]:
        # A plain function: Bolt passes arguments by parameter name and would pass ``self`` too.
        async def authorize(
            enterprise_id: str | None, team_id: str | None, user_id: str | None
        ) -> AuthorizeResult:
            # One workspace, one bot token: known without asking Slack, so acks never wait.
            return AuthorizeResult(
                enterprise_id=enterprise_id,
                team_id=team_id,
                user_id=user_id,
                bot_token=self.bot_token,
                bot_user_id=self.bot_user_id,
                bot_id=self.bot_id,
            )

        return authorize

    async def _on_meet(self, ack: AsyncAck, command: dict[str, Any]) -> None:
        await ack()
        self._spawn(self._in_turn(self.run_command(cast(SlashCommand, command))), "/meet")

    async def _on_link(self, ack: AsyncAck) -> None:
        await ack()

    async def _on_action(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        self._spawn(self._in_turn(self.run_action(cast(BlockActions, body))), "action")

    async def run_command(self, payload: SlashCommand) -> None:
        """Hand one `/meet` to the core and answer the person who typed it (ephemerally)."""
        channel_id = payload.get("channel_id", "")
        user_id = payload.get("user_id", "")
        user = await self._user(user_id, payload.get("user_name", ""))
        text = readable(payload.get("text", ""))
        result = await self.commands.handle(Command(ChannelRef(self.name, channel_id), user, text))
        replies = list(result.replies)
        trouble = self.posts.trouble(channel_id)
        if not result.posted and trouble is not None:
            replies.append(Reply(cannot_post(trouble)))
        for reply in replies:
            await self._answer(channel_id, user_id, payload.get("response_url"), reply)

    async def run_action(self, payload: BlockActions) -> None:
        """Hand a pressed action button (RSVP...) to the core; answer the presser ephemerally."""
        clicker = payload.get("user") or {}
        user_id = clicker.get("id", "")
        channel_id = (payload.get("channel") or {}).get("id") or (
            payload.get("container") or {}
        ).get("channel_id", "")
        for pressed in payload.get("actions") or []:
            value = pressed.get("value")
            if not value or not pressed.get("action_id", "").startswith(CORE_ACTION_PREFIX):
                continue
            user = await self._user(user_id, clicker.get("username") or clicker.get("name", ""))
            result = await self.commands.act(Action(ChannelRef(self.name, channel_id), user, value))
            for reply in result.replies:
                await self._answer(channel_id, user_id, payload.get("response_url"), reply)

    async def _user(self, user_id: str, handle: str) -> User:
        person = await self.users.get(user_id, handle)
        return User(user_id, person.name, person.tz)

    async def _answer(self, channel_id: str, user_id: str, url: str | None, reply: Reply) -> None:
        """Ephemeral, via the ``response_url`` Slack gave with the command or click (works even
        where the bot is not a member); ``chat.postEphemeral`` if that fails."""
        if url:
            try:
                response = await self.api.response_url(url).send(
                    text=reply_text(reply),
                    blocks=reply_blocks(reply),
                    response_type="ephemeral",
                    replace_original=False,
                )
                if response.status_code == 200:
                    return
                log.warning("response_url answered status=%d", response.status_code)
            except Exception as exc:
                log.warning("response_url failed error=%r", exc)
        try:
            await self.api.web.chat_postEphemeral(
                channel=channel_id, user=user_id, text=reply_text(reply), blocks=reply_blocks(reply)
            )
        except Exception:
            log.exception("answer lost channel=%s user=%s", channel_id, user_id)

    async def _in_turn(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            async with self._working:
                await work
        finally:
            # Cancelled while waiting its turn (at stop): close it so it is not left unawaited.
            work.close()

    def _spawn(self, work: Coroutine[Any, Any, None], what: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._logged(work, what))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @staticmethod
    async def _logged(work: Coroutine[Any, Any, None], what: str) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("slack task failed what=%s", what)

"""A fake Discord on 127.0.0.1: REST API v10 and the gateway, as Discord's docs describe them.

Only the parts huddle uses, but those faithfully, so the real discord.py HTTP, gateway, state and
CommandTree code runs against it:

- REST: ``users/@me``, ``oauth2/applications/@me``, command bulk overwrite (global and guild),
  interaction callbacks (``with_response``), the interaction webhook (``@original``, follow-ups),
  channel messages (``nonce`` + ``enforce_nonce`` dedupe), threads from messages. Bot routes need
  ``Authorization: Bot <token>``; JSON answers carry exactly ``Content-Type: application/json``.
- Rate limits and outages on demand (:meth:`FakeDiscord.fail`): 429 with ``retry_after`` and the
  ``Via`` header Discord's edge adds, 5xx that may still commit the write (as a real timeout can).
- Gateway: HELLO, heartbeat ACK, IDENTIFY -> READY + GUILD_CREATE, RESUME -> missed events replayed
  + RESUMED (or INVALID_SESSION), dispatches filtered by intents; :meth:`FakeDiscord.drop_gateway`
  cuts the TCP connection the way a network failure does. Frames are sent uncompressed (discord.py
  accepts text frames even when it asked for zlib-stream).
- Interactions: :meth:`FakeDiscord.invoke` is someone typing a slash command; the 3-second deadline
  for the first response and the 15-minute webhook token are enforced.
- Guild scheduled events (external ones): list/create/get/modify/delete with ``with_user_count``,
  the documented limits, permissions and status transitions, and their gateway events.
  :meth:`FakeDiscord.subscribe` is someone marking an event "interested";
  :meth:`FakeDiscord.begin_event` is Discord starting an external event at its start time.

Tests only; product code never imports this.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from tests.conftest import free_port

DISCORD_EPOCH_MS = 1_420_070_400_000

# Gateway opcodes and intents (https://discord.com/developers/docs/topics/opcodes-and-status-codes).
DISPATCH = 0
HEARTBEAT = 1
IDENTIFY = 2
RESUME = 6
INVALID_SESSION = 9
HELLO = 10
HEARTBEAT_ACK = 11
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_GUILD_SCHEDULED_EVENTS = 1 << 16

# Permission bits (https://discord.com/developers/docs/topics/permissions).
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
READ_MESSAGE_HISTORY = 1 << 16
MANAGE_EVENTS = 1 << 33
CREATE_PUBLIC_THREADS = 1 << 35
SEND_MESSAGES_IN_THREADS = 1 << 38
CREATE_EVENTS = 1 << 44
BOT_PERMISSIONS = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | READ_MESSAGE_HISTORY
    | MANAGE_EVENTS
    | CREATE_PUBLIC_THREADS
    | SEND_MESSAGES_IN_THREADS
)

# Message flags.
EPHEMERAL = 1 << 6
LOADING = 1 << 7
HAS_THREAD = 1 << 5

# Interaction callback types.
CHANNEL_MESSAGE_WITH_SOURCE = 4
DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE = 5

# Guild scheduled events (https://discord.com/developers/docs/resources/guild-scheduled-event).
EVENT_SCHEDULED = 1
EVENT_ACTIVE = 2
EVENT_COMPLETED = 3
EVENT_CANCELED = 4
#: SCHEDULED -> ACTIVE -> COMPLETED, SCHEDULED -> CANCELED; nothing after COMPLETED or CANCELED.
EVENT_TRANSITIONS = {(EVENT_SCHEDULED, EVENT_ACTIVE), (EVENT_ACTIVE, EVENT_COMPLETED)}
EVENT_TRANSITIONS |= {(EVENT_SCHEDULED, EVENT_CANCELED)}
ENTITY_EXTERNAL = 3
PRIVACY_GUILD_ONLY = 2
MAX_UNCOMPLETED_EVENTS = 100

INTERACTION_DEADLINE = 3.0
WEBHOOK_TOKEN_TTL = 15 * 60.0
NONCE_WINDOW = 5 * 60.0
ARCHIVE_DURATIONS = (60, 1440, 4320, 10080)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


class Snowflakes:
    """Discord ids: milliseconds since 2015 in the high bits, a counter in the low ones."""

    def __init__(self) -> None:
        self._counter = itertools.count()

    def next(self) -> int:
        """A new id, larger than every earlier one."""
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        return (ms << 22) | (next(self._counter) & 0xFFF)


class DiscordError(Exception):
    """Becomes Discord's JSON error body ``{"code", "message"}`` with an HTTP status."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _invalid_form(message: str) -> DiscordError:
    return DiscordError(400, 50035, f"Invalid Form Body: {message}")


def _flag(value: str | None) -> bool:
    """Discord's boolean query strings."""
    return value in ("1", "true", "True")


def _timestamp(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise _invalid_form(f"{field}: This field is required")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _invalid_form(f"{field}: Could not interpret {value!r} as a date") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # Exactly "application/json": discord.py parses JSON only then (aiohttp would add a charset).
    return web.Response(
        status=status,
        body=json.dumps(data).encode(),
        headers={"Content-Type": "application/json", "Via": "1.1 google", **(headers or {})},
    )


@dataclass
class Fault:
    """Answer matching requests with ``status`` ``times`` times (429 carries ``retry_after``).

    With ``commit`` the request is carried out first and the error returned anyway: what a client
    sees when Discord's edge times out after the write happened.
    """

    method: str
    path: re.Pattern[str]
    status: int
    times: int
    retry_after: float = 0.5
    commit: bool = False
    hits: int = 0


@dataclass
class Recorded:
    """A REST request as the fake received it."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int = 0
    #: ``time.monotonic()`` when it arrived.
    at: float = field(default_factory=time.monotonic)


@dataclass
class FakeUser:
    """A Discord account."""

    id: int
    username: str
    global_name: str | None = None
    bot: bool = False

    def to_json(self) -> dict[str, Any]:
        """Discord's user object."""
        data: dict[str, Any] = {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "public_flags": 0,
            "flags": 0,
        }
        if self.bot:
            data["bot"] = True
        return data


@dataclass
class FakeInteraction:
    """One use of a slash command and everything the bot answered to it."""

    id: int
    token: str
    payload: dict[str, Any]
    created: float
    callback_type: int | None = None
    original: dict[str, Any] | None = None
    original_deleted: bool = False
    followups: list[dict[str, Any]] = field(default_factory=list)
    late_callbacks: int = 0

    @property
    def acknowledged(self) -> bool:
        """The bot answered within Discord's 3 seconds."""
        return self.callback_type is not None

    @property
    def ephemeral_texts(self) -> list[str]:
        """What only the person who typed sees: the original response (if kept) and follow-ups."""
        messages = [] if self.original is None or self.original_deleted else [self.original]
        messages += self.followups
        return [m["content"] for m in messages if m["flags"] & EPHEMERAL and m["content"]]


@dataclass
class GatewaySession:
    """A gateway session: survives its connection so that a RESUME can replay what was missed."""

    id: str
    intents: int
    seq: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    ws: web.WebSocketResponse | None = None
    resumes: int = 0


class FakeDiscord:
    """Discord with one application, its bot user, one guild and a #general text channel."""

    def __init__(
        self, token: str = "fake-bot-token", clock: Callable[[], datetime] | None = None
    ) -> None:
        self.token = token
        #: Discord's idea of now, for "cannot schedule an event in the past": the same clock as
        #: the product's when a test runs both at a fixed instant.
        self.clock = clock or (lambda: datetime.now(UTC))
        self.ids = Snowflakes()
        self.application_id = self.ids.next()
        self.bot = FakeUser(self.application_id, "huddle", bot=True)
        self.guild_id = self.ids.next()
        self.general_id = self.ids.next()
        self.channels: dict[int, dict[str, Any]] = {}
        #: Bot permissions per channel (Discord computes them from roles and overwrites).
        self.permissions: dict[int, int] = {}
        self.add_channel(self.general_id, "general")
        self.users: dict[str, FakeUser] = {}
        #: Users who turned off direct messages from server members.
        self.closed_dms: set[int] = set()
        #: The bot's guild-level permissions (scheduled events are checked against these).
        self.guild_permissions = BOT_PERMISSIONS
        #: Guild scheduled events by id (deleted ones are removed).
        self.scheduled_events: dict[int, dict[str, Any]] = {}
        #: Who marked each scheduled event "interested", in order.
        self.event_subscribers: dict[int, list[int]] = {}
        self.messages: dict[int, dict[str, Any]] = {}
        #: Every version of each message, oldest first (PATCHes append).
        self.revisions: dict[int, list[dict[str, Any]]] = {}
        self._nonces: dict[tuple[int, str], tuple[float, int]] = {}
        self.global_commands: list[dict[str, Any]] = []
        self.guild_commands: dict[int, list[dict[str, Any]]] = {}
        #: The bodies of every command bulk overwrite, in order: ("global" | guild id, body).
        self.command_syncs: list[tuple[str, list[dict[str, Any]]]] = []
        self.interactions: dict[int, FakeInteraction] = {}
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.sessions: dict[str, GatewaySession] = {}
        #: Every gateway payload the bot sent, with the path it connected on.
        self.received: list[tuple[str, dict[str, Any]]] = []
        self._changed = asyncio.Condition()
        self._connections: dict[web.WebSocketResponse, asyncio.Transport] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0

    # Addresses

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """What ``DISCORD_API_URL`` should be (discord.py's ``Route.BASE``)."""
        return f"{self.url}/api/v10"

    @property
    def gateway_url(self) -> str:
        """What ``DISCORD_GATEWAY_URL`` should be."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    @property
    def resume_gateway_url(self) -> str:
        """The regional resume address READY names (Discord's differs from the main gateway)."""
        return f"ws://127.0.0.1:{self.port}/gateway-resume"

    # Life

    async def start(self) -> None:
        """Listen on a free port."""
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/gateway-resume", self._gateway)
        api = "/api/v10"
        routes: list[tuple[str, str, Callable[[web.Request], Awaitable[Any]]]] = [
            ("GET", "/gateway", self._get_gateway),
            ("GET", "/gateway/bot", self._get_gateway_bot),
            ("GET", "/users/@me", self._me),
            ("GET", "/oauth2/applications/@me", self._application),
            ("GET", "/applications/@me", self._application),
            ("GET", "/applications/{app}/commands", self._get_commands),
            ("PUT", "/applications/{app}/commands", self._put_commands),
            ("GET", "/applications/{app}/guilds/{guild}/commands", self._get_commands),
            ("PUT", "/applications/{app}/guilds/{guild}/commands", self._put_commands),
            ("POST", "/interactions/{id}/{token}/callback", self._callback),
            ("POST", "/webhooks/{app}/{token}", self._followup),
            ("GET", "/webhooks/{app}/{token}/messages/{message}", self._get_webhook_message),
            ("PATCH", "/webhooks/{app}/{token}/messages/{message}", self._edit_webhook_message),
            ("DELETE", "/webhooks/{app}/{token}/messages/{message}", self._delete_webhook_message),
            ("POST", "/users/@me/channels", self._open_dm),
            ("GET", "/channels/{channel}", self._get_channel),
            ("POST", "/channels/{channel}/messages", self._create_message),
            ("GET", "/channels/{channel}/messages/{message}", self._get_message),
            ("PATCH", "/channels/{channel}/messages/{message}", self._edit_message),
            ("POST", "/channels/{channel}/messages/{message}/threads", self._start_thread),
            ("GET", "/guilds/{guild}/scheduled-events", self._list_events),
            ("POST", "/guilds/{guild}/scheduled-events", self._create_event),
            ("GET", "/guilds/{guild}/scheduled-events/{event}", self._get_event),
            ("PATCH", "/guilds/{guild}/scheduled-events/{event}", self._edit_event),
            ("DELETE", "/guilds/{guild}/scheduled-events/{event}", self._delete_event),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, api + path, self._wrap(handler))
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def close(self) -> None:
        """Close every gateway connection and stop listening."""
        for session in self.sessions.values():
            if session.ws is not None:
                await session.ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()

    # Test controls

    def add_channel(
        self, channel_id: int, name: str, permissions: int = BOT_PERMISSIONS
    ) -> dict[str, Any]:
        """A text channel in the guild where the bot has ``permissions``."""
        channel = {
            "id": str(channel_id),
            "type": 0,
            "guild_id": str(self.guild_id),
            "name": name,
            "position": len(self.channels),
            "permission_overwrites": [],
            "nsfw": False,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "parent_id": None,
            "flags": 0,
        }
        self.channels[channel_id] = channel
        self.permissions[channel_id] = permissions
        return channel

    def user(self, name: str) -> FakeUser:
        """A guild member called ``name`` (the same object each time)."""
        if name not in self.users:
            self.users[name] = FakeUser(self.ids.next(), name.lower(), global_name=name)
        return self.users[name]

    def dm_with(self, user: FakeUser) -> dict[str, Any] | None:
        """The bot's direct-message channel with ``user``, once opened."""
        for channel in self.channels.values():
            if channel["type"] == 1 and channel["recipients"][0]["id"] == str(user.id):
                return channel
        return None

    def fail(
        self,
        method: str,
        path: str,
        status: int,
        times: int = 1,
        *,
        retry_after: float = 0.5,
        commit: bool = False,
    ) -> Fault:
        """Make the next ``times`` ``method`` requests whose API path matches ``path`` fail."""
        fault = Fault(method, re.compile(path), status, times, retry_after, commit)
        self.faults.append(fault)
        return fault

    def delete_message(self, message_id: int) -> None:
        """A moderator deletes a message (its thread stays, as on Discord)."""
        del self.messages[message_id]

    def live_events(self) -> list[dict[str, Any]]:
        """The scheduled events people see as upcoming or happening (SCHEDULED or ACTIVE)."""
        return [
            e
            for e in self.scheduled_events.values()
            if e["status"] in (EVENT_SCHEDULED, EVENT_ACTIVE)
        ]

    async def subscribe(self, event_id: int, user: str) -> None:
        """``user`` marks the event "interested": GUILD_SCHEDULED_EVENT_USER_ADD goes out."""
        event = self.scheduled_events[event_id]
        assert event["status"] in (EVENT_SCHEDULED, EVENT_ACTIVE), "Discord hides finished events"
        member = self.user(user)
        subscribers = self.event_subscribers.setdefault(event_id, [])
        if member.id in subscribers:
            return
        subscribers.append(member.id)
        await self._event_user("GUILD_SCHEDULED_EVENT_USER_ADD", event_id, member)

    async def unsubscribe(self, event_id: int, user: str) -> None:
        """``user`` takes back their interest: GUILD_SCHEDULED_EVENT_USER_REMOVE goes out."""
        member = self.user(user)
        subscribers = self.event_subscribers.get(event_id, [])
        if member.id not in subscribers:
            return
        subscribers.remove(member.id)
        await self._event_user("GUILD_SCHEDULED_EVENT_USER_REMOVE", event_id, member)

    async def begin_event(self, event_id: int) -> None:
        """What Discord does to an external event at its start time: it becomes ACTIVE."""
        event = self.scheduled_events[event_id]
        assert event["status"] == EVENT_SCHEDULED
        event["status"] = EVENT_ACTIVE
        await self._dispatch_all(
            "GUILD_SCHEDULED_EVENT_UPDATE", event, INTENT_GUILD_SCHEDULED_EVENTS
        )

    async def _event_user(self, name: str, event_id: int, member: FakeUser) -> None:
        data = {
            "guild_scheduled_event_id": str(event_id),
            "user_id": str(member.id),
            "guild_id": str(self.guild_id),
        }
        await self._dispatch_all(name, data, INTENT_GUILD_SCHEDULED_EVENTS)
        async with self._changed:
            self._changed.notify_all()

    async def drop_gateway(self) -> None:
        """Cut every gateway connection without a close frame, as a network failure does."""
        for session in self.sessions.values():
            session.ws = None
        for transport in list(self._connections.values()):
            transport.abort()
        self._connections.clear()

    async def invoke(
        self,
        name: str,
        options: dict[str, str] | None = None,
        *,
        user: str = "Alice",
        channel_id: int | None = None,
    ) -> FakeInteraction:
        """Someone types ``/name option:value`` in a channel; the bot gets INTERACTION_CREATE."""
        channel_id = channel_id or self.general_id
        command = self._registered(name)
        sent_options = []
        for option in command.get("options", []):
            value = (options or {}).get(option["name"])
            if value is None:
                # Discord's client does not let anyone send a command missing a required option.
                assert not option.get("required"), f"/{name} needs {option['name']}"
                continue
            assert option["type"] == 3, "the fake knows string options only"
            assert option.get("min_length", 0) <= len(value) <= option.get("max_length", 6000)
            sent_options.append({"name": option["name"], "type": 3, "value": value})
        unknown = set(options or {}) - {o["name"] for o in command.get("options", [])}
        assert not unknown, f"/{name} has no option {unknown}"
        data = {
            "id": command["id"],
            "name": name,
            "type": 1,
            "options": sent_options,
            "guild_id": str(self.guild_id),
        }
        return await self._interact(2, data, user, channel_id)

    async def click(
        self, message: dict[str, Any], label: str, *, user: str = "Alice"
    ) -> FakeInteraction:
        """Someone clicks the (non-link) button labelled ``label`` under ``message``."""
        buttons = [b for row in message["components"] for b in row["components"]]
        [button] = [b for b in buttons if b.get("label") == label]
        assert "custom_id" in button, "a link button opens its URL; Discord sends nothing"
        data = {"custom_id": button["custom_id"], "component_type": 2}
        return await self._interact(3, data, user, int(message["channel_id"]), message=message)

    async def _interact(
        self,
        kind: int,
        data: dict[str, Any],
        user: str,
        channel_id: int,
        message: dict[str, Any] | None = None,
    ) -> FakeInteraction:
        member = self.user(user)
        interaction_id = self.ids.next()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(48)
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": kind,
            "data": data,
            "guild_id": str(self.guild_id),
            "guild": {"id": str(self.guild_id), "locale": "en-US", "features": []},
            "channel_id": str(channel_id),
            "channel": self.channels[channel_id],
            "member": {
                "user": member.to_json(),
                "roles": [],
                "nick": None,
                "avatar": None,
                "joined_at": _now_iso(),
                "deaf": False,
                "mute": False,
                "flags": 0,
                "pending": False,
                "permissions": str(VIEW_CHANNEL | SEND_MESSAGES),
            },
            "token": token,
            "version": 1,
            "app_permissions": str(self.permissions.get(channel_id, BOT_PERMISSIONS)),
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(self.guild_id)},
            "context": 0,
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if message is not None:
            payload["message"] = message
        interaction = FakeInteraction(interaction_id, token, payload, time.monotonic())
        self.interactions[interaction_id] = interaction
        assert self.sessions, "no bot is connected to the gateway"
        for session in list(self.sessions.values()):
            await self._dispatch(session, "INTERACTION_CREATE", payload)
        return interaction

    async def wait_for(self, condition: Callable[[], bool], within: float = 10.0) -> None:
        """Wait until ``condition()`` holds (checked after every request and gateway message)."""
        async with asyncio.timeout(within):
            async with self._changed:
                await self._changed.wait_for(condition)

    async def answered(self, interaction: FakeInteraction, within: float = 10.0) -> None:
        """Wait until the bot is done with ``interaction``: deleted or edited its first response."""

        def done() -> bool:
            original = interaction.original
            if interaction.original_deleted:
                return True
            return original is not None and not original["flags"] & LOADING

        await self.wait_for(done, within)

    def channel_messages(self, channel_id: int) -> list[dict[str, Any]]:
        """The messages everyone sees in a channel or thread, oldest first."""
        return [
            m
            for m in self.messages.values()
            if m["channel_id"] == str(channel_id) and not m["flags"] & EPHEMERAL
        ]

    def ops(self, op: int) -> list[dict[str, Any]]:
        """The gateway payloads with opcode ``op`` the bot sent."""
        return [payload for _, payload in self.received if payload.get("op") == op]

    # Plumbing

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        finally:
            async with self._changed:
                self._changed.notify_all()

    def _wrap(
        self, handler: Callable[[web.Request], Awaitable[Any]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def run(request: web.Request) -> web.StreamResponse:
            raw = await request.read()
            body = json.loads(raw) if raw else None
            path = request.path.removeprefix("/api/v10")
            record = Recorded(request.method, path, dict(request.query), body)
            self.requests.append(record)
            response = await self._answer(request, handler, record, path)
            record.status = response.status
            return response

        return run

    async def _answer(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[Any]],
        record: Recorded,
        path: str,
    ) -> web.Response:
        fault = next(
            (
                f
                for f in self.faults
                if f.hits < f.times and f.method == request.method and f.path.search(path)
            ),
            None,
        )
        if fault is not None:
            fault.hits += 1
            if fault.commit:
                try:
                    await handler(request)
                except DiscordError:
                    pass
            return self._fault_response(fault)
        needs_bot_token = not path.startswith(("/interactions/", "/webhooks/"))
        if needs_bot_token and request.headers.get("Authorization") != f"Bot {self.token}":
            return _json({"message": "401: Unauthorized", "code": 0}, status=401)
        try:
            result = await handler(request)
        except DiscordError as exc:
            return _json({"message": exc.message, "code": exc.code}, status=exc.status)
        if result is None:
            return web.Response(status=204, headers={"Via": "1.1 google"})
        return _json(
            result,
            headers={
                "X-RateLimit-Limit": "50",
                "X-RateLimit-Remaining": "49",
                "X-RateLimit-Reset": f"{time.time() + 1:.3f}",
                "X-RateLimit-Reset-After": "1.000",
                "X-RateLimit-Bucket": f"fake-{request.method}-{len(path)}",
            },
        )

    def _fault_response(self, fault: Fault) -> web.Response:
        if fault.status == 429:
            return _json(
                {
                    "message": "You are being rate limited.",
                    "retry_after": fault.retry_after,
                    "global": False,
                },
                status=429,
                headers={
                    "Retry-After": str(max(1, round(fault.retry_after))),
                    "X-RateLimit-Limit": "5",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset-After": f"{fault.retry_after:.3f}",
                    "X-RateLimit-Bucket": "fake-limited",
                    "X-RateLimit-Scope": "user",
                },
            )
        if fault.status >= 500:
            # Cloudflare's edge answers outages in plain text, not JSON.
            return web.Response(
                status=fault.status,
                text=f"{fault.status} upstream unavailable",
                headers={"Via": "1.1 google"},
            )
        return _json({"message": "Fault", "code": 0}, status=fault.status)

    # REST: identity and commands

    async def _get_gateway(self, request: web.Request) -> dict[str, Any]:
        return {"url": self.gateway_url}

    async def _get_gateway_bot(self, request: web.Request) -> dict[str, Any]:
        return {
            "url": self.gateway_url,
            "shards": 1,
            "session_start_limit": {
                "total": 1000,
                "remaining": 999,
                "reset_after": 86_400_000,
                "max_concurrency": 1,
            },
        }

    async def _me(self, request: web.Request) -> dict[str, Any]:
        return {**self.bot.to_json(), "verified": True, "mfa_enabled": False, "locale": "en-US"}

    async def _application(self, request: web.Request) -> dict[str, Any]:
        return {
            "id": str(self.application_id),
            "name": "huddle",
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "flags": 0,
            "owner": FakeUser(self.ids.next(), "owner").to_json(),
            "team": None,
            "bot": self.bot.to_json(),
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "approximate_guild_count": 1,
        }

    def _check_app(self, request: web.Request) -> None:
        if request.match_info["app"] != str(self.application_id):
            raise DiscordError(404, 10002, "Unknown Application")

    async def _get_commands(self, request: web.Request) -> list[dict[str, Any]]:
        self._check_app(request)
        guild = request.match_info.get("guild")
        if guild is None:
            return self.global_commands
        return self.guild_commands.get(int(guild), [])

    async def _put_commands(self, request: web.Request) -> list[dict[str, Any]]:
        self._check_app(request)
        body = await request.json()
        if not isinstance(body, list) or len(body) > 100:
            raise _invalid_form("a list of at most 100 commands is expected")
        guild = request.match_info.get("guild")
        if guild is not None and int(guild) != self.guild_id:
            raise DiscordError(403, 50001, "Missing Access")
        stored = [self._command(c, guild) for c in body]
        if guild is None:
            self.global_commands = stored
        else:
            self.guild_commands[int(guild)] = stored
        self.command_syncs.append((guild or "global", body))
        return stored

    def _command(self, data: dict[str, Any], guild: str | None) -> dict[str, Any]:
        name = data.get("name", "")
        if not re.fullmatch(r"[-_a-z0-9]{1,32}", name):
            raise _invalid_form(f"name {name!r} must be 1-32 lowercase characters")
        if not 1 <= len(data.get("description", "")) <= 100:
            raise _invalid_form("description must be 1-100 characters")
        options = data.get("options") or []
        if len(options) > 25:
            raise _invalid_form("at most 25 options")
        for option in options:
            if not re.fullmatch(r"[-_a-z0-9]{1,32}", option.get("name", "")):
                raise _invalid_form("option names must be 1-32 lowercase characters")
            if not 1 <= len(option.get("description", "")) <= 100:
                raise _invalid_form("option descriptions must be 1-100 characters")
        stored = {
            **data,
            "id": str(self.ids.next()),
            "application_id": str(self.application_id),
            "version": str(self.ids.next()),
            "type": data.get("type", 1),
        }
        if guild is not None:
            stored["guild_id"] = guild
        return stored

    def _registered(self, name: str) -> dict[str, Any]:
        for command in self.guild_commands.get(self.guild_id, []) + self.global_commands:
            if command["name"] == name:
                return command
        raise AssertionError(f"/{name} is not registered with Discord")

    # REST: interactions

    def _interaction(self, interaction_id: str, token: str) -> FakeInteraction:
        interaction = (
            self.interactions.get(int(interaction_id)) if interaction_id.isdigit() else None
        )
        if interaction is None or interaction.token != token:
            raise DiscordError(404, 10062, "Unknown interaction")
        return interaction

    async def _callback(self, request: web.Request) -> dict[str, Any] | None:
        interaction = self._interaction(request.match_info["id"], request.match_info["token"])
        if time.monotonic() - interaction.created > INTERACTION_DEADLINE:
            interaction.late_callbacks += 1
            raise DiscordError(404, 10062, "Unknown interaction")
        if interaction.acknowledged:
            raise DiscordError(400, 40060, "Interaction has already been acknowledged.")
        body = await request.json()
        kind = body.get("type")
        data = body.get("data") or {}
        if kind == DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE:
            message = self._message_json(
                int(interaction.payload["channel_id"]),
                {"content": "", "flags": (data.get("flags", 0) & EPHEMERAL) | LOADING},
                interaction=interaction,
            )
        elif kind == CHANNEL_MESSAGE_WITH_SOURCE:
            self._validate_message(data)
            message = self._message_json(
                int(interaction.payload["channel_id"]), data, interaction=interaction
            )
        else:
            raise _invalid_form(f"the fake does not answer callback type {kind}")
        interaction.callback_type = kind
        interaction.original = message
        if not message["flags"] & EPHEMERAL:
            self._store(message)
        if request.query.get("with_response") not in ("1", "true", "True"):
            return None
        return {
            "interaction": {
                "id": str(interaction.id),
                "type": 2,
                "response_message_id": message["id"],
                "response_message_loading": bool(message["flags"] & LOADING),
                "response_message_ephemeral": bool(message["flags"] & EPHEMERAL),
            },
            "resource": {"type": kind, "message": message},
        }

    def _webhook(self, request: web.Request) -> FakeInteraction:
        self._check_app(request)
        token = request.match_info["token"]
        for interaction in self.interactions.values():
            if interaction.token == token:
                if time.monotonic() - interaction.created > WEBHOOK_TOKEN_TTL:
                    break
                if not interaction.acknowledged:
                    raise DiscordError(404, 10015, "Unknown Webhook")
                return interaction
        raise DiscordError(401, 50027, "Invalid Webhook Token")

    def _webhook_message(self, request: web.Request) -> tuple[FakeInteraction, dict[str, Any]]:
        interaction = self._webhook(request)
        message_id = request.match_info["message"]
        if message_id == "@original":
            if interaction.original is None or interaction.original_deleted:
                raise DiscordError(404, 10008, "Unknown Message")
            return interaction, interaction.original
        for followup in interaction.followups:
            if followup["id"] == message_id:
                return interaction, followup
        raise DiscordError(404, 10008, "Unknown Message")

    async def _get_webhook_message(self, request: web.Request) -> dict[str, Any]:
        return self._webhook_message(request)[1]

    async def _edit_webhook_message(self, request: web.Request) -> dict[str, Any]:
        _, message = self._webhook_message(request)
        body = await request.json()
        self._validate_message({**message, **body}, partial=True)
        self._apply_edit(message, body)
        message["flags"] &= ~LOADING
        return message

    async def _delete_webhook_message(self, request: web.Request) -> None:
        interaction, message = self._webhook_message(request)
        if message is interaction.original:
            interaction.original_deleted = True
        self.messages.pop(int(message["id"]), None)

    async def _followup(self, request: web.Request) -> dict[str, Any] | None:
        interaction = self._webhook(request)
        body = await request.json()
        self._validate_message(body)
        message = self._message_json(
            int(interaction.payload["channel_id"]), body, interaction=interaction
        )
        interaction.followups.append(message)
        if not message["flags"] & EPHEMERAL:
            self._store(message)
        return message if request.query.get("wait") in ("1", "true", "True") else None

    # REST: channels, messages, threads

    def _channel(self, request: web.Request) -> tuple[int, dict[str, Any]]:
        channel_id = int(request.match_info["channel"])
        channel = self.channels.get(channel_id)
        if channel is None:
            raise DiscordError(404, 10003, "Unknown Channel")
        return channel_id, channel

    def _require(self, channel: dict[str, Any], permission: int) -> None:
        if channel["type"] == 1:
            return  # a DM: no permissions, but the recipient may refuse (see _create_message)
        home = int(channel.get("parent_id") or 0) if channel["type"] == 11 else int(channel["id"])
        if not self.permissions.get(home, 0) & permission:
            raise DiscordError(403, 50013, "Missing Permissions")

    async def _open_dm(self, request: web.Request) -> dict[str, Any]:
        body = await request.json()
        recipient = next(
            (u for u in self.users.values() if str(u.id) == str(body.get("recipient_id"))), None
        )
        if recipient is None:
            raise DiscordError(400, 50033, "Invalid Recipient(s)")
        existing = self.dm_with(recipient)
        if existing is not None:
            return existing
        channel: dict[str, Any] = {
            "id": str(self.ids.next()),
            "type": 1,
            "last_message_id": None,
            "flags": 0,
            "recipients": [recipient.to_json()],
        }
        self.channels[int(channel["id"])] = channel
        return channel

    async def _get_channel(self, request: web.Request) -> dict[str, Any]:
        return self._channel(request)[1]

    async def _create_message(self, request: web.Request) -> dict[str, Any]:
        channel_id, channel = self._channel(request)
        in_thread = channel["type"] == 11
        self._require(channel, VIEW_CHANNEL)
        self._require(channel, SEND_MESSAGES_IN_THREADS if in_thread else SEND_MESSAGES)
        if channel["type"] == 1 and int(channel["recipients"][0]["id"]) in self.closed_dms:
            raise DiscordError(403, 50007, "Cannot send messages to this user")
        body = await request.json()
        self._validate_message(body)
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce"):
            seen = self._nonces.get((self.bot.id, str(nonce)))
            if seen is not None and time.monotonic() - seen[0] < NONCE_WINDOW:
                # "that message will be returned and no new message will be created"
                return self.messages[seen[1]]
        message = self._message_json(channel_id, body)
        if nonce is not None:
            self._nonces[(self.bot.id, str(nonce))] = (time.monotonic(), int(message["id"]))
        self._store(message)
        if in_thread:
            channel["message_count"] += 1
            channel["total_message_sent"] += 1
        channel["last_message_id"] = message["id"]
        await self._dispatch_all("MESSAGE_CREATE", message, INTENT_GUILD_MESSAGES)
        return message

    def _message(self, request: web.Request) -> dict[str, Any]:
        channel_id, _ = self._channel(request)
        message_id = int(request.match_info["message"])
        message = self.messages.get(message_id)
        if message is None or message["channel_id"] != str(channel_id):
            raise DiscordError(404, 10008, "Unknown Message")
        return message

    async def _get_message(self, request: web.Request) -> dict[str, Any]:
        return self._message(request)

    async def _edit_message(self, request: web.Request) -> dict[str, Any]:
        message = self._message(request)
        if message["author"]["id"] != str(self.bot.id):
            raise DiscordError(403, 50005, "Cannot edit a message authored by another user")
        body = await request.json()
        self._validate_message({**message, **body}, partial=True)
        self._apply_edit(message, body)
        await self._dispatch_all("MESSAGE_UPDATE", message, INTENT_GUILD_MESSAGES)
        return message

    async def _start_thread(self, request: web.Request) -> dict[str, Any]:
        channel_id, channel = self._channel(request)
        message = self._message(request)
        if channel["type"] not in (0, 5):
            raise DiscordError(400, 50024, "Cannot execute action on this channel type")
        self._require(channel, CREATE_PUBLIC_THREADS)
        if "thread" in message:
            raise DiscordError(400, 160004, "A thread has already been created for this message")
        body = await request.json()
        name = body.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            raise _invalid_form("name must be 1-100 characters")
        duration = body.get("auto_archive_duration", 4320)
        if duration not in ARCHIVE_DURATIONS:
            raise _invalid_form(f"auto_archive_duration must be one of {ARCHIVE_DURATIONS}")
        now = _now_iso()
        thread = {
            # A thread started from a message has the message's id.
            "id": message["id"],
            "type": 11,
            "guild_id": str(self.guild_id),
            "parent_id": str(channel_id),
            "owner_id": str(self.bot.id),
            "name": name,
            "last_message_id": None,
            "rate_limit_per_user": body.get("rate_limit_per_user") or 0,
            "message_count": 0,
            "member_count": 1,
            "total_message_sent": 0,
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": duration,
                "archive_timestamp": now,
                "locked": False,
                "create_timestamp": now,
            },
        }
        self.channels[int(thread["id"])] = thread
        message["thread"] = thread
        message["flags"] |= HAS_THREAD
        await self._dispatch_all("THREAD_CREATE", {**thread, "newly_created": True}, INTENT_GUILDS)
        return thread

    # REST: guild scheduled events

    def _guild(self, request: web.Request) -> None:
        if request.match_info["guild"] != str(self.guild_id):
            raise DiscordError(404, 10004, "Unknown Guild")

    def _event(self, request: web.Request) -> dict[str, Any]:
        self._guild(request)
        event_id = request.match_info["event"]
        event = self.scheduled_events.get(int(event_id)) if event_id.isdigit() else None
        if event is None:
            raise DiscordError(404, 10070, "Unknown Guild Scheduled Event")
        return event

    def _event_json(self, event: dict[str, Any], with_user_count: bool) -> dict[str, Any]:
        if not with_user_count:
            return event
        return {**event, "user_count": len(self.event_subscribers.get(int(event["id"]), []))}

    def _require_event_permission(self, event: dict[str, Any] | None) -> None:
        # Your own external events: Create Events or Manage Events; anyone else's: Manage Events.
        own = event is None or event.get("creator_id") == str(self.bot.id)
        needed = (CREATE_EVENTS | MANAGE_EVENTS) if own else MANAGE_EVENTS
        if not self.guild_permissions & needed:
            raise DiscordError(403, 50013, "Missing Permissions")

    def _check_event(self, event: dict[str, Any], moved: bool) -> None:
        """Discord's rules for a (created or modified) event, on its resulting fields."""
        name = event.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            raise _invalid_form("name: Must be between 1 and 100 in length.")
        description = event.get("description")
        if description is not None and not (
            isinstance(description, str) and 1 <= len(description) <= 1000
        ):
            raise _invalid_form("description: Must be between 1 and 1000 in length.")
        if event.get("privacy_level") != PRIVACY_GUILD_ONLY:
            raise _invalid_form("privacy_level: Value must be one of {2}.")
        if event.get("entity_type") != ENTITY_EXTERNAL:
            raise _invalid_form("entity_type: the fake knows external events only")
        if event.get("channel_id") is not None:
            raise _invalid_form("channel_id: Must be null for external events.")
        location = (event.get("entity_metadata") or {}).get("location")
        if not isinstance(location, str) or not 1 <= len(location) <= 100:
            raise _invalid_form("entity_metadata.location: Must be between 1 and 100 in length.")
        start = _timestamp(event.get("scheduled_start_time"), "scheduled_start_time")
        end = _timestamp(event.get("scheduled_end_time"), "scheduled_end_time")
        if end <= start:
            raise _invalid_form("scheduled_end_time: Must be after the start time.")
        if moved and start <= self.clock():
            raise _invalid_form("scheduled_start_time: Cannot schedule event in the past.")
        event["scheduled_start_time"] = start.isoformat()
        event["scheduled_end_time"] = end.isoformat()

    async def _list_events(self, request: web.Request) -> list[dict[str, Any]]:
        self._guild(request)
        counted = _flag(request.query.get("with_user_count"))
        return [self._event_json(e, counted) for e in self.scheduled_events.values()]

    async def _get_event(self, request: web.Request) -> dict[str, Any]:
        return self._event_json(self._event(request), _flag(request.query.get("with_user_count")))

    async def _create_event(self, request: web.Request) -> dict[str, Any]:
        self._guild(request)
        self._require_event_permission(None)
        body = await request.json()
        uncompleted = len(self.live_events())
        if uncompleted >= MAX_UNCOMPLETED_EVENTS:
            raise DiscordError(
                400, 30038, "Maximum number of uncompleted guild scheduled events reached (100)"
            )
        event: dict[str, Any] = {
            "id": str(self.ids.next()),
            "guild_id": str(self.guild_id),
            "channel_id": body.get("channel_id"),
            "creator_id": str(self.bot.id),
            "creator": self.bot.to_json(),
            "name": body.get("name"),
            "description": body.get("description"),
            "scheduled_start_time": body.get("scheduled_start_time"),
            "scheduled_end_time": body.get("scheduled_end_time"),
            "privacy_level": body.get("privacy_level"),
            "status": EVENT_SCHEDULED,
            "entity_type": body.get("entity_type"),
            "entity_id": None,
            "entity_metadata": body.get("entity_metadata"),
            "image": None,
            "recurrence_rule": body.get("recurrence_rule"),
        }
        self._check_event(event, moved=True)
        self.scheduled_events[int(event["id"])] = event
        await self._dispatch_all(
            "GUILD_SCHEDULED_EVENT_CREATE", event, INTENT_GUILD_SCHEDULED_EVENTS
        )
        return event

    async def _edit_event(self, request: web.Request) -> dict[str, Any]:
        event = self._event(request)
        self._require_event_permission(event)
        body = await request.json()
        if event["status"] in (EVENT_COMPLETED, EVENT_CANCELED):
            raise DiscordError(400, 180000, "Cannot update a finished event")
        status = body.get("status", event["status"])
        if status != event["status"] and (event["status"], status) not in EVENT_TRANSITIONS:
            raise _invalid_form(f"status: Cannot go from {event['status']} to {status}.")
        updated = {**event, **{k: v for k, v in body.items() if k in event and k != "id"}}
        moved = "scheduled_start_time" in body and _timestamp(
            body["scheduled_start_time"], "scheduled_start_time"
        ) != _timestamp(event["scheduled_start_time"], "scheduled_start_time")
        self._check_event(updated, moved=moved and status == EVENT_SCHEDULED)
        event.update(updated)
        await self._dispatch_all(
            "GUILD_SCHEDULED_EVENT_UPDATE", event, INTENT_GUILD_SCHEDULED_EVENTS
        )
        return event

    async def _delete_event(self, request: web.Request) -> None:
        event = self._event(request)
        self._require_event_permission(event)
        del self.scheduled_events[int(event["id"])]
        self.event_subscribers.pop(int(event["id"]), None)
        await self._dispatch_all(
            "GUILD_SCHEDULED_EVENT_DELETE", event, INTENT_GUILD_SCHEDULED_EVENTS
        )

    def _validate_message(self, body: dict[str, Any], partial: bool = False) -> None:
        content = body.get("content") or ""
        embeds = body.get("embeds") or []
        components = body.get("components") or []
        if len(content) > 2000:
            raise _invalid_form("content: Must be 2000 or fewer in length.")
        if len(embeds) > 10:
            raise _invalid_form("embeds: Must be 10 or fewer in length.")
        for embed in embeds:
            if len(embed.get("title") or "") > 256 or len(embed.get("description") or "") > 4096:
                raise _invalid_form("embeds: title or description too long")
        if len(components) > 5:
            raise _invalid_form("components: Must be 5 or fewer in length.")
        for row in components:
            if row.get("type") != 1 or not 1 <= len(row.get("components", [])) <= 5:
                raise _invalid_form("components: an action row holds 1-5 components")
            for button in row["components"]:
                if button.get("type") != 2:
                    raise _invalid_form("components: the fake knows buttons only")
                if button.get("style") == 5:
                    url = button.get("url") or ""
                    if "custom_id" in button or not url or len(url) > 512:
                        raise _invalid_form("components: a link button needs a url, no custom_id")
                elif not 1 <= len(button.get("custom_id") or "") <= 100 or "url" in button:
                    raise _invalid_form("components: a button needs a 1-100 character custom_id")
                if len(button.get("label") or "") > 80:
                    raise _invalid_form("components: label must be 80 or fewer in length")
        nonce = body.get("nonce")
        if isinstance(nonce, str) and len(nonce) > 25:
            raise _invalid_form("nonce: Must be 25 or fewer in length.")
        if not partial and not content and not embeds and not components:
            raise DiscordError(400, 50006, "Cannot send an empty message")

    def _message_json(
        self,
        channel_id: int,
        body: dict[str, Any],
        interaction: FakeInteraction | None = None,
    ) -> dict[str, Any]:
        message: dict[str, Any] = {
            "id": str(self.ids.next()),
            "channel_id": str(channel_id),
            "author": self.bot.to_json() | {"bot": True},
            "content": body.get("content") or "",
            "timestamp": _now_iso(),
            "edited_timestamp": None,
            "tts": bool(body.get("tts")),
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [{"type": "rich", **e} for e in body.get("embeds") or []],
            "pinned": False,
            "type": 0,
            "flags": int(body.get("flags") or 0),
            "components": body.get("components") or [],
        }
        if body.get("nonce") is not None:
            message["nonce"] = body["nonce"]
        if interaction is not None:
            message["type"] = 20  # CHAT_INPUT_COMMAND
            message["webhook_id"] = str(self.application_id)
            message["application_id"] = str(self.application_id)
            user = interaction.payload["member"]["user"]
            message["interaction_metadata"] = {
                "id": str(interaction.id),
                "type": 2,
                "user": user,
                "authorizing_integration_owners": {"0": str(self.guild_id)},
            }
        return message

    def _apply_edit(self, message: dict[str, Any], body: dict[str, Any]) -> None:
        for key in ("content", "components", "flags"):
            if key in body:
                message[key] = (
                    body[key] if body[key] is not None else ([] if key != "content" else "")
                )
        if "embeds" in body:
            message["embeds"] = [{"type": "rich", **e} for e in body["embeds"] or []]
        message["edited_timestamp"] = _now_iso()
        self.revisions.setdefault(int(message["id"]), []).append(json.loads(json.dumps(message)))

    def _store(self, message: dict[str, Any]) -> None:
        self.messages[int(message["id"])] = message
        self.revisions[int(message["id"])] = [json.loads(json.dumps(message))]

    # Gateway

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        if request.query.get("v") != "10" or request.query.get("encoding") != "json":
            raise web.HTTPBadRequest(text="v=10&encoding=json expected")
        ws = web.WebSocketResponse(heartbeat=None, autoping=True)
        await ws.prepare(request)
        if isinstance(request.transport, asyncio.Transport):
            self._connections[ws] = request.transport
        await ws.send_json({"op": HELLO, "d": {"heartbeat_interval": 41250}, "s": None, "t": None})
        session: GatewaySession | None = None
        async for frame in ws:
            if frame.type is not WSMsgType.TEXT:
                break
            payload = json.loads(frame.data)
            self.received.append((request.path, payload))
            op = payload.get("op")
            if op == HEARTBEAT:
                await ws.send_json({"op": HEARTBEAT_ACK, "d": None, "s": None, "t": None})
            elif op == IDENTIFY:
                session = await self._identify(ws, payload["d"])
            elif op == RESUME:
                session = await self._resume(ws, payload["d"])
            elif session is None:
                await ws.close(code=4003, message=b"Not authenticated.")
            async with self._changed:
                self._changed.notify_all()
        if session is not None and session.ws is ws:
            session.ws = None
        self._connections.pop(ws, None)
        return ws

    async def _identify(
        self, ws: web.WebSocketResponse, data: dict[str, Any]
    ) -> GatewaySession | None:
        if data.get("token") != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return None
        session = GatewaySession(id=secrets.token_hex(16), intents=int(data["intents"]), ws=ws)
        self.sessions[session.id] = session
        await self._dispatch(
            session,
            "READY",
            {
                "v": 10,
                "user": self.bot.to_json() | {"verified": True, "mfa_enabled": False},
                "guilds": [{"id": str(self.guild_id), "unavailable": True}],
                "session_id": session.id,
                "resume_gateway_url": self.resume_gateway_url,
                "application": {"id": str(self.application_id), "flags": 0},
                "private_channels": [],
                "relationships": [],
                "presences": [],
                "geo_ordered_rtc_regions": [],
            },
        )
        if session.intents & INTENT_GUILDS:
            await self._dispatch(session, "GUILD_CREATE", self._guild_json())
        return session

    async def _resume(
        self, ws: web.WebSocketResponse, data: dict[str, Any]
    ) -> GatewaySession | None:
        session = self.sessions.get(data.get("session_id", ""))
        if data.get("token") != self.token or session is None or data.get("seq") is None:
            await ws.send_json({"op": INVALID_SESSION, "d": False, "s": None, "t": None})
            return None
        session.ws = ws
        session.resumes += 1
        for event in session.events:
            if event["s"] > data["seq"]:
                await ws.send_json(event)
        await self._dispatch(session, "RESUMED", {})
        return session

    async def _dispatch(self, session: GatewaySession, event: str, data: dict[str, Any]) -> None:
        session.seq += 1
        payload = {"op": DISPATCH, "t": event, "s": session.seq, "d": data}
        session.events.append(payload)
        if session.ws is not None and not session.ws.closed:
            try:
                await session.ws.send_json(payload)
            except ConnectionResetError:
                session.ws = None  # replayed on RESUME

    async def _dispatch_all(self, event: str, data: dict[str, Any], intent: int) -> None:
        for session in self.sessions.values():
            if session.intents & intent:
                await self._dispatch(session, event, data)

    def _guild_json(self) -> dict[str, Any]:
        return {
            "id": str(self.guild_id),
            "name": "Test server",
            "icon": None,
            "owner_id": str(self.ids.next()),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [
                {
                    "id": str(self.guild_id),
                    "name": "@everyone",
                    "color": 0,
                    "hoist": False,
                    "position": 0,
                    "permissions": str(VIEW_CHANNEL | SEND_MESSAGES),
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                }
            ],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": None,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "joined_at": _now_iso(),
            "large": False,
            "unavailable": False,
            "member_count": 2,
            "voice_states": [],
            "members": [],
            "channels": [c for c in self.channels.values() if c["type"] != 11],
            "threads": [c for c in self.channels.values() if c["type"] == 11],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": self.live_events(),
            "soundboard_sounds": [],
        }

"""A fake Slack on 127.0.0.1: Web API, Socket Mode and response_url, as Slack's docs describe them.

The real slack-bolt and slack-sdk code talks to it unchanged (``SLACK_API_URL`` points the Web API
client here, and ``apps.connections.open`` hands back this server's websocket). It keeps what a test
wants to look at: every Web API call, the messages in each channel, ephemeral answers, Calls, and
Socket Mode acks, each with when it arrived. It can be told to fail like Slack does: 429 with
``Retry-After``, 500s for a number of calls or for a while, or a 500 *after* doing the work (the
answer lost on the way back); or to be slow: calls to a method held unanswered until released.

Shapes follow https://docs.slack.dev/reference/methods/ (``chat.postMessage``, ``calls.add``...),
https://docs.slack.dev/apis/events-api/using-socket-mode/ and
https://docs.slack.dev/authentication/verifying-requests-from-slack/.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import WSMsgType, web

BOT_TOKEN = "xoxb-1-fake-bot-token"
APP_TOKEN = "xapp-1-fake-app-token"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM_ID = "T0HUDDLE"
BOT_USER_ID = "U0HUDDLEBOT"
BOT_ID = "B0HUDDLE"
APP_ID = "A0HUDDLE"

ALL_SCOPES = frozenset(
    {
        "commands",
        "chat:write",
        "chat:write.public",
        "users:read",
        "calls:write",
        "channels:history",
        "groups:history",
        "im:history",
        "im:write",
    }
)

#: Which scope each method needs (per its reference page) and which token type it takes.
METHODS: dict[str, tuple[str | None, str]] = {
    "auth.test": (None, "bot"),
    "apps.connections.open": ("connections:write", "app"),
    "chat.postMessage": ("chat:write", "bot"),
    "chat.update": ("chat:write", "bot"),
    "chat.postEphemeral": ("chat:write", "bot"),
    "users.info": ("users:read", "bot"),
    # The history scope depends on the conversation type: checked by the method itself.
    "conversations.history": (None, "bot"),
    "conversations.replies": (None, "bot"),
    "conversations.open": ("im:write", "bot"),
    "calls.add": ("calls:write", "bot"),
    "calls.participants.add": ("calls:write", "bot"),
    "calls.participants.remove": ("calls:write", "bot"),
    "calls.end": ("calls:write", "bot"),
}


@dataclass(frozen=True)
class SlackPerson:
    """A workspace member as ``users.info`` describes them."""

    id: str
    handle: str
    real_name: str
    display_name: str
    tz: str = "Europe/London"
    tz_offset: int = 0

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "team_id": TEAM_ID,
            "name": self.handle,
            "deleted": False,
            "real_name": self.real_name,
            "tz": self.tz,
            "tz_label": self.tz,
            "tz_offset": self.tz_offset,
            "is_bot": False,
            "profile": {
                "real_name": self.real_name,
                "real_name_normalized": self.real_name,
                "display_name": self.display_name,
                "display_name_normalized": self.display_name,
            },
        }


PEOPLE = (
    SlackPerson("U0ALICE", "alice", "Alice Liddell", "Alice L", "Europe/Paris", 3600),
    SlackPerson("U0BOB", "bob", "Bob Stone", "", "America/New_York", -18000),
)


@dataclass
class ApiCall:
    """One Web API request as the fake saw it and answered it."""

    method: str
    args: dict[str, Any]
    token: str | None
    status: int
    body: dict[str, Any]
    at: float

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.body.get("ok") is True


@dataclass
class Message:
    """A message in a channel (or a thread reply)."""

    ts: str
    channel: str
    text: str
    blocks: list[dict[str, Any]]
    metadata: dict[str, Any] | None
    thread_ts: str | None = None
    user: str = BOT_USER_ID
    bot_id: str = BOT_ID
    edits: int = 0

    def as_history(self, with_metadata: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "message",
            "ts": self.ts,
            "text": self.text,
            "user": self.user,
            "bot_id": self.bot_id,
            "blocks": self.blocks,
        }
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if with_metadata and self.metadata:
            out["metadata"] = self.metadata
        return out

    @property
    def key(self) -> str | None:
        """The huddle post key in the metadata, if any."""
        if not self.metadata:
            return None
        key = self.metadata.get("event_payload", {}).get("key")
        return key if isinstance(key, str) else None

    def buttons(self) -> list[dict[str, Any]]:
        return [
            element
            for block in self.blocks
            if block.get("type") == "actions"
            for element in block.get("elements", [])
        ]

    def block_text(self) -> str:
        """Every text in the blocks, one per line (what a person reads)."""
        parts = []
        for block in self.blocks:
            text = block.get("text")
            if isinstance(text, dict):
                parts.append(str(text.get("text", "")))
        return "\n".join(parts)


@dataclass
class Call:
    """A Call registered with ``calls.add``."""

    id: str
    external_unique_id: str
    join_url: str
    title: str
    created_by: str
    users: list[dict[str, Any]]
    date_start: int
    ended: bool = False
    duration: int | None = None


@dataclass
class Failure:
    """A planned failure: ``count`` calls, or every call for ``seconds`` from the first one hit."""

    status: int
    count: int | None = None
    seconds: float | None = None
    retry_after: int = 1
    methods: frozenset[str] | None = None
    #: Do the work, then answer with the failure (the answer lost on its way back).
    after_work: bool = False
    started: float | None = None

    def matches(self, method: str) -> bool:
        return self.methods is None or method in self.methods

    def expired(self, now: float) -> bool:
        if self.count is not None:
            return self.count <= 0
        assert self.seconds is not None
        return self.started is not None and now - self.started >= self.seconds


@dataclass
class Envelope:
    """A Socket Mode envelope pushed to the app, and its ack."""

    envelope_id: str
    type: str
    payload: dict[str, Any]
    sent_at: float
    acked: asyncio.Future[dict[str, Any]]
    #: ``time.monotonic()`` when the ack arrived.
    acked_at: float | None = None


class SlackError(Exception):
    """``{"ok": false, "error": ...}``."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


@dataclass
class FakeSlack:
    """The fake: start it, point ``SLACK_API_URL`` at :attr:`api_url`, look at what happened."""

    scopes: frozenset[str] = ALL_SCOPES
    #: Send ``x-oauth-scopes`` on answers (Slack does; a proxy might strip it).
    scopes_header: bool = True
    people: tuple[SlackPerson, ...] = PEOPLE
    #: Channels the bot is not in: posts there answer ``not_in_channel``.
    closed_channels: set[str] = field(default_factory=set)

    calls: list[ApiCall] = field(default_factory=list)
    messages: dict[str, list[Message]] = field(default_factory=dict)
    ephemerals: list[dict[str, Any]] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)
    #: ``time.monotonic()`` when each of :attr:`responses` arrived.
    responded_at: list[float] = field(default_factory=list)
    registered: dict[str, Call] = field(default_factory=dict)
    envelopes: dict[str, Envelope] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._sockets: list[web.WebSocketResponse] = []
        #: Socket Mode connections opened so far.
        self.opened = 0
        self._connected = asyncio.Event()
        self._changed = asyncio.Event()
        self._ts = itertools.count(1)
        self._by_ts: dict[tuple[str, str], Message] = {}
        self._call_ids = itertools.count(1)
        self._holds: dict[str, asyncio.Event] = {}
        #: Web API calls kept waiting by :meth:`hold` so far, by method.
        self.held: list[str] = []

    # Life

    async def start(self) -> FakeSlack:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/link/", self._socket_mode)
        app.router.add_post("/respond/{token}", self._response_url)
        app.router.add_get("/_fake/stats", self._stats)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self._port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def close(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_url(self) -> str:
        """What ``SLACK_API_URL`` is set to."""
        return f"{self.url}/api/"

    # Telling it to fail

    def fail_next(
        self,
        count: int,
        status: int = 429,
        *,
        retry_after: int = 1,
        methods: Iterable[str] | None = None,
        after_work: bool = False,
    ) -> None:
        """Answer the next ``count`` matching calls with ``status`` (after rules queued before)."""
        self.failures.append(
            Failure(
                status,
                count=count,
                retry_after=retry_after,
                methods=frozenset(methods) if methods else None,
                after_work=after_work,
            )
        )

    def fail_for(
        self, seconds: float, status: int = 500, *, methods: Iterable[str] | None = None
    ) -> None:
        """Answer every matching call with ``status`` for ``seconds`` from the first one hit."""
        self.failures.append(
            Failure(status, seconds=seconds, methods=frozenset(methods) if methods else None)
        )

    def hold(self, *methods: str) -> asyncio.Event:
        """Leave calls to ``methods`` unanswered until the returned event is set (Slack slow).

        What a test asserts while the calls are held cannot have waited for them.
        """
        release = asyncio.Event()
        for method in methods:
            self._holds[method] = release
        return release

    def _failure_for(self, method: str) -> Failure | None:
        now = time.monotonic()
        while self.failures and self.failures[0].expired(now):
            self.failures.pop(0)
        if not self.failures or not self.failures[0].matches(method):
            return None
        failure = self.failures[0]
        if failure.count is not None:
            failure.count -= 1
        elif failure.started is None:
            failure.started = now
        return failure

    # Looking at what happened

    def calls_to(self, method: str, *, ok: bool | None = None) -> list[ApiCall]:
        return [c for c in self.calls if c.method == method and (ok is None or c.ok == ok)]

    def channel(self, channel: str) -> list[Message]:
        """Top-level messages and thread replies in ``channel``, oldest first."""
        return self.messages.get(channel, [])

    def delete(self, message: Message) -> None:
        """Someone deleted ``message`` in Slack."""
        self.messages[message.channel].remove(message)
        del self._by_ts[message.channel, message.ts]

    def card(self, channel: str) -> Message:
        """The only top-level message in ``channel`` that carries a post key."""
        [card] = [m for m in self.channel(channel) if m.key and m.thread_ts is None]
        return card

    async def wait_for(
        self, condition: Callable[[], Any], within: float = 30.0, what: str = ""
    ) -> Any:
        """Wait until ``condition()`` is truthy (re-checked on every request the fake answers)."""
        deadline = time.monotonic() + within
        while True:
            value = condition()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {what or condition}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 0.2))
            except TimeoutError:
                pass

    # Socket Mode

    async def wait_connected(self, within: float = 10.0) -> None:
        await asyncio.wait_for(self._connected.wait(), within)

    async def ask_to_reconnect(self) -> None:
        """Send ``disconnect`` (reason ``refresh_requested``), as Slack does every few hours."""
        await self._sockets[-1].send_str(
            json.dumps(
                {
                    "type": "disconnect",
                    "reason": "refresh_requested",
                    "debug_info": {"host": "fake-slack"},
                }
            )
        )

    async def drop_connections(self) -> None:
        """Close every Socket Mode websocket from Slack's side."""
        for ws in list(self._sockets):
            await ws.close()

    @property
    def connections(self) -> int:
        return len(self._sockets)

    async def push(self, type_: str, payload: dict[str, Any]) -> Envelope:
        """Send an envelope to the connected app, as Slack does for a command or a click."""
        if not self._sockets:
            raise AssertionError("no Socket Mode connection")
        envelope = Envelope(
            envelope_id=str(uuid.uuid4()),
            type=type_,
            payload=payload,
            sent_at=time.monotonic(),
            acked=asyncio.get_running_loop().create_future(),
        )
        self.envelopes[envelope.envelope_id] = envelope
        await self._sockets[-1].send_str(
            json.dumps(
                {
                    "envelope_id": envelope.envelope_id,
                    "type": type_,
                    "payload": payload,
                    "accepts_response_payload": type_ != "events_api",
                    "retry_attempt": 0,
                    "retry_reason": "",
                }
            )
        )
        return envelope

    async def acked(self, envelope: Envelope, within: float = 30.0) -> dict[str, Any]:
        """The app's ack.

        Slack gives up (and shows an error) after 3 seconds, but a loaded machine must not fail a
        test: the bound is generous, and tests show that the ack does not wait for the work by
        its order (it arrives while the work's calls are held, or before their effects).
        """
        return await asyncio.wait_for(asyncio.shield(envelope.acked), within)

    # Building what Slack sends

    def slash_command(
        self, text: str, *, user: str = "U0ALICE", channel: str = "C0GENERAL"
    ) -> dict[str, Any]:
        """A `/meet` invocation's fields (Socket Mode payload; HTTP mode form-encodes them)."""
        person = next((p for p in self.people if p.id == user), None)
        return {
            "token": "deprecated-verification-token",
            "team_id": TEAM_ID,
            "team_domain": "huddle-test",
            "channel_id": channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": person.handle if person else user.lower(),
            "command": "/meet",
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": f"{self.url}/respond/{uuid.uuid4().hex}",
            "trigger_id": f"{time.time():.0f}.1.{uuid.uuid4().hex[:12]}",
        }

    def click(self, message: Message, button: int = 0, *, user: str = "U0BOB") -> dict[str, Any]:
        """The ``block_actions`` payload of a click on one of a message's buttons."""
        pressed = message.buttons()[button]
        action = {
            "type": "button",
            "action_id": pressed["action_id"],
            "block_id": "b1",
            "text": pressed["text"],
            "action_ts": f"{time.time():.6f}",
        }
        for optional in ("url", "value"):
            if optional in pressed:
                action[optional] = pressed[optional]
        return {
            "type": "block_actions",
            "team": {"id": TEAM_ID, "domain": "huddle-test"},
            "user": {"id": user, "username": user.lower(), "team_id": TEAM_ID},
            "api_app_id": APP_ID,
            "token": "deprecated-verification-token",
            "container": {"type": "message", "message_ts": message.ts, "channel_id": "C0GENERAL"},
            "trigger_id": f"{time.time():.0f}.1.{uuid.uuid4().hex[:12]}",
            "channel": {"id": message.channel, "name": "general"},
            "message": {"ts": message.ts, "text": message.text, "blocks": message.blocks},
            "response_url": f"{self.url}/respond/{uuid.uuid4().hex}",
            "actions": [action],
        }

    # The Web API

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        if request.method == "POST":
            if request.content_type == "application/json":
                body = await request.json()
                if isinstance(body, dict):
                    args.update(body)
            else:
                args.update(await request.post())
        release = self._holds.get(method)
        if release is not None:
            self.held.append(method)
            self._changed.set()
            await release.wait()
        auth = request.headers.get("Authorization", "")
        token = (
            auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else args.pop("token", None)
        )
        failure = None if method == "apps.connections.open" else self._failure_for(method)
        status, answer = 200, {}
        if failure is not None and not failure.after_work:
            status, answer = failure.status, self._failure_body(failure.status)
        else:
            try:
                answer = {"ok": True, **self._authorized(method, token, args)}
            except SlackError as exc:
                answer = {"ok": False, "error": exc.error, **exc.extra}
            if failure is not None:
                status, answer = failure.status, self._failure_body(failure.status)
        self.calls.append(ApiCall(method, args, token, status, answer, time.monotonic()))
        self._changed.set()
        headers = {}
        if self.scopes_header and token and token.startswith("xoxb-"):
            headers["x-oauth-scopes"] = ",".join(sorted(self.scopes))
            headers["x-accepted-oauth-scopes"] = METHODS.get(method, (None, ""))[0] or ""
        if status == 429:
            headers["Retry-After"] = str(failure.retry_after if failure else 1)
        return web.Response(
            status=status,
            text=json.dumps(answer),
            content_type="application/json",
            charset="utf-8",
            headers=headers,
        )

    @staticmethod
    def _failure_body(status: int) -> dict[str, Any]:
        if status == 429:
            return {"ok": False, "error": "ratelimited"}
        if status == 503:
            return {"ok": False, "error": "service_unavailable"}
        return {"ok": False, "error": "fatal_error"}

    def _authorized(self, method: str, token: str | None, args: dict[str, Any]) -> dict[str, Any]:
        if method not in METHODS:
            raise SlackError("unknown_method")
        scope, token_type = METHODS[method]
        if not token:
            raise SlackError("not_authed")
        expected = APP_TOKEN if token_type == "app" else BOT_TOKEN
        if token != expected:
            if token.split("-")[0] != expected.split("-")[0]:
                raise SlackError("not_allowed_token_type")
            raise SlackError("invalid_auth")
        if token_type == "bot" and scope and scope not in self.scopes:
            provided = ",".join(sorted(self.scopes))
            raise SlackError("missing_scope", needed=scope, provided=provided)
        handler = getattr(self, "_" + method.replace(".", "_"))
        result: dict[str, Any] = handler(args)
        return result

    def _next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": "https://huddle-test.slack.com/",
            "team": "Huddle Test",
            "user": "huddle",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"url": f"ws://127.0.0.1:{self._port}/link/?ticket={uuid.uuid4()}&app_id={APP_ID}"}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        for person in self.people:
            if person.id == args.get("user"):
                return {"user": person.info()}
        raise SlackError("user_not_found")

    def _channel_arg(self, args: dict[str, Any]) -> str:
        channel = str(args.get("channel") or "")
        if not channel or channel[0] not in "CGD":
            raise SlackError("channel_not_found")
        return channel

    def _content(self, args: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        text = str(args.get("text") or "")
        blocks = args.get("blocks") or []
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        if not text and not blocks:
            raise SlackError("no_text")
        self._check_blocks(blocks)
        return text, blocks

    def _check_blocks(self, blocks: list[dict[str, Any]]) -> None:
        """Block Kit's limits, as far as the adapter can break them."""
        if not isinstance(blocks, list) or len(blocks) > 50:
            raise SlackError("invalid_blocks")
        for block in blocks:
            kind = block.get("type")
            if kind == "header":
                text = block["text"]
                if text.get("type") != "plain_text" or not 0 < len(text["text"]) <= 150:
                    raise SlackError("invalid_blocks")
            elif kind == "section":
                if not 0 < len(block["text"]["text"]) <= 3000:
                    raise SlackError("invalid_blocks")
            elif kind == "actions":
                elements = block["elements"]
                if not 0 < len(elements) <= 25:
                    raise SlackError("invalid_blocks")
                ids = [e.get("action_id") for e in elements]
                if len(set(ids)) != len(ids):
                    raise SlackError("invalid_blocks")
                for element in elements:
                    if element.get("type") != "button" or len(element["text"]["text"]) > 75:
                        raise SlackError("invalid_blocks")
                    if len(element.get("url", "")) > 3000:
                        raise SlackError("invalid_blocks")
            elif kind == "call":
                if block.get("call_id") not in self.registered:
                    raise SlackError("invalid_blocks")
            else:
                raise SlackError("invalid_blocks")

    def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_arg(args)
        if channel in self.closed_channels:
            raise SlackError("not_in_channel")
        text, blocks = self._content(args)
        metadata = args.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        thread_ts = args.get("thread_ts") or None
        if thread_ts and (channel, thread_ts) not in self._by_ts:
            raise SlackError("thread_not_found")
        message = Message(self._next_ts(), channel, text, blocks, metadata, thread_ts)
        self.messages.setdefault(channel, []).append(message)
        self._by_ts[channel, message.ts] = message
        return {"channel": channel, "ts": message.ts, "message": message.as_history(True)}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_arg(args)
        message = self._by_ts.get((channel, str(args.get("ts"))))
        if message is None:
            raise SlackError("message_not_found")
        message.text, message.blocks = self._content(args)
        metadata = args.get("metadata")
        if metadata:
            message.metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
        message.edits += 1
        return {"channel": channel, "ts": message.ts, "text": message.text}

    def _chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_arg(args)
        if channel in self.closed_channels:
            raise SlackError("not_in_channel")
        if not args.get("user"):
            raise SlackError("user_not_in_channel")
        text, _ = self._content(args)
        self.ephemerals.append({"channel": channel, "user": args["user"], "text": text})
        return {"message_ts": self._next_ts()}

    def _history(self, messages: list[Message], args: dict[str, Any]) -> dict[str, Any]:
        oldest = float(args.get("oldest") or 0)
        limit = int(args.get("limit") or 100)
        start = int(args.get("cursor") or 0)
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        chosen = [m for m in reversed(messages) if float(m.ts) > oldest]
        page = chosen[start : start + limit]
        more = start + limit < len(chosen)
        return {
            "messages": [m.as_history(with_metadata) for m in page],
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def _history_scope(self, channel: str) -> None:
        # The method's scope depends on the conversation type.
        needed = {"C": "channels:history", "G": "groups:history", "D": "im:history"}[channel[0]]
        if needed not in self.scopes:
            raise SlackError("missing_scope", needed=needed, provided=",".join(sorted(self.scopes)))

    def _conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        users = str(args.get("users") or "")
        if not any(p.id == users for p in self.people):
            raise SlackError("user_not_found")
        return {"channel": {"id": "D" + users[1:]}}

    def _conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_arg(args)
        self._history_scope(channel)
        if channel in self.closed_channels:
            raise SlackError("not_in_channel")
        top = [m for m in self.channel(channel) if m.thread_ts is None]
        return self._history(top, args)

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_arg(args)
        self._history_scope(channel)
        parent = args.get("ts")
        thread = [m for m in self.channel(channel) if parent in (m.ts, m.thread_ts)]
        if not thread:
            raise SlackError("thread_not_found")
        return self._history(thread, args)

    def _call(self, args: dict[str, Any]) -> Call:
        call = self.registered.get(str(args.get("id")))
        if call is None:
            raise SlackError("invalid_call_id")
        return call

    @staticmethod
    def _users(args: dict[str, Any]) -> list[dict[str, Any]]:
        users = args.get("users") or []
        if isinstance(users, str):
            users = json.loads(users)
        for user in users:
            if not user.get("slack_id") and not (
                user.get("external_id") and user.get("display_name")
            ):
                raise SlackError("invalid_users")
        return list(users)

    def _calls_add(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("external_unique_id") or not args.get("join_url"):
            raise SlackError("invalid_arguments")
        if not args.get("created_by"):
            # Required with a bot token (calls.add reference).
            raise SlackError("invalid_created_by")
        call = Call(
            id=f"R{next(self._call_ids):08d}",
            external_unique_id=str(args["external_unique_id"]),
            join_url=str(args["join_url"]),
            title=str(args.get("title") or ""),
            created_by=str(args["created_by"]),
            users=self._users(args),
            date_start=int(args.get("date_start") or time.time()),
        )
        self.registered[call.id] = call
        return {"call": {"id": call.id, "join_url": call.join_url, "users": call.users}}

    def _calls_participants_add(self, args: dict[str, Any]) -> dict[str, Any]:
        call = self._call(args)
        users = self._users(args)
        present = {u.get("external_id") or u.get("slack_id") for u in call.users}
        if any((u.get("external_id") or u.get("slack_id")) in present for u in users):
            raise SlackError("bad_users")
        call.users.extend(users)
        return {}

    def _calls_participants_remove(self, args: dict[str, Any]) -> dict[str, Any]:
        call = self._call(args)
        gone = {u.get("external_id") or u.get("slack_id") for u in self._users(args)}
        call.users = [
            u for u in call.users if (u.get("external_id") or u.get("slack_id")) not in gone
        ]
        return {}

    def _calls_end(self, args: dict[str, Any]) -> dict[str, Any]:
        call = self._call(args)
        call.ended = True
        call.duration = int(args["duration"]) if args.get("duration") else None
        return {}

    # Socket Mode and response_url

    async def _socket_mode(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": len(self._sockets),
                    "debug_info": {"host": "fake-slack", "approximate_connection_time": 18060},
                    "connection_info": {"app_id": APP_ID},
                }
            )
        )
        self._connected.set()
        self.opened += 1
        self._changed.set()
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                data = json.loads(message.data)
                envelope = self.envelopes.get(data.get("envelope_id", ""))
                if envelope is not None and not envelope.acked.done():
                    envelope.acked_at = time.monotonic()
                    envelope.acked.set_result(data)
                    self._changed.set()
        finally:
            self._sockets.remove(ws)
            if not self._sockets:
                self._connected.clear()
        return ws

    async def _stats(self, request: web.Request) -> web.Response:
        """Successful Web API calls per method (for ``bench/``, whose fake runs in a process)."""
        counts: dict[str, int] = {}
        for call in self.calls:
            if call.ok:
                counts[call.method] = counts.get(call.method, 0) + 1
        cards = sum(
            1 for messages in self.messages.values() for m in messages if m.key and not m.thread_ts
        )
        return web.json_response(
            {"ok_calls": counts, "cards": cards, "responses": len(self.responses)}
        )

    async def _response_url(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.responses.append({"token": request.match_info["token"], **body})
        self.responded_at.append(time.monotonic())
        self._changed.set()
        return web.Response(text="ok")


def sign(
    body: bytes, *, secret: str = SIGNING_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    """The headers Slack adds to an HTTP-mode request: ``v0=`` HMAC-SHA256 of ``v0:ts:body``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def command_body(fields: dict[str, Any]) -> bytes:
    """A slash command as Slack posts it in HTTP mode (form-encoded)."""
    return urlencode(fields).encode()


def interaction_body(payload: dict[str, Any]) -> bytes:
    """An interaction as Slack posts it in HTTP mode (``payload=`` JSON, form-encoded)."""
    return urlencode({"payload": json.dumps(payload)}).encode()

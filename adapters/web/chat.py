"""The web chat adapter: an HTTP API and a live page, translated to and from the core's types.

API (also for scripts and tests):
  GET  /api/chat/channels                          -> {"channels": [...]}
  POST /api/chat/{channel}/messages  {"user", "text", "thread_of"?} -> {"posts": [bot replies]}
  GET  /api/chat/{channel}/messages?user=alice     -> {"posts": [history alice may see]}
  GET  /api/chat/{channel}/events?user=alice       -> text/event-stream of "post" events

``user`` is who the client says it is only in open mode (loopback); with accounts it is the
signed-in account's name, whatever the client sends (:mod:`adapters.web.auth`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from adapters.web.auth import WebAuth
from bot.commands import Commands
from bot.records import ChatMessage
from bot.store import Store
from bot.types import (
    Action,
    Button,
    ChannelRef,
    Clock,
    Command,
    HuddleSnapshot,
    MeetingSnapshot,
    Post,
    User,
    plain_times,
    utc_now,
)

log = logging.getLogger("huddle.web")

STATIC = Path(__file__).parent / "static"
CHANNEL = re.compile(r"^[a-z0-9][a-z0-9_-]{0,79}$")
USER = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")
MAX_TEXT = 4000
MAX_BODY = 16 * 1024
BOT_NAME = "huddle"


class BadRequest(web.HTTPBadRequest):
    """400 with a JSON body ``{"error": message}``."""

    def __init__(self, message: str) -> None:
        super().__init__(text=json.dumps({"error": message}), content_type="application/json")


def _buttons(buttons: tuple[Button, ...]) -> list[dict[str, str]]:
    return [
        {"label": b.label, "action": b.action} if b.action else {"label": b.label, "url": b.url}
        for b in buttons
    ]


def _post_json(message: ChatMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "channel": message.channel,
        "user": message.author,
        "bot": message.is_bot,
        "title": message.title,
        # ``text`` shows times as "Mon 23 Nov 10:00 Europe/Berlin"; ``markup`` keeps the
        # <t:unix|...> form the page renders in the reader's own zone.
        "text": plain_times(message.text),
        "markup": message.text,
        "buttons": message.buttons,
        "thread_of": message.thread_of,
        "ephemeral": message.visible_to is not None,
        "created_at": message.created_at.isoformat(),
        "edited_at": message.edited_at.isoformat() if message.edited_at else None,
    }


@dataclass(eq=False)  # held in sets: identity, not value
class _Listener:
    user: str | None
    #: None tells the stream to end (server shutting down).
    queue: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(maxsize=1000))


class WebChat:
    """The ``web`` platform: stores its messages in the core's database and streams them live."""

    name = "web"

    def __init__(
        self, store: Store, commands: Commands, auth: WebAuth, clock: Clock = utc_now
    ) -> None:
        self.store = store
        self.commands = commands
        self.auth = auth
        self.clock = clock
        self._listeners: dict[str, set[_Listener]] = {}

    def add_routes(self, app: web.Application) -> None:
        """Mount the chat page, its API and the sign-in pages."""
        self.auth.add_routes(app)
        app.router.add_get("/", self._page)
        app.router.add_get("/chat/{channel}", self._page)
        app.router.add_static("/web-chat/", STATIC)
        app.router.add_get("/api/chat/channels", self._channels)
        app.router.add_post("/api/chat/{channel}/messages", self._post_message)
        app.router.add_get("/api/chat/{channel}/messages", self._history)
        app.router.add_get("/api/chat/{channel}/events", self._events)
        app.router.add_post("/api/chat/{channel}/actions", self._action)

    def close(self) -> None:
        """End every live stream so the server can stop without waiting for them."""
        for listeners in self._listeners.values():
            for listener in listeners:
                listener.queue.put_nowait(None)

    # Output: the core's posts become chat messages.

    async def send(self, post: Post, thread_ref: str | None) -> str:
        """Store and broadcast a new bot message; its id is the platform ref."""
        message = await self.store.add_chat_message(
            channel=post.channel.channel_id,
            author=BOT_NAME,
            is_bot=True,
            title=post.title,
            text=post.text,
            buttons=_buttons(post.buttons),
            thread_of=int(thread_ref) if thread_ref else None,
            # The web chat has no direct messages: a private post is one only its reader sees.
            visible_to=post.to_user,
            at=self.clock(),
        )
        self._broadcast(message)
        return str(message.id)

    async def edit(self, ref: str, post: Post) -> None:
        """Replace a bot message in place and tell every open page."""
        message = await self.store.edit_chat_message(
            int(ref),
            title=post.title,
            text=post.text,
            buttons=_buttons(post.buttons),
            at=self.clock(),
        )
        if message is None:
            raise LookupError(f"web chat message {ref} does not exist")
        self._broadcast(message)

    async def on_huddle(self, snapshot: HuddleSnapshot) -> None:
        """The web chat shows huddles through their cards only."""

    async def on_meeting(self, snapshot: MeetingSnapshot) -> None:
        """The web chat shows meetings through their agenda cards only."""

    def _broadcast(self, message: ChatMessage) -> None:
        data = json.dumps(_post_json(message))
        for listener in list(self._listeners.get(message.channel, ())):
            if message.visible_to is not None and listener.user != message.visible_to:
                continue
            try:
                listener.queue.put_nowait(data)
            except asyncio.QueueFull:
                # A page that stopped reading: drop it; it reloads history when it reconnects.
                self._listeners[message.channel].discard(listener)

    # Input: HTTP handlers.

    async def _page(self, request: web.Request) -> web.FileResponse:
        await self.auth.page_redirect(request)
        return web.FileResponse(STATIC / "chat.html")

    async def _author(self, request: web.Request, claimed: object) -> str:
        """Who writes: the account (accounts mode) or the ``user`` the client names (open)."""
        user = await self.auth.who(request, claimed, writes=True)
        if not isinstance(user, str) or not USER.match(user.strip() or "\x00"):
            raise BadRequest('"user" is required: a name of 1-64 printable characters.')
        return user.strip()

    async def _viewer(self, request: web.Request) -> str | None:
        """Who reads: private posts are shown to this name only."""
        return await self.auth.who(request, request.query.get("user") or None, writes=False)

    async def _channels(self, request: web.Request) -> web.Response:
        await self._viewer(request)
        channels = await self.store.chat_channels()
        if "general" not in channels:
            channels.insert(0, "general")
        return web.json_response({"channels": channels})

    def _channel(self, request: web.Request) -> str:
        channel = request.match_info["channel"]
        if not CHANNEL.match(channel):
            raise BadRequest(
                "Channel names are 1-80 characters: lowercase letters, digits, '-' and '_'."
            )
        return channel

    async def _read_json(self, request: web.Request) -> dict[str, Any]:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise BadRequest(f"The request body is larger than {MAX_BODY} bytes.")
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            raise BadRequest(f"The request body is larger than {MAX_BODY} bytes.")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"The body is not valid JSON: {exc}.") from exc
        if not isinstance(body, dict):
            raise BadRequest('The body must be a JSON object like {"user": "alice", "text": "hi"}.')
        return body

    async def _post_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        body = await self._read_json(request)
        user, text = await self._author(request, body.get("user")), body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise BadRequest('"text" is required and must not be empty.')
        if len(text) > MAX_TEXT:
            raise BadRequest(f'"text" is {len(text)} characters; the limit is {MAX_TEXT}.')
        thread_of = body.get("thread_of")
        if thread_of is not None:
            parent = (
                await self.store.chat_message(thread_of) if isinstance(thread_of, int) else None
            )
            if parent is None or parent.channel != channel:
                raise BadRequest('"thread_of" must be the id of a message in this channel.')
        now = self.clock()
        self._broadcast(
            await self.store.add_chat_message(
                channel=channel, author=user, is_bot=False, text=text, thread_of=thread_of, at=now
            )
        )
        posts = await self._run_command(channel, user, text.strip()) if text.startswith("/") else []
        return web.json_response({"posts": posts})

    async def _action(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        body = await self._read_json(request)
        user, action = await self._author(request, body.get("user")), body.get("action")
        if not isinstance(action, str) or not 0 < len(action) <= 200:
            raise BadRequest('"action" is required: the action of the button pressed.')
        result = await self.commands.act(
            Action(channel=ChannelRef(self.name, channel), user=User(user, user), action=action)
        )
        posts = [
            _post_json(await self._ephemeral(channel, user, r.text, _buttons(r.buttons)))
            for r in result.replies
        ]
        return web.json_response({"posts": posts})

    async def _run_command(self, channel: str, user: str, text: str) -> list[dict[str, Any]]:
        name, _, rest = text.partition(" ")
        if name != "/meet":
            unknown = await self._ephemeral(
                channel, user, f"Unknown command `{name[:40]}`. Try `/meet help`.", []
            )
            return [_post_json(unknown)]
        result = await self.commands.handle(
            Command(channel=ChannelRef(self.name, channel), user=User(user, user), text=rest)
        )
        posts: list[dict[str, Any]] = []
        for delivered in result.posted:
            message = await self.store.chat_message(int(delivered.ref))
            if message is not None:
                posts.append(_post_json(message))
        for reply in result.replies:
            buttons = _buttons(reply.buttons)
            posts.append(_post_json(await self._ephemeral(channel, user, reply.text, buttons)))
        return posts

    async def _ephemeral(
        self, channel: str, user: str, text: str, buttons: list[dict[str, str]]
    ) -> ChatMessage:
        message = await self.store.add_chat_message(
            channel=channel,
            author=BOT_NAME,
            is_bot=True,
            text=text,
            buttons=buttons,
            visible_to=user,
            at=self.clock(),
        )
        self._broadcast(message)
        return message

    async def _history(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        viewer = await self._viewer(request)
        messages = await self.store.chat_history(channel, viewer)
        return web.json_response({"posts": [_post_json(m) for m in messages]})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        channel = self._channel(request)
        listener = _Listener(user=await self._viewer(request))
        self._listeners.setdefault(channel, set()).add(listener)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        try:
            await response.write(b": connected\n\n")
            while True:
                try:
                    data = await asyncio.wait_for(listener.queue.get(), timeout=15)
                    if data is None:
                        break
                    await response.write(f"event: post\ndata: {data}\n\n".encode())
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._listeners.get(channel, set()).discard(listener)
        return response

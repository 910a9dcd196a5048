"""The signaling WebSocket: one :class:`SignalingSession` per participant socket (PROTOCOL.md).

Every client frame is checked (size, JSON object, type, fields, state, rate) before anything acts
on it; a refused frame gets an ``error`` reply and the connection carries on. Nothing a client
sends can affect anyone else's socket: outgoing messages go through a per-socket queue drained by
its own writer task, so a slow or stuck client only ever delays itself.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web
from aiortc import RTCPeerConnection

from media import hosting
from media.errors import ProtocolError
from media.messages import (
    CLIENT_TYPES,
    HOST_TYPES,
    MAX_CHAT,
    MAX_MESSAGE_BYTES,
    MAX_NOTES,
    REACTIONS,
    SDP_BYTES_PER_MLINE,
    CallRole,
    ErrorCode,
    ServerMessage,
)
from media.participants import DETACHED, Participant, Waiter
from media.rooms import Room

log = logging.getLogger(__name__)

#: Frames above this are cut off by aiohttp itself (the socket closes with 1009); below it the
#: server answers ``too_large`` to an oversize frame and keeps the connection. An answer in a
#: huddle of 100 stays well under it (~200 m-lines of ~850 bytes).
HARD_FRAME_LIMIT = 1024 * 1024

#: PROTOCOL.md: more than this many messages in one second are refused with ``rate_limited``.
RATE_LIMIT_PER_SECOND = 50

#: A client this many messages behind is not reading its socket; it is disconnected.
MAX_QUEUED_MESSAGES = 512

MAX_NAME_CHARS = 64

EXPECTED = ", ".join(sorted(CLIENT_TYPES))

#: What someone a host removed is told when they try again (the join page says it too).
REMOVED = "A host removed you from this huddle; this link no longer lets you in."
ALREADY_JOINED = "You have already joined this huddle."
#: What someone who comes back too late (or with a token the server never gave) is told.
CANNOT_RESUME = (
    "Your place in the huddle was given up while you were away. Join again to come back."
)
#: A pre-join connectivity check's peer connection lives this long at most (seconds).
CHECK_SECONDS = 30.0
#: Checks one socket may ask for (a page runs one; "check again" may run a couple more).
MAX_CHECKS = 3
#: WebSocket close codes that mean "gone for good" (normal closure, the page going away); any
#: other end of the socket (a network drop, code 4000 from a client about to resume) holds the
#: participant's place for ``resume``.
CLEAN_CLOSE_CODES = (1000, 1001)
#: Resume tokens are 24 characters; anything much longer is not one.
MAX_TOKEN_CHARS = 64
#: What someone is told when a host has locked the huddle.
LOCKED = "A host has locked this huddle: nobody new can join until they unlock it."


@dataclass
class SignalingCounters:
    """Counters shared by all sessions of a server (read by ``MediaServer.stats``)."""

    errors: int = 0
    connections: int = 0


class RateLimiter:
    """Fixed one-second windows: cheap, and precise enough to stop a flood."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._clock = clock
        self._window = -1.0
        self._count = 0

    def allow(self) -> bool:
        """Count one message; False once more than ``limit`` arrived in the current second."""
        now = self._clock()
        if now - self._window >= 1.0:
            self._window = now
            self._count = 0
        self._count += 1
        return self._count <= self._limit


class SocketConnection:
    """The :class:`media.rooms.Connection` of one WebSocket: a queue and one writer task."""

    def __init__(self, ws: web.WebSocketResponse, label: str) -> None:
        self._ws = ws
        self._label = label
        self._queue: asyncio.Queue[ServerMessage | None] = asyncio.Queue()
        self._closing = False
        self._writer = asyncio.ensure_future(self._write())

    def send(self, message: ServerMessage) -> None:
        """Queue ``message``; a client too far behind is disconnected instead."""
        if self._closing:
            return
        if self._queue.qsize() >= MAX_QUEUED_MESSAGES:
            log.warning("signaling_slow_client %s queued=%d", self._label, self._queue.qsize())
            self.close()
            return
        self._queue.put_nowait(message)

    def close(self) -> None:
        """Close the socket after the messages already queued (such as ``ended``) are sent."""
        if not self._closing:
            self._closing = True
            self._queue.put_nowait(None)

    async def closed(self) -> None:
        """Wait until the writer has flushed and closed the socket."""
        self.close()
        await asyncio.shield(self._writer)

    async def _write(self) -> None:
        try:
            while (message := await self._queue.get()) is not None:
                await self._ws.send_str(json.dumps(message, separators=(",", ":")))
        except (ConnectionError, RuntimeError) as exc:
            # The peer went away mid-send; the reading side notices and cleans up.
            log.info("signaling_send_failed %s error=%r", self._label, exc)
        finally:
            self._closing = True
            await self._ws.close()


def _field_str(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise ProtocolError("bad_field", f"`{name}` must be a string.")
    return value


def _field_bool(data: dict[str, Any], name: str) -> bool:
    value = data.get(name)
    if not isinstance(value, bool):
        raise ProtocolError("bad_field", f"`{name}` must be true or false.")
    return value


#: The most tiles one ``view`` may describe (a page shows far fewer).
MAX_VIEW_TILES = 256
#: Taller than any screen: a ``view`` height beyond this is a mistake.
MAX_VIEW_HEIGHT = 16384


def _view(data: dict[str, Any]) -> dict[str, tuple[int, bool]]:
    """A ``view`` message's tiles: mid -> (height in device pixels, visible)."""
    tiles = data.get("tiles")
    if not isinstance(tiles, list) or len(tiles) > MAX_VIEW_TILES:
        raise ProtocolError("bad_field", f"`tiles` must be a list of at most {MAX_VIEW_TILES}.")
    view: dict[str, tuple[int, bool]] = {}
    for tile in tiles:
        if not isinstance(tile, dict):
            raise ProtocolError("bad_field", "Each of `tiles` must be an object.")
        mid, height, visible = tile.get("mid"), tile.get("height"), tile.get("visible")
        if not isinstance(mid, str) or not 1 <= len(mid) <= 16:
            raise ProtocolError("bad_field", "A tile's `mid` must be a string of 1 to 16.")
        if (
            not isinstance(height, int)
            or isinstance(height, bool)
            or not 0 <= height <= MAX_VIEW_HEIGHT
        ):
            raise ProtocolError(
                "bad_field", f"A tile's `height` must be a whole number 0 to {MAX_VIEW_HEIGHT}."
            )
        if not isinstance(visible, bool):
            raise ProtocolError("bad_field", "A tile's `visible` must be true or false.")
        view[mid] = (height, visible)
    return view


def _display_name(data: dict[str, Any]) -> str:
    name = _field_str(data, "name").strip()
    if not 1 <= len(name) <= MAX_NAME_CHARS:
        raise ProtocolError("bad_field", f"`name` must be 1 to {MAX_NAME_CHARS} characters.")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name):
        raise ProtocolError("bad_field", "`name` must not contain control characters.")
    return name


def _sdp(data: dict[str, Any]) -> str:
    sdp = _field_str(data, "sdp")
    if not sdp:
        raise ProtocolError("bad_field", "`sdp` must not be empty.")
    return sdp


class SignalingSession:
    """One participant's socket, from the first frame to the close (PROTOCOL.md's state machine)."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        *,
        huddle_id: str,
        open_room: Callable[[], Room],
        ended_reason: Callable[[], str | None],
        max_participants: int,
        counters: SignalingCounters,
        peer: str,
        role: CallRole = "participant",
        seat: str = "",
        check_passcode: Callable[[object], None] | None = None,
    ) -> None:
        self._ws = ws
        #: Raises :class:`ProtocolError` unless the ``join``'s ``passcode`` field lets them in
        #: (None: the huddle has no passcode, or this link is a host's).
        self._check_passcode = check_passcode
        #: Set while they are in the waiting room.
        self._waiter: Waiter | None = None
        #: From the signed join link: what this person is when they join.
        self._role: CallRole = role
        self._seat = seat
        self._huddle_id = huddle_id
        self._open_room = open_room
        self._ended_reason = ended_reason
        self._max_participants = max_participants
        self._counters = counters
        self._label = f"huddle={huddle_id} peer={peer}"
        self._connection = SocketConnection(ws, self._label)
        self._limiter = RateLimiter(RATE_LIMIT_PER_SECOND)
        self._limited_logged = False
        self._room: Room | None = None
        self._participant: Participant | None = None
        #: Why the session is over, once it is (set by `leave`, a fatal error or an ended huddle).
        self._done: str | None = None
        #: The pre-join connectivity check's peer connection, while it lasts (``check``).
        self._check_pc: RTCPeerConnection | None = None
        self._check_timer: asyncio.TimerHandle | None = None
        self._check_tasks: set[asyncio.Task[None]] = set()
        self._checks = 0

    @property
    def huddle_id(self) -> str:
        """The huddle this socket was admitted to."""
        return self._huddle_id

    @property
    def joined(self) -> bool:
        """True once ``join`` succeeded (the room then owns ending this session)."""
        return self._participant is not None

    def end(self, reason: str) -> None:
        """Send ``ended`` and close: for sockets that connected but never joined."""
        self._connection.send({"type": "ended", "reason": reason})
        self._connection.close()

    async def wait_closed(self) -> None:
        """Wait until the socket is flushed and closed."""
        await self._connection.closed()

    async def run(self) -> None:
        """Read frames until the client leaves, the socket drops or the huddle ends."""
        self._counters.connections += 1
        log.info("signaling_open %s", self._label)
        why = "socket closed"
        try:
            async for frame in self._ws:
                if frame.type == WSMsgType.TEXT:
                    await self._on_frame(frame.data)
                elif frame.type == WSMsgType.BINARY:
                    if self._admit_rate():
                        self._error("bad_json", "Binary frames are not accepted; send JSON text.")
                else:
                    why = f"socket {frame.type.name.lower()}"
                    break
                if self._done is not None:
                    why = self._done
                    break
        except Exception:
            # Logged here with its context; only this socket goes, never the server.
            why = "server error"
            log.exception("signaling_failed %s", self._label)
        finally:
            self._counters.connections -= 1
            self._close_check()
            if self._room is not None and self._participant is None and self._waiter is None:
                self._room.forget_if_empty()  # opened for a check only
            participant = self._participant
            if self._room is not None and participant is not None:
                mine = participant.connection in (self._connection, DETACHED)
                # A tab closed (or a client done) closes cleanly; a dropped network or a client
                # about to resume does not: they may come back with `resume`.
                dropped = self._ws.close_code not in CLEAN_CLOSE_CODES
                if not mine:
                    pass  # a resume on another socket holds their place now
                elif self._done is None and dropped and participant.ready:
                    self._room.suspend(participant, why)
                else:
                    await self._room.remove(participant, why)
            elif self._room is not None and self._waiter is not None:
                self._room.drop_waiter(self._waiter)
            await self._connection.closed()
            log.info("signaling_closed %s why=%s", self._label, why)

    # -- frames --------------------------------------------------------------------------------

    def _admit_rate(self) -> bool:
        if self._limiter.allow():
            self._limited_logged = False
            return True
        if not self._limited_logged:
            # One log line per flood, not one per refused frame.
            self._limited_logged = True
            log.warning("signaling_rate_limited %s", self._label)
        self._error(
            "rate_limited",
            f"Too many messages: at most {RATE_LIMIT_PER_SECOND} per second. This one was dropped.",
            quiet=True,
        )
        return False

    async def _on_frame(self, text: str) -> None:
        if not self._admit_rate():
            return
        limit = self._size_limit()
        if len(text) > limit or len(text.encode()) > limit:
            self._error("too_large", f"Messages must be at most {limit} bytes.")
            return
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested too deep
            self._error("bad_json", "The message is not valid JSON.")
            return
        if not isinstance(data, dict):
            self._error("bad_json", "The message must be a JSON object.")
            return
        kind = data.get("type")
        if not isinstance(kind, str) or kind not in CLIENT_TYPES:
            # Echo at most a little of what was sent: the reply must stay small.
            shown = repr(kind)[:40]
            self._error(
                "unknown_type", f"Unknown message type {shown}; expected one of {EXPECTED}."
            )
            return
        try:
            await self._dispatch(kind, data)
        except ProtocolError as exc:
            if exc.fatal and self._done is None:
                self._done = exc.code  # a fatal error ends the session: the socket closes
            self._error(exc.code, str(exc), fatal=exc.fatal)
        except Exception:
            log.exception("signaling_handler_failed %s type=%s", self._label, kind)
            self._error("bad_state", f"The server could not handle this `{kind}` message.")

    def _size_limit(self) -> int:
        participant = self._participant
        if participant is None or not participant.offer_outstanding or participant.pc is None:
            return MAX_MESSAGE_BYTES
        return MAX_MESSAGE_BYTES + SDP_BYTES_PER_MLINE * len(participant.pc.getTransceivers())

    async def _dispatch(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "ping":
            self._connection.send({"type": "pong"})
            return
        if kind == "join":
            self._join(_display_name(data), data.get("passcode"))
            return
        if kind == "resume":
            await self._resume(_field_str(data, "token"))
            return
        if kind == "check":
            await self._check(_sdp(data))
            return
        if kind == "leave":
            self._done = "left"
            return
        room, participant = self._room, self._participant
        if room is None or participant is None:
            if self._waiter is not None:
                raise ProtocolError(
                    "bad_state", "You are in the waiting room: a host will let you in."
                )
            raise ProtocolError("bad_state", f"Send `join` before `{kind}`.")
        if kind in HOST_TYPES:
            hosting.handle(room, participant, kind, data)
        elif kind == "offer":
            await room.publish(participant, _sdp(data))
        elif kind == "answer":
            sdp = _sdp(data)
            await room.accept_answer(participant, sdp)
        elif kind == "state":
            audio, video = _field_bool(data, "audio"), _field_bool(data, "video")
            room.update_state(participant, audio=audio, video=video)
        elif kind == "chat":
            text = _field_str(data, "text").strip()
            if not 1 <= len(text) <= MAX_CHAT:
                raise ProtocolError("bad_field", f"A chat message is 1 to {MAX_CHAT} characters.")
            room.post_chat(participant, text)
        elif kind == "hand":
            room.raise_hand(participant, _field_bool(data, "raised"))
        elif kind == "view":
            room.set_view(participant, _view(data))
        elif kind == "share":
            on = _field_bool(data, "on")
            audio = data.get("audio", False)
            if not isinstance(audio, bool):
                raise ProtocolError("bad_field", "`audio` must be true or false.")
            await room.share(participant, on, audio=audio)
        elif kind == "react":
            emoji = data.get("emoji")
            if not isinstance(emoji, str) or emoji not in REACTIONS:
                shown = " ".join(sorted(REACTIONS))
                raise ProtocolError("bad_field", f"`emoji` must be one of {shown}.")
            room.react(participant, emoji)
        elif kind == "notes-update":
            encoded = _field_str(data, "update")
            try:
                update = base64.b64decode(encoded, validate=True)
            except ValueError as exc:
                raise ProtocolError("bad_field", "`update` must be base64.") from exc
            room.merge_notes(participant, update)
        elif kind == "notes":
            text = _field_str(data, "text")
            if len(text) > MAX_NOTES:
                raise ProtocolError("bad_field", f"Notes are limited to {MAX_NOTES} characters.")
            room.update_notes(participant, text)

    def _not_yet_in(self, refusal: str) -> bool:
        """Before joining (else ``bad_state`` with ``refusal``); False if the huddle has ended
        (the client was told so and the session ends)."""
        if self._participant is not None or self._waiter is not None:
            raise ProtocolError("bad_state", refusal)
        reason = self._ended_reason()
        if reason is None:
            return True
        self._connection.send({"type": "ended", "reason": reason})
        self._done = "huddle ended"
        return False

    def _join(self, name: str, passcode: object) -> None:
        if not self._not_yet_in(ALREADY_JOINED):
            return
        room = self._open_room()
        if self._seat and self._seat in room.removed_seats:
            self._done = "removed"
            raise ProtocolError("removed", REMOVED, fatal=True)
        if self._check_passcode is not None:
            self._check_passcode(passcode)  # a wrong code may be tried again, within limits
        waits = room.must_wait(self._role)
        if room.locked and self._role != "host" and not waits:
            self._done = "locked"
            raise ProtocolError("locked", LOCKED, fatal=True)
        # Someone may wait while the huddle is full (a host admits them once there is room);
        # the waiting room itself holds as many as the huddle.
        if len(room.waiting if waits else room.participants) >= self._max_participants:
            self._done = "huddle full"
            raise ProtocolError(
                "huddle_full",
                f"This huddle is full ({self._max_participants} people). Try again later.",
                fatal=True,
            )
        self._room = room
        if waits:
            self._waiter = room.enqueue(name, self._connection, self._role, self._seat, self._in)
            self._label = f"huddle={self._huddle_id} waiter={self._waiter.id}"
            return
        self._in(room.add(name, self._connection, self._role, self._seat))

    async def _resume(self, token: str) -> None:
        if not self._not_yet_in(ALREADY_JOINED):
            return
        room = self._open_room()
        participant = room.resumable(token) if len(token) <= MAX_TOKEN_CHARS else None
        if participant is None:
            room.forget_if_empty()  # opened for nothing
            self._done = "cannot resume"
            raise ProtocolError("cannot_resume", CANNOT_RESUME, fatal=True)
        self._room = room
        self._in(participant)
        await room.resume(participant, self._connection)

    async def _check(self, sdp: str) -> None:
        if self._checks >= MAX_CHECKS:
            raise ProtocolError(
                "rate_limited", f"At most {MAX_CHECKS} connection checks per connection."
            )
        if not self._not_yet_in("The connection check is for before joining."):
            return
        self._checks += 1
        self._close_check()
        room = self._open_room()
        self._room = room
        pc, answer = await room.answer_check(sdp)
        self._check_pc = pc
        # Long enough for ICE to try every path, TURN included; then it goes, used or not.
        self._check_timer = asyncio.get_running_loop().call_later(CHECK_SECONDS, self._close_check)
        self._connection.send({"type": "check-answer", "sdp": answer})

    def _close_check(self) -> None:
        if self._check_timer is not None:
            self._check_timer.cancel()
            self._check_timer = None
        if self._check_pc is not None:
            pc, self._check_pc = self._check_pc, None
            task = asyncio.ensure_future(pc.close())
            self._check_tasks.add(task)
            task.add_done_callback(self._check_tasks.discard)

    def _in(self, participant: Participant) -> None:
        """They are a participant now (at once, or admitted from the waiting room)."""
        self._close_check()
        self._participant = participant
        self._waiter = None
        self._label = f"huddle={self._huddle_id} participant={participant.id}"

    def _error(
        self, code: ErrorCode, message: str, *, fatal: bool = False, quiet: bool = False
    ) -> None:
        self._counters.errors += 1
        if not quiet:
            log.info("signaling_error %s code=%s message=%r", self._label, code, message)
        if fatal:
            self._connection.send(
                {"type": "error", "code": code, "message": message, "fatal": True}
            )
        else:
            self._connection.send({"type": "error", "code": code, "message": message})

"""The media core's facade: the bot core drives huddles only through :class:`MediaServer`.

It serves the join page and the web client, accepts signaling WebSockets (after checking the join
token and asking the bot's gate whether the huddle is open), keeps one :class:`media.rooms.Room` per
live huddle, and reports joins and leaves as :mod:`media.events` to its listeners.
"""

from __future__ import annotations

import asyncio
import functools
import html
import ipaddress
import itertools
import json
import logging
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from media import hosting, passcodes, tokens
from media.errors import ProtocolError
from media.events import (
    HuddleAccess,
    HuddleGate,
    MediaEvent,
    MediaListener,
    ParticipantRemoved,
    RoomChanged,
    Subscribers,
)
from media.forwarding import ForwardingStats
from media.limits import RateLimit, retry_text
from media.network import MediaNetwork
from media.rooms import RESUME_GRACE_SECONDS, Room
from media.signaling import (
    HARD_FRAME_LIMIT,
    LOCKED,
    REMOVED,
    SignalingCounters,
    SignalingSession,
)
from media.simulcast import SimulcastForwarder
from media.turn import IceServers

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).parent / "web"

#: RNNoise in an AudioWorklet (the page's noise suppression), as npm ships it.
NOISE_SUPPRESSOR = "vendor/web-noise-suppressor-0.4.1"

#: The only files /media/web/ serves: name -> (path under media/web/, content type).
STATIC_FILES = {
    "huddle.js": ("huddle.js", "text/javascript"),
    "huddle.css": ("huddle.css", "text/css"),
    "refusal.css": ("refusal.css", "text/css"),
    # Pinned releases from the npm registry, with their licences (media/web/vendor/README.md).
    "yjs.mjs": ("vendor/yjs-13.6.33.mjs", "text/javascript"),
    "noise.mjs": ("noise.mjs", "text/javascript"),
    "noise-suppressor.mjs": (f"{NOISE_SUPPRESSOR}/index.js", "text/javascript"),
    "rnnoise-worklet.js": (f"{NOISE_SUPPRESSOR}/rnnoise-worklet.js", "text/javascript"),
    "rnnoise.wasm": (f"{NOISE_SUPPRESSOR}/rnnoise.wasm", "application/wasm"),
    "rnnoise_simd.wasm": (f"{NOISE_SUPPRESSOR}/rnnoise_simd.wasm", "application/wasm"),
}

#: The join link carries the token in its query string: keep it out of Referer headers and caches.
PRIVATE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

#: Only our own files may run: no inline script, no third-party origin. 'wasm-unsafe-eval' lets the
#: page compile our own WebAssembly (the RNNoise noise filter). 'unsafe-eval' is there only
#: because browser automation (Playwright's wait_for_function) evaluates with eval(); the client
#: itself never does, and without inline scripts nobody else can put code on the page to eval.
JOIN_PAGE_CSP = (
    "default-src 'self'; connect-src 'self' ws: wss:; media-src 'self' blob: mediastream:; "
    "img-src 'self' data:; style-src 'self'; script-src 'self' 'wasm-unsafe-eval' 'unsafe-eval'; "
    "frame-ancestors 'none'"
)

#: Joins per client address: a burst (a team behind one office NAT joining the all-hands at once),
#: then one a second. Each join is a peer connection: ICE, DTLS and a room's worth of tracks.
JOIN_BURST = 60
JOIN_RATE = 1.0

#: The cookie naming a browser (its "seat"): what a host's removal bars, since everyone in a
#: channel holds the same card link. HttpOnly: page scripts never see it.
SEAT_COOKIE = "huddle_seat"
_SEAT = re.compile(r"^[A-Za-z0-9_-]{16,64}$")

#: Wrong passcodes: per address a few tries then one every 20 s; per huddle (whatever the
#: addresses: a botnet guessing one huddle's code) 30 then one every 5 s.
PASSCODE_BURST, PASSCODE_RATE = 5, 1 / 20
HUDDLE_PASSCODE_BURST, HUDDLE_PASSCODE_RATE = 30, 1 / 5

#: Seconds between WebSocket pings: a vanished client is noticed within twice this.
HEARTBEAT_SECONDS = 15.0

#: Seconds to wait for the client's half of a closing handshake (shutdown waits for it).
CLOSE_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class Admission:
    """A request let in: the huddle as the gate sees it, and what its join link says."""

    access: HuddleAccess
    claims: tokens.JoinClaims
    #: The browser's seat (its cookie; a fresh one if it had none).
    seat: str
    #: True when the seat was made for this request (the join page then sets the cookie).
    new_seat: bool = False


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class MediaStats:
    """A snapshot of the media core, for the bot's status command and the benchmark."""

    #: Huddles with at least one participant, and the participants in them.
    huddles: int
    participants: int
    #: RTP from publishers, and the copies sent to subscribers (bytes before SRTP).
    packets_received: int
    bytes_received: int
    packets_forwarded: int
    bytes_forwarded: int
    #: Copies not sent (subscriber not connected yet, codec not negotiated, ...).
    packets_dropped: int
    #: Keyframe requests (PLI) the server sent to publishers, and keyframes that came.
    keyframe_requests: int
    keyframes_received: int
    #: Packets subscribers asked again for (NACK), and how many were resent.
    nacks_received: int
    retransmits: int
    #: Simulcast: layer switches, subscriptions paused now, bytes of full layers not sent.
    layer_switches: int
    layers_paused: int
    bytes_saved: int
    #: ``error`` messages sent to clients.
    signaling_errors: int
    #: Signaling sockets open now (joined or not).
    signaling_connections: int


class MediaFront:
    """What faces people in a media core: join links, the join page, admission, the listeners.

    :class:`MediaServer` (rooms in this process) and :class:`media.workers.MediaWorkers` (rooms in
    worker processes) build on it; each answers the signaling socket its own way.
    """

    def __init__(
        self,
        *,
        secret: bytes,
        public_url: str,
        gate: HuddleGate,
        ice_servers: list[str] | None,
        clock: Callable[[], datetime] | None = None,
        turn: IceServers | None = None,
        network: MediaNetwork | None = None,
        join_limit: RateLimit | None = None,
    ) -> None:
        #: The product's clock: join links expire and events happen by it.
        self._clock = clock or _utc_now
        self._secret = secret
        self._public_url = public_url.rstrip("/")
        self._gate = gate
        #: STUN URLs: the server's own connections use them, and browsers get them.
        self._ice_servers = list(ice_servers or [])
        #: What browsers get: those STUN URLs, and TURN with credentials made per join page.
        self._client_ice = IceServers(
            stun_urls=tuple(self._ice_servers),
            turn_urls=turn.turn_urls if turn else (),
            turn_secret=turn.turn_secret if turn else b"",
        )
        self._network = network or MediaNetwork()
        #: Huddles ended through ``end_huddle``: refused even if the gate lags behind.
        self._ended: dict[str, str] = {}
        self._subscribers = Subscribers()
        self._closing = False
        #: Signaling connections per client address (loopback, a worker's front, is exempt).
        self._join_limit = join_limit or RateLimit(JOIN_BURST, JOIN_RATE)
        #: What hosts decided in calls, as soon as the rooms say so (the gate, fed by the bot,
        #: catches up): seats removed, and whether each huddle is locked now.
        self._removed: dict[str, set[str]] = {}
        self._locked: dict[str, bool] = {}
        self._lobby: dict[str, bool] = {}
        self._subscribers.add(self._note_host_decision)
        self._passcode_tries = RateLimit(PASSCODE_BURST, PASSCODE_RATE)
        self._huddle_passcode_tries = RateLimit(
            HUDDLE_PASSCODE_BURST, HUDDLE_PASSCODE_RATE, exempt_loopback=False
        )

    def add_routes(self, app: web.Application) -> None:
        """Serve the join page, the signaling socket and the web client's files on ``app``."""
        app.router.add_get("/h/{huddle_id}", self._join_page)
        app.router.add_get("/h/{huddle_id}/ws", self._signaling)
        app.router.add_get("/media/web/{file}", _static_file)

    def join_url(self, huddle_id: str, expires_at: float, role: tokens.Role = "participant") -> str:
        """The link that lets its holder into ``huddle_id`` as ``role`` until ``expires_at``."""
        token = tokens.issue(self._secret, huddle_id, expires_at, role)
        return f"{self._public_url}/h/{quote(huddle_id, safe='')}?t={token}"

    async def set_room(self, huddle_id: str, *, locked: bool, lobby: bool, by: str) -> None:
        """Lock or unlock ``huddle_id``, turn its waiting room on or off, from outside the call
        (``/meet lock``, ``/meet lobby``)."""
        self._locked[huddle_id] = locked
        self._lobby[huddle_id] = lobby

    def check_passcode(self, access: HuddleAccess, peer: str) -> Callable[[object], None] | None:
        """What checks a ``join``'s passcode for ``access`` from ``peer`` (None: no passcode)."""
        if not access.passcode:
            return None
        huddle_key = f"huddle:{access.huddle_id}"

        peer = _network_of(peer)

        def check(given: object) -> None:
            retry = max(
                self._passcode_tries.wait(peer), self._huddle_passcode_tries.wait(huddle_key)
            )
            if retry:
                raise ProtocolError(
                    "rate_limited",
                    f"Too many wrong passcodes; try again {retry_text(retry)}.",
                )
            if isinstance(given, str) and len(given) <= passcodes.MAX_LENGTH:
                if passcodes.matches(access.passcode, access.huddle_id, given):
                    return
            self._passcode_tries.spend(peer)
            self._huddle_passcode_tries.spend(huddle_key)
            log.info("passcode_wrong huddle=%s peer=%s", access.huddle_id, peer)
            if given is None or given == "":
                raise ProtocolError("bad_passcode", "This huddle needs its passcode to join.")
            raise ProtocolError("bad_passcode", "That passcode is not right. Try again.")

        return check

    async def _note_host_decision(self, event: MediaEvent) -> None:
        if isinstance(event, ParticipantRemoved) and event.seat:
            self._removed.setdefault(event.huddle_id, set()).add(event.seat)
        elif isinstance(event, RoomChanged):
            self._locked[event.huddle_id] = event.locked
            self._lobby[event.huddle_id] = event.lobby

    def subscribe(self, listener: MediaListener) -> None:
        """Call ``listener`` with every :class:`media.events.MediaEvent`, in order."""
        self._subscribers.add(listener)

    async def _admit(self, request: web.Request) -> Admission | str:
        """The huddle if the token and the gate let this request in, else the reason why not."""
        huddle_id = request.match_info["huddle_id"]
        if self._closing:
            return "The huddle server is shutting down. Try again in a minute."
        try:
            claims = tokens.verify(
                self._secret, request.query.get("t", ""), huddle_id, self._clock().timestamp()
            )
        except tokens.TokenError as exc:
            return str(exc)
        if huddle_id in self._ended:
            return f"This huddle has ended ({self._ended[huddle_id]})."
        try:
            access = await self._gate(huddle_id)
        except Exception:
            log.exception("gate_failed huddle=%s", huddle_id)
            return "The huddle could not be checked right now. Try again in a minute."
        if access is None:
            return "This huddle does not exist (or no longer does)."
        if not access.open:
            return access.closed_reason or "This huddle has ended."
        seat = request.cookies.get(SEAT_COOKIE, "")
        new_seat = not _SEAT.match(seat)
        if new_seat:
            seat = secrets.token_urlsafe(18)
        elif seat in access.removed_seats or seat in self._removed.get(huddle_id, ()):
            return REMOVED
        locked = self._locked.get(huddle_id, access.locked)
        lobby = self._lobby.get(huddle_id, access.lobby) or claims.role == "guest"
        if locked and claims.role != "host" and not lobby:
            return LOCKED
        return Admission(access, claims, seat, new_seat)

    def _join_limited(self, request: web.Request) -> web.Response | None:
        """A 429 refusal when this address has joined too often just now, else None."""
        retry = self._join_limit.take(request.remote or "?")
        if not retry:
            return None
        log.warning("join_rate_limited peer=%s retry_after=%s", request.remote, retry)
        return signaling_refusal(
            f"Too many joins from your address; try again {retry_text(retry)}.",
            request,
            status=429,
            headers={"Retry-After": str(retry)},
        )

    async def _join_page(self, request: web.Request) -> web.Response:
        # Looked at, not spent: the page says why the socket would be refused (huddle.js asks).
        retry = self._join_limit.wait(request.remote or "?")
        if retry:
            return web.Response(
                status=429,
                text=_refusal_page(
                    f"Too many joins from your address; try again {retry_text(retry)}."
                ),
                content_type="text/html",
                headers={**PRIVATE_HEADERS, "Retry-After": str(retry)},
            )
        admission = await self._admit(request)
        if isinstance(admission, str):
            log.info(
                "join_page_refused huddle=%s reason=%r", request.match_info["huddle_id"], admission
            )
            return web.Response(
                status=403,
                text=_refusal_page(admission),
                content_type="text/html",
                headers=PRIVATE_HEADERS,
            )
        access = admission.access
        config = {
            "huddleId": access.huddle_id,
            "title": access.title,
            # The page asks for the passcode (host links need none).
            "passcode": bool(access.passcode) and admission.claims.role != "host",
            # TURN credentials expire with the link the page was opened with.
            "iceServers": self._client_ice.for_client(
                admission.claims.expires_at, access.huddle_id
            ),
        }
        page = (
            _template()
            .replace("{{title}}", html.escape(access.title))
            .replace("{{config}}", json.dumps(config).replace("<", "\\u003c"))
        )
        response = web.Response(
            text=page,
            content_type="text/html",
            headers={**PRIVATE_HEADERS, "Content-Security-Policy": JOIN_PAGE_CSP},
        )
        if admission.new_seat:
            response.set_cookie(
                SEAT_COOKIE,
                admission.seat,
                path="/h/",
                httponly=True,
                # Lax, not Strict: a click on the card in Slack's or Discord's web app is a
                # cross-site navigation, which must carry the cookie or a removal is undone.
                samesite="Lax",
                secure=self._public_url.startswith("https:"),
                max_age=30 * 24 * 3600,
            )
        return response

    async def _signaling(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError


class MediaServer(MediaFront):
    """Join pages, signaling and forwarding for every huddle of one process."""

    def __init__(
        self,
        *,
        secret: bytes,
        public_url: str,
        gate: HuddleGate,
        max_participants: int = 100,
        ice_servers: list[str] | None = None,
        participant_ids: Iterator[int] | None = None,
        clock: Callable[[], datetime] | None = None,
        turn: IceServers | None = None,
        network: MediaNetwork | None = None,
        resume_grace: float = RESUME_GRACE_SECONDS,
    ) -> None:
        super().__init__(
            secret=secret,
            public_url=public_url,
            gate=gate,
            ice_servers=ice_servers,
            clock=clock,
            turn=turn,
            network=network,
        )
        self._max_participants = max_participants
        #: Seconds a participant whose connection dropped keeps their place (``resume``).
        self._resume_grace = resume_grace
        self._rooms: dict[str, Room] = {}
        self._sessions: set[SignalingSession] = set()
        self._forwarding = ForwardingStats()
        self._counters = SignalingCounters()
        #: Numbers behind participant ids ("p-7"); media.workers gives each worker its own.
        self._participant_ids = participant_ids or itertools.count(1)

    # -- the bot's side ---------------------------------------------------------------------

    async def start(self) -> None:
        """Nothing to start: everything runs in this process (``media.workers`` has more to do)."""

    async def end_huddle(self, huddle_id: str, reason: str) -> None:
        """Send ``ended`` to everyone in the huddle, close their connections, refuse new joins."""
        self._ended[huddle_id] = reason
        for session in list(self._sessions):
            if session.huddle_id == huddle_id and not session.joined:
                session.end(reason)
        room = self._rooms.pop(huddle_id, None)
        if room is not None:
            await room.end(reason)

    async def set_room(self, huddle_id: str, *, locked: bool, lobby: bool, by: str) -> None:
        """Change ``huddle_id``'s settings from outside the call; the people in it are told."""
        await super().set_room(huddle_id, locked=locked, lobby=lobby, by=by)
        room = self._rooms.get(huddle_id)
        if room is not None:
            hosting.set_locked(room, locked, by)
            hosting.set_lobby(room, lobby, by)

    def stats(self) -> MediaStats:
        """Counters since start, and who is connected now."""
        live = [room for room in self._rooms.values() if room.participants]
        forwarding = self._forwarding
        return MediaStats(
            huddles=len(live),
            participants=sum(len(room.participants) for room in live),
            packets_received=forwarding.packets_received,
            bytes_received=forwarding.bytes_received,
            packets_forwarded=forwarding.packets_forwarded,
            bytes_forwarded=forwarding.bytes_forwarded,
            packets_dropped=forwarding.packets_dropped,
            keyframe_requests=forwarding.keyframe_requests_sent,
            keyframes_received=forwarding.keyframes_received,
            nacks_received=forwarding.nacks_received,
            retransmits=forwarding.retransmits,
            layer_switches=forwarding.layer_switches,
            layers_paused=sum(
                camera.paused
                for room in live
                for participant in room.participants.values()
                if isinstance(camera := participant.taps.get("video"), SimulcastForwarder)
            ),
            bytes_saved=forwarding.bytes_saved,
            signaling_errors=self._counters.errors,
            signaling_connections=self._counters.connections,
        )

    def participants(self, huddle_id: str) -> list[tuple[str, str]]:
        """``(participant id, name)`` of everyone in the huddle now, in joining order."""
        room = self._rooms.get(huddle_id)
        if room is None:
            return []
        return [(p.id, p.name) for p in room.participants.values()]

    async def close(self) -> None:
        """Shut down: ``ended`` to everyone ("server shutting down"), close every connection."""
        self._closing = True
        reason = "server shutting down"
        for session in list(self._sessions):
            if not session.joined:
                session.end(reason)
        rooms = list(self._rooms.values())
        self._rooms.clear()
        await asyncio.gather(*(room.end(reason) for room in rooms), return_exceptions=True)
        await asyncio.gather(*(s.wait_closed() for s in list(self._sessions)))
        await self._subscribers.close()

    # -- HTTP -------------------------------------------------------------------------------

    async def _signaling(self, request: web.Request) -> web.StreamResponse:
        limited = self._join_limited(request)
        if limited is not None:
            return limited
        admission = await self._admit(request)
        if isinstance(admission, str):
            return signaling_refusal(admission, request)
        access = admission.access
        ws = web.WebSocketResponse(
            max_msg_size=HARD_FRAME_LIMIT,
            heartbeat=HEARTBEAT_SECONDS,
            timeout=CLOSE_TIMEOUT_SECONDS,
        )
        await ws.prepare(request)
        huddle_id = access.huddle_id
        session = SignalingSession(
            ws,
            huddle_id=huddle_id,
            open_room=lambda: self._room(access),
            ended_reason=lambda: self._ended.get(huddle_id),
            max_participants=self._max_participants,
            counters=self._counters,
            peer=request.remote or "?",
            role=admission.claims.role,
            seat=admission.seat,
            check_passcode=(
                None
                if admission.claims.role == "host"
                else self.check_passcode(access, request.remote or "?")
            ),
        )
        self._sessions.add(session)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)
        return ws

    # -- rooms and events -------------------------------------------------------------------

    def _room(self, access: HuddleAccess) -> Room:
        room = self._rooms.get(access.huddle_id)
        if room is None:
            room = Room(
                access.huddle_id,
                access.title,
                stats=self._forwarding,
                ice_servers=self._ice_servers,
                network=self._network,
                emit=self._subscribers.emit,
                clock=self._clock,
                on_empty=self._forget_room,
                ids=self._participant_ids,
                notes=access.notes,
                locked=self._locked.get(access.huddle_id, access.locked),
                lobby=self._lobby.get(access.huddle_id, access.lobby),
                max_participants=self._max_participants,
                chat_to_notes=access.chat_to_notes,
                resume_grace=self._resume_grace,
            )
            room.removed_seats |= access.removed_seats | self._removed.get(access.huddle_id, set())
            self._rooms[access.huddle_id] = room
            log.info("huddle_opened huddle=%s", access.huddle_id)
        return room

    def _forget_room(self, room: Room) -> None:
        if self._rooms.get(room.id) is room:
            del self._rooms[room.id]
            log.info("huddle_empty huddle=%s", room.id)


# -- helpers of MediaFront and its subclasses --------------------------------------------------


def _network_of(address: str) -> str:
    """The key of an address for per-address limits: an IPv6 host has a whole /64 to itself."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if ip.version == 6 and not ip.is_loopback:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def signaling_refusal(
    reason: str,
    request: web.Request,
    status: int = 403,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """A signaling socket refused before the upgrade, with ``reason`` as plain text."""
    log.info("signaling_refused huddle=%s reason=%r", request.match_info["huddle_id"], reason)
    return web.Response(status=status, text=reason, headers={**PRIVATE_HEADERS, **(headers or {})})


async def _static_file(request: web.Request) -> web.StreamResponse:
    """One of the web client's files (``STATIC_FILES``), 404 for anything else."""
    name = request.match_info["file"]
    served = STATIC_FILES.get(name)
    if served is None:
        raise web.HTTPNotFound()
    path, content_type = served
    return web.FileResponse(
        WEB_DIR / path, headers={"Content-Type": content_type, "Cache-Control": "no-cache"}
    )


@functools.cache
def _template() -> str:
    return (WEB_DIR / "join.html").read_text(encoding="utf-8")


def _refusal_page(reason: str) -> str:
    """A small page saying why the link does not work (no half-working call)."""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Cannot join this huddle</title>
<link rel="stylesheet" href="../media/web/refusal.css">
</head>
<body>
<main data-testid="refusal">
<h1>You cannot join this huddle</h1>
<p data-testid="refusal-reason">{html.escape(reason)}</p>
<p>Ask in the chat for a new link if you still want to join.</p>
</main>
</body>
</html>
"""

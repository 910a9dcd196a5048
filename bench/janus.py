"""Janus VideoRoom as a peer in ``bench/sfu.py``: its configuration, its process, its signaling.

``python -m bench.janus --core C [--event-loops N]`` writes a Janus configuration to a temporary
folder (the VideoRoom plugin and the HTTP transport only, both API and Admin API on ephemeral ports
of 127.0.0.1; one room whose publisher bitrate cap is far above the benchmark's), starts Debian's
``janus`` pinned to core C, and serves ``GET /bench/stats``: Janus's own count of RTP packets it
sent to subscribers, summed from the Admin API's ``handle_info`` of every subscriber handle. Once
ready it prints one JSON line, ``{"pid", "join_url", "stats_url", "signaling": "janus"}`` (``pid``
is Janus's, for its CPU time), and runs until SIGTERM; then it stops Janus and removes the folder.
Everything else is Janus's default; ``--event-loops N`` sets ``event_loops`` in janus.jcfg (by
default every handle gets a thread and an event loop of its own).

The participants (``bench/participants.py --signaling janus``) are the same aiortc publisher and
counting subscribers as for the other servers, speaking Janus's HTTP API instead of huddle's
WebSocket: :class:`JanusPublisher` joins the room and publishes with ``joinandconfigure`` (a JSEP
offer, Janus answers); each :class:`JanusSubscriber` joins as a subscriber to the publisher's feed
(Janus offers), answers with ``start``. Janus leaves loopback out of ICE and aioice leaves out
127.0.0.1, so media flows over the machine's own address (eth0), as for the other servers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import json
import logging
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
from aiohttp import web
from aiortc import RTCPeerConnection, RTCSessionDescription

from bench.participants import Subscriber
from bench.serve import start_app
from bench.sfu import stop_process
from media.contrib.client import HuddleClient, JoinError, SyntheticAudioTrack

#: The one room of the benchmark, and the feed id its publisher registers under.
ROOM = 1234
FEED = 1
VIDEOROOM = "janus.plugin.videoroom"
NOT_INSTALLED = "Janus is not installed: apt-get install janus (Debian's package, 1.1.x)"


@dataclass(frozen=True)
class JanusInstall:
    """Where Debian's ``janus`` package put the server and its modules."""

    binary: str
    videoroom: Path
    http_transport: Path


def find_janus() -> JanusInstall | None:
    """The installed Janus, or None (then say :data:`NOT_INSTALLED`)."""
    binary = shutil.which("janus")
    # Debian installs the modules under the multiarch library folder.
    plugins = sorted(glob.glob("/usr/lib/*/janus/plugins/libjanus_videoroom.so"))
    plugins += sorted(glob.glob("/usr/lib/janus/plugins/libjanus_videoroom.so"))
    if binary is None or not plugins:
        return None
    videoroom = Path(plugins[0])
    http_transport = videoroom.parent.parent / "transports" / "libjanus_http.so"
    if not http_transport.exists():
        return None
    return JanusInstall(binary=binary, videoroom=videoroom, http_transport=http_transport)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class JanusConfig:
    """One Janus configuration folder: janus.jcfg, the HTTP transport's and the VideoRoom's."""

    folder: Path
    api_port: int
    admin_port: int
    admin_secret: str
    #: ``event_loops`` in janus.jcfg; None keeps Janus's default (a loop per handle).
    event_loops: int | None
    #: The room's cap on publishers' video bitrate (Janus tells publishers with REMB).
    room_bitrate: int

    @property
    def api_url(self) -> str:
        """The Janus API over HTTP."""
        return f"http://127.0.0.1:{self.api_port}/janus"

    @property
    def admin_url(self) -> str:
        """The Admin API over HTTP."""
        return f"http://127.0.0.1:{self.admin_port}/admin"

    def write(self, install: JanusInstall) -> Path:
        """Write the configuration into :attr:`folder`; the path of janus.jcfg.

        Janus loads every module in its plugin and transport folders, so those are folders of
        their own holding links to the VideoRoom plugin and the HTTP transport only (no
        WebSockets, no other plugins); event handlers and loggers get an empty folder.
        """
        plugins, transports, empty = (
            self.folder / name for name in ("plugins", "transports", "empty")
        )
        for folder in (plugins, transports, empty):
            folder.mkdir(parents=True, exist_ok=True)
        (plugins / install.videoroom.name).symlink_to(install.videoroom)
        (transports / install.http_transport.name).symlink_to(install.http_transport)
        event_loops = "" if self.event_loops is None else f"\tevent_loops = {self.event_loops}\n"
        (self.folder / "janus.jcfg").write_text(
            "general: {\n"
            f'\tconfigs_folder = "{self.folder}"\n'
            f'\tplugins_folder = "{plugins}"\n'
            f'\ttransports_folder = "{transports}"\n'
            f'\tevents_folder = "{empty}"\n'
            f'\tloggers_folder = "{empty}"\n'
            "\tdebug_level = 4\n"
            "\tdebug_colors = false\n"
            f'\tadmin_secret = "{self.admin_secret}"\n'
            f"{event_loops}"
            "}\n"
            "certificates: {\n}\n"
            "media: {\n}\n"
            # Debian's default ignores interfaces named vmnet*; ignore none (Janus skips
            # loopback on its own).
            'nat: {\n\tnice_debug = false\n\tice_ignore_list = ""\n}\n'
            "plugins: {\n}\n"
            "transports: {\n}\n"
            "loggers: {\n}\n"
            "events: {\n}\n"
        )
        (self.folder / "janus.transport.http.jcfg").write_text(
            "general: {\n"
            '\tbase_path = "/janus"\n'
            "\thttp = true\n"
            f"\tport = {self.api_port}\n"
            '\tip = "127.0.0.1"\n'
            "\thttps = false\n"
            "}\n"
            "admin: {\n"
            '\tadmin_base_path = "/admin"\n'
            "\tadmin_http = true\n"
            f"\tadmin_port = {self.admin_port}\n"
            '\tadmin_ip = "127.0.0.1"\n'
            "\tadmin_https = false\n"
            "}\n"
            "cors: {\n}\n"
        )
        (self.folder / "janus.plugin.videoroom.jcfg").write_text(
            "general: {\n}\n"
            f"room-{ROOM}: {{\n"
            '\tdescription = "bench"\n'
            f"\tbitrate = {self.room_bitrate}\n"
            "}\n"
        )
        return self.folder / "janus.jcfg"


# -- the Admin API: Janus's own packet counts -----------------------------------------------------


async def _admin(
    http: aiohttp.ClientSession, url: str, request: str, secret: str
) -> dict[str, Any]:
    body = {"janus": request, "transaction": secrets.token_hex(6), "admin_secret": secret}
    async with http.post(url, json=body) as response:
        reply: dict[str, Any] = await response.json(content_type=None)
    if reply.get("janus") != "success":
        raise RuntimeError(f"Janus Admin API {request}: {reply.get('error', reply)}")
    return reply


def outgoing_packets(info: dict[str, Any]) -> int:
    """RTP packets Janus sent on one handle (``handle_info``'s ``info``), all media together.

    Janus 1.x keeps them per m-line, in ``webrtc.media.<index>.stats.out.packets`` (DTLS
    packets are counted apart, under ``webrtc.dtls``).
    """
    media = info.get("webrtc", {}).get("media", {})
    return sum(int(m.get("stats", {}).get("out", {}).get("packets", 0)) for m in media.values())


class ForwardedPackets:
    """Janus's count of RTP packets sent to the VideoRoom's subscribers, by its Admin API.

    The Admin API has no total: it takes ``handle_info`` on every subscriber handle. That costs
    Janus some CPU (~10-30 ms for 64 subscribers; the count at the end of a measured window falls
    inside it, ~1% of Janus's CPU there), so the handles are listed again only when the set of
    sessions changed.
    """

    def __init__(self, http: aiohttp.ClientSession, config: JanusConfig) -> None:
        self._http = http
        self._url = config.admin_url
        self._secret = config.admin_secret
        self._sessions: list[int] = []
        self._handles: list[str] = []

    async def count(self) -> int:
        """The packets sent so far, all subscribers and media together."""
        listed = await _admin(self._http, self._url, "list_sessions", self._secret)
        sessions = sorted(listed["sessions"])
        if sessions != self._sessions:
            self._sessions, self._handles = sessions, []
            for session in sessions:
                url = f"{self._url}/{session}"
                handles = await _admin(self._http, url, "list_handles", self._secret)
                self._handles += [f"{url}/{handle}" for handle in handles["handles"]]
        # All at once: the counts are read close together, near the moment the caller gets the
        # total (one by one, the first would be older than the last by the whole round trip).
        replies = await asyncio.gather(
            *(_admin(self._http, url, "handle_info", self._secret) for url in self._handles)
        )
        return sum(
            outgoing_packets(reply["info"])
            for reply in replies
            if reply["info"].get("plugin_specific", {}).get("type") == "subscriber"
        )


# -- the server process -------------------------------------------------------------------------


async def _wait_ready(
    http: aiohttp.ClientSession, config: JanusConfig, janus: subprocess.Popen[bytes]
) -> None:
    """Until Janus answers on both APIs (its process still running)."""
    for _ in range(200):
        if janus.poll() is not None:
            raise RuntimeError(f"janus exited with status {janus.returncode}")
        with contextlib.suppress(aiohttp.ClientError, RuntimeError):
            async with http.get(f"{config.api_url}/info") as response:
                if response.status == 200:
                    await _admin(http, config.admin_url, "list_sessions", config.admin_secret)
                    return
        await asyncio.sleep(0.05)
    raise RuntimeError("janus did not answer within 10 s")


def start_janus(
    install: JanusInstall, config: JanusConfig, core: int | None
) -> subprocess.Popen[bytes]:
    """Write ``config`` and start Janus on it, pinned to ``core``; it logs into our stderr."""
    jcfg = config.write(install)
    command = [install.binary, "-C", str(jcfg), "-F", str(config.folder)]
    if core is not None:
        # taskset execs Janus: every thread it starts runs on this core.
        command = ["taskset", "-c", str(core), *command]
    return subprocess.Popen(command, stdout=sys.stderr, stderr=sys.stderr)


async def _serve_stats(config: JanusConfig, janus: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as http:
        await _wait_ready(http, config, janus)
        forwarded = ForwardedPackets(http, config)

        async def stats(_request: web.Request) -> web.Response:
            return web.json_response({"packets_forwarded": await forwarded.count()})

        app = web.Application()
        app.router.add_get("/bench/stats", stats)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        runner, stop = await start_app(app, sock)
        ready = {
            "pid": janus.pid,
            "join_url": JanusRoom(config.api_url, ROOM, FEED).join_url(),
            "stats_url": f"http://127.0.0.1:{sock.getsockname()[1]}/bench/stats",
            "signaling": "janus",
        }
        print(json.dumps(ready), flush=True)
        await stop.wait()
        await runner.cleanup()


# -- signaling: the Janus API over HTTP -----------------------------------------------------------


@dataclass(frozen=True)
class JanusRoom:
    """A VideoRoom to join, and the publisher's feed, as one URL the bench passes around."""

    api_url: str
    room: int
    feed: int

    def join_url(self) -> str:
        """``http://127.0.0.1:PORT/janus?room=ROOM&feed=FEED``."""
        return f"{self.api_url}?{urlencode({'room': self.room, 'feed': self.feed})}"

    @classmethod
    def parse(cls, join_url: str) -> JanusRoom:
        """The room a :meth:`join_url` names."""
        parts = urlsplit(join_url)
        query = parse_qs(parts.query)
        api_url = f"{parts.scheme}://{parts.netloc}{parts.path}"
        return cls(api_url=api_url, room=int(query["room"][0]), feed=int(query["feed"][0]))


class JanusError(JoinError):
    """Janus refused a request; ``str(error)`` has its reason."""


@dataclass(frozen=True)
class PluginEvent:
    """The VideoRoom's reply to one request: its data and the JSEP (SDP) that came with it."""

    data: dict[str, Any]
    jsep: dict[str, Any] | None


class JanusHandle:
    """One Janus session with one VideoRoom handle, as janus.js keeps it: requests by POST, and
    the session's events by long poll, in a task, for as long as the handle is open."""

    def __init__(
        self, http: aiohttp.ClientSession, api_url: str, session_id: int, handle_id: int
    ) -> None:
        self._http = http
        self._session_url = f"{api_url}/{session_id}"
        self.handle_id = handle_id
        #: Every event the session's long poll returned, in order.
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._poller = asyncio.ensure_future(self._poll())

    @classmethod
    async def open(cls, api_url: str) -> JanusHandle:
        """Create a session and attach it to the VideoRoom plugin."""
        http = aiohttp.ClientSession()
        try:
            created = await _post(http, api_url, {"janus": "create"})
            session_id = int(created["data"]["id"])
            attached = await _post(
                http, f"{api_url}/{session_id}", {"janus": "attach", "plugin": VIDEOROOM}
            )
        except BaseException:
            await http.close()
            raise
        return cls(http, api_url, session_id, int(attached["data"]["id"]))

    async def request(
        self, body: dict[str, Any], jsep: dict[str, Any] | None = None, within: float = 30.0
    ) -> PluginEvent:
        """Send ``body`` (and ``jsep``) to the VideoRoom; its reply, sync or async."""
        message: dict[str, Any] = {"janus": "message", "body": body}
        if jsep is not None:
            message["jsep"] = jsep
        reply = await _post(self._http, f"{self._session_url}/{self.handle_id}", message)
        if reply["janus"] == "ack":  # asynchronous: the event comes by long poll
            transaction = reply["transaction"]
            reply = await self.wait_for(
                lambda event: event.get("transaction") == transaction, within=within
            )
        data = reply.get("plugindata", {}).get("data", {})
        if "error" in data:
            raise JanusError(f"VideoRoom {body.get('request')}: {data['error']}")
        return PluginEvent(data=data, jsep=reply.get("jsep"))

    async def wait_for(
        self, match: Callable[[dict[str, Any]], bool], within: float = 30.0
    ) -> dict[str, Any]:
        """The first event (seen so far or yet to come) that ``match``es."""
        async with asyncio.timeout(within):
            while True:
                for event in self.events:
                    if match(event):
                        return event
                self._changed.clear()
                await self._changed.wait()

    async def _poll(self) -> None:
        while True:
            try:
                async with self._http.get(self._session_url, params={"maxev": "10"}) as response:
                    payload = await response.json(content_type=None)
            except (aiohttp.ClientError, json.JSONDecodeError):
                await asyncio.sleep(0.2)
                continue
            self.events += payload if isinstance(payload, list) else [payload]
            self._changed.set()

    async def close(self) -> None:
        """Stop polling and drop the session's HTTP connections (Janus times the session out)."""
        self._poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._poller
        await self._http.close()


async def _post(http: aiohttp.ClientSession, url: str, message: dict[str, Any]) -> dict[str, Any]:
    message["transaction"] = secrets.token_hex(6)
    async with http.post(url, json=message) as response:
        reply: dict[str, Any] = await response.json(content_type=None)
    if reply.get("janus") == "error":
        raise JanusError(f"Janus {message['janus']}: {reply['error'].get('reason')}")
    return reply


async def _hang_up(janus: JanusHandle | None, pc: RTCPeerConnection) -> None:
    if janus is not None:
        await janus.close()
    await pc.close()


def _jsep(description: RTCSessionDescription) -> dict[str, Any]:
    # aiortc puts every candidate in the SDP: nothing will be trickled.
    return {"type": description.type, "sdp": description.sdp, "trickle": False}


class JanusPublisher(HuddleClient):
    """The benchmark's publisher, publishing in a Janus VideoRoom instead of a huddle.

    Built like the huddle publisher (tracks added before :meth:`join` are published, and the
    client's Opus tone with ``publish_audio``); it registers as the room's feed :attr:`FEED`.
    """

    janus: JanusHandle | None = None

    async def join(self, within: float = 10.0) -> None:
        """Join the room and publish; return once Janus reports the PeerConnection up."""
        room = JanusRoom.parse(self.join_url)
        self.janus = handle = await JanusHandle.open(room.api_url)
        if self._publish_audio:
            self.pc.addTransceiver(SyntheticAudioTrack(), direction="sendonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        joined = await handle.request(
            {
                "request": "joinandconfigure",
                "ptype": "publisher",
                "room": room.room,
                "id": room.feed,
                "display": self.name,
            },
            jsep=_jsep(self.pc.localDescription),
            within=within,
        )
        if joined.jsep is None:
            raise JanusError(f"VideoRoom joinandconfigure: no answer in {joined.data}")
        await self.pc.setRemoteDescription(RTCSessionDescription(joined.jsep["sdp"], "answer"))
        self.you = {"id": str(room.feed), "name": self.name}
        # Subscribers can only subscribe to an active publisher.
        await handle.wait_for(lambda event: event.get("janus") == "webrtcup", within=within)

    async def close(self) -> None:
        """Drop the session and close the peer connection."""
        await _hang_up(self.janus, self.pc)


class JanusSubscriber(Subscriber):
    """A counting :class:`~bench.participants.Subscriber` of the Janus room's publisher."""

    janus: JanusHandle | None = None

    async def join(self, within: float = 10.0) -> None:
        """Subscribe to the publisher's feed, answer Janus's offer, return once started."""
        room = JanusRoom.parse(self.join_url)
        self.janus = handle = await JanusHandle.open(room.api_url)
        attached = await handle.request(
            {
                "request": "join",
                "ptype": "subscriber",
                "room": room.room,
                "streams": [{"feed": room.feed}],
            },
            within=within,
        )
        if attached.jsep is None:
            raise JanusError(f"VideoRoom join as subscriber: no offer in {attached.data}")
        # What each mid carries, as huddle's `streams` message says it (the counters use it).
        self.streams = {
            stream["mid"]: {
                "mid": stream["mid"],
                "participant": str(stream["feed_id"]),
                "kind": stream["type"],
            }
            for stream in attached.data.get("streams", [])
        }
        await self.pc.setRemoteDescription(RTCSessionDescription(attached.jsep["sdp"], "offer"))
        self._instrument()
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await handle.request(
            {"request": "start"}, jsep=_jsep(self.pc.localDescription), within=within
        )

    async def close(self) -> None:
        """Drop the session and close the peer connection."""
        await _hang_up(self.janus, self.pc)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--core", type=int, help="pin Janus (all its threads) to one CPU")
    parser.add_argument(
        "--event-loops", type=int, help="event_loops in janus.jcfg (default: unset)"
    )
    parser.add_argument("--bitrate", type=int, default=1_000_000, help="the publisher's bit/s")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    install = find_janus()
    if install is None:
        parser.exit(2, NOT_INSTALLED + "\n")
    # SIGTERM before the stats endpoint is up still stops Janus (the finally below).
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(1))
    with tempfile.TemporaryDirectory(prefix="bench-janus-") as folder:
        config = JanusConfig(
            folder=Path(folder),
            api_port=_free_port(),
            admin_port=_free_port(),
            admin_secret=secrets.token_hex(12),
            event_loops=args.event_loops,
            # Far above what the publisher sends: Janus's default room caps it at 128 kbit/s.
            room_bitrate=max(2_000_000, 2 * args.bitrate),
        )
        janus = start_janus(install, config, args.core)
        try:
            asyncio.run(_serve_stats(config, janus))
        finally:
            stop_process(janus)  # Janus shuts down cleanly on SIGTERM


if __name__ == "__main__":
    main()

"""The server under test, in its own process: huddle's MediaServer or the MediaRelay baseline.

``python -m bench.serve --server huddle|relay`` listens on an ephemeral port of 127.0.0.1, admits
everyone to every huddle, serves ``GET /bench/stats`` (the server's own count of packets sent to
subscribers) and prints one JSON line, ``{"pid", "join_url", "stats_url", "join_urls"}``, once it is
ready (``join_urls``: a link per huddle of ``--huddles``). It runs until SIGTERM. ``bench/sfu.py``
starts it pinned to one core and reads its CPU time from /proc; ``bench/join.py`` unpinned.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Protocol

from aiohttp import web

from bench.synthetic import pin_vp8_bitrate
from media.events import HuddleAccess

HUDDLE_ID = "bench"


class ServerUnderTest(Protocol):
    """What the bench needs of either server."""

    def add_routes(self, app: web.Application) -> None: ...

    def join_url(self, huddle_id: str, expires_at: float) -> str: ...

    async def close(self) -> None: ...


async def _open_gate(huddle_id: str) -> HuddleAccess:
    return HuddleAccess(huddle_id=huddle_id, title="benchmark", open=True)


def _build(kind: str, public_url: str, bitrate: int) -> tuple[ServerUnderTest, Callable[[], int]]:
    """The server and a function returning its forwarded-packet count."""
    if kind == "huddle":
        from media.server import MediaServer

        media = MediaServer(
            secret=os.urandom(32), public_url=public_url, gate=_open_gate, max_participants=1000
        )
        return media, lambda: media.stats().packets_forwarded
    from bench.relay_server import RelayServer

    # The relay re-encodes for each subscriber at the publisher's rate, not at aiortc's default.
    pin_vp8_bitrate(bitrate)
    relay = RelayServer(public_url=public_url)
    return relay, lambda: relay.stats()["packets_forwarded"]


async def start_app(
    app: web.Application, sock: socket.socket
) -> tuple[web.AppRunner, asyncio.Event]:
    """Serve ``app`` on ``sock``; the event is set on SIGTERM or SIGINT (then clean up)."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return runner, stop


async def serve(kind: str, bitrate: int, huddles: tuple[str, ...] = (HUDDLE_ID,)) -> None:
    """Run the server until SIGTERM or SIGINT."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    public_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server, packets_forwarded = _build(kind, public_url, bitrate)

    async def stats(_request: web.Request) -> web.Response:
        return web.json_response({"packets_forwarded": packets_forwarded()})

    app = web.Application()
    server.add_routes(app)
    app.router.add_get("/bench/stats", stats)
    runner, stop = await start_app(app, sock)
    # As `huddle serve` and its media workers do after start-up (adapters/server.py).
    gc.collect()
    gc.freeze()
    expires = time.time() + 3600
    ready = {
        "pid": os.getpid(),
        "join_url": server.join_url(HUDDLE_ID, expires),
        "stats_url": f"{public_url}/bench/stats",
        "join_urls": {huddle: server.join_url(huddle, expires) for huddle in huddles},
    }
    print(json.dumps(ready), flush=True)
    await stop.wait()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(server.close(), timeout=5.0)
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("huddle", "relay"), required=True)
    parser.add_argument("--bitrate", type=int, default=1_000_000, help="relay re-encode bit/s")
    parser.add_argument("--core", type=int, help="pin this process (and its threads) to one CPU")
    parser.add_argument(
        "--huddles", default=HUDDLE_ID, help="comma-separated huddle ids to print join links for"
    )
    args = parser.parse_args(argv)
    if args.core is not None:
        # First thing: threads started later (aiortc's, the executor's) inherit the pinning.
        os.sched_setaffinity(0, {args.core})
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(serve(args.server, args.bitrate, tuple(args.huddles.split(","))))


if __name__ == "__main__":
    main()

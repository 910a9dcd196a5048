"""A tiny aiohttp app around a real MediaServer and a fake gate, on an ephemeral 127.0.0.1 port."""

from __future__ import annotations

import gc
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from media.events import HuddleAccess, MediaEvent
from media.server import MediaServer

SECRET = b"test-secret-0123456789abcdef0123"


@dataclass
class FakeGate:
    """The bot's side of admission: a dict of huddles, editable by the test."""

    huddles: dict[str, HuddleAccess] = field(default_factory=dict)
    calls: int = 0

    def open(self, huddle_id: str, title: str = "Standup") -> None:
        self.huddles[huddle_id] = HuddleAccess(huddle_id, title, open=True)

    def close(self, huddle_id: str, reason: str) -> None:
        self.huddles[huddle_id] = HuddleAccess(
            huddle_id, self.huddles[huddle_id].title, open=False, closed_reason=reason
        )

    async def __call__(self, huddle_id: str) -> HuddleAccess | None:
        self.calls += 1
        return self.huddles.get(huddle_id)


@dataclass
class MediaApp:
    """What a test needs: the server, its gate, its URL, and the events it emitted."""

    server: MediaServer
    gate: FakeGate
    base_url: str
    events: list[MediaEvent]

    def join_url(self, huddle_id: str = "h1", ttl: float = 600.0) -> str:
        return self.server.join_url(huddle_id, time.time() + ttl)

    async def get(self, url: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status, await response.text()


@asynccontextmanager
async def media_app(**server_options: Any) -> AsyncIterator[MediaApp]:
    """Run a MediaServer with huddle ``h1`` ("Standup") open; close everything afterwards."""
    # Bind first: the server's public URL must carry the port.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    gate = FakeGate()
    gate.open("h1")
    server = MediaServer(secret=SECRET, public_url=base_url, gate=gate, **server_options)
    events: list[MediaEvent] = []

    async def listener(event: MediaEvent) -> None:
        events.append(event)

    server.subscribe(listener)
    app = web.Application()
    server.add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    try:
        yield MediaApp(server=server, gate=gate, base_url=base_url, events=events)
    finally:
        await server.close()
        await runner.cleanup()
        # aiortc leaves its objects in reference cycles; freeing one test's worth of peers in a
        # later test's full collection stalls that test's event loop for hundreds of ms.
        gc.collect()

"""A real `huddle serve` stack in the test's event loop, on a real 127.0.0.1 port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from aiohttp import web

from adapters.server import Huddle, build
from bot.config import Settings
from bot.types import Clock
from media import tokens
from tests.conftest import free_port


@dataclass
class RunningHuddle:
    """The server's parts plus an HTTP client pointed at it."""

    parts: Huddle
    url: str
    http: aiohttp.ClientSession

    async def say(self, channel: str, user: str, text: str, **extra: Any) -> dict[str, Any]:
        """Type ``text`` as ``user`` in a web chat channel; return the JSON answer (must be 200)."""
        async with self.http.post(
            f"{self.url}/api/chat/{channel}/messages", json={"user": user, "text": text, **extra}
        ) as response:
            body: dict[str, Any] = await response.json()
            assert response.status == 200, body
            return body

    async def history(self, channel: str, user: str = "") -> list[dict[str, Any]]:
        """What ``user`` sees in the channel."""
        async with self.http.get(
            f"{self.url}/api/chat/{channel}/messages", params={"user": user}
        ) as response:
            assert response.status == 200
            posts: list[dict[str, Any]] = (await response.json())["posts"]
            return posts


@asynccontextmanager
async def running_huddle(
    data_dir: Path,
    clock: Clock | None = None,
    *,
    routes: Callable[[web.Application], None] | None = None,
    **overrides: Any,
) -> AsyncIterator[RunningHuddle]:
    """Start the whole product (web chat, core, media server) and stop it afterwards.

    ``clock`` is the product's clock (:class:`tests.clock.ShiftedClock` for a fixed instant);
    ``routes`` may add test-only routes (probes) to the app before it starts.
    """
    port = free_port()
    settings = Settings(host="127.0.0.1", port=port, data_dir=data_dir, **overrides)
    parts = await build(settings, clock=clock)
    if routes is not None:
        routes(parts.app)
    runner = web.AppRunner(parts.app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as http:
            yield RunningHuddle(parts=parts, url=settings.public_url, http=http)
    finally:
        await runner.cleanup()


def link_role(url: str) -> str:
    """The role a join link's signed token gives (read, not verified: the server verifies)."""
    body = parse_qs(urlsplit(url).query)["t"][0].split(".")[0]
    parts = tokens._unb64(body).decode().split("|")
    return parts[2] if len(parts) > 2 else "participant"

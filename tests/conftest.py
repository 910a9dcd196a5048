"""Fixtures shared by every test: a real headless Chromium (Debian's) driven by Playwright."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, async_playwright

from tests.clock import INSTANTS, ShiftedClock

#: Flags measured to work against aiortc here (../shared/research/sfu-on-aiortc.md).
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]


def chromium_path() -> str:
    """Debian's Chromium; `make test` installs it. Playwright's own download is never used."""
    path = os.environ.get("HUDDLE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        raise RuntimeError(
            f"Chromium not found at {path}: run `make test` (it installs Debian's chromium)"
        )
    return path


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A fresh headless Chromium with a fake camera and microphone."""
    async with async_playwright() as pw:
        instance = await pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            await instance.close()


async def new_media_context(browser: Browser, base_url: str) -> BrowserContext:
    """A browser profile that may use the (fake) camera and microphone on ``base_url``."""
    context = await browser.new_context(viewport={"width": 1024, "height": 720})
    await context.grant_permissions(["camera", "microphone"], origin=base_url)
    return context


@pytest.fixture(params=list(INSTANTS))
def product_clock(request: pytest.FixtureRequest) -> ShiftedClock:
    """The product's clock at each instant of :data:`tests.clock.INSTANTS` in turn."""
    return ShiftedClock(INSTANTS[request.param])


POSTGRES_ADMIN_URL = os.environ.get(
    "HUDDLE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty database on the local PostgreSQL, dropped afterwards."""
    import uuid

    import asyncpg

    name = f"huddle_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs twice: on the embedded SQLite and on the local PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/huddle.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


def free_port() -> int:
    """A port nobody listens on right now (the server binds it right after)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port

"""`huddle serve` as a real process on a test host, and browsers on other hosts joining it."""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from playwright.async_api import Browser, BrowserContext, Playwright
from yarl import URL

from tests.conftest import CHROMIUM_ARGS, free_port
from tests.net.hosts import Host
from tests.processes import terminate

#: The repository: the server process imports the same code as the test.
ROOT = Path(__file__).resolve().parents[2]


class HostedServe:
    """`huddle serve` inside ``host``, listening on every address there.

    The test reaches it at ``admin_url`` (its admin link); people are given ``public_url``.
    """

    def __init__(
        self,
        host: Host,
        data_dir: Path,
        *,
        admin_address: str,
        public_url: str | None = None,
        public_host: str | None = None,
        port: int | None = None,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.host = host
        self.data_dir = data_dir
        self.port = port or free_port()
        self.admin_url = f"http://{admin_address}:{self.port}"
        # ``public_host``: plain HTTP on that address and this port (a LAN test's public URL).
        if public_host is not None:
            public_url = f"http://{public_host}:{self.port}"
        self.public_url = public_url or self.admin_url
        self.env = {
            **os.environ,
            "HUDDLE_PUBLIC_URL": self.public_url,
            "HUDDLE_LOG_LEVEL": "INFO",
            **(env or {}),
        }
        self.args = args
        self.log_path = data_dir.parent / f"serve-{host.name}-{self.port}.log"
        self.process: asyncio.subprocess.Process | None = None
        #: Over HTTPS: the context that trusts the server's CA.
        self.ssl: ssl.SSLContext | None = None
        #: Alice's API token, made by :meth:`account` when first needed.
        self.token: str | None = None

    async def start(self, ca: Path | None = None) -> HostedServe:
        """Start and wait until /healthz answers on the admin link.

        Over HTTPS, ``ca`` is the CA to check the server with, as made by ``--tls self-signed``
        (it appears once the server has started); the certificate is checked for the name in
        the public URL, since that is what the server's certificate is for.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = await self.host.spawn(
                sys.executable,
                "-m",
                "adapters.cli",
                "serve",
                "--host",
                "0.0.0.0",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                *self.args,
                env=self.env,
                cwd=str(ROOT),
                stderr=log,
            )
        async with aiohttp.ClientSession() as http:
            for _ in range(300):  # 30 s on a loaded machine
                if ca is not None and self.ssl is None and await asyncio.to_thread(ca.exists):
                    self.ssl = ssl.create_default_context(cafile=str(ca))
                if ca is None or self.ssl is not None:
                    try:
                        async with http.get(
                            f"{self.admin_url}/healthz", **self.request_options()
                        ) as response:
                            if response.status == 200:
                                return self
                    except aiohttp.ClientConnectionError:
                        pass
                if self.process.returncode is not None:
                    break
                await asyncio.sleep(0.1)
        raise AssertionError(f"huddle serve did not start:\n{self.log()[-3000:]}")

    def request_options(self) -> dict[str, Any]:
        """What every request to the admin link needs (the CA and name over HTTPS)."""
        if self.ssl is None:
            return {}
        return {"ssl": self.ssl, "server_hostname": URL(self.public_url).host}

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    async def stop(self) -> None:
        """SIGTERM and wait (kill if it hangs)."""
        await terminate(self.process, within=20)

    @property
    def pid(self) -> int:
        """The server's own pid (``ip netns exec`` execs it, so the pid is the server's)."""
        assert self.process is not None
        return self.process.pid

    async def huddle_cli(self, *args: str, stdin: str = "") -> str:
        """`huddle user ...` as the admin runs it on the server (same data dir); its stdout."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "adapters.cli",
            "user",
            "--data-dir",
            str(self.data_dir),
            *args,
            env=self.env,
            cwd=str(ROOT),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate(stdin.encode())
        assert process.returncode == 0, err.decode()
        return out.decode()

    async def account(self, name: str, password: str) -> str:
        """Make an account with the admin commands; an API token of its own."""
        await self.huddle_cli("add", name, "--password-stdin", stdin=f"{password}\n")
        return (await self.huddle_cli("token", name)).strip()

    async def say(self, http: aiohttp.ClientSession, text: str) -> list[dict[str, Any]]:
        """Alice types ``text`` in #general of the web chat (signed in: it has accounts beyond
        loopback); the posts it answered with."""
        if self.token is None:
            self.token = await self.account("alice", "alice's long password")
        async with http.post(
            f"{self.admin_url}/api/chat/general/messages",
            json={"text": text},
            headers={"Authorization": f"Bearer {self.token}"},
            **self.request_options(),
        ) as response:
            body: dict[str, Any] = await response.json()
            assert response.status == 200, body
        posts: list[dict[str, Any]] = body["posts"]
        return posts

    async def meet(self, http: aiohttp.ClientSession, title: str) -> str:
        """Alice types `/meet <title>`; the card's Join link (her host link is the other post)."""
        card, _host_link = await self.say(http, f"/meet {title}")
        url: str = card["buttons"][0]["url"]
        return url


@asynccontextmanager
async def chromium_on(
    playwright: Playwright,
    host: Host,
    folder: Path,
    *,
    secure_origins: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> AsyncIterator[Browser]:
    """Debian's Chromium running inside ``host`` (fake camera and microphone).

    ``secure_origins`` are plain-HTTP origins the browser may use cameras on, as a LAN test would
    otherwise need TLS (tests/net/test_https.py covers the real thing).
    """
    args = list(CHROMIUM_ARGS)
    if secure_origins:
        args.append("--unsafely-treat-insecure-origin-as-secure=" + ",".join(secure_origins))
    browser = await playwright.chromium.launch(
        executable_path=str(host.chromium(folder, env)), args=args
    )
    try:
        yield browser
    finally:
        await browser.close()


async def media_context(browser: Browser, origin: str) -> BrowserContext:
    """A profile that may use the (fake) camera and microphone on ``origin``."""
    context = await browser.new_context(viewport={"width": 800, "height": 600})
    await context.grant_permissions(["camera", "microphone"], origin=origin)
    return context

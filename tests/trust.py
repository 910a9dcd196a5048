"""A Chromium that trusts certificate authorities the way a person's does: in its NSS database.

Chromium on Linux reads trust anchors from ``$HOME/.pki/nssdb``; the test gives the browser a home
of its own and adds the CA there with ``certutil`` (Debian's libnss3-tools, which `make test`
installs). Nothing is ignored: a certificate the CA did not sign fails as it would for anyone.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from playwright.async_api import Browser, async_playwright

from tests.conftest import CHROMIUM_ARGS, chromium_path


def nss_home(home: Path, cas: Sequence[Path]) -> Path:
    """A home directory whose NSS database trusts ``cas`` for websites (``-t C,,``)."""
    certutil = shutil.which("certutil")
    if certutil is None:
        raise RuntimeError("certutil not found: run `make test` (it installs libnss3-tools)")
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [certutil, "-d", f"sql:{db}", "-N", "--empty-password"], check=True, capture_output=True
    )
    for index, ca in enumerate(cas):
        subprocess.run(
            [certutil, "-d", f"sql:{db}", "-A", "-t", "C,,", "-n", f"test-ca-{index}", "-i", ca],
            check=True,
            capture_output=True,
        )
    return home


@asynccontextmanager
async def browser_trusting(home: Path, cas: Sequence[Path]) -> AsyncIterator[Browser]:
    """Headless Chromium (fake camera and microphone) that trusts exactly ``cas``."""
    nss_home(home, cas)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium_path(),
            args=CHROMIUM_ARGS,
            env={**os.environ, "HOME": str(home)},
        )
        try:
            yield browser
        finally:
            await browser.close()


async def meet_over_https(
    base_url: str, verify: ssl.SSLContext | bool, text: str, token: str | None = None
) -> str:
    """Alice types ``text`` (a /meet) in #general over HTTPS (``verify``): its Join link.

    ``token``: her API token, where the web chat has accounts (reachable from elsewhere).
    """
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.post(
            f"{base_url}/api/chat/general/messages",
            json={"user": "alice", "text": text},
            ssl=verify,
        ) as response,
    ):
        body: dict[str, Any] = await response.json()
        assert response.status == 200, body
    card, _host_link = body["posts"]
    url: str = card["buttons"][0]["url"]
    return url

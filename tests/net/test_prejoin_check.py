"""The pre-join page checks the path to the media server from the colleague's own network.

    colleague 198.18.6.2 --(firewall)-- 198.18.6.1 server: huddle serve (no TURN)

With UDP blocked the page says so, in words a person can act on, before they join into silence;
with the firewall gone the same check finds the direct path.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import async_playwright

from tests.net.hosts import Host, server_and_colleague
from tests.net.serve import HostedServe, chromium_on, media_context

pytestmark = pytest.mark.timeout(240)

SERVER, COLLEAGUE, ADMIN = "198.18.6.1", "198.18.6.2", "198.18.206.2"

UDP_BLOCKED = """
table inet office {
  chain out {
    type filter hook output priority 0; policy accept;
    oifname "lo" accept
    meta l4proto udp drop
  }
}
"""


@pytest.fixture
def lan() -> Iterator[tuple[Host, Host]]:
    with server_and_colleague(SERVER, COLLEAGUE, ADMIN) as (server, colleague, _):
        yield server, colleague


async def test_with_udp_blocked_the_page_says_why_before_joining(
    lan: tuple[Host, Host], tmp_path: Path
) -> None:
    server, colleague = lan
    serve = HostedServe(server, tmp_path / "data", admin_address=ADMIN, public_host=SERVER)
    await serve.start()
    origin = serve.public_url
    try:
        async with aiohttp.ClientSession() as http:
            url = await serve.meet(http, "Behind the firewall")
        async with async_playwright() as pw:
            async with chromium_on(pw, colleague, tmp_path, secure_origins=(origin,)) as remote:
                colleague.nft(UDP_BLOCKED)
                page = await (await media_context(remote, origin)).new_page()
                await page.goto(url, wait_until="domcontentloaded")
                blocked = page.locator("[data-testid=connection-check][data-result=blocked]")
                await blocked.wait_for(timeout=60_000)
                advice = await blocked.inner_text()
                assert "UDP" in advice and "TURN" in advice, advice

                colleague.flush_firewall()
                await page.reload(wait_until="domcontentloaded")
                direct = page.locator("[data-testid=connection-check][data-result=direct]")
                await direct.wait_for(timeout=60_000)
    finally:
        await serve.stop()

"""A colleague on a lossy link sees it on the tiles: the badge turns "poor" with the loss behind
it, and back to "good" when the link recovers; from what their browser's WebRTC reports.

    colleague 198.18.8.2 --(drops 30% of UDP in)-- 198.18.8.1 server: huddle serve, Alice

The loss is nftables dropping a random share of the UDP packets reaching the colleague (this
kernel has no netem): media from the server, never the signaling socket.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import async_playwright

from tests.net.calls import assert_receiving, join_call, participant_ids
from tests.net.hosts import Host, server_and_colleague
from tests.net.serve import HostedServe, chromium_on

pytestmark = pytest.mark.timeout(300)

SERVER, COLLEAGUE, ADMIN = "198.18.8.1", "198.18.8.2", "198.18.208.2"

#: Three in ten UDP packets to the colleague lost, at random.
LOSSY = """
table inet lossy {
  chain in {
    type filter hook input priority 0; policy accept;
    iifname "lo" accept
    meta l4proto udp numgen random mod 10 < 3 drop
  }
}
"""


@pytest.fixture
def lan() -> Iterator[tuple[Host, Host]]:
    with server_and_colleague(SERVER, COLLEAGUE, ADMIN) as (server, colleague, _):
        yield server, colleague


async def test_a_lossy_link_shows_as_poor_with_its_loss_and_good_again_once_it_recovers(
    lan: tuple[Host, Host], tmp_path: Path
) -> None:
    server, colleague = lan
    serve = HostedServe(server, tmp_path / "data", admin_address=ADMIN, public_host=SERVER)
    await serve.start()
    origin = serve.public_url
    try:
        async with aiohttp.ClientSession() as http:
            url = await serve.meet(http, "Hotel Wi-Fi")
        async with async_playwright() as pw:
            async with (
                chromium_on(pw, server, tmp_path) as local,
                chromium_on(pw, colleague, tmp_path, secure_origins=(origin,)) as remote,
            ):
                local_origin = f"http://127.0.0.1:{serve.port}"
                alice = await join_call(
                    local, local_origin, url.replace(origin, local_origin), "Alice"
                )
                bob = await join_call(remote, origin, url, "Bob")
                ids = await participant_ids(bob)
                await assert_receiving(bob, [ids["Alice"]], within=45)
                badge = bob.locator(f"[data-participant-id={ids['Alice']!r}]").get_by_test_id(
                    "quality"
                )
                await badge.filter(has_text="good").wait_for(timeout=30_000)

                colleague.nft(LOSSY)
                # Bob's view of Alice: poor, and the figures say it is the loss.
                await badge.filter(has_text="poor").wait_for(timeout=30_000)
                assert await badge.get_attribute("data-level") == "poor"
                details = await badge.get_attribute("data-details") or ""
                loss = re.search(r"loss (\d+\.\d)%", details)
                assert loss and float(loss[1]) >= 8.0, details
                # Alice's own view of Bob is not hurt: his packets reach the server whole.
                alice_badge = alice.locator(f"[data-participant-id={ids['Bob']!r}]").get_by_test_id(
                    "quality"
                )
                await alice_badge.filter(has_text="good").wait_for(timeout=30_000)

                colleague.flush_firewall()
                await badge.filter(has_text="good").wait_for(timeout=30_000)
                await assert_receiving(bob, [ids["Alice"]], within=45)
    finally:
        await serve.stop()

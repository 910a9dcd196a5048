"""A colleague's network drops for five seconds and comes back on another address (a Wi-Fi
change): the call comes back by itself, as the same participant, in one stay.

    colleague 198.18.5.2 (then .3) ------ 198.18.5.1 server: huddle serve, Alice's browser

During the outage everything in and out of the colleague's host is dropped (nftables), and its
address changes: the old socket and the old ICE path are dead for good, so only the page's own
recovery (a new socket that sends ``resume``, a new peer connection) brings video back. Nobody
clicks anything. Alice's page never hears of Bob leaving or joining again; the store has one
attendance row for him, still open.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import async_playwright

from tests.net.calls import assert_receiving, join_call, participant_ids
from tests.net.hosts import Host, Network, server_and_colleague
from tests.net.serve import HostedServe, chromium_on

pytestmark = pytest.mark.timeout(300)

SERVER, COLLEAGUE, MOVED, ADMIN = "198.18.5.1", "198.18.5.2", "198.18.5.3", "198.18.205.2"

#: Drop everything but loopback, both ways.
OUTAGE = """
table inet outage {
  chain in { type filter hook input priority 0; policy drop; iifname "lo" accept; }
  chain out { type filter hook output priority 0; policy drop; oifname "lo" accept; }
}
"""


@pytest.fixture
def lan() -> Iterator[tuple[Host, Host, Network]]:
    with server_and_colleague(SERVER, COLLEAGUE, ADMIN) as hosts:
        yield hosts


def interface_of(host: Host, address: str) -> str:
    for line in host.run("ip", "-o", "-4", "addr", "show").splitlines():
        fields = line.split()
        if fields[3].split("/")[0] == address:
            return fields[1]
    raise AssertionError(f"{address} not on {host.name}")


def stays(data_dir: Path, name: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(data_dir / "huddle.db") as db:
        return db.execute(
            "SELECT participant_id, left_at FROM attendance WHERE name = ?", (name,)
        ).fetchall()


async def test_five_seconds_without_network_and_a_new_address_the_call_comes_back_alone(
    lan: tuple[Host, Host, Network], tmp_path: Path
) -> None:
    server, colleague, _ = lan
    serve = HostedServe(server, tmp_path / "data", admin_address=ADMIN, public_host=SERVER)
    await serve.start()
    origin = serve.public_url
    try:
        async with aiohttp.ClientSession() as http:
            url = await serve.meet(http, "Flaky Wi-Fi")
        async with async_playwright() as pw:
            async with (
                chromium_on(pw, server, tmp_path) as local,
                chromium_on(pw, colleague, tmp_path, secure_origins=(origin,)) as remote,
            ):
                local_url = url.replace(origin, f"http://127.0.0.1:{serve.port}")
                alice = await join_call(local, f"http://127.0.0.1:{serve.port}", local_url, "Alice")
                bob = await join_call(remote, origin, url, "Bob")
                ids = await participant_ids(alice)
                await assert_receiving(alice, [ids["Bob"]], within=45)
                await assert_receiving(bob, [ids["Alice"]], within=45)

                # The outage: nothing gets through for five seconds, and the laptop comes back
                # on another address (the old socket and ICE path can never work again).
                device = interface_of(colleague, COLLEAGUE)
                colleague.nft(OUTAGE)
                await asyncio.sleep(5)  # the outage itself, not a wait for an outcome
                colleague.run("ip", "addr", "del", f"{COLLEAGUE}/24", "dev", device)
                colleague.run("ip", "addr", "add", f"{MOVED}/24", "dev", device)
                colleague.flush_firewall()

                # No click: video flows again both ways, Bob is still Bob.
                await assert_receiving(bob, [ids["Alice"]], within=90)
                await assert_receiving(alice, [ids["Bob"]], within=60)
                assert (await participant_ids(bob))["Bob"] == ids["Bob"]
                await bob.get_by_test_id("reconnecting").wait_for(state="hidden")
                timeline = [what for what, _ in await bob.evaluate("window.huddle.timeline")]
                assert any(what.startswith("reconnecting") for what in timeline), timeline
                # Alice never saw him leave or come back; the store has one open stay for him.
                seen = [what for what, _ in await alice.evaluate("window.huddle.timeline")]
                assert "got participant-left" not in seen, seen
                assert seen.count("got participant-joined") == 1, seen
                bob_stays = stays(tmp_path / "data", "Bob")
                assert len(bob_stays) == 1 and bob_stays[0][1] is None, bob_stays
    finally:
        await serve.stop()

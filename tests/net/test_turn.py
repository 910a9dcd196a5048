"""A colleague behind a firewall that blocks UDP reaches the call through coturn.

    colleague 198.18.3.2 --(firewall)-- 198.18.3.1 server: huddle serve + coturn (Debian's)

First the colleague's network lets UDP out only to coturn's port 3478; then it drops UDP entirely
and lets TCP out only to the web server and coturn's 3478 (``turn:`` over TCP); then only to the
web server and 443, where coturn speaks TLS (``turns:``). Each
time the browser's nominated path is a relay (getStats), and video flows both ways with someone
on the server host. coturn refuses a credential whose time is up.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aioice import stun, turn
from playwright.async_api import async_playwright

from adapters.tls import LocalCA
from media.turn import turn_credential
from tests.net.calls import assert_receiving, join_call, participant_ids, selected_path
from tests.net.hosts import Host, Network
from tests.net.serve import HostedServe, chromium_on
from tests.net.turn import Coturn
from tests.trust import nss_home

pytestmark = pytest.mark.timeout(300)

SERVER, COLLEAGUE, ADMIN = "198.18.3.1", "198.18.3.2", "198.18.202.2"
SECRET = "test-turn-secret-4f1c"


class Office:
    """The two hosts, the test's admin link to the server, coturn on the server."""

    def __init__(self, net: Network, folder: Path) -> None:
        self.server = net.host("srv")
        self.colleague = net.host("cli")
        net.link(self.server, f"{SERVER}/24", self.colleague, f"{COLLEAGUE}/24")
        net.admin_link(self.server, "198.18.202.1", ADMIN)
        self.folder = folder
        tls = LocalCA(folder / "turn-ca").ensure([SERVER])
        self.ca = folder / "turn-ca" / "ca.pem"
        self.turn = Coturn(
            self.server,
            folder,
            address=SERVER,
            media_address=SERVER,
            secret=SECRET,
            cert=tls.files.cert,
            key=tls.files.key,
            listen=(ADMIN,),
        )


@pytest.fixture
def office(tmp_path: Path) -> Iterator[Office]:
    with Network() as net:
        yield Office(net, tmp_path)


def firewall(colleague: Host, rules: str) -> None:
    """Replace the colleague's outbound firewall (loopback always passes)."""
    colleague.flush_firewall()
    colleague.nft(
        "table inet office {\n"
        "  chain out {\n"
        "    type filter hook output priority 0; policy accept;\n"
        '    oifname "lo" accept\n'
        f"{rules}\n"
        "  }\n"
        "}\n"
    )


async def test_udp_blocked_then_only_tls_on_443_the_call_goes_through_the_relay(
    office: Office, tmp_path: Path
) -> None:
    await office.turn.start()
    turn_urls = (
        f"turn:{SERVER}:3478?transport=udp turn:{SERVER}:3478?transport=tcp "
        f"turns:{SERVER}:443?transport=tcp"
    )
    serve = HostedServe(
        office.server,
        tmp_path / "data",
        admin_address=ADMIN,
        env={"HUDDLE_TURN_URLS": turn_urls, "HUDDLE_TURN_SECRET": SECRET},
        public_host=SERVER,
    )
    await serve.start()
    origin = serve.public_url
    # The colleague's browser trusts the CA of coturn's certificate, as a managed laptop would.
    home = nss_home(tmp_path / "colleague-home", [office.ca])
    try:
        async with aiohttp.ClientSession() as http:
            url = await serve.meet(http, "Through the relay")
        host_url = url.replace(origin, f"http://127.0.0.1:{serve.port}")
        async with async_playwright() as pw:
            async with (
                chromium_on(pw, office.server, tmp_path) as local,
                chromium_on(
                    pw,
                    office.colleague,
                    tmp_path,
                    secure_origins=(origin,),
                    env={"HOME": str(home)},
                ) as remote,
            ):
                alice = await join_call(local, f"http://127.0.0.1:{serve.port}", host_url, "Alice")

                # 1. UDP out only to coturn's port.
                firewall(
                    office.colleague,
                    f"    ip daddr {SERVER} udp dport 3478 accept\n    meta l4proto udp drop",
                )
                bob = await join_call(remote, origin, url, "Bob")
                ids = await participant_ids(bob)
                await assert_receiving(bob, [ids["Alice"]], within=45)
                await assert_receiving(alice, [ids["Bob"]], within=45)
                path = await selected_path(bob)
                assert (path["local"], path["relayProtocol"]) == ("relay", "udp"), path
                await bob.get_by_test_id("leave-button").click()

                # 2. No UDP at all; TCP only to the web server and to coturn's 3478 (turn: over
                # TCP).
                firewall(
                    office.colleague,
                    "    meta l4proto udp drop\n"
                    f"    ip daddr {SERVER} tcp dport {{ {serve.port}, 3478 }} accept\n"
                    "    meta l4proto tcp drop",
                )
                dave = await join_call(remote, origin, url, "Dave")
                ids = await participant_ids(dave)
                await assert_receiving(dave, [ids["Alice"]], within=60)
                await assert_receiving(alice, [ids["Dave"]], within=60)
                path = await selected_path(dave)
                assert (path["local"], path["relayProtocol"]) == ("relay", "tcp"), path
                await dave.get_by_test_id("leave-button").click()

                # 3. No UDP at all; TCP only to the web server and to 443 (turns:).
                firewall(
                    office.colleague,
                    "    meta l4proto udp drop\n"
                    f"    ip daddr {SERVER} tcp dport {{ {serve.port}, 443 }} accept\n"
                    "    meta l4proto tcp drop",
                )
                carol = await join_call(remote, origin, url, "Carol")
                ids = await participant_ids(carol)
                await assert_receiving(carol, [ids["Alice"]], within=60)
                await assert_receiving(alice, [ids["Carol"]], within=60)
                path = await selected_path(carol)
                assert (path["local"], path["relayProtocol"]) == ("relay", "tls"), path
                assert path["localUrl"].startswith(f"turns:{SERVER}:443"), path
    finally:
        await serve.stop()
        await office.turn.stop()


class _Quiet(asyncio.DatagramProtocol):
    pass


async def allocate(username: str, password: str) -> tuple[str, int]:
    """Ask coturn (over the admin link) for a relay address with these credentials."""
    transport, _ = await asyncio.wait_for(
        turn.create_turn_endpoint(
            _Quiet, server_addr=(ADMIN, 3478), username=username, password=password
        ),
        timeout=20,
    )
    try:
        relayed: tuple[str, int] = transport.get_extra_info("sockname")
        return relayed
    finally:
        transport.close()


async def test_coturn_takes_huddles_credentials_until_they_expire(office: Office) -> None:
    await office.turn.start()
    try:
        username, password = turn_credential(SECRET.encode(), time.time() + 600, "h1")
        relayed = await allocate(username, password)
        assert relayed[0] == SERVER and 49160 <= relayed[1] <= 49359

        expired, password = turn_credential(SECRET.encode(), time.time() - 5, "h1")
        with pytest.raises(stun.TransactionFailed, match="401"):
            await allocate(expired, password)
        # The manifest's placeholder secret was replaced: it signs nothing.
        placeholder = b"change-me-to-the-value-of-HUDDLE_TURN_SECRET"
        username, password = turn_credential(placeholder, time.time() + 600, "h1")
        with pytest.raises(stun.TransactionFailed, match="401"):
            await allocate(username, password)
        # And a forged password for a valid-looking name is refused too.
        forged = base64.b64encode(hmac.new(b"guess", username.encode(), hashlib.sha1).digest())
        with pytest.raises(stun.TransactionFailed, match="401"):
            await allocate(username, forged.decode())
    finally:
        await office.turn.stop()

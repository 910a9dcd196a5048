"""A server behind 1:1 NAT (a cloud VM) and a colleague behind a home router.

    colleague 198.19.0.2 -- home router 198.18.1.2 -- 198.18.1.1 cloud NAT -- 198.18.2.2 server
                            (masquerade)                (1:1: DNAT in, SNAT out)

The colleague can reach only the NAT's public address; the server's own address is private. With
``HUDDLE_PUBLIC_IP=198.18.1.1`` the call connects; without it the browser has no address of the
server it can reach, and ICE fails. Someone on the server host joins too, so media flows both ways.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import async_playwright

from tests.net.calls import (
    assert_receiving,
    join_call,
    participant_ids,
    paths_until_notice,
    selected_path,
)
from tests.net.hosts import Network
from tests.net.serve import HostedServe, chromium_on

pytestmark = pytest.mark.timeout(240)

PUBLIC_IP = "198.18.1.1"
#: The UDP range the cloud's firewall opens to the server.
PORTS = (40000, 40019)


class Cloud:
    """The namespaces of the picture above."""

    def __init__(self, net: Network) -> None:
        self.colleague = net.host("cli")
        self.home = net.host("home", router=True)
        self.nat = net.host("nat", router=True)
        self.server = net.host("srv")
        net.link(self.colleague, "198.19.0.2/24", self.home, "198.19.0.1/24")
        net.link(self.home, "198.18.1.2/24", self.nat, f"{PUBLIC_IP}/24")
        net.link(self.nat, "198.18.2.1/24", self.server, "198.18.2.2/24")
        net.admin_link(self.server, "198.18.200.1", "198.18.200.2")
        net.route(self.colleague, "default", "198.19.0.1")
        net.route(self.server, "default", "198.18.2.1")
        self.home.nft(
            """
            table ip home {
              chain post {
                type nat hook postrouting priority 100;
                ip saddr 198.19.0.0/24 masquerade
              }
            }
            """
        )
        self.nat.nft(
            f"""
            table ip cloud {{
              chain pre {{
                type nat hook prerouting priority -100;
                ip daddr {PUBLIC_IP} dnat to 198.18.2.2
              }}
              chain post {{
                type nat hook postrouting priority 100;
                ip saddr 198.18.2.2 snat to {PUBLIC_IP}
              }}
            }}
            """
        )


@pytest.fixture
def cloud() -> Iterator[Cloud]:
    with Network() as net:
        yield Cloud(net)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call_through_nat(
    cloud: Cloud, tmp_path: Path, http: aiohttp.ClientSession, env: dict[str, str]
) -> tuple[HostedServe, str]:
    serve = HostedServe(
        cloud.server,
        tmp_path / "data",
        admin_address="198.18.200.2",
        env=env,
        public_host=PUBLIC_IP,
    )
    await serve.start()
    return serve, await serve.meet(http, "Across the NAT")


def on_server_host(url: str, port: int) -> str:
    """The join link as someone on the server itself opens it (no hairpin NAT there)."""
    return url.replace(f"http://{PUBLIC_IP}:{port}", f"http://127.0.0.1:{port}")


async def test_with_the_public_ip_set_a_colleague_behind_nat_joins_both_ways(
    cloud: Cloud, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    env = {"HUDDLE_PUBLIC_IP": PUBLIC_IP, "HUDDLE_UDP_PORTS": f"{PORTS[0]}-{PORTS[1]}"}
    serve, url = await call_through_nat(cloud, tmp_path, http, env)
    origin = serve.public_url
    try:
        async with async_playwright() as pw:
            async with (
                chromium_on(pw, cloud.server, tmp_path) as local,
                chromium_on(pw, cloud.colleague, tmp_path, secure_origins=(origin,)) as remote,
            ):
                host_url = on_server_host(url, serve.port)
                alice = await join_call(local, host_url.split("/h/")[0], host_url, "Alice")
                bob = await join_call(remote, origin, url, "Bob")
                ids = await participant_ids(bob)
                await assert_receiving(bob, [ids["Alice"]], within=30)
                await assert_receiving(alice, [ids["Bob"]], within=30)
                path = await selected_path(bob)
                # Bob's browser reached the server at the address the NAT publishes.
                assert (path["remoteAddress"], path["remote"]) == (PUBLIC_IP, "srflx")
                assert PORTS[0] <= path["remotePort"] <= PORTS[1]
                # Every UDP socket the server holds (both people's, on each of its addresses)
                # lies in the range the firewall opens.
                sockets = cloud.server.udp_sockets(serve.pid)
                assert len(sockets) >= 4, sockets
                assert all(PORTS[0] <= port <= PORTS[1] for _, port in sockets), sockets
    finally:
        await serve.stop()


async def test_without_the_public_ip_the_colleague_cannot_connect(
    cloud: Cloud, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    serve, url = await call_through_nat(cloud, tmp_path, http, {})
    origin = serve.public_url
    try:
        async with async_playwright() as pw:
            async with chromium_on(pw, cloud.colleague, tmp_path, secure_origins=(origin,)) as b:
                bob = await join_call(b, origin, url, "Bob")
                # The page loaded (TCP through the NAT), but no server address is reachable:
                # ICE gives up, and Bob is told why, never having had a working path.
                paths = await paths_until_notice(bob, within=120)
                assert await bob.locator("#notice-title").inner_text() == "Media connection failed"
                assert "firewall" in await bob.locator("#notice-text").inner_text()
                assert not any(path and path["state"] == "succeeded" for path in paths)
    finally:
        await serve.stop()

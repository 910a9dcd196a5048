"""The media server's side of ICE: its sockets in one UDP range, its public address advertised,
TURN credentials for browsers that expire with the join link; settings that cannot work refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import time

import pytest

from media.contrib.client import HuddleClient, JoinError
from media.network import (
    MediaNetwork,
    NetworkConfigError,
    PortRange,
    parse_public_ips,
)
from media.turn import IceServers, TurnConfigError, parse_urls, turn_credential
from tests.media.media_app import media_app

pytestmark = pytest.mark.timeout(60)

#: 20 ports of this run's own (runs on one machine use different ranges).
FIRST = 42000 + (os.getpid() % 500) * 40
RANGE = PortRange(FIRST, FIRST + 19)
PUBLIC = "198.18.77.7"


def candidates(sdp: str) -> list[tuple[str, int, str]]:
    """(address, port, type) of every ICE candidate in ``sdp``."""
    found = re.findall(r"a=candidate:\S+ \d+ udp \d+ (\S+) (\d+) typ (\w+)", sdp, re.IGNORECASE)
    return [(address, int(port), kind) for address, port, kind in found]


def server_ports(server: object) -> set[int]:
    """Ports of every UDP socket the server's peer connections opened."""
    ports: set[int] = set()
    for room in server._rooms.values():  # type: ignore[attr-defined]
        for participant in room.participants.values():
            for transport in participant.pc._RTCPeerConnection__iceTransports:
                for protocol in transport.iceGatherer._connection._protocols:
                    ports.add(protocol.transport.get_extra_info("sockname")[1])
    return ports


async def test_sockets_bind_in_the_range_and_the_public_address_is_advertised() -> None:
    network = MediaNetwork(public_ips=(PUBLIC,), udp_ports=RANGE)
    async with media_app(network=network) as app:
        url = app.join_url()
        async with HuddleClient(url, "Alice", width=160, height=120) as alice:
            await alice.join()
            async with HuddleClient(url, "Bob", width=160, height=120) as bob:
                await bob.join()
                await bob.wait_for(lambda: bob.received_from("p-1").frames_decoded > 3, within=20)
                offered = candidates(bob.pc.remoteDescription.sdp)
                ports = server_ports(app.server)
        hosts = [c for c in offered if c[2] == "host"]
        reflexive = [c for c in offered if c[2] == "srflx"]
        assert hosts and all(RANGE.first <= port <= RANGE.last for _, port, _ in hosts)
        # Each IPv4 host socket is also offered at the public address, on the same port.
        ipv4 = {port for address, port, _ in hosts if ":" not in address}
        assert ipv4 and {(PUBLIC, port) for port in ipv4} == {(a, p) for a, p, _ in reflexive}
        assert len(ports) >= 2 and all(RANGE.first <= port <= RANGE.last for port in ports)


async def test_without_settings_gathering_is_aiortcs_own() -> None:
    async with media_app() as app, HuddleClient(app.join_url(), "Alice") as alice:
        await alice.join()
        offered = candidates(alice.pc.remoteDescription.sdp)
    assert offered and not [c for c in offered if c[2] == "srflx"]


async def test_a_full_range_refuses_the_next_person_clearly_and_the_call_goes_on() -> None:
    one_port = PortRange(RANGE.last, RANGE.last)
    async with media_app(network=MediaNetwork(udp_ports=one_port)) as app:
        url = app.join_url()
        async with HuddleClient(url, "Alice", width=160, height=120) as alice:
            await alice.join()
            # Her call holds the range's only port.
            await alice.wait_for(lambda: alice.pc.connectionState == "connected", within=30)
            bob = HuddleClient(url, "Bob", width=160, height=120)
            with pytest.raises(JoinError, match="no free media port"):
                await bob.join()
            [error] = [m for m in bob.messages if m["type"] == "error"]
            assert (error["code"], error["fatal"]) == ("no_media_port", True)
            await bob.close()
            async with HuddleClient(url, "Carol", publish_video=False) as carol:
                with pytest.raises(JoinError):
                    await carol.join()
            # Alice is still in her call, and her port is free again once she leaves.
            assert not alice.disconnected() and alice.pc.connectionState == "connected"
        async with HuddleClient(url, "Dave", width=160, height=120) as dave:
            await dave.join()
            await dave.wait_for(lambda: dave.pc.connectionState == "connected", within=30)


async def test_the_join_page_gives_turn_credentials_that_expire_with_the_link() -> None:
    turn = IceServers(turn_urls=("turn:turn.example.com:3478",), turn_secret=b"s3cret")
    async with media_app(ice_servers=["stun:stun.example.com:3478"], turn=turn) as app:
        expires = time.time() + 900
        status, page = await app.get(app.server.join_url("h1", expires))
    assert status == 200
    config = json.loads(re.search(r'id="huddle-config"[^>]*>(.*?)</script>', page)[1])  # type: ignore[index]
    stun_entry, turn_entry = config["iceServers"]
    assert stun_entry == {"urls": ["stun:stun.example.com:3478"]}
    assert turn_entry["urls"] == ["turn:turn.example.com:3478"]
    assert turn_entry["username"] == f"{int(expires)}:h1"
    digest = hmac.new(b"s3cret", turn_entry["username"].encode(), hashlib.sha1).digest()
    assert turn_entry["credential"] == base64.b64encode(digest).decode()
    assert "s3cret" not in page


def test_turn_credentials_follow_the_rest_api_scheme() -> None:
    username, password = turn_credential(b"k", 1_900_000_000.7, "a b/c:d")
    assert username == "1900000000:abcd"
    assert (
        password
        == base64.b64encode(hmac.new(b"k", username.encode(), hashlib.sha1).digest()).decode()
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("40000", None),
        ("40000-40199", None),
        ("40199-40000", "within 1024-65535"),
        ("80-90", "within 1024-65535"),
        ("40000-70000", "within 1024-65535"),
        ("lots", "port range like"),
        ("40000-", None),
    ],
)
def test_port_ranges_are_read_or_refused_clearly(text: str, message: str | None) -> None:
    if message is None:
        assert len(PortRange.parse(text)) >= 1
    else:
        with pytest.raises(NetworkConfigError, match=message):
            PortRange.parse(text)


def test_public_addresses_must_be_addresses() -> None:
    assert parse_public_ips("203.0.113.7, 2001:db8::7 203.0.113.7") == (
        "203.0.113.7",
        "2001:db8::7",
    )
    with pytest.raises(NetworkConfigError, match="IP addresses"):
        parse_public_ips("huddle.example.com")


def test_ice_urls_are_checked_and_turn_needs_its_secret() -> None:
    assert parse_urls(
        "turn:a.example:3478?transport=tcp, turns:b.example:443", ("turn", "turns"), "X"
    )
    with pytest.raises(TurnConfigError, match="not a turn: or turns: URL"):
        parse_urls("http://turn.example.com", ("turn", "turns"), "HUDDLE_TURN_URLS")
    with pytest.raises(TurnConfigError, match="not a stun: or stuns: URL"):
        parse_urls("turn:a.example:3478", ("stun", "stuns"), "HUDDLE_ICE_SERVERS")
    with pytest.raises(TurnConfigError, match="HUDDLE_TURN_SECRET"):
        IceServers(turn_urls=("turn:a.example:3478",))
